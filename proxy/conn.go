package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/session"
)

// Conn is one client connection and its upstream connection. Filters get
// it with every packet: its accessors describe the client, and Load and
// Store keep a filter's state for the connection's lifetime.
type Conn struct {
	srv    *Server
	id     uint64
	client net.Conn
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	cw, uw *side // client and upstream writers; uw is nil until dialed

	// Set by the handshake before the two loops start; read-only after.
	connect    *packet.Connect // as the client sent it
	version    packet.Version
	authMethod bool // the CONNECT has an Authentication Method

	endMu   sync.Mutex // guards up, upURL, ended
	up      net.Conn
	upURL   string
	ended   bool
	endOnce sync.Once

	// The client reader's state.
	cr            *packet.Reader
	clientAliases session.InboundAliases
	ownUp         map[uint16]struct{} // QoS 2 ids from the client the proxy answered itself
	clientAlias   atomic.Uint32       // Topic Alias Maximum the client was given

	// The upstream reader's state.
	ur          *packet.Reader
	upAliases   session.InboundAliases
	ownDown     map[uint16]struct{} // QoS 2 ids from the upstream the proxy answered itself
	connackSeen bool
	first       packet.Packet // the upstream's first packet, read by the handshake

	mu   sync.Mutex // guards subs and vals
	subs map[uint16]*split
	vals map[any]any
}

// split is a SUBSCRIBE of which the proxy refused some filters itself:
// codes holds the proxy's codes, fwd marks those forwarded, whose codes
// come from the upstream's SUBACK.
type split struct {
	codes []packet.ReasonCode
	fwd   []bool
}

type endKind uint8

const (
	endQuiet    endKind = iota // close both without a word (a peer left, or said DISCONNECT)
	endClient                  // the client broke the protocol, or a filter closed it
	endUpstream                // the upstream broke the protocol, or is unreachable
	endServer                  // the proxy shuts down
)

func newConn(s *Server, nc net.Conn) *Conn {
	c := &Conn{srv: s, id: s.nextID.Add(1), client: nc}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.log = s.logger().With("conn", c.id, "remote", nc.RemoteAddr().String())
	c.cw = newSide(nc, durOr(s.WriteTimeout, DefaultWriteTimeout))
	return c
}

// ID is the connection's number, unique within the Server.
func (c *Conn) ID() uint64 { return c.id }

// Version is the protocol version, from the CONNECT.
func (c *Conn) Version() packet.Version { return c.version }

// Connect returns the CONNECT as the client sent it, before any filter
// changed it; nil while it is being read. Treat it as read-only.
func (c *Conn) Connect() *packet.Connect { return c.connect }

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.client.RemoteAddr() }

// NetConn is the client's network connection, for its TLS state
// (transport.ConnectionState, transport.PeerCommonName). Do not read or
// write it.
func (c *Conn) NetConn() net.Conn { return c.client }

// Upstream is the URL of the upstream broker the connection goes to; ""
// until it is reached (while filters see the CONNECT).
func (c *Conn) Upstream() string {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	return c.upURL
}

// Logger is the connection's logger, with its id and address.
func (c *Conn) Logger() *slog.Logger { return c.log }

// Load returns the value a filter stored under key.
func (c *Conn) Load(key any) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vals[key]
	return v, ok
}

// Store keeps v under key for the connection's lifetime.
func (c *Conn) Store(key, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vals == nil {
		c.vals = map[any]any{}
	}
	c.vals[key] = v
}

// Flush writes out the packets forwarded so far in direction d that are
// still buffered. A filter that is about to block calls it, so the
// packets before the one it holds back are not delayed too.
func (c *Conn) Flush(d Direction) {
	w := c.cw
	if d == Up {
		w = c.uw
	}
	if w != nil {
		w.flush()
	}
}

// serve runs the connection to its end.
func (c *Conn) serve() {
	defer c.srv.removeConn(c)
	defer c.finish()
	if !c.handshake() {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.downLoop()
	}()
	c.upLoop()
	<-done
}

// finish closes both network connections and tells the filters.
func (c *Conn) finish() {
	c.end(endQuiet, 0, "")
	c.cancel()
	for _, f := range c.srv.Filters {
		if e, ok := f.(ConnEnder); ok {
			e.ConnEnded(c)
		}
	}
}

// handshake reads the client's CONNECT, passes it through the filters,
// reaches an upstream and sends it the CONNECT.
func (c *Conn) handshake() bool {
	s := c.srv
	timeout := durOr(s.ConnectTimeout, DefaultConnectTimeout)
	c.client.SetReadDeadline(time.Now().Add(timeout))
	c.cr = packet.NewReader(c.client)
	c.cr.MaxPacketSize = s.maxPacket()
	p, err := c.cr.ReadPacket()
	if err != nil {
		var pe *packet.ProtocolError
		if !errors.Is(err, packet.ErrProtocolName) && errors.As(err, &pe) && pe.Code == packet.UnsupportedProtocolVersion {
			// An MQTT CONNECT of a level the proxy does not speak gets
			// return code 1 [v3 MQTT-3.1.2-2] (0x84 is optional in 5.0
			// [v5 MQTT-3.1.2-2]); the level is unknown, so the 3.1.1 form
			// is sent, which every client can read.
			c.cw.setVersion(packet.V311)
			c.cw.last(func(bool) packet.Packet {
				return &packet.Connack{ReasonCode: packet.V3UnacceptableProtocolVersion}
			})
		}
		// Any other CONNECT that does not conform closes the connection
		// without a CONNACK [v5 MQTT-3.1.4-1] [v3 MQTT-3.1.4-1].
		c.log.Debug("proxy: no valid CONNECT", "err", err)
		return false
	}
	cp, ok := p.(*packet.Connect)
	if !ok { // [v5 MQTT-3.1.0-1] [v3 MQTT-3.1.0-1]
		c.log.Debug("proxy: first packet is not CONNECT", "packet", p.Type())
		return false
	}
	c.client.SetReadDeadline(time.Time{}) // keep alive is the upstream's to enforce
	orig := *cp
	if cp.Will != nil {
		w := *cp.Will
		orig.Will = &w
	}
	c.endMu.Lock() // end may run meanwhile, from Shutdown
	c.connect, c.version = &orig, cp.Version
	c.log = c.log.With("client_id", cp.ClientID)
	c.endMu.Unlock()
	c.cw.setVersion(cp.Version)

	q, v := runFilters(c.ctx, s.Filters, c, Up, cp)
	if v.Action != Pass {
		code := v.Code
		if code < 0x80 {
			code = packet.NotAuthorized
		}
		c.end(endClient, code, "CONNECT "+v.Action.String()+": "+v.Reason)
		return false
	}
	cp, ok = q.(*packet.Connect)
	if !ok {
		c.end(endClient, packet.ImplementationSpecificError, "a filter replaced the CONNECT by "+q.Type().String())
		return false
	}
	if _, err := packet.Encode(cp, cp.Version); err != nil {
		c.end(endClient, packet.ImplementationSpecificError, "a filter made the CONNECT unencodable: "+err.Error())
		return false
	}
	max := s.maxPacket()
	if cp.Version == packet.V5 {
		c.cw.setMax(cp.Properties.MaximumPacketSize)
		// The upstream must not send more than the proxy reads
		// [v5 MQTT-3.1.2-24].
		if m := cp.Properties.MaximumPacketSize; m == 0 || m > max {
			cp.Properties.MaximumPacketSize = max
		}
		c.upAliases.Reset(cp.Properties.TopicAliasMaximum)
		c.authMethod = cp.Properties.AuthMethod != ""
	}
	var first packet.Packet // the upstream's answer to the CONNECT
	err = s.dialUpstream(c.ctx, func(ctx context.Context, nc net.Conn, u string) error {
		uw := newSide(nc, durOr(s.WriteTimeout, DefaultWriteTimeout))
		uw.setVersion(cp.Version)
		ur := packet.NewReader(nc)
		ur.Version = cp.Version
		ur.MaxPacketSize = max
		dl := time.Now().Add(timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		nc.SetReadDeadline(dl)
		stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
		defer stop()
		if err := uw.write(cp, true); err != nil {
			nc.Close()
			return err
		}
		p, err := ur.ReadPacket()
		if err != nil {
			if _, bad := packet.IsProtocolError(err); !bad {
				nc.Close()
				return err
			}
			// An answer, if a bad one: this upstream is there; the loop
			// deals with the error.
			p = nil
			ur.Reset(errReader{err})
		}
		c.endMu.Lock()
		defer c.endMu.Unlock()
		if c.ended {
			nc.Close()
			return nil // dialUpstream returns; the connection is over
		}
		c.up, c.upURL, c.uw, c.ur = nc, u, uw, ur
		first = p
		return nil
	})
	if err != nil {
		if c.ctx.Err() != nil {
			return false // ended meanwhile (Shutdown)
		}
		c.log.Warn("proxy: no upstream", "err", err)
		c.end(endUpstream, packet.ServerUnavailable, "no upstream reachable")
		return false
	}
	c.endMu.Lock()
	ended := c.ended
	c.endMu.Unlock()
	if ended {
		return false
	}
	c.log.Debug("proxy: connected upstream", "upstream", c.upURL, "version", cp.Version)
	c.first = first
	return true
}

// errReader returns its error from every Read.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// upLoop forwards the client's packets upstream.
func (c *Conn) upLoop() {
	for {
		if c.cr.Buffered() == 0 {
			if !c.flushBoth() {
				return
			}
			// Wait on a shallow stack: an idle connection's goroutine
			// then needs the smallest stack.
			if err := c.cr.Fill(); err != nil {
				c.readFailed(Up, err)
				return
			}
		}
		p, err := c.cr.ReadPacket()
		if err != nil {
			c.readFailed(Up, err)
			return
		}
		if !c.fromClient(p) {
			return
		}
	}
}

// downLoop forwards the upstream's packets to the client.
func (c *Conn) downLoop() {
	if c.first != nil {
		p := c.first
		c.first = nil
		if !c.fromUpstream(p) {
			return
		}
	}
	for {
		if c.ur.Buffered() == 0 {
			if !c.flushBoth() {
				return
			}
			if err := c.ur.Fill(); err != nil {
				c.readFailed(Down, err)
				return
			}
		}
		p, err := c.ur.ReadPacket()
		if err != nil {
			c.readFailed(Down, err)
			return
		}
		if !c.fromUpstream(p) {
			return
		}
	}
}

// flushBoth writes out both sides' buffers before a loop waits to read:
// what it forwarded, and the answers it gave its own source.
func (c *Conn) flushBoth() bool {
	if err := c.uw.flush(); err != nil {
		c.end(endQuiet, 0, "upstream write: "+err.Error())
		return false
	}
	if err := c.cw.flush(); err != nil {
		c.end(endQuiet, 0, "client write: "+err.Error())
		return false
	}
	return true
}

// readFailed ends the connection after a read error on d's source: a
// malformed packet or a protocol error is never passed on, and closes the
// connection with its reason code [v5 MQTT-4.13.1-1] [v3 MQTT-4.8.0-1].
func (c *Conn) readFailed(d Direction, err error) {
	if pe, ok := packet.IsProtocolError(err); ok {
		c.protoErr(d, pe.Code, pe.Error())
		return
	}
	if d == Down && !c.connackSeen {
		c.end(endUpstream, packet.ServerUnavailable, "upstream gave no CONNACK: "+err.Error())
		return
	}
	c.end(endQuiet, 0, d.String()+" read: "+err.Error())
}

// protoErr ends the connection for a protocol violation by d's source;
// it returns false, for the loops.
func (c *Conn) protoErr(d Direction, code packet.ReasonCode, msg string) bool {
	if d == Up {
		c.end(endClient, code, "client: "+msg)
	} else {
		c.end(endUpstream, code, "upstream: "+msg)
	}
	return false
}

// end closes the connection once. An MQTT 5 client is told why with a
// DISCONNECT (or a CONNACK if it has none yet; 3.1.1 clients get a
// CONNACK return code only); an MQTT 5 upstream gets a DISCONNECT with an
// error code, so it publishes the client's will, as it does when the
// connection just closes.
func (c *Conn) end(kind endKind, code packet.ReasonCode, reason string) {
	c.endOnce.Do(func() {
		c.endMu.Lock()
		c.ended = true
		up, v, log := c.up, c.version, c.log
		c.endMu.Unlock()
		c.cancel()
		if reason != "" {
			lvl := slog.LevelDebug
			if kind == endClient || kind == endUpstream {
				lvl = slog.LevelInfo
			}
			log.Log(context.Background(), lvl, "proxy: connection closed", "reason", reason, "code", code)
		}
		if kind != endQuiet && v != 0 {
			c.cw.last(func(connack bool) packet.Packet {
				if !connack {
					if kind == endServer {
						return nil
					}
					if v != packet.V5 { // [v3 MQTT-3.2.2-4] [v3 MQTT-3.2.2-5]
						return &packet.Connack{ReasonCode: v3Connack(code)}
					}
					return &packet.Connack{ReasonCode: connackCodes.pick(code, packet.UnspecifiedError)} // [v5 MQTT-3.2.2-6] [v5 MQTT-3.2.2-8], then closed [v5 MQTT-3.2.2-7]
				}
				if v != packet.V5 {
					return nil
				}
				rc := code
				if kind == endUpstream {
					rc = packet.UnspecifiedError // the client did nothing wrong
				}
				return &packet.Disconnect{ReasonCode: serverDisconnect.pick(rc, packet.UnspecifiedError)}
			})
		}
		if up != nil && v == packet.V5 && (kind == endClient || kind == endUpstream) {
			rc := clientDisconnect.pick(code, packet.UnspecifiedError)
			if rc < 0x80 {
				rc = packet.UnspecifiedError
			}
			c.uw.last(func(bool) packet.Packet { return &packet.Disconnect{ReasonCode: rc} })
		}
		c.client.Close()
		if up != nil {
			up.Close()
		}
	})
}

// closeBy ends the connection for a filter's Close verdict on a packet
// travelling in d.
func (c *Conn) closeBy(d Direction, v Verdict) bool {
	code := v.Code
	if code == 0 {
		code = packet.UnspecifiedError
	}
	c.end(endClient, code, "filter closed the connection on a packet "+d.String()+": "+v.Reason)
	return false
}

// fromClient handles one packet from the client; false ends the loop.
func (c *Conn) fromClient(p packet.Packet) bool {
	switch p := p.(type) {
	case *packet.Connect: // [v5 MQTT-3.1.0-2] [v3 MQTT-3.1.0-2]
		return c.protoErr(Up, packet.ProtocolErrorCode, "second CONNECT")
	case *packet.Connack, *packet.Suback, *packet.Unsuback, *packet.Pingresp:
		return c.protoErr(Up, packet.ProtocolErrorCode, p.Type().String()+" from a client")
	case *packet.Auth:
		if !c.authMethod { // [v5 MQTT-4.12.0-7]
			return c.protoErr(Up, packet.ProtocolErrorCode, "AUTH without an Authentication Method in CONNECT")
		}
	case *packet.Publish:
		if c.version == packet.V5 && (p.Properties.TopicAlias != 0 || p.Properties.Has(packet.PropTopicAlias)) {
			// The proxy takes the client's aliases itself and forwards
			// topic names: a dropped PUBLISH must not take an alias's
			// definition with it.
			c.clientAliases.Max = uint16(c.clientAlias.Load())
			if err := c.clientAliases.Resolve(p); err != nil {
				return c.protoErr(Up, reasonOf(err), err.Error())
			}
			stripAlias(p)
		}
		if p.QoS == 2 {
			if _, own := c.ownUp[p.PacketID]; own { // a duplicate [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2]
				return c.answer(c.cw, &packet.Pubrec{PacketID: p.PacketID})
			}
		}
	case *packet.Pubrel:
		if _, own := c.ownUp[p.PacketID]; own { // [v5 MQTT-4.3.3-11] [v3 MQTT-4.3.3-2]
			delete(c.ownUp, p.PacketID)
			return c.answer(c.cw, &packet.Pubcomp{PacketID: p.PacketID})
		}
	}
	q, v := runFilters(c.ctx, c.srv.Filters, c, Up, p)
	switch v.Action {
	case Close:
		return c.closeBy(Up, v)
	case Drop:
		c.log.Debug("proxy: dropped", "dir", Up, "packet", p.Type(), "reason", v.Reason)
		return c.dropUp(p, v.Code)
	}
	if s, ok := q.(*packet.Subscribe); ok && v.Refused != nil {
		return c.subscribeSplit(s, v.Refused)
	}
	if err := c.uw.write(q, false); err != nil {
		return c.writeFailed(Up, q, err)
	}
	if _, ok := q.(*packet.Disconnect); ok {
		c.uw.flush()
		c.end(endQuiet, 0, "client disconnected")
		return false
	}
	return true
}

// fromUpstream handles one packet from the upstream; false ends the loop.
func (c *Conn) fromUpstream(p packet.Packet) bool {
	if !c.connackSeen {
		switch p := p.(type) {
		case *packet.Connack:
			return c.connack(p)
		case *packet.Auth:
			if !c.authMethod { // [v5 MQTT-4.12.0-6]
				return c.protoErr(Down, packet.ProtocolErrorCode, "AUTH without an Authentication Method in CONNECT")
			}
		default: // [v5 MQTT-3.2.0-1] [v3 MQTT-3.2.0-1]
			return c.protoErr(Down, packet.ProtocolErrorCode, p.Type().String()+" before CONNACK")
		}
	}
	switch p := p.(type) {
	case *packet.Connack: // [v5 MQTT-3.2.0-2]
		return c.protoErr(Down, packet.ProtocolErrorCode, "second CONNACK")
	case *packet.Connect, *packet.Subscribe, *packet.Unsubscribe, *packet.Pingreq:
		return c.protoErr(Down, packet.ProtocolErrorCode, p.Type().String()+" from a server")
	case *packet.Disconnect:
		if c.version != packet.V5 {
			return c.protoErr(Down, packet.ProtocolErrorCode, "DISCONNECT from a 3.1.1 server")
		}
	case *packet.Auth:
		if !c.authMethod { // [v5 MQTT-4.12.0-6]
			return c.protoErr(Down, packet.ProtocolErrorCode, "AUTH without an Authentication Method in CONNECT")
		}
	case *packet.Publish:
		if c.version == packet.V5 && (p.Properties.TopicAlias != 0 || p.Properties.Has(packet.PropTopicAlias)) {
			if err := c.upAliases.Resolve(p); err != nil {
				return c.protoErr(Down, reasonOf(err), err.Error())
			}
			stripAlias(p)
		}
		if p.QoS == 2 {
			if _, own := c.ownDown[p.PacketID]; own { // [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2]
				return c.answer(c.uw, &packet.Pubrec{PacketID: p.PacketID})
			}
		}
	case *packet.Pubrel:
		if _, own := c.ownDown[p.PacketID]; own { // [v5 MQTT-4.3.3-11] [v3 MQTT-4.3.3-2]
			delete(c.ownDown, p.PacketID)
			return c.answer(c.uw, &packet.Pubcomp{PacketID: p.PacketID})
		}
	case *packet.Suback:
		if !c.mergeSuback(p) {
			return c.protoErr(Down, packet.ProtocolErrorCode, "SUBACK has a different number of codes than the SUBSCRIBE's filters")
		}
	}
	q, v := runFilters(c.ctx, c.srv.Filters, c, Down, p)
	switch v.Action {
	case Close:
		return c.closeBy(Down, v)
	case Drop:
		c.log.Debug("proxy: dropped", "dir", Down, "packet", p.Type(), "reason", v.Reason)
		return c.dropDown(p, v.Code)
	}
	if err := c.cw.write(q, false); err != nil {
		return c.writeFailed(Down, q, err)
	}
	if _, ok := q.(*packet.Disconnect); ok { // [v5 MQTT-4.13.2-1]
		c.cw.flush()
		c.end(endQuiet, 0, "upstream disconnected the client")
		return false
	}
	return true
}

// connack forwards the upstream's CONNACK.
func (c *Conn) connack(p *packet.Connack) bool {
	c.connackSeen = true
	c.up.SetReadDeadline(time.Time{})
	if c.version == packet.V5 {
		c.uw.setMax(p.Properties.MaximumPacketSize)
		c.clientAlias.Store(uint32(p.Properties.TopicAliasMaximum))
		// The client must not send more than the proxy reads
		// [v5 MQTT-3.2.2-15].
		if m, max := p.Properties.MaximumPacketSize, c.srv.maxPacket(); m == 0 || m > max {
			p.Properties.MaximumPacketSize = max
		}
	}
	q, v := runFilters(c.ctx, c.srv.Filters, c, Down, p)
	if v.Action != Pass {
		code := v.Code
		if code < 0x80 {
			code = packet.NotAuthorized
		}
		c.end(endClient, code, "CONNACK "+v.Action.String()+": "+v.Reason)
		return false
	}
	if err := c.cw.write(q, true); err != nil {
		c.end(endQuiet, 0, "client write: "+err.Error())
		return false
	}
	if ack, ok := q.(*packet.Connack); ok && ack.ReasonCode != 0 { // [v5 MQTT-4.13.2-1] [v3 MQTT-3.2.2-5]
		c.end(endQuiet, 0, "upstream refused the client: "+ack.ReasonCode.Text(packet.CONNACK, c.version))
		return false
	}
	return true
}

// answer writes the proxy's own answer to w; false if the connection ends.
func (c *Conn) answer(w *side, p packet.Packet) bool {
	if err := w.write(p, false); err != nil {
		d := Down
		if w == c.uw {
			d = Up
		}
		return c.writeFailed(d, p, err)
	}
	return true
}

// writeFailed handles an error writing p in direction d.
func (c *Conn) writeFailed(d Direction, p packet.Packet, err error) bool {
	if pe, ok := packet.IsProtocolError(err); ok && pe.Code == packet.PacketTooLarge {
		if d == Down {
			if pub, ok := p.(*packet.Publish); ok {
				// Too large for the client: discarded, and the message
				// acknowledged as if sent [v5 MQTT-3.1.2-25].
				c.log.Debug("proxy: PUBLISH too large for the client, discarded", "topic", pub.Topic)
				return c.dropDown(pub, packet.Success)
			}
		}
		// The client sent more than the upstream takes, which the
		// CONNACK told it [v5 MQTT-3.2.2-15].
		return c.protoErr(d, packet.PacketTooLarge, err.Error())
	}
	if errors.Is(err, packet.ErrEncode) {
		c.end(endClient, packet.ImplementationSpecificError, "a filter made an unencodable "+p.Type().String()+": "+err.Error())
		return false
	}
	c.end(endQuiet, 0, d.String()+" write: "+err.Error())
	return false
}

// dropUp answers a client packet the filters dropped, as the upstream
// would have, so the client's session state stays right.
func (c *Conn) dropUp(p packet.Packet, code packet.ReasonCode) bool {
	switch p := p.(type) {
	case *packet.Publish:
		switch p.QoS {
		case 1: // the PUBACK ends the exchange [v5 MQTT-4.3.2-4] [v3 MQTT-4.3.2-2]
			return c.answer(c.cw, &packet.Puback{PacketID: p.PacketID, ReasonCode: pubackCodes.pick(code, packet.UnspecifiedError)})
		case 2: // PUBREC [v5 MQTT-4.3.3-8] [v3 MQTT-4.3.3-2]
			rc := pubackCodes.pick(code, packet.UnspecifiedError)
			if c.version != packet.V5 || rc < 0x80 {
				// The PUBREL to come is the proxy's to answer; a code of
				// 0x80 or above ends the exchange here [v5 MQTT-4.3.3-9].
				if c.ownUp == nil {
					c.ownUp = map[uint16]struct{}{}
				}
				c.ownUp[p.PacketID] = struct{}{}
			}
			return c.answer(c.cw, &packet.Pubrec{PacketID: p.PacketID, ReasonCode: rc})
		}
	case *packet.Subscribe: // every SUBSCRIBE gets a SUBACK [v5 MQTT-3.8.4-1] [v3 MQTT-3.8.4-1]
		codes := make([]packet.ReasonCode, len(p.Subscriptions)) // one per filter [v5 MQTT-3.8.4-6] [v3 MQTT-3.8.4-5]
		for i := range codes {
			codes[i] = c.subFailure(code)
		}
		return c.answer(c.cw, &packet.Suback{PacketID: p.PacketID, ReasonCodes: codes})
	case *packet.Unsubscribe: // [v5 MQTT-3.10.4-5] [v3 MQTT-3.10.4-5]
		ack := &packet.Unsuback{PacketID: p.PacketID}
		if c.version == packet.V5 {
			ack.ReasonCodes = make([]packet.ReasonCode, len(p.Filters)) // [v5 MQTT-3.11.3-1]
			for i := range ack.ReasonCodes {
				ack.ReasonCodes[i] = unsubackCodes.pick(code, packet.UnspecifiedError)
			}
		}
		return c.answer(c.cw, ack)
	case *packet.Pingreq: // [v5 MQTT-3.12.4-1] [v3 MQTT-3.12.4-1]
		return c.answer(c.cw, &packet.Pingresp{})
	case *packet.Disconnect:
		c.end(endQuiet, 0, "client disconnected (DISCONNECT dropped)")
		return false
	}
	return true
}

// dropDown answers an upstream packet the filters dropped, as the client
// would have.
func (c *Conn) dropDown(p packet.Packet, code packet.ReasonCode) bool {
	if p, ok := p.(*packet.Publish); ok {
		switch p.QoS {
		case 1: // [v5 MQTT-4.3.2-4] [v3 MQTT-4.3.2-2]
			return c.answer(c.uw, &packet.Puback{PacketID: p.PacketID, ReasonCode: pubackCodes.pick(code, packet.UnspecifiedError)})
		case 2: // [v5 MQTT-4.3.3-8] [v3 MQTT-4.3.3-2]
			rc := pubackCodes.pick(code, packet.UnspecifiedError)
			if c.version != packet.V5 || rc < 0x80 {
				if c.ownDown == nil {
					c.ownDown = map[uint16]struct{}{}
				}
				c.ownDown[p.PacketID] = struct{}{}
			}
			return c.answer(c.uw, &packet.Pubrec{PacketID: p.PacketID, ReasonCode: rc})
		}
	}
	if _, ok := p.(*packet.Disconnect); ok {
		c.end(endQuiet, 0, "upstream disconnected (DISCONNECT dropped)")
		return false
	}
	return true
}

// subFailure is the SUBACK code of a filter refused with code
// [v5 MQTT-3.9.3-2] [v3 MQTT-3.9.3-2].
func (c *Conn) subFailure(code packet.ReasonCode) packet.ReasonCode {
	if c.version != packet.V5 {
		return packet.V3SubackFailure
	}
	return subackFailures.pick(code, packet.NotAuthorized)
}

// subscribeSplit forwards the subscriptions of s that no filter refused
// and answers the rest itself: alone if none is left, else by adding its
// codes to the upstream's SUBACK.
func (c *Conn) subscribeSplit(s *packet.Subscribe, refused []packet.ReasonCode) bool {
	n := len(s.Subscriptions)
	sp := &split{codes: make([]packet.ReasonCode, n), fwd: make([]bool, n)}
	var fwd []packet.Subscription
	for i, sub := range s.Subscriptions {
		if i < len(refused) && refused[i] >= 0x80 {
			sp.codes[i] = c.subFailure(refused[i])
			continue
		}
		sp.fwd[i] = true
		fwd = append(fwd, sub)
	}
	switch len(fwd) {
	case 0: // [v5 MQTT-3.8.4-1] [v3 MQTT-3.8.4-1]
		return c.answer(c.cw, &packet.Suback{PacketID: s.PacketID, ReasonCodes: sp.codes})
	case n:
		sp = nil
	}
	c.mu.Lock()
	if sp != nil {
		if c.subs == nil {
			c.subs = map[uint16]*split{}
		}
		c.subs[s.PacketID] = sp
	} else {
		delete(c.subs, s.PacketID)
	}
	c.mu.Unlock()
	out := *s
	out.Subscriptions = fwd
	if err := c.uw.write(&out, false); err != nil {
		return c.writeFailed(Up, &out, err)
	}
	return true
}

// mergeSuback puts the proxy's codes for the filters it refused back
// into the upstream's SUBACK, in the SUBSCRIBE's order [v5 MQTT-3.9.3-1]
// [v3 MQTT-3.9.3-1]; false if the SUBACK does not fit the SUBSCRIBE.
func (c *Conn) mergeSuback(p *packet.Suback) bool {
	c.mu.Lock()
	sp := c.subs[p.PacketID]
	delete(c.subs, p.PacketID)
	c.mu.Unlock()
	if sp == nil {
		return true
	}
	codes := sp.codes
	j := 0
	for i, f := range sp.fwd {
		if !f {
			continue
		}
		if j >= len(p.ReasonCodes) {
			return false
		}
		codes[i] = p.ReasonCodes[j]
		j++
	}
	if j != len(p.ReasonCodes) {
		return false
	}
	p.ReasonCodes = codes
	return true
}

// stripAlias removes the Topic Alias from a PUBLISH whose topic has been
// resolved: the proxy forwards topic names.
func stripAlias(p *packet.Publish) {
	p.Properties.TopicAlias = 0
	p.Properties.Unmark(packet.PropTopicAlias)
}

// reasonOf is the reason code of a protocol error; 0x82 for others.
func reasonOf(err error) packet.ReasonCode {
	if pe, ok := packet.IsProtocolError(err); ok {
		return pe.Code
	}
	return packet.ProtocolErrorCode
}
