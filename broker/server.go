package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/topic"
	"github.com/ternmq/tern/transport"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown
// or Close.
var ErrServerClosed = errors.New("broker: server closed")

// Server is an MQTT 3.1, 3.1.1 and 5.0 broker. Its fields configure it;
// the zero value is a working broker that, from ListenAndServe, listens
// on 127.0.0.1:1883 and lets every client in: a client needs nothing
// beyond the MQTT specification to use it [v3 MQTT-7.0.0-2]. Set the fields before the
// first call to a method and do not change them afterwards.
type Server struct {
	// Listeners are opened by ListenAndServe. Empty: one TCP listener on
	// DefaultAddr. Serve accepts connections from any net.Listener.
	Listeners []Listener

	// Authenticator decides who may connect. Nil: everybody.
	Authenticator Authenticator
	// Authorizer decides who may publish and subscribe where. Nil: all.
	Authorizer Authorizer
	// Observers are told about connects, disconnects, subscriptions,
	// publishes and dropped messages.
	Observers []Observer
	// Logger receives the broker's logs. Nil: slog.Default(). At level
	// LevelTrace every packet in and out is logged in readable form.
	Logger *slog.Logger

	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT. Default 10 s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to a client; a client that does not
	// read for this long is disconnected. Default 30 s.
	WriteTimeout time.Duration
	// HookTimeout bounds each call of the Authenticator, the Authorizer
	// and the AuthMethods: their context ends after it, and a hook that
	// has not answered by then is taken as a refusal, and logged, so that
	// a hook waiting on a remote service cannot hang a connection (see
	// NonBlocking for what each refusal is). Default DefaultHookTimeout.
	HookTimeout time.Duration
	// MaxPacketSize is the largest packet accepted from a client, fixed
	// header included. Default DefaultMaxPacketSize (16 MiB). Memory
	// follows what arrives, not what a packet header claims: a client
	// that announces a large packet and sends little pins little.
	MaxPacketSize uint32
	// MaxQueuedMessages bounds each session's queue of messages waiting
	// to be sent (to an offline client, or to an online client whose
	// in-flight window is full). Default 1000.
	MaxQueuedMessages int
	// QueuePolicy says which message is dropped when a queue is full.
	// Every drop is counted, reported to Observers and logged.
	QueuePolicy QueuePolicy
	// QueueQoS0 queues QoS 0 messages for offline clients with a
	// persistent session, as Mosquitto's queue_qos0_messages.
	QueueQoS0 bool
	// MaxInflight is the number of QoS 1 and 2 messages sent to a client
	// and not yet acknowledged. Default 20. An MQTT 5 client's Receive
	// Maximum lowers it.
	MaxInflight int
	// RetryInterval, when set, resends a QoS 1 or 2 message that an MQTT
	// 3.1 / 3.1.1 client has not acknowledged for this long. Messages are
	// always resent on reconnect; MQTT 5 forbids other resends [v5 MQTT-4.4.0-1].
	RetryInterval time.Duration
	// CopyPerSubscription delivers one copy of a message per matching
	// subscription of a client, instead of one copy at the highest QoS of
	// the matching subscriptions (the default).
	CopyPerSubscription bool
	// SysInterval is how often the $SYS/broker topics are updated.
	// Default 10 s; negative turns $SYS off.
	SysInterval time.Duration

	// The fields below shape the MQTT 5 features; the zero value of each
	// is the usual choice. Most are announced to MQTT 5 clients in the
	// CONNACK properties.

	// MaxSessionExpiry caps the Session Expiry Interval a client asks for
	// (the CONNACK then tells it the value used), and is the expiry of
	// MQTT 3.1 / 3.1.1 persistent sessions (clean session 0), like
	// Mosquitto's persistent_client_expiration. 0: no cap, and 3.1.1
	// persistent sessions never expire.
	MaxSessionExpiry time.Duration
	// ReceiveMaximum is how many QoS 1 and 2 PUBLISHes a client may send
	// before it is acknowledged; a client that sends more is disconnected
	// with 0x93 Receive Maximum exceeded. Default 65535.
	ReceiveMaximum uint16
	// TopicAliasMaximum is the Topic Alias Maximum the CONNACK announces:
	// how many topic aliases an MQTT 5 client may set for its PUBLISHes.
	// 0 means none: the property is left out and any alias is refused
	// with 0x94 Topic Alias invalid. Nil means DefaultTopicAliasMaximum.
	// Use TopicAliases(n) to set it, as the configuration file's
	// mqtt5.topic_alias_maximum does.
	TopicAliasMaximum *uint16
	// OutboundTopicAliases makes the broker use topic aliases in the
	// PUBLISHes it sends to MQTT 5 clients that accept them (their Topic
	// Alias Maximum), saving the topic name on every message after the
	// first per topic. Off by default, as in Mosquitto.
	OutboundTopicAliases bool
	// MaximumQoS is the highest QoS the broker accepts from clients and
	// grants to subscriptions: nil means 2. Use QoS(0) or QoS(1) to lower
	// it. An MQTT 5 client that publishes above it is disconnected with
	// 0x9B QoS not supported; subscriptions are granted at most this QoS.
	MaximumQoS *byte
	// RetainUnavailable turns retained messages off: MQTT 5 clients are
	// told so, and a PUBLISH with RETAIN set is refused with 0x9A.
	RetainUnavailable bool
	// WildcardSubscriptionsUnavailable refuses filters with '+' or '#'
	// (SUBACK 0xA2).
	WildcardSubscriptionsUnavailable bool
	// SubscriptionIDsUnavailable refuses SUBSCRIBEs that carry a
	// Subscription Identifier (SUBACK 0xA1 for each filter).
	SubscriptionIDsUnavailable bool
	// SharedSubscriptionsUnavailable refuses $share/ filters (SUBACK
	// 0x9E; 0x80 to MQTT 3.1.1 clients).
	SharedSubscriptionsUnavailable bool
	// SharedStrategy chooses the member of a shared subscription group
	// that gets each message. Default SharedRoundRobin. A group lives
	// while it has members; when it is created again, its round-robin
	// starts afresh.
	SharedStrategy SharedStrategy
	// ServerKeepAlive, when set, replaces the keep alive of every MQTT 5
	// client (raising or lowering it); the CONNACK tells the client. 3.1.1
	// clients cannot be told and keep their own.
	ServerKeepAlive time.Duration
	// ResponseInformation is sent to MQTT 5 clients that ask for it
	// (Request Response Information 1), as the base of their response
	// topics; "%c" is replaced by the client identifier. Default
	// "tern/response/%c".
	ResponseInformation string
	// AuthMethods are the MQTT 5 enhanced authentication methods (the
	// AUTH exchange), by method name, e.g. "SCRAM-SHA-256". A client that
	// asks for a method not here is refused with 0x8C Bad authentication
	// method. A client authenticated by a method is not passed to
	// Authenticator.
	AuthMethods map[string]AuthMethod

	// Store keeps persistent sessions, their queued and in-flight
	// messages, and retained messages across restarts and crashes (for
	// example store/disk's OpenBroker). Nil: everything is kept in memory
	// and lost when the process ends. The server loads the store when it
	// starts and acknowledges a QoS 1 or 2 message, a subscription or a
	// persistent session only once the store has kept it (see the README,
	// "Persistence"). The server does not close the store: its owner does,
	// after Shutdown or Close.
	//
	// With a Backplane and a store.Shared (store/redis) the nodes share
	// the store: the server does not load it at start, and a persistent
	// session moves to whichever node its client connects to (see
	// sharedsession.go and the README's "Sessions on Redis").
	Store store.Broker

	// HTTPHandler serves the listeners of type "http" and "https": package
	// httpapi's New is the HTTP API, the Prometheus metrics and the health
	// endpoints. The server tracks its requests, streams and hijacked
	// connections (WebSocket) and ends them at Shutdown and Close: their
	// contexts are cancelled when the server stops (see HTTPListener).
	HTTPHandler http.Handler

	// Backplane, when set, makes the server one node of several that
	// serve one topic space (see cluster.go and package backplane): it
	// joins when the server starts and leaves at Shutdown or Close. Nil:
	// a single node.
	Backplane BackplaneJoin

	initOnce sync.Once
	initErr  error
	cfg      config
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc

	ready     chan struct{} // closed by markReady
	readyOnce sync.Once

	authnFast, authzFast bool // the Authenticator / Authorizer is NonBlocking: called directly

	dropLogEvery time.Duration            // shortest time between two drop lines of a client; 0: dropLogDefault (tests set it)
	dropMu       sync.Mutex               // guards dropTimers, dropsDone
	dropTimers   map[*session]*time.Timer // sessions with drops to log later
	dropsDone    bool                     // finishDrops ran: log drops at once

	mu         sync.Mutex // guards listeners, bound, conns, closed
	listeners  map[net.Listener]struct{}
	bound      []net.Addr // addresses ListenAndServe opened, in configured order
	conns      map[*conn]struct{}
	closed     bool
	closing    atomic.Bool    // closed, readable without mu (under a session's lock)
	connWG     sync.WaitGroup // one per connection goroutine set
	backlogged atomic.Bool    // a connected subscriber's queue passed yieldQueueLen: the next publishing reader yields
	live       atomic.Int64   // connection goroutines running (readers and writers), for leak checks
	bgWG       sync.WaitGroup // background goroutines ($SYS, inline delivery)

	inlines map[*session]struct{} // in-process subscriptions, guarded by mu

	httpServers map[*http.Server]struct{} // serving the http listeners, guarded by mu
	httpWG      sync.WaitGroup            // HTTPHandler calls running; Add under mu while !closed
	httpCtx     context.Context           // of every HTTP request; cancelled when the server stops
	httpCancel  context.CancelFunc

	regMu    sync.Mutex // guards sessions
	sessions map[string]*session
	sessSeq  atomic.Uint64

	subs       topic.Trie[*session, subscription]
	shared     topic.Trie[shareKey, subscription] // shared subscriptions, under their inner filter
	sharedSubs atomic.Int64                       // entries in shared
	groups     sync.Map                           // groupID -> *shareGroup, while it has members
	groupCount atomic.Int64                       // groups in groups
	groupSeq   atomic.Uint64
	retained   retainedStore
	msgSeq     atomic.Uint64 // the last stored message id (Store)
	qseq       atomic.Uint64 // the last sequence number of a stored delivery, over all sessions (Store)
	lazy       lazyChanges   // dequeues written in the background (Store)
	stats      stats
	started    time.Time
	bp         backplane.Node // joined through Backplane; nil without
	bpJoined   chan struct{}  // closed once bp is set: the back plane's handlers wait for it
	shStore    store.Shared   // Store, when the nodes of the back plane share it (sharedsession.go)
	handoffMu  sync.Mutex
	handoffs   map[string]chan struct{} // client id → closed when the node that had it let it go
	handoffWG  sync.WaitGroup           // sessions being let go to other nodes (started by the back plane's handler)
	bpMark     backplane.Mark           // the last back plane delivery stored (restore, then the back plane's handler goroutine only)
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		s.ready = make(chan struct{})
		if err := s.Validate(); err != nil {
			s.initErr = err
			s.markReady() // nobody may wait for a server that cannot start
			return
		}
		s.cfg = s.resolve()
		s.authnFast, s.authzFast = nonBlocking(s.cfg.authn), nonBlocking(s.cfg.authz)
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.httpCtx, s.httpCancel = context.WithCancel(context.Background())
		s.httpServers = map[*http.Server]struct{}{}
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.sessions = map[string]*session{}
		s.retained.init()
		s.started = time.Now()
		s.shStore = s.sharedStore()
		if s.Store != nil {
			restore := s.restore
			if s.shStore != nil {
				restore = s.startShared // sessions load when their clients connect
			}
			if err := restore(); err != nil {
				s.initErr = err
				s.cancel()
				s.markReady()
				return
			}
			s.lazy.wake = make(chan struct{}, 1)
			s.lazy.flush = make(chan chan struct{})
			s.bgWG.Add(1)
			go s.lazyLoop()
		}
		if s.Backplane != nil {
			if err := s.joinBackplane(); err != nil { // after restore: its subscriptions are announced
				s.initErr = err
				s.cancel()
				s.bgWG.Wait()
				s.markReady()
				return
			}
		}
		if s.cfg.sysInterval > 0 {
			s.bgWG.Add(1)
			go s.sysLoop()
		}
	})
	return s.initErr
}

// ListenAndServe opens every configured listener (or one TCP listener on
// DefaultAddr) and serves them until Shutdown or Close, when it returns
// ErrServerClosed. If a listener cannot be opened, those already open are
// closed and the error is returned. Ready tells when the listeners are
// open, and Addrs where.
func (s *Server) ListenAndServe() error {
	if err := s.init(); err != nil {
		return err
	}
	ls := s.Listeners
	if len(ls) == 0 {
		ls = []Listener{{Type: "tcp", Addr: DefaultAddr}}
	}
	opened := make([]net.Listener, 0, len(ls))
	for _, l := range ls {
		nl, err := Listen(l)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			s.markReady() // no listener, and Addrs says so
			return fmt.Errorf("listener %q: %w", listenerName(l), err)
		}
		opened = append(opened, nl)
	}
	s.mu.Lock()
	for _, nl := range opened {
		s.bound = append(s.bound, nl.Addr())
	}
	s.mu.Unlock()
	errc := make(chan error, len(opened))
	for i, nl := range opened {
		l := ls[i]
		if l.Name == "" {
			l.Name = listenerName(Listener{Type: l.Type, Addr: nl.Addr().String()})
		}
		s.cfg.log.Info("listening", "listener", l.Name, "addr", nl.Addr().String())
		if l.Type == "http" || l.Type == "https" {
			go func() { errc <- s.serveHTTP(nl, l) }() // httplistener.go
			continue
		}
		go func() { errc <- s.serve(nl, l) }()
	}
	// Every socket is bound and listening: a client that connects now
	// waits in the kernel's backlog until its listener accepts.
	s.markReady()
	var first error
	for range opened {
		if err := <-errc; first == nil || errors.Is(first, ErrServerClosed) {
			first = err
		}
	}
	return first
}

// Addrs returns the addresses of the listeners ListenAndServe opened, in
// the order of Listeners (useful with port 0); nil until they are open,
// or if they could not be opened. Wait on Ready before calling it.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.bound...)
}

// Ready returns a channel that is closed when the server accepts
// connections: once ListenAndServe has opened every listener (Addrs then
// returns their addresses, with the ports chosen for port 0), or once
// Serve has been called (its listener is bound already). A program that
// starts ListenAndServe on a goroutine waits on Ready instead of
// sleeping:
//
//	go func() { errc <- srv.ListenAndServe() }()
//	<-srv.Ready()
//	addrs := srv.Addrs() // nil: ListenAndServe failed, errc has why
//
// So that nothing waits for ever on a server that will not start, the
// channel is also closed when ListenAndServe fails to open a listener or
// the configuration is invalid (Addrs is then nil and ListenAndServe
// returns the error), and by Shutdown and Close.
func (s *Server) Ready() <-chan struct{} {
	s.init()
	return s.ready
}

func (s *Server) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Listen opens the socket a Listener describes. Every kind carries an
// ordered, lossless stream of bytes both ways: TCP, TLS over TCP,
// WebSocket over TCP (or TLS), a Unix stream socket [v5 MQTT-4.2.0-1].
func Listen(l Listener) (net.Listener, error) {
	addr := l.Addr
	switch l.Type {
	case "", "tcp": // an ordered, lossless byte stream both ways [v3 MQTT-7.1.1-1]
		if addr == "" {
			addr = DefaultAddr
		}
		return transport.ListenTCP(addr)
	case "tls":
		tc, err := l.TLS.Build()
		if err != nil {
			return nil, err
		}
		return transport.ListenTLS(addr, tc)
	case "ws", "wss":
		opts := transport.WSOptions{Path: l.Path}
		if opts.Path == "" {
			opts.Path = DefaultWebSocketPath
		}
		if l.Type == "wss" {
			tc, err := l.TLS.Build()
			if err != nil {
				return nil, err
			}
			opts.TLS = tc
		}
		return transport.ListenWebSocket(addr, opts)
	case "unix":
		return transport.ListenUnix(addr)
	case "http", "https":
		if addr == "" {
			addr = DefaultHTTPAddr
		}
		if l.TLS == nil {
			return transport.ListenTCP(addr)
		}
		tc, err := l.TLS.Build()
		if err != nil {
			return nil, err
		}
		return transport.ListenTLS(addr, tc)
	}
	return nil, fmt.Errorf("unknown listener type %q", l.Type)
}

// Serve accepts connections on l and serves each on its own goroutines
// until Shutdown or Close, when it returns ErrServerClosed. Serve closes l
// when it returns.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	s.markReady()
	return s.serve(l, Listener{Name: l.Addr().Network() + " " + l.Addr().String()})
}

func (s *Server) serve(l net.Listener, info Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.log.Warn("accept failed; retrying", "listener", info.Name, "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than stop serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.log.Error("accept failed; retrying", "listener", info.Name, "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		c := newConn(s, nc, info)
		if !s.track(c) {
			nc.Close()
			return ErrServerClosed
		}
		s.live.Add(1)
		go c.serve()
	}
}

var errTemporary = errors.New("temporary")

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connWG.Done()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops the server gracefully: it stops accepting connections,
// tells MQTT 5 clients that the server is shutting down (DISCONNECT 0x8B),
// publishes the wills that are due, closes every connection (WebSocket
// included) and waits for their goroutines, or until ctx is done, when it
// closes what is left and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	conns := s.stop()
	for _, c := range conns {
		c.shutdown(packet.ServerShuttingDown)
	}
	httpErr := s.shutdownHTTP(ctx) // httplistener.go
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
		}
		<-done
		s.finish()
		return ctx.Err()
	}
	s.finish()
	return httpErr
}

// Close stops the server at once: listeners and connections are closed
// without a DISCONNECT. Wills are still published.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	for _, c := range s.stop() {
		c.nc.Close()
	}
	s.closeHTTP() // httplistener.go
	s.connWG.Wait()
	s.finish()
	return nil
}

// stop marks the server closed, closes the listeners and returns the
// connections that were open.
func (s *Server) stop() []*conn {
	s.markReady() // wake anyone still waiting: the server will not start
	s.mu.Lock()
	s.closed = true
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.httpCancel() // HTTP streams end; their handlers return
	return conns
}

// finish stops the background goroutines after the connections are gone.
func (s *Server) finish() {
	s.cancel()
	s.endTimers()
	s.mu.Lock()
	var inline []*session
	for ss := range s.inlines {
		inline = append(inline, ss)
	}
	s.mu.Unlock()
	for _, ss := range inline {
		ss.inline.stopDraining() // wills of the closed connections included
	}
	s.bgWG.Wait()
	s.leaveBackplane()
	s.handoffWG.Wait() // after the back plane, whose handler starts them, is closed
	s.finishDrops()    // the drops not yet logged
}

// observe tells every observer about e.
func (s *Server) observe(e Event) {
	for _, o := range s.Observers {
		o.Observe(e)
	}
}

// batchesPublishes reports whether the PUBLISHes of a connection go
// through its acker in batches (queuePublish): with a store, to share
// its writes; with a back plane, to forward a batch to the engine at once.
func (srv *Server) batchesPublishes() bool { return srv.Store != nil || srv.bp != nil }
