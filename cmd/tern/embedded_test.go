package main

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestBrokerEmbeddedNATS runs three tern broker processes, each with an
// embedded NATS server, their routes joined into one NATS cluster with
// JetStream (R3): a message published on the first node reaches a
// subscriber on the third, and a retained message set on the first is
// seen by a new subscriber on the second.
func TestBrokerEmbeddedNATS(t *testing.T) {
	var routes []string
	var listen []string
	for range 3 {
		a := mqtttest.FreeAddr(t)
		listen = append(listen, a)
		routes = append(routes, "nats://"+a)
	}
	var nodes []*brokerProc
	for i := range 3 { // all at once: JetStream needs two of them to start
		nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory",
			"--node", fmt.Sprint("node", i+1), "--cluster-listen", listen[i], "--cluster-peers", strings.Join(routes, ",")))
	}
	for i, n := range nodes {
		n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
		n.waitLog(`msg="JetStream ready" .*servers=3`)
	}
	testThreeNodes(t, nodes)

	// kill -9 of node 2 and its NATS server: JetStream keeps a quorum of
	// two, and node 1 and node 3 go on, retained messages included.
	nodes[1].signal(syscall.SIGKILL)
	err := <-nodes[1].done
	nodes[1].done <- err
	retainedAcross(t, nodes[0], nodes[2], "emb/after")
}

// retainedAcross sets a retained message on topic through node from and
// waits (30s) until a new subscriber on node to gets it: publishing again
// while the engine moves its leaders after a failure.
func retainedAcross(t *testing.T, from, to *brokerProc, topic string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(from.addr())
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		// The retained message may be refused while JetStream moves the
		// leaders the dead server held: publish until it is taken.
		out, errOut, code := runTern(t, "", "pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", fmt.Sprint("after ", i), "-r")
		if code != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after the failure, tern pub: exit %d %s%s", code, out, errOut)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		// CONNECT and the retained messages wait on JetStream too, so
		// a refusal or a timeout is tried again.
		sub := mqtttest.DialRaw(t, to.addr(), packet.V311)
		sub.Send(&packet.Connect{ClientID: fmt.Sprint("after", i), CleanStart: true, KeepAlive: 60})
		got, rerr := sub.RecvTimeout(10 * time.Second)
		if ack, ok := got.(*packet.Connack); rerr == nil && ok && ack.ReasonCode == 0 {
			sub.Send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: topic}}})
			if got, rerr = sub.RecvTimeout(10 * time.Second); rerr == nil {
				got, rerr = sub.RecvTimeout(10 * time.Second) // after the SUBACK
			}
		}
		sub.Close()
		if p, ok := got.(*packet.Publish); rerr == nil && ok && p.Retain && strings.HasPrefix(string(p.Payload), "after ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the failure, a retained message never reached the other node: got %v %v\nfrom's log:\n%s\nto's log:\n%s", got, rerr, from, to)
		}
	}
}

// testThreeNodes: publish on node 1 reaches a subscriber on node 3 (QoS
// 1, properties), and a retained message set on node 1 is seen by a new
// subscriber on node 2.
func testThreeNodes(t *testing.T, nodes []*brokerProc) {
	sub := mqtttest.DialRaw(t, nodes[2].addr(), packet.V5)
	sub.Connect(&packet.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 60})
	sub.Subscribe(1, "emb/#", 1)

	host, port, err := net.SplitHostPort(nodes[0].addr())
	if err != nil {
		t.Fatal(err)
	}
	// The subscription reaches the other nodes asynchronously: probe.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("the subscription on node 3 never reached node 1")
		}
		if out, errOut, code := runTern(t, "", "pub", "-h", host, "-p", port, "-t", "emb/probe", "-m", "probe"); code != 0 {
			t.Fatalf("tern pub: exit %d\n%s%s", code, out, errOut)
		}
		if _, err := sub.RecvTimeout(100 * time.Millisecond); err == nil {
			break
		}
	}
	if out, errOut, code := runTern(t, "", "pub", "-h", host, "-p", port, "-q", "1", "-t", "emb/x", "-m", "across",
		"-r", "-V", "5", "-D", "publish", "content-type", "text/plain"); code != 0 {
		t.Fatalf("tern pub: exit %d\n%s%s", code, out, errOut)
	}
	got := sub.ExpectPublish()
	for got.Topic == "emb/probe" { // probes still in flight
		got = sub.ExpectPublish()
	}
	if got.Topic != "emb/x" || string(got.Payload) != "across" || got.QoS != 1 || got.Properties.ContentType != "text/plain" {
		t.Fatalf("subscriber on node 3 got %v", got)
	}
	sub.Send(&packet.Puback{PacketID: got.PacketID})

	late := mqtttest.DialRaw(t, nodes[1].addr(), packet.V311)
	late.Connect(&packet.Connect{ClientID: "late", CleanStart: true, KeepAlive: 60})
	late.Subscribe(1, "emb/+", 0)
	if got := late.ExpectPublish(); !got.Retain || string(got.Payload) != "across" {
		t.Fatalf("late subscriber on node 2 got %v, want the retained message", got)
	}
}

// TestBrokerEmbeddedBadConfig: bad cluster.embedded values are refused
// with an error naming the flag or key and the fix.
func TestBrokerEmbeddedBadConfig(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--cluster-listen", "nonsense"}, []string{"--cluster-listen", "host:port"}},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--cluster-peers", "http://x:1"}, []string{"--cluster-peers", "nats://host:port"}},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--cluster", "redis://127.0.0.1:1"}, []string{"--cluster", "nats-embedded"}},
		{[]string{"--cluster", "nats-embedded"}, []string{"--cluster-listen"}},
		{[]string{"--cluster-listen", "127.0.0.1:0"}, []string{"--cluster-peers", "is empty"}},
		{[]string{"--cluster-listen", "127.0.0.1:0", "--cluster-replicas", "9"}, []string{"cluster-replicas", "0..5"}},
	} {
		args := append([]string{"broker", "--in-memory", "--listen", "tcp://127.0.0.1:0"}, tc.args...)
		_, errOut, code := runTern(t, "", args...)
		for _, w := range tc.want {
			if code == 0 || !strings.Contains(errOut, w) {
				t.Errorf("%v: exit %d, stderr lacks %q:\n%s", tc.args, code, w, errOut)
			}
		}
	}
	cfg := writeFile(t, "c.yaml", "cluster:\n  embedded:\n    listen: 127.0.0.1:0\n    routes: nats://:6222\n")
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", cfg)
	if code == 0 || !strings.Contains(errOut, "c.yaml:4: cluster.embedded.routes") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestBrokerClusterDebianNATS runs three tern broker processes, each
// connected to another server of an external cluster of three of
// Debian's nats-server, the back plane's buckets in 3 replicas: publish on node 1 reaches a subscriber on node 3,
// a retained message set on node 1 is seen on node 2.
func TestBrokerClusterDebianNATS(t *testing.T) {
	c := mqtttest.StartNATSCluster(t, 3, mqtttest.NATSServerOptions{})
	var nodes []*brokerProc
	for i, s := range c.Servers {
		nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory",
			"--node", fmt.Sprint("node", i+1), "--cluster", s.URL, "--cluster-replicas", "3"))
	}
	for i, n := range nodes {
		n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
	}
	testThreeNodes(t, nodes)
}

// TestBrokerClusterDebianNATSServerKilled: three brokers, each given all
// three of Debian's nats-server (R3 buckets; nats.go picks one of them at
// random); when one server is killed (SIGKILL), the brokers on it fail
// over to another, and a retained message set on one node reaches a new
// subscriber on another.
func TestBrokerClusterDebianNATSServerKilled(t *testing.T) {
	c := mqtttest.StartNATSCluster(t, 3, mqtttest.NATSServerOptions{})
	var nodes []*brokerProc
	for i := range c.Servers {
		var urls []string
		for k := range c.Servers {
			urls = append(urls, c.Servers[(i+k)%3].URL)
		}
		nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory",
			"--node", fmt.Sprint("node", i+1), "--cluster", strings.Join(urls, ","), "--cluster-replicas", "3"))
	}
	for i, n := range nodes {
		n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
	}
	retainedAcross(t, nodes[0], nodes[2], "kill/before")
	c.Servers[0].Kill()
	retainedAcross(t, nodes[0], nodes[2], "kill/after")
	retainedAcross(t, nodes[1], nodes[0], "kill/after2")
}
