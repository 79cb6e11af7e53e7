package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

// Direction says which way a Mapping carries messages.
type Direction string

const (
	// Out carries messages published on the local broker to the remote.
	Out Direction = "out"
	// In carries messages published on the remote broker to the local one.
	In Direction = "in"
	// Both is Out and In on the same topics.
	Both Direction = "both"
)

func (d Direction) out() bool { return d == "" || d == Out || d == Both }
func (d Direction) in() bool  { return d == In || d == Both }

// Mapping is one topic mapping of a bridge, as Mosquitto's "topic" line:
// the messages on LocalPrefix+Topic of the local broker go to
// RemotePrefix+Topic on the remote (Out), and the other way (In).
type Mapping struct {
	// Topic is the topic filter, without the prefixes: "sensors/#".
	// Required.
	Topic string
	// Direction is Out (the default), In or Both.
	Direction Direction
	// QoS is the highest QoS of the messages carried, 0 (the default, as
	// in Mosquitto), 1 or 2: the bridge subscribes at it and forwards
	// each message at the lower of it and the message's own. Messages are
	// carried without loss across reconnects only at QoS 1 and 2.
	QoS byte
	// LocalPrefix and RemotePrefix are put before Topic on each side:
	// a message on LocalPrefix+"a/b" goes out as RemotePrefix+"a/b".
	// They hold no wildcard; usually they end with "/".
	LocalPrefix, RemotePrefix string
}

// TLS is the client side of a TLS connection to the remote, from files
// (the configuration file's bridges[].tls). For more control set
// Config.TLSConfig instead.
type TLS struct {
	// CAFile holds the PEM certificates of the CAs the remote's
	// certificate must chain to. Empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the bridge's own certificate and key, for
	// a remote that asks for client certificates. Both or neither.
	CertFile, KeyFile string
	// ServerName is the name the remote's certificate must carry.
	// Empty: the host of Config.Remote.
	ServerName string
	// Insecure skips the verification of the remote's certificate
	// (tests only). The password is then not sent (see
	// client.Config.AllowInsecurePassword) unless InsecurePassword.
	Insecure, InsecurePassword bool
}

// Config configures one bridge. Name, Remote and at least one Topics
// entry are required; every other field has a working default.
type Config struct {
	// Name identifies the bridge: in $SYS/broker/bridges/<Name>/, in the
	// client identifiers and in the data directory. Letters, digits, '-',
	// '_' and '.'.
	Name string
	// Remote is the remote broker's URL: mqtt:// (tcp://), mqtts://
	// (tls://, ssl://), ws://, wss:// or unix:///path.
	Remote string
	// Dial, if set, opens the connections to the remote instead of
	// package transport (a tunnel, a test proxy); it is given Remote.
	Dial func(ctx context.Context, remote string) (net.Conn, error)
	// ClientID is the bridge's client identifier on the remote. Default
	// "tern-bridge-<Name>-<host name>" (for MQTT 3.1, which allows 23
	// bytes, the first 23 bytes of it).
	ClientID string
	// Username and Password are the credentials sent to the remote.
	Username string
	Password string
	// TLS configures mqtts:// and wss:// from files; TLSConfig, if set,
	// is used as it is instead.
	TLS       *TLS
	TLSConfig *tls.Config
	// Version is the protocol spoken to the remote: packet.V5 (the
	// default), packet.V311 or packet.V31. See the package documentation
	// for what each means for loop prevention.
	Version packet.Version
	// CleanSession starts a new session on the remote at every start and
	// ends it with each connection (Mosquitto's cleansession true).
	// Default false: a persistent session, so that what the remote holds
	// for the bridge's subscriptions waits for it across reconnects.
	CleanSession bool
	// SessionExpiry is how long each of the bridge's two sessions (on the
	// local broker and on the remote) outlives a disconnection of the
	// bridge: while the bridge is stopped, or cut from the remote, what
	// its subscriptions match waits in them for this long. Default 7 days,
	// whole seconds; ignored with CleanSession on the remote, and for
	// MQTT 3.1.1 remotes, whose persistent sessions last as the remote
	// says (Mosquitto's persistent_client_expiration).
	SessionExpiry time.Duration
	// KeepAlive is the keep alive interval with the remote. Default 60 s.
	KeepAlive time.Duration
	// BackoffMin and BackoffMax bound the wait between reconnection
	// attempts to the remote, doubling from one to the other. Defaults
	// 100 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// Topics are the topic mappings. At least one.
	Topics []Mapping
	// Dir, if set, is a directory where the bridge keeps its two client
	// sessions (the local and the remote side) in store/disk logs, so
	// that what is on its way survives a restart of the broker. tern
	// broker sets it to <data_dir>/bridges/<Name> when its store is
	// durable. Empty: memory.
	Dir string
	// Sync makes the stores of Dir fsync every change (store/disk's
	// Options.Sync), so that what they hold survives a power loss, not
	// only a crash of the process. tern broker sets it with store.sync
	// always.
	Sync bool
	// MaxQueued bounds the messages the remote side holds that the remote
	// has not taken yet (client.Config.MaxQueued). Default 1000. Beyond it
	// the bridge stops taking messages from the local broker, which then
	// queues them in the bridge's session (the broker's MaxQueuedMessages
	// and QueuePolicy).
	MaxQueued int
	// LocalUsername and LocalPassword are the credentials of the bridge's
	// connection to its own broker, which goes through the broker's
	// Authenticator and Authorizer like any client's: set them when the
	// broker has a password file.
	LocalUsername, LocalPassword string
	// SysInterval is how often the counters under
	// $SYS/broker/bridges/<Name>/ are published (the state is published
	// whenever it changes). Default 10 s; negative: never.
	SysInterval time.Duration
	// Logger receives the bridge's logs. Nil: slog.Default().
	Logger *slog.Logger
}

// FieldError is a bad Config field: Field names it as the Go struct
// spells it ("Topics[1].QoS"), so that a configuration file can name its
// own key instead.
type FieldError struct {
	Bridge string
	Field  string
	Err    error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("bridge %q: %s: %v", e.Bridge, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate reports the first bad field of cfg as a *FieldError, naming it
// and the fix.
func (cfg *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Bridge: cfg.Name, Field: field, Err: fmt.Errorf(format, args...)}
	}
	if cfg.Name == "" {
		return bad("Name", "empty: give the bridge a name (letters, digits, '-', '_', '.')")
	}
	for _, r := range cfg.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return bad("Name", "%q holds %q: use letters, digits, '-', '_' and '.'", cfg.Name, r)
		}
	}
	if cfg.Name == "." || cfg.Name == ".." {
		return bad("Name", "%q is not a usable name", cfg.Name)
	}
	if cfg.Remote == "" {
		return bad("Remote", "empty: give the remote broker's URL, e.g. mqtt://broker.example:1883")
	}
	u, err := url.Parse(cfg.Remote)
	if err != nil || u.Scheme == "" {
		return bad("Remote", "%q is not a URL: write scheme://host:port, e.g. mqtt://broker.example:1883", cfg.Remote)
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "tls", "ssl", "ws", "wss":
		if u.Host == "" {
			return bad("Remote", "%q has no host: write scheme://host:port", cfg.Remote)
		}
	case "unix":
		if u.Path == "" {
			return bad("Remote", "%q has no socket path: write unix:///path/to/socket", cfg.Remote)
		}
	default:
		return bad("Remote", "%q: unknown scheme %q: use mqtt, tcp, mqtts, tls, ssl, ws, wss or unix", cfg.Remote, u.Scheme)
	}
	switch cfg.Version {
	case 0, packet.V31, packet.V311, packet.V5:
	default:
		return bad("Version", "%d is not an MQTT protocol level: use 5 (MQTT 5), 4 (3.1.1) or 3 (3.1)", cfg.Version)
	}
	if cfg.Version == packet.V31 && len(cfg.ClientID) > 23 {
		// MQTT 3.1 servers may refuse longer identifiers (3.1, section 3.1).
		return bad("ClientID", "%q is %d bytes: MQTT 3.1 allows 23 at most", cfg.ClientID, len(cfg.ClientID))
	}
	if cfg.TLS != nil && (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		return bad("TLS.CertFile", "a client certificate needs both its certificate and its key file")
	}
	if cfg.KeepAlive < 0 || cfg.KeepAlive > 65535*time.Second {
		return bad("KeepAlive", "%v is outside 0 to 65535s", cfg.KeepAlive)
	}
	if cfg.BackoffMin < 0 || cfg.BackoffMax < 0 || cfg.BackoffMax != 0 && cfg.BackoffMin > cfg.BackoffMax {
		return bad("BackoffMin", "%v to %v is not a range: the minimum must be at most the maximum, neither negative", cfg.BackoffMin, cfg.BackoffMax)
	}
	if cfg.SessionExpiry < 0 || cfg.SessionExpiry > 0xFFFFFFFE*time.Second {
		return bad("SessionExpiry", "%v is outside 0 to 4294967294s (0 for the default, 7 days)", cfg.SessionExpiry)
	}
	if cfg.MaxQueued < 0 {
		return bad("MaxQueued", "%d is negative: use a positive bound, or 0 for 1000", cfg.MaxQueued)
	}
	if len(cfg.Topics) == 0 {
		return bad("Topics", "empty: give at least one topic mapping (topic, direction, qos)")
	}
	for i, m := range cfg.Topics {
		f := fmt.Sprintf("Topics[%d]", i)
		if m.Topic == "" {
			return bad(f+".Topic", "empty: give a topic filter such as sensors/#")
		}
		switch m.Direction {
		case "", Out, In, Both:
		default:
			return bad(f+".Direction", "%q is not a direction: use out, in or both", m.Direction)
		}
		if m.QoS > 2 {
			return bad(f+".QoS", "%d: use 0, 1 or 2", m.QoS)
		}
		for _, p := range []struct{ field, v string }{{".LocalPrefix", m.LocalPrefix}, {".RemotePrefix", m.RemotePrefix}} {
			if strings.ContainsAny(p.v, "+#") {
				return bad(f+p.field, "%q holds a wildcard: a prefix is a plain topic beginning such as site1/", p.v)
			}
		}
		for _, full := range []string{m.LocalPrefix + m.Topic, m.RemotePrefix + m.Topic} {
			if err := topic.ValidateFilter(full); err != nil {
				return bad(f+".Topic", "%q is not a valid topic filter: %v", full, err)
			}
			if topic.IsShared(full) {
				return bad(f+".Topic", "%q is a shared subscription: a bridge carries every message of a topic", full)
			}
		}
	}
	return nil
}

// tlsConfig returns the TLS configuration of the remote connection.
func (cfg *Config) tlsConfig() (*tls.Config, error) {
	if cfg.TLSConfig != nil {
		return cfg.TLSConfig, nil
	}
	if cfg.TLS == nil {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLS.ServerName, InsecureSkipVerify: cfg.TLS.Insecure}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, &FieldError{Bridge: cfg.Name, Field: "TLS.CAFile", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &FieldError{Bridge: cfg.Name, Field: "TLS.CAFile", Err: fmt.Errorf("%s holds no PEM certificate", cfg.TLS.CAFile)}
		}
		tc.RootCAs = pool
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, &FieldError{Bridge: cfg.Name, Field: "TLS.CertFile", Err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

var errClosed = errors.New("bridge: closed")
