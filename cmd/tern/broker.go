package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/transport"
)

func init() { commands = append(commands, newBrokerCmd) }

// brokerConfig is the YAML configuration file of tern broker. Every key is
// optional; flags given on the command line override it.
type brokerConfig struct {
	LogLevel            string           `yaml:"log_level"`  // trace, debug, info, warn, error
	LogFormat           string           `yaml:"log_format"` // text or json
	Listeners           []listenerConfig `yaml:"listeners"`
	Auth                authConfig       `yaml:"auth"`
	Limits              limitsConfig     `yaml:"limits"`
	MQTT5               mqtt5Config      `yaml:"mqtt5"`
	SysInterval         time.Duration    `yaml:"sys_interval"`
	CopyPerSubscription bool             `yaml:"copy_per_subscription"`
}

type authConfig struct {
	PasswordFile   string `yaml:"password_file"`
	AllowAnonymous *bool  `yaml:"allow_anonymous"`
	ACLFile        string `yaml:"acl_file"`
	// SCRAM offers MQTT 5 enhanced authentication with SCRAM-SHA-256 and
	// SCRAM-SHA-512 from the password file's SCRAM credentials. Unset:
	// on whenever there is a password file.
	SCRAM *bool `yaml:"scram"`
}

type limitsConfig struct {
	MaxPacketSize     uint32        `yaml:"max_packet_size"`
	MaxQueuedMessages int           `yaml:"max_queued_messages"`
	QueuePolicy       string        `yaml:"queue_policy"` // drop-newest or drop-oldest
	QueueQoS0         bool          `yaml:"queue_qos0"`
	MaxInflight       int           `yaml:"max_inflight"`
	ConnectTimeout    time.Duration `yaml:"connect_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	RetryInterval     time.Duration `yaml:"retry_interval"`
}

// mqtt5Config sets the broker.Server fields that shape the MQTT 5
// features. Several also apply to MQTT 3.1 / 3.1.1 clients (the session
// expiry cap, maximum QoS, retain, wildcard and shared subscriptions).
// Pointers tell an explicit 0 or false from an unset key; the positive
// booleans map to the Server's *Unavailable fields.
type mqtt5Config struct {
	MaxSessionExpiry        time.Duration `yaml:"max_session_expiry"`  // 0: no cap
	ReceiveMaximum          int           `yaml:"receive_maximum"`     // 1..65535, 0: 65535
	TopicAliasMaximum       *int          `yaml:"topic_alias_maximum"` // 0 or negative: no aliases
	OutboundTopicAliases    bool          `yaml:"outbound_topic_aliases"`
	MaximumQoS              *int          `yaml:"maximum_qos"`
	RetainAvailable         *bool         `yaml:"retain_available"`
	WildcardSubscriptions   *bool         `yaml:"wildcard_subscriptions"`
	SubscriptionIdentifiers *bool         `yaml:"subscription_identifiers"`
	SharedSubscriptions     *bool         `yaml:"shared_subscriptions"`
	SharedStrategy          string        `yaml:"shared_strategy"`   // round-robin, random, sticky-client, hash-topic
	ServerKeepAlive         time.Duration `yaml:"server_keep_alive"` // 0: the client's own
	ResponseInformation     string        `yaml:"response_information"`
}

type listenerConfig struct {
	Name              string               `yaml:"name"`
	Type              string               `yaml:"type"` // tcp, tls, ws, wss, unix
	Addr              string               `yaml:"addr"`
	Path              string               `yaml:"path"`
	TLS               *transport.TLSConfig `yaml:"tls"`
	UseCertCommonName bool                 `yaml:"use_cert_common_name"`
}

var unknownKey = regexp.MustCompile(`field (\S+) not found in type main\.(\w+)`)

var sectionNames = map[string]string{
	"brokerConfig":   "the top level",
	"authConfig":     "auth",
	"limitsConfig":   "limits",
	"mqtt5Config":    "mqtt5",
	"listenerConfig": "a listener",
}

// fieldNames maps broker.Server field names in validation errors to the
// configuration key and flag a user sets.
var fieldNames = map[string]string{
	"ConnectTimeout":      "limits.connect_timeout (--connect-timeout)",
	"WriteTimeout":        "limits.write_timeout (--write-timeout)",
	"MaxPacketSize":       "limits.max_packet_size (--max-packet-size)",
	"MaxQueuedMessages":   "limits.max_queued_messages (--max-queued)",
	"MaxInflight":         "limits.max_inflight (--max-inflight)",
	"QueuePolicy":         "limits.queue_policy (--queue-policy)",
	"RetryInterval":       "limits.retry_interval (--retry-interval)",
	"Listeners":           "listeners (--listen)",
	"CopyPerSubscription": "copy_per_subscription",

	"MaxSessionExpiry":                 "mqtt5.max_session_expiry (--max-session-expiry)",
	"ReceiveMaximum":                   "mqtt5.receive_maximum (--receive-maximum)",
	"TopicAliasMaximum":                "mqtt5.topic_alias_maximum (--topic-alias-maximum)",
	"OutboundTopicAliases":             "mqtt5.outbound_topic_aliases (--outbound-topic-aliases)",
	"MaximumQoS":                       "mqtt5.maximum_qos (--maximum-qos)",
	"RetainUnavailable":                "mqtt5.retain_available (--no-retain)",
	"WildcardSubscriptionsUnavailable": "mqtt5.wildcard_subscriptions (--no-wildcard-subscriptions)",
	"SubscriptionIDsUnavailable":       "mqtt5.subscription_identifiers (--no-subscription-ids)",
	"SharedSubscriptionsUnavailable":   "mqtt5.shared_subscriptions (--no-shared-subscriptions)",
	"SharedStrategy":                   "mqtt5.shared_strategy (--shared-strategy)",
	"ServerKeepAlive":                  "mqtt5.server_keep_alive (--server-keep-alive)",
	"ResponseInformation":              "mqtt5.response_information (--response-information)",
	"AuthMethods":                      "auth.scram (--scram)",
}

type brokerFlags struct {
	config         string
	listen         []string
	logLevel       string
	logFormat      string
	passwordFile   string
	allowAnonymous bool
	aclFile        string
	maxPacketSize  uint32
	maxQueued      int
	queuePolicy    string
	queueQoS0      bool
	maxInflight    int
	connectTimeout time.Duration
	writeTimeout   time.Duration
	retryInterval  time.Duration
	sysInterval    time.Duration

	scram bool

	maxSessionExpiry        time.Duration
	receiveMaximum          int
	topicAliasMaximum       int
	outboundTopicAliases    bool
	maximumQoS              int
	noRetain                bool
	noWildcardSubscriptions bool
	noSubscriptionIDs       bool
	noSharedSubscriptions   bool
	sharedStrategy          string
	serverKeepAlive         time.Duration
	responseInformation     string
}

func newBrokerCmd() *cobra.Command { return brokerCommand(new(brokerFlags)) }

// brokerCommand returns tern broker with its flags bound to f.
func brokerCommand(f *brokerFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an MQTT broker",
		Long: `Run an MQTT 3.1 / 3.1.1 / 5.0 broker.

With no configuration it listens on 127.0.0.1:1883 only and lets every
client in. Listeners, authentication, ACLs, limits and the MQTT 5 features
come from flags or a YAML file (--config); flags override the file.

Listener URLs for --listen (repeatable):
  tcp://HOST:PORT            plain MQTT
  ws://HOST:PORT/PATH        MQTT over WebSocket (path default /mqtt)
  unix:///PATH/TO/SOCKET     unix socket
TLS and secure WebSocket listeners need certificates: configure them in the
YAML file (listeners[].tls.cert_file, key_file, client_ca_file, client_auth).

Signals: SIGINT and SIGTERM shut down gracefully (wills are published,
MQTT 5 clients are told 0x8B); SIGHUP reloads the password and ACL files.`,
		Example: `  tern broker
  tern broker --listen tcp://0.0.0.0:1883 --listen ws://0.0.0.0:8080/mqtt
  tern broker --config tern.yaml --log-level trace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBroker(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "YAML configuration file")
	fl.StringArrayVarP(&f.listen, "listen", "l", nil, "listener URL (repeatable): tcp://, ws://, unix://")
	fl.StringVar(&f.logLevel, "log-level", "", "log level: trace (every packet), debug, info, warn, error (default info)")
	fl.StringVar(&f.logFormat, "log-format", "", "log format: text or json (default text)")
	fl.StringVar(&f.passwordFile, "password-file", "", "password file (bcrypt or argon2id hashes; create with tern passwd)")
	fl.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "with a password file, also let clients without a user name in")
	fl.StringVar(&f.aclFile, "acl-file", "", "ACL file in Mosquitto's format (topic/pattern read|write|readwrite|deny)")
	fl.Uint32Var(&f.maxPacketSize, "max-packet-size", 0, "largest packet accepted from a client in bytes (default 1048576)")
	fl.IntVar(&f.maxQueued, "max-queued", 0, "messages queued per session (default 1000)")
	fl.StringVar(&f.queuePolicy, "queue-policy", "", "when a session queue is full: drop-newest (default) or drop-oldest")
	fl.BoolVar(&f.queueQoS0, "queue-qos0", false, "queue QoS 0 messages for offline persistent sessions")
	fl.IntVar(&f.maxInflight, "max-inflight", 0, "unacknowledged QoS 1/2 messages per client (default 20)")
	fl.DurationVar(&f.connectTimeout, "connect-timeout", 0, "time allowed for a CONNECT (default 10s)")
	fl.DurationVar(&f.writeTimeout, "write-timeout", 0, "time a client may stall a write before it is dropped (default 30s)")
	fl.DurationVar(&f.retryInterval, "retry-interval", 0, "resend unacknowledged messages to 3.1.1 clients after this long (default: on reconnect only)")
	fl.DurationVar(&f.sysInterval, "sys-interval", 0, "$SYS update interval (default 10s; negative disables)")
	fl.BoolVar(&f.scram, "scram", false, "with a password file, offer MQTT 5 enhanced authentication SCRAM-SHA-256 and SCRAM-SHA-512 (default true; --scram=false turns it off)")

	// MQTT 5 features.
	fl.DurationVar(&f.maxSessionExpiry, "max-session-expiry", 0, "cap on the session expiry clients ask for; also the expiry of MQTT 3.1.1 persistent sessions (default 0: no cap)")
	fl.IntVar(&f.receiveMaximum, "receive-maximum", 0, "unacknowledged QoS 1/2 messages an MQTT 5 client may send, 1 to 65535 (default 65535)")
	fl.IntVar(&f.topicAliasMaximum, "topic-alias-maximum", 0, "topic aliases an MQTT 5 client may set, up to 65535; 0 turns them off (default 64)")
	fl.BoolVar(&f.outboundTopicAliases, "outbound-topic-aliases", false, "use topic aliases in messages to MQTT 5 clients that accept them")
	fl.IntVar(&f.maximumQoS, "maximum-qos", 0, "highest QoS accepted from clients and granted to subscriptions: 0, 1 or 2 (default 2)")
	fl.BoolVar(&f.noRetain, "no-retain", false, "turn retained messages off (MQTT 5 Retain Available 0)")
	fl.BoolVar(&f.noWildcardSubscriptions, "no-wildcard-subscriptions", false, "refuse subscriptions with + or #")
	fl.BoolVar(&f.noSubscriptionIDs, "no-subscription-ids", false, "refuse MQTT 5 subscription identifiers")
	fl.BoolVar(&f.noSharedSubscriptions, "no-shared-subscriptions", false, "refuse $share/ subscriptions")
	fl.StringVar(&f.sharedStrategy, "shared-strategy", "", "member of a shared subscription group that gets a message: round-robin (default), random, sticky-client or hash-topic")
	fl.DurationVar(&f.serverKeepAlive, "server-keep-alive", 0, "keep alive imposed on MQTT 5 clients, 1s to 65535s (default 0: the client's own)")
	fl.StringVar(&f.responseInformation, "response-information", "", "Response Information for MQTT 5 clients that ask for it; %c is the client id (default \"tern/response/%c\")")
	return cmd
}

// loadBrokerConfig reads a YAML file strictly: an unknown key is an error
// that names it.
func loadBrokerConfig(path string) (*brokerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg brokerConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		// "line 3: field bogus not found in type main.limitsConfig" reads
		// better as: line 3: unknown key "bogus" in limits.
		msg := unknownKey.ReplaceAllStringFunc(err.Error(), func(m string) string {
			sub := unknownKey.FindStringSubmatch(m)
			return fmt.Sprintf("unknown key %q in %s (see the keys in README.md)", sub[1], sectionNames[sub[2]])
		})
		return nil, fmt.Errorf("%s: %s", path, msg)
	}
	return &cfg, nil
}

// buildServer turns flags and the configuration file into a Server; every
// error names the setting to fix.
func buildServer(cmd *cobra.Command, f *brokerFlags, stderr io.Writer) (*broker.Server, *slog.LevelVar, []reloader, error) {
	cfg := &brokerConfig{}
	if f.config != "" {
		var err error
		if cfg, err = loadBrokerConfig(f.config); err != nil {
			return nil, nil, nil, fmt.Errorf("config file: %w", err)
		}
	}
	changed := cmd.Flags().Changed
	pick := func(flag string, fv, cv string) string {
		if changed(flag) {
			return fv
		}
		return cv
	}
	level := new(slog.LevelVar)
	switch lv := strings.ToLower(pick("log-level", f.logLevel, cfg.LogLevel)); lv {
	case "", "info":
		level.Set(slog.LevelInfo)
	case "trace":
		level.Set(broker.LevelTrace)
	case "debug":
		level.Set(slog.LevelDebug)
	case "warn", "warning":
		level.Set(slog.LevelWarn)
	case "error":
		level.Set(slog.LevelError)
	default:
		return nil, nil, nil, fmt.Errorf("log_level (--log-level) %q: use trace, debug, info, warn or error", lv)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey && a.Value.Any() == broker.LevelTrace {
			a.Value = slog.StringValue("TRACE")
		}
		return a
	}}
	var h slog.Handler
	switch lf := strings.ToLower(pick("log-format", f.logFormat, cfg.LogFormat)); lf {
	case "", "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return nil, nil, nil, fmt.Errorf("log_format (--log-format) %q: use text or json", lf)
	}

	srv := &broker.Server{Logger: slog.New(h)}
	for _, l := range cfg.Listeners {
		srv.Listeners = append(srv.Listeners, broker.Listener{Name: l.Name, Type: l.Type, Addr: l.Addr, Path: l.Path, TLS: l.TLS, UseCertCommonName: l.UseCertCommonName})
	}
	if changed("listen") {
		srv.Listeners = nil
		for _, u := range f.listen {
			l, err := parseListenURL(u)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("--listen %q: %w", u, err)
			}
			srv.Listeners = append(srv.Listeners, l)
		}
	}
	lim := cfg.Limits
	if changed("max-packet-size") {
		lim.MaxPacketSize = f.maxPacketSize
	}
	if changed("max-queued") {
		lim.MaxQueuedMessages = f.maxQueued
	}
	if changed("queue-qos0") {
		lim.QueueQoS0 = f.queueQoS0
	}
	if changed("max-inflight") {
		lim.MaxInflight = f.maxInflight
	}
	if changed("connect-timeout") {
		lim.ConnectTimeout = f.connectTimeout
	}
	if changed("write-timeout") {
		lim.WriteTimeout = f.writeTimeout
	}
	if changed("retry-interval") {
		lim.RetryInterval = f.retryInterval
	}
	srv.MaxPacketSize = lim.MaxPacketSize
	srv.MaxQueuedMessages = lim.MaxQueuedMessages
	srv.QueueQoS0 = lim.QueueQoS0
	srv.MaxInflight = lim.MaxInflight
	srv.ConnectTimeout = lim.ConnectTimeout
	srv.WriteTimeout = lim.WriteTimeout
	srv.RetryInterval = lim.RetryInterval
	switch qp := pick("queue-policy", f.queuePolicy, lim.QueuePolicy); qp {
	case "", "drop-newest":
		srv.QueuePolicy = broker.DropNewest
	case "drop-oldest":
		srv.QueuePolicy = broker.DropOldest
	default:
		return nil, nil, nil, fmt.Errorf("limits.queue_policy (--queue-policy) %q: use drop-newest or drop-oldest", qp)
	}
	srv.SysInterval = cfg.SysInterval
	if changed("sys-interval") {
		srv.SysInterval = f.sysInterval
	}
	srv.CopyPerSubscription = cfg.CopyPerSubscription
	if err := applyMQTT5(srv, cfg.MQTT5, f, changed); err != nil {
		return nil, nil, nil, err
	}

	var reload []reloader
	// SCRAM (MQTT 5 enhanced authentication) is on by default with a
	// password file; scramSet says the user asked for it explicitly.
	scram, scramSet := true, false
	if cfg.Auth.SCRAM != nil {
		scram, scramSet = *cfg.Auth.SCRAM, true
	}
	if changed("scram") {
		scram, scramSet = f.scram, true
	}
	if pf := pick("password-file", f.passwordFile, cfg.Auth.PasswordFile); pf != "" {
		p, err := auth.LoadPasswordFile(pf)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("auth.password_file (--password-file): %w", err)
		}
		anon := cfg.Auth.AllowAnonymous != nil && *cfg.Auth.AllowAnonymous
		if changed("allow-anonymous") {
			anon = f.allowAnonymous
		}
		p.AllowAnonymous = anon
		for _, l := range srv.Listeners {
			p.UseCertCN = p.UseCertCN || l.UseCertCommonName
		}
		srv.Authenticator = p
		reload = append(reload, p)
		if scram {
			srv.AuthMethods = scramMethods(p)
			if scramSet && p.SCRAMLen() == 0 {
				srv.Logger.Warn("auth.scram is on but no user in the password file has SCRAM credentials yet; set their passwords again with tern passwd",
					"file", pf)
			}
		}
	} else if scram && scramSet {
		return nil, nil, nil, errors.New("auth.scram (--scram): SCRAM needs a password file (auth.password_file, --password-file)")
	}
	if af := pick("acl-file", f.aclFile, cfg.Auth.ACLFile); af != "" {
		a, err := auth.LoadACLFile(af)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("auth.acl_file (--acl-file): %w", err)
		}
		srv.Authorizer = a
		reload = append(reload, a)
	}
	if err := srv.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("invalid configuration:\n%s", renameFields(err.Error()))
	}
	return srv, level, reload, nil
}

// scramMethods returns the MQTT 5 enhanced authentication methods a
// password file serves (auth.scram, --scram): SCRAM-SHA-256 and
// SCRAM-SHA-512 by name, for broker.Server.AuthMethods. They read the
// file's current users at each exchange, so SIGHUP reloads apply to them.
func scramMethods(p *auth.PasswordFile) map[string]broker.AuthMethod { return p.SCRAMMethods() }

// applyMQTT5 sets the MQTT 5 feature fields of srv from the mqtt5 section
// of the file and the flags that override it. Values the Server cannot
// hold are refused here; the rest is left to Server.Validate, whose
// field names fieldNames translates.
func applyMQTT5(srv *broker.Server, m mqtt5Config, f *brokerFlags, changed func(string) bool) error {
	if changed("max-session-expiry") {
		m.MaxSessionExpiry = f.maxSessionExpiry
	}
	if changed("receive-maximum") {
		m.ReceiveMaximum = f.receiveMaximum
	}
	if changed("topic-alias-maximum") {
		m.TopicAliasMaximum = &f.topicAliasMaximum
	}
	if changed("outbound-topic-aliases") {
		m.OutboundTopicAliases = f.outboundTopicAliases
	}
	if changed("maximum-qos") {
		m.MaximumQoS = &f.maximumQoS
	}
	for _, b := range []struct {
		flag string
		val  bool
		dst  **bool
	}{
		{"no-retain", f.noRetain, &m.RetainAvailable},
		{"no-wildcard-subscriptions", f.noWildcardSubscriptions, &m.WildcardSubscriptions},
		{"no-subscription-ids", f.noSubscriptionIDs, &m.SubscriptionIdentifiers},
		{"no-shared-subscriptions", f.noSharedSubscriptions, &m.SharedSubscriptions},
	} {
		if changed(b.flag) {
			available := !b.val
			*b.dst = &available
		}
	}
	if changed("server-keep-alive") {
		m.ServerKeepAlive = f.serverKeepAlive
	}
	if changed("shared-strategy") {
		m.SharedStrategy = f.sharedStrategy
	}
	if changed("response-information") {
		m.ResponseInformation = f.responseInformation
	}

	srv.MaxSessionExpiry = m.MaxSessionExpiry
	if m.ReceiveMaximum < 0 || m.ReceiveMaximum > 65535 {
		return fmt.Errorf("mqtt5.receive_maximum (--receive-maximum) %d is outside 1..65535 (0 means 65535)", m.ReceiveMaximum)
	}
	srv.ReceiveMaximum = uint16(m.ReceiveMaximum)
	if t := m.TopicAliasMaximum; t != nil {
		// In the file and on the command line the value is what the
		// CONNACK announces, so 0 means no aliases (the Server's 0 means
		// the default).
		if *t > 65535 {
			return fmt.Errorf("mqtt5.topic_alias_maximum (--topic-alias-maximum): %d exceeds 65535", *t)
		}
		srv.TopicAliasMaximum = broker.TopicAliases(uint16(max(*t, 0)))
	}
	srv.OutboundTopicAliases = m.OutboundTopicAliases
	if q := m.MaximumQoS; q != nil {
		if *q < 0 || *q > 255 {
			return fmt.Errorf("mqtt5.maximum_qos (--maximum-qos) %d is not a QoS; use 0, 1 or 2", *q)
		}
		srv.MaximumQoS = broker.QoS(byte(*q)) // Validate refuses 3 and above
	}
	off := func(available *bool) bool { return available != nil && !*available }
	srv.RetainUnavailable = off(m.RetainAvailable)
	srv.WildcardSubscriptionsUnavailable = off(m.WildcardSubscriptions)
	srv.SubscriptionIDsUnavailable = off(m.SubscriptionIdentifiers)
	srv.SharedSubscriptionsUnavailable = off(m.SharedSubscriptions)
	if m.SharedStrategy != "" {
		st, err := broker.ParseSharedStrategy(m.SharedStrategy)
		if err != nil {
			return fmt.Errorf("mqtt5.shared_strategy (--shared-strategy): %w", err)
		}
		srv.SharedStrategy = st
	}
	srv.ServerKeepAlive = m.ServerKeepAlive
	srv.ResponseInformation = m.ResponseInformation
	return nil
}

// renameFields rewrites "MaxPacketSize: ..." lines of a Validate error
// into the names the user set.
func renameFields(msg string) string {
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		field, rest, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		base, idx, _ := strings.Cut(field, "[")
		if name, ok := fieldNames[base]; ok {
			if idx != "" {
				name = strings.Replace(name, base, base+"["+idx, 1)
				name = strings.Replace(name, "listeners (--listen)", "listeners["+idx, 1)
			}
			lines[i] = "  " + name + ": " + rest
		} else {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}

// parseListenURL reads tcp://host:port, ws://host:port/path or
// unix:///path.
func parseListenURL(s string) (broker.Listener, error) {
	if !strings.Contains(s, "://") {
		s = "tcp://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return broker.Listener{}, err
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		if u.Host == "" {
			return broker.Listener{}, errors.New("want tcp://HOST:PORT")
		}
		return broker.Listener{Type: "tcp", Addr: u.Host}, nil
	case "ws":
		return broker.Listener{Type: "ws", Addr: u.Host, Path: u.Path}, nil
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return broker.Listener{}, errors.New("want unix:///PATH")
		}
		return broker.Listener{Type: "unix", Addr: p}, nil
	case "tls", "ssl", "mqtts", "wss":
		return broker.Listener{}, fmt.Errorf("%s listeners need certificates: configure them in the YAML file (listeners[].tls)", u.Scheme)
	}
	return broker.Listener{}, fmt.Errorf("unknown scheme %q: use tcp, ws or unix", u.Scheme)
}

type reloader interface{ Reload() error }

func runBroker(cmd *cobra.Command, f *brokerFlags) error {
	srv, _, reload, err := buildServer(cmd, f, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	log := srv.Logger
	broker.Version = "tern " + version
	addrs := make([]string, 0, len(srv.Listeners))
	for _, l := range srv.Listeners {
		typ := l.Type
		if typ == "" {
			typ = "tcp"
		}
		addrs = append(addrs, typ+" "+l.Addr)
	}
	if len(addrs) == 0 {
		log.Info("starting Tern broker in local-only mode: listening on "+broker.DefaultAddr+
			"; only clients on this machine can connect (use --listen or a config file to open it up)",
			"version", version)
	} else {
		log.Info("starting Tern broker", "version", version, "listeners", strings.Join(addrs, ", "))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	for {
		select {
		case err := <-errc:
			if errors.Is(err, broker.ErrServerClosed) {
				return nil
			}
			return err
		case <-hup:
			for _, r := range reload {
				if err := r.Reload(); err != nil {
					log.Error("reload failed; keeping the previous file", "err", err)
				} else {
					log.Info("reloaded", "file", fmt.Sprint(r))
				}
			}
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Shutdown(sctx)
			cancel()
			<-errc
			if err != nil {
				log.Warn("shutdown timed out; connections closed", "err", err)
			}
			log.Info("stopped")
			return nil
		}
	}
}
