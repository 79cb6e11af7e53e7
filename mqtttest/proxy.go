package mqtttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Direction is one way through a CutProxy.
type Direction int

const (
	// ClientToServer is from the connecting side to the target.
	ClientToServer Direction = iota
	// ServerToClient is from the target back to the connecting side.
	ServerToClient
)

func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client→server"
	case ServerToClient:
		return "server→client"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ProxyMode is what a CutProxy does when its trigger fires.
type ProxyMode int

const (
	// Pass forwards every byte and only counts them; no trigger.
	Pass ProxyMode = iota
	// Cut ends the connection at the trigger: neither side gets another
	// byte, and both see the connection close (a FIN: end of stream).
	Cut
	// BlackHole keeps both sides of the connection open at the trigger
	// but discards every byte from then on, in both directions, and hides
	// a close by either side from the other: a half-open peer, as after a
	// network failure.
	BlackHole
)

func (m ProxyMode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Cut:
		return "cut"
	case BlackHole:
		return "black hole"
	}
	return fmt.Sprintf("ProxyMode(%d)", int(m))
}

// CutProxyConfig configures StartCutProxy. Only Target is required: the
// zero value of the rest forwards everything and counts.
type CutProxyConfig struct {
	// Target is the "host:port" the proxy connects each client to.
	Target string
	// Mode is what happens at the trigger. Default Pass (no trigger).
	Mode ProxyMode
	// Conn is the connection the trigger applies to, counted from 1 in
	// the order the proxy accepted them; 0 means 1. Other connections pass
	// untouched.
	Conn int
	// Dir and After place the trigger: it fires when, in direction Dir,
	// After bytes have been forwarded and a further byte arrives. Exactly
	// After bytes pass in Dir; that byte and everything after it are
	// dropped. After 0 fires on the first byte. From the trigger on, the
	// other direction is stopped too: an answer to the bytes before the
	// trigger passes only if it arrived before the trigger did. (A client
	// that waits for each acknowledgement before it sends on, as MQTT
	// clients do for CONNACK, gets it.) A connection that never carries
	// more than After bytes in Dir passes untouched.
	Dir   Direction
	After int64
}

// ProxyConnStats counts one connection through a CutProxy.
type ProxyConnStats struct {
	// Forwarded counts the bytes passed on in each Direction, and Dropped
	// those received but not passed on (past a cut, into a black hole).
	Forwarded, Dropped [2]int64
	// Cut and BlackHole tell whether the connection was cut or is a black
	// hole, by the trigger or by CutNow / BlackHoleNow.
	Cut, BlackHole bool
	// DialErr is why the proxy could not connect to the target (the
	// client's connection was then closed).
	DialErr error
}

// CutProxy is a loopback TCP proxy started by StartCutProxy.
type CutProxy struct {
	// Addr is where clients connect, "127.0.0.1:port"; URL is "tcp://" +
	// Addr.
	Addr, URL string

	cfg       CutProxyConfig
	l         net.Listener
	triggered chan struct{}
	wg        sync.WaitGroup

	mu     sync.Mutex
	conns  []*proxyConn
	closed bool
	refuse bool
}

// StartCutProxy listens on a free 127.0.0.1 port and forwards each
// connection to cfg.Target, both ways, until the test ends, when it closes
// every connection and checks that its goroutines have ended. With
// cfg.Mode Cut or BlackHole, the k-th connection (cfg.Conn) is cut or
// black-holed after cfg.After bytes in direction cfg.Dir; so a test can
// break an exchange at every byte position by running it once per value
// of After, learning the length from a Pass run's Conns.
func StartCutProxy(t testing.TB, cfg CutProxyConfig) *CutProxy {
	t.Helper()
	switch {
	case cfg.Target == "":
		t.Fatalf("mqtttest: CutProxyConfig.Target is empty: set the host:port to forward to")
	case cfg.Mode < Pass || cfg.Mode > BlackHole:
		t.Fatalf("mqtttest: CutProxyConfig.Mode %v is not Pass, Cut or BlackHole", cfg.Mode)
	case cfg.Dir != ClientToServer && cfg.Dir != ServerToClient:
		t.Fatalf("mqtttest: CutProxyConfig.Dir %v is not ClientToServer or ServerToClient", cfg.Dir)
	case cfg.After < 0:
		t.Fatalf("mqtttest: CutProxyConfig.After is %d: it counts bytes, 0 or more", cfg.After)
	case cfg.Conn < 0:
		t.Fatalf("mqtttest: CutProxyConfig.Conn is %d: it counts connections from 1 (0 means 1)", cfg.Conn)
	}
	if cfg.Conn == 0 {
		cfg.Conn = 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: StartCutProxy: listening on 127.0.0.1: %v", err)
	}
	p := &CutProxy{Addr: l.Addr().String(), cfg: cfg, l: l, triggered: make(chan struct{})}
	p.URL = "tcp://" + p.Addr
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.close()
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(DefaultTimeout):
			t.Errorf("mqtttest: CutProxy goroutines still run %v after it closed", DefaultTimeout)
		}
	})
	return p
}

// Triggered is closed once the configured trigger has fired.
func (p *CutProxy) Triggered() <-chan struct{} { return p.triggered }

// Conns returns the counts of every connection accepted so far, in order
// (the k-th connection is Conns()[k-1]).
func (p *CutProxy) Conns() []ProxyConnStats {
	p.mu.Lock()
	conns := append([]*proxyConn(nil), p.conns...)
	p.mu.Unlock()
	out := make([]ProxyConnStats, len(conns))
	for i, c := range conns {
		c.mu.Lock()
		out[i] = ProxyConnStats{Forwarded: c.fwd, Dropped: c.dropped, Cut: c.cut, BlackHole: c.hole, DialErr: c.dialErr}
		c.mu.Unlock()
	}
	return out
}

// CutNow cuts every connection open now, as a Cut trigger would. Later
// connections pass.
func (p *CutProxy) CutNow() {
	for _, c := range p.open() {
		c.mu.Lock()
		fire := !c.cut && !c.hole
		c.cut = true
		c.mu.Unlock()
		if fire {
			c.shutdown()
		}
	}
}

// BlackHoleNow turns every connection open now into a black hole, as a
// BlackHole trigger would. Later connections pass.
func (p *CutProxy) BlackHoleNow() {
	for _, c := range p.open() {
		c.mu.Lock()
		if !c.cut {
			c.hole = true
		}
		c.mu.Unlock()
	}
}

// Refuse makes the proxy, while on is true, close every new connection
// at once, before any byte and without connecting to the target: to the
// client the server is down. Refused connections are not counted: Conns
// and CutProxyConfig.Conn number only those forwarded. Connections open
// already are left alone (CutNow ends them).
func (p *CutProxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

func (p *CutProxy) open() []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*proxyConn(nil), p.conns...)
}

func (p *CutProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.l.Close()
	for _, c := range conns {
		c.closeAll()
	}
}

func (p *CutProxy) accept() {
	defer p.wg.Done()
	for n := 1; ; n++ {
		client, err := p.l.Accept()
		if err != nil {
			return // closed by the cleanup
		}
		c := &proxyConn{p: p, client: client, armed: p.cfg.Mode != Pass && n == p.cfg.Conn}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			return
		}
		if p.refuse {
			p.mu.Unlock()
			client.Close()
			n-- // not counted
			continue
		}
		p.conns = append(p.conns, c)
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run()
	}
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	p      *CutProxy
	client net.Conn

	mu      sync.Mutex
	server  net.Conn // nil until dialed
	armed   bool     // the trigger applies and has not fired
	cut     bool
	hole    bool
	done    bool // closeAll ran
	fwd     [2]int64
	dropped [2]int64
	dialErr error
}

func (c *proxyConn) run() {
	defer c.p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", c.p.cfg.Target)
	cancel()
	c.mu.Lock()
	if err != nil || c.done {
		if err == nil {
			server.Close()
			err = errors.New("proxy closed")
		}
		c.dialErr = err
		c.mu.Unlock()
		c.client.Close()
		return
	}
	c.server = server
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.copy(ClientToServer, c.client, server) }()
	go func() { defer wg.Done(); c.copy(ServerToClient, server, c.client) }()
	wg.Wait()
	c.closeAll()
}

// copy forwards src to dst in direction d until src ends.
func (c *proxyConn) copy(d Direction, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b, fired := c.account(d, buf[:n])
			if len(b) > 0 {
				if _, werr := dst.Write(b); werr != nil && !fired {
					c.closeAll() // the destination is gone: end the source too
				}
			}
			if fired {
				c.fire()
			}
		}
		if err != nil {
			c.mu.Lock()
			hole := c.hole
			c.mu.Unlock()
			if !hole {
				// Pass the end of stream on (a half-close, so what the
				// other direction still carries arrives). In a black hole
				// the other side must not learn of it.
				closeWrite(dst)
			}
			return
		}
	}
}

// account counts b, read in direction d, and returns the part of it to
// forward, and whether this read fired the trigger.
func (c *proxyConn) account(d Direction, b []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut || c.hole {
		c.dropped[d] += int64(len(b))
		return nil, false
	}
	fired := false
	if c.armed && d == c.p.cfg.Dir {
		if room := c.p.cfg.After - c.fwd[d]; int64(len(b)) > room {
			c.dropped[d] += int64(len(b)) - room
			b = b[:room]
			fired = true
			c.armed = false
			switch c.p.cfg.Mode {
			case Cut:
				c.cut = true // the other direction stops at once
			case BlackHole:
				c.hole = true
			}
		}
	}
	c.fwd[d] += int64(len(b))
	return b, fired
}

// fire acts on the trigger, once the bytes before it are written.
func (c *proxyConn) fire() {
	if c.p.cfg.Mode == Cut {
		c.shutdown()
	}
	close(c.p.triggered)
}

// shutdown ends both sides with a FIN, so each peer reads every byte
// forwarded before it, then the end of stream; the copy loops drain what
// the peers still send until they close, or for DefaultTimeout at most.
// (Closing a socket with unread input would send a reset instead, which
// may destroy bytes the peer has not read yet.)
func (c *proxyConn) shutdown() {
	c.mu.Lock()
	c.cut = true
	server := c.server
	c.mu.Unlock()
	deadline := time.Now().Add(DefaultTimeout)
	for _, nc := range []net.Conn{c.client, server} {
		if nc != nil {
			closeWrite(nc)
			nc.SetReadDeadline(deadline)
		}
	}
}

func (c *proxyConn) closeAll() {
	c.mu.Lock()
	c.done = true
	server := c.server
	c.mu.Unlock()
	c.client.Close()
	if server != nil {
		server.Close()
	}
}

func closeWrite(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	nc.Close()
}

// Traffic returns the bytes forwarded so far over every connection, in
// each direction: client→server (sent by the connecting side) and
// server→client (received by it).
func (p *CutProxy) Traffic() (sent, received int64) {
	for _, c := range p.Conns() {
		sent += c.Forwarded[ClientToServer]
		received += c.Forwarded[ServerToClient]
	}
	return sent, received
}
