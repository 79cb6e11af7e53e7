package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/disk"
	"github.com/ternmq/tern/topic"
	"github.com/ternmq/tern/transport"
)

// MarkerKey is the MQTT 5 User Property a bridge adds to every message it
// publishes, its value the bridge's name. A bridge does not carry a
// message that has it (see "Loops" in the package documentation).
const MarkerKey = "tern-bridge"

// Status is a snapshot of a bridge.
type Status struct {
	Name      string
	Remote    string
	Connected bool
	// Since is when the bridge last connected to or lost the remote (its
	// start until the first connection).
	Since time.Time
	// LastError is why the last connection attempt failed or the last
	// connection was lost; "" while connected.
	LastError string
	// In counts the messages carried from the remote to the local
	// broker, Out those carried from the local broker to the remote.
	In, Out uint64
	// Dropped counts the messages the bridge took and could not carry:
	// QoS 0 ones while the remote was down or while the bridge was
	// behind (more than client.Config.MaxBuffered, 1000, waiting), and
	// those either broker refused (an MQTT 5 reason code of 0x80 or
	// above, a bad topic). QoS 1 and 2 messages are not dropped by the
	// bridge: they wait (see the package documentation).
	Dropped uint64
	// Suppressed counts the messages not carried to stop a loop: ones
	// that came over a bridge already, and, with MQTT 3.1.1 remotes, the
	// bridge's own messages coming back.
	Suppressed uint64
}

// Bridge is a running bridge between a broker.Server and a remote broker.
type Bridge struct {
	cfg    Config
	srv    *broker.Server
	log    *slog.Logger
	remote *client.Client
	local  *client.Client
	// With Config.Dir, the two sides' stores (else nil): see handoverStore.
	localStore, remoteStore *handoverStore
	filters                 *filterFile // with Config.Dir: what each side subscribed to
	lis                     *transport.MemListener
	echo                    *echoTable

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// Publishes on their way, per direction, whose source messages are
	// acknowledged in order once they complete.
	acksOut, acksIn chan pending

	in, out, dropped, suppressed atomic.Uint64
	// What each side's MQTT 5 CONNACK allows: Maximum QoS and Retain
	// Available (the remote's from its last CONNACK).
	localLimits, remoteLimits atomic.Pointer[limits]
	// firstUp is closed at the first connection to the remote: until
	// then messages for it wait in the local broker, as the remote's
	// limits are not known.
	firstUp     chan struct{}
	firstUpOnce sync.Once
	outSub      atomic.Pointer[client.Subscription] // the local subscription of the Out mappings
	inSub       atomic.Pointer[client.Subscription] // the remote one of the In mappings

	mu        sync.Mutex
	connected bool
	since     time.Time
	lastErr   string
	closed    bool
}

// limits is what a server's CONNACK allows [v5 MQTT-3.2.2-11] [v5 MQTT-3.2.2-14].
type limits struct {
	maxQoS   byte
	noRetain bool
}

func limitsOf(ack *client.Connack) *limits {
	l := &limits{maxQoS: 2}
	if ack.Properties.Has(packet.PropMaximumQoS) {
		l.maxQoS = ack.Properties.MaximumQoS
	}
	if ack.Properties.Has(packet.PropRetainAvailable) && ack.Properties.RetainAvailable == 0 {
		l.noRetain = true
	}
	return l
}

// pending is a message taken from one side and published on the other:
// the source is acknowledged once the other side acknowledged it.
type pending struct {
	src *client.Message
	tok *client.Token
	out bool // carried local → remote
}

// Start starts a bridge on srv, which must be serving already (after
// ListenAndServe's Ready, or with Serve running): the bridge joins it as
// a client of its own over an in-memory connection (srv.Serve on a
// transport.MemListener), with a persistent session, and connects to the
// remote, retrying with backoff until it answers. Start returns once the
// local side is connected; the remote side connects in the background
// (Status, and $SYS/broker/bridges/<Name>/state, tell when). ctx bounds
// the start only. Close stops the bridge; call it before srv's Shutdown,
// so that the bridge leaves its sessions as they are rather than retrying
// its local connection until Close.
//
// The bridge is a package above broker and client, not a field of
// broker.Server, because the broker must not depend on the client (the
// layers of DESIGN.md): the program that has both wires them.
func Start(ctx context.Context, srv *broker.Server, cfg Config) (*Bridge, error) {
	if srv == nil {
		return nil, errors.New("bridge: Start needs the broker.Server to bridge")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, srv: srv, echo: newEchoTable(), since: time.Now(), firstUp: make(chan struct{})}
	b.log = cfg.Logger
	if b.log == nil {
		b.log = slog.Default()
	}
	b.log = b.log.With("bridge", cfg.Name)
	if b.cfg.ClientID == "" {
		host, _ := os.Hostname()
		b.cfg.ClientID = "tern-bridge-" + cfg.Name
		if host != "" {
			b.cfg.ClientID += "-" + host
		}
		if cfg.Version == packet.V31 && len(b.cfg.ClientID) > 23 {
			b.cfg.ClientID = b.cfg.ClientID[:23]
		}
	}
	if b.cfg.Version == 0 {
		b.cfg.Version = packet.V5
	}
	if b.cfg.SysInterval == 0 {
		b.cfg.SysInterval = 10 * time.Second
	}
	if b.cfg.MaxQueued == 0 {
		b.cfg.MaxQueued = 1000
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.acksOut, b.acksIn = make(chan pending, 1024), make(chan pending, 1024)

	if b.filters, err = openFilterFile(cfg.Dir); err != nil {
		b.cancel()
		return nil, fmt.Errorf("bridge %q: %w", cfg.Name, err)
	}
	var localStore, remoteStore store.Session
	if cfg.Dir != "" {
		ls, err := disk.Open(filepath.Join(cfg.Dir, "local"), disk.Options{Sync: cfg.Sync, Logger: b.log})
		if err != nil {
			b.cancel()
			return nil, fmt.Errorf("bridge %q: local session store: %w", cfg.Name, err)
		}
		rs, err := disk.Open(filepath.Join(cfg.Dir, "remote"), disk.Options{Sync: cfg.Sync, Logger: b.log})
		if err != nil {
			ls.Close()
			b.cancel()
			return nil, fmt.Errorf("bridge %q: remote session store: %w", cfg.Name, err)
		}
		b.localStore, b.remoteStore = newHandoverStore(ls), newHandoverStore(rs)
		localStore, remoteStore = b.localStore, b.remoteStore
	}

	// The remote side exists (and queues) before the local side delivers
	// anything to it.
	expiry := uint32(7 * 24 * 3600)
	if cfg.SessionExpiry > 0 {
		expiry = uint32((cfg.SessionExpiry + time.Second - 1) / time.Second)
	}
	localExpiry := expiry
	if cfg.CleanSession {
		expiry = 0
	}
	b.remote, err = client.New(client.Config{
		Servers:               []string{cfg.Remote},
		Dial:                  cfg.Dial,
		TLS:                   tc,
		Version:               b.cfg.Version,
		ClientID:              b.cfg.ClientID,
		Username:              cfg.Username,
		Password:              passwordBytes(cfg.Password),
		AllowInsecurePassword: cfg.TLS != nil && cfg.TLS.InsecurePassword,
		KeepAlive:             cfg.KeepAlive,
		CleanStart:            cfg.CleanSession,
		SessionExpiry:         expiry,
		Store:                 remoteStore,
		BackoffMin:            cfg.BackoffMin,
		BackoffMax:            cfg.BackoffMax,
		MaxQueued:             b.cfg.MaxQueued,
		ManualAck:             true,
		OnMessage:             b.fromRemote,
		OnConnectionUp:        b.up,
		OnConnectionDown:      b.down,
		Logger:                b.log.With("side", "remote"),
	})
	if err != nil {
		if localStore != nil {
			localStore.Close()
			remoteStore.Close()
		}
		b.cancel()
		return nil, &FieldError{Bridge: cfg.Name, Field: "Remote", Err: err}
	}

	b.lis = transport.NewMemListener()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := srv.Serve(b.lis); err != nil && !errors.Is(err, broker.ErrServerClosed) {
			b.log.Error("local listener ended", "err", err)
		}
	}()
	b.local, err = client.New(client.Config{
		Servers:       []string{"unix:///tern-bridge/" + cfg.Name}, // not dialled: Dial below
		Dial:          func(ctx context.Context, _ string) (net.Conn, error) { return b.lis.Dial(ctx) },
		Version:       packet.V5,
		ClientID:      "tern-bridge-" + cfg.Name,
		Username:      cfg.LocalUsername,
		Password:      passwordBytes(cfg.LocalPassword),
		SessionExpiry: localExpiry,
		Store:         localStore,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    time.Second,
		ManualAck:     true,
		OnMessage:     b.fromLocal,
		Logger:        b.log.With("side", "local"),
	})
	if err != nil {
		b.remote.Disconnect(ctx)
		b.abort()
		return nil, fmt.Errorf("bridge %q: local client: %w", cfg.Name, err)
	}
	b.remoteLimits.Store(&limits{maxQoS: 2})
	lack, err := b.local.Connect(ctx)
	if err == nil {
		b.localLimits.Store(limitsOf(lack))
	}
	if err != nil {
		b.remote.Disconnect(ctx)
		b.local.Disconnect(ctx)
		b.abort()
		var ce *client.ConnectError
		if errors.As(err, &ce) {
			return nil, &FieldError{Bridge: cfg.Name, Field: "LocalUsername",
				Err: fmt.Errorf("the broker refused the bridge's own connection (%v): give the bridge a user name and password that the broker accepts", err)}
		}
		return nil, fmt.Errorf("bridge %q: connecting to the local broker: %w", cfg.Name, err)
	}
	var outFilters []client.Filter
	var outNames []string
	for _, m := range cfg.Topics {
		if m.Direction.out() {
			// The bridge's own publications (In) do not come back [v5 MQTT-3.8.3-3];
			// retained ones go out retained [v5 MQTT-3.3.1-13].
			outFilters = append(outFilters, client.Filter{Topic: m.LocalPrefix + m.Topic, QoS: m.QoS, NoLocal: true, RetainAsPublished: true})
			outNames = append(outNames, m.LocalPrefix+m.Topic)
		}
	}
	if err := b.filters.replace(ctx, false, outNames, b.unsubscriber(b.local)); err != nil {
		b.remote.Disconnect(ctx)
		b.local.Disconnect(ctx)
		b.abort()
		return nil, fmt.Errorf("bridge %q: unsubscribing the local filters of removed mappings: %w", cfg.Name, err)
	}
	if len(outFilters) > 0 {
		sub, err := b.local.SubscribeWith(ctx, client.SubscribeOptions{Filters: outFilters, Handler: b.fromLocal})
		b.outSub.Store(sub)
		if err != nil {
			b.remote.Disconnect(ctx)
			b.local.Disconnect(ctx)
			b.abort()
			return nil, fmt.Errorf("bridge %q: subscribing on the local broker: %w", cfg.Name, err)
		}
	}
	b.publishState()
	b.wg.Add(4)
	go b.ackLoop(b.acksOut)
	go b.ackLoop(b.acksIn)
	go b.connectLoop()
	go b.sysLoop()
	return b, nil
}

func passwordBytes(p string) []byte {
	if p == "" {
		return nil
	}
	return []byte(p)
}

// abort undoes a failed Start.
func (b *Bridge) abort() {
	b.cancel()
	b.lis.Close()
	b.wg.Wait()
}

// Name returns the bridge's name.
func (b *Bridge) Name() string { return b.cfg.Name }

// Status returns a snapshot of the bridge's state and counters.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Status{
		Name: b.cfg.Name, Remote: b.cfg.Remote, Connected: b.connected, Since: b.since, LastError: b.lastErr,
		In: b.in.Load(), Out: b.out.Load(), Dropped: b.dropped.Load() + b.bufferDrops(), Suppressed: b.suppressed.Load(),
	}
}

// bufferDrops counts the QoS 0 messages the two clients dropped because
// the bridge had not taken the earlier ones yet (client.Config.MaxBuffered).
func (b *Bridge) bufferDrops() uint64 {
	n := b.local.Dropped() + b.remote.Dropped()
	for _, s := range []*client.Subscription{b.outSub.Load(), b.inSub.Load()} {
		if s != nil {
			n += s.Dropped()
		}
	}
	return n
}

// Close stops the bridge: it disconnects from the remote and from the
// local broker, waiting for what is being written until ctx ends. What was
// not acknowledged yet stays in the sessions (the local broker's, the
// remote's and, with Dir, the bridge's stores) and is carried by the next
// Start with the same Name.
func (b *Bridge) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.connected = false
	b.mu.Unlock()
	b.cancel()
	err := errors.Join(b.remote.Disconnect(ctx), b.local.Disconnect(ctx))
	b.lis.Close()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
	b.publishState()
	b.publishCounters()
	return err
}

// connectLoop makes the first connection to the remote, retrying with
// backoff; from then on the client reconnects by itself. Then it
// subscribes to the remote topics of the In mappings.
func (b *Bridge) connectLoop() {
	defer b.wg.Done()
	backoff := b.cfg.BackoffMin
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	maxBackoff := b.cfg.BackoffMax
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-t.C:
			return true
		case <-b.ctx.Done():
			return false
		}
	}
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		_, err := b.remote.Connect(ctx)
		cancel()
		if err == nil {
			break
		}
		if b.ctx.Err() != nil {
			return
		}
		b.setDown(err)
		b.log.Warn("cannot connect to the remote; retrying", "remote", b.cfg.Remote, "err", err, "in", backoff)
		if !wait() {
			return
		}
	}
	var inFilters []client.Filter
	var inNames []string
	v5 := b.cfg.Version == packet.V5
	for _, m := range b.cfg.Topics {
		if m.Direction.in() {
			// [v5 MQTT-3.8.3-3] [v5 MQTT-3.3.1-13]; 3.1.1 has neither (the echo table stands in for No Local).
			inFilters = append(inFilters, client.Filter{Topic: m.RemotePrefix + m.Topic, QoS: m.QoS, NoLocal: v5, RetainAsPublished: v5})
			inNames = append(inNames, m.RemotePrefix+m.Topic)
		}
	}
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		err := b.filters.replace(ctx, true, inNames, b.unsubscriber(b.remote))
		cancel()
		if err == nil || b.ctx.Err() != nil {
			break
		}
		b.log.Warn("cannot unsubscribe the remote filters of removed mappings; retrying", "err", err, "in", backoff)
		if !wait() {
			return
		}
	}
	if len(inFilters) == 0 {
		return
	}
	backoff = b.cfg.BackoffMin
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		sub, err := b.remote.SubscribeWith(ctx, client.SubscribeOptions{Filters: inFilters, Handler: b.fromRemote})
		cancel()
		if err == nil {
			b.inSub.Store(sub)
			for i, c := range sub.Codes {
				if c >= 0x80 {
					b.log.Error("the remote refused a subscription", "filter", inFilters[i].Topic, "code", c)
				}
			}
			return
		}
		if b.ctx.Err() != nil {
			return
		}
		b.log.Warn("cannot subscribe on the remote; retrying", "err", err, "in", backoff)
		if !wait() {
			return
		}
	}
}

// unsubscriber returns c's Unsubscribe for filterFile.replace.
func (b *Bridge) unsubscriber(c *client.Client) func(ctx context.Context, filters ...string) error {
	return func(ctx context.Context, filters ...string) error {
		b.log.Info("unsubscribing the filters of removed mappings", "filters", filters, "remote", c == b.remote)
		_, err := c.Unsubscribe(ctx, filters...)
		return err
	}
}

func (b *Bridge) up(ack *client.Connack) {
	b.remoteLimits.Store(limitsOf(ack))
	b.firstUpOnce.Do(func() { close(b.firstUp) })
	b.mu.Lock()
	b.connected, b.since, b.lastErr = true, time.Now(), ""
	b.mu.Unlock()
	b.log.Info("connected to the remote", "remote", ack.Server, "session_present", ack.SessionPresent)
	b.publishState()
}

func (b *Bridge) down(err error) {
	b.setDown(err)
	b.log.Warn("lost the remote", "err", err)
}

func (b *Bridge) setDown(err error) {
	b.mu.Lock()
	was := b.connected
	b.connected, b.lastErr = false, err.Error()
	if was {
		b.since = time.Now()
	}
	closed := b.closed
	b.mu.Unlock()
	if was && !closed {
		b.publishState()
	}
}

// mappingFor returns the mapping that carries topic name (as seen on the
// local side when out, the remote side otherwise).
func (b *Bridge) mappingFor(name string, out bool) (Mapping, bool) {
	for _, m := range b.cfg.Topics {
		if out && m.Direction.out() && topic.Match(m.LocalPrefix+m.Topic, name) {
			return m, true
		}
		if !out && m.Direction.in() && topic.Match(m.RemotePrefix+m.Topic, name) {
			return m, true
		}
	}
	return Mapping{}, false
}

func marked(p *packet.Properties) bool {
	for _, u := range p.User {
		if u.Key == MarkerKey {
			return true
		}
	}
	return false
}

// outgoing builds the message to publish from one received, within what
// the receiving server allows (lim, nil before its first CONNACK).
func (b *Bridge) outgoing(m *client.Message, topicName string, qos byte, v5 bool, lim *limits) *message.Message {
	out := &message.Message{Topic: topicName, Payload: m.Payload, QoS: min(m.QoS, qos), Retain: m.Retain}
	if lim != nil {
		out.QoS = min(out.QoS, lim.maxQoS)
		out.Retain = out.Retain && !lim.noRetain
	}
	if v5 {
		p := m.Properties
		p.SubscriptionIDs = nil
		p.TopicAlias = 0
		// The message's own User Properties, in order, then the marker,
		// which brokers forward unchanged [v5 MQTT-3.3.2-17] [v5 MQTT-3.3.2-18].
		p.User = append(append([]packet.UserProperty(nil), p.User...), packet.UserProperty{Key: MarkerKey, Value: b.cfg.Name})
		out.Properties = p
	}
	return out
}

// fromLocal carries a message of the local broker to the remote.
func (b *Bridge) fromLocal(m *client.Message) {
	mp, ok := b.mappingFor(m.Topic, true)
	if !ok || marked(&m.Properties) {
		if ok {
			b.suppressed.Add(1)
		}
		m.Ack()
		return
	}
	select {
	case <-b.firstUp:
	case <-b.ctx.Done():
		return // not acknowledged: the local broker sends it again
	}
	name := mp.RemotePrefix + strings.TrimPrefix(m.Topic, mp.LocalPrefix)
	v5 := b.cfg.Version == packet.V5
	om := b.outgoing(m, name, mp.QoS, v5, b.remoteLimits.Load())
	if !v5 {
		if _, back := b.mappingFor(name, false); back {
			b.echo.sent(name, m.Payload)
		}
	}
	b.carry(m, b.remote, om, true, b.localStore)
}

// fromRemote carries a message of the remote broker to the local one.
func (b *Bridge) fromRemote(m *client.Message) {
	mp, ok := b.mappingFor(m.Topic, false)
	if !ok {
		m.Ack()
		return
	}
	if marked(&m.Properties) || b.cfg.Version != packet.V5 && b.echo.echo(m.Topic, m.Payload) {
		b.suppressed.Add(1)
		m.Ack()
		return
	}
	name := mp.LocalPrefix + strings.TrimPrefix(m.Topic, mp.RemotePrefix)
	b.carry(m, b.local, b.outgoing(m, name, mp.QoS, true, b.localLimits.Load()), false, b.remoteStore)
}

// carry publishes om on c and hands it to ackLoop, which acknowledges src
// once c's broker acknowledged om. A full queue on c (the remote down for
// long) holds the handler, and so the source broker's flow, until there is
// room. from is the store of src's side, told when a QoS 2 src is in c's
// store (nil without Config.Dir).
func (b *Bridge) carry(src *client.Message, c *client.Client, om *message.Message, out bool, from *handoverStore) {
	for {
		tok := c.PublishAsync(om)
		accepted := true
		select {
		case <-tok.Done():
			_, err := tok.Wait(b.ctx)
			if errors.Is(err, client.ErrQueueFull) {
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-t.C:
					continue
				case <-b.ctx.Done():
					t.Stop()
					return
				}
			}
			accepted = err == nil
		default: // accepted, and on its way
		}
		if accepted && from != nil && src.QoS == 2 && om.QoS > 0 {
			// om is in c's store now.
			if err := from.handedOver(src.PacketID); err != nil {
				b.log.Error("store: recording a QoS 2 message handed over", "err", err)
			}
		}
		acks := b.acksIn
		if out {
			acks = b.acksOut
		}
		select {
		case acks <- pending{src: src, tok: tok, out: out}:
		case <-b.ctx.Done():
		}
		return
	}
}

// ackLoop waits for each carried message's acknowledgement, in order,
// counts it and acknowledges its source.
func (b *Bridge) ackLoop(acks <-chan pending) {
	defer b.wg.Done()
	for {
		var p pending
		select {
		case p = <-acks:
		case <-b.ctx.Done():
			return
		}
		_, err := p.tok.Wait(b.ctx)
		switch {
		case b.ctx.Err() != nil || errors.Is(err, client.ErrClosed):
			return // not acknowledged: the source sends it again
		case err == nil:
			if p.out {
				b.out.Add(1)
			} else {
				b.in.Add(1)
			}
		default:
			b.dropped.Add(1)
			b.log.Warn("message not carried", "topic", p.src.Topic, "qos", p.src.QoS, "out", p.out, "err", err)
		}
		p.src.Ack()
	}
}

// sysLoop publishes the counters every SysInterval.
func (b *Bridge) sysLoop() {
	defer b.wg.Done()
	if b.cfg.SysInterval < 0 {
		return
	}
	t := time.NewTicker(b.cfg.SysInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.publishCounters()
		case <-b.ctx.Done():
			return
		}
	}
}

func (b *Bridge) sysTopic(leaf string) string {
	return "$SYS/broker/bridges/" + b.cfg.Name + "/" + leaf
}

func (b *Bridge) publishState() {
	if b.cfg.SysInterval < 0 {
		return
	}
	st := "disconnected"
	if b.Status().Connected {
		st = "connected"
	}
	_ = b.srv.Publish(b.sysTopic("state"), []byte(st), 0, true)
}

func (b *Bridge) publishCounters() {
	if b.cfg.SysInterval < 0 {
		return
	}
	s := b.Status()
	for _, c := range []struct {
		leaf string
		n    uint64
	}{{"messages/in", s.In}, {"messages/out", s.Out}, {"messages/dropped", s.Dropped}, {"messages/suppressed", s.Suppressed}} {
		_ = b.srv.Publish(b.sysTopic(c.leaf), []byte(strconv.FormatUint(c.n, 10)), 0, true)
	}
}
