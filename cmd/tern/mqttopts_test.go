package main

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// noEnv is an environment without a home: no defaults file is read.
func noEnv(string) string { return "" }

// envHome is an environment whose XDG_CONFIG_HOME is dir.
func envHome(dir string) func(string) string {
	return func(k string) string {
		if k == "XDG_CONFIG_HOME" {
			return dir
		}
		return ""
	}
}

func mustParse(t *testing.T, tool mqttTool, args ...string) *mqttOptions {
	t.Helper()
	o, _, err := parseMQTTArgs(tool, args, noEnv)
	if err != nil {
		t.Fatalf("%s %q: %v", tool, args, err)
	}
	return o
}

// TestMQTTFlagsPub checks that every pub flag sets what Mosquitto's does,
// in its short and long forms.
func TestMQTTFlagsPub(t *testing.T) {
	o := mustParse(t, toolPub, "-h", "broker", "-p", "1884", "-t", "a/b", "-m", "hello", "-q", "2", "-r",
		"-i", "me", "-u", "user", "-P", "secret", "-k", "30", "-V", "mqttv5", "-c", "-x", "120",
		"--will-topic", "w", "--will-payload", "gone", "--will-qos", "1", "--will-retain",
		"-M", "7", "--repeat", "3", "--repeat-delay", "0.25", "-A", "127.0.0.1", "--nodelay", "-d", "--quiet")
	want := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	want("host", o.host, "broker")
	want("port", o.port, 1884)
	want("topics", o.topics, []string{"a/b"})
	want("message", o.message, "hello")
	want("mode", o.mode, msgArg)
	want("qos", o.qos, 2)
	want("retain", o.retain, true)
	want("id", o.id, "me")
	want("username", o.username, "user")
	want("password", o.password, "secret")
	want("keepalive", o.keepalive, 30)
	want("version", o.version, packet.V5)
	want("clean", o.clean, false)
	want("sessionExpiry", o.sessionExpiry, int64(120))
	want("willTopic", o.willTopic, "w")
	want("willPayload", o.willPayload, "gone")
	want("willQoS", o.willQoS, 1)
	want("willRetain", o.willRetain, true)
	want("maxInflight", o.maxInflight, 7)
	want("repeat", o.repeat, 3)
	want("repeatDelay", o.repeatDelay, 250*time.Millisecond)
	want("bind", o.bind, "127.0.0.1")
	want("nodelay", o.nodelay, true)
	want("debug", o.debug, true)
	want("quiet", o.quiet, true)
	want("url", o.serverURL(), "mqtt://broker:1884")

	long := mustParse(t, toolPub, "--host", "broker", "--port", "1884", "--topic", "a/b", "--message", "hello",
		"--qos", "2", "--retain", "--id", "me", "--username", "user", "--pw", "secret", "--keepalive", "30",
		"--protocol-version", "5", "--disable-clean-session", "--debug")
	if long.host != "broker" || long.port != 1884 || long.message != "hello" || long.qos != 2 || !long.retain ||
		long.id != "me" || long.password != "secret" || long.keepalive != 30 || long.version != packet.V5 || long.clean || !long.debug {
		t.Errorf("long forms: %+v", long)
	}
	// -c with MQTT 5 and no -x: the session never expires.
	if long.sessionExpiry != math.MaxUint32 {
		t.Errorf("-c -V 5: session expiry %d, want never", long.sessionExpiry)
	}

	for _, c := range []struct {
		args []string
		mode msgMode
	}{
		{[]string{"-f", "/etc/hostname"}, msgFile},
		{[]string{"--file", "x"}, msgFile},
		{[]string{"-l"}, msgStdinLine},
		{[]string{"--stdin-line"}, msgStdinLine},
		{[]string{"-n"}, msgNull},
		{[]string{"--null-message"}, msgNull},
		{[]string{"-s"}, msgStdinFile},
		{[]string{"--stdin-file"}, msgStdinFile},
	} {
		o := mustParse(t, toolPub, append([]string{"-t", "x"}, c.args...)...)
		if o.mode != c.mode {
			t.Errorf("%q: mode %d, want %d", c.args, o.mode, c.mode)
		}
	}
}

// TestMQTTFlagsSub checks sub's flags: -t repeats, -T and -U collect,
// and the printing options.
func TestMQTTFlagsSub(t *testing.T) {
	o := mustParse(t, toolSub, "-t", "a/#", "-t", "b/+/c", "--topic", "d", "-T", "a/x", "-T", "a/y", "-U", "old/#",
		"-C", "5", "-W", "9", "-E", "-R", "-N", "-v", "-F", "%t %p", "--pretty", "--remove-retained",
		"--retain-as-published", "--random-filter", "50", "-q", "1")
	if !reflect.DeepEqual(o.topics, []string{"a/#", "b/+/c", "d"}) {
		t.Errorf("topics %q", o.topics)
	}
	if !reflect.DeepEqual(o.filterOut, []string{"a/x", "a/y"}) || !reflect.DeepEqual(o.unsubscribe, []string{"old/#"}) {
		t.Errorf("-T %q, -U %q", o.filterOut, o.unsubscribe)
	}
	if o.count != 5 || o.timeout != 9 || !o.exitAfterSub || !o.noRetained || !o.noEOL || !o.verbose ||
		o.format != "%t %p" || !o.formatSet || !o.pretty || !o.removeRetained || !o.retainAsPub || o.randomFilter != 50 || o.qos != 1 {
		t.Errorf("sub options: %+v", o)
	}
	if o.version != packet.V311 {
		t.Errorf("sub's default version %v, want 3.1.1", o.version)
	}
	// --retained-only alone.
	if o := mustParse(t, toolSub, "-t", "x", "--retained-only"); !o.retainedOnly {
		t.Error("--retained-only not set")
	}
	// -F "" is a format too.
	if o := mustParse(t, toolSub, "-t", "x", "-F", ""); !o.formatSet || o.format != "" {
		t.Errorf("-F '': %+v", o)
	}
	// Tern's MQTT 5 options select MQTT 5.
	o = mustParse(t, toolSub, "-t", "x", "--no-local", "--retain-handling", "2", "--sub-id", "42")
	if !o.noLocal || o.retainHandling != 2 || o.subID != 42 || o.version != packet.V5 {
		t.Errorf("MQTT 5 options: %+v", o)
	}
	// A -L topic and -t topics both subscribe.
	o = mustParse(t, toolSub, "-L", "mqtt://u:p@h:1999/a/b", "-t", "c")
	if !reflect.DeepEqual(o.topics, []string{"a/b", "c"}) || o.username != "u" || o.password != "p" || o.serverURL() != "mqtt://h:1999" {
		t.Errorf("-L: %+v %s", o, o.serverURL())
	}
}

// TestMQTTFlagsRR checks rr's defaults (MQTT 5, one message) and -e.
func TestMQTTFlagsRR(t *testing.T) {
	o := mustParse(t, toolRR, "-t", "req", "-e", "resp", "-m", "x", "-W", "3", "-v")
	if o.version != packet.V5 || o.count != 1 || o.responseTopic != "resp" || o.timeout != 3 || !o.verbose {
		t.Errorf("rr: %+v", o)
	}
}

// TestMQTTFlagErrors checks Mosquitto's errors, each naming the flag and
// the fix.
func TestMQTTFlagErrors(t *testing.T) {
	for _, c := range []struct {
		tool mqttTool
		args []string
		want string // in the message
	}{
		{toolPub, []string{"-t", "a", "-m", "b", "-f", "x"}, "-f: only one of -m, -f, -l, -n and -s"},
		{toolPub, []string{"-t", "a", "-l", "-s"}, "-s: only one of"},
		{toolPub, []string{"-t", "a", "-n", "-m", "x"}, "-m: only one of -m, -f, -l, -n and -s may give the message, and -n"},
		{toolPub, []string{"-m", "x"}, "give the topic (-t) and the message"},
		{toolPub, []string{"-t", "x"}, "give the topic (-t) and the message"},
		{toolPub, []string{"-t", "a/#", "-m", "x"}, `-t "a/#": not a valid topic to publish to`},
		{toolPub, []string{"-t", "a", "-m", "x", "-q", "3"}, "-q 3: the QoS must be a whole number from 0 to 2"},
		{toolPub, []string{"-t", "a", "-m", "x", "-k", "4"}, "-k 4: the keep alive must be a whole number from 5 to 65535"},
		{toolPub, []string{"-t", "a", "-m", "x", "-p", "70000"}, "-p 70000: the port"},
		{toolPub, []string{"-t", "a", "-m", "x", "-p", "abc"}, "-p abc: the port"},
		{toolPub, []string{"-t", "a", "-m", "x", "-V", "4.0"}, "-V 4.0: unknown protocol version; use 5 (mqttv5), 311 (mqttv311) or 31 (mqttv31)"},
		{toolPub, []string{"-t", "a", "-m", "x", "-i", "a", "-I", "b"}, "-i and -I cannot be used together"},
		{toolPub, []string{"-t", "a", "-m", "x", "-c"}, "-c keeps the session of a client identifier: give -i"},
		{toolPub, []string{"-t", "a", "-m", "x", "-c", "-V", "5"}, "never expires (-c, or -x -1) needs a client identifier: give -i"},
		{toolPub, []string{"-t", "a", "-m", "x", "-x", "abc"}, "-x abc: the session expiry interval"},
		{toolPub, []string{"-t", "a", "-m", "x", "--bogus"}, "unknown flag: --bogus"},
		{toolPub, []string{"-t", "a", "-m", "x", "-C", "3"}, "unknown shorthand flag: 'C'"},
		{toolPub, []string{"-t", "a", "-m", "x", "extra"}, `unexpected argument "extra"`},
		{toolPub, []string{"-t", "a", "-m", "x", "--will-payload", "x"}, "--will-payload needs --will-topic"},
		{toolPub, []string{"-t", "a", "-m", "x", "--will-retain"}, "--will-retain needs --will-topic"},
		{toolPub, []string{"-t", "a", "-m", "x", "--will-topic", "w/+"}, `--will-topic "w/+": not a valid topic`},
		{toolPub, []string{"-t", "a", "-m", "x", "--cert", "c.pem"}, "--cert needs --key"},
		{toolPub, []string{"-t", "a", "-m", "x", "--key", "k.pem"}, "--key needs --cert"},
		{toolPub, []string{"-t", "a", "-m", "x", "-M", "0"}, "-M 0: the in-flight maximum"},
		{toolPub, []string{"-t", "a", "-m", "x", "--repeat", "0"}, "--repeat 0: the repeat count"},
		{toolPub, []string{"-t", "a", "-m", "x", "--repeat-delay", "-1"}, "--repeat-delay -1: give seconds"},
		{toolPub, []string{"-t", "a", "-m", "x", "--proxy", "ftp://x"}, "--proxy ftp://x: unsupported proxy"},
		{toolPub, []string{"-t", "a", "-m", "x", "--psk", "00ff", "--psk-identity", "me"}, "TLS-PSK is not supported"},
		{toolPub, []string{"-t", "a", "-m", "x", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"}, "--ciphers: unknown cipher suite"},
		{toolPub, []string{"-t", "a", "-m", "x", "--tls-version", "tlsv1"}, "--tls-version tlsv1: use tlsv1.3, tlsv1.2 or tlsv1.1"},
		{toolPub, []string{"-L", "http://x/a", "-m", "b"}, `-L http://x/a: unsupported URL scheme "http"`},
		{toolPub, []string{"-L", "mqtt://localhost:1", "-m", "b"}, "-L mqtt://localhost:1: the topic is missing"},
		{toolPub, []string{"-L", "mqtt://localhost:99999/a", "-m", "b"}, `port "99999" must be a number`},
		{toolPub, []string{"-t", "a", "-m", "x", "-V", "311", "-D", "publish", "content-type", "x"}, "-D needs MQTT 5, and -V asks for 311"},
		{toolPub, []string{"-t", "a", "-m", "x", "-P", "pw"}, "-P needs -u with MQTT 3.1.1"},
		{toolSub, []string{}, "give a topic filter to subscribe to with -t"},
		{toolSub, []string{"-U", "a"}, "give a topic filter to subscribe to with -t"},
		{toolSub, []string{"-t", "a/#/b"}, `-t "a/#/b": not a valid topic filter`},
		{toolSub, []string{"-t", "a", "-T", "a/#/b"}, `-T "a/#/b": not a valid topic filter`},
		{toolSub, []string{"-t", "a", "-U", "+x"}, `-U "+x": not a valid topic filter`},
		{toolSub, []string{"-t", "a", "-C", "0"}, "-C 0: the message count"},
		{toolSub, []string{"-t", "a", "-W", "0"}, "-W 0: the timeout"},
		{toolSub, []string{"-t", "a", "-F", "%z"}, `-F "%z"`},
		{toolSub, []string{"-t", "a", "-F", "%"}, `-F "%"`},
		{toolSub, []string{"-t", "a", "-F", `\q`}, `-F "\\q"`},
		{toolSub, []string{"-t", "a", "-m", "x"}, "unknown shorthand flag: 'm'"},
		{toolSub, []string{"-t", "a", "-r"}, "unknown shorthand flag: 'r'"},
		{toolSub, []string{"-t", "a", "--random-filter", "0"}, "--random-filter 0: give a percentage from 0.1 to 100"},
		{toolSub, []string{"-t", "a", "--retain-handling", "3"}, "--retain-handling 3"},
		{toolSub, []string{"-t", "a", "--sub-id", "0"}, "--sub-id 0: the subscription identifier must be a whole number from 1 to 268435455"},
		{toolSub, []string{"-t", "a", "--no-local", "-V", "311"}, "--no-local needs MQTT 5"},
		{toolSub, []string{"-t", "a", "-R", "--retained-only"}, "-R and --retained-only cannot be used together"},
		{toolRR, []string{"-t", "a", "-m", "b"}, "give the request topic (-t), the message (-m, -f, -n or -s) and the response topic (-e)"},
		{toolRR, []string{"-t", "a", "-e", "b/#", "-m", "x"}, `-e "b/#": not a valid response topic`},
		{toolRR, []string{"-t", "a", "-e", "b", "-m", "x", "-l"}, "unknown shorthand flag: 'l'"},
		{toolRR, []string{"-t", "a", "-e", "b", "-m", "x", "-V", "311"}, "tern rr needs MQTT 5"},
		{toolPub, []string{"-t", "a", "-m", "x", "--save", "a/x"}, `--save a/x: '/' is not allowed`},
		{toolPub, []string{"-t", "a", "-m", "x", "--load", "nothere"}, "--load nothere: neither XDG_CONFIG_HOME nor HOME is set"},
	} {
		_, _, err := parseMQTTArgs(c.tool, c.args, noEnv)
		if err == nil {
			t.Errorf("%s %q: no error, want %q", c.tool, c.args, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q:\n got %v\nwant %q", c.tool, c.args, err, c.want)
		}
		if ec, ok := err.(*exitCodeError); !ok || ec.code != exitError || !ec.usage {
			t.Errorf("%s %q: error %#v, want a usage error with exit status 1", c.tool, c.args, err)
		}
	}
}

// TestMQTTVersionSpellings: Mosquitto's -V spellings and Tern's.
func TestMQTTVersionSpellings(t *testing.T) {
	for in, want := range map[string]packet.Version{
		"mqttv31": packet.V31, "31": packet.V31, "3.1": packet.V31, "3": packet.V31,
		"mqttv311": packet.V311, "311": packet.V311, "3.1.1": packet.V311, "4": packet.V311,
		"mqttv5": packet.V5, "5": packet.V5, "5.0": packet.V5, "MQTTV5": packet.V5,
	} {
		if o := mustParse(t, toolPub, "-t", "a", "-m", "b", "-V", in); o.version != want {
			t.Errorf("-V %s: %v, want %v", in, o.version, want)
		}
	}
}

// TestMQTTSessionExpiry: -x's forms, and its defaults with and without -c.
func TestMQTTSessionExpiry(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
	}{
		{[]string{"-V", "5"}, 0},
		{[]string{"-V", "5", "-x", "60"}, 60},
		{[]string{"-V", "5", "-x", "0x10"}, 16},
		{[]string{"-V", "5", "-i", "me", "-x", "-1"}, math.MaxUint32},
		{[]string{"-V", "5", "-i", "me", "-x", "∞"}, math.MaxUint32},
		{[]string{"-V", "5", "-i", "me", "-x", "4294967295"}, math.MaxUint32},
		{[]string{"-V", "5", "-i", "me", "-c"}, math.MaxUint32},
		{[]string{"-V", "5", "-i", "me", "-c", "-x", "30"}, 30},
		{[]string{"-D", "connect", "session-expiry-interval", "77"}, 77},
	} {
		o := mustParse(t, toolPub, append([]string{"-t", "a", "-m", "b"}, c.args...)...)
		if o.sessionExpiry != c.want {
			t.Errorf("%q: session expiry %d, want %d", c.args, o.sessionExpiry, c.want)
		}
	}
	_, _, err := parseMQTTArgs(toolPub, []string{"-t", "a", "-m", "b", "-x", "5", "-D", "connect", "session-expiry-interval", "77"}, noEnv)
	if err == nil || !strings.Contains(err.Error(), "-x and -D connect session-expiry-interval") {
		t.Errorf("-x and -D both: %v", err)
	}
}

// TestMQTTURLs: -L, --unix, -p and the TLS flags decide the server URL.
func TestMQTTURLs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "mqtt://localhost:1883"},
		{[]string{"-h", "::1"}, "mqtt://[::1]:1883"},
		{[]string{"-p", "8883"}, "mqtts://localhost:8883"},
		{[]string{"--cafile", "ca.pem"}, "mqtts://localhost:8883"},
		{[]string{"--capath", "/etc/ssl/certs", "-p", "1999"}, "mqtts://localhost:1999"},
		{[]string{"--tls-use-os-certs", "-h", "b"}, "mqtts://b:8883"},
		{[]string{"-L", "mqtts://b/t"}, "mqtts://b:8883"},
		{[]string{"-L", "mqtt://b:1/t", "-p", "2"}, "mqtt://b:2"},
		{[]string{"-p", "2", "-L", "mqtt://b:1/t"}, "mqtt://b:1"},
		{[]string{"-L", "mqtt://b/t", "-h", "c"}, "mqtt://c:1883"},
		{[]string{"-L", "ws://b:9001/t"}, "ws://b:9001/mqtt"},
		{[]string{"-L", "wss://b/t"}, "wss://b:443/mqtt"},
		{[]string{"-L", "tcp://b/t"}, "mqtt://b:1883"},
		{[]string{"-L", "unix:///run/m.sock"}, "unix:///run/m.sock"},
		{[]string{"--unix", "/run/m.sock"}, "unix:///run/m.sock"},
		{[]string{"--unix", "/run/m.sock", "-h", "b"}, "mqtt://b:1883"},
	} {
		args := append([]string{"-t", "a", "-m", "b"}, c.args...)
		o := mustParse(t, toolPub, args...)
		if got := o.serverURL(); got != c.want {
			t.Errorf("%q: %s, want %s", c.args, got, c.want)
		}
	}
}

// TestMQTTProperties: -D for every command and property Mosquitto
// accepts, each type, and its errors.
func TestMQTTProperties(t *testing.T) {
	o := mustParse(t, toolPub, "-t", "a", "-m", "b",
		"-D", "connect", "authentication-data", "ad",
		"-D", "connect", "authentication-method", "am",
		"-D", "connect", "maximum-packet-size", "4096",
		"-D", "connect", "receive-maximum", "10",
		"-D", "connect", "request-problem-information", "0",
		"-D", "connect", "request-response-information", "1",
		"-D", "connect", "session-expiry-interval", "30",
		"-D", "connect", "topic-alias-maximum", "5",
		"-D", "connect", "user-property", "k", "v",
		"-D", "publish", "content-type", "text/plain",
		"-D", "publish", "correlation-data", "cd",
		"-D", "publish", "message-expiry-interval", "0x20",
		"-D", "publish", "payload-format-indicator", "1",
		"-D", "publish", "response-topic", "r/t",
		"-D", "publish", "topic-alias", "3",
		"-D", "publish", "user-property", "a", "1",
		"--property", "publish", "user-property", "a", "2",
		"-D", "disconnect", "session-expiry-interval", "0",
		"-D", "disconnect", "reason-string", "bye",
		"-D", "disconnect", "server-reference", "other",
		"-D", "disconnect", "user-property", "d", "e",
		"-D", "will", "content-type", "wc",
		"-D", "will", "correlation-data", "wd",
		"-D", "will", "message-expiry-interval", "9",
		"-D", "will", "payload-format-indicator", "0",
		"-D", "will", "response-topic", "wr",
		"-D", "will", "user-property", "wk", "wv",
		"-D", "will", "will-delay-interval", "15",
		"--will-topic", "wt",
	)
	if o.version != packet.V5 {
		t.Errorf("-D did not select MQTT 5: %v", o.version)
	}
	c := o.props[cmdConnect]
	if string(c.AuthData) != "ad" || c.AuthMethod != "am" || c.MaximumPacketSize != 4096 || c.ReceiveMaximum != 10 ||
		!c.Has(packet.PropRequestProblemInfo) || c.RequestProblemInfo != 0 || c.RequestResponseInfo != 1 ||
		c.SessionExpiry != 30 || c.TopicAliasMaximum != 5 || !reflect.DeepEqual(c.User, []packet.UserProperty{{Key: "k", Value: "v"}}) {
		t.Errorf("connect properties: %v", &c)
	}
	p := o.props[cmdPublish]
	if p.ContentType != "text/plain" || string(p.CorrelationData) != "cd" || p.MessageExpiry != 32 || p.PayloadFormat != 1 ||
		p.ResponseTopic != "r/t" || p.TopicAlias != 3 ||
		!reflect.DeepEqual(p.User, []packet.UserProperty{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}) {
		t.Errorf("publish properties: %v", &p)
	}
	d := o.props[cmdDisconnect]
	if !d.Has(packet.PropSessionExpiry) || d.SessionExpiry != 0 || d.ReasonString != "bye" || d.ServerReference != "other" || len(d.User) != 1 {
		t.Errorf("disconnect properties: %v", &d)
	}
	w := o.props[cmdWill]
	if w.ContentType != "wc" || string(w.CorrelationData) != "wd" || w.MessageExpiry != 9 || !w.Has(packet.PropPayloadFormat) ||
		w.ResponseTopic != "wr" || w.WillDelay != 15 || len(w.User) != 1 {
		t.Errorf("will properties: %v", &w)
	}

	s := mustParse(t, toolSub, "-t", "a", "-D", "subscribe", "subscription-identifier", "268435455",
		"-D", "subscribe", "user-property", "s", "t", "-D", "unsubscribe", "user-property", "u", "v")
	if !reflect.DeepEqual(s.props[cmdSubscribe].SubscriptionIDs, []uint32{268435455}) || len(s.props[cmdSubscribe].User) != 1 ||
		len(s.props[cmdUnsubscribe].User) != 1 {
		t.Errorf("subscribe properties: %v, unsubscribe: %v", &s.props[cmdSubscribe], &s.props[cmdUnsubscribe])
	}

	// "-m -D": the message is "-D", as Mosquitto reads it.
	if o := mustParse(t, toolPub, "-t", "a", "-m", "-D"); o.message != "-D" || o.hasProps {
		t.Errorf(`-m -D: message %q, properties %v`, o.message, o.hasProps)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-D", "publish", "foo", "x"}, `-D publish foo: unknown property "foo"; publish takes payload-format-indicator, message-expiry-interval`},
		{[]string{"-D", "pub", "content-type", "x"}, `-D pub: unknown command "pub"; use one of connect, publish, subscribe, unsubscribe, disconnect, will`},
		{[]string{"-D", "connect", "content-type", "x"}, "-D connect content-type: content-type is not allowed in connect; connect takes"},
		{[]string{"-D", "publish", "subscription-identifier", "3"}, "a client's PUBLISH carries no subscription identifier"},
		{[]string{"-D", "auth", "authentication-data", "3"}, "-D auth: the client sets no properties of AUTH"},
		{[]string{"-D", "puback", "reason-string", "3"}, "-D puback: the client sets no properties of PUBACK"},
		{[]string{"-D", "publish", "content-type"}, "-D publish content-type: give a command, a property and a value"},
		{[]string{"-D", "publish", "user-property", "a"}, "-D publish user-property a: give a command"},
		{[]string{"-D", "publish", "message-expiry-interval", "abc"}, "-D publish message-expiry-interval abc: message-expiry-interval is a 32-bit unsigned integer, 0 to 4294967295"},
		{[]string{"-D", "publish", "message-expiry-interval", "-1"}, "is a 32-bit unsigned integer"},
		{[]string{"-D", "publish", "payload-format-indicator", "300"}, "payload-format-indicator is a 8-bit unsigned integer, 0 to 255"},
		{[]string{"-D", "publish", "payload-format-indicator", "2"}, "payload-format-indicator is 0 (bytes) or 1 (UTF-8)"},
		{[]string{"-D", "connect", "receive-maximum", "0"}, "receive-maximum 0 is a protocol error"},
		{[]string{"-D", "connect", "receive-maximum", "65536"}, "receive-maximum is a 16-bit unsigned integer"},
		{[]string{"-D", "publish", "topic-alias", "0"}, "topic-alias 0 is a protocol error"},
		{[]string{"-D", "connect", "maximum-packet-size", "0"}, "maximum-packet-size 0 is a protocol error"},
		{[]string{"-D", "connect", "request-problem-information", "2"}, "request-problem-information is 0 or 1"},
		{[]string{"-D", "publish", "content-type", "x", "-D", "publish", "content-type", "y"}, "content-type given twice for publish"},
		{[]string{"-D", "publish", "content-type", "\xff"}, "content-type must be UTF-8"},
		{[]string{"-D", "publish", "response-topic", "a/#"}, "a response topic is a topic name"},
	} {
		_, _, err := parseMQTTArgs(toolPub, append([]string{"-t", "a", "-m", "b"}, c.args...), noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %q", c.args, err, c.want)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-D", "subscribe", "subscription-identifier", "0"}, "subscription-identifier 0 is a protocol error"},
		{[]string{"-D", "subscribe", "subscription-identifier", "268435456"}, "subscription-identifier is a variable byte integer, 0 to 268435455"},
		{[]string{"-D", "unsubscribe", "reason-string", "x"}, "reason-string is not allowed in unsubscribe; unsubscribe takes user-property"},
	} {
		_, _, err := parseMQTTArgs(toolSub, append([]string{"-t", "a"}, c.args...), noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sub %q:\n got %v\nwant %q", c.args, err, c.want)
		}
	}
}

// TestMQTTDefaultsFile: ~/.config/tern/pub (under XDG_CONFIG_HOME) gives
// defaults, one option per line, that the command line overrides.
func TestMQTTDefaultsFile(t *testing.T) {
	dir := t.TempDir()
	writeIn(t, dir, "tern/pub", "# defaults of tern pub\n-h broker.example\n\n  -p 1999\r\n--will-retain\n--will-topic w/t\n"+
		"-D connect user-property site north wing\n-q 1\n")
	writeIn(t, dir, "tern/sub", "-t from/file\n-v\n")
	o, _, err := parseMQTTArgs(toolPub, []string{"-t", "a", "-m", "b", "-q", "2"}, envHome(dir))
	if err != nil {
		t.Fatal(err)
	}
	if o.host != "broker.example" || o.port != 1999 || !o.willRetain || o.willTopic != "w/t" || o.qos != 2 {
		t.Errorf("defaults file: %+v", o)
	}
	if u := o.props[cmdConnect].User; len(u) != 1 || u[0] != (packet.UserProperty{Key: "site", Value: "north wing"}) {
		t.Errorf("-D line: %v", u)
	}
	s, _, err := parseMQTTArgs(toolSub, []string{"-t", "cmd"}, envHome(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.topics, []string{"from/file", "cmd"}) || !s.verbose {
		t.Errorf("sub defaults: %q %v", s.topics, s.verbose)
	}
	// HOME/.config/tern without XDG_CONFIG_HOME.
	home := t.TempDir()
	writeIn(t, home, ".config/tern/rr", "-e from/home\n")
	r, _, err := parseMQTTArgs(toolRR, []string{"-t", "q", "-m", "x"}, func(k string) string {
		if k == "HOME" {
			return home
		}
		return ""
	})
	if err != nil || r.responseTopic != "from/home" {
		t.Errorf("HOME defaults: %v %+v", err, r)
	}
	// A bad line is reported with its file and line number.
	writeIn(t, dir, "tern/pub", "-h ok\n-q 7\n")
	_, _, err = parseMQTTArgs(toolPub, []string{"-t", "a", "-m", "b"}, envHome(dir))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "tern", "pub")+" line 2: -q 7") {
		t.Errorf("bad defaults line: %v", err)
	}
}

// TestMQTTSaveLoad: --save NAME keeps the connection options (not the
// topic or message) in a 0600 file that --load NAME reads back.
func TestMQTTSaveLoad(t *testing.T) {
	dir := t.TempDir()
	env := envHome(dir)
	o, toks, err := parseMQTTArgs(toolPub, []string{"-h", "b.example", "-p", "1999", "-u", "me", "-P", "pw with space",
		"-V", "5", "-i", "dev1", "-c", "--will-topic", "w", "-D", "connect", "user-property", "k", "v w",
		"-D", "publish", "content-type", "x", "-t", "a", "-m", "b", "-q", "1", "--save", "home"}, env)
	if err != nil {
		t.Fatal(err)
	}
	p, err := saveConnection(env, o.save, toks)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "tern", "connections", "home") {
		t.Errorf("saved as %s", p)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v %v", fi.Mode(), err)
	}
	data, _ := os.ReadFile(p)
	text := string(data)
	for _, want := range []string{"--host b.example\n", "--port 1999\n", "--username me\n", "--pw pw with space\n",
		"--protocol-version 5\n", "--id dev1\n", "--disable-clean-session\n", "--will-topic w\n", "-D connect user-property k v w\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("saved file lacks %q:\n%s", want, text)
		}
	}
	for _, not := range []string{"\n--topic", "\n-t ", "\n--message", "content-type", "\n--qos", "\n--save"} {
		if strings.Contains(text, not) {
			t.Errorf("saved file holds %q, not a connection option:\n%s", not, text)
		}
	}
	l, _, err := parseMQTTArgs(toolSub, []string{"--load", "home", "-t", "x", "-p", "2000"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if l.host != "b.example" || l.port != 2000 || l.password != "pw with space" || l.id != "dev1" || l.clean ||
		l.version != packet.V5 || len(l.props[cmdConnect].User) != 1 || l.props[cmdConnect].User[0].Value != "v w" {
		t.Errorf("loaded: %+v", l)
	}
	_, _, err = parseMQTTArgs(toolSub, []string{"--load", "nope", "-t", "x"}, env)
	if err == nil || !strings.Contains(err.Error(), "--load nope: no connection saved under that name") {
		t.Errorf("--load of nothing: %v", err)
	}
}

// TestMQTTHelpFirst: --help wins over any error, as it is looked for
// before the options are read.
func TestMQTTHelpFirst(t *testing.T) {
	o, _, err := parseMQTTArgs(toolPub, []string{"-q", "9", "--help"}, noEnv)
	if err != nil || !o.help {
		t.Errorf("--help: %v %+v", err, o)
	}
}
