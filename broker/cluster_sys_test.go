package broker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/memory"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// sysWatch keeps the latest payload of each $SYS/broker/cluster/ topic a
// server publishes.
type sysWatch struct {
	mu  sync.Mutex
	got map[string]string
}

func watchClusterSys(t *testing.T, srv *broker.Server) *sysWatch {
	t.Helper()
	w := &sysWatch{got: map[string]string{}}
	unsub, err := srv.Subscribe("$SYS/broker/cluster/#", 0, func(m *broker.Message) {
		w.mu.Lock()
		w.got[m.Topic] = string(m.Payload)
		w.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return w
}

// wait polls until ok holds for the topics seen (10 s at most).
func (w *sysWatch) wait(t *testing.T, what string, ok func(map[string]string) bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return ok(w.got)
	}, func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return mapString(w.got)
	})
}

func mapString(m map[string]string) string {
	s := ""
	for k, v := range m {
		s += k + "=" + v + " "
	}
	return s
}

func waitFor(t *testing.T, what string, ok func() bool, state func() string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if ok() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not so after 10s; have %s", what, state())
}

func atLeast(m map[string]string, topic string, n uint64) bool {
	v, err := strconv.ParseUint(m[topic], 10, 64)
	return err == nil && v >= n
}

// TestClusterSys: three nodes on backplane/memory report their view of the
// cluster in Stats and under $SYS/broker/cluster/: engine, node, messages
// forwarded out and in, takeovers, and the engine's reachability, which a
// partition turns off (with forward failures) and a heal turns back on.
func TestClusterSys(t *testing.T) {
	cl := memory.New()
	var bs [3]*mqtttest.Broker
	var ids [3]string
	for i, name := range []string{"a", "b", "c"} {
		ids[i] = nodeName(t, name)
		id := ids[i]
		bs[i] = mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
			Backplane: func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
				cfg.ID = id
				cfg.Lease = time.Minute // no wills in this test
				return cl.Join(ctx, cfg)
			},
			SysInterval: 20 * time.Millisecond,
		}})
	}
	a, b := bs[0].Server, bs[1].Server
	wa := watchClusterSys(t, a)
	wb := watchClusterSys(t, b)

	for i, bk := range bs {
		st := bk.Server.Stats()
		if st.ClusterEngine != "memory" || st.ClusterNode != ids[i] || !st.ClusterReachable {
			t.Fatalf("node %d: engine %q node %q reachable %v; want memory, %s, true", i, st.ClusterEngine, st.ClusterNode, st.ClusterReachable, ids[i])
		}
	}

	// A message from A to a subscriber on B.
	sub := connect5(t, bs[1], "sub")
	subscribe5(t, sub, 1, 0, packet.Subscription{Filter: "t/#", QoS: 1})
	settle(t, bs[0], bs[1])
	fwdA, recvB := a.Stats().ClusterForwarded, b.Stats().ClusterReceived
	pub := connect5(t, bs[0], "pub")
	pub.Send(&packet.Publish{Topic: "t/1", QoS: 1, PacketID: 1, Payload: []byte("x")})
	if ack := mqtttest.Expect[*packet.Puback](pub); ack.ReasonCode != packet.Success {
		t.Fatalf("PUBACK %v, want Success", ack.ReasonCode)
	}
	if got := sub.ExpectPublish(); got.Topic != "t/1" {
		t.Fatalf("B got %v", got)
	}
	if st := a.Stats(); st.ClusterForwarded <= fwdA || st.ClusterForwardFailures != 0 {
		t.Fatalf("A forwarded %d (before %d), failures %d", st.ClusterForwarded, fwdA, st.ClusterForwardFailures)
	}
	waitFor(t, "B counts the message received from A", func() bool { return b.Stats().ClusterReceived > recvB },
		func() string { return strconv.FormatUint(b.Stats().ClusterReceived, 10) })

	// A client of A connects to C: A counts a takeover.
	old := connect5(t, bs[0], "mover")
	connect5(t, bs[2], "mover")
	if d := mqtttest.Expect[*packet.Disconnect](old); d.ReasonCode != packet.SessionTakenOver {
		t.Fatalf("DISCONNECT %v, want Session taken over", d.ReasonCode)
	}
	if n := a.Stats().ClusterTakeovers; n != 1 {
		t.Fatalf("A takeovers %d, want 1", n)
	}

	wa.wait(t, "A's $SYS/broker/cluster", func(m map[string]string) bool {
		return m["$SYS/broker/cluster/engine"] == "memory" && m["$SYS/broker/cluster/node"] == ids[0] &&
			m["$SYS/broker/cluster/reachable"] == "1" && atLeast(m, "$SYS/broker/cluster/forwarded/sent", fwdA+1) &&
			m["$SYS/broker/cluster/forwarded/failed"] == "0" && m["$SYS/broker/cluster/takeovers"] == "1"
	})
	wb.wait(t, "B's $SYS/broker/cluster", func(m map[string]string) bool {
		return m["$SYS/broker/cluster/node"] == ids[1] && m["$SYS/broker/cluster/reachable"] == "1" &&
			atLeast(m, "$SYS/broker/cluster/forwarded/received", recvB+1)
	})

	// A is cut off: the $SYS probe notices without traffic, and a QoS 1
	// PUBLISH is refused and counted as a failure.
	if err := cl.Partition(ids[0]); err != nil {
		t.Fatal(err)
	}
	wa.wait(t, "A's $SYS reachable 0 after the partition", func(m map[string]string) bool {
		return m["$SYS/broker/cluster/reachable"] == "0"
	})
	if a.Stats().ClusterReachable {
		t.Fatal("A's Stats: reachable after the partition")
	}
	if !b.Stats().ClusterReachable {
		t.Fatal("B's Stats: unreachable, but only A was cut off")
	}
	pub.Send(&packet.Publish{Topic: "t/2", QoS: 1, PacketID: 2, Payload: []byte("y")})
	if ack := mqtttest.Expect[*packet.Puback](pub); ack.ReasonCode != packet.UnspecifiedError {
		t.Fatalf("PUBACK %v while partitioned, want Unspecified error", ack.ReasonCode)
	}
	if n := a.Stats().ClusterForwardFailures; n != 1 {
		t.Fatalf("A forward failures %d, want 1", n)
	}
	wa.wait(t, "A's $SYS forward failures", func(m map[string]string) bool {
		return m["$SYS/broker/cluster/forwarded/failed"] == "1"
	})

	// Healed: reachable again.
	if err := cl.Heal(ids[0]); err != nil {
		t.Fatal(err)
	}
	wa.wait(t, "A's $SYS reachable 1 after the heal", func(m map[string]string) bool {
		return m["$SYS/broker/cluster/reachable"] == "1"
	})
	if !a.Stats().ClusterReachable {
		t.Fatal("A's Stats: unreachable after the heal")
	}
}

// TestSysNoCluster: without a back plane, Stats has no cluster figures and
// no $SYS/broker/cluster/ topic is published.
func TestSysNoCluster(t *testing.T) {
	bk := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{SysInterval: 10 * time.Millisecond}})
	w := watchClusterSys(t, bk.Server)
	seen := make(chan struct{}, 1)
	unsub, err := bk.Server.Subscribe("$SYS/broker/uptime", 0, func(*broker.Message) {
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// Three updates after the subscriptions.
	for range 3 {
		select {
		case <-seen:
		case <-time.After(10 * time.Second):
			t.Fatal("no $SYS update in 10s")
		}
	}
	w.mu.Lock()
	got := mapString(w.got)
	w.mu.Unlock()
	if got != "" {
		t.Fatalf("$SYS/broker/cluster/ without a back plane: %s", got)
	}
	st := bk.Server.Stats()
	if st.ClusterEngine != "" || st.ClusterNode != "" || st.ClusterReachable || st.ClusterForwarded != 0 || st.ClusterReceived != 0 {
		t.Fatalf("cluster figures without a back plane: %+v", st)
	}
}
