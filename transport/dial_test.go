package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testProxy is a tiny proxy on 127.0.0.1 for the dial tests: serve handles
// one client connection and returns the target it connected to, then the
// proxy relays bytes both ways. Close stops everything and waits.
type testProxy struct {
	l     net.Listener
	serve func(c net.Conn, br *bufio.Reader) (net.Conn, error)
	used  atomic.Int32 // tunnels opened

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, serve func(c net.Conn, br *bufio.Reader) (net.Conn, error)) *testProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{l: l, serve: serve, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.run()
	t.Cleanup(p.Close)
	return p
}

func (p *testProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *testProxy) run() {
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
		go func() {
			defer p.wg.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			target, err := p.serve(c, br)
			if err != nil {
				return
			}
			defer target.Close()
			if !p.track(target) {
				return
			}
			p.used.Add(1)
			done := make(chan struct{})
			go func() {
				io.Copy(target, br)
				target.Close()
				close(done)
			}()
			io.Copy(c, target)
			c.Close()
			<-done
		}()
	}
}

func (p *testProxy) Close() {
	p.l.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// socks5Serve is a SOCKS5 server (RFC 1928) for CONNECT, with no
// authentication or, if user is set, username/password (RFC 1929).
func socks5Serve(user, pass string) func(c net.Conn, br *bufio.Reader) (net.Conn, error) {
	return func(c net.Conn, br *bufio.Reader) (net.Conn, error) {
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 5 {
			return nil, fmt.Errorf("bad greeting %v: %v", hdr, err)
		}
		methods := make([]byte, hdr[1])
		if _, err := io.ReadFull(br, methods); err != nil {
			return nil, err
		}
		want := byte(0x00)
		if user != "" {
			want = 0x02
		}
		if !strings.ContainsRune(string(methods), rune(want)) {
			c.Write([]byte{5, 0xff})
			return nil, errors.New("no acceptable method")
		}
		c.Write([]byte{5, want})
		if want == 0x02 {
			b := make([]byte, 2)
			if _, err := io.ReadFull(br, b); err != nil || b[0] != 1 {
				return nil, errors.New("bad auth version")
			}
			u := make([]byte, b[1])
			io.ReadFull(br, u)
			io.ReadFull(br, b[:1])
			pw := make([]byte, b[0])
			if _, err := io.ReadFull(br, pw); err != nil {
				return nil, err
			}
			if string(u) != user || string(pw) != pass {
				c.Write([]byte{1, 1})
				return nil, errors.New("bad credentials")
			}
			c.Write([]byte{1, 0})
		}
		req := make([]byte, 4)
		if _, err := io.ReadFull(br, req); err != nil || req[0] != 5 || req[1] != 1 {
			return nil, fmt.Errorf("bad request %v: %v", req, err)
		}
		var host string
		switch req[3] {
		case 1:
			ip := make([]byte, 4)
			io.ReadFull(br, ip)
			host = net.IP(ip).String()
		case 3:
			n, _ := br.ReadByte()
			name := make([]byte, n)
			io.ReadFull(br, name)
			host = string(name)
		case 4:
			ip := make([]byte, 16)
			io.ReadFull(br, ip)
			host = net.IP(ip).String()
		}
		pb := make([]byte, 2)
		if _, err := io.ReadFull(br, pb); err != nil {
			return nil, err
		}
		target, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(pb)))))
		if err != nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
			return nil, err
		}
		c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
		return target, nil
	}
}

// connectServe is an HTTP CONNECT proxy; if user is set it demands basic
// proxy authentication and answers 407 without it.
func connectServe(user, pass string) func(c net.Conn, br *bufio.Reader) (net.Conn, error) {
	return func(c net.Conn, br *bufio.Reader) (net.Conn, error) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil, err
		}
		if req.Method != http.MethodConnect {
			io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return nil, errors.New("not CONNECT")
		}
		if user != "" {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
			if req.Header.Get("Proxy-Authorization") != want {
				io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\n"+
					"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
				return nil, errors.New("no credentials")
			}
		}
		target, err := net.Dial("tcp", req.Host)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return nil, err
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		return target, nil
	}
}

// endpoints starts one listener of each kind and returns a URL for each.
// Dial with p.dialTLS() checks that the server name defaults to the URL's
// host (127.0.0.1, in the server certificate's IP addresses).
func endpoints(t *testing.T) (map[string]net.Listener, *pki) {
	t.Helper()
	p := newPKI(t)
	ls := make(map[string]net.Listener)
	add := func(url string, l net.Listener, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		ls[url] = l
		t.Cleanup(func() { l.Close() })
	}
	l, err := ListenTCP("127.0.0.1:0")
	add("tcp://"+l.Addr().String(), l, err)
	l, err = ListenTLS("127.0.0.1:0", p.serverTLS(t, ClientAuthNone))
	add("ssl://"+l.Addr().String(), l, err)
	l, err = ListenWebSocket("127.0.0.1:0", WSOptions{})
	add("ws://"+l.Addr().String()+"/mqtt", l, err)
	l, err = ListenWebSocket("127.0.0.1:0", WSOptions{TLS: p.serverTLS(t, ClientAuthNone), Path: "/x"})
	add("wss://"+l.Addr().String()+"/x", l, err)
	return ls, p
}

// dialExchange dials url with opts, exchanges data with the accepted end
// and closes both. The accepted end's TLS handshake runs at once, as a
// broker's first Read would run it.
func dialExchange(t *testing.T, l net.Listener, url string, opts DialOptions) error {
	t.Helper()
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := l.Accept()
		if tc, ok := c.(*tls.Conn); ok {
			tc.SetDeadline(time.Now().Add(testTimeout))
			tc.Handshake() // a failure shows on the client side
			tc.SetDeadline(time.Time{})
		}
		ch <- acceptResult{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	client, err := Dial(ctx, url, opts)
	if err != nil {
		// The Accept ends with a refused connection or the listener.
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return err
	}
	cancel() // the connection outlives the dial context
	server := waitAccept(t, ch)
	exchange(t, client, server)
	closeAll(client, server)
	return nil
}

func TestDialEachListener(t *testing.T) {
	leakCheck(t)
	ls, p := endpoints(t)
	for url, l := range ls {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			if err := dialExchange(t, l, url, DialOptions{TLS: p.dialTLS()}); err != nil {
				t.Fatalf("Dial %s: %v", url, err)
			}
		})
	}
	// Other spellings of the schemes.
	for _, alias := range []string{"mqtt", "tls", "mqtts"} {
		for url, l := range ls {
			u := alias + url[strings.Index(url, ":"):]
			if (alias == "mqtt") != strings.HasPrefix(url, "tcp:") || (alias != "mqtt" && !strings.HasPrefix(url, "ssl:")) {
				continue
			}
			if err := dialExchange(t, l, u, DialOptions{TLS: p.dialTLS()}); err != nil {
				t.Errorf("Dial %s: %v", u, err)
			}
		}
	}
}

func TestDialTLSVerifies(t *testing.T) {
	leakCheck(t)
	ls, _ := endpoints(t)
	for url, l := range ls {
		if !strings.HasPrefix(url, "ssl:") && !strings.HasPrefix(url, "wss:") {
			continue
		}
		// System roots do not know the test CA.
		if err := dialExchange(t, l, url, DialOptions{}); err == nil {
			t.Errorf("Dial %s without the CA succeeded", url)
		}
	}
}

func TestDialURLs(t *testing.T) {
	for _, tc := range []struct {
		url, def, want string
	}{
		{"tcp://example.com", DefaultPortTCP, "example.com:1883"},
		{"ssl://example.com", DefaultPortTLS, "example.com:8883"},
		{"ws://example.com/mqtt", DefaultPortWS, "example.com:80"},
		{"wss://example.com", DefaultPortWSS, "example.com:443"},
		{"tcp://[::1]", DefaultPortTCP, "[::1]:1883"},
		{"tcp://[::1]:1884", DefaultPortTCP, "[::1]:1884"},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostPort(u, tc.def); got != tc.want {
			t.Errorf("hostPort(%s) = %s, want %s", tc.url, got, tc.want)
		}
	}
	ctx := context.Background()
	for _, bad := range []struct{ url, opt, want string }{
		{"localhost:1883", "", "no scheme"},
		{"quic://localhost", "", "unsupported scheme"},
		{"unix:///tmp/x.sock", "socks5://127.0.0.1:1", "proxy"},
		{"unix://", "", "no socket path"},
		{"tcp://localhost", "ftp://proxy", "unsupported scheme"},
		{"tcp://localhost", "socks5://", "no host"},
	} {
		_, err := Dial(ctx, bad.url, DialOptions{Proxy: bad.opt})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Dial(%q, proxy %q): %v, want an error containing %q", bad.url, bad.opt, err, bad.want)
		}
	}
}

func TestDialSOCKS5(t *testing.T) {
	leakCheck(t)
	ls, p := endpoints(t)
	open := startProxy(t, socks5Serve("", ""))
	auth := startProxy(t, socks5Serve("bob", "s3cret"))
	for url, l := range ls {
		opts := DialOptions{TLS: p.dialTLS(), Proxy: "socks5://" + open.l.Addr().String()}
		if err := dialExchange(t, l, url, opts); err != nil {
			t.Errorf("Dial %s via SOCKS5: %v", url, err)
		}
		opts.Proxy = "socks5://bob:s3cret@" + auth.l.Addr().String()
		if err := dialExchange(t, l, url, opts); err != nil {
			t.Errorf("Dial %s via SOCKS5 with a password: %v", url, err)
		}
	}
	if got := int(open.used.Load()); got != len(ls) {
		t.Errorf("the no-auth proxy opened %d tunnels, want %d", got, len(ls))
	}
	if got := int(auth.used.Load()); got != len(ls) {
		t.Errorf("the password proxy opened %d tunnels, want %d", got, len(ls))
	}
	for url, l := range ls {
		opts := DialOptions{TLS: p.dialTLS(), Proxy: "socks5://bob:wrong@" + auth.l.Addr().String()}
		if err := dialExchange(t, l, url, opts); err == nil {
			t.Errorf("Dial %s via SOCKS5 with a wrong password succeeded", url)
		}
		break
	}
	open.Close()
	auth.Close()
}

func TestDialHTTPConnect(t *testing.T) {
	leakCheck(t)
	ls, p := endpoints(t)
	open := startProxy(t, connectServe("", ""))
	auth := startProxy(t, connectServe("bob", "s3cret"))
	for url, l := range ls {
		opts := DialOptions{TLS: p.dialTLS(), Proxy: "http://" + open.l.Addr().String()}
		if err := dialExchange(t, l, url, opts); err != nil {
			t.Errorf("Dial %s via HTTP CONNECT: %v", url, err)
		}
		opts.Proxy = "http://bob:s3cret@" + auth.l.Addr().String()
		if err := dialExchange(t, l, url, opts); err != nil {
			t.Errorf("Dial %s via HTTP CONNECT with a password: %v", url, err)
		}
	}
	if got := int(open.used.Load() + auth.used.Load()); got != 2*len(ls) {
		t.Errorf("the proxies opened %d tunnels, want %d", got, 2*len(ls))
	}
	for url, l := range ls {
		opts := DialOptions{TLS: p.dialTLS(), Proxy: "http://bob:wrong@" + auth.l.Addr().String()}
		err := dialExchange(t, l, url, opts)
		if err == nil || !strings.Contains(err.Error(), "407 Proxy Authentication Required") {
			t.Errorf("Dial %s with wrong proxy credentials: %v, want a 407 error", url, err)
		}
		if err != nil && strings.Contains(err.Error(), "wrong") {
			t.Errorf("the error shows the proxy password: %v", err)
		}
	}
	open.Close()
	auth.Close()
}

// TestHTTPConnectEarlyBytes: bytes the proxy sends right behind its 200
// (here the server's greeting, in the same segment) are not lost.
func TestHTTPConnectEarlyBytes(t *testing.T) {
	leakCheck(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nhello")
		io.Copy(io.Discard, c)
	}()
	c, err := Dial(context.Background(), "tcp://example.invalid:1883", DialOptions{Proxy: "http://" + l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Errorf("early bytes: %q, %v", got, err)
	}
	c.Close()
	<-done
}

// TestDialContextCancel: a proxy that accepts and never answers does not
// hold Dial past its context.
func TestDialContextCancel(t *testing.T) {
	leakCheck(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn)
	go func() {
		defer close(conns)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c // never answers
		}
	}()
	defer func() {
		l.Close()
		for c := range conns {
			c.Close()
		}
	}()
	for _, proxy := range []string{"http://", "socks5://"} {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := Dial(ctx, "tcp://example.invalid:1883", DialOptions{Proxy: proxy + l.Addr().String()})
			errc <- err
		}()
		c := <-conns // the proxy has the connection: Dial waits for its answer
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("%s proxy: Dial returned %v, want context.Canceled", proxy, err)
		}
		c.Close()
	}
}

// TestDialWebSocketNeedsMQTT: a server that does not select "mqtt" is
// refused by the dialer.
func TestDialWebSocketNeedsMQTT(t *testing.T) {
	leakCheck(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil) // selects no subprotocol
		if err != nil {
			return
		}
		ws.Read(r.Context())
		ws.CloseNow()
	})}
	go srv.Serve(l)
	defer srv.Close()
	_, err = Dial(context.Background(), "ws://"+l.Addr().String(), DialOptions{})
	if err == nil || !strings.Contains(err.Error(), `did not select the subprotocol "mqtt"`) {
		t.Errorf("Dial: %v, want a subprotocol error", err)
	}
}

// TestDialWebSocketHeader: DialOptions.Header reaches the handshake.
func TestDialWebSocketHeader(t *testing.T) {
	leakCheck(t)
	var got atomic.Value
	l := listenWS(t, WSOptions{CheckOrigin: func(r *http.Request) bool {
		got.Store(r.Header.Get("Authorization"))
		return true
	}})
	hdr := http.Header{"Authorization": {"Bearer t0ken"}}
	if err := dialExchange(t, l, "ws://"+l.Addr().String(), DialOptions{Header: hdr}); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "Bearer t0ken" {
		t.Errorf("Authorization header at the server: %v", got.Load())
	}
	l.Close()
}
