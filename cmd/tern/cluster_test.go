package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestBrokerCluster runs two tern broker processes on one real
// redis-server (--cluster) and passes a message from tern pub on one to a
// subscriber on the other; a retained message set through the first is
// then seen by a new subscriber of the second.
func TestBrokerCluster(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	testBrokerCluster(t, r.URL)
}

// TestBrokerClusterNATS is TestBrokerCluster on a NATS server with
// JetStream (the nats-server module, in the test's process).
func TestBrokerClusterNATS(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded NATS server not ready after 10s")
	}
	testBrokerCluster(t, s.ClientURL())
}

func testBrokerCluster(t *testing.T, url string) {
	a := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory", "--cluster", url, "--node", "one")
	b := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory", "--cluster", url, "--node", "two")
	a.waitLog(`msg="joined the back plane" .*node=one`)
	b.waitLog(`msg="joined the back plane" .*node=two`)

	sub := mqtttest.DialRaw(t, b.addr(), packet.V5)
	sub.Connect(&packet.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 60})
	sub.Subscribe(1, "cluster/#", 1)

	host, port, err := net.SplitHostPort(a.addr())
	if err != nil {
		t.Fatal(err)
	}
	// The subscription reaches the first broker asynchronously (the
	// README says so): probe until it has.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("the subscription on the second broker never reached the first")
		}
		if out, errOut, code := runTern(t, "", "pub", "-h", host, "-p", port, "-t", "cluster/probe", "-m", "probe"); code != 0 {
			t.Fatalf("tern pub: exit %d\n%s%s", code, out, errOut)
		}
		if _, err := sub.RecvTimeout(100 * time.Millisecond); err == nil {
			break
		}
	}
	if out, errOut, code := runTern(t, "", "pub", "-h", host, "-p", port, "-q", "1", "-t", "cluster/x", "-m", "across", "-r"); code != 0 {
		t.Fatalf("tern pub: exit %d\n%s%s", code, out, errOut)
	}
	got := sub.ExpectPublish()
	for got.Topic == "cluster/probe" { // probes still in flight
		got = sub.ExpectPublish()
	}
	if got.Topic != "cluster/x" || string(got.Payload) != "across" || got.QoS != 1 {
		t.Fatalf("subscriber on the second broker got %v", got)
	}
	sub.Send(&packet.Puback{PacketID: got.PacketID})

	late := mqtttest.DialRaw(t, b.addr(), packet.V311)
	late.Connect(&packet.Connect{ClientID: "late", CleanStart: true, KeepAlive: 60})
	late.Subscribe(1, "cluster/+", 0)
	if got := late.ExpectPublish(); !got.Retain || string(got.Payload) != "across" {
		t.Fatalf("late subscriber on the second broker got %v, want the retained message", got)
	}
}

// TestBrokerClusterBadURL: a --cluster URL of an unknown engine is refused
// with an error naming the flag.
func TestBrokerClusterBadURL(t *testing.T) {
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "--cluster", "mongo://127.0.0.1:1")
	if code == 0 || !strings.Contains(errOut, "--cluster") || !strings.Contains(errOut, "redis://host:port") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// No engine there: the error names the flag and the engine.
	_, errOut, code = runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "--cluster", "redis://"+mqtttest.FreeAddr(t))
	if code == 0 || !strings.Contains(errOut, "--cluster redis://") || !strings.Contains(errOut, "is Redis running there?") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "--cluster", "redis://127.0.0.1:1", "--node", "a/b")
	if code == 0 || !strings.Contains(errOut, "--node") {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestBrokerClusterSessionStore runs two tern broker processes with
// --session-store redis on one real redis-server: a persistent session
// made on the first, offline while a QoS 1 message is published on the
// second, resumes on the second with Session Present and the message.
func TestBrokerClusterSessionStore(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	a := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--cluster", r.URL, "--node", "one", "--session-store", "redis")
	b := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--cluster", r.URL, "--node", "two", "--session-store", "redis")
	a.waitLog(`msg="joined the back plane" .*node=one`)
	b.waitLog(`msg="joined the back plane" .*node=two`)
	roam(t, a, b)

	// A bad combination is refused with the keys named.
	_, errOut, code := runTern(t, "", "broker", "--listen", "tcp://127.0.0.1:0", "--session-store", "redis")
	if code == 0 || !strings.Contains(errOut, "--session-store") || !strings.Contains(errOut, "--cluster redis://") {
		t.Fatalf("--session-store redis without --cluster: exit %d, %s", code, errOut)
	}
	_, errOut, code = runTern(t, "", "broker", "--listen", "tcp://127.0.0.1:0", "--in-memory", "--cluster", r.URL, "--session-store", "redis")
	if code == 0 || !strings.Contains(errOut, "--in-memory") || !strings.Contains(errOut, "contradict") {
		t.Fatalf("--session-store redis with --in-memory: exit %d, %s", code, errOut)
	}
}

// roam: a persistent session made on a, offline while QoS 1 messages are
// published on b, resumes on b with Session Present and the messages.
func roam(t *testing.T, a, b *brokerProc) {
	t.Helper()
	connect := func(addr string) (*mqtttest.RawClient, *packet.Connack) {
		c := mqtttest.DialRaw(t, addr, packet.V5)
		cp := &packet.Connect{ClientID: "roamer", KeepAlive: 60}
		cp.Properties.SessionExpiry = 600
		return c, c.Connect(cp)
	}
	sub, _ := connect(a.addr())
	sub.Subscribe(1, "roam/#", 1)
	sub.Send(&packet.Disconnect{})
	sub.Close()

	host, port, err := net.SplitHostPort(b.addr())
	if err != nil {
		t.Fatal(err)
	}
	// The subscription reaches the second broker asynchronously (the
	// README's window is milliseconds): three messages 50ms apart, of
	// which the first to arrive is checked.
	for range 3 {
		if out, errOut, code := runTern(t, "", "pub", "-h", host, "-p", port, "-q", "1", "-t", "roam/x", "-m", "queued"); code != 0 {
			t.Fatalf("tern pub: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sub, ack := connect(b.addr())
	if !ack.SessionPresent {
		t.Fatal("the session made on the first broker is not present on the second")
	}
	got := sub.ExpectPublish()
	if got.Topic != "roam/x" || string(got.Payload) != "queued" {
		t.Fatalf("got %v", got)
	}
	sub.Send(&packet.Puback{PacketID: got.PacketID})
}

// TestBrokerClusterSessionStoreJetStream is TestBrokerClusterSessionStore
// with --session-store jetstream: two tern broker processes on a NATS
// server (the nats-server module, in the test's process), then three on
// their embedded NATS servers, the streams with three replicas.
func TestBrokerClusterSessionStoreJetStream(t *testing.T) {
	t.Run("nats-url", func(t *testing.T) {
		url := mqtttest.StartEmbeddedNATS(t).ClientURL()
		a := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--cluster", url, "--node", "one", "--session-store", "jetstream")
		b := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--cluster", url, "--node", "two", "--session-store", "jetstream")
		a.waitLog(`msg="joined the back plane" .*node=one`)
		b.waitLog(`msg="joined the back plane" .*node=two`)
		roam(t, a, b)

		_, errOut, code := runTern(t, "", "broker", "--listen", "tcp://127.0.0.1:0", "--in-memory", "--cluster", url, "--session-store", "jetstream")
		if code == 0 || !strings.Contains(errOut, "--in-memory") || !strings.Contains(errOut, "contradict") {
			t.Fatalf("--session-store jetstream with --in-memory: exit %d, %s", code, errOut)
		}
	})
	t.Run("embedded", func(t *testing.T) {
		var routes, listen []string
		for range 3 {
			a := mqtttest.FreeAddr(t)
			listen = append(listen, a)
			routes = append(routes, "nats://"+a)
		}
		var nodes []*brokerProc
		for i := range 3 { // all at once: JetStream needs two of them to start
			nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory", "--session-store", "jetstream",
				"--node", fmt.Sprint("node", i+1), "--cluster-listen", listen[i], "--cluster-peers", strings.Join(routes, ",")))
		}
		for i, n := range nodes {
			n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
		}
		roam(t, nodes[0], nodes[2])
	})
	t.Run("refused", func(t *testing.T) {
		_, errOut, code := runTern(t, "", "broker", "--listen", "tcp://127.0.0.1:0", "--cluster", "redis://127.0.0.1:1", "--session-store", "jetstream")
		if code == 0 || !strings.Contains(errOut, "--session-store") || !strings.Contains(errOut, "NATS") {
			t.Fatalf("--session-store jetstream with a redis:// --cluster: exit %d, %s", code, errOut)
		}
		_, errOut, code = runTern(t, "", "broker", "--listen", "tcp://127.0.0.1:0", "--session-store", "jetstream")
		if code == 0 || !strings.Contains(errOut, "--session-store") || !strings.Contains(errOut, "--cluster nats://") {
			t.Fatalf("--session-store jetstream without --cluster: exit %d, %s", code, errOut)
		}
	})
}
