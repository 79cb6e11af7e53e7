package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ternmq/tern/transport"
)

// Listener describes one listening socket that ListenAndServe opens.
type Listener struct {
	// Name identifies the listener in logs and to hooks (ClientInfo.Listener).
	// Default: the type and address, e.g. "tcp 127.0.0.1:1883".
	Name string
	// Type is "tcp" (default), "tls", "ws", "wss" or "unix" for MQTT, or
	// "http" (with TLS: HTTPS) or "https" for Server.HTTPHandler.
	Type string
	// Addr is host:port, or the socket path for "unix". Default for tcp:
	// 127.0.0.1:1883 (like Mosquitto 2, local only until configured).
	Addr string
	// Path is the HTTP path of a WebSocket listener. Default "/mqtt".
	Path string
	// TLS configures "tls", "wss" and "https" listeners, and makes an
	// "http" listener serve HTTPS.
	TLS *transport.TLSConfig
	// UseCertCommonName makes the verified client certificate's common
	// name the client's user name (Mosquitto's use_identity_as_username).
	UseCertCommonName bool
}

// QueuePolicy says what happens when a session's queue is full.
type QueuePolicy byte

const (
	// DropNewest refuses the message that does not fit (Mosquitto's
	// behaviour). It is the default.
	DropNewest QueuePolicy = iota
	// DropOldest discards the oldest queued message to make room.
	DropOldest
)

func (p QueuePolicy) String() string {
	if p == DropOldest {
		return "drop-oldest"
	}
	return "drop-newest"
}

// SharedStrategy chooses which member of a shared subscription group
// receives a message.
type SharedStrategy byte

const (
	// SharedRoundRobin gives each message to the next member in turn
	// (the default).
	SharedRoundRobin SharedStrategy = iota
	// SharedRandom picks a member at random.
	SharedRandom
	// SharedStickyClient sends every message of one publisher to the same
	// member while the group does not change.
	SharedStickyClient
	// SharedHashTopic sends every message of one topic to the same member
	// while the group does not change.
	SharedHashTopic
)

var sharedNames = [...]string{"round-robin", "random", "sticky-client", "hash-topic"}

func (s SharedStrategy) String() string {
	if int(s) < len(sharedNames) {
		return sharedNames[s]
	}
	return "SharedStrategy(" + strconv.Itoa(int(s)) + ")"
}

// ParseSharedStrategy parses a strategy name: round-robin, random,
// sticky-client or hash-topic.
func ParseSharedStrategy(name string) (SharedStrategy, error) {
	for i, n := range sharedNames {
		if n == name {
			return SharedStrategy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown shared subscription strategy %q; use %s", name, strings.Join(sharedNames[:], ", "))
}

// QoS returns a pointer to q, for Server.MaximumQoS.
func QoS(q byte) *byte { return &q }

// TopicAliases returns a pointer to n, for Server.TopicAliasMaximum:
// TopicAliases(0) turns inbound topic aliases off.
func TopicAliases(n uint16) *uint16 { return &n }

// Defaults used where a Server field is zero.
const (
	DefaultAddr           = "127.0.0.1:1883"
	DefaultConnectTimeout = 10 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultHookTimeout    = 5 * time.Second
	// DefaultMaxPacketSize is 16 MiB, as RabbitMQ's: a 1 MiB camera
	// frame or a firmware image of several MiB passes, as it does with
	// Mosquitto and HiveMQ, while one client still cannot make the
	// broker hold more than 16 MiB for a packet (Mosquitto and HiveMQ
	// default to the protocol's own limit, 256 MiB). The packet reader
	// grows a packet's buffer as its bytes arrive, so the limit bounds
	// what a client must actually send, not what a header claims.
	DefaultMaxPacketSize  = 16 << 20
	DefaultMaxQueued      = 1000
	DefaultMaxInflight    = 20
	DefaultSysInterval    = 10 * time.Second
	DefaultWebSocketPath  = "/mqtt"
	DefaultHTTPAddr       = "127.0.0.1:8080" // of an http listener without an address
	DefaultReceiveMaximum = 65535
	// DefaultTopicAliasMaximum is the number of topic aliases a client
	// may set when Server.TopicAliasMaximum is nil. Each holds a topic
	// name, so the default is modest (Mosquitto's is 10, HiveMQ's 5).
	DefaultTopicAliasMaximum   = 64
	DefaultResponseInformation = "tern/response/%c"
)

// config is the resolved configuration: every zero field of Server
// replaced by its default. Server.init computes it once.
type config struct {
	connectTimeout time.Duration
	writeTimeout   time.Duration
	hookTimeout    time.Duration
	maxPacketSize  uint32
	maxQueued      int
	maxInflight    int
	sysInterval    time.Duration
	retryInterval  time.Duration
	log            *slog.Logger
	authn          Authenticator
	authz          Authorizer
	recvAuthz      ReceiveAuthorizer // authz, if it checks each delivery

	maxSessionExpiry uint32 // seconds, 0 for no cap
	receiveMaximum   uint16
	topicAliasMax    uint16
	maxQoS           byte
	responseInfo     string
}

// Validate checks the configuration and returns an error naming the first
// bad field and how to fix it. The zero Server is valid.
func (s *Server) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if s.ConnectTimeout < 0 {
		bad("ConnectTimeout", "must not be negative (0 means %s)", DefaultConnectTimeout)
	}
	if s.WriteTimeout < 0 {
		bad("WriteTimeout", "must not be negative (0 means %s)", DefaultWriteTimeout)
	}
	if s.HookTimeout < 0 {
		bad("HookTimeout", "must not be negative (0 means %s)", DefaultHookTimeout)
	}
	if s.MaxPacketSize != 0 && s.MaxPacketSize < 64 {
		bad("MaxPacketSize", "%d is too small to carry a CONNECT; use at least 64 bytes (0 means %d)", s.MaxPacketSize, DefaultMaxPacketSize)
	}
	if s.MaxPacketSize > 268435460 {
		bad("MaxPacketSize", "%d exceeds the MQTT limit of 268435460 bytes", s.MaxPacketSize)
	}
	if s.MaxQueuedMessages < 0 {
		bad("MaxQueuedMessages", "must not be negative (0 means %d)", DefaultMaxQueued)
	}
	if s.MaxInflight < 0 || s.MaxInflight > 65535 {
		bad("MaxInflight", "%d is outside 0..65535 (0 means %d)", s.MaxInflight, DefaultMaxInflight)
	}
	if s.QueuePolicy > DropOldest {
		bad("QueuePolicy", "unknown policy %d; use DropNewest or DropOldest", s.QueuePolicy)
	}
	if s.MaxSessionExpiry < 0 {
		bad("MaxSessionExpiry", "must not be negative (0 means no cap)")
	}
	if s.MaximumQoS != nil && *s.MaximumQoS > 2 {
		bad("MaximumQoS", "%d is not a QoS; use 0, 1 or 2", *s.MaximumQoS)
	}
	if s.SharedStrategy > SharedHashTopic {
		bad("SharedStrategy", "unknown strategy %d; use %s", s.SharedStrategy, strings.Join(sharedNames[:], ", "))
	}
	if s.ServerKeepAlive < 0 || s.ServerKeepAlive > 65535*time.Second {
		bad("ServerKeepAlive", "%v is outside 0..65535s (0 keeps the client's keep alive)", s.ServerKeepAlive)
	} else if s.ServerKeepAlive > 0 && s.ServerKeepAlive < time.Second {
		bad("ServerKeepAlive", "%v is less than one second", s.ServerKeepAlive)
	}
	for name, m := range s.AuthMethods {
		if name == "" || m == nil {
			bad("AuthMethods", "method %q: needs a name and a non-nil AuthMethod", name)
		}
	}
	if s.RetryInterval < 0 {
		bad("RetryInterval", "must not be negative (0 resends only on reconnect)")
	}
	names := map[string]bool{}
	for i, l := range s.Listeners {
		field := fmt.Sprintf("Listeners[%d]", i)
		switch l.Type {
		case "", "tcp", "ws", "unix":
		case "http", "https":
			if s.HTTPHandler == nil {
				bad(field+".Type", "an %s listener needs Server.HTTPHandler (package httpapi's New serves the HTTP API, metrics and health)", l.Type)
			}
			if l.Type == "https" && l.TLS == nil {
				bad(field+".TLS", "an https listener needs a certificate and key (TLS.CertFile, TLS.KeyFile)")
			} else if l.TLS != nil {
				if err := l.TLS.Validate(); err != nil {
					bad(field+".TLS", "%v", err)
				}
			}
		case "tls", "wss":
			if l.TLS == nil {
				bad(field+".TLS", "a %s listener needs a certificate and key (TLS.CertFile, TLS.KeyFile)", l.Type)
			} else if err := l.TLS.Validate(); err != nil {
				bad(field+".TLS", "%v", err)
			}
		default:
			bad(field+".Type", "unknown listener type %q; use tcp, tls, ws, wss, unix, http or https", l.Type)
		}
		if l.Type == "unix" && l.Addr == "" {
			bad(field+".Addr", "a unix listener needs a socket path")
		}
		if l.TLS != nil && l.Type != "tls" && l.Type != "wss" && l.Type != "http" && l.Type != "https" {
			bad(field+".TLS", "only tls, wss, http and https listeners use TLS; remove it or make the listener tls or wss")
		}
		if l.Path != "" && l.Type != "ws" && l.Type != "wss" {
			bad(field+".Path", "only ws and wss listeners have a path; remove it or make the listener ws or wss")
		} else if l.Path != "" && !strings.HasPrefix(l.Path, "/") {
			bad(field+".Path", "%q must start with '/'", l.Path)
		}
		if l.UseCertCommonName && l.Type != "tls" && l.Type != "wss" {
			bad(field+".UseCertCommonName", "needs a tls or wss listener")
		}
		n := listenerName(l)
		if names[n] {
			bad(field+".Name", "%q is used by two listeners", n)
		}
		names[n] = true
	}
	return errors.Join(errs...)
}

func listenerName(l Listener) string {
	if l.Name != "" {
		return l.Name
	}
	typ := l.Type
	if typ == "" {
		typ = "tcp"
	}
	return typ + " " + l.Addr
}

func (s *Server) resolve() config {
	c := config{
		connectTimeout: s.ConnectTimeout,
		writeTimeout:   s.WriteTimeout,
		maxPacketSize:  s.MaxPacketSize,
		maxQueued:      s.MaxQueuedMessages,
		maxInflight:    s.MaxInflight,
		sysInterval:    s.SysInterval,
		retryInterval:  s.RetryInterval,
		log:            s.Logger,
		authn:          s.Authenticator,
		authz:          s.Authorizer,
	}
	if c.connectTimeout == 0 {
		c.connectTimeout = DefaultConnectTimeout
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = DefaultWriteTimeout
	}
	if c.hookTimeout = s.HookTimeout; c.hookTimeout == 0 {
		c.hookTimeout = DefaultHookTimeout
	}
	if c.maxPacketSize == 0 {
		c.maxPacketSize = DefaultMaxPacketSize
	}
	if c.maxQueued == 0 {
		c.maxQueued = DefaultMaxQueued
	}
	if c.maxInflight == 0 {
		c.maxInflight = DefaultMaxInflight
	}
	if c.sysInterval == 0 {
		c.sysInterval = DefaultSysInterval
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.authn == nil {
		c.authn = AllowAll{}
	}
	if c.authz == nil {
		c.authz = AllowAll{}
	}
	c.recvAuthz, _ = c.authz.(ReceiveAuthorizer)
	if s.MaxSessionExpiry > 0 {
		c.maxSessionExpiry = uint32(min(s.MaxSessionExpiry/time.Second, neverExpire-1))
		c.maxSessionExpiry = max(c.maxSessionExpiry, 1)
	}
	c.receiveMaximum = s.ReceiveMaximum
	if c.receiveMaximum == 0 {
		c.receiveMaximum = DefaultReceiveMaximum
	}
	c.topicAliasMax = DefaultTopicAliasMaximum
	if s.TopicAliasMaximum != nil {
		c.topicAliasMax = *s.TopicAliasMaximum
	}
	c.maxQoS = 2
	if s.MaximumQoS != nil {
		c.maxQoS = *s.MaximumQoS
	}
	c.responseInfo = s.ResponseInformation
	if c.responseInfo == "" {
		c.responseInfo = DefaultResponseInformation
	}
	return c
}
