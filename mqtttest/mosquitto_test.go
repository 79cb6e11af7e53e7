package mqtttest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

func TestNeedBinary(t *testing.T) {
	t.Parallel()
	if p := mqtttest.NeedBinary(t, "sh", "dash"); p == "" {
		t.Fatal("NeedBinary(sh) returned no path")
	}
	ft := &fakeT{TB: t}
	ft.run(func() { mqtttest.NeedBinary(ft, "tern-no-such-program", "tern-no-such-package") })
	if !ft.skipped || ft.msg != "tern-no-such-program not installed: apt-get install tern-no-such-package\n" {
		t.Fatalf("skipped %v, message %q", ft.skipped, ft.msg)
	}
}

func TestStartMosquitto(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Config: []string{"max_inflight_messages 7"}})
	conf, err := os.ReadFile(m.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"listener " + m.Port + " 127.0.0.1", "persistence false", "allow_anonymous true", "max_inflight_messages 7"} {
		if !strings.Contains(string(conf), want+"\n") {
			t.Errorf("mosquitto.conf lacks %q:\n%s", want, conf)
		}
	}
	c := mqtttest.DialRaw(t, m.Addr, packet.V5)
	c.Connect(&packet.Connect{ClientID: "mqtttest-anon", CleanStart: true})
	c.Subscribe(1, "a/b", 0)
	c.Send(&packet.Publish{Topic: "a/b", Payload: []byte("x")})
	if p := c.ExpectPublish(); p.Topic != "a/b" || string(p.Payload) != "x" {
		t.Fatalf("got %v", p)
	}
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	// Restart on the same port: the old connection ends, a new one works.
	c2 := mqtttest.DialRaw(t, m.Addr, packet.V311)
	c2.Connect(&packet.Connect{ClientID: "mqtttest-before", CleanStart: true})
	m.Restart()
	c2.ExpectClosed()
	c3 := mqtttest.DialRaw(t, m.Addr, packet.V311)
	c3.Connect(&packet.Connect{ClientID: "mqtttest-after", CleanStart: true})
	if log := m.Log(); !strings.Contains(log, "mqtttest-anon") {
		t.Fatalf("the log file lacks the client's connection:\n%s", log)
	}
}

func TestStartMosquittoUsers(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Users: map[string]string{"alice": "secret"}})
	for _, tc := range []struct {
		user, pw string
		v        packet.Version
		want     packet.ReasonCode
	}{
		{"alice", "secret", packet.V5, packet.Success},
		// Mosquitto 2.0 answers a wrong password "not authorized", too.
		{"alice", "wrong", packet.V5, packet.NotAuthorized},
		{"", "", packet.V5, packet.NotAuthorized},
		{"alice", "secret", packet.V311, packet.V3Accepted},
		{"alice", "wrong", packet.V311, packet.V3NotAuthorized},
	} {
		c := mqtttest.DialRaw(t, m.Addr, tc.v)
		c.Send(&packet.Connect{ClientID: "mqtttest-" + tc.user, CleanStart: true, Username: tc.user, Password: []byte(tc.pw)})
		ack := mqtttest.Expect[*packet.Connack](c)
		if ack.ReasonCode != tc.want {
			t.Errorf("%v user %q password %q: CONNACK 0x%02x, want 0x%02x", tc.v, tc.user, tc.pw, byte(ack.ReasonCode), byte(tc.want))
		}
		c.Close()
	}
}

func TestStartMosquittoBadUser(t *testing.T) {
	t.Parallel()
	mqtttest.NeedBinary(t, "mosquitto", "mosquitto")
	ft := &fakeT{TB: t}
	ft.run(func() { mqtttest.StartMosquitto(ft, mqtttest.MosquittoOptions{Users: map[string]string{"a:b": "x"}}) })
	if !ft.failed || !strings.Contains(ft.msg, "MosquittoOptions.Users") || !strings.Contains(ft.msg, `"a:b"`) {
		t.Fatalf("failed %v, message %q; want a failure naming MosquittoOptions.Users and the user", ft.failed, ft.msg)
	}
}

// TestStartMosquittoBadConfig: a configuration Mosquitto refuses fails
// the test at once, with Mosquitto's own complaint.
func TestStartMosquittoBadConfig(t *testing.T) {
	t.Parallel()
	mqtttest.NeedBinary(t, "mosquitto", "mosquitto")
	ft := &fakeT{TB: t}
	ft.run(func() {
		mqtttest.StartMosquitto(ft, mqtttest.MosquittoOptions{Config: []string{"tern_no_such_option 1"}})
	})
	if !ft.failed || !strings.Contains(ft.msg, "exited before listening") || !strings.Contains(ft.msg, "tern_no_such_option") {
		t.Fatalf("failed %v, message %q; want mosquitto's complaint about the option", ft.failed, ft.msg)
	}
}
