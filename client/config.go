package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// Config configures a Client. The zero value plus one entry in Servers
// works: MQTT 5, a random client identifier, keep alive 60 s, an
// in-memory session store, reconnects with backoff from 100 ms to 30 s.
type Config struct {
	// Servers are the server URLs, tried in rotation: mqtt:// and tcp://
	// (port 1883), mqtts://, tls:// and ssl:// (8883), ws:// and wss://
	// (path /mqtt), unix:///path. A bare "host:port" means tcp://.
	Servers []string
	// Dial, if set, opens every connection instead of package transport:
	// a custom dialer (a tunnel, a test proxy). It is given the server URL.
	Dial func(ctx context.Context, server string) (net.Conn, error)
	// Conn, if set, is an already-open connection used for the first
	// connection; reconnects go to Servers (through Dial if set). Servers
	// may then be empty: the client cannot reconnect once Conn breaks, so
	// the publishes waiting then fail at once (queued ones with an error
	// wrapping ErrClosed, unacknowledged ones ErrConnectionLost), as does
	// every later call; Disconnect still closes the client.
	Conn net.Conn
	// TLS configures mqtts://, tls://, ssl:// and wss://. Nil: the system
	// roots, server name from the URL.
	TLS *tls.Config
	// Proxy is a socks5:// or http:// (CONNECT) proxy URL for TCP-based
	// schemes. Empty: taken from the environment (ALL_PROXY, HTTPS_PROXY
	// for TLS schemes, HTTP_PROXY for the others, NO_PROXY), as
	// net/http does; "direct" turns the environment off.
	Proxy string

	// Version is the protocol: packet.V5 (the default), packet.V311 or
	// packet.V31.
	Version packet.Version
	// ClientID is the client identifier. Empty: MQTT 5 lets the server
	// assign one (Connack.Properties.AssignedClientID), which later
	// reconnects reuse; MQTT 3.1.1 sends an empty one (the server then
	// requires CleanStart), and MQTT 3.1 gets a random one.
	ClientID string
	Username string
	Password []byte
	// AllowInsecurePassword lets Password (and Username) be sent over a
	// TLS connection whose certificate is not verified (TLS
	// InsecureSkipVerify). Without it they are left out of the CONNECT.
	AllowInsecurePassword bool
	// KeepAlive is the keep alive interval, in whole seconds on the wire.
	// Zero: 60 s; negative: off. A server's Server Keep Alive replaces it.
	// When nothing has been received for 1.5 times the interval the
	// connection is taken as dead and replaced.
	KeepAlive time.Duration
	// CleanStart starts a new session at the first connection (the
	// store is cleared too). Reconnects of MQTT 5 resume the session
	// (CleanStart 0); MQTT 3.1 / 3.1.1 send the flag on every connection,
	// as their Clean Session ends the session with the connection.
	CleanStart bool
	// SessionExpiry is the MQTT 5 Session Expiry Interval in seconds
	// (0xFFFFFFFF: never); zero ends the session with the connection.
	SessionExpiry uint32
	// Will is the will message; its Properties carry the MQTT 5 will
	// properties (Will Delay Interval, Message Expiry, ...).
	Will *packet.Will
	// Properties are further MQTT 5 CONNECT properties: ReceiveMaximum
	// (default 65535), MaximumPacketSize (0: no limit), TopicAliasMaximum
	// (aliases the server may use toward the client; default 0),
	// RequestResponseInfo, RequestProblemInfo, User. SessionExpiry and
	// the authentication properties come from their own fields.
	Properties packet.Properties
	// BeforeConnect, if set, is called with every CONNECT before it is
	// sent (each attempt), to set fresh credentials or properties. An
	// error ends the attempt.
	BeforeConnect func(ctx context.Context, c *packet.Connect) error
	// Auth, if set, runs MQTT 5 enhanced authentication (the AUTH
	// exchange) on every connection; see SCRAM. Client.Reauthenticate
	// runs it again on a live connection.
	Auth AuthMethod
	// FollowRedirects is how many MQTT 5 server redirections (CONNACK or
	// DISCONNECT 0x9C Use another server, 0x9D Server moved, with a
	// Server Reference) are followed in a row; 0 follows none.
	FollowRedirects int

	// Store keeps the session: the QoS 1 and 2 messages on their way out
	// and the QoS 2 packet identifiers received. Nil: store/memory. A
	// store/disk session makes them survive a restart: New restores it
	// and the first connection sends everything again, in order.
	// The client closes the store in Disconnect.
	Store store.Session

	// BackoffMin and BackoffMax bound the wait between reconnection
	// attempts, which doubles from BackoffMin to BackoffMax; defaults
	// 100 ms and 30 s. BackoffJitter is the fraction of each wait that is
	// random, 0 to 1; default 0.5.
	BackoffMin, BackoffMax time.Duration
	BackoffJitter          float64
	// NoSubscriptionIDs turns off the MQTT 5 Subscription Identifiers the
	// client gives its subscriptions by itself: a SUBSCRIBE then carries
	// one only when SubscribeOptions.ID sets it (as mosquitto_sub sends
	// none), and messages are routed by matching the filters.
	NoSubscriptionIDs bool
	// MaxInflight is the client's own bound on the QoS 1 and 2 PUBLISHes
	// sent and not yet acknowledged; the window is the lower of it and
	// the server's Receive Maximum (65535 when the server gives none).
	// Zero: the server's alone. Publishes beyond it wait in the queue
	// (MaxQueued).
	MaxInflight int
	// NoResubscribe turns off subscribing again when a connection finds
	// the server without the session (Connack.SessionPresent false).
	NoResubscribe bool
	// MaxQueued bounds the messages accepted by Publish and not yet sent
	// (offline, or waiting for the server's Receive Maximum). Default
	// 1000. Publish waits for room until its context ends.
	MaxQueued int
	// QueueQoS0 queues QoS 0 publishes made while offline, as QoS 1 and 2
	// ones are. Default: a QoS 0 publish while offline fails with
	// ErrDropped.
	QueueQoS0 bool
	// MaxBuffered bounds the messages each subscription holds for its
	// handler (or its Messages iterator); default 1000. See Handler.
	MaxBuffered int
	// ManualAck makes the application acknowledge each QoS 1 and 2
	// message with Message.Ack; acknowledgements still go out in the
	// order the messages arrived.
	ManualAck bool
	// OnMessage receives the messages no subscription of this client
	// matches (a session subscription from an earlier process, say).
	// Nil: they are acknowledged and dropped.
	OnMessage Handler

	// OnConnectionUp is called after every successful connection,
	// OnConnectionDown after every loss (with the cause). They run on the
	// client's connection goroutine: return quickly.
	OnConnectionUp   func(*Connack)
	OnConnectionDown func(error)
	// Logger receives the client's logs. Nil: discarded.
	Logger *slog.Logger
	// WriteTimeout bounds one write to the network. Default 30 s.
	WriteTimeout time.Duration
	// ConnectTimeout bounds each connection attempt (dial and handshake)
	// of the managed reconnection. Default 30 s.
	ConnectTimeout time.Duration
}

// Validate reports the first bad field of cfg, naming it and the fix.
func (cfg *Config) Validate() error {
	if len(cfg.Servers) == 0 && cfg.Conn == nil {
		return errors.New("client: Config.Servers is empty: give at least one server URL, e.g. mqtt://127.0.0.1:1883")
	}
	for _, s := range cfg.Servers {
		if _, err := normalizeURL(s); err != nil {
			return fmt.Errorf("client: Config.Servers: %w", err)
		}
	}
	switch cfg.Version {
	case 0, packet.V31, packet.V311, packet.V5:
	default:
		return fmt.Errorf("client: Config.Version %d is not an MQTT version: use packet.V31, packet.V311 or packet.V5", cfg.Version)
	}
	if cfg.BackoffJitter < 0 || cfg.BackoffJitter > 1 {
		return fmt.Errorf("client: Config.BackoffJitter %v is outside 0 to 1", cfg.BackoffJitter)
	}
	if cfg.BackoffMax != 0 && cfg.BackoffMin > cfg.BackoffMax {
		return fmt.Errorf("client: Config.BackoffMin %v is above Config.BackoffMax %v", cfg.BackoffMin, cfg.BackoffMax)
	}
	if cfg.Will != nil && cfg.Will.QoS > 2 {
		return fmt.Errorf("client: Config.Will.QoS %d: use 0, 1 or 2", cfg.Will.QoS)
	}
	if cfg.Auth != nil && cfg.Version != 0 && cfg.Version != packet.V5 {
		return errors.New("client: Config.Auth needs MQTT 5: set Config.Version to packet.V5")
	}
	if cfg.MaxInflight < 0 || cfg.MaxInflight > 65535 {
		return fmt.Errorf("client: Config.MaxInflight %d: use 1 to 65535, or 0 for the server's Receive Maximum", cfg.MaxInflight)
	}
	if cfg.KeepAlive > 65535*time.Second {
		return fmt.Errorf("client: Config.KeepAlive %v is above the protocol's 65535 s", cfg.KeepAlive)
	}
	return nil
}

// normalizeURL checks a server URL and adds tcp:// to a bare host:port.
func normalizeURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty server URL")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Scheme != "unix") {
		if _, _, err2 := net.SplitHostPort(s); err2 == nil {
			return "tcp://" + s, nil
		}
		return "", fmt.Errorf("%q is not a server URL: use scheme://host:port, e.g. mqtt://127.0.0.1:1883", s)
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "tls", "ssl", "ws", "wss", "unix":
	default:
		return "", fmt.Errorf("%q: unknown scheme %q: use mqtt, tcp, mqtts, tls, ssl, ws, wss or unix", s, u.Scheme)
	}
	return s, nil
}

// withDefaults returns cfg with every default filled in.
func (cfg Config) withDefaults() Config {
	if cfg.Version == 0 {
		cfg.Version = packet.V5
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 60 * time.Second
	}
	if cfg.KeepAlive < 0 {
		cfg.KeepAlive = 0
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.BackoffJitter == 0 {
		cfg.BackoffJitter = 0.5
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 1000
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 1000
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}
