package mqtttest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// DialProxy is a forward proxy for client tests of proxy dialing, started
// by StartHTTPProxy (HTTP CONNECT) or StartSOCKS5: it records the target
// of each request and relays bytes both ways until either side closes.
type DialProxy struct {
	// Addr is its address, "127.0.0.1:port"; URL is "http://" + Addr or
	// "socks5://" + Addr.
	Addr, URL string

	l    net.Listener
	wg   sync.WaitGroup
	open func(c net.Conn) (target, auth string, reply func(ok bool) error, r io.Reader)

	mu      sync.Mutex
	closed  bool
	targets []string
	auths   []string
	conns   []net.Conn
}

// StartHTTPProxy runs, until the test ends, an HTTP proxy on a free
// 127.0.0.1 port that answers CONNECT host:port with 200 and then relays
// (and anything else with 405). It takes any Proxy-Authorization, and
// records it (Auths).
func StartHTTPProxy(t testing.TB) *DialProxy {
	t.Helper()
	return startDialProxy(t, "http", func(c net.Conn) (string, string, func(bool) error, io.Reader) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return "", "", nil, nil
		}
		if req.Method != http.MethodConnect {
			io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
			return "", "", nil, nil
		}
		reply := func(ok bool) error {
			if !ok {
				_, err := io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
				return err
			}
			_, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			return err
		}
		return req.Host, req.Header.Get("Proxy-Authorization"), reply, br
	})
}

// StartSOCKS5 runs, until the test ends, a SOCKS5 proxy on a free
// 127.0.0.1 port: no authentication, CONNECT to an IPv4 address or a
// host name only.
func StartSOCKS5(t testing.TB) *DialProxy {
	t.Helper()
	return startDialProxy(t, "socks5", func(c net.Conn) (string, string, func(bool) error, io.Reader) {
		buf := make([]byte, 262)
		// Greeting: version 5, methods; answer "no authentication".
		if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 5 {
			return "", "", nil, nil
		}
		if _, err := io.ReadFull(c, buf[:buf[1]]); err != nil {
			return "", "", nil, nil
		}
		if _, err := c.Write([]byte{5, 0}); err != nil {
			return "", "", nil, nil
		}
		// Request: 5, CONNECT, 0, address type, address, port.
		if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[0] != 5 || buf[1] != 1 {
			return "", "", nil, nil
		}
		var host string
		switch buf[3] {
		case 1:
			if _, err := io.ReadFull(c, buf[:4]); err != nil {
				return "", "", nil, nil
			}
			host = net.IP(buf[:4]).String()
		case 3:
			if _, err := io.ReadFull(c, buf[:1]); err != nil {
				return "", "", nil, nil
			}
			n := int(buf[0])
			if _, err := io.ReadFull(c, buf[:n]); err != nil {
				return "", "", nil, nil
			}
			host = string(buf[:n])
		default:
			return "", "", nil, nil
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return "", "", nil, nil
		}
		target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(buf[:2]))))
		reply := func(ok bool) error {
			code := byte(0)
			if !ok {
				code = 5 // connection refused
			}
			_, err := c.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
			return err
		}
		return target, "", reply, c
	})
}

func startDialProxy(t testing.TB, scheme string, open func(net.Conn) (string, string, func(bool) error, io.Reader)) *DialProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: starting the %s proxy: %v", scheme, err)
	}
	p := &DialProxy{Addr: l.Addr().String(), l: l, open: open}
	p.URL = scheme + "://" + p.Addr
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Targets returns the host:port of every request so far, in order.
func (p *DialProxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// Auths returns the Proxy-Authorization header of every HTTP request so
// far ("" where none), in order.
func (p *DialProxy) Auths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auths...)
}

// track keeps c to be closed at the end, or closes it now if the end has
// come; it reports whether c may be used.
func (p *DialProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *DialProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *DialProxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(DefaultTimeout))
	target, auth, reply, r := p.open(c)
	if reply == nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	p.mu.Lock()
	p.targets = append(p.targets, target)
	p.auths = append(p.auths, auth)
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", target, DefaultTimeout)
	if err != nil {
		reply(false)
		return
	}
	defer up.Close()
	if !p.track(up) || reply(true) != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, r) // what the client sent after the request, then the rest
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, up)
	c.Close()
	<-done
}
