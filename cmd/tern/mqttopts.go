package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ternmq/tern/internal/subfmt"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

// This file holds the options of tern pub, sub, rr and test: Mosquitto's
// flags with Mosquitto's meanings (mosquitto_pub(1), mosquitto_sub(1),
// mosquitto_rr(1), and where they differ, the behaviour of the 2.0.11
// programs), parsed into one mqttOptions and checked.

// mqttTool is the command whose options are parsed.
type mqttTool string

const (
	toolPub  mqttTool = "pub"
	toolSub  mqttTool = "sub"
	toolRR   mqttTool = "rr"
	toolTest mqttTool = "test"
)

// msgMode is where tern pub and rr take the message from.
type msgMode int

const (
	msgNone      msgMode = iota
	msgArg               // -m
	msgFile              // -f
	msgStdinLine         // -l
	msgNull              // -n
	msgStdinFile         // -s
)

var msgModeFlags = [...]string{"", "-m", "-f", "-l", "-n", "-s"}

// Exit statuses, as Mosquitto's tools use them: 0 success, 1 an error
// (bad flags, no connection), the CONNACK reason code when the server
// refuses the connection, 27 (MOSQ_ERR_TIMEOUT) when -W runs out.
const (
	exitError   = 1
	exitTimeout = 27
	// exitLoss is tern test's status when a round trip was lost,
	// duplicated or reordered (tern test only; Mosquitto has no tester).
	exitLoss = 2
)

// exitCodeError carries the exit status of a failed command.
type exitCodeError struct {
	code  int
	err   error
	usage bool // a flag error: main adds a pointer to --help
	quiet bool // --quiet: print nothing
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// usageErr is a flag error, exit status 1.
func usageErr(format string, args ...any) error {
	return &exitCodeError{code: exitError, err: fmt.Errorf(format, args...), usage: true}
}

// mqttOptions are the parsed options of one run of pub, sub, rr or test.
type mqttOptions struct {
	tool mqttTool

	// Connection.
	scheme     string // mqtt, mqtts, ws, wss or unix; "" until -L, --unix or a TLS flag
	host       string
	port       int // 0: the scheme's default
	unixPath   string
	bind       string // -A
	nodelay    bool
	username   string
	password   string
	hasUser    bool
	hasPass    bool
	id         string
	idPrefix   string
	keepalive  int
	version    packet.Version
	versionSet bool // -V given
	clean      bool
	// sessionExpiry is -x: -1 when not given.
	sessionExpiry int64
	maxInflight   int
	quiet, debug  bool

	willTopic      string
	willPayload    string
	hasWillPayload bool
	willQoS        int
	willRetain     bool
	hasWillQoS     bool

	cafile, capath, certFile, keyFile string
	tlsVersion, ciphers, alpn         string
	insecure, useOSCerts              bool
	psk, pskIdentity                  string
	tlsEngine, keyform, engineKpass   string

	proxy string

	props    mqttProps
	hasProps bool // some -D was given
	// needV5 names the first option that asked for MQTT 5 (-D,
	// --no-local, ...), for the error when -V says otherwise.
	needV5 string

	// What to publish or subscribe to.
	topics []string // pub, rr: one topic; sub: the filters
	qos    int

	// pub, rr.
	mode        msgMode
	message     string
	file        string
	retain      bool
	repeat      int
	repeatDelay time.Duration

	// sub, rr.
	count          int // -C; rr: 1
	timeout        int // -W, seconds; 0 none
	exitAfterSub   bool
	noRetained     bool // -R
	filterOut      []string
	unsubscribe    []string
	noEOL          bool
	verbose        bool
	format         string
	formatSet      bool
	pretty         bool
	retainedOnly   bool
	removeRetained bool
	retainAsPub    bool
	noLocal        bool
	retainHandling int // -1 unset
	subID          uint32
	randomFilter   float64 // percent; 100 prints all

	responseTopic string // rr -e

	// test.
	rate        float64
	payloadSize int
	drain       time.Duration

	save, load string
	help       bool

	// err is the first error a flag's value gave, reported after
	// parsing so that its message names the flag plainly.
	err error
}

// newMQTTOptions returns the defaults of tool (mosquitto's init_config).
func newMQTTOptions(tool mqttTool) *mqttOptions {
	o := &mqttOptions{
		tool:           tool,
		keepalive:      60,
		clean:          true,
		sessionExpiry:  -1,
		maxInflight:    20,
		repeat:         1,
		version:        packet.V311,
		retainHandling: -1,
		randomFilter:   100,
		drain:          5 * time.Second,
		rate:           1,
		payloadSize:    0,
	}
	if tool == toolRR {
		o.version = packet.V5
		o.count = 1
	}
	return o
}

func (o *mqttOptions) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

// flagValue is a pflag.Value that hands the raw text to a function; an
// error is kept in mqttOptions.err (pflag's own wrapping would bury the
// message).
type flagValue struct {
	o      *mqttOptions
	name   string // as error messages name the flag
	typ    string
	text   string
	isBool bool
	set    func(string) error
}

func (v *flagValue) String() string { return v.text }
func (v *flagValue) Type() string   { return v.typ }
func (v *flagValue) Set(s string) error {
	if v.isBool {
		b, err := strconv.ParseBool(s)
		if err != nil {
			v.o.fail(fmt.Errorf("%s takes no value (got %q)", v.name, s))
			return nil
		}
		if !b {
			return nil
		}
	}
	v.text = s
	if err := v.set(s); err != nil {
		v.o.fail(err)
	}
	return nil
}

// Annotations of the flags.
const (
	// annConn marks the connection flags that --save keeps.
	annConn = "tern-connection"
)

// flagReg registers the flags of one tool.
type flagReg struct {
	o    *mqttOptions
	fs   *pflag.FlagSet
	tool mqttTool
}

// on reports whether the flag is offered by the tool: tools lists the
// tools that have it, none meaning all.
func (r flagReg) on(tools []mqttTool) bool {
	if len(tools) == 0 {
		return true
	}
	for _, t := range tools {
		if t == r.tool {
			return true
		}
	}
	return false
}

func (r flagReg) value(long, short, typ, def, usage string, conn bool, tools []mqttTool, isBool bool, set func(string) error) {
	if !r.on(tools) {
		return
	}
	v := &flagValue{o: r.o, name: flagDisplay(long, short), typ: typ, text: def, isBool: isBool, set: set}
	if isBool {
		v.typ = "bool"
	}
	f := r.fs.VarPF(v, long, short, usage)
	if isBool {
		f.NoOptDefVal = "true"
	}
	if conn {
		_ = r.fs.SetAnnotation(long, annConn, []string{"true"})
	}
}

// flagDisplay is how error messages name a flag: its short form if any.
func flagDisplay(long, short string) string {
	if short != "" {
		return "-" + short
	}
	return "--" + long
}

var (
	onlyPub     = []mqttTool{toolPub}
	pubRR       = []mqttTool{toolPub, toolRR}
	onlySub     = []mqttTool{toolSub}
	subRR       = []mqttTool{toolSub, toolRR}
	onlyRR      = []mqttTool{toolRR}
	onlyTest    = []mqttTool{toolTest}
	subRRTest   = []mqttTool{toolSub, toolRR, toolTest}
	notTest     = []mqttTool{toolPub, toolSub, toolRR}
	allMQTTTool = []mqttTool(nil)
)

// intArg parses a whole number for flag, between lo and hi.
func intArg(flag, s string, lo, hi int64, what string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %s: %s must be a whole number from %d to %d", flag, s, what, lo, hi)
	}
	return n, nil
}

// parseVersion reads -V: Mosquitto's spellings (mqttv31, 31, mqttv311,
// 311, mqttv5, 5) and Tern's (3.1, 3, 3.1.1, 4, 5.0).
func parseVersion(s string) (packet.Version, error) {
	switch strings.ToLower(s) {
	case "mqttv31", "31", "3.1", "3":
		return packet.V31, nil
	case "mqttv311", "311", "3.1.1", "4":
		return packet.V311, nil
	case "mqttv5", "5", "5.0":
		return packet.V5, nil
	}
	return 0, fmt.Errorf("-V %s: unknown protocol version; use 5 (mqttv5), 311 (mqttv311) or 31 (mqttv31)", s)
}

// parseURL reads -L: mqtt://[user[:password]@]host[:port]/topic as
// Mosquitto does (mqtts:// too), and Tern's ws://, wss://, tcp://, tls://,
// ssl:// and unix:///path (the topic then comes from -t).
func (o *mqttOptions) parseURL(raw string) error {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fmt.Errorf("-L %s: not a URL; use mqtt://[user[:password]@]host[:port]/topic (or mqtts://, ws://, wss://, unix:///path)", raw)
	}
	switch strings.ToLower(scheme) {
	case "mqtt", "tcp":
		o.scheme, o.port = "mqtt", 1883
	case "mqtts", "tls", "ssl":
		o.scheme, o.port = "mqtts", 8883
		o.useOSCerts = true
	case "ws":
		o.scheme, o.port = "ws", 80
	case "wss":
		o.scheme, o.port = "wss", 443
		o.useOSCerts = true
	case "unix":
		if rest == "" || rest[0] != '/' {
			return fmt.Errorf("-L %s: a unix URL is unix:///absolute/path/of/the/socket (the topic comes from -t)", raw)
		}
		o.scheme, o.unixPath, o.port = "unix", rest, 0
		return nil
	default:
		return fmt.Errorf("-L %s: unsupported URL scheme %q; use mqtt://, mqtts://, ws://, wss:// or unix://", raw, scheme)
	}
	hostPart, topicPart, ok := strings.Cut(rest, "/")
	if !ok {
		return fmt.Errorf("-L %s: the topic is missing; the URL ends with /topic, as in mqtt://localhost/sensors/temp", raw)
	}
	if err := o.addTopic(topicPart, "-L topic"); err != nil {
		return err
	}
	if at := strings.LastIndex(hostPart, "@"); at >= 0 {
		user := hostPart[:at]
		hostPart = hostPart[at+1:]
		if u, p, ok := strings.Cut(user, ":"); ok {
			o.password, o.hasPass = p, true
			user = u
		}
		o.username, o.hasUser = user, true
	}
	o.unixPath = ""
	host, port := hostPart, ""
	if h, p, err := net.SplitHostPort(hostPart); err == nil {
		host, port = h, p
	} else if strings.Count(hostPart, ":") == 1 {
		host, port, _ = strings.Cut(hostPart, ":")
	}
	if host == "" {
		return fmt.Errorf("-L %s: the host is missing, as in mqtt://localhost/topic", raw)
	}
	o.host = host
	if port != "" {
		n, err := intArg("-L", raw, 1, 65535, "the port")
		if p, perr := strconv.Atoi(port); perr == nil && p >= 1 && p <= 65535 {
			n, err = int64(p), nil
		}
		if err != nil {
			return fmt.Errorf("-L %s: port %q must be a number from 1 to 65535", raw, port)
		}
		o.port = int(n)
	}
	return nil
}

// addTopic adds a -t argument (or the topic of -L): a topic name for pub,
// rr and test, a filter for sub.
func (o *mqttOptions) addTopic(t, from string) error {
	switch o.tool {
	case toolSub:
		// [v5 MQTT-4.7.1-1] [v5 MQTT-4.7.1-2] [v5 MQTT-4.7.3-1] [v3 MQTT-4.7.1-2] [v3 MQTT-4.7.1-3]
		if err := topic.ValidateFilter(t); err != nil {
			return fmt.Errorf("%s %q: not a valid topic filter (%v); + and # stand alone in a level, # only last", from, t, err)
		}
		o.topics = append(o.topics, t)
	default:
		// [v5 MQTT-3.3.2-2] [v3 MQTT-3.3.2-2] a topic name has no wildcard.
		if err := topic.ValidateName(t); err != nil {
			return fmt.Errorf("%s %q: not a valid topic to publish to (%v); it must not be empty or contain + or #", from, t, err)
		}
		// Mosquitto keeps the last -t of pub and rr.
		o.topics = []string{t}
	}
	return nil
}

// setMode sets where the message comes from; -m, -f, -l, -n and -s are
// mutually exclusive, as in Mosquitto.
func (o *mqttOptions) setMode(m msgMode) error {
	if o.mode != msgNone {
		return fmt.Errorf("%s: only one of -m, -f, -l, -n and -s may give the message, and %s was given already", msgModeFlags[m], msgModeFlags[o.mode])
	}
	o.mode = m
	return nil
}

// askV5 records an option that needs MQTT 5.
func (o *mqttOptions) askV5(flag string) {
	if o.needV5 == "" {
		o.needV5 = flag
	}
}

// flagSet returns the flags of o's tool, bound to o.
func (o *mqttOptions) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet(string(o.tool), pflag.ContinueOnError)
	fs.SortFlags = false
	r := flagReg{o: o, fs: fs, tool: o.tool}
	str := func(long, short, typ, def, usage string, conn bool, tools []mqttTool, set func(string) error) {
		r.value(long, short, typ, def, usage, conn, tools, false, set)
	}
	boolean := func(long, short, usage string, conn bool, tools []mqttTool, set func() error) {
		r.value(long, short, "", "false", usage, conn, tools, true, func(string) error { return set() })
	}

	// Where to connect.
	str("host", "h", "host", "localhost", "broker host name or address", true, nil, func(s string) error {
		o.host, o.unixPath = s, ""
		if o.scheme == "unix" {
			o.scheme = ""
		}
		return nil
	})
	str("port", "p", "port", "1883", "broker port (8883 with TLS)", true, nil, func(s string) error {
		n, err := intArg("-p", s, 1, 65535, "the port")
		o.port = int(n)
		return err
	})
	str("url", "L", "URL", "", "broker and topic as one URL: mqtt(s)://[user[:password]@]host[:port]/topic; also ws://, wss://, unix:///path (topic from -t)", true, nil, o.parseURL)
	str("unix", "", "path", "", "connect through this unix domain socket instead of TCP", true, nil, func(s string) error {
		if s == "" {
			return errors.New("--unix: give the path of the broker's socket")
		}
		o.unixPath, o.scheme, o.port = s, "unix", 0
		return nil
	})
	str("bind-address", "A", "address", "", "bind the outgoing socket to this local address", true, nil, func(s string) error {
		if net.ParseIP(s) == nil && s != "localhost" {
			// Mosquitto resolves names too; Tern takes addresses.
			if _, err := net.ResolveIPAddr("ip", s); err != nil {
				return fmt.Errorf("-A %s: not a local address (%v)", s, err)
			}
		}
		o.bind = s
		return nil
	})
	boolean("nodelay", "", "disable Nagle's algorithm (Tern always does: TCP_NODELAY is Go's default)", true, nil, func() error { o.nodelay = true; return nil })
	str("proxy", "", "URL", "", "connect through a proxy: socks5h://[user[:password]@]host[:port] (port 1080), socks5://, or http://host:port (HTTP CONNECT)", true, nil, func(s string) error {
		scheme, _, ok := strings.Cut(s, "://")
		switch strings.ToLower(scheme) {
		case "socks5h", "socks5", "http":
		default:
			ok = false
		}
		if !ok {
			return fmt.Errorf("--proxy %s: unsupported proxy; use socks5h://[user[:password]@]host[:port] or http://host:port", s)
		}
		o.proxy = s
		return nil
	})

	// Who we are.
	str("id", "i", "id", "", "client identifier (default: MQTT 5 and 3.1.1 let the broker assign one)", true, nil, func(s string) error {
		o.id = s
		return nil
	})
	str("id-prefix", "I", "prefix", "", "client identifier: this prefix and the process id", true, nil, func(s string) error {
		o.idPrefix = s
		return nil
	})
	str("username", "u", "user", "", "user name", true, nil, func(s string) error { o.username, o.hasUser = s, true; return nil })
	str("pw", "P", "password", "", "password", true, nil, func(s string) error { o.password, o.hasPass = s, true; return nil })
	str("keepalive", "k", "seconds", "60", "keep alive interval, 5 to 65535 seconds", true, nil, func(s string) error {
		n, err := intArg("-k", s, 5, 65535, "the keep alive")
		o.keepalive = int(n)
		return err
	})
	defV := "311"
	if o.tool == toolRR {
		defV = "5"
	}
	str("protocol-version", "V", "version", defV, "MQTT version: 5 (mqttv5), 311 (mqttv311) or 31 (mqttv31)", true, nil, func(s string) error {
		v, err := parseVersion(s)
		o.version, o.versionSet = v, true
		return err
	})
	boolean("disable-clean-session", "c", "keep the session: clean session 0 (MQTT 3.1.1), session expiry never (MQTT 5, unless -x); needs -i", true, nil, func() error {
		o.clean = false
		return nil
	})
	str("session-expiry", "x", "seconds", "", "MQTT 5 session expiry interval: 0 to 4294967294 seconds, or -1, 4294967295 or ∞ for never (default -1 with -c, else 0)", true, nil, func(s string) error {
		if s == "∞" {
			o.sessionExpiry = math.MaxUint32
			return nil
		}
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil || n < -1 || n > math.MaxUint32 {
			return fmt.Errorf("-x %s: the session expiry interval is 0 to 4294967295 seconds, or -1 or ∞ for never", s)
		}
		if n == -1 {
			n = math.MaxUint32
		}
		o.sessionExpiry = n
		return nil
	})
	str("max-inflight", "M", "count", "20", "QoS 1 and 2 messages sent and not yet acknowledged, at most (the broker's Receive Maximum may lower it)", true, nil, func(s string) error {
		n, err := intArg("-M", s, 1, 65535, "the in-flight maximum")
		o.maxInflight = int(n)
		return err
	})
	str("property", "D", "command property value", "", "MQTT 5 property: -D COMMAND NAME VALUE, or -D COMMAND user-property NAME VALUE; see PROPERTIES below", true, nil, func(s string) error {
		// Only reached with --property=...; the preprocessor takes
		// the usual forms out of the arguments (see splitProperties).
		return o.addProperty(strings.Split(s, "\x00"))
	})

	// The will.
	str("will-topic", "", "topic", "", "topic of the will, published by the broker if the connection is lost", true, nil, func(s string) error {
		if err := topic.ValidateName(s); err != nil {
			return fmt.Errorf("--will-topic %q: not a valid topic (%v); it must not be empty or contain + or #", s, err)
		}
		o.willTopic = s
		return nil
	})
	str("will-payload", "", "payload", "", "payload of the will (default empty)", true, nil, func(s string) error {
		o.willPayload, o.hasWillPayload = s, true
		return nil
	})
	str("will-qos", "", "qos", "0", "QoS of the will: 0, 1 or 2", true, nil, func(s string) error {
		n, err := intArg("--will-qos", s, 0, 2, "the will QoS")
		o.willQoS, o.hasWillQoS = int(n), true
		return err
	})
	boolean("will-retain", "", "retain the will", true, nil, func() error { o.willRetain = true; return nil })

	// TLS.
	str("cafile", "", "file", "", "PEM file of trusted CA certificates; turns TLS on", true, nil, func(s string) error { o.cafile = s; return nil })
	str("capath", "", "dir", "", "directory of trusted CA certificates: every PEM file in it, any name (hashed names not needed); turns TLS on", true, nil, func(s string) error { o.capath = s; return nil })
	str("cert", "", "file", "", "PEM client certificate, with --key", true, nil, func(s string) error { o.certFile = s; return nil })
	str("key", "", "file", "", "PEM private key of --cert", true, nil, func(s string) error { o.keyFile = s; return nil })
	str("tls-version", "", "version", "", "lowest TLS version: tlsv1.3, tlsv1.2 or tlsv1.1 (default tlsv1.2)", true, nil, func(s string) error {
		switch s {
		case "tlsv1.3", "tlsv1.2", "tlsv1.1":
		default:
			return fmt.Errorf("--tls-version %s: use tlsv1.3, tlsv1.2 or tlsv1.1", s)
		}
		o.tlsVersion = s
		return nil
	})
	boolean("insecure", "", "do not verify the broker's certificate and host name (tests only; the password is then sent anyway)", true, nil, func() error { o.insecure = true; return nil })
	boolean("tls-use-os-certs", "", "trust the system's CA certificates; turns TLS on", true, nil, func() error { o.useOSCerts = true; return nil })
	str("tls-alpn", "", "protocol", "", "TLS ALPN protocol to offer", true, nil, func(s string) error { o.alpn = s; return nil })
	str("ciphers", "", "list", "", "TLS 1.2 cipher suites, colon-separated, by Go's (IANA) names", true, nil, func(s string) error { o.ciphers = s; return nil })
	str("psk", "", "hex-key", "", "TLS-PSK key (not supported: Go's TLS has no PSK)", true, nil, func(s string) error { o.psk = s; return nil })
	str("psk-identity", "", "identity", "", "TLS-PSK identity (not supported)", true, nil, func(s string) error { o.pskIdentity = s; return nil })
	str("tls-engine", "", "engine", "", "OpenSSL engine (not supported)", true, nil, func(s string) error { o.tlsEngine = s; return nil })
	str("keyform", "", "form", "", "key form, pem or engine (only pem is supported)", true, nil, func(s string) error { o.keyform = s; return nil })
	str("tls-engine-kpass-sha1", "", "sha1", "", "OpenSSL engine key password (not supported)", true, nil, func(s string) error { o.engineKpass = s; return nil })

	// What to send or receive.
	topicUsage := map[mqttTool]string{
		toolPub:  "topic to publish to",
		toolSub:  "topic filter to subscribe to; repeat for more",
		toolRR:   "topic the request is published to",
		toolTest: "topic of the round trips (default tern/test/<random>)",
	}[o.tool]
	str("topic", "t", "topic", "", topicUsage, false, nil, func(s string) error { return o.addTopic(s, "-t") })
	qosUsage := map[mqttTool]string{
		toolPub:  "QoS of the message: 0, 1 or 2",
		toolSub:  "QoS of the subscriptions: 0, 1 or 2",
		toolRR:   "QoS of the request and the response subscription: 0, 1 or 2",
		toolTest: "QoS of the round trips: 0, 1 or 2",
	}[o.tool]
	str("qos", "q", "qos", "0", qosUsage, false, nil, func(s string) error {
		n, err := intArg("-q", s, 0, 2, "the QoS")
		o.qos = int(n)
		return err
	})

	// pub and rr: the message.
	str("message", "m", "message", "", "the message", false, pubRR, func(s string) error {
		o.message = s
		return o.setMode(msgArg)
	})
	str("file", "f", "file", "", "send the contents of a file as the message", false, pubRR, func(s string) error {
		o.file = s
		return o.setMode(msgFile)
	})
	boolean("stdin-line", "l", "read lines from stdin and publish each as a message, as they are typed", false, onlyPub, func() error { return o.setMode(msgStdinLine) })
	boolean("null-message", "n", "send an empty message", false, pubRR, func() error { return o.setMode(msgNull) })
	boolean("stdin-file", "s", "read stdin to its end and send it as one message", false, pubRR, func() error { return o.setMode(msgStdinFile) })
	boolean("retain", "r", "retain the message", false, onlyPub, func() error { o.retain = true; return nil })
	str("repeat", "", "count", "1", "publish the message (-m, -f, -s, -n) this many times", false, onlyPub, func(s string) error {
		n, err := intArg("--repeat", s, 1, math.MaxInt32, "the repeat count")
		o.repeat = int(n)
		return err
	})
	str("repeat-delay", "", "seconds", "0", "seconds between repeats (a decimal: 0.5)", false, onlyPub, func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || f > 1e9 {
			return fmt.Errorf("--repeat-delay %s: give seconds, 0 or more, as in 0.5", s)
		}
		o.repeatDelay = time.Duration(f * float64(time.Second))
		return nil
	})

	// sub (and rr): what to print, when to stop.
	str("count", "C", "count", "", "exit after this many messages", false, onlySub, func(s string) error {
		n, err := intArg("-C", s, 1, math.MaxInt32, "the message count")
		o.count = int(n)
		return err
	})
	str("timeout", "W", "seconds", "", "exit (status 27) after this many seconds if not done", false, subRRTest, func(s string) error {
		n, err := intArg("-W", s, 1, math.MaxInt32, "the timeout")
		o.timeout = int(n)
		return err
	})
	boolean("exit-on-subscribe", "E", "exit once the subscriptions are acknowledged", false, onlySub, func() error { o.exitAfterSub = true; return nil })
	boolean("no-retained", "R", "do not print retained (stale) messages; MQTT 5: ask the broker not to send them", false, subRR, func() error {
		o.noRetained = true
		return nil
	})
	str("filter-out", "T", "filter", "", "do not print messages whose topic matches this filter; repeat for more", false, onlySub, func(s string) error {
		if err := topic.ValidateFilter(s); err != nil {
			return fmt.Errorf("-T %q: not a valid topic filter (%v)", s, err)
		}
		o.filterOut = append(o.filterOut, s)
		return nil
	})
	str("unsubscribe", "U", "filter", "", "unsubscribe from this filter (of an earlier session, with -c); repeat for more", false, onlySub, func(s string) error {
		if err := topic.ValidateFilter(s); err != nil {
			return fmt.Errorf("-U %q: not a valid topic filter (%v)", s, err)
		}
		o.unsubscribe = append(o.unsubscribe, s)
		return nil
	})
	boolean("no-eol", "N", "no newline after each message", false, subRR, func() error { o.noEOL = true; return nil })
	boolean("verbose", "v", "print the topic before each payload", false, subRR, func() error { o.verbose = true; return nil })
	str("format", "F", "format", "", "print messages with this format (mosquitto_sub's: %t topic, %p payload, %j JSON, @H:@M:@S ...; see FORMAT)", false, subRR, func(s string) error {
		if _, err := subfmt.Compile(subfmt.Options{Format: s, FormatSet: true}); err != nil {
			return fmt.Errorf("-F %q: %v", s, err)
		}
		o.format, o.formatSet = s, true
		return nil
	})
	boolean("pretty", "", "indent the JSON of %j and %J", false, subRR, func() error { o.pretty = true; return nil })
	boolean("retained-only", "", "only print retained messages; exit at the first that is not", false, onlySub, func() error { o.retainedOnly = true; return nil })
	boolean("remove-retained", "", "clear each retained message received (publish an empty retained message to its topic)", false, onlySub, func() error { o.removeRetained = true; return nil })
	boolean("retain-as-published", "", "MQTT 5: keep the retain flag of messages as published", false, subRR, func() error { o.retainAsPub = true; return nil })
	str("random-filter", "", "percent", "100", "print only this percentage of the messages received, 0.1 to 100", false, onlySub, func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0.1 || f > 100 {
			return fmt.Errorf("--random-filter %s: give a percentage from 0.1 to 100", s)
		}
		o.randomFilter = f
		return nil
	})
	boolean("no-local", "", "MQTT 5: do not receive the messages this client publishes (Tern)", false, onlySub, func() error {
		o.noLocal = true
		o.askV5("--no-local")
		return nil
	})
	str("retain-handling", "", "0|1|2", "", "MQTT 5: retained messages at subscription: 0 send, 1 only for a new subscription, 2 never (Tern)", false, onlySub, func(s string) error {
		n, err := intArg("--retain-handling", s, 0, 2, "the retain handling")
		o.retainHandling = int(n)
		o.askV5("--retain-handling")
		return err
	})
	str("sub-id", "", "id", "", "MQTT 5: subscription identifier, 1 to 268435455 (Tern)", false, onlySub, func(s string) error {
		n, err := intArg("--sub-id", s, 1, 268_435_455, "the subscription identifier")
		o.subID = uint32(n)
		o.askV5("--sub-id")
		return err
	})

	// rr.
	str("response-topic", "e", "topic", "", "topic the response is expected on (subscribed to before the request goes out)", false, onlyRR, func(s string) error {
		// [v5 MQTT-3.3.2-14] a Response Topic has no wildcard.
		if err := topic.ValidateName(s); err != nil {
			return fmt.Errorf("-e %q: not a valid response topic (%v); it must not be empty or contain + or #", s, err)
		}
		o.responseTopic = s
		return nil
	})

	// test.
	str("count", "C", "count", "0", "stop after this many round trips (0: until Ctrl-C)", false, onlyTest, func(s string) error {
		n, err := intArg("-C", s, 0, math.MaxInt32, "the round trip count")
		o.count = int(n)
		return err
	})
	str("rate", "", "per-second", "1", "round trips started per second (0: one after the other, as fast as they return)", false, onlyTest, func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1e6 || math.IsNaN(f) {
			return fmt.Errorf("--rate %s: give round trips per second, 0 to 1000000 (0: back to back)", s)
		}
		o.rate = f
		return nil
	})
	str("size", "", "bytes", "0", "pad each message's payload to this many bytes", false, onlyTest, func(s string) error {
		n, err := intArg("--size", s, 0, 256<<20, "the payload size")
		o.payloadSize = int(n)
		return err
	})
	str("drain", "", "duration", "5s", "at the end, wait this long for the messages still on their way", false, onlyTest, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("--drain %s: give a duration such as 5s or 500ms", s)
		}
		o.drain = d
		return nil
	})

	// Output and the rest.
	boolean("debug", "d", "print the client's log on stderr (connections, reconnections, redirections)", false, nil, func() error { o.debug = true; return nil })
	boolean("quiet", "", "print no error messages", false, nil, func() error { o.quiet = true; return nil })
	str("save", "", "name", "", "save this command line's connection options as NAME (see SAVED CONNECTIONS), then run", false, nil, func(s string) error {
		if err := checkSaveName(s); err != nil {
			return fmt.Errorf("--save %s: %v", s, err)
		}
		o.save = s
		return nil
	})
	str("load", "", "name", "", "start from the connection options saved as NAME; the command line adds to them", false, nil, func(s string) error {
		if err := checkSaveName(s); err != nil {
			return fmt.Errorf("--load %s: %v", s, err)
		}
		o.load = s
		return nil
	})
	fs.BoolVar(&o.help, "help", false, "show this help")
	return fs
}

// addProperty reads one -D.
func (o *mqttOptions) addProperty(args []string) error {
	if err := o.props.add(args); err != nil {
		return err
	}
	o.hasProps = true
	o.askV5("-D")
	return nil
}
