package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// buildFromArgs parses args as tern broker would and builds the server.
func buildFromArgs(t *testing.T, args ...string) (*broker.Server, error) {
	t.Helper()
	var f brokerFlags
	cmd := newBrokerCmd()
	cmd.RunE = nil
	if err := cmd.ParseFlags(args); err != nil {
		return nil, err
	}
	// The flags were bound to a fresh brokerFlags inside newBrokerCmd;
	// read them back through cobra.
	f.config, _ = cmd.Flags().GetString("config")
	f.listen, _ = cmd.Flags().GetStringArray("listen")
	f.logLevel, _ = cmd.Flags().GetString("log-level")
	f.logFormat, _ = cmd.Flags().GetString("log-format")
	f.passwordFile, _ = cmd.Flags().GetString("password-file")
	f.aclFile, _ = cmd.Flags().GetString("acl-file")
	f.maxPacketSize, _ = cmd.Flags().GetUint32("max-packet-size")
	f.maxQueued, _ = cmd.Flags().GetInt("max-queued")
	f.queuePolicy, _ = cmd.Flags().GetString("queue-policy")
	f.maxInflight, _ = cmd.Flags().GetInt("max-inflight")
	f.sysInterval, _ = cmd.Flags().GetDuration("sys-interval")
	srv, _, _, err := buildServer(cmd, &f, &bytes.Buffer{})
	return srv, err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBrokerConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // substring naming the field and the fix
	}{
		{"unknown key", []string{"-c", writeFile(t, "a.yaml", "limits:\n  bogus: 1\n")}, `unknown key "bogus" in limits`},
		{"unknown top key", []string{"-c", writeFile(t, "b.yaml", "listners: []\n")}, `unknown key "listners" in the top level`},
		{"type error", []string{"-c", writeFile(t, "c.yaml", "limits:\n  max_inflight: lots\n")}, "line 2"},
		{"small packet", []string{"--max-packet-size", "10"}, "limits.max_packet_size (--max-packet-size)"},
		{"negative queue", []string{"--max-queued", "-1"}, "limits.max_queued_messages (--max-queued)"},
		{"inflight", []string{"--max-inflight", "70000"}, "limits.max_inflight (--max-inflight)"},
		{"policy", []string{"--queue-policy", "fifo"}, "limits.queue_policy (--queue-policy)"},
		{"log level", []string{"--log-level", "loud"}, "log_level (--log-level)"},
		{"listen scheme", []string{"--listen", "ftp://x:1"}, `unknown scheme "ftp"`},
		{"listen tls", []string{"--listen", "tls://x:1"}, "listeners[].tls"},
		{"listener type", []string{"-c", writeFile(t, "d.yaml", "listeners:\n  - type: quic\n    addr: x:1\n")}, "listeners[0].Type"},
		{"tls without cert", []string{"-c", writeFile(t, "e.yaml", "listeners:\n  - type: tls\n    addr: x:1\n")}, "listeners[0].TLS"},
		{"password file", []string{"--password-file", "/nonexistent/passwd"}, "auth.password_file (--password-file)"},
		{"acl file", []string{"--acl-file", "/nonexistent/acl"}, "auth.acl_file (--acl-file)"},
		{"missing config", []string{"-c", "/nonexistent/tern.yaml"}, "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := buildFromArgs(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
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

// TestBrokerBinary builds tern, runs tern broker, moves a message
// through it and stops it with SIGTERM.
func TestBrokerBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tern")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "broker", "--listen", "tcp://"+addr, "--log-level", "trace")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var nc net.Conn
	for i := 0; i < 100; i++ { // wait up to 10 s for the listener
		if nc, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("broker did not listen: %v\n%s", err, logs.String())
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
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
			t.Fatalf("read: %v (have %v)\n%s", err, got, logs.String())
		}
		got[p.Type()] = true
		if pub, ok := p.(*packet.Publish); ok && string(pub.Payload) != "hello" {
			t.Fatalf("payload %q", pub.Payload)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tern broker exited with %v\n%s", err, logs.String())
	}
	out := logs.String()
	for _, want := range []string{"starting Tern broker", "level=TRACE", `PUBLISH topic=\"e2e/x\"`, "shutting down", "stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
