package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/proxy"
)

// DialOptions configures Dial. The zero value dials directly, verifies
// servers against the system roots and sends no extra headers.
type DialOptions struct {
	// TLS configures ssl://, tls://, mqtts:// and wss:// connections; nil
	// means a default configuration. ServerName defaults to the URL's host.
	TLS *tls.Config
	// Proxy, if set, is the proxy every TCP connection goes through:
	// "socks5://[user:pass@]host:port" (SOCKS5, the proxy resolves names;
	// "socks5h://" is accepted as a synonym) or "http://[user:pass@]host:port"
	// (HTTP CONNECT, with basic proxy authentication if user is set).
	// unix:// URLs cannot use a proxy.
	Proxy string
	// Header holds extra HTTP headers for the WebSocket handshake of ws://
	// and wss:// (e.g. Authorization, Cookie); ignored for other schemes.
	Header http.Header
}

// Default ports of the URL schemes Dial accepts.
const (
	DefaultPortTCP = "1883"
	DefaultPortTLS = "8883"
	DefaultPortWS  = "80"
	DefaultPortWSS = "443"
)

// Dial connects to the MQTT server at rawURL and returns the connection
// ready for MQTT bytes. Schemes:
//
//	tcp://host[:port], mqtt://host[:port]               TCP, port 1883
//	ssl://, tls://, mqtts://host[:port]                 TLS, port 8883
//	ws://host[:port][/path], wss://host[:port][/path]   WebSocket, ports 80/443
//	unix:///path/to/socket                              Unix domain socket
//
// A WebSocket URL without a path uses /mqtt. WebSocket connections offer
// the subprotocol "mqtt" and fail if the server selects another or none.
// ctx bounds the whole dial, proxy and handshakes included; it does not
// affect the connection once Dial has returned.
func Dial(ctx context.Context, rawURL string, opts DialOptions) (net.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("transport: dial: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt":
		d, err := proxyDialer(opts.Proxy)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, "tcp", hostPort(u, DefaultPortTCP))
	case "ssl", "tls", "mqtts":
		d, err := proxyDialer(opts.Proxy)
		if err != nil {
			return nil, err
		}
		return dialTLS(ctx, d, hostPort(u, DefaultPortTLS), opts.TLS)
	case "ws", "wss":
		return dialWebSocket(ctx, u, opts)
	case "unix":
		if opts.Proxy != "" {
			return nil, errors.New("transport: dial: a unix socket cannot be reached through a proxy")
		}
		path := u.Host + u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return nil, fmt.Errorf("transport: dial %q: no socket path", rawURL)
		}
		return dialer().DialContext(ctx, "unix", path)
	default:
		if u.Scheme == "" || u.Opaque != "" { // "host" or "host:port"
			return nil, fmt.Errorf("transport: dial %q: no scheme (want tcp://, ssl://, ws://, wss:// or unix://)", rawURL)
		}
		return nil, fmt.Errorf("transport: dial %q: unsupported scheme %q", rawURL, u.Scheme)
	}
}

// hostPort returns u's host and port, with the default port if u has none.
func hostPort(u *url.URL, defPort string) string {
	port := u.Port()
	if port == "" {
		port = defPort
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func dialTLS(ctx context.Context, d proxy.ContextDialer, addr string, cfg *tls.Config) (net.Conn, error) {
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg = clientTLS(cfg, addr)
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("transport: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// clientTLS returns a copy of cfg (or a new config) whose ServerName
// defaults to addr's host.
func clientTLS(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	return cfg
}

func dialWebSocket(ctx context.Context, u *url.URL, opts DialOptions) (net.Conn, error) {
	secure := strings.EqualFold(u.Scheme, "wss")
	wsURL := *u
	wsURL.Scheme = "ws"
	port := DefaultPortWS
	if secure {
		wsURL.Scheme = "wss"
		port = DefaultPortWSS
	}
	if wsURL.Path == "" {
		wsURL.Path = DefaultWSPath
	}
	d, err := proxyDialer(opts.Proxy)
	if err != nil {
		return nil, err
	}
	// The transport dials through our dialer (so the proxy applies and the
	// network connection is known) and speaks HTTP/1.1 only.
	var (
		mu  sync.Mutex
		raw net.Conn
	)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, hostPort(u, port))
			if err == nil {
				mu.Lock()
				raw = c
				mu.Unlock()
			}
			return c, err
		},
		TLSClientConfig:   clientTLS(opts.TLS, hostPort(u, port)),
		ForceAttemptHTTP2: false,
	}
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	defer tr.CloseIdleConnections()
	ws, resp, err := websocket.Dial(ctx, wsURL.String(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   opts.Header,
		Subprotocols: []string{subprotocolMQTT}, // [v3 MQTT-6.0.0-3] [v5 MQTT-6.0.0-3]
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("transport: WebSocket handshake with %s: %s", redact(&wsURL), resp.Status)
		}
		return nil, fmt.Errorf("transport: WebSocket handshake with %s: %w", redact(&wsURL), err)
	}
	if !strings.EqualFold(ws.Subprotocol(), subprotocolMQTT) {
		// [v3 MQTT-6.0.0-4] [v5 MQTT-6.0.0-4] the server must select "mqtt"; without it the
		// peer may not speak MQTT at all.
		ws.CloseNow()
		return nil, fmt.Errorf("transport: WebSocket server %s did not select the subprotocol %q (got %q)",
			redact(&wsURL), subprotocolMQTT, ws.Subprotocol())
	}
	mu.Lock()
	rc := raw
	mu.Unlock()
	_, nc := newWSConn(ws, rc, resp.TLS, 0)
	return nc, nil
}

// redact returns u as a string without its password.
func redact(u *url.URL) string { return u.Redacted() }

// proxyDialer returns the dialer that reaches TCP addresses directly or
// through the proxy at rawProxy.
func proxyDialer(rawProxy string) (proxy.ContextDialer, error) {
	direct := dialer()
	if rawProxy == "" {
		return direct, nil
	}
	pu, err := url.Parse(rawProxy)
	if err != nil {
		return nil, fmt.Errorf("transport: proxy: %w", err)
	}
	if pu.Host == "" {
		return nil, fmt.Errorf("transport: proxy %q: no host", pu.Redacted())
	}
	switch strings.ToLower(pu.Scheme) {
	case "socks5", "socks5h":
		var auth *proxy.Auth
		if pu.User != nil {
			pass, _ := pu.User.Password()
			auth = &proxy.Auth{User: pu.User.Username(), Password: pass}
		}
		d, err := proxy.SOCKS5("tcp", hostPort(pu, "1080"), auth, direct)
		if err != nil {
			return nil, fmt.Errorf("transport: proxy %s: %w", pu.Redacted(), err)
		}
		cd, ok := d.(proxy.ContextDialer)
		if !ok {
			return nil, fmt.Errorf("transport: proxy %s: SOCKS5 dialer cannot take a context", pu.Redacted())
		}
		return &socksDialer{d: cd, name: pu.Redacted()}, nil
	case "http":
		return &connectDialer{proxy: pu, addr: hostPort(pu, "80"), forward: direct}, nil
	default:
		return nil, fmt.Errorf("transport: proxy %q: unsupported scheme %q (want socks5:// or http://)", pu.Redacted(), pu.Scheme)
	}
}

// socksDialer names the proxy in errors and reports a cancelled or
// expired context as such (x/net/proxy reports an I/O timeout).
type socksDialer struct {
	d    proxy.ContextDialer
	name string
}

func (d *socksDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, addr)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("transport: SOCKS5 proxy %s: %w", d.name, err)
	}
	return c, nil
}

// connectDialer reaches addresses through an HTTP proxy's CONNECT method.
type connectDialer struct {
	proxy   *url.URL
	addr    string // the proxy's host:port
	forward proxy.ContextDialer
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

func (d *connectDialer) DialContext(ctx context.Context, network, addr string) (_ net.Conn, err error) {
	if network != "tcp" {
		return nil, fmt.Errorf("transport: HTTP proxy cannot dial network %q", network)
	}
	c, err := d.forward.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("transport: HTTP proxy %s: %w", d.proxy.Redacted(), err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	// The exchange below honours ctx: its deadline bounds it, and a
	// cancellation interrupts it.
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() && err == nil {
			err = fmt.Errorf("transport: HTTP proxy %s: %w", d.proxy.Redacted(), ctx.Err())
		}
		if err == nil {
			c.SetDeadline(time.Time{})
		}
	}()

	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if u := d.proxy.User; u != nil {
		pass, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pass))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(c); err != nil {
		return nil, d.ioError(ctx, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, d.ioError(ctx, err)
	}
	resp.Body.Close() // a 2xx CONNECT response has no body
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("transport: HTTP proxy %s refused CONNECT %s: %s", d.proxy.Redacted(), addr, resp.Status)
	}
	if br.Buffered() > 0 {
		// The tunnel's first bytes came with the response: serve them first.
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

func (d *connectDialer) ioError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("transport: HTTP proxy %s: %w", d.proxy.Redacted(), err)
}

// bufferedConn is a net.Conn whose first reads drain a bufio.Reader.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
