package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// Defaults of the Server fields left zero.
const (
	DefaultMaxPacketSize  = 16 << 20
	DefaultConnectTimeout = 10 * time.Second
	DefaultDialTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Server is an MQTT proxy: every client connection it accepts is
// forwarded to an upstream broker, packet by packet, through the Filters.
// The zero value is not usable only because Upstreams is empty; every
// other field has a default. A Server must not be copied or changed once
// it serves.
type Server struct {
	// Upstreams are the brokers' URLs (any scheme package transport
	// dials: tcp://, mqtt://, tls://, mqtts://, ssl://, ws://, wss://,
	// unix://). Each client connection goes to the one that answered
	// last, and fails over to the next when it cannot be reached.
	Upstreams []string
	// Dial configures the upstream connections: TLS, WebSocket headers,
	// a SOCKS5 or HTTP CONNECT proxy.
	Dial transport.DialOptions
	// Filters see every packet in both directions, in this order.
	Filters []Filter
	// MaxPacketSize bounds the packets read from either side, fixed
	// header included (and so the memory a connection holds); a larger
	// one closes the connection with 0x95 Packet too large. It is
	// announced to MQTT 5 peers as their Maximum Packet Size: to the
	// upstream in the CONNECT, to the client in the CONNACK, each the
	// lower of it and the other side's. Default DefaultMaxPacketSize.
	MaxPacketSize uint32
	// ConnectTimeout is the time a client has to send its CONNECT, and
	// the upstream to answer it. Default 10s.
	ConnectTimeout time.Duration
	// DialTimeout bounds the attempts to reach an upstream for one
	// client, every upstream tried in turn with backoff between rounds
	// (BackoffMin doubling to BackoffMax, with jitter); a client that
	// finds none gets CONNACK 0x88 Server unavailable (3: Server
	// unavailable in 3.1.1). Default 10s.
	DialTimeout            time.Duration
	BackoffMin, BackoffMax time.Duration
	// WriteTimeout is how long a write to either side may block (a
	// reader that does not read) before the connection is closed.
	// Default 30s.
	WriteTimeout time.Duration
	// Logger receives connection events (debug) and errors (warn).
	// Default: slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}
	closed    bool
	wg        sync.WaitGroup // connection goroutines
	nextID    atomic.Uint64
	preferred atomic.Int32 // index of the upstream that answered last
}

// Validate reports the first field that makes the Server unusable,
// including a filter whose own Validate method fails.
func (s *Server) Validate() error {
	if len(s.Upstreams) == 0 {
		return errors.New("proxy: Upstreams is empty: give at least one broker URL such as tcp://127.0.0.1:1883")
	}
	for i, u := range s.Upstreams {
		if err := ValidateURL(u); err != nil {
			return fmt.Errorf("proxy: Upstreams[%d]: %w", i, err)
		}
	}
	if s.MaxPacketSize != 0 && s.MaxPacketSize < 64 {
		return fmt.Errorf("proxy: MaxPacketSize %d is below 64 bytes: raise it (or 0 for the default %d)", s.MaxPacketSize, DefaultMaxPacketSize)
	}
	for i, f := range s.Filters {
		if f == nil {
			return fmt.Errorf("proxy: Filters[%d] is nil", i)
		}
		if v, ok := f.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("proxy: Filters[%d] (%T): %w", i, f, err)
			}
		}
	}
	return nil
}

// ValidateURL checks that u is a URL package transport can dial or listen on.
func ValidateURL(u string) error {
	pu, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", u, err)
	}
	switch pu.Scheme {
	case "tcp", "mqtt", "tls", "ssl", "mqtts", "ws", "wss":
		if pu.Host == "" {
			return fmt.Errorf("%q has no host: write %s://HOST:PORT", u, pu.Scheme)
		}
	case "unix":
		if pu.Path == "" && pu.Opaque == "" {
			return fmt.Errorf("%q has no path: write unix:///PATH", u)
		}
	default:
		return fmt.Errorf("%q: unknown scheme %q: use tcp, mqtt, tls, mqtts, ssl, ws, wss or unix", u, pu.Scheme)
	}
	return nil
}

func (s *Server) maxPacket() uint32 {
	if s.MaxPacketSize == 0 {
		return DefaultMaxPacketSize
	}
	return s.MaxPacketSize
}

func durOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Listen opens a listener for a URL: tcp://host:port (or host:port),
// tls:// (mqtts://, ssl://) with tlsCfg, ws://host:port/path, wss:// with
// tlsCfg, unix:///path.
func Listen(rawURL string, tlsCfg *tls.Config) (net.Listener, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "tcp://" + rawURL
	}
	if err := ValidateURL(rawURL); err != nil {
		return nil, err
	}
	u, _ := url.Parse(rawURL)
	needTLS := func() error {
		if tlsCfg == nil {
			return fmt.Errorf("%q: a %s listener needs a certificate: give a TLS configuration (tern proxy: tls.cert_file and tls.key_file)", rawURL, u.Scheme)
		}
		return nil
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		return transport.ListenTCP(u.Host)
	case "tls", "ssl", "mqtts":
		if err := needTLS(); err != nil {
			return nil, err
		}
		return transport.ListenTLS(u.Host, tlsCfg)
	case "ws":
		return transport.ListenWebSocket(u.Host, transport.WSOptions{Path: u.Path})
	case "wss":
		if err := needTLS(); err != nil {
			return nil, err
		}
		return transport.ListenWebSocket(u.Host, transport.WSOptions{Path: u.Path, TLS: tlsCfg})
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		return transport.ListenUnix(p)
	}
	return nil, fmt.Errorf("%q: cannot listen on scheme %q", rawURL, u.Scheme)
}

// ListenAndServe listens on rawURL (see Listen) and serves it.
func (s *Server) ListenAndServe(rawURL string, tlsCfg *tls.Config) error {
	if err := s.Validate(); err != nil {
		return err
	}
	l, err := Listen(rawURL, tlsCfg)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l and proxies each until Shutdown or
// Close, then returns ErrServerClosed. It closes l. Serve may be called
// for several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	if err := s.Validate(); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.ErrUnexpectedEOF) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			return err
		}
		delay = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// newConn registers a connection, or returns nil once the server is closed.
func (s *Server) newConn(nc net.Conn) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c := newConn(s, nc)
	if s.conns == nil {
		s.conns = map[*Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *Server) removeConn(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Conns returns the number of client connections being proxied.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting connections, ends every proxied connection
// (MQTT 5 clients get DISCONNECT 0x8B Server shutting down; the upstream
// connections are closed, so brokers publish the clients' wills) and
// waits until their goroutines have ended or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop(packet.ServerShuttingDown)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close is Shutdown without waiting for the connections to end.
func (s *Server) Close() error {
	s.stop(packet.ServerShuttingDown)
	return nil
}

func (s *Server) stop(code packet.ReasonCode) {
	s.mu.Lock()
	s.closed = true
	ls := make([]net.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	cs := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.end(endServer, code, "proxy shutting down")
	}
}

// dialUpstream reaches an upstream that answers: the preferred one
// first, then each other in turn, with backoff between rounds, until ctx
// ends or DialTimeout passes. try is called with each connection made and
// its URL; an error from it (no answer to the CONNECT) counts as a failed
// attempt, and try must then have closed the connection.
func (s *Server) dialUpstream(ctx context.Context, try func(ctx context.Context, nc net.Conn, u string) error) error {
	ctx, cancel := context.WithTimeout(ctx, durOr(s.DialTimeout, DefaultDialTimeout))
	defer cancel()
	bmin, bmax := durOr(s.BackoffMin, DefaultBackoffMin), durOr(s.BackoffMax, DefaultBackoffMax)
	wait := bmin
	n := len(s.Upstreams)
	var lastErr error
	for {
		start := int(s.preferred.Load())
		for i := range n {
			idx := (start + i) % n
			u := s.Upstreams[idx]
			nc, err := transport.Dial(ctx, u, s.Dial)
			if err == nil {
				if err = try(ctx, nc, u); err == nil {
					if int(s.preferred.Load()) != idx {
						s.preferred.Store(int32(idx))
						s.logger().Info("proxy: upstream now preferred", "upstream", u)
					}
					return nil
				}
			}
			lastErr = err
			s.logger().Debug("proxy: upstream failed", "upstream", u, "err", err)
			if ctx.Err() != nil {
				return fmt.Errorf("no upstream reachable: %w", lastErr)
			}
		}
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("no upstream reachable: %w", lastErr)
		case <-t.C:
		}
		wait = min(2*wait, bmax)
	}
}
