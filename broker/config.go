package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ternmq/tern/transport"
)

// Listener describes one listening socket that ListenAndServe opens.
type Listener struct {
	// Name identifies the listener in logs and to hooks (ClientInfo.Listener).
	// Default: the type and address, e.g. "tcp 127.0.0.1:1883".
	Name string
	// Type is "tcp" (default), "tls", "ws", "wss" or "unix".
	Type string
	// Addr is host:port, or the socket path for "unix". Default for tcp:
	// 127.0.0.1:1883 (like Mosquitto 2, local only until configured).
	Addr string
	// Path is the HTTP path of a WebSocket listener. Default "/mqtt".
	Path string
	// TLS configures "tls" and "wss" listeners.
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

// Defaults used where a Server field is zero.
const (
	DefaultAddr           = "127.0.0.1:1883"
	DefaultConnectTimeout = 10 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultMaxPacketSize  = 1 << 20
	DefaultMaxQueued      = 1000
	DefaultMaxInflight    = 20
	DefaultSysInterval    = 10 * time.Second
	DefaultWebSocketPath  = "/mqtt"
)

// config is the resolved configuration: every zero field of Server
// replaced by its default. Server.init computes it once.
type config struct {
	connectTimeout time.Duration
	writeTimeout   time.Duration
	maxPacketSize  uint32
	maxQueued      int
	maxInflight    int
	sysInterval    time.Duration
	retryInterval  time.Duration
	log            *slog.Logger
	authn          Authenticator
	authz          Authorizer
	recvAuthz      ReceiveAuthorizer // authz, if it checks each delivery
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
	if s.RetryInterval < 0 {
		bad("RetryInterval", "must not be negative (0 resends only on reconnect)")
	}
	names := map[string]bool{}
	for i, l := range s.Listeners {
		field := fmt.Sprintf("Listeners[%d]", i)
		switch l.Type {
		case "", "tcp", "ws", "unix":
		case "tls", "wss":
			if l.TLS == nil {
				bad(field+".TLS", "a %s listener needs a certificate and key (TLS.CertFile, TLS.KeyFile)", l.Type)
			} else if err := l.TLS.Validate(); err != nil {
				bad(field+".TLS", "%v", err)
			}
		default:
			bad(field+".Type", "unknown listener type %q; use tcp, tls, ws, wss or unix", l.Type)
		}
		if l.Type == "unix" && l.Addr == "" {
			bad(field+".Addr", "a unix listener needs a socket path")
		}
		if l.Path != "" && !strings.HasPrefix(l.Path, "/") {
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
	return c
}
