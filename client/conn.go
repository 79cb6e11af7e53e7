package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/transport"
)

// conn is one network connection of the client: one reader and one writer
// goroutine; every outbound byte goes through one write path (flush,
// under wmu), which the read loop never takes.
type conn struct {
	c         *Client
	nc        net.Conn
	r         *packet.Reader
	server    string
	version   packet.Version
	keepAlive time.Duration
	maxPacket uint32 // the server's Maximum Packet Size; 0 no limit

	// Under c.mu:
	ctrl      []packet.Packet // acknowledgements, SUBSCRIBE, PINGREQ, AUTH, DISCONNECT, in order
	acks      []*ackEntry     // inbound QoS 1/2 messages awaiting their ack, in receive order
	closeNext bool            // DISCONNECT queued: close after writing it

	scratch   packet.Publish          // under c.mu: the PUBLISH being encoded (fillLocked)
	aliases   session.OutboundAliases // writer's
	inAliases session.InboundAliases  // reader's
	finished  []finished              // reader's: acknowledged publishes, to delete from the store and complete

	lastRead atomic.Int64 // UnixNano of the last packet received

	// The write path (flush), under wmu: the writer goroutine's, or a
	// one-at-a-time publisher's when the writer is idle (flushInline).
	wmu       sync.Mutex
	wbuf      []byte        // the bytes of one Write
	wdone     []*Token      // QoS 0 publishes in wbuf, completed once written
	wmarks    []sentMark    // packet identifiers given in wbuf, for the store
	lastWrite time.Time     // for the keep alive
	wdeadline time.Time     // when the write deadline was last moved
	wake      chan struct{} // cap 1: something to write
	done      chan struct{} // closed when the connection is over
	closeOnce sync.Once
	err       error // why it ended, set before done is closed
	wg        sync.WaitGroup
}

func (cn *conn) signal() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// fail ends the connection with err (the first cause wins).
func (cn *conn) fail(err error) {
	cn.closeOnce.Do(func() {
		cn.err = err
		close(cn.done)
		cn.nc.Close()
	})
}

// ackEntry is an inbound QoS 1 or 2 PUBLISH whose PUBACK or PUBREC waits
// until every delivery of it has been accepted (or acknowledged, with
// ManualAck), and until the entries before it are done.
type ackEntry struct {
	cn      *conn
	id      uint16
	qos     byte
	pending int       // deliveries not yet accepted
	follow  *ackEntry // a retransmission on a later connection waiting for this one
}

// dial opens a network connection to server.
func (c *Client) dial(ctx context.Context, server string) (net.Conn, error) {
	if c.cfg.Dial != nil {
		return c.cfg.Dial(ctx, server)
	}
	return transport.Dial(ctx, server, transport.DialOptions{TLS: c.cfg.TLS, Proxy: c.proxyFor(server)})
}

// proxyFor returns the proxy for server: Config.Proxy, or the standard
// environment variables.
func (c *Client) proxyFor(server string) string {
	switch c.cfg.Proxy {
	case "direct":
		return ""
	case "":
	default:
		return c.cfg.Proxy
	}
	u, err := url.Parse(server)
	if err != nil || u.Scheme == "unix" {
		return ""
	}
	if noProxy(u.Hostname()) {
		return ""
	}
	for _, k := range proxyVars(u.Scheme) {
		if v := os.Getenv(k); v != "" {
			return v
		}
		if v := os.Getenv(strings.ToLower(k)); v != "" {
			return v
		}
	}
	return ""
}

func proxyVars(scheme string) []string {
	switch scheme {
	case "mqtts", "tls", "ssl", "wss":
		return []string{"HTTPS_PROXY", "ALL_PROXY"}
	}
	return []string{"HTTP_PROXY", "ALL_PROXY"}
}

// noProxy reports whether NO_PROXY exempts host (a comma-separated list
// of host names, domain suffixes and "*").
func noProxy(host string) bool {
	v := os.Getenv("NO_PROXY")
	if v == "" {
		v = os.Getenv("no_proxy")
	}
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e == "*" || e == host || strings.HasSuffix(host, "."+strings.TrimPrefix(e, ".")) {
			return true
		}
		if h, _, err := net.SplitHostPort(e); err == nil && h == host {
			return true
		}
	}
	return false
}

// handshake sends CONNECT on nc and reads up to the CONNACK, running the
// enhanced authentication exchange. first says whether this is the
// client's first connection (CleanStart).
func (c *Client) handshake(ctx context.Context, nc net.Conn, server string, first bool) (*conn, *Connack, error) {
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	// Credentials are never sent before the server's certificate is
	// verified: complete the TLS handshake first.
	insecure := false
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("client: TLS handshake with %s: %w", server, err)
		}
		insecure = c.cfg.TLS != nil && c.cfg.TLS.InsecureSkipVerify
	} else if c.cfg.TLS != nil && c.cfg.TLS.InsecureSkipVerify && isTLSURL(server) {
		insecure = true
	}

	v := c.cfg.Version
	c.mu.Lock()
	clientID := c.clientID
	c.mu.Unlock()
	ka := c.cfg.KeepAlive
	cp := &packet.Connect{
		Version:    v,
		CleanStart: c.cfg.CleanStart && (first || v != packet.V5),
		KeepAlive:  uint16((ka + time.Second - 1) / time.Second),
		ClientID:   clientID,
		Username:   c.cfg.Username,
		Password:   c.cfg.Password,
	}
	if cp.ClientID == "" && (v == packet.V31 || (v == packet.V311 && !cp.CleanStart)) {
		// MQTT 3.1 needs an identifier, 3.1.1 one for a persistent
		// session [v3 MQTT-3.1.3-7]; it is kept for the reconnects.
		cp.ClientID = randomID()
		c.mu.Lock()
		c.clientID = cp.ClientID
		c.mu.Unlock()
	}
	if c.cfg.Will != nil {
		w := *c.cfg.Will
		cp.Will = &w
	}
	if v == packet.V5 {
		cp.Properties = c.cfg.Properties
		cp.Properties.SessionExpiry = c.cfg.SessionExpiry
		cp.Properties.AuthMethod, cp.Properties.AuthData = "", nil
	}
	var ex AuthExchange
	if c.cfg.Auth != nil && v == packet.V5 {
		var data []byte
		var err error
		ex, data, err = c.cfg.Auth.Begin()
		if err != nil {
			return nil, nil, fmt.Errorf("client: Config.Auth: %w", err)
		}
		cp.Properties.AuthMethod = c.cfg.Auth.Name()
		cp.Properties.AuthData = data
	}
	if c.cfg.BeforeConnect != nil {
		if err := c.cfg.BeforeConnect(ctx, cp); err != nil {
			return nil, nil, fmt.Errorf("client: Config.BeforeConnect: %w", err)
		}
	}
	if insecure && !c.cfg.AllowInsecurePassword && (cp.HasPassword()) {
		c.log.Warn("password not sent: the server's certificate is not verified (set Config.AllowInsecurePassword to send it)", "server", server)
		cp.Password, cp.PasswordFlag = nil, false
	}
	w := packet.NewWriter(nc)
	if err := w.WritePacket(cp); err != nil {
		return nil, nil, ctxErr(ctx, fmt.Errorf("client: sending CONNECT to %s: %w", server, err))
	}
	r := packet.NewReader(nc)
	r.Version = v
	r.ReuseAcks = true // what an acknowledgement leaves in a result is cloned (finishFlightLocked)
	if mp := c.cfg.Properties.MaximumPacketSize; mp > 0 && v == packet.V5 {
		r.MaxPacketSize = mp
	}
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return nil, nil, ctxErr(ctx, fmt.Errorf("client: waiting for CONNACK from %s: %w", server, err))
		}
		switch p := p.(type) {
		case *packet.Auth:
			if ex == nil || p.ReasonCode != packet.ContinueAuthentication || p.Properties.AuthMethod != cp.Properties.AuthMethod {
				return nil, nil, fmt.Errorf("client: unexpected %v from %s during CONNECT", p, server)
			}
			data, err := ex.Next(p.Properties.AuthData)
			if err != nil {
				return nil, nil, fmt.Errorf("client: authentication with %s: %w", server, err)
			}
			a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
			a.Properties.AuthMethod = cp.Properties.AuthMethod
			a.Properties.AuthData = data
			if err := w.WritePacket(a); err != nil {
				return nil, nil, ctxErr(ctx, err)
			}
		case *packet.Connack:
			ack := &Connack{SessionPresent: p.SessionPresent, ReasonCode: p.ReasonCode, Properties: p.Properties, Server: server}
			if p.ReasonCode != 0 {
				return nil, ack, &ConnectError{ReasonCode: p.ReasonCode, Version: v, Properties: p.Properties, Server: server}
			}
			if ex != nil {
				if err := ex.Done(p.Properties.AuthData); err != nil {
					return nil, nil, fmt.Errorf("client: authentication with %s: the server's final message: %w", server, err)
				}
			}
			nc.SetDeadline(time.Time{})
			cn := &conn{
				c: c, nc: nc, r: r, server: server, version: v, keepAlive: ka,
				wake: make(chan struct{}, 1), done: make(chan struct{}),
				lastWrite: time.Now(),
			}
			if v == packet.V5 {
				cn.maxPacket = p.Properties.MaximumPacketSize
				if p.Properties.Has(packet.PropServerKeepAlive) {
					cn.keepAlive = time.Duration(p.Properties.ServerKeepAlive) * time.Second
				}
				cn.aliases.Reset(p.Properties.TopicAliasMaximum)
				cn.inAliases.Reset(c.cfg.Properties.TopicAliasMaximum)
			}
			return cn, ack, nil
		default:
			return nil, nil, fmt.Errorf("client: %s sent %v before CONNACK", server, p.Type())
		}
	}
}

func isTLSURL(s string) bool {
	for _, p := range []string{"mqtts://", "tls://", "ssl://", "wss://"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ctxErr prefers the context's error when ctx ended: a deadline that cut
// a read is reported as the context's.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// reader is the connection's read loop.
func (cn *conn) reader() {
	defer cn.wg.Done()
	c := cn.c
	defer c.flushFinished(cn)
	var deadlineSet time.Time
	now := time.Now()
	for {
		if cn.keepAlive > 0 && now.Sub(deadlineSet) >= cn.keepAlive/8 {
			// Half-open detection: nothing received for 1.5 times
			// the keep alive (PINGRESP included) ends the connection
			// [v5 noid:client-keepalive]. The deadline is moved at
			// most every 1/8 keep alive, not per packet: the limit
			// stays between 1.375 and 1.5 times the keep alive.
			cn.nc.SetReadDeadline(now.Add(cn.keepAlive * 3 / 2))
			deadlineSet = now
		}
		p, err := cn.r.ReadPacket()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("client: nothing from %s for 1.5 × keep alive (%v): %w", cn.server, cn.keepAlive*3/2, err)
			}
			cn.fail(err)
			return
		}
		now = time.Now()
		cn.lastRead.Store(now.UnixNano())
		err = c.handle(cn, p)
		if len(cn.finished) > 0 && (cn.r.Buffered() == 0 || len(cn.finished) >= maxFinished || err != nil) {
			c.flushFinished(cn)
		}
		if err != nil {
			var pe *packet.ProtocolError
			if errors.As(err, &pe) {
				c.log.Warn("protocol error; disconnecting", "server", cn.server, "err", err)
			}
			if cn.version == packet.V5 && errors.As(err, &pe) {
				c.mu.Lock()
				cn.ctrl = append(cn.ctrl, &packet.Disconnect{ReasonCode: pe.Code})
				cn.closeNext = true
				c.mu.Unlock()
				cn.signal()
				select {
				case <-cn.done:
				case <-time.After(time.Second):
				}
			}
			cn.fail(err)
			return
		}
	}
}

// maxBatch is how many bytes the writer gathers for one Write.
const maxBatch = 64 << 10

// writer is the connection's write goroutine: woken by signal, it writes
// everything ready in one Write (flush), and a PINGREQ after a keep alive
// without writing.
func (cn *conn) writer() {
	defer cn.wg.Done()
	// Keep alive: every half interval, a PINGREQ if nothing was written
	// or nothing received for half the interval, so that the server hears
	// from the client within the keep alive [v5 MQTT-3.1.2-20] [v3 MQTT-3.1.2-23]
	// and a live server answers well within the reader's 1.5 × keep alive.
	var ping <-chan time.Time
	half := cn.keepAlive / 2
	if cn.keepAlive > 0 {
		t := time.NewTicker(half)
		defer t.Stop()
		ping = t.C
	}
	for {
		pingNow := false
		select {
		case <-cn.wake:
		case <-ping:
			pingNow = true
		case <-cn.done:
			return
		}
		cn.wmu.Lock()
		over := cn.flush(pingNow, half)
		cn.wmu.Unlock()
		if over {
			return
		}
	}
}

// flushInline writes what is ready from the calling goroutine, a
// one-at-a-time Publish, when nothing else is writing on cn: its
// message leaves without two hand-offs to and from the writer goroutine.
// When the writer (or another publisher) is writing, it wakes the writer
// instead, which writes it next. Either way the bytes go through flush
// under wmu, in queue order. Never called by the read loop.
func (cn *conn) flushInline() {
	if !cn.wmu.TryLock() {
		cn.signal()
		return
	}
	select {
	case <-cn.done:
	default:
		cn.flush(false, 0)
	}
	cn.wmu.Unlock()
}

// flush is the connection's one write path: it encodes what is ready
// (fillLocked), records the new packet identifiers in the store, and
// writes it all in one Write; with pingNow, it adds a PINGREQ when the
// connection was quiet for half the keep alive. It runs under wmu, on the
// writer goroutine or in a one-at-a-time publisher's (flushInline), and
// reports whether the connection is over.
func (cn *conn) flush(pingNow bool, half time.Duration) (over bool) {
	c := cn.c
	c.mu.Lock()
	cn.wbuf, cn.wdone, cn.wmarks = c.fillLocked(cn, cn.wbuf[:0], cn.wdone[:0], cn.wmarks[:0])
	closeAfter := cn.closeNext && len(cn.ctrl) == 0
	more := c.moreLocked(cn)
	c.mu.Unlock()
	c.markSent(cn.wmarks)
	buf, written := cn.wbuf, cn.wdone
	if pingNow {
		now := time.Now()
		if now.Sub(cn.lastWrite) >= half || now.Sub(time.Unix(0, cn.lastRead.Load())) >= half {
			buf, _ = (&packet.Pingreq{}).Append(buf, cn.version)
		}
	}
	if len(buf) > 0 {
		// A write that takes WriteTimeout ends the connection. The
		// deadline is moved at most every 1/8 WriteTimeout, not per
		// write: a write gets between 7/8 and all of it.
		now := time.Now()
		if now.Sub(cn.wdeadline) >= c.cfg.WriteTimeout/8 {
			cn.nc.SetWriteDeadline(now.Add(c.cfg.WriteTimeout))
			cn.wdeadline = now
		}
		if _, err := cn.nc.Write(buf); err != nil {
			for _, t := range written {
				t.complete(PublishResult{}, fmt.Errorf("client: QoS 0 message not sent: %w", err))
			}
			clear(written)
			cn.fail(fmt.Errorf("client: writing to %s: %w", cn.server, err))
			return true
		}
		for _, t := range written {
			t.complete(PublishResult{}, nil)
		}
		clear(written)
		cn.lastWrite = now
		c.progressed()
	}
	if cap(buf) > 4*maxBatch {
		buf = nil
	}
	cn.wbuf = buf
	if closeAfter {
		cn.fail(ErrClosed)
		return true
	}
	if more {
		cn.signal()
	}
	return false
}
