package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	mqttsession "github.com/ternmq/tern/session"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/topic"
	"github.com/ternmq/tern/transport"
)

// LevelTrace is the slog level at which every packet in and out is logged.
const LevelTrace = slog.LevelDebug - 4

// conn is one client connection. Its reader runs on the goroutine that
// called serve; its writer on a goroutine of its own (writer.go). Every
// byte to the client goes through the writer.
type conn struct {
	srv  *Server
	nc   net.Conn
	lis  Listener
	info ClientInfo
	log  *slog.Logger
	r    *packet.Reader

	version   packet.Version
	keepAlive time.Duration // 1.5 x the client's keep alive; 0 for none
	kaSlack   time.Duration // how late the keep alive limit may fire
	sess      *session
	will      *packet.Will
	pend      []pendingPub   // PUBLISHes read, not yet stored and answered (Server.Store; reader only)
	pendCS    []store.Change // their changes
	pubAcker  acker          // stores and answers them (Server.Store)
	maxOut    uint32         // the client's maximum packet size, 0 for none
	problem   bool           // MQTT 5: the client wants reason strings
	trace     bool
	expiry0   bool      // the CONNECT's Session Expiry Interval was 0
	kaSecs    uint16    // the keep alive in force, seconds (set before the session is attached; read by Server.Clients)
	since     time.Time // when the CONNECT was accepted (same)

	// MQTT 5 state of the reader.
	aliasIn    mqttsession.InboundAliases // topic aliases the client set
	authMethod string                     // the enhanced authentication method of the CONNECT
	reauth     AuthExchange               // a re-authentication in progress
	reauthReq  *AuthRequest               // and what it was started with

	// MQTT 5 state of the writer.
	aliasOut mqttsession.OutboundAliases // topic aliases the broker set towards the client, up to its Topic Alias Maximum when outbound aliases are on

	ctrl       chan ctrlPkt  // packets for the writer to send, in order
	wake       chan struct{} // a message was queued for the session
	quit       chan struct{} // closed to stop the writer
	writerDone chan struct{}
	done       chan struct{} // closed when the connection is fully gone

	kicked         atomic.Uint32 // reason code the server closed the connection with, 0 if not
	started        atomic.Bool   // the writer runs and the CONNACK is queued
	sentDisconnect bool          // the client sent DISCONNECT (no will)
	bpWill         bool          // the will is registered with the back plane (cluster.go)
	closeOnce      sync.Once
	running        atomic.Bool // a writer goroutine runs
	finished       atomic.Bool // the writer has stopped for good
	finishOnce     sync.Once
}

// ctrlPkt is a packet for the writer: an acknowledgement spelled out in
// place (no allocation), or any packet. final makes the writer close the
// connection after sending it.
type ctrlPkt struct {
	t     packet.Type
	id    uint16
	code  packet.ReasonCode
	p     packet.Packet
	final bool
}

func newConn(srv *Server, nc net.Conn, lis Listener) *conn {
	c := &conn{
		srv:        srv,
		nc:         nc,
		lis:        lis,
		ctrl:       make(chan ctrlPkt, 16),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	c.info = ClientInfo{RemoteAddr: nc.RemoteAddr(), Listener: lis.Name}
	c.log = srv.cfg.log
	c.trace = c.log.Enabled(context.Background(), LevelTrace)
	return c
}

// serve runs the connection to its end.
func (c *conn) serve() {
	defer c.srv.live.Add(-1)
	c.r = packet.NewReader(countingReader{c.nc, &c.srv.stats.bytesIn})
	c.r.MaxPacketSize = c.srv.cfg.maxPacketSize
	c.r.ReuseAcks = true // handle acts on each acknowledgement at once and keeps none
	ok := c.guard(c.connect)
	if !ok {
		// A CONNECT that was refused, broke the format or failed ends
		// here: the connection is closed, whether or not a refusing
		// CONNACK went out [v5 MQTT-3.1.4-1] [v5 MQTT-3.1.4-2]
		// [v5 MQTT-3.2.2-7] [v5 MQTT-3.1.3-8] [v5 MQTT-4.13.2-1], and
		// nothing the client sent after its CONNECT is read
		// [v5 MQTT-3.1.4-6].
		// Refused: nothing the client sent after the CONNECT is read
		// [v3 MQTT-3.1.4-5].
		c.nc.Close()
		if c.sess != nil {
			c.stopWriter() // connect got as far as queueing the CONNACK
		}
		c.finish()
		return
	}
	// Handling the CONNECT (authentication, logging) grew this
	// goroutine's stack; the read loop gets a fresh, small one and this
	// goroutine ends, so an idle connection costs little memory.
	c.srv.live.Add(1)
	go c.run()
}

// run is the read loop of a connected client, then its teardown.
func (c *conn) run() {
	defer c.runDone() // one deferred call: this frame sits under an idle connection's wait
	var err error
	if !c.guard(func() bool { err = c.readLoop(); return true }) {
		err = errPanic
	}
	if c.srv.batchesPublishes() {
		// PUBLISHes read before the connection ended are the client's
		// messages all the same (their QoS 2 ids are taken): stored and
		// delivered before the teardown, their acknowledgements lost
		// with the connection.
		c.guard(func() bool { c.drainPublishes(); return true })
	}
	c.teardown(err)
}

func (c *conn) runDone() {
	c.finish()
	c.srv.live.Add(-1)
}

func (c *conn) finish() {
	close(c.done)
	c.srv.untrack(c)
}

var errPanic = errors.New("internal error")

// guard runs f and turns a panic into a logged, closed connection: a bug
// must not take the broker down with it. An error that stops the broker
// from processing an inbound packet closes the connection that carried it
// [v3 MQTT-4.8.0-2].
func (c *conn) guard(f func() bool) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic serving connection; connection closed", "client", c.info.ClientID,
				"remote", logAddr{c.info.RemoteAddr}, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.nc.Close()
			ok = false
		}
	}()
	return f()
}

// connect reads and answers the CONNECT. It returns false if the
// connection was refused or failed; the caller closes it.
func (c *conn) connect() bool {
	srv := c.srv
	c.nc.SetReadDeadline(time.Now().Add(srv.cfg.connectTimeout))
	p, err := c.r.ReadPacket()
	if err != nil {
		c.connectFailed(err)
		return false
	}
	cp, ok := p.(*packet.Connect)
	if !ok {
		// [v5 MQTT-3.1.0-1] [v3 MQTT-3.1.0-1] the first packet must be CONNECT.
		c.log.Info("connection closed: first packet is not CONNECT", "remote", logAddr{c.info.RemoteAddr}, "packet", p.Type())
		return false
	}
	c.version = cp.Version
	c.info.Version = cp.Version
	c.info.ClientID = cp.ClientID
	c.info.Username = cp.Username
	if c.trace {
		c.log.Log(context.Background(), LevelTrace, "recv", "remote", logAddr{c.info.RemoteAddr}, "packet", cp.String())
	}
	v5 := c.version == packet.V5
	if v5 {
		c.maxOut = cp.Properties.MaximumPacketSize
	}

	user := cp.Username // as the client presented it (or its certificate's name), for the logs
	refuse := func(code packet.ReasonCode, reason string) bool {
		srv.stats.refusedCode(code)
		c.log.Info("connection refused", "client", c.info.ClientID, userAttr(user), "remote", logAddr{c.info.RemoteAddr},
			"code", code.String(), "reason", reason)
		ack := &packet.Connack{ReasonCode: code}
		if !v5 {
			rc, ok := v3ConnackCode(code)
			if !ok {
				// No return code of 3.1.1 applies: close without a
				// CONNACK [v3 MQTT-3.2.2-6].
				return false
			}
			ack.ReasonCode = rc
		} else {
			// A CONNACK may carry a Reason String whatever Request Problem
			// Information says [v5 MQTT-3.1.2-29].
			ack.Properties.ReasonString = reason
		}
		c.writeDirect(ack)
		return false // the caller closes the connection [v3 MQTT-3.2.2-5]
	}

	// Client identifier rules. Any other identifier is accepted, those
	// of 1 to 23 characters 0-9a-zA-Z included [v3 MQTT-3.1.3-5]; a
	// refused one gets 0x02 Identifier rejected, then the close
	// [v3 MQTT-3.1.3-9].
	assigned := false
	switch {
	case cp.ClientID == "" && c.version == packet.V31:
		// MQTT 3.1 requires 1 to 23 characters.
		return refuse(packet.ClientIdentifierNotValid, "MQTT 3.1 requires a client identifier")
	case cp.ClientID == "" && !v5 && !cp.CleanStart:
		// [v3 MQTT-3.1.3-8] an empty id needs clean session; refuse with 0x02.
		return refuse(packet.ClientIdentifierNotValid, "an empty client identifier needs clean session")
	case cp.ClientID == "":
		// [v3 MQTT-3.1.3-6] [v5 MQTT-3.1.3-6] assign a unique identifier;
		// the CONNECT is handled as if the client had sent it
		// [v5 MQTT-3.1.3-7].
		c.info.ClientID = newClientID()
		assigned = true
	case c.version == packet.V31 && len(cp.ClientID) > 23:
		return refuse(packet.ClientIdentifierNotValid, "MQTT 3.1 client identifiers are at most 23 characters")
	}
	// Any other identifier is taken as it is, the 1 to 23 characters of
	// 0-9, a-z and A-Z included [v5 MQTT-3.1.3-5]; an Authenticator may
	// still refuse it (0x85 Client Identifier not valid, [v5 MQTT-3.1.3-8]).

	// Authentication.
	req := &AuthRequest{ClientInfo: c.info, Password: cp.Password, Connect: cp}
	if cs, ok := transport.ConnectionState(c.nc); ok {
		req.TLS = cs
		c.info.TLS = cs
	}
	if c.lis.UseCertCommonName {
		cn, ok := transport.PeerCommonName(c.nc)
		if !ok {
			return refuse(packet.NotAuthorized, "a verified client certificate is required")
		}
		req.Username = cn
		user = cn
	}
	if cp.Will != nil {
		if err := topic.ValidateName(cp.Will.Topic); err != nil {
			return refuse(packet.TopicNameInvalid, err.Error())
		}
	}
	var authOut []byte
	if _, allowAll := srv.cfg.authn.(AllowAll); allowAll && (!v5 || cp.Properties.AuthMethod == "") {
		// Nothing to ask, and no timer to set up for it.
	} else {
		ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.connectTimeout)
		if v5 && cp.Properties.AuthMethod != "" {
			// Enhanced authentication [v5 MQTT-4.12.0-1] (section 4.12).
			authOut, err = c.connectAuth(ctx, req, cp)
		} else {
			err = srv.authenticate(ctx, req)
		}
		cancel()
	}
	if err != nil {
		if errors.Is(err, errAuthAborted) {
			return false // its CONNACK, if any, is sent: one per connection [v5 MQTT-3.2.0-2]
		}
		return refuse(refusalCode(err), err.Error()) // [v5 MQTT-3.1.4-2]
	}
	c.info.Username = req.Username
	if cp.Will != nil && !srv.authorize(&c.info, ActionPublish, cp.Will.Topic) {
		return refuse(packet.NotAuthorized, "not authorized to publish the will topic")
	}

	// The will must fit what the server offers: [v5 MQTT-3.2.2-12] (QoS),
	// [v5 MQTT-3.2.2-13] (retain).
	if cp.Will != nil && cp.Will.QoS > srv.cfg.maxQoS {
		return refuse(packet.QoSNotSupported, fmt.Sprintf("will QoS %d above the maximum QoS %d", cp.Will.QoS, srv.cfg.maxQoS))
	}
	if cp.Will != nil && cp.Will.Retain && srv.RetainUnavailable {
		return refuse(packet.RetainNotSupported, "retained messages are not available")
	}

	// Limits the client announces (MQTT 5).
	window := srv.cfg.maxInflight // outbound QoS 1 and 2 messages in flight at most
	keepAlive := cp.KeepAlive     // without a Server Keep Alive, the client's [v5 MQTT-3.2.2-22]
	expiry := uint32(0)
	if !cp.CleanStart {
		expiry = neverExpire // a 3.1.1 persistent session
	}
	if v5 {
		if rm := cp.Properties.ReceiveMaximum; rm != 0 && int(rm) < window {
			window = int(rm) // [v5 MQTT-3.3.4-9] [v5 MQTT-4.9.0-1] (Receive Maximum is never 0)
		}
		c.problem = !cp.Properties.Has(packet.PropRequestProblemInfo) || cp.Properties.RequestProblemInfo == 1
		c.aliasIn.Reset(srv.cfg.topicAliasMax) // up to the Topic Alias Maximum of the CONNACK
		if srv.OutboundTopicAliases {
			c.aliasOut.Reset(cp.Properties.TopicAliasMaximum)
		}
		if srv.ServerKeepAlive > 0 {
			keepAlive = uint16(srv.ServerKeepAlive / time.Second)
		}
		expiry = cp.Properties.SessionExpiry
		c.authMethod = cp.Properties.AuthMethod
	}
	capped := false
	if m := srv.cfg.maxSessionExpiry; m > 0 && expiry > m {
		expiry, capped = m, true
	}
	c.expiry0 = expiry == 0
	if keepAlive > 0 {
		// [v3 MQTT-3.1.2-24] [v5 MQTT-3.1.2-22] one and a half keep alive periods.
		c.keepAlive = time.Duration(keepAlive) * 1500 * time.Millisecond
		c.kaSlack = min(time.Second, c.keepAlive/12)
	}
	c.will = cp.Will     // stored with the connection, and with the session once it ends [v5 MQTT-3.1.2-7]
	c.kaSecs = keepAlive // for Server.Clients
	c.since = time.Now()

	// The CONNACK is built and encoded before the session is touched. One
	// that does not fit the client's Maximum Packet Size, even without its
	// Reason String and User Properties, cannot be sent [v5 MQTT-3.1.2-24],
	// and nothing else may be sent before it [v5 MQTT-3.2.0-1]: the
	// connection is closed, no session is created or taken over. Session
	// Present, known only after attach, is one bit: the size is the same.
	ack := &packet.Connack{} // 0x00 Success [v5 MQTT-3.1.4-5]
	if v5 {
		c.connackProperties(&ack.Properties, cp, assigned, capped, expiry, keepAlive)
		if c.authMethod != "" { // none without one in the CONNECT [v5 MQTT-4.12.0-6]
			ack.Properties.AuthMethod = c.authMethod // [v5 MQTT-4.12.0-5] the method of the exchange
			ack.Properties.AuthData = authOut
		}
	}
	ackBytes, err := packet.AppendFitting(nil, ack, c.version, c.maxOut)
	switch {
	case errors.Is(err, packet.ErrPacketTooLarge):
		c.log.Info("connection closed without CONNACK: the CONNACK is larger than the client's Maximum Packet Size",
			"client", c.info.ClientID, "remote", logAddr{c.info.RemoteAddr}, "maximum_packet_size", c.maxOut)
		return false
	case err != nil:
		c.log.Error("connection closed: cannot encode CONNACK", "client", c.info.ClientID, "remote", logAddr{c.info.RemoteAddr}, "err", err)
		return false
	}

	// The session: take over from another connection of this id and
	// resume or start afresh.
	// Clean Start handling [v5 MQTT-3.1.4-4], in the session of this
	// client id [v5 MQTT-3.1.3-2].
	// resume or start afresh, as CleanSession says [v3 MQTT-3.1.4-3].
	if srv.shStore != nil {
		// A session the nodes share: this node owns the client id and
		// has the session (taken over from the node that had it) before
		// it is stored as this CONNECT asks (sharedsession.go).
		if _, err := srv.sharedClaim(c.info.ClientID, cp.CleanStart); err != nil {
			return refuse(packet.ServerUnavailable, "the broker could not take the session over from its other nodes: "+err.Error())
		}
	}
	if srv.Store != nil {
		// The session is kept as the CONNECT asks before the CONNACK
		// says so.
		var w *lastWill
		if cp.Will != nil && expiry != 0 {
			w = c.willOf(cp.Will)
		}
		if err := srv.connectStore(c.info.ClientID, cp.CleanStart, expiry, c.version, w); err != nil {
			if !v5 {
				return refuse(packet.ServerUnavailable, "the broker could not store the session: "+err.Error())
			}
			return refuse(storeCode(err), "the broker could not store the session")
		}
	}
	// Cluster-wide, the client id is this node's before the CONNACK
	// (cluster.go); the node that had it closes its connection.
	if srv.shStore == nil {
		if err := srv.clusterClaim(c.info.ClientID); err != nil {
			return refuse(packet.ServerUnavailable, "the back plane could not give this node the client identifier: "+err.Error())
		}
	}
	s, present := srv.attach(c, c.info.ClientID, cp.CleanStart)
	if c.isKicked() {
		return false
	}
	if srv.Store != nil && s.inline == nil {
		s.durable.Store(expiry != 0)
	}
	s.mu.Lock()
	s.expiry = expiry
	s.info = c.info
	s.out.SetWindow(window) // the window is the connection's; the messages in flight are the session's
	// The client's send quota starts afresh on each connection (MQTT 5
	// section 4.9); 3.1.1 has none.
	s.in.NewConnection()
	s.in.Max = 0
	if v5 {
		s.in.Max = int(srv.cfg.receiveMaximum)
	}
	// The writer sends what was in flight first, in the order first sent
	// [v5 MQTT-4.4.0-1] [v3 MQTT-4.4.0-1].
	s.out.Resume()
	resend := s.out.Resending()
	waiting := s.queue.Len() > 0 || s.backlog.Len() > 0
	s.mu.Unlock()
	c.sess = s
	srv.clusterConnected(c, cp.Will) // the will, for the back plane to publish if this node dies

	// MQTT 3.1 has no session present flag: its CONNACK's first byte is
	// reserved (3.1 section 3.2), so only 3.1.1 and 5.0 get it
	// [v3 MQTT-3.2.2-2] [v5 MQTT-3.2.2-3]. The connection is accepted:
	// return code 0 [v3 MQTT-3.1.4-4].
	if present && c.version != packet.V31 {
		ack.SessionPresent = true
		if ackBytes, err = packet.AppendFitting(ackBytes[:0], ack, c.version, c.maxOut); err != nil {
			// Cannot happen: the same packet with one more bit set fitted.
			c.log.Error("cannot encode CONNACK", "client", c.info.ClientID, "err", err)
			c.nc.Close() // the read loop ends at once and tears the session down
		}
	}
	// The writer has not run yet and cannot start before c.started (kick
	// only leaves a wake token), so the CONNACK is written here, the
	// connection's only writer at this point, saving the writer a start.
	// It is the first packet the client gets [v3 MQTT-3.2.0-1].
	// The connection is counted before its CONNACK goes: a client that
	// has its CONNACK is in Stats.
	srv.stats.connected.Add(1)
	srv.stats.total.Add(1)
	c.writeEncoded(ack, ackBytes)
	c.started.Store(true) // from now on the writer writes; closeWith may queue a DISCONNECT
	if resend || waiting || len(c.wake) > 0 {
		c.kick() // a resumed session's messages, or messages that arrived meanwhile
	}
	c.log.Info("client connected", "client", c.info.ClientID, userAttr(c.info.Username), "remote", logAddr{c.info.RemoteAddr}, "version", c.version.String(),
		"listener", c.lis.Name, "clean", cp.CleanStart, "keepalive", cp.KeepAlive, "session_present", present)
	srv.observe(Event{Kind: EventConnect, Client: &c.info})
	return true
}

// v3ConnackCode returns the MQTT 3.1 / 3.1.1 CONNACK return code for an
// MQTT 5 refusal code, and false where none of the return codes of 3.1.1
// Table 3.1 applies: the client sent something the broker does not
// support (a will QoS above the Maximum QoS, a retained will while
// retained messages are off, an invalid will topic) or the reason is
// unspecified. The connection is then closed without a CONNACK
// [v3 MQTT-3.2.2-6] rather than with one that would mislead the client.
func v3ConnackCode(code packet.ReasonCode) (packet.ReasonCode, bool) {
	switch code {
	case packet.UnsupportedProtocolVersion, packet.ClientIdentifierNotValid, // 1, 2 [v3 MQTT-3.1.3-9]
		packet.BadUserNameOrPassword, packet.BadAuthenticationMethod, // 4
		packet.NotAuthorized, packet.Banned: // 5
		return code.V3Connack(), true
	case packet.ServerUnavailable, packet.ServerBusy, packet.UseAnotherServer, packet.ServerMoved,
		packet.ConnectionRateExceeded, packet.QuotaExceeded:
		return packet.V3ServerUnavailable, true // 3: the MQTT service is unavailable (to this client)
	}
	return 0, false
}

// connackProperties sets the CONNACK properties that tell an MQTT 5
// client the server's limits (section 3.2.2.3). A property whose value is
// the default the spec gives its absence is left out.
func (c *conn) connackProperties(p *packet.Properties, cp *packet.Connect, assigned, capped bool, expiry uint32, keepAlive uint16) {
	srv := c.srv
	cfg := &srv.cfg
	if assigned {
		p.AssignedClientID = c.info.ClientID // [v5 MQTT-3.2.2-16]
	}
	if capped {
		p.SessionExpiry = expiry // the server's value replaces the client's (section 3.2.2.3.2)
		p.Mark(packet.PropSessionExpiry)
	}
	if cfg.receiveMaximum != DefaultReceiveMaximum {
		p.ReceiveMaximum = cfg.receiveMaximum
	}
	if cfg.maxQoS < 2 {
		p.MaximumQoS = cfg.maxQoS // [v5 MQTT-3.2.2-9]
		p.Mark(packet.PropMaximumQoS)
	}
	if srv.RetainUnavailable {
		p.RetainAvailable = 0
		p.Mark(packet.PropRetainAvailable)
	}
	p.MaximumPacketSize = cfg.maxPacketSize
	p.TopicAliasMaximum = cfg.topicAliasMax
	if srv.WildcardSubscriptionsUnavailable {
		p.WildcardSubAvailable = 0
		p.Mark(packet.PropWildcardSubAvailable)
	}
	if srv.SubscriptionIDsUnavailable {
		p.SubIDAvailable = 0
		p.Mark(packet.PropSubIDAvailable)
	}
	if srv.SharedSubscriptionsUnavailable {
		p.SharedSubAvailable = 0
		p.Mark(packet.PropSharedSubAvailable)
	}
	if srv.ServerKeepAlive > 0 {
		p.ServerKeepAlive = keepAlive // [v5 MQTT-3.2.2-21] the client uses it
		p.Mark(packet.PropServerKeepAlive)
	}
	if cp.Properties.RequestResponseInfo == 1 { // none when it is 0 [v5 MQTT-3.1.2-28]
		p.ResponseInfo = strings.ReplaceAll(cfg.responseInfo, "%c", c.info.ClientID)
	}
}

// connectFailed handles a CONNECT that could not be read.
func (c *conn) connectFailed(err error) {
	var pe *packet.ProtocolError
	switch {
	case errors.Is(err, packet.ErrProtocolName):
		// Not MQTT [v3 MQTT-3.1.2-1]: closed without a CONNACK, as every
		// CONNECT that does not conform to section 3.1 [v3 MQTT-3.1.4-1].
		c.srv.stats.failed[preNotMQTT].Add(1)
		c.log.Info("connection closed: not an MQTT protocol name", "remote", logAddr{c.info.RemoteAddr}, "err", err)
	case errors.As(err, &pe) && pe.Code == packet.UnsupportedProtocolVersion:
		// [v3 MQTT-3.1.2-2] answer return code 1 and close; a 5.0 server
		// may answer 0x84 [v5 MQTT-3.1.2-2]. The level is unknown, so the
		// 3.1.1 form is sent, which every client can read.
		c.srv.stats.failed[preBadVersion].Add(1)
		c.writeDirect(&packet.Connack{ReasonCode: packet.V3UnacceptableProtocolVersion})
		c.log.Info("connection refused: unsupported protocol", "remote", logAddr{c.info.RemoteAddr}, "err", err)
	case errors.As(err, &pe):
		// A CONNECT that does not match section 3.1: closed
		// [v5 MQTT-3.1.4-1] [v5 MQTT-4.13.1-1].
		// [v3 MQTT-3.1.4-1] no CONNACK for a CONNECT that does not conform.
		c.srv.stats.failed[preBadConnect].Add(1)
		c.log.Info("connection closed: bad CONNECT", "remote", logAddr{c.info.RemoteAddr}, "err", err)
	case isTimeout(err):
		c.srv.stats.failed[preTimeout].Add(1)
		c.log.Info("connection closed: no CONNECT in time", "remote", logAddr{c.info.RemoteAddr}, "timeout", c.srv.cfg.connectTimeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		c.srv.stats.failed[preClosed].Add(1)
		c.log.Debug("connection closed before CONNECT", "remote", logAddr{c.info.RemoteAddr})
	default:
		c.srv.stats.failed[preOther].Add(1)
		c.log.Info("connection closed before CONNECT", "remote", logAddr{c.info.RemoteAddr}, "err", err)
	}
}

// writeDirect writes one packet before the writer goroutine exists. A
// packet larger than the client's Maximum Packet Size, even without its
// Reason String and User Properties, is not sent [v5 MQTT-3.1.2-24].
func (c *conn) writeDirect(p packet.Packet) {
	v := c.version
	if v == 0 {
		v = packet.V311
	}
	b, err := packet.AppendFitting(nil, p, v, c.maxOut)
	switch {
	case errors.Is(err, packet.ErrPacketTooLarge):
		c.log.Info("packet not sent: larger than the client's Maximum Packet Size", "client", c.info.ClientID,
			"remote", logAddr{c.info.RemoteAddr}, "packet", p.Type(), "maximum_packet_size", c.maxOut)
		return
	case err != nil:
		c.log.Error("cannot encode", "packet", p.Type(), "err", err)
		return
	}
	c.writeEncoded(p, b)
}

// writeEncoded writes b, the encoding of p, before the writer goroutine
// exists.
func (c *conn) writeEncoded(p packet.Packet, b []byte) {
	if c.trace {
		c.log.Log(context.Background(), LevelTrace, "send", "client", c.info.ClientID, "packet", p.String())
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.writeTimeout))
	if n, err := c.nc.Write(b); err == nil {
		c.srv.stats.bytesOut.Add(uint64(n))
	}
}

func newClientID() string {
	var b [12]byte
	rand.Read(b[:])
	return "auto-" + hex.EncodeToString(b[:])
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readLoop reads packets until the connection ends and returns why.
func (c *conn) readLoop() error {
	var deadline time.Time
	if c.keepAlive == 0 {
		c.nc.SetReadDeadline(time.Time{}) // keep alive off: no limit after CONNECT
	}
	for {
		if c.keepAlive > 0 {
			// Moving the deadline costs a timer update, so it moves only
			// when it would advance by more than the slack; with the
			// slack added, the limit stays between 1.5 x keep alive and
			// that plus an eighth of the keep alive (at most a second).
			if d := time.Now().Add(c.keepAlive + c.kaSlack); d.Sub(deadline) > c.kaSlack {
				c.nc.SetReadDeadline(d)
				deadline = d
			}
		}
		if len(c.pend) > 0 && c.r.Buffered() == 0 {
			if err := c.flushPublishes(); err != nil {
				return err
			}
		}
		if err := c.r.Fill(); err != nil {
			return err
		}
		p, err := c.r.ReadPacket()
		if err != nil {
			return err
		}
		if c.trace {
			c.log.Log(context.Background(), LevelTrace, "recv", "client", c.info.ClientID, "packet", p.String())
		}
		if err := c.handle(p); err != nil {
			return err // a protocol violation: teardown closes the connection [v3 MQTT-4.8.0-1]
		}
	}
}

// errDisconnect ends the read loop after a DISCONNECT from the client.
var errDisconnect = errors.New("client disconnected")

// handle processes one packet from the client.
func (c *conn) handle(p packet.Packet) error {
	if c.srv.batchesPublishes() && p.Type() != packet.PUBLISH {
		// The client's PUBLISHes take effect before what it sends next.
		if err := c.drainPublishes(); err != nil {
			return err
		}
	}
	switch p := p.(type) {
	case *packet.Publish:
		return c.onPublish(p)
	case *packet.Puback:
		// The QoS 1 message is acknowledged only now [v3 MQTT-4.3.2-1].
		// A PUBACK ends the exchange whatever its reason code: the packet
		// id and its slot of the in-flight window are free again
		// [v5 MQTT-4.3.2-3]: one refused (>= 0x80) is not sent again
		// [v5 MQTT-4.4.0-2], nor offered to another member of its shared
		// subscription [v5 MQTT-4.8.2-6].
		s := c.sess
		s.mu.Lock()
		f, ok := s.out.Ack(p.PacketID)
		s.mu.Unlock()
		if ok {
			c.srv.forget(s, f.Item.seq)
		}
		if !ok {
			c.log.Debug("PUBACK for an unknown packet id", "client", c.info.ClientID, "id", p.PacketID)
		} else if p.ReasonCode.IsError() {
			c.refused(f.Item.msg, packet.PUBACK, p.ReasonCode)
		}
		c.kick()
	case *packet.Pubrec:
		s := c.sess
		s.mu.Lock()
		r, f := s.out.Rec(p.PacketID, p.ReasonCode, time.Now())
		var seq uint64
		if r == mqttsession.RecRelease {
			if fl := s.out.Get(p.PacketID); fl != nil {
				seq = fl.Item.seq
			}
		}
		s.mu.Unlock()
		if r == mqttsession.RecFailed {
			c.srv.forget(s, f.Item.seq)
		} else if seq != 0 {
			// Released before the PUBREL goes: after a restart the
			// message is resent as PUBREL, never as PUBLISH [v5 MQTT-4.3.3-6].
			c.srv.persist("released delivery", store.Released(s.id, seq))
		}
		switch {
		case r == mqttsession.RecFailed:
			// PUBREL follows only a PUBREC below 0x80 [v5 MQTT-4.3.3-4]: one
			// of 0x80 or above ends the exchange, and the packet id and its
			// Receive Maximum slot are free again (MQTT 5 sections 2.2.1,
			// 4.9). (3.1.1 PUBRECs carry no reason code.)
			c.refused(f.Item.msg, packet.PUBREC, p.ReasonCode)
			c.kick() // the window has room: the next message may go
		case p.ReasonCode.IsError():
			// For an unknown id, or one released already: nothing to end
			// and no PUBREL to send.
			c.log.Debug("PUBREC with an error code for an unknown packet id", "client", c.info.ClientID, "id", p.PacketID, "code", p.ReasonCode.String())
			c.kick()
		case r == mqttsession.RecRelease:
			// QoS 2 sender: PUBREL for the PUBREC, kept until PUBCOMP
			// [v3 MQTT-4.3.3-1].
			c.send(ctrlPkt{t: packet.PUBREL, id: p.PacketID})
		default:
			// Answer an unknown id with PUBREL 0x92 Packet Identifier not
			// found (MQTT 5 section 3.6.2.1); 3.1.1 sends a plain PUBREL.
			c.send(ctrlPkt{t: packet.PUBREL, id: p.PacketID, code: packet.PacketIdentifierNotFound})
		}
	case *packet.Pubcomp:
		s := c.sess
		s.mu.Lock()
		f, ok := s.out.Comp(p.PacketID)
		s.mu.Unlock()
		if ok {
			c.srv.forget(s, f.Item.seq)
		}
		c.kick()
	case *packet.Pubrel:
		// The id starts a new message after the PUBCOMP [v5 MQTT-4.3.3-12],
		// which frees a unit of the client's send quota (section 4.9).
		s := c.sess
		s.mu.Lock()
		ok := s.in.Release(p.PacketID)
		s.mu.Unlock()
		code := packet.Success
		if !ok {
			code = packet.PacketIdentifierNotFound
		} else if s.durable.Load() {
			// Forgotten before the PUBCOMP, after which the client may
			// use the id for a new message [v5 MQTT-4.3.3-12].
			if err := c.srv.persist("QoS 2 release", store.DeleteIncoming(s.id, p.PacketID)); err != nil {
				return fmt.Errorf("the store could not record a PUBREL: %w", err)
			}
		}
		// [v5 MQTT-4.3.3-11] [v3 MQTT-4.3.3-2] answer PUBREL with PUBCOMP,
		// whether or not the message has expired meanwhile [v5 MQTT-4.3.3-13].
		c.send(ctrlPkt{t: packet.PUBCOMP, id: p.PacketID, code: code})
	case *packet.Subscribe:
		return c.onSubscribe(p)
	case *packet.Unsubscribe:
		return c.onUnsubscribe(p)
	case *packet.Pingreq:
		c.send(ctrlPkt{t: packet.PINGRESP}) // [v5 MQTT-3.12.4-1] [v3 MQTT-3.12.4-1]
	case *packet.Disconnect:
		return c.onDisconnect(p)
	case *packet.Connect:
		// [v5 MQTT-3.1.0-2] [v3 MQTT-3.1.0-2] a second CONNECT is a protocol error,
		// answered by DISCONNECT, never by a second CONNACK [v5 MQTT-3.2.0-2].
		return protocolError(packet.CONNECT, "v5 MQTT-3.1.0-2", "second CONNECT")
	case *packet.Auth:
		return c.onAuth(p)
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP: only a server sends these.
		return protocolError(p.Type(), "noid:server-only-packet", p.Type().String()+" from a client")
	}
	return nil
}

// refused counts message m, which the client answered with a PUBACK or
// PUBREC of reason code code (0x80 or above), as a failed delivery: the
// dropped statistic and an EventDrop whose Err says so. The message is
// not sent again, nor given to another member of a shared subscription
// group [v5 MQTT-4.8.2-6].
func (c *conn) refused(m *Message, ack packet.Type, code packet.ReasonCode) {
	c.log.Debug("client refused a message", "client", c.info.ClientID, "topic", m.Topic, "packet", ack, "code", code.String())
	c.srv.dropped(c.sess, m, &refusedError{ack: ack, code: code})
}

// onDisconnect handles a DISCONNECT from the client.
func (c *conn) onDisconnect(p *packet.Disconnect) error {
	if c.version == packet.V5 {
		if p.Properties.Has(packet.PropSessionExpiry) {
			e := p.Properties.SessionExpiry
			if c.expiry0 && e != 0 {
				// A session that was to end with the connection cannot be
				// given an expiry at DISCONNECT (section 3.14.2.2.2).
				return protocolError(packet.DISCONNECT, "v5 noid:disconnect-session-expiry", "non-zero Session Expiry Interval in DISCONNECT after 0 in CONNECT")
			}
			if m := c.srv.cfg.maxSessionExpiry; m > 0 && e > m {
				e = m
			}
			s := c.sess
			s.mu.Lock()
			s.expiry = e
			s.mu.Unlock()
		}
		if p.ReasonCode != packet.NormalDisconnection {
			attrs := []any{"client", c.info.ClientID, "code", p.ReasonCode.String()}
			if p.Properties.ReasonString != "" {
				attrs = append(attrs, "reason", p.Properties.ReasonString)
			}
			c.log.Info("client sent DISCONNECT with a reason", attrs...)
		}
		if p.ReasonCode == packet.DisconnectWithWill {
			return errDisconnectWill // the client asks for its will to be sent
		}
	}
	c.sentDisconnect = true
	c.will = nil // [v5 MQTT-3.14.4-3] [v3 MQTT-3.14.4-3] [v3 MQTT-3.1.2-10] no will after DISCONNECT
	// The stored will is removed on DISCONNECT 0x00 [v5 MQTT-3.1.2-10].
	return errDisconnect
}

// errDisconnectWill ends the read loop after a DISCONNECT 0x04.
var errDisconnectWill = errors.New("client disconnected with will")

// send hands a packet to the writer, waiting while its queue is full
// (back pressure on a client that sends faster than it reads).
func (c *conn) send(p ctrlPkt) {
	select {
	case c.ctrl <- p:
		c.startWriter()
	case <-c.writerDone:
	}
}

// kick wakes the writer, starting it if needed: a message was queued or
// the in-flight window opened.
func (c *conn) kick() {
	c.signal()
	if c.started.Load() {
		c.startWriter()
	}
	// Before the CONNACK is queued, the session may already have this
	// connection (attach) and a message may be delivered to it: the wake
	// token waits, and the writer that sends the CONNACK finds it, so
	// that nothing goes out before the CONNACK [v5 MQTT-3.2.0-1] and the
	// writer never runs before c.sess is set.
}

// signal tells a running writer there is work, without starting one.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) isKicked() bool { return c.kicked.Load() != 0 }

// takenOver is called when a new connection with the same client id
// arrives [v5 MQTT-3.1.4-3] [v3 MQTT-3.1.4-2].
func (c *conn) takenOver() { c.closeWith(packet.SessionTakenOver) }

// shutdown closes the connection because the server is stopping.
func (c *conn) shutdown(code packet.ReasonCode) { c.closeWith(code) }

// closeWith closes the connection from the server side: MQTT 5 clients
// get a DISCONNECT with code first.
func (c *conn) closeWith(code packet.ReasonCode) {
	if !c.kicked.CompareAndSwap(0, uint32(code)) {
		return
	}
	// c.started, not c.sess: closeWith runs on other goroutines (takeover,
	// Shutdown) while connect may still be writing c's fields.
	// The server's DISCONNECT, here and in teardown, never carries a
	// Session Expiry Interval [v5 MQTT-3.14.2-2].
	if c.started.Load() && c.version == packet.V5 {
		select {
		case c.ctrl <- ctrlPkt{p: &packet.Disconnect{ReasonCode: code}, final: true}:
			// The writer closes the connection after sending it; the
			// write deadline bounds how long that can take.
			c.startWriter()
			return
		case <-c.writerDone:
		default:
		}
	}
	c.nc.Close()
}

// teardown ends the connection after the read loop stopped with err.
func (c *conn) teardown(err error) {
	srv := c.srv
	var pe *packet.ProtocolError
	reason := "client disconnected"
	level := slog.LevelInfo
	byClient := errors.Is(err, errDisconnect) || errors.Is(err, errDisconnectWill)
	byServer := false // the broker closed the connection: the read error is its own doing
	switch {
	case errors.Is(err, errDisconnect):
	case errors.Is(err, errDisconnectWill):
		reason = "client disconnected, asking for its will"
	case c.isKicked():
		reason = packet.ReasonCode(c.kicked.Load()).String()
		byServer = true
	case srv.closing.Load():
		// Close shuts connections without a DISCONNECT; their readers
		// fail on the closed socket, which is no news.
		reason = packet.ServerShuttingDown.String()
		byServer = true
	case errors.As(err, &pe):
		reason = "protocol error"
		level = slog.LevelWarn
		if c.version == packet.V5 {
			d := &packet.Disconnect{ReasonCode: pe.Code}
			d.Properties.ReasonString = pe.Msg // allowed in DISCONNECT whatever Request Problem Information says [v5 MQTT-3.1.2-29]
			c.closeWithPacket(d)
		}
	case isTimeout(err):
		reason = "keep alive timeout"
		if c.version == packet.V5 {
			c.closeWithPacket(&packet.Disconnect{ReasonCode: packet.KeepAliveTimeout})
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		reason = "connection lost"
	default:
		reason = "network error"
	}
	c.stopWriter()
	c.nc.Close()
	if c.will != nil && !c.sentDisconnect { // no will flag, no will [v3 MQTT-3.1.2-12]
		srv.onWill(c)
	}
	srv.detach(c, c.sess)
	srv.clusterDisconnected(c) // the back plane's copy of the will, and the client id
	srv.stats.connected.Add(-1)
	attrs := []any{"client", c.info.ClientID, userAttr(c.info.Username), "remote", logAddr{c.info.RemoteAddr}, "reason", reason}
	if err != nil && !byClient && !byServer {
		attrs = append(attrs, "err", err)
	}
	c.log.Log(context.Background(), level, "client disconnected", attrs...)
	var evErr error
	if !byClient {
		evErr = err
	}
	srv.observe(Event{Kind: EventDisconnect, Client: &c.info, Err: evErr})
}

// closeWithPacket sends p as the last packet and lets the writer close.
func (c *conn) closeWithPacket(p packet.Packet) {
	select {
	case c.ctrl <- ctrlPkt{p: p, final: true}:
		c.startWriter()
	case <-c.writerDone:
	default:
	}
}

// stopWriter stops the writer after it has sent what is in its control
// queue (bounded by the write deadline) and waits for it.
func (c *conn) stopWriter() {
	c.closeOnce.Do(func() { close(c.quit) })
	c.startWriter() // one must run to see quit and send what is queued
	<-c.writerDone
}

// onWill handles the will of a connection that ended without DISCONNECT
// [v5 MQTT-3.1.2-8] [v3 MQTT-3.1.2-8]: it is published now, or, for an
// MQTT 5 will with a Will Delay Interval on a session that outlives the
// connection, when the delay has passed or the session ends, whichever
// comes first, and not at all if the session resumes meanwhile
// [v5 MQTT-3.1.3-9] (section 3.1.2.5).
func (srv *Server) onWill(c *conn) {
	w := c.will
	c.will = nil // published once, then gone [v5 MQTT-3.1.2-10] [v3 MQTT-3.1.2-10]
	// Retained or not as Will Retain says [v5 MQTT-3.1.2-14] [v5 MQTT-3.1.2-15] [v3 MQTT-3.1.2-16] [v3 MQTT-3.1.2-17].
	info := c.info
	lw := c.willOf(w)
	lw.owner = &info
	delay := time.Duration(lw.delay) * time.Second
	s := c.sess
	s.mu.Lock()
	lasting := s.expiry != 0
	s.mu.Unlock()
	// A server that stops ends its sessions, and with them the wait of
	// their wills, unless a store keeps the sessions (and the wills).
	if delay > 0 && lasting && (!srv.closing.Load() || srv.Store != nil) {
		c.log.Info("will delayed", "client", c.info.ClientID, "topic", w.Topic, "delay", delay)
		srv.delayWill(s, lw, delay)
		return
	}
	srv.sendWill(lw)
}

// willOf is the will message of w, a will of this connection's CONNECT,
// and its delay.
func (c *conn) willOf(w *packet.Will) *lastWill {
	m := &Message{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain, From: c.info.ClientID}
	lw := &lastWill{msg: m}
	if c.version == packet.V5 {
		m.Properties = w.Properties // User Properties in their order [v5 MQTT-3.1.3-10]
		m.Properties.WillDelay = 0
		m.Properties.Unmark(packet.PropWillDelay)
		lw.delay = w.Properties.WillDelay
	}
	return lw
}

// sendWill publishes a will message, created now: its Message Expiry
// Interval counts from the publication.
func (srv *Server) sendWill(w *lastWill) {
	m := w.msg
	m.Created = time.Now()
	m.SetExpiry(m.Created)
	srv.cfg.log.Info("publishing will", "client", m.From, "topic", m.Topic)
	srv.publish(m, nil)
	if w.owner != nil {
		srv.observe(Event{Kind: EventPublish, Client: w.owner, Topic: m.Topic, QoS: m.QoS, Message: m})
	}
}

// countingReader counts the bytes read from a connection.
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(uint64(n))
	return n, err
}

// setUsername changes the client's user name after a re-authentication.
func (c *conn) setUsername(u string) {
	c.info.Username = u
	s := c.sess
	s.mu.Lock()
	if s.conn == c {
		s.info.Username = u
	}
	s.mu.Unlock()
}
