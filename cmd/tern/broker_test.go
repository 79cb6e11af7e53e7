package main

import (
	"bytes"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/internal/scram"
	"github.com/ternmq/tern/packet"
)

// buildFromArgs parses args as tern broker would and builds the server.
func buildFromArgs(t *testing.T, args ...string) (*broker.Server, error) {
	t.Helper()
	srv, _, err := buildLogged(t, args...)
	return srv, err
}

// buildLogged is buildFromArgs that also returns what the server's
// logger wrote while it was built.
func buildLogged(t *testing.T, args ...string) (*broker.Server, string, error) {
	t.Helper()
	o := new(brokerOptions)
	cmd := brokerCommand(o)
	if err := cmd.ParseFlags(args); err != nil {
		return nil, "", err
	}
	var logs bytes.Buffer
	st, err := buildServer(o, &logs)
	if err != nil {
		return nil, logs.String(), err
	}
	return st.srv, logs.String(), nil
}

func TestBrokerConfigFile(t *testing.T) {
	cfg := writeFile(t, "tern.yaml", `
log_level: debug
listeners:
  - type: tcp
    addr: 127.0.0.1:0
  - name: web
    type: ws
    addr: 127.0.0.1:0
    path: /mqtt
limits:
  max_packet_size: 65536
  max_queued_messages: 50
  queue_policy: drop-oldest
  max_inflight: 5
  connect_timeout: 3s
sys_interval: -1s
copy_per_subscription: true
`)
	srv, err := buildFromArgs(t, "-c", cfg, "--max-inflight", "7")
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.Listeners) != 2 || srv.Listeners[1].Name != "web" || srv.Listeners[1].Type != "ws" {
		t.Errorf("listeners %+v", srv.Listeners)
	}
	if srv.MaxPacketSize != 65536 || srv.MaxQueuedMessages != 50 || srv.QueuePolicy != broker.DropOldest ||
		srv.ConnectTimeout != 3*time.Second || srv.SysInterval != -time.Second || !srv.CopyPerSubscription {
		t.Errorf("limits not applied: %+v", srv)
	}
	if srv.MaxInflight != 7 {
		t.Errorf("flag should override the file: MaxInflight %d", srv.MaxInflight)
	}
}

// TestBrokerConfigMQTT5 sets every key of the mqtt5 section to a value
// other than its default and checks the Server fields.
func TestBrokerConfigMQTT5(t *testing.T) {
	cfg := writeFile(t, "tern.yaml", `
mqtt5:
  max_session_expiry: 1h
  receive_maximum: 100
  topic_alias_maximum: 5
  outbound_topic_aliases: true
  maximum_qos: 0
  retain_available: false
  wildcard_subscriptions: false
  subscription_identifiers: false
  shared_subscriptions: false
  shared_strategy: hash-topic
  server_keep_alive: 30s
  response_information: "replies/%c"
`)
	srv, err := buildFromArgs(t, "-c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv.MaxSessionExpiry != time.Hour || srv.ReceiveMaximum != 100 || aliases(srv) != "5" || !srv.OutboundTopicAliases {
		t.Errorf("expiry %v, receive maximum %d, topic alias maximum %s, outbound aliases %v",
			srv.MaxSessionExpiry, srv.ReceiveMaximum, aliases(srv), srv.OutboundTopicAliases)
	}
	if srv.MaximumQoS == nil || *srv.MaximumQoS != 0 {
		t.Errorf("maximum_qos: 0 must mean QoS 0, got %s", qos(srv.MaximumQoS))
	}
	if !srv.RetainUnavailable || !srv.WildcardSubscriptionsUnavailable || !srv.SubscriptionIDsUnavailable || !srv.SharedSubscriptionsUnavailable {
		t.Errorf("unavailable: retain %v, wildcard %v, subscription ids %v, shared %v", srv.RetainUnavailable,
			srv.WildcardSubscriptionsUnavailable, srv.SubscriptionIDsUnavailable, srv.SharedSubscriptionsUnavailable)
	}
	if srv.SharedStrategy != broker.SharedHashTopic || srv.ServerKeepAlive != 30*time.Second || srv.ResponseInformation != "replies/%c" {
		t.Errorf("strategy %v, server keep alive %v, response information %q", srv.SharedStrategy, srv.ServerKeepAlive, srv.ResponseInformation)
	}

	// Every strategy name, and topic_alias_maximum 0: no aliases.
	for _, name := range []string{"round-robin", "random", "sticky-client", "hash-topic"} {
		srv, err := buildFromArgs(t, "-c", writeFile(t, name+".yaml", "mqtt5:\n  shared_strategy: "+name+"\n"))
		if err != nil || srv.SharedStrategy.String() != name {
			t.Errorf("shared_strategy %s: got %v, %v", name, srv.SharedStrategy, err)
		}
	}
	srv, err = buildFromArgs(t, "-c", writeFile(t, "alias.yaml", "mqtt5:\n  topic_alias_maximum: 0\n"))
	if err != nil || aliases(srv) != "0" {
		t.Errorf("topic_alias_maximum 0: got %s, %v; want 0 (none)", aliases(srv), err)
	}
	// The positive booleans set to true, as written in the reference,
	// leave everything available.
	srv, err = buildFromArgs(t, "-c", writeFile(t, "on.yaml", `
mqtt5:
  retain_available: true
  wildcard_subscriptions: true
  subscription_identifiers: true
  shared_subscriptions: true
  maximum_qos: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	if srv.RetainUnavailable || srv.WildcardSubscriptionsUnavailable || srv.SubscriptionIDsUnavailable || srv.SharedSubscriptionsUnavailable {
		t.Errorf("features turned off by true: %+v", srv)
	}
	if srv.MaximumQoS == nil || *srv.MaximumQoS != 2 {
		t.Errorf("maximum_qos 2: got %s", qos(srv.MaximumQoS))
	}
}

// qos shows a Server.MaximumQoS.
func qos(q *byte) string {
	if q == nil {
		return "nil"
	}
	return strconv.Itoa(int(*q))
}

// aliases shows a Server.TopicAliasMaximum.
func aliases(srv *broker.Server) string {
	if srv == nil || srv.TopicAliasMaximum == nil {
		return "nil"
	}
	return strconv.Itoa(int(*srv.TopicAliasMaximum))
}

// TestBrokerDefaults checks that no key and no flag give the documented
// defaults, the broker package's, set explicitly on the Server.
func TestBrokerDefaults(t *testing.T) {
	for _, args := range [][]string{nil, {"-c", writeFile(t, "empty.yaml", "# nothing\n")}, {"-c", writeFile(t, "empty.yaml", "mqtt5: {}\nlimits:\n")}} {
		srv, err := buildFromArgs(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		want := &broker.Server{
			Listeners:           []broker.Listener{{Type: "tcp", Addr: broker.DefaultAddr}},
			MaxPacketSize:       broker.DefaultMaxPacketSize,
			MaxQueuedMessages:   broker.DefaultMaxQueued,
			MaxInflight:         broker.DefaultMaxInflight,
			ConnectTimeout:      broker.DefaultConnectTimeout,
			WriteTimeout:        broker.DefaultWriteTimeout,
			HookTimeout:         broker.DefaultHookTimeout,
			SysInterval:         broker.DefaultSysInterval,
			ReceiveMaximum:      broker.DefaultReceiveMaximum,
			TopicAliasMaximum:   broker.TopicAliases(broker.DefaultTopicAliasMaximum),
			MaximumQoS:          broker.QoS(2),
			ResponseInformation: broker.DefaultResponseInformation,
		}
		srv.Logger = nil
		if !reflect.DeepEqual(srv, want) {
			t.Errorf("%v:\n got %+v\nwant %+v", args, srv, want)
		}
	}
}

// TestBrokerMQTT5FlagsOverrideFile sets every key in the file and the
// opposite with every flag.
func TestBrokerMQTT5FlagsOverrideFile(t *testing.T) {
	cfg := writeFile(t, "tern.yaml", `
mqtt5:
  max_session_expiry: 1h
  receive_maximum: 100
  topic_alias_maximum: 5
  outbound_topic_aliases: true
  maximum_qos: 0
  retain_available: false
  wildcard_subscriptions: false
  subscription_identifiers: true
  shared_subscriptions: true
  shared_strategy: random
  server_keep_alive: 30s
  response_information: "replies/%c"
`)
	srv, err := buildFromArgs(t, "-c", cfg,
		"--max-session-expiry", "10m", "--receive-maximum", "7", "--topic-alias-maximum", "0",
		"--outbound-topic-aliases=false", "--maximum-qos", "1", "--no-retain=false",
		"--no-wildcard-subscriptions=false", "--no-subscription-ids", "--no-shared-subscriptions",
		"--shared-strategy", "sticky-client", "--server-keep-alive", "1m", "--response-information", "r/%c")
	if err != nil {
		t.Fatal(err)
	}
	if srv.MaxSessionExpiry != 10*time.Minute || srv.ReceiveMaximum != 7 || aliases(srv) != "0" || srv.OutboundTopicAliases {
		t.Errorf("expiry %v, receive maximum %d, topic alias maximum %s, outbound aliases %v",
			srv.MaxSessionExpiry, srv.ReceiveMaximum, aliases(srv), srv.OutboundTopicAliases)
	}
	if srv.MaximumQoS == nil || *srv.MaximumQoS != 1 {
		t.Errorf("maximum QoS %s, want 1", qos(srv.MaximumQoS))
	}
	if srv.RetainUnavailable || srv.WildcardSubscriptionsUnavailable || !srv.SubscriptionIDsUnavailable || !srv.SharedSubscriptionsUnavailable {
		t.Errorf("unavailable: retain %v, wildcard %v, subscription ids %v, shared %v", srv.RetainUnavailable,
			srv.WildcardSubscriptionsUnavailable, srv.SubscriptionIDsUnavailable, srv.SharedSubscriptionsUnavailable)
	}
	if srv.SharedStrategy != broker.SharedStickyClient || srv.ServerKeepAlive != time.Minute || srv.ResponseInformation != "r/%c" {
		t.Errorf("strategy %v, server keep alive %v, response information %q", srv.SharedStrategy, srv.ServerKeepAlive, srv.ResponseInformation)
	}

	// A flag alone, and a flag over one key leaving the others alone.
	srv, err = buildFromArgs(t, "--maximum-qos", "0", "--no-retain")
	if err != nil || srv.MaximumQoS == nil || *srv.MaximumQoS != 0 || !srv.RetainUnavailable {
		t.Fatalf("--maximum-qos 0 --no-retain: error %v, maximum QoS %v, retain unavailable %v", err, qos(srv.MaximumQoS), srv.RetainUnavailable)
	}
	srv, err = buildFromArgs(t, "-c", cfg, "--receive-maximum", "9")
	if err != nil || srv.ReceiveMaximum != 9 || aliases(srv) != "5" || srv.SharedStrategy != broker.SharedRandom {
		t.Errorf("one flag over the file: %+v %v", srv, err)
	}
}

// passwordLine returns a password file line for user, with SCRAM
// credentials if scram is set.
func passwordLine(t *testing.T, user, password string, scram bool) string {
	t.Helper()
	line, err := auth.HashPassword(password, auth.HashOptions{Cost: 4})
	if err != nil {
		t.Fatal(err)
	}
	line = user + ":" + line
	for _, m := range []string{auth.SCRAMSHA256, auth.SCRAMSHA512} {
		if !scram {
			break
		}
		c, err := auth.SCRAMCredential(m, password, 0)
		if err != nil {
			t.Fatal(err)
		}
		line += ":" + c
	}
	return line + "\n"
}

// writePasswordFile writes a password file with alice (password
// "wonderland", with SCRAM credentials) and bob ("builder", without).
func writePasswordFile(t *testing.T) string {
	t.Helper()
	return writeFile(t, "passwd", passwordLine(t, "alice", "wonderland", true)+passwordLine(t, "bob", "builder", false))
}

func TestBrokerSCRAM(t *testing.T) {
	pw := writePasswordFile(t)
	plain := writeFile(t, "plain", passwordLine(t, "bob", "builder", false))
	on := writeFile(t, "on.yaml", "auth:\n  password_file: "+pw+"\n  scram: true\n")
	off := writeFile(t, "off.yaml", "auth:\n  password_file: "+pw+"\n  scram: false\n")
	for _, tc := range []struct {
		name  string
		args  []string
		scram bool
	}{
		{"default with a password file", []string{"--password-file", pw}, true},
		{"auth.scram true", []string{"-c", on}, true},
		{"auth.scram false", []string{"-c", off}, false},
		{"--scram=false over the file", []string{"-c", on, "--scram=false"}, false},
		{"--scram over the file", []string{"-c", off, "--scram"}, true},
		{"auth.scram false without a password file", []string{"-c", writeFile(t, "nopw.yaml", "auth:\n  scram: false\n")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := buildFromArgs(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.scram {
				if srv.AuthMethods != nil {
					t.Fatalf("AuthMethods %v, want none", srv.AuthMethods)
				}
				return
			}
			for _, m := range []string{auth.SCRAMSHA256, auth.SCRAMSHA512} {
				if srv.AuthMethods[m] == nil {
					t.Errorf("AuthMethods lacks %s: %v", m, srv.AuthMethods)
				}
			}
		})
	}
	// Asked for explicitly with a file that has no SCRAM credentials: a
	// warning; by default, silence (a Mosquitto file is fine as it is).
	_, logs, err := buildLogged(t, "--password-file", plain, "--scram")
	if err != nil || !strings.Contains(logs, "no user in the password file has SCRAM credentials") {
		t.Errorf("no warning for --scram with a file without SCRAM credentials: %v\n%s", err, logs)
	}
	_, logs, err = buildLogged(t, "--password-file", plain)
	if err != nil || logs != "" {
		t.Errorf("unexpected logs without --scram: %v\n%s", err, logs)
	}
}

func TestParseListenURL(t *testing.T) {
	for in, want := range map[string]broker.Listener{
		"127.0.0.1:1883":           {Type: "tcp", Addr: "127.0.0.1:1883"},
		"tcp://0.0.0.0:1883":       {Type: "tcp", Addr: "0.0.0.0:1883"},
		"ws://127.0.0.1:8080/mqtt": {Type: "ws", Addr: "127.0.0.1:8080", Path: "/mqtt"},
		"unix:///tmp/tern.sock":    {Type: "unix", Addr: "/tmp/tern.sock"},
	} {
		got, err := parseListenURL(in)
		if err != nil || got != want {
			t.Errorf("%s: got %+v %v, want %+v", in, got, err, want)
		}
	}
}

// TestBrokerBinary runs tern broker, moves a message through it and
// stops it with SIGTERM.
func TestBrokerBinary(t *testing.T) {
	b := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--log-level", "trace")
	nc, err := net.Dial("tcp", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	w, r := packet.NewWriter(nc), packet.NewReader(nc)
	r.Version = packet.V311
	steps := []packet.Packet{
		&packet.Connect{Version: packet.V311, ClientID: "e2e", CleanStart: true},
		&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "e2e/#", QoS: 1}}},
		&packet.Publish{Topic: "e2e/x", QoS: 1, PacketID: 2, Payload: []byte("hello")},
	}
	for _, p := range steps {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	got := map[packet.Type]bool{}
	for len(got) < 4 { // CONNACK, SUBACK, PUBACK, PUBLISH
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("read: %v (have %v)\n%s", err, got, b)
		}
		got[p.Type()] = true
		if pub, ok := p.(*packet.Publish); ok && string(pub.Payload) != "hello" {
			t.Fatalf("payload %q", pub.Payload)
		}
	}
	b.stop()
	out := b.String()
	for _, want := range []string{"starting Tern broker", "level=TRACE", `PUBLISH topic=\"e2e/x\"`, "shutting down", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestBrokerBinaryMQTT5 runs tern broker with a configuration file that
// sets MQTT 5 features and SCRAM, on a port the kernel picks, and checks
// with raw MQTT 5 packets that the CONNACK announces the settings and
// that a SCRAM-SHA-256 exchange succeeds.
func TestBrokerBinaryMQTT5(t *testing.T) {
	cfg := writeFile(t, "tern.yaml", `
listeners:
  - type: tcp
    addr: 127.0.0.1:0
auth:
  password_file: `+writePasswordFile(t)+`
  allow_anonymous: true
mqtt5:
  max_session_expiry: 1m
  receive_maximum: 10
  topic_alias_maximum: 5
  maximum_qos: 1
  retain_available: false
  wildcard_subscriptions: false
  subscription_identifiers: false
  shared_subscriptions: false
  server_keep_alive: 30s
  response_information: "replies/%c"
`)
	b := startBroker(t, "", "--config", cfg)
	addr, logs := b.addr(), b
	dial := func() (*packet.Reader, *packet.Writer) {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		r := packet.NewReader(nc)
		r.Version = packet.V5
		return r, packet.NewWriter(nc)
	}
	read := func(r *packet.Reader) packet.Packet {
		t.Helper()
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("read: %v\n%s", err, logs)
		}
		return p
	}

	// The CONNACK announces the mqtt5 section.
	r, w := dial()
	c := &packet.Connect{Version: packet.V5, ClientID: "e2e5", CleanStart: true, KeepAlive: 120}
	c.Properties.SessionExpiry = 3600
	c.Properties.RequestResponseInfo = 1
	if err := w.WritePacket(c); err != nil {
		t.Fatal(err)
	}
	p := read(r)
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("got %v, want CONNACK Success\n%s", p, logs)
	}
	pr := &ack.Properties
	for _, ck := range []struct {
		name      string
		id        packet.PropertyID
		got, want uint32
	}{
		{"Maximum QoS", packet.PropMaximumQoS, uint32(pr.MaximumQoS), 1},
		{"Retain Available", packet.PropRetainAvailable, uint32(pr.RetainAvailable), 0},
		{"Topic Alias Maximum", packet.PropTopicAliasMaximum, uint32(pr.TopicAliasMaximum), 5},
		{"Receive Maximum", packet.PropReceiveMaximum, uint32(pr.ReceiveMaximum), 10},
		{"Wildcard Subscription Available", packet.PropWildcardSubAvailable, uint32(pr.WildcardSubAvailable), 0},
		{"Subscription Identifiers Available", packet.PropSubIDAvailable, uint32(pr.SubIDAvailable), 0},
		{"Shared Subscription Available", packet.PropSharedSubAvailable, uint32(pr.SharedSubAvailable), 0},
		{"Server Keep Alive", packet.PropServerKeepAlive, uint32(pr.ServerKeepAlive), 30},
		{"Session Expiry Interval (capped)", packet.PropSessionExpiry, pr.SessionExpiry, 60},
	} {
		if !pr.Has(ck.id) || ck.got != ck.want {
			t.Errorf("CONNACK %s: present %v, value %d; want %d (%v)", ck.name, pr.Has(ck.id), ck.got, ck.want, ack)
		}
	}
	if pr.ResponseInfo != "replies/e2e5" {
		t.Errorf("CONNACK Response Information %q, want replies/e2e5", pr.ResponseInfo)
	}

	// SCRAM-SHA-256 from the password file (auth.scram defaults to on).
	r, w = dial()
	sc := scram.NewClient(scram.SHA256, "alice", "wonderland")
	first, err := sc.First()
	if err != nil {
		t.Fatal(err)
	}
	c = &packet.Connect{Version: packet.V5, ClientID: "e2e-scram", CleanStart: true}
	c.Properties.AuthMethod = auth.SCRAMSHA256
	c.Properties.AuthData = first
	if err := w.WritePacket(c); err != nil {
		t.Fatal(err)
	}
	p = read(r)
	challenge, ok := p.(*packet.Auth)
	if !ok || challenge.ReasonCode != packet.ContinueAuthentication {
		t.Fatalf("got %v, want AUTH 0x18\n%s", p, logs)
	}
	final, err := sc.Final(challenge.Properties.AuthData)
	if err != nil {
		t.Fatal(err)
	}
	a := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	a.Properties.AuthMethod = auth.SCRAMSHA256
	a.Properties.AuthData = final
	if err := w.WritePacket(a); err != nil {
		t.Fatal(err)
	}
	p = read(r)
	ack, ok = p.(*packet.Connack)
	if !ok || ack.ReasonCode != packet.Success || ack.Properties.AuthMethod != auth.SCRAMSHA256 {
		t.Fatalf("got %v, want CONNACK Success with SCRAM-SHA-256\n%s", p, logs)
	}
	if err := sc.Verify(ack.Properties.AuthData); err != nil {
		t.Errorf("server-final-message: %v", err)
	}

	b.stop()
}

// TestBrokerConfigSpellings: choices are read whatever their case, and
// sys_interval 0 turns $SYS off as in Mosquitto (the Server's 0 would
// mean the default).
func TestBrokerConfigSpellings(t *testing.T) {
	o := new(brokerOptions)
	if err := brokerCommand(o).ParseFlags([]string{"--log-level", "WARN", "-c", writeFile(t, "t.yaml", "limits:\n  queue_policy: Drop-Oldest\nsys_interval: 0s\n")}); err != nil {
		t.Fatal(err)
	}
	st, err := buildServer(o, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	if st.level.Level() != slog.LevelWarn || st.srv.QueuePolicy != broker.DropOldest || st.srv.SysInterval >= 0 {
		t.Errorf("level %v, queue policy %v, sys interval %v", st.level.Level(), st.srv.QueuePolicy, st.srv.SysInterval)
	}
}
