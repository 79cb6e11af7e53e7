package client_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
)

// httpProxy is a tiny HTTP CONNECT proxy on loopback: it records each
// CONNECT's target and Proxy-Authorization header, answers 200 and
// relays bytes both ways until either side closes.
type httpProxy struct {
	l  net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	targets []string
	auths   []string
	conns   []net.Conn
}

func startHTTPProxy(t *testing.T) *httpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &httpProxy{l: l}
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

func (p *httpProxy) url() string { return "http://" + p.l.Addr().String() }

// seen returns the CONNECT targets and authorization headers so far.
func (p *httpProxy) seen() ([]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auths...)
}

// track keeps c to be closed at the end, or closes it now if the end
// has come.
func (p *httpProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return
	}
	p.conns = append(p.conns, c)
}

func (p *httpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *httpProxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auths = append(p.auths, req.Header.Get("Proxy-Authorization"))
	p.mu.Unlock()
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	s, err := net.Dial("tcp", req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	p.track(s)
	defer s.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		io.Copy(s, br) // what the client sent after the request, then the rest
		s.Close()
		close(done)
	}()
	io.Copy(c, s)
	c.Close()
	<-done
}

// TestHTTPConnectProxy: Config.Proxy http://user:pass@host:port takes the
// connection through an HTTP CONNECT proxy, with basic proxy
// authentication, and the client works through it.
func TestHTTPConnectProxy(t *testing.T) {
	_, url := startTern(t, nil)
	p := startHTTPProxy(t)
	pu := "http://alice:s3cret@" + p.l.Addr().String()
	c := connect(t, client.Config{Servers: []string{url}, Proxy: pu})
	if _, err := c.Publish(ctx(t), &message.Message{Topic: "via/proxy", Payload: []byte("x"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	targets, auths := p.seen()
	hostport := url[strings.Index(url, "://")+3:]
	if len(targets) != 1 || targets[0] != hostport {
		t.Fatalf("proxy saw CONNECT %v, want [%s]", targets, hostport)
	}
	if auths[0] != "Basic YWxpY2U6czNjcmV0" { // base64("alice:s3cret")
		t.Fatalf("Proxy-Authorization %q", auths[0])
	}
}

// TestProxyEnvironment: with Config.Proxy empty the client takes its
// proxy from the environment as net/http does: HTTP_PROXY (or
// http_proxy) for plain schemes, then ALL_PROXY (all_proxy); HTTPS_PROXY
// only for TLS schemes; NO_PROXY (no_proxy) exempts hosts; Config.Proxy
// "direct" ignores the environment.
func TestProxyEnvironment(t *testing.T) {
	_, url := startTern(t, nil)
	vars := []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"}
	cases := []struct {
		name    string
		env     map[string]string
		proxy   string // Config.Proxy
		viaProx bool
	}{
		{"HTTP_PROXY", map[string]string{"HTTP_PROXY": "P"}, "", true},
		{"http_proxy", map[string]string{"http_proxy": "P"}, "", true},
		{"ALL_PROXY", map[string]string{"ALL_PROXY": "P"}, "", true},
		{"all_proxy", map[string]string{"all_proxy": "P"}, "", true},
		{"HTTPS_PROXY not for tcp", map[string]string{"HTTPS_PROXY": "P", "https_proxy": "P"}, "", false},
		{"NO_PROXY host", map[string]string{"HTTP_PROXY": "P", "NO_PROXY": "example.com, 127.0.0.1"}, "", false},
		{"no_proxy star", map[string]string{"HTTP_PROXY": "P", "no_proxy": "*"}, "", false},
		{"NO_PROXY other", map[string]string{"HTTP_PROXY": "P", "NO_PROXY": "example.com"}, "", true},
		{"direct", map[string]string{"HTTP_PROXY": "P", "ALL_PROXY": "P"}, "direct", false},
		{"none", nil, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startHTTPProxy(t)
			for _, k := range vars {
				t.Setenv(k, strings.ReplaceAll(tc.env[k], "P", p.url()))
			}
			c := connect(t, client.Config{Servers: []string{url}, Proxy: tc.proxy})
			if _, err := c.Publish(ctx(t), &message.Message{Topic: "env", Payload: []byte("x"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			targets, _ := p.seen()
			if got := len(targets) > 0; got != tc.viaProx {
				t.Fatalf("through the proxy: %v, want %v (CONNECTs %v)", got, tc.viaProx, targets)
			}
		})
	}
}
