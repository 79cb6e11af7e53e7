package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The WebSocket subprotocol of MQTT. [v3 MQTT-6.0.0-3] [v5 MQTT-6.0.0-3]
// a client offers it; [v3 MQTT-6.0.0-4] [v5 MQTT-6.0.0-4] the server
// selects it.
const subprotocolMQTT = "mqtt"

// subprotocolMQTT31 is what MQTT 3.1 era clients (older MQTT.js and Paho
// releases) offer instead of "mqtt".
const subprotocolMQTT31 = "mqttv3.1"

// DefaultWSPath is the HTTP path a WebSocket listener serves by default.
const DefaultWSPath = "/mqtt"

// WSOptions configures ListenWebSocket. The zero value serves plain ws on
// /mqtt with the subprotocols "mqtt" and "mqttv3.1", from any origin.
type WSOptions struct {
	// Path is the one HTTP path served; other paths get 404. Default "/mqtt".
	Path string
	// TLS, if set, makes the listener serve wss (HTTPS); nil serves ws.
	TLS *tls.Config
	// Subprotocols are the WebSocket subprotocols accepted, in order of
	// preference. Default: "mqtt", then "mqttv3.1" (which MQTT.js and Paho
	// send for MQTT 3.1). A handshake offering none of them is refused
	// with 400 Bad Request.
	Subprotocols []string
	// ReadLimit caps the size of one incoming WebSocket message in bytes;
	// a larger message closes the connection with status 1009. 0 means no
	// limit: the MQTT layer enforces its maximum packet size on the byte
	// stream, and a packet may span several messages anyway.
	ReadLimit int64
	// CheckOrigin decides whether a handshake's Origin is acceptable; a
	// refused handshake gets 403 Forbidden. nil accepts every origin (MQTT
	// clients are rarely browsers on other sites; set it if they are).
	CheckOrigin func(r *http.Request) bool
}

// ListenWebSocket listens on the TCP address addr and serves MQTT over
// WebSocket (RFC 6455; MQTT 3.1.1 and 5.0 chapter 6). Each accepted
// connection is a net.Conn carrying the MQTT byte stream: writes go out as
// binary messages, and reads return the payload bytes of incoming binary
// messages in order, with no regard to message boundaries, since an MQTT
// packet may span messages and a message may hold several packets.
//
// The HTTP side answers 404 for a path other than opts.Path, 426 Upgrade
// Required for a request that is not a WebSocket upgrade, 403 when
// CheckOrigin refuses, and 400 when the client does not offer one of the
// accepted subprotocols: the spec has the client offer "mqtt" and the
// server select it, so a handshake without it is refused rather than
// completed without a subprotocol.
//
// Connections report the real client address as RemoteAddr. Deadlines work
// as on TCP except for one thing inherited from the WebSocket library: a
// deadline that expires while a Read or Write is blocked closes the
// WebSocket connection (the call returns a timeout error). That is what a
// keepalive wants; do not use short deadlines for polling.
//
// Close stops the HTTP server, closes every WebSocket connection the
// listener handed out (with status 1001 going away; http.Server.Shutdown
// would not, since they are hijacked) and makes Accept return an error
// wrapping net.ErrClosed.
//
// Closing a connection runs the WebSocket close handshake but waits at
// most 2 seconds for the peer's close frame before closing the network
// connection anyway.
func ListenWebSocket(addr string, opts WSOptions) (net.Listener, error) {
	if opts.Path == "" {
		opts.Path = DefaultWSPath
	}
	if !strings.HasPrefix(opts.Path, "/") {
		return nil, errors.New("transport: WebSocket path must start with /")
	}
	if len(opts.Subprotocols) == 0 {
		opts.Subprotocols = []string{subprotocolMQTT, subprotocolMQTT31}
	}
	var tlsCfg *tls.Config
	if opts.TLS != nil {
		if err := checkServerTLS(opts.TLS); err != nil {
			return nil, err
		}
		tlsCfg = opts.TLS.Clone()
		// WebSocket upgrades are HTTP/1.1 only.
		tlsCfg.NextProtos = []string{"http/1.1"}
	}
	ln, err := ListenTCP(addr)
	if err != nil {
		return nil, err
	}
	l := &wsListener{
		addr:      ln.Addr(),
		opts:      opts,
		conns:     make(chan net.Conn),
		closed:    make(chan struct{}),
		serveDone: make(chan struct{}),
		live:      make(map[*wsConn]struct{}),
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		// Failed handshakes and probes are the client's problem; the
		// broker has no use for the server's log lines about them.
		ErrorLog: log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
	}
	go func() {
		l.serveErr = l.srv.Serve(ln)
		close(l.serveDone)
	}()
	return l, nil
}

type rawConnKey struct{}

// wsListener is the net.Listener of ListenWebSocket: an http.Server whose
// handler upgrades requests and hands the connections to Accept.
type wsListener struct {
	addr net.Addr
	opts WSOptions
	srv  *http.Server

	conns     chan net.Conn // unbuffered: the handler waits for Accept
	closed    chan struct{}
	closeOnce sync.Once
	serveDone chan struct{} // closed when srv.Serve has returned
	serveErr  error         // set before serveDone is closed

	mu       sync.Mutex
	isClosed bool
	live     map[*wsConn]struct{} // connections handed out and not closed
	handlers sync.WaitGroup       // ServeHTTP calls in progress
}

func (l *wsListener) Addr() net.Addr { return l.addr }

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, l.opError("accept", net.ErrClosed)
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, l.opError("accept", net.ErrClosed)
	case <-l.serveDone:
		select {
		case <-l.closed:
			return nil, l.opError("accept", net.ErrClosed)
		default:
			// The HTTP server stopped on its own (its listener failed).
			return nil, l.opError("accept", l.serveErr)
		}
	}
}

func (l *wsListener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: l.addr, Err: err}
}

func (l *wsListener) Close() error {
	first := false
	l.closeOnce.Do(func() { first = true })
	if !first {
		return l.opError("close", net.ErrClosed)
	}
	l.mu.Lock()
	l.isClosed = true
	close(l.closed) // under mu: no handler registers after this
	l.mu.Unlock()

	err := l.srv.Close() // closes the TCP listener and unhijacked conns
	<-l.serveDone
	l.handlers.Wait() // handlers blocked handing a conn over see l.closed

	l.mu.Lock()
	live := make([]*wsConn, 0, len(l.live))
	for c := range l.live {
		live = append(live, c)
	}
	l.live = nil
	l.mu.Unlock()

	// Close the hijacked WebSocket connections, in parallel since each
	// runs a close handshake (bounded by wsCloseGrace) and a dead peer
	// must not hold up the others.
	var wg sync.WaitGroup
	for _, c := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.closeWith(websocket.StatusGoingAway, "server closing")
		}()
	}
	wg.Wait()
	return err
}

// enter registers a handler call; false once the listener is closed.
func (l *wsListener) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed {
		return false
	}
	l.handlers.Add(1)
	return true
}

// track records c as live; false once the listener is closed.
func (l *wsListener) track(c *wsConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		return false
	}
	l.live[c] = struct{}{}
	return true
}

func (l *wsListener) untrack(c *wsConn) {
	l.mu.Lock()
	if l.live != nil {
		delete(l.live, c)
	}
	l.mu.Unlock()
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !l.enter() {
		http.Error(w, "server closing", http.StatusServiceUnavailable)
		return
	}
	defer l.handlers.Done()

	if r.URL.Path != l.opts.Path {
		http.NotFound(w, r)
		return
	}
	if !isWebSocketUpgrade(r) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "MQTT over WebSocket: this endpoint needs a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	if l.opts.CheckOrigin != nil && !l.opts.CheckOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	// [v3 MQTT-6.0.0-4] [v5 MQTT-6.0.0-4] The server selects "mqtt". A
	// client that offers none of the accepted subprotocols broke
	// [v3 MQTT-6.0.0-3] [v5 MQTT-6.0.0-3]; refusing it is clearer than
	// an upgrade without a subprotocol, which the client would then have
	// to close.
	proto := selectSubprotocol(r, l.opts.Subprotocols)
	if proto == "" {
		http.Error(w, `MQTT over WebSocket needs the WebSocket subprotocol "mqtt"`, http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{proto},
		InsecureSkipVerify: true, // the origin was checked above
	})
	if err != nil {
		return // Accept has answered the request
	}
	raw, _ := r.Context().Value(rawConnKey{}).(net.Conn)
	c, nc := newWSConn(ws, raw, r.TLS, l.opts.ReadLimit)
	c.onClose = func() { l.untrack(c) }
	if !l.track(c) {
		c.closeWith(websocket.StatusGoingAway, "server closing")
		return
	}
	select {
	case l.conns <- nc:
	case <-l.closed:
		// Close closes c: it is tracked.
	}
}

// isWebSocketUpgrade reports whether r asks for a WebSocket upgrade.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// selectSubprotocol returns the first of accepted (in the server's order
// of preference) that the client offers, in the client's spelling, or "".
func selectSubprotocol(r *http.Request, accepted []string) string {
	var offered []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				offered = append(offered, t)
			}
		}
	}
	for _, a := range accepted {
		for _, o := range offered {
			if strings.EqualFold(a, o) {
				return o
			}
		}
	}
	return ""
}

// wsConn is an MQTT-over-WebSocket connection: the library's net.Conn
// adapter (binary messages, [v3 MQTT-6.0.0-1] [v5 MQTT-6.0.0-1]: a text
// message closes the connection with status 1003; [v3 MQTT-6.0.0-2] [v5 MQTT-6.0.0-2] a
// byte stream across message boundaries) with the real addresses, errors
// that say "timeout" on a deadline and "closed" after Close, and a hook
// that tells the listener when the connection is gone.
type wsConn struct {
	net.Conn
	ws            *websocket.Conn
	raw           net.Conn // the TCP connection underneath, if known
	local, remote net.Addr

	rd, wd    wsDeadline
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	onClose   func()
}

// wssConn is a wsConn over TLS; ConnectionState and PeerCommonName see
// through it.
type wssConn struct {
	*wsConn
	state tls.ConnectionState
}

// ConnectionState returns the TLS state of the underlying connection.
func (c *wssConn) ConnectionState() tls.ConnectionState { return c.state }

// newWSConn adapts ws to a net.Conn. raw, if known, is the network
// connection underneath, giving the addresses; state, if not nil, makes
// the net.Conn returned a *wssConn around the *wsConn returned.
func newWSConn(ws *websocket.Conn, raw net.Conn, state *tls.ConnectionState, readLimit int64) (*wsConn, net.Conn) {
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	if readLimit > 0 {
		ws.SetReadLimit(readLimit) // NetConn lifted the library's default
	}
	c := &wsConn{Conn: nc, ws: ws, raw: raw, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	c.rd.kill, c.wd.kill = ws.CloseNow, ws.CloseNow
	if raw != nil {
		c.local, c.remote = raw.LocalAddr(), raw.RemoteAddr()
		if tc, ok := raw.(*tls.Conn); ok {
			// Forcing a close must not wait to send a close_notify.
			c.raw = tc.NetConn()
		}
	}
	if state != nil {
		return c, &wssConn{wsConn: c, state: *state}
	}
	return c, c
}

func (c *wsConn) LocalAddr() net.Addr  { return c.local }
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

func (c *wsConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("read", net.ErrClosed)
	}
	if err := c.rd.begin(); err != nil {
		return 0, c.opError("read", err)
	}
	n, err := c.Conn.Read(p)
	expired := c.rd.end()
	if err != nil {
		err = c.mapError("read", err, expired)
	}
	return n, err
}

func (c *wsConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	if err := c.wd.begin(); err != nil {
		return 0, c.opError("write", err)
	}
	n, err := c.Conn.Write(p)
	expired := c.wd.end()
	if err != nil {
		err = c.mapError("write", err, expired)
	}
	return n, err
}

// mapError turns the library's errors into the ones a net.Conn user
// checks for: net.ErrClosed after Close, a timeout (os.ErrDeadlineExceeded)
// when the deadline expired, io.EOF as is.
func (c *wsConn) mapError(op string, err error, expired bool) error {
	switch {
	case c.closed.Load():
		return c.opError(op, net.ErrClosed)
	case err == io.EOF:
		return err
	case expired:
		return c.opError(op, os.ErrDeadlineExceeded)
	}
	return c.opError(op, err)
}

func (c *wsConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "websocket", Source: c.local, Addr: c.remote, Err: err}
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.rd.set(t)
	return nil
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.wd.set(t)
	return nil
}

// wsDeadline is the read or the write deadline of a wsConn. The library's
// adapter has deadlines too, but its timer can race with resetting them
// (a deadline set in the past and cleared at once may stay expired), so
// the wrapper keeps its own and never sets the adapter's: a call made
// after the deadline fails at once without touching the connection; a
// deadline that expires during a call interrupts it the only way the
// library allows, by closing the connection (as its own deadlines do).
type wsDeadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	gen     uint64
	expired bool
	active  int          // calls in progress
	kill    func() error // closes the connection under a blocked call
}

// begin registers a call, or returns os.ErrDeadlineExceeded.
func (d *wsDeadline) begin() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.expired {
		return os.ErrDeadlineExceeded
	}
	d.active++
	return nil
}

// end unregisters a call and reports whether the deadline had expired.
func (d *wsDeadline) end() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	return d.expired
}

func (d *wsDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	d.expired = false
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		d.expireLocked()
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			d.expireLocked()
		}
	})
}

func (d *wsDeadline) expireLocked() {
	d.expired = true
	if d.active > 0 {
		go d.kill() // not under d.mu: closing waits for the blocked call
	}
}

func (d *wsDeadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// wsCloseGrace bounds the close handshake: how long Close waits for the
// peer's close frame before it closes the network connection anyway. The
// library alone would wait up to 5s to send and 5s more to hear back; a
// peer that is reading (as every MQTT client is) answers within a round
// trip, and a broker must not spend seconds on one that is not.
const wsCloseGrace = 2 * time.Second

// Close runs the WebSocket close handshake with status 1000 (normal
// closure), waiting at most wsCloseGrace for the peer, and closes the
// connection. Pending Reads and Writes return an error wrapping
// net.ErrClosed.
func (c *wsConn) Close() error {
	return c.closeWith(websocket.StatusNormalClosure, "")
}

func (c *wsConn) closeWith(code websocket.StatusCode, reason string) error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.closed.Store(true)
		c.rd.stop()
		c.wd.stop()
		var forced atomic.Bool
		if c.raw != nil {
			t := time.AfterFunc(wsCloseGrace, func() {
				forced.Store(true)
				c.raw.Close()
			})
			defer t.Stop()
		}
		// Send the close frame with our status first; the adapter's Close
		// then only stops its timers and cancels pending calls.
		err := c.ws.Close(code, reason)
		c.Conn.Close()
		if err != nil && !errors.Is(err, net.ErrClosed) && !forced.Load() {
			c.closeErr = c.opError("close", err)
		}
		if c.onClose != nil {
			c.onClose()
		}
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return c.closeErr
}
