package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
)

// Client is an MQTT client. Its methods are safe for concurrent use.
type Client struct {
	cfg   Config
	log   *slog.Logger
	store store.Session

	mu            sync.Mutex
	out           session.Outbound[*pubOp] // QoS 1 and 2 in flight
	in            session.Inbound          // QoS 2 received, awaiting PUBREL
	queue         session.Queue[*pubOp]    // accepted, not yet sent
	seq           uint64                   // last store sequence number
	room          chan struct{}            // closed when the queue has room, if roomWaiters > 0
	roomWaiters   int                      // publishers waiting on room
	progress      chan struct{}            // closed after each write, if progressWait
	progressWait  bool                     // Disconnect waits on progress
	cn            *conn                    // the live connection, nil if none
	clientID      string
	started       bool // Connect succeeded once: the manager runs
	closed        bool
	ctrl          map[uint16]*ctrlOp         // SUBSCRIBE / UNSUBSCRIBE awaiting their ack
	subs          []*Subscription            // active subscriptions, in subscription order
	subByID       map[uint32][]*Subscription // by Subscription Identifier
	nextSub       uint32
	catchAll      *Subscription
	unacked2      map[uint16]*ackEntry // QoS 2 deliveries not yet acknowledged (ManualAck), across connections
	redirect      string               // server to try next (MQTT 5 redirection)
	redirects     int
	next          int // index in Servers of the next server to try
	auth          *authOp
	reqs          *requester
	reqInit       *reqInit      // the first Request subscribing, nil if none
	gone          error         // Config.Conn broke with no server to reconnect to
	goneCh        chan struct{} // closed when gone is set
	firstConnDone bool
	serverProps   packet.Properties // the live connection's CONNACK properties

	life        context.Context // ends at Disconnect
	endLife     context.CancelFunc
	closing     <-chan struct{} // life.Done()
	managerDone chan struct{}
	dispatchers sync.WaitGroup
	storeCost   atomic.Int64             // moving average of a store call, in ns: see slowStore
	dispatchG   map[uint64]*Subscription // running dispatchers by goroutine id, under mu
}

// New returns a client for cfg, restoring the session from cfg.Store.
// It does not connect: call Connect.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:         cfg,
		log:         cfg.Logger,
		store:       cfg.Store,
		clientID:    cfg.ClientID,
		ctrl:        map[uint16]*ctrlOp{},
		subByID:     map[uint32][]*Subscription{},
		unacked2:    map[uint16]*ackEntry{},
		dispatchG:   map[uint64]*Subscription{},
		goneCh:      make(chan struct{}),
		room:        make(chan struct{}),
		progress:    make(chan struct{}),
		managerDone: make(chan struct{}),
	}
	for i, s := range c.cfg.Servers {
		c.cfg.Servers[i], _ = normalizeURL(s)
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	c.closing = c.life.Done()
	c.in.Max = int(cfg.Properties.ReceiveMaximum)
	c.catchAll = &Subscription{c: c, handler: cfg.OnMessage, active: true, catchAll: true}
	if c.store == nil {
		c.store = memory.New()
	}
	if cfg.CleanStart {
		if err := c.store.Clear(); err != nil {
			return nil, fmt.Errorf("client: clearing Config.Store: %w", err)
		}
	} else if err := c.restore(); err != nil {
		return nil, err
	}
	return c, nil
}

// restore loads the session from the store: messages that had a packet
// identifier go back in flight (to be sent again, in order, on the first
// connection); the others are queued.
func (c *Client) restore() error {
	outs, err := c.store.Outgoing()
	if err != nil {
		return fmt.Errorf("client: reading Config.Store: %w", err)
	}
	for _, o := range outs {
		op := &pubOp{msg: o.Msg, seq: o.Seq, stored: true}
		c.seq = max(c.seq, o.Seq)
		if o.PacketID != 0 && c.queue.Len() == 0 && c.out.Restore(o.PacketID, session.Flight[*pubOp]{Item: op, QoS: o.Msg.QoS, Seq: o.Seq, Released: o.Released}) {
			continue
		}
		c.queue.Push(op)
	}
	ins, err := c.store.Incoming()
	if err != nil {
		return fmt.Errorf("client: reading Config.Store: %w", err)
	}
	for _, id := range ins {
		c.in.Restore(id)
	}
	if len(outs)+len(ins) > 0 {
		c.log.Info("session restored from store", "outgoing", len(outs), "incoming", len(ins))
	}
	return nil
}

// ClientID returns the client identifier: Config.ClientID, or the one
// the server assigned.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// Connected reports whether the client has a live connection.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cn != nil
}

// Connect connects to the first server that accepts, trying each of
// Config.Servers once in order (and following redirections when
// Config.FollowRedirects allows), and returns its CONNACK. A refusal is a
// *ConnectError carrying the reason code. After the first success the
// client keeps itself connected, reconnecting with backoff, until
// Disconnect.
func (c *Client) Connect(ctx context.Context) (*Connack, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.started {
		c.mu.Unlock()
		return nil, errors.New("client: Connect called twice: the client reconnects by itself")
	}
	c.mu.Unlock()
	var lastErr error
	tries := len(c.cfg.Servers)
	if c.cfg.Conn != nil {
		tries++
	}
	for i := 0; i < tries; i++ {
		cn, ack, err := c.attempt(ctx)
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				cn.nc.Close()
				return nil, ErrClosed
			}
			c.started = true
			c.startLocked(cn, ack)
			c.mu.Unlock()
			go c.manage(cn)
			if c.cfg.OnConnectionUp != nil {
				c.cfg.OnConnectionUp(ack)
			}
			return ack, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		c.mu.Lock()
		redirect := c.redirect != ""
		c.mu.Unlock()
		if redirect {
			i-- // a redirection does not use up a server
		}
	}
	return nil, lastErr
}

// attempt makes one connection: to the redirected server, to Config.Conn
// the first time, or to the next server in rotation.
func (c *Client) attempt(ctx context.Context) (*conn, *Connack, error) {
	c.mu.Lock()
	first := !c.firstConnDone
	var server string
	var nc net.Conn
	switch {
	case c.redirect != "":
		server, c.redirect = c.redirect, ""
	case c.cfg.Conn != nil && first && c.next == 0:
		nc = c.cfg.Conn
		server = "conn://" + nc.RemoteAddr().String()
		c.next = -1
	case len(c.cfg.Servers) > 0:
		if c.next < 0 {
			c.next = 0
		}
		server = c.cfg.Servers[c.next%len(c.cfg.Servers)]
		c.next++
	default:
		c.mu.Unlock()
		return nil, nil, ErrClosed
	}
	c.mu.Unlock()
	if nc == nil {
		var err error
		nc, err = c.dial(ctx, server)
		if err != nil {
			return nil, nil, fmt.Errorf("client: dialing %s: %w", server, err)
		}
	}
	cn, ack, err := c.handshake(ctx, nc, server, first)
	if err != nil {
		nc.Close()
		var ce *ConnectError
		if errors.As(err, &ce) {
			c.noteRedirect(ce.ReasonCode, ce.Properties.ServerReference, server)
		}
		c.log.Info("connection attempt failed", "server", server, "err", err)
		return nil, nil, err
	}
	c.mu.Lock()
	c.redirects = 0
	c.mu.Unlock()
	return cn, ack, nil
}

// noteRedirect records an MQTT 5 redirection to follow, within
// Config.FollowRedirects in a row.
func (c *Client) noteRedirect(code packet.ReasonCode, ref, from string) {
	if (code != packet.UseAnotherServer && code != packet.ServerMoved) || ref == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.redirects >= c.cfg.FollowRedirects {
		return
	}
	c.redirects++
	// A Server Reference is a host[:port], possibly several separated by
	// spaces; a full URL is taken as is. The scheme is the current one.
	ref = strings.Fields(ref)[0]
	if !strings.Contains(ref, "://") {
		scheme := "tcp"
		if i := strings.Index(from, "://"); i > 0 && !strings.HasPrefix(from, "conn://") {
			scheme = from[:i]
		}
		ref = scheme + "://" + ref
	}
	c.redirect = ref
	c.log.Info("following redirection", "from", from, "to", ref, "reason", code.String())
}

// startLocked makes cn the live connection: window, aliases, session
// resumption, resubscription, and the reader and writer goroutines.
func (c *Client) startLocked(cn *conn, ack *Connack) {
	c.firstConnDone = true
	c.serverProps = ack.Properties
	if id := ack.Properties.AssignedClientID; id != "" {
		c.clientID = id
	}
	window := 65535
	if cn.version == packet.V5 && ack.Properties.Has(packet.PropReceiveMaximum) {
		window = int(ack.Properties.ReceiveMaximum)
	}
	if m := c.cfg.MaxInflight; m > 0 && m < window {
		window = m // the client's own limit [v5 MQTT-3.3.4-7]
	}
	c.out.SetWindow(window)
	if !ack.SessionPresent {
		// The server has no session: its QoS 2 state is gone, so the ids
		// we await PUBRELs for will never be released.
		for _, id := range c.in.IDs() {
			c.store.DeleteIncoming(id)
		}
		c.in.Clear()
		clear(c.unacked2)
		if !c.cfg.NoResubscribe {
			c.resubscribeLocked(cn)
		}
	}
	c.in.NewConnection()
	// Everything in flight is sent again, in order, before anything new,
	// whether or not the server kept the session: a server without it
	// takes them as new messages [v5 MQTT-4.4.0-1] [v3 MQTT-4.4.0-1].
	c.out.Resume()
	c.cn = cn
	cn.wg.Add(2)
	go cn.reader()
	go cn.writer()
	cn.signal()
	c.wakeRoomLocked()
}

// manage keeps the client connected until Disconnect.
func (c *Client) manage(cn *conn) {
	defer close(c.managerDone)
	for {
		select {
		case <-cn.done:
		case <-c.closing:
			return
		}
		cn.wg.Wait()
		c.connLost(cn)
		select {
		case <-c.closing:
			return
		default:
		}
		var de *DisconnectError
		if errors.As(cn.err, &de) {
			c.noteRedirect(de.ReasonCode, de.Properties.ServerReference, cn.server)
		}
		c.log.Info("connection lost", "server", cn.server, "err", cn.err)
		if c.cfg.OnConnectionDown != nil {
			c.cfg.OnConnectionDown(cn.err)
		}
		if len(c.cfg.Servers) == 0 {
			// Config.Conn only: nothing to reconnect to (Dial, too, needs a
			// server URL). Fail what waits, and what comes, at once.
			c.log.Info("no server to reconnect to (Config.Conn only)")
			c.mu.Lock()
			c.connGoneLocked(cn.err)
			c.mu.Unlock()
			return
		}
		next, ack := c.reconnect()
		if next == nil {
			return
		}
		if c.cfg.OnConnectionUp != nil {
			c.cfg.OnConnectionUp(ack)
		}
		cn = next
	}
}

// reconnect tries the servers in rotation with exponential backoff until
// one accepts or the client is closed.
func (c *Client) reconnect() (*conn, *Connack) {
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		redirect := c.redirect != ""
		c.mu.Unlock()
		if !redirect {
			t := time.NewTimer(c.backoff(attempt))
			select {
			case <-t.C:
			case <-c.closing:
				t.Stop()
				return nil, nil
			}
		}
		c.mu.Lock()
		c.expireQueuedLocked(time.Now())
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(c.life, c.cfg.ConnectTimeout)
		cn, ack, err := c.attempt(ctx)
		cancel()
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			cn.nc.Close()
			return nil, nil
		}
		c.startLocked(cn, ack)
		c.mu.Unlock()
		c.log.Info("connected", "server", ack.Server, "session_present", ack.SessionPresent)
		return cn, ack
	}
}

// connGoneLocked ends the session's use after the connection given in
// Config.Conn broke, when there is no server to reconnect to: queued
// publishes fail with an error wrapping ErrClosed (never sent), publishes
// in flight with one wrapping ErrConnectionLost (outcome unknown), and so
// do later calls. QoS 1 and 2 messages stay in the store, for a durable
// store's next process; Disconnect still closes the client.
func (c *Client) connGoneLocked(cause error) {
	if c.gone != nil {
		return
	}
	c.gone = fmt.Errorf("client: the connection given in Config.Conn broke (%v) and there is no server to reconnect to (give Config.Servers to reconnect): %w", cause, ErrClosed)
	lost := fmt.Errorf("client: the connection given in Config.Conn broke (%v) before the acknowledgement: %w", cause, ErrConnectionLost)
	for c.queue.Len() > 0 {
		c.queue.Pop().tok.complete(PublishResult{}, c.gone)
	}
	for _, id := range c.out.Order() {
		c.out.Get(id).Item.tok.complete(PublishResult{}, lost)
	}
	for id, op := range c.ctrl {
		delete(c.ctrl, id)
		c.out.Unreserve(id)
		op.finish(nil, lost)
	}
	c.wakeRoomLocked()
	close(c.goneCh)
}

// backoff returns the wait before reconnection attempt n (from 0):
// exponential from BackoffMin to BackoffMax, with BackoffJitter of it
// random.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffMin
	for i := 0; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	j := c.cfg.BackoffJitter
	return time.Duration(float64(d)*(1-j) + mrand.Float64()*float64(d)*j)
}

// connLost clears what belonged to a connection that ended.
func (c *Client) connLost(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cn == cn {
		c.cn = nil
	}
	for id, op := range c.ctrl {
		if op.cn == cn {
			delete(c.ctrl, id)
			c.out.Unreserve(id)
			op.finish(nil, ErrConnectionLost)
		}
	}
	if c.auth != nil && c.auth.cn == cn {
		c.auth.finish(ErrConnectionLost)
		c.auth = nil
	}
	cn.acks = nil
	cn.ctrl = nil
	c.expireQueuedLocked(time.Now())
	// QoS 0 messages not written are dropped unless they may be queued.
	if !c.cfg.QueueQoS0 {
		for _, op := range c.queue.Extract(func(op **pubOp) bool { return (*op).msg.QoS == 0 }) {
			op.tok.complete(PublishResult{}, ErrDropped)
		}
		c.wakeRoomLocked()
	}
}

// wakeRoomLocked tells publishers waiting for queue room to look again.
// The channel is remade only when someone waits on it: most fills and
// acknowledgements find no one.
func (c *Client) wakeRoomLocked() {
	if c.roomWaiters == 0 {
		return
	}
	close(c.room)
	c.room = make(chan struct{})
}

// progressed tells Disconnect that bytes were written.
func (c *Client) progressed() {
	c.mu.Lock()
	c.progressedLocked()
	c.mu.Unlock()
}

// progressedLocked is progressed under c.mu. Only a waiting Disconnect
// needs the channel remade.
func (c *Client) progressedLocked() {
	if !c.progressWait {
		return
	}
	close(c.progress)
	c.progress = make(chan struct{})
}

// moreLocked reports whether the writer has more to write on cn.
func (c *Client) moreLocked(cn *conn) bool {
	if len(cn.ctrl) > 0 {
		return true
	}
	if c.out.Resending() && !c.out.Full() {
		return true
	}
	if c.queue.Len() > 0 {
		head := *c.queue.Peek()
		return head.ready() && (head.msg.QoS == 0 || !c.out.Full())
	}
	return false
}

// sentMark is a message sent for the first time under a packet
// identifier, to be recorded in the store (MarkSent) before its bytes
// are written.
type sentMark struct {
	seq uint64
	id  uint16
}

// fillLocked encodes what is ready to go on cn into buf, up to maxBatch
// bytes: control packets, then resends, then new messages while the
// server's Receive Maximum allows. QoS 0 tokens go to written, to be
// completed once the bytes are written; the packet identifiers given
// to QoS 1 and 2 messages go to marks, for the store.
func (c *Client) fillLocked(cn *conn, buf []byte, written []*Token, marks []sentMark) ([]byte, []*Token, []sentMark) {
	if c.cn != cn {
		if cn.closeNext {
			for _, p := range cn.ctrl {
				buf, _ = p.Append(buf, cn.version)
			}
			cn.ctrl = cn.ctrl[:0]
		}
		return buf, written, marks
	}
	var err error
	for len(cn.ctrl) > 0 && len(buf) < maxBatch {
		p := cn.ctrl[0]
		cn.ctrl[0] = nil
		cn.ctrl = cn.ctrl[1:]
		if buf, err = c.appendPacket(cn, buf, p); err != nil {
			c.log.Warn("packet not sent", "packet", p.Type(), "err", err)
		}
	}
	if cn.closeNext {
		return buf, written, marks
	}
	now := time.Now()
	for len(buf) < maxBatch {
		id, f, ok := c.out.NextResend(now)
		if !ok {
			break
		}
		if f.Released {
			buf, _ = c.appendPacket(cn, buf, &packet.Pubrel{PacketID: id})
			continue
		}
		p := publishPacketInto(&cn.scratch, f.Item.msg, id, now)
		p.Dup = true // [v5 MQTT-3.3.1-1] [v3 MQTT-3.3.1-1]
		if buf, err = c.appendPacket(cn, buf, p); err != nil {
			c.failFlightLocked(id, f.Item, err)
		}
	}
	for c.queue.Len() > 0 && len(buf) < maxBatch && !c.out.Resending() {
		op := *c.queue.Peek()
		if !op.ready() {
			break // its publisher is writing it to the store: it, and what follows, wait
		}
		if op.msg.Expired(now) {
			c.queue.Pop()
			c.expireLocked(op)
			continue
		}
		var id uint16
		if op.msg.QoS > 0 {
			var ok bool
			if id, ok = c.out.Add(op, op.msg.QoS, now); !ok {
				break // the window is full
			}
		}
		c.queue.Pop()
		p := publishPacketInto(&cn.scratch, op.msg, id, now)
		if buf, err = c.appendPacket(cn, buf, p); err != nil {
			if id != 0 {
				c.failFlightLocked(id, op, err)
			} else {
				op.tok.complete(PublishResult{}, err)
			}
			continue
		}
		if id == 0 {
			written = append(written, op.tok)
		} else {
			marks = append(marks, sentMark{op.seq, id})
		}
	}
	c.wakeRoomLocked()
	return buf, written, marks
}

// slowStoreCall is how long store calls must take on average for the
// client to take the store as one that syncs to disk: its calls are then
// made without the client's lock and concurrently, so that its group
// commit covers them with one fsync. Faster stores (memory, disk without
// Sync) are called one after the other, publishes under the lock.
const slowStoreCall = 50 * time.Microsecond

// timeStore runs one store call and folds its duration into the moving
// average (weight 1/8) that says whether the store is slow.
func (c *Client) timeStore(f func()) {
	start := time.Now()
	f()
	d := int64(time.Since(start))
	for {
		old := c.storeCost.Load()
		if c.storeCost.CompareAndSwap(old, old-old/8+d/8) {
			return
		}
	}
}

// slowStore reports whether the store's calls take about an fsync.
func (c *Client) slowStore() bool { return c.storeCost.Load() >= int64(slowStoreCall) }

// storeInline reports whether the n store calls of one batch, made
// without the client's lock, are made one after the other (a fast store,
// or one call) rather than concurrently (storeConcurrently). The callers
// loop themselves in the first case, so that no closure is allocated.
func (c *Client) storeInline(n int) bool { return n <= 1 || !c.slowStore() }

// storeConcurrently calls f(0) to f(n-1), the calls of one batch to a
// slow store, concurrently, so that they share its fsyncs.
func (c *Client) storeConcurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.timeStore(func() { f(i) })
		}()
	}
	wg.Wait()
}

// markSent records in the store the packet identifiers fillLocked gave,
// before their PUBLISHes are written (so no acknowledgement, and no
// DeleteOutgoing, can come first).
func (c *Client) markSent(marks []sentMark) {
	if c.storeInline(len(marks)) {
		for _, m := range marks {
			c.markSentOne(m)
		}
		return
	}
	c.storeConcurrently(len(marks), func(i int) { c.markSentOne(marks[i]) })
}

func (c *Client) markSentOne(m sentMark) {
	c.timeStore(func() {
		if err := c.store.MarkSent(m.seq, m.id); err != nil {
			c.log.Error("store: MarkSent", "err", err)
		}
	})
}

// failFlightLocked ends a flight that cannot be sent (too large for the
// server): it is dropped from the session and its publisher told.
func (c *Client) failFlightLocked(id uint16, op *pubOp, err error) {
	c.out.Remove(id)
	c.store.DeleteOutgoing(op.seq)
	op.tok.complete(PublishResult{}, fmt.Errorf("client: message to %q not sent: %w", op.msg.Topic, err))
}

// appendPacket encodes p for cn within the server's Maximum Packet Size,
// with topic aliases for PUBLISHes.
func (c *Client) appendPacket(cn *conn, buf []byte, p packet.Packet) ([]byte, error) {
	if cn.version != packet.V5 {
		return p.Append(buf, cn.version)
	}
	pub, isPub := p.(*packet.Publish)
	var alias uint16
	if isPub {
		alias = cn.aliases.Apply(pub)
	}
	out, err := packet.AppendFitting(buf, p, cn.version, cn.maxPacket)
	if err != nil {
		return buf, err
	}
	if alias != 0 {
		cn.aliases.Commit(pub.Topic, alias)
	}
	return out, nil
}

// publishPacketInto builds in p (the connection's scratch PUBLISH, encoded
// at once and not kept) the PUBLISH of m under packet identifier id, at
// now: sent late, a message carries the expiry interval that remains.
func publishPacketInto(p *packet.Publish, m *message.Message, id uint16, now time.Time) *packet.Publish {
	*p = packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic, PacketID: id, Properties: m.Properties, Payload: m.Payload}
	if r, ok := m.Remaining(now); ok {
		p.Properties.MessageExpiry = r
	}
	return p
}

// randomID returns a random client identifier of 23 characters at most
// [v3 MQTT-3.1.3-5].
func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return "tern-" + hex.EncodeToString(b[:])
}

// Disconnect ends the session's connection cleanly: it writes what is
// queued, sends DISCONNECT (MQTT 5: reason 0, or DisconnectWith's), closes
// the connection, stops every goroutine of the client and closes the
// store. QoS 1 and 2 messages not yet acknowledged stay in the store, for
// a durable store's next process. It waits for handlers to return until
// ctx ends; called from a handler, it does not wait for that handler,
// whose subscription gets no further message. The client cannot be used
// afterwards.
func (c *Client) Disconnect(ctx context.Context) error {
	return c.DisconnectWith(ctx, &packet.Disconnect{})
}

// DisconnectWith is Disconnect with the DISCONNECT to send (MQTT 5 reason
// code and properties, e.g. 0x04 to have the will published, or a new
// Session Expiry Interval).
func (c *Client) DisconnectWith(ctx context.Context, d *packet.Disconnect) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	c.endLife()
	started := c.started
	// Flush: wait until the queue and the control packets are written.
	for c.cn != nil && !c.cn.closeNext {
		cn := c.cn
		storing := c.queue.Any(func(op **pubOp) bool { return !(*op).ready() })
		if len(cn.ctrl) == 0 && !c.out.Resending() && (c.queue.Len() == 0 || !c.moreLocked(cn)) && !storing {
			cn.ctrl = append(cn.ctrl, d)
			cn.closeNext = true
			cn.signal()
			break
		}
		progress := c.progress
		c.progressWait = true
		c.mu.Unlock()
		select {
		case <-progress:
		case <-cn.done:
		case <-ctx.Done():
		}
		c.mu.Lock()
		if ctx.Err() != nil {
			break
		}
	}
	cn := c.cn
	c.mu.Unlock()
	var err error
	if cn != nil {
		select {
		case <-cn.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		cn.fail(ErrClosed)
		cn.wg.Wait()
		// A publisher writing inline (conn.flushInline) is done too
		// before the store closes.
		cn.wmu.Lock()
		cn.wmu.Unlock()
		c.connLost(cn)
	}
	if started {
		<-c.managerDone
	}
	c.mu.Lock()
	for c.queue.Len() > 0 {
		op := c.queue.Pop()
		op.tok.complete(PublishResult{}, ErrClosed)
	}
	for _, id := range c.out.Order() {
		c.out.Get(id).Item.tok.complete(PublishResult{}, ErrClosed)
	}
	subs := append(c.subs, c.catchAll)
	for _, s := range subs {
		s.active = false
		s.notifyLocked()
	}
	// Called from a handler: do not wait for that handler's dispatcher,
	// which ends when the handler returns, without handing it more.
	if s := c.dispatchG[goid()]; s != nil && !s.detached {
		s.detached = true
		c.dispatchers.Done()
	}
	if c.reqs != nil {
		c.reqs.closeLocked()
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.dispatchers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("client: handlers still running: %w", ctx.Err())
		}
	}
	if cerr := c.store.Close(); cerr != nil && err == nil && !errors.Is(cerr, store.ErrClosed) {
		err = cerr
	}
	return err
}
