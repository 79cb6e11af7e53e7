package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// The configuration of tern broker is described once, by the table keys
// below: the YAML path of every key, its type, range, default, flag and
// documentation, and the broker.Server field it sets. The same table
// decodes the file (every error names the key and its line), defines the
// flags, prints --example-config, and translates Server.Validate errors
// back into the keys and flags the user wrote. A file path is a key of
// kind kPath: relative paths in the file are then taken from the file's
// directory, and relative paths in its flag from the working directory.

// kind is the type of a configuration value.
type kind uint8

const (
	kString   kind = iota // text; when choices is set, one of them
	kPath                 // a file path, taken from the config file's directory when relative
	kBool                 // true or false
	kInt                  // a whole number within min..max
	kDuration             // a Go duration (10s, 1m30s) within min..max
	kSection              // a mapping of keys
	kList                 // a list of mappings
)

// key is one configuration key.
type key struct {
	path    string   // YAML path: "limits.max_packet_size", "listeners[].tls.cert_file"
	kind    kind     // the type of its value
	flag    string   // the flag that overrides it, without "--"; "" for none
	invert  bool     // the flag is the key's negation: --no-retain for retain_available
	flagDoc string   // the flag's help when it differs from doc
	choices []string // kString: the values allowed
	hidden  []string // kString: more values allowed, not listed (aliases)
	ranged  bool     // kInt, kDuration: the value must be within min..max
	min     int64    // (nanoseconds for kDuration)
	max     int64    // (nanoseconds for kDuration)
	def     string   // the default as the file spells it; "" for none (or computed)
	example string   // a value for the example config where def is ""
	show    bool     // listener keys: shown uncommented in the example's listener
	doc     string   // one line of documentation
	field   string   // the broker.Server field whose Validate errors name it: "MaxInflight", "Listeners[].Type"
	// ptr returns the value the key sets in c; i is the listener index.
	ptr func(c *brokerConfig, i int) any
}

// brokerConfig is the configuration of tern broker: the defaults, then
// the file, then the flags.
type brokerConfig struct {
	LogLevel, LogFormat string
	Listeners           []broker.Listener
	Auth                struct {
		PasswordFile   string
		AllowAnonymous bool
		ACLFile        string
		SCRAM          bool
	}
	Limits struct {
		MaxPacketSize                               uint32
		MaxQueuedMessages, MaxInflight              int
		QueuePolicy                                 string
		QueueQoS0                                   bool
		ConnectTimeout, WriteTimeout, RetryInterval time.Duration
		HookTimeout                                 time.Duration
	}
	MQTT5 struct {
		MaxSessionExpiry, ServerKeepAlive                                           time.Duration
		ReceiveMaximum, TopicAliasMaximum, MaximumQoS                               int
		OutboundTopicAliases                                                        bool
		RetainAvailable, WildcardSubscriptions, SubscriptionIdentifiers, SharedSubs bool
		SharedStrategy, ResponseInformation                                         string
	}
	SysInterval         time.Duration
	CopyPerSubscription bool
	Store               struct {
		DataDir      string
		InMemory     bool
		Sync         string
		CommitWindow time.Duration
	}
	Cluster struct {
		URL, Node, SessionStore string
		// The engine's credentials and TLS (clusterauth.go).
		User, Password, Token, CredsFile string
		TLS                              struct{ CAFile, CertFile, KeyFile string }
		Replicas                         int      // of the NATS back plane's buckets
		Embedded                         struct { // embedded.go
			Listen, Routes, ClientListen, JetStreamDir string
		}
	}
	Bridges     []bridge.Config  // bridgeconf.go
	bridgeLines []map[string]int // the line of each key of each bridge
	HTTP        struct {
		TokensFile     string
		Admins         string
		ProtectMetrics bool
		MaxBody        int
		Console        bool
	}

	file string            // the configuration file as given; "" for none
	abs  string            // its absolute path
	dir  string            // its directory, for relative paths
	set  map[string]origin // concrete key paths ("listeners[0].tls.cert_file") given explicitly
}

// origin is where a key was set: a line of the file or a flag.
type origin struct {
	line int
	flag string // "--max-inflight", "--listen tcp://..."
}

const exampleHint = "tern broker --example-config prints every key"

var keys = []*key{
	{path: "log_level", kind: kString, flag: "log-level", def: "info",
		choices: []string{"trace", "debug", "info", "warn", "error"}, hidden: []string{"warning"},
		doc: "trace (every packet in and out), debug, info, warn or error",
		ptr: func(c *brokerConfig, _ int) any { return &c.LogLevel }},
	{path: "log_format", kind: kString, flag: "log-format", def: "text", choices: []string{"text", "json"},
		doc: "text (key=value) or json",
		ptr: func(c *brokerConfig, _ int) any { return &c.LogFormat }},

	{path: "listeners", kind: kList, flag: "listen", field: "Listeners",
		doc: "where clients connect; default: one tcp listener on " + broker.DefaultAddr + ", local only"},
	{path: "listeners[].type", kind: kString, example: "tcp", show: true, field: "Listeners[].Type",
		choices: []string{"tcp", "tls", "ws", "wss", "unix", "http", "https"},
		doc:     "tcp, tls (MQTT over TLS), ws, wss (WebSocket, secure WebSocket), unix (default tcp); or http, https: the HTTP API, metrics and health (see the http section)",
		ptr:     func(c *brokerConfig, i int) any { return &c.Listeners[i].Type }},
	{path: "listeners[].addr", kind: kString, example: broker.DefaultAddr, show: true, field: "Listeners[].Addr",
		doc: "host:port (0.0.0.0:1883 for every interface, port 0 for any free one); unix: the socket's path",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].Addr }},
	{path: "listeners[].name", kind: kString, example: "devices", field: "Listeners[].Name",
		doc: "shown in logs and to hooks (default: the type and address)",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].Name }},
	{path: "listeners[].path", kind: kString, example: broker.DefaultWebSocketPath, field: "Listeners[].Path",
		doc: "ws and wss only: the HTTP path (default " + broker.DefaultWebSocketPath + ")",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].Path }},
	{path: "listeners[].use_cert_common_name", kind: kBool, example: "true", field: "Listeners[].UseCertCommonName",
		doc: "tls and wss only: a verified client certificate's common name is the user name",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].UseCertCommonName }},
	{path: "listeners[].tls", kind: kSection, field: "Listeners[].TLS",
		doc: "tls, wss and https (required there), and http (which it makes https): the certificate, and client certificates"},
	{path: "listeners[].tls.cert_file", kind: kPath, example: "server.pem", field: "Listeners[].TLS.CertFile",
		doc: "PEM certificate (chain) of the server",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].TLS.CertFile }},
	{path: "listeners[].tls.key_file", kind: kPath, example: "server.key", field: "Listeners[].TLS.KeyFile",
		doc: "PEM private key of the certificate",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].TLS.KeyFile }},
	{path: "listeners[].tls.client_ca_file", kind: kPath, example: "ca.pem", field: "Listeners[].TLS.ClientCAFile",
		doc: "PEM certificates of the CAs that client certificates must chain to",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].TLS.ClientCAFile }},
	{path: "listeners[].tls.client_auth", kind: kString, example: "require", field: "Listeners[].TLS.ClientAuth",
		choices: []string{"none", "request", "require"}, hidden: []string{"require-and-verify"},
		doc: "client certificates: none, request (verified if sent) or require (default none)",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].TLS.ClientAuth }},
	{path: "listeners[].tls.min_version", kind: kInt, ranged: true, min: 0, max: math.MaxUint16, example: "772", field: "Listeners[].TLS.MinVersion",
		doc: "lowest TLS version: 771 (0x0303) TLS 1.2, 772 (0x0304) TLS 1.3 (default 0: TLS 1.2)",
		ptr: func(c *brokerConfig, i int) any { return &c.Listeners[i].TLS.MinVersion }},

	{path: "auth", kind: kSection},
	{path: "auth.password_file", kind: kPath, flag: "password-file", example: "passwd", field: "Authenticator",
		doc: "users and password hashes (bcrypt, argon2id, Mosquitto's $7$ and $6$), made with tern passwd or mosquitto_passwd (default: none, every client may connect)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Auth.PasswordFile }},
	{path: "auth.allow_anonymous", kind: kBool, flag: "allow-anonymous", example: "true",
		doc: "with a password file: also let clients without a user name in (default false)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Auth.AllowAnonymous }},
	{path: "auth.acl_file", kind: kPath, flag: "acl-file", example: "acl", field: "Authorizer",
		doc: "topic rules in Mosquitto's acl_file format (default: none, every client may use every topic)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Auth.ACLFile }},
	{path: "auth.scram", kind: kBool, flag: "scram", example: "true", field: "AuthMethods",
		doc: "MQTT 5 SCRAM-SHA-256/512 from the password file's SCRAM credentials (default: on with a password file)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Auth.SCRAM }},

	{path: "limits", kind: kSection},
	{path: "limits.max_packet_size", kind: kInt, flag: "max-packet-size", def: strconv.Itoa(broker.DefaultMaxPacketSize),
		ranged: true, min: 64, max: packet.MaxPacketSize, field: "MaxPacketSize",
		doc: "largest packet accepted from a client, in bytes (16 MiB)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.MaxPacketSize }},
	{path: "limits.max_queued_messages", kind: kInt, flag: "max-queued", def: strconv.Itoa(broker.DefaultMaxQueued),
		ranged: true, min: 1, max: math.MaxInt32, field: "MaxQueuedMessages",
		doc: "messages queued per session, for an offline client or a full in-flight window",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.MaxQueuedMessages }},
	{path: "limits.queue_policy", kind: kString, flag: "queue-policy", def: broker.DropNewest.String(), field: "QueuePolicy",
		choices: []string{broker.DropNewest.String(), broker.DropOldest.String()},
		doc:     "when a queue is full, drop the new message or the oldest; every drop is counted and logged",
		ptr:     func(c *brokerConfig, _ int) any { return &c.Limits.QueuePolicy }},
	{path: "limits.queue_qos0", kind: kBool, flag: "queue-qos0", def: "false", field: "QueueQoS0",
		doc: "queue QoS 0 messages for offline persistent sessions too",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.QueueQoS0 }},
	{path: "limits.max_inflight", kind: kInt, flag: "max-inflight", def: strconv.Itoa(broker.DefaultMaxInflight),
		ranged: true, min: 1, max: math.MaxUint16, field: "MaxInflight",
		doc: "unacknowledged QoS 1/2 messages sent to a client",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.MaxInflight }},
	{path: "limits.connect_timeout", kind: kDuration, flag: "connect-timeout", def: broker.DefaultConnectTimeout.String(),
		ranged: true, min: 1, max: math.MaxInt64, field: "ConnectTimeout",
		doc: "time a new connection has to send its CONNECT",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.ConnectTimeout }},
	{path: "limits.write_timeout", kind: kDuration, flag: "write-timeout", def: broker.DefaultWriteTimeout.String(),
		ranged: true, min: 1, max: math.MaxInt64, field: "WriteTimeout",
		doc: "a client that does not read for this long is disconnected",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.WriteTimeout }},
	{path: "limits.retry_interval", kind: kDuration, flag: "retry-interval", def: "0s",
		ranged: true, min: 0, max: math.MaxInt64, field: "RetryInterval",
		doc: "resend unacknowledged messages to 3.1.1 clients after this long (0s: on reconnect only)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.RetryInterval }},
	{path: "limits.hook_timeout", kind: kDuration, flag: "hook-timeout", def: broker.DefaultHookTimeout.String(),
		ranged: true, min: 1, max: math.MaxInt64, field: "HookTimeout",
		doc: "time an authentication or authorization hook may take before it counts as a refusal",
		ptr: func(c *brokerConfig, _ int) any { return &c.Limits.HookTimeout }},

	{path: "mqtt5", kind: kSection,
		doc: "MQTT 5 features; those marked (all) apply to MQTT 3.1 / 3.1.1 clients too"},
	{path: "mqtt5.max_session_expiry", kind: kDuration, flag: "max-session-expiry", def: "0s",
		ranged: true, min: 0, max: math.MaxInt64, field: "MaxSessionExpiry",
		doc: "(all) cap on the session expiry clients ask for, and the expiry of 3.1.1 persistent sessions (0s: no cap, never)",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.MaxSessionExpiry }},
	{path: "mqtt5.receive_maximum", kind: kInt, flag: "receive-maximum", def: strconv.Itoa(broker.DefaultReceiveMaximum),
		ranged: true, min: 1, max: math.MaxUint16, field: "ReceiveMaximum",
		doc: "unacknowledged QoS 1/2 messages a client may send, 1 to 65535",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.ReceiveMaximum }},
	{path: "mqtt5.topic_alias_maximum", kind: kInt, flag: "topic-alias-maximum", def: strconv.Itoa(broker.DefaultTopicAliasMaximum),
		ranged: true, min: 0, max: math.MaxUint16, field: "TopicAliasMaximum",
		doc: "topic aliases a client may set, up to 65535; 0: none",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.TopicAliasMaximum }},
	{path: "mqtt5.outbound_topic_aliases", kind: kBool, flag: "outbound-topic-aliases", def: "false", field: "OutboundTopicAliases",
		doc: "use topic aliases in messages to clients that accept them",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.OutboundTopicAliases }},
	{path: "mqtt5.maximum_qos", kind: kInt, flag: "maximum-qos", def: "2", ranged: true, min: 0, max: 2, field: "MaximumQoS",
		doc: "(all) highest QoS accepted from clients and granted to subscriptions: 0, 1 or 2",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.MaximumQoS }},
	{path: "mqtt5.retain_available", kind: kBool, flag: "no-retain", invert: true, def: "true", field: "RetainUnavailable",
		doc: "(all) false turns retained messages off", flagDoc: "turn retained messages off (MQTT 5 Retain Available 0)",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.RetainAvailable }},
	{path: "mqtt5.wildcard_subscriptions", kind: kBool, flag: "no-wildcard-subscriptions", invert: true, def: "true",
		field: "WildcardSubscriptionsUnavailable",
		doc:   "(all) false refuses filters with + or #", flagDoc: "refuse subscriptions with + or #",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.WildcardSubscriptions }},
	{path: "mqtt5.subscription_identifiers", kind: kBool, flag: "no-subscription-ids", invert: true, def: "true",
		field: "SubscriptionIDsUnavailable",
		doc:   "false refuses SUBSCRIBEs with a Subscription Identifier", flagDoc: "refuse MQTT 5 subscription identifiers",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.SubscriptionIdentifiers }},
	{path: "mqtt5.shared_subscriptions", kind: kBool, flag: "no-shared-subscriptions", invert: true, def: "true",
		field: "SharedSubscriptionsUnavailable",
		doc:   "(all) false refuses $share/ filters", flagDoc: "refuse $share/ subscriptions",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.SharedSubs }},
	{path: "mqtt5.shared_strategy", kind: kString, flag: "shared-strategy", def: broker.SharedRoundRobin.String(),
		choices: sharedStrategies(), field: "SharedStrategy",
		doc: "(all) member of a shared subscription group that gets a message: " + strings.Join(sharedStrategies(), ", "),
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.SharedStrategy }},
	{path: "mqtt5.server_keep_alive", kind: kDuration, flag: "server-keep-alive", def: "0s",
		ranged: true, min: 0, max: int64(65535 * time.Second), field: "ServerKeepAlive",
		doc: "keep alive imposed on MQTT 5 clients, 1s to 65535s (0s: the client's own)",
		ptr: func(c *brokerConfig, _ int) any { return &c.MQTT5.ServerKeepAlive }},
	{path: "mqtt5.response_information", kind: kString, flag: "response-information", def: broker.DefaultResponseInformation,
		field: "ResponseInformation",
		doc:   "Response Information for clients that ask for it; %c is the client identifier",
		ptr:   func(c *brokerConfig, _ int) any { return &c.MQTT5.ResponseInformation }},

	{path: "sys_interval", kind: kDuration, flag: "sys-interval", def: broker.DefaultSysInterval.String(), field: "SysInterval",
		doc: "period of the $SYS/broker/... updates; 0s (or negative) turns them off, as in Mosquitto",
		ptr: func(c *brokerConfig, _ int) any { return &c.SysInterval }},
	{path: "copy_per_subscription", kind: kBool, flag: "copy-per-subscription", def: "false", field: "CopyPerSubscription",
		doc: "overlapping subscriptions of a client get one copy each, not one copy at the highest QoS",
		ptr: func(c *brokerConfig, _ int) any { return &c.CopyPerSubscription }},

	{path: "store", kind: kSection},
	{path: "store.data_dir", kind: kPath, flag: "data-dir", example: "/var/lib/tern", field: "Store",
		doc: "directory of the durable store: sessions, queued and in-flight messages, retained messages (default: $STATE_DIRECTORY under systemd, else $XDG_STATE_HOME/tern, else ~/.local/state/tern)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Store.DataDir }},
	{path: "store.in_memory", kind: kBool, flag: "in-memory", def: "false",
		doc: "keep everything in memory only: a restart or crash loses sessions, queued and retained messages",
		ptr: func(c *brokerConfig, _ int) any { return &c.Store.InMemory }},
	{path: "store.sync", kind: kString, flag: "store-sync", def: "always", choices: []string{"always", "none"},
		doc: "always: a QoS 1/2 message is acknowledged once fsynced (survives power loss); none: once written, before fsync (survives kill -9, not power loss)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Store.Sync }},
	{path: "store.commit_window", kind: kDuration, flag: "commit-window", def: "0s",
		ranged: true, min: 0, max: int64(100 * time.Millisecond),
		doc: "with sync always: how long a write waits for others to share its fsync, 0s to 100ms (0s: only those that arrive meanwhile)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Store.CommitWindow }},

	{path: "http", kind: kSection,
		doc: "the HTTP API, metrics and health served on the http listeners (--http ADDR, or listeners of type http)"},
	{path: "http.tokens_file", kind: kPath, flag: "http-tokens-file", example: "tokens",
		doc: "bearer tokens for the HTTP API: one user:token per line (# comments), a token of 16 characters or more acting as its user (default: none; basic authentication with the password file)",
		ptr: func(c *brokerConfig, _ int) any { return &c.HTTP.TokensFile }},
	{path: "http.admins", kind: kString, flag: "http-admins", example: "alice,bob",
		doc: "users (comma-separated) who may list and disconnect clients over HTTP (default: none)",
		ptr: func(c *brokerConfig, _ int) any { return &c.HTTP.Admins }},
	{path: "http.protect_metrics", kind: kBool, flag: "http-protect-metrics", def: "false",
		doc: "require authentication for /metrics too",
		ptr: func(c *brokerConfig, _ int) any { return &c.HTTP.ProtectMetrics }},
	{path: "http.max_body", kind: kInt, flag: "http-max-body", def: "1048576", ranged: true, min: 64, max: packet.MaxPacketSize,
		doc: "largest body of a publish request, in bytes",
		ptr: func(c *brokerConfig, _ int) any { return &c.HTTP.MaxBody }},
	{path: "http.console", kind: kBool, flag: "no-http-console", invert: true, def: "true",
		doc: "serve the web console at /console/ on the http listeners, for the users the HTTP API admits (clients, subscriptions and the configuration for http.admins)", flagDoc: "turn the web console off",
		ptr: func(c *brokerConfig, _ int) any { return &c.HTTP.Console }},

	{path: "cluster", kind: kSection},
	{path: "cluster.url", kind: kString, flag: "cluster", example: "redis://127.0.0.1:6379", field: "Backplane",
		doc: "run as one of several brokers serving one topic space, on this engine: redis://[user:password@]host:port[/db] or nats://[user:password@]host:port[,host:port...]; empty: a single broker",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.URL }},
	{path: "cluster.node", kind: kString, flag: "node", example: "node-1",
		doc: "this broker's name in the cluster, unique among the running brokers (default: node- and 8 random hex digits)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Node }},
	{path: "cluster.session_store", kind: kString, flag: "session-store", def: "local", choices: []string{"local", "redis", "jetstream"},
		doc: "where persistent sessions are kept: local (this node's store.data_dir; a client that reconnects to another node starts afresh), redis (on the cluster.url Redis) or jetstream (in JetStream streams on the cluster.url NATS or the embedded NATS server); redis and jetstream are shared by the nodes: a session resumes on whichever node its client reconnects to, and store.data_dir is not used",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.SessionStore }},
	{path: "cluster.user", kind: kString, flag: "cluster-user", example: "tern",
		doc: "the user the broker logs in to the engine as: a Redis ACL user or a NATS user",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.User }},
	{path: "cluster.password", kind: kString, example: "secret",
		doc: "its password (Redis without cluster.user: the default user's, as requirepass); in the file only, not a flag",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Password }},
	{path: "cluster.token", kind: kString, example: "s3cr3t",
		doc: "NATS: an authentication token, instead of user and password; in the file only, not a flag",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Token }},
	{path: "cluster.creds_file", kind: kPath, flag: "cluster-creds", example: "/etc/tern/tern.creds",
		doc: "NATS: a credentials file (user JWT and NKey seed, as nsc writes it)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.CredsFile }},
	{path: "cluster.replicas", kind: kInt, flag: "cluster-replicas", example: "3", ranged: true, min: 0, max: 5,
		doc: "NATS: copies of the back plane's JetStream buckets, 1 to 5 (default: 1; with cluster.embedded 3, and the node waits at start for this many servers)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Replicas }},
	{path: "cluster.tls", kind: kSection},
	{path: "cluster.tls.ca_file", kind: kPath, flag: "cluster-ca", example: "/etc/tern/engine-ca.pem",
		doc: "TLS to the engine, checked against these CA certificates (PEM); any cluster.tls key turns TLS on (rediss:// or tls:// with the system's CAs)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.TLS.CAFile }},
	{path: "cluster.tls.cert_file", kind: kPath, flag: "cluster-cert", example: "/etc/tern/engine-client.pem",
		doc: "client certificate (PEM) the broker presents to the engine, with cluster.tls.key_file",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.TLS.CertFile }},
	{path: "cluster.tls.key_file", kind: kPath, flag: "cluster-key", example: "/etc/tern/engine-client-key.pem",
		doc: "its private key (PEM)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.TLS.KeyFile }},
	{path: "cluster.embedded", kind: kSection},
	{path: "cluster.embedded.listen", kind: kString, flag: "cluster-listen", example: "0.0.0.0:6222",
		doc: "run a NATS server with JetStream inside this broker as the cluster's engine, its routes for the other nodes listening here (host:port); cluster.url is then empty or nats-embedded",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Embedded.Listen }},
	{path: "cluster.embedded.routes", kind: kString, flag: "cluster-peers", example: "nats://b:6222,nats://c:6222",
		doc: "the other nodes' cluster.embedded.listen addresses, comma-separated nats://host:port; this node's own may be listed, so that all nodes share one list",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Embedded.Routes }},
	{path: "cluster.embedded.client_listen", kind: kString, flag: "cluster-client-listen", example: "127.0.0.1:4222",
		doc: "serve NATS clients (the nats tool, say) on this host:port; the broker itself uses its server in process (default: a free loopback port)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Embedded.ClientListen }},
	{path: "cluster.embedded.jetstream_dir", kind: kPath, flag: "cluster-dir", example: "/srv/nats",
		doc: "JetStream's storage directory (default: nats in the data directory; with --in-memory a temporary one)",
		ptr: func(c *brokerConfig, _ int) any { return &c.Cluster.Embedded.JetStreamDir }},
}

// sharedStrategies lists the names of broker.SharedStrategy values.
func sharedStrategies() []string {
	var names []string
	for s := broker.SharedStrategy(0); ; s++ {
		if _, err := broker.ParseSharedStrategy(s.String()); err != nil {
			return names
		}
		names = append(names, s.String())
	}
}

var (
	keyIndex  = map[string]*key{} // by path
	fieldKeys = map[string]*key{} // by Server field
)

func init() {
	for _, k := range keys {
		keyIndex[k.path] = k
		if k.field != "" {
			fieldKeys[k.field] = k
		}
	}
}

// newBrokerConfig returns the configuration with every default.
func newBrokerConfig() *brokerConfig {
	c := &brokerConfig{set: map[string]origin{}}
	for _, k := range keys {
		if k.def == "" || strings.Contains(k.path, "[]") {
			continue
		}
		v, err := k.parse(k.def)
		if err != nil {
			panic(fmt.Sprintf("default of %s: %v", k.path, err))
		}
		assign(k.ptr(c, 0), v)
	}
	return c
}

// parse reads a value as the file or a flag spells it.
func (k *key) parse(s string) (any, error) {
	switch k.kind {
	case kString:
		if len(k.choices) == 0 {
			return s, nil
		}
		for _, list := range [][]string{k.choices, k.hidden} {
			for _, c := range list {
				if strings.EqualFold(s, c) {
					return c, nil // as the rest of the program spells it
				}
			}
		}
		return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(k.choices, ", "))
	case kPath:
		return s, nil
	case kBool:
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a boolean: write true or false", s)
	case kInt:
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number: write one such as %s", s, k.sample())
		}
		if k.ranged && (n < k.min || n > k.max) {
			return nil, fmt.Errorf("%d is outside %d..%d", n, k.min, k.max)
		}
		return n, nil
	case kDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
				return nil, fmt.Errorf("%s has no unit: write a duration such as %ss (units: ms, s, m, h)", s, s)
			}
			return nil, fmt.Errorf("%q is not a duration: write one such as %s, 1m30s or 500ms", s, k.sample())
		}
		if k.ranged {
			switch {
			case d < time.Duration(k.min) && k.min == 0:
				return nil, fmt.Errorf("%v must not be negative", d)
			case d < time.Duration(k.min) && k.min == 1:
				return nil, fmt.Errorf("%v is not positive: write a duration such as %s", d, k.sample())
			case d < time.Duration(k.min) || d > time.Duration(k.max):
				return nil, fmt.Errorf("%v is outside %v..%v", d, time.Duration(k.min), time.Duration(k.max))
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("%s is not a single value", k.path)
}

// sample is a value of the key for an error's hint.
func (k *key) sample() string {
	switch {
	case k.def != "" && k.def != "0s" && k.def != "0":
		return k.def
	case k.example != "":
		return k.example
	case k.kind == kDuration:
		return "10s"
	}
	return "10"
}

// assign stores a parsed value into the field p points to.
func assign(p any, v any) {
	switch p := p.(type) {
	case *string:
		*p = v.(string)
	case *bool:
		*p = v.(bool)
	case *int:
		*p = int(v.(int64))
	case *uint32:
		*p = uint32(v.(int64))
	case *uint16:
		*p = uint16(v.(int64))
	case *time.Duration:
		*p = v.(time.Duration)
	case *transport.ClientAuthMode:
		if err := p.UnmarshalText([]byte(v.(string))); err != nil {
			panic(err) // the key's choices are the names UnmarshalText takes
		}
	default:
		panic(fmt.Sprintf("configuration value of type %T", p))
	}
}

// concrete puts listener index i into a path: listeners[].addr becomes
// listeners[2].addr.
func concrete(path string, i int) string {
	return strings.Replace(path, "[]", "["+strconv.Itoa(i)+"]", 1)
}

// generic removes the index from a concrete path.
func generic(path string) (string, int) {
	open := strings.IndexByte(path, '[')
	end := strings.IndexByte(path, ']')
	if open < 0 || end < open {
		return path, 0
	}
	i, _ := strconv.Atoi(path[open+1 : end])
	return path[:open+1] + path[end:], i
}

// parent is the path of the section that holds path, "" at the top.
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// where names a setting as the user wrote it: "tern.yaml:12:
// limits.max_inflight", "--max-inflight", or, for a setting left at its
// default, "limits.max_inflight (--max-inflight)".
func (c *brokerConfig) where(path string) string {
	for p := path; p != ""; p = parent(p) {
		o, ok := c.set[p]
		switch {
		case !ok:
		case o.flag != "":
			return o.flag
		default:
			return fmt.Sprintf("%s:%d: %s", c.file, o.line, path)
		}
	}
	g, _ := generic(path)
	if k := keyIndex[g]; k != nil && k.flag != "" {
		return fmt.Sprintf("%s (--%s)", path, k.flag)
	}
	return path
}

// loadFile reads the configuration file at path over c. Relative paths
// in it are taken from its directory.
func (c *brokerConfig) loadFile(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	c.file, c.abs, c.dir = path, abs, filepath.Dir(abs)
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return syntaxError(path, data, err)
	}
	if len(root.Content) == 0 {
		return nil // empty, or only comments
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil
	}
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the file must be a mapping of keys (key: value); %s", path, doc.Line, exampleHint)
	}
	return c.decodeMapping(doc, "", 0)
}

// decodeMapping decodes the keys of the section prefix ("", "auth",
// "listeners[]", "listeners[].tls") from n; i is the listener index.
func (c *brokerConfig) decodeMapping(n *yaml.Node, prefix string, i int) error {
	seen := map[string]int{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		kn, vn := n.Content[j], deref(n.Content[j+1])
		full := kn.Value
		if prefix != "" {
			full = prefix + "." + kn.Value
		}
		path := concrete(full, i)
		if full == "bridges" {
			if first, dup := seen[kn.Value]; dup {
				return fmt.Errorf("%s:%d: bridges is set twice (first on line %d)", c.file, kn.Line, first)
			}
			seen[kn.Value] = kn.Line
			if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
				continue
			}
			c.set[path] = origin{line: kn.Line}
			if err := c.decodeBridges(vn); err != nil {
				return err
			}
			continue
		}
		k := keyIndex[full]
		if k == nil {
			return c.unknownKey(kn, prefix, i)
		}
		if first, dup := seen[kn.Value]; dup {
			return fmt.Errorf("%s:%d: %s is set twice (first on line %d)", c.file, kn.Line, path, first)
		}
		seen[kn.Value] = kn.Line
		if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
			continue // "key:" with no value keeps the default
		}
		c.set[path] = origin{line: kn.Line}
		switch k.kind {
		case kSection:
			if vn.Kind != yaml.MappingNode {
				return fmt.Errorf("%s:%d: %s must be a mapping of keys (key: value), not %s", c.file, vn.Line, path, nodeKind(vn))
			}
			if full == "listeners[].tls" {
				c.Listeners[i].TLS = &transport.TLSConfig{}
			}
			if err := c.decodeMapping(vn, full, i); err != nil {
				return err
			}
		case kList:
			if vn.Kind != yaml.SequenceNode {
				return fmt.Errorf("%s:%d: %s must be a list (lines starting with \"- \"), not %s", c.file, vn.Line, path, nodeKind(vn))
			}
			c.Listeners = nil
			for li, item := range vn.Content {
				item = deref(item)
				if item.Kind != yaml.MappingNode {
					return fmt.Errorf("%s:%d: %s[%d] must be a mapping of keys (type, addr, ...), not %s", c.file, item.Line, path, li, nodeKind(item))
				}
				c.Listeners = append(c.Listeners, broker.Listener{})
				c.set[concrete(full+"[]", li)] = origin{line: item.Line}
				if err := c.decodeMapping(item, full+"[]", li); err != nil {
					return err
				}
			}
		default:
			if vn.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s:%d: %s must be a single value, not %s", c.file, vn.Line, path, nodeKind(vn))
			}
			v, err := k.parse(vn.Value)
			if err != nil {
				return fmt.Errorf("%s:%d: %s: %v", c.file, vn.Line, path, err)
			}
			if s, ok := v.(string); ok && k.kind == kPath && s != "" && !filepath.IsAbs(s) {
				v = filepath.Join(c.dir, s)
			}
			assign(k.ptr(c, i), v)
		}
	}
	return nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("the value %q", n.Value)
}

// unknownKey explains an unknown key, with the key meant when it can
// guess it.
func (c *brokerConfig) unknownKey(kn *yaml.Node, prefix string, i int) error {
	in := "at the top level"
	if prefix != "" {
		in = "in " + concrete(prefix, i)
	}
	guess := ""
	best := 3
	for _, k := range keys {
		if parent(k.path) == prefix {
			name := k.path[len(prefix):]
			name = strings.TrimPrefix(name, ".")
			if d := editDistance(kn.Value, name); d < best && d < len(name)/2+1 {
				best, guess = d, concrete(k.path, i)
			}
		}
	}
	if prefix == "" && guess == "" && editDistance(kn.Value, "bridges") < 3 {
		guess = "bridges"
	}
	if guess == "" {
		for _, k := range keys { // the right key in the wrong section
			if strings.HasSuffix(k.path, "."+kn.Value) {
				guess = k.path
				break
			}
		}
	}
	msg := fmt.Sprintf("%s:%d: unknown key %q %s", c.file, kn.Line, kn.Value, in)
	if guess != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", guess)
	}
	return errors.New(msg + "; " + exampleHint)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// syntaxError reports a YAML syntax error at the line where the file
// stops being valid YAML. The parser's own line is often that of the
// enclosing block (line 1 for a bad indentation deep in a list): the
// longest prefix of whole lines that still parses ends just before the
// line at fault.
func syntaxError(path string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			msg = after
		}
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	bad := len(lines)
	for n := len(lines) - 1; n >= 0; n-- {
		var probe yaml.Node
		if yaml.Unmarshal(bytes.Join(lines[:n], nil), &probe) == nil {
			bad = n + 1
			break
		}
	}
	bad = max(1, min(bad, len(lines)))
	text := strings.TrimRight(string(lines[bad-1]), "\r\n")
	return fmt.Errorf("%s:%d: YAML syntax error: %s\n  %d | %s", path, bad, msg, bad, text)
}
