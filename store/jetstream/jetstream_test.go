package jetstream

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
	"github.com/ternmq/tern/store/storetest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectBufSize(-1), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// nameOf names the store kept "in" dir: the suite opens a directory
// again to reopen a store.
func nameOf(dir string) string {
	h := fnv.New64a()
	h.Write([]byte(dir))
	return fmt.Sprintf("s%x", h.Sum64())
}

func open(t testing.TB, url, name string, replicas int) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, connect(t, url), Config{Name: name, Replicas: replicas})
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runSuite runs storetest.RunBroker on the servers ss, each open
// connecting to the next server in turn, so that a store is written
// through one server and read again through another.
func runSuite(t *testing.T, ss []*server.Server, replicas, compactAfter int) {
	var turn atomic.Int64
	storetest.RunBroker(t, storetest.BrokerConfig{
		Open: func(t testing.TB, dir string) (store.Broker, error) {
			s := ss[int(turn.Add(1))%len(ss)]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return Open(ctx, connect(t, s.ClientURL()), Config{Name: nameOf(dir), Replicas: replicas, CompactAfter: compactAfter})
		},
		Durable: true,
	})
}

func TestConformance(t *testing.T) {
	runSuite(t, []*server.Server{mqtttest.StartEmbeddedNATS(t)}, 1, 0)
}

// TestConformanceCompacting runs the suite with a snapshot every 40
// records: every reopen starts from a snapshot and the log after it.
func TestConformanceCompacting(t *testing.T) {
	runSuite(t, []*server.Server{mqtttest.StartEmbeddedNATS(t)}, 1, 40)
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server JetStream cluster: not in -short")
	}
	runSuite(t, mqtttest.StartEmbeddedNATSCluster(t, 3), 3, 100)
}

// TestAcrossNodes: two stores on different servers of a cluster share
// one state; their message id blocks differ.
func TestAcrossNodes(t *testing.T) {
	ss := mqtttest.StartEmbeddedNATSCluster(t, 3)
	a := open(t, ss[0].ClientURL(), "x", 3)
	defer a.Close()
	c := open(t, ss[2].ClientURL(), "x", 3)
	defer c.Close()
	ctx := context.Background()
	stA, err := a.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stC, err := c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stA.MaxMsgID>>blockBits == stC.MaxMsgID>>blockBits {
		t.Fatalf("two opens got the same message id block: MaxMsgID %#x and %#x", stA.MaxMsgID, stC.MaxMsgID)
	}
	m := storetest.FullMessage(1)
	if err := a.Apply(ctx, store.PutSession("dev", store.SessionInfo{Expiry: 60, Version: 5}),
		store.Subscribe("dev", "a/+", store.Subscription{QoS: 1}),
		store.Enqueue("dev", store.Queued{Seq: 1, MsgID: stA.MaxMsgID + 1, Msg: m, QoS: 1})); err != nil {
		t.Fatal(err)
	}
	ss1, ok, err := c.LoadSession(ctx, "dev")
	if err != nil || !ok {
		t.Fatalf("LoadSession on the other node: ok %v, %v", ok, err)
	}
	if ss1.Info.Expiry != 60 || len(ss1.Queue) != 1 || ss1.Queue[0].MsgID != stA.MaxMsgID+1 || ss1.Queue[0].Msg.Topic != m.Topic || ss1.Subs["a/+"].QoS != 1 {
		t.Fatalf("LoadSession on the other node: %+v", ss1)
	}
	if err := c.Apply(ctx, store.Sent("dev", 1, 5), store.Dequeue("dev", 1)); err != nil {
		t.Fatal(err)
	}
	if ss2, ok, err := a.LoadSession(ctx, "dev"); err != nil || !ok || len(ss2.Queue) != 0 {
		t.Fatalf("LoadSession back on the first node: ok %v, %v, queue %v", ok, err, ss2.Queue)
	}
	if _, ok, err := a.LoadSession(ctx, "nobody"); ok || err != nil {
		t.Fatalf("LoadSession(nobody): ok %v, %v", ok, err)
	}
}

// TestLargeBatch: a batch beyond the server's maximum payload goes in
// parts and takes effect whole.
func TestLargeBatch(t *testing.T) {
	s := mqtttest.StartEmbeddedNATS(t)
	st := open(t, s.ClientURL(), "big", 1)
	defer st.Close()
	ctx := context.Background()
	var cs []store.Change
	for i := range 5 {
		m := &message.Message{Topic: fmt.Sprint("big/", i), Payload: make([]byte, 600<<10), QoS: 1}
		cs = append(cs, store.Enqueue("c", store.Queued{Seq: uint64(i + 1), MsgID: uint64(i + 1), Msg: m, QoS: 1}))
	}
	if err := st.Apply(ctx, cs...); err != nil {
		t.Fatal(err)
	}
	other := open(t, s.ClientURL(), "big", 1)
	defer other.Close()
	ss, ok, err := other.LoadSession(ctx, "c")
	if err != nil || !ok || len(ss.Queue) != 5 || len(ss.Queue[4].Msg.Payload) != 600<<10 {
		t.Fatalf("LoadSession: ok %v, %v, %d queued", ok, err, len(ss.Queue))
	}
}

// TestOpenTogether: three nodes open one store at once, each through
// another server of a cluster; all open, with distinct id blocks.
func TestOpenTogether(t *testing.T) {
	ss := mqtttest.StartEmbeddedNATSCluster(t, 3)
	for round := range 2 {
		stores := make([]*Store, 3)
		errs := make([]error, 3)
		done := make(chan int, 3)
		for i := range 3 {
			nc := connect(t, ss[i].ClientURL())
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				stores[i], errs[i] = Open(ctx, nc, Config{Name: fmt.Sprint("together", round), Replicas: 3})
				done <- i
			}()
		}
		for range 3 {
			<-done
		}
		seen := map[uint64]bool{}
		for i, s := range stores {
			if errs[i] != nil {
				t.Fatalf("round %d, node %d: %v", round, i, errs[i])
			}
			defer s.Close()
			if seen[s.idBase()] {
				t.Fatalf("two opens with message id base %#x", s.idBase())
			}
			seen[s.idBase()] = true
		}
	}
}

// TestConformanceDebian runs the suite on an external cluster of three of
// Debian's nats-server (R3).
func TestConformanceDebian(t *testing.T) {
	c := mqtttest.StartNATSCluster(t, 3, mqtttest.NATSServerOptions{})
	var turn atomic.Int64
	storetest.RunBroker(t, storetest.BrokerConfig{
		Open: func(t testing.TB, dir string) (store.Broker, error) {
			s := c.Servers[int(turn.Add(1))%len(c.Servers)]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return Open(ctx, connect(t, s.URL), Config{Name: nameOf(dir), Replicas: 3})
		},
		Durable: true,
	})
}

// TestCompaction: two nodes write at once and both compact (a snapshot
// every 10 records); the log is purged before the latest snapshot, and a
// node opened afterwards, as well as the two writers, loads exactly what
// a memory store given the same changes holds.
func TestCompaction(t *testing.T) {
	srv := mqtttest.StartEmbeddedNATS(t)
	cfg := Config{Name: "compact", CompactAfter: 10}
	ctx := context.Background()
	opener := func() *Store {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := Open(c, connect(t, srv.ClientURL()), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := opener(), opener()
	model := memory.NewBroker()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(200) {
				id := fmt.Sprintf("w%d-%d", w, i%5)
				msgID := uint64(w)<<32 | (i + 1)
				cs := []store.Change{
					store.PutSession(id, store.SessionInfo{Expiry: uint32(i), Version: 5}),
					store.Enqueue(id, store.Queued{Seq: i + 1, MsgID: msgID, Msg: storetest.FullMessage(msgID), QoS: 1}),
					store.Retain(fmt.Sprintf("r/%d/%d", w, i%7), &message.Message{Topic: fmt.Sprintf("r/%d/%d", w, i%7), Payload: []byte{byte(i)}, Retain: true}),
				}
				if i >= 3 {
					cs = append(cs, store.Dequeue(id, i-2), store.Sent(id, i, uint16(i)))
				}
				if err := s.Apply(ctx, cs...); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				model.Apply(ctx, cs...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The log was compacted: its first record is past the start.
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := a.log.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.FirstSeq > 100 {
			sinfo, _ := a.snap.Info(ctx)
			t.Logf("log: records %d..%d (%d kept); snapshot stream: %d messages", info.State.FirstSeq, info.State.LastSeq, info.State.Msgs, sinfo.State.Msgs)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log was not compacted: records %d..%d", info.State.FirstSeq, info.State.LastSeq)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want, _ := model.Load(ctx)
	for name, s := range map[string]*Store{"a": a, "b": b, "new": opener()} {
		got, err := s.Load(ctx)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		if d := storetest.DiffBrokerState(got, want); d != "" {
			t.Fatalf("%s: Load: %s", name, d)
		}
	}
}

// TestReloadAfterPurge: a node whose reader lags while another node
// compacts the log past it finds records missing and starts again from
// the snapshot, and then loads the whole state.
func TestReloadAfterPurge(t *testing.T) {
	srv := mqtttest.StartEmbeddedNATS(t)
	ctx := context.Background()
	x := open(t, srv.ClientURL(), "lag", 1)
	defer x.Close()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	y, err := Open(c, connect(t, srv.ClientURL()), Config{Name: "lag", CompactAfter: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	model := memory.NewBroker()
	x.mu.Lock() // x's reader waits
	for i := range uint64(1500) {
		cs := []store.Change{store.Retain(fmt.Sprint("r/", i%20), &message.Message{Topic: fmt.Sprint("r/", i%20), Payload: []byte(fmt.Sprint(i)), Retain: true}),
			store.Enqueue("s", store.Queued{Seq: i + 1, MsgID: i + 1, Msg: storetest.FullMessage(i), QoS: 1})}
		if i > 0 {
			cs = append(cs, store.Dequeue("s", i))
		}
		if err := y.Apply(ctx, cs...); err != nil {
			x.mu.Unlock()
			t.Fatal(err)
		}
		model.Apply(ctx, cs...)
	}
	for {
		info, err := y.log.Info(ctx)
		if err != nil {
			x.mu.Unlock()
			t.Fatal(err)
		}
		if info.State.FirstSeq > 1000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	x.mu.Unlock()
	want, _ := model.Load(ctx)
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	got, err := x.Load(lctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := storetest.DiffBrokerState(got, want); d != "" {
		t.Fatalf("Load on the lagging node: %s", d)
	}
	x.mu.Lock()
	gen := x.gen
	x.mu.Unlock()
	t.Logf("reader generation %d (1: never reloaded)", gen)
}

// TestKillServer: on three of Debian's nats-server (R3), a node writes
// batches while the server it is connected to is killed (SIGKILL); it
// reconnects to another and goes on. Every batch whose Apply returned nil
// is in the state another node loads, and in a store opened afterwards.
func TestKillServer(t *testing.T) {
	c := mqtttest.StartNATSCluster(t, 3, mqtttest.NATSServerOptions{})
	ctx := context.Background()
	// a prefers the first server, b uses the second only.
	nc, err := nats.Connect(c.URL(), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectBufSize(-1), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := Open(octx, nc, Config{Name: "kill", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := open(t, c.Servers[1].URL, "kill", 3)
	defer b.Close()
	const n = 300
	acked, failed := 0, 0
	for i := range n {
		if i == n/3 {
			c.Servers[0].Kill()
		}
		m := &message.Message{Topic: fmt.Sprint("k/", i), Payload: []byte(fmt.Sprint(i)), Retain: true}
		for attempt := 0; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := a.Apply(actx, store.Retain(m.Topic, m))
			cancel()
			if err == nil {
				acked++
				break
			}
			failed++
			if attempt == 200 {
				t.Fatalf("batch %d: Apply failed 200 times, the last: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d batches acknowledged, %d Apply calls failed while the server was down", acked, failed)
	check := func(name string, s *Store) {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := s.Load(lctx)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		if len(st.Retained) != n {
			t.Fatalf("%s: %d retained messages, want %d", name, len(st.Retained), n)
		}
	}
	check("the other node", b)
	check("a node opened afterwards", open(t, c.Servers[2].URL, "kill", 3))
}

// TestServerRestart: Debian's nats-server is killed and started again
// (same port, same store directory) under an open store: the store's
// connection comes back, its reader goes on, and a Load after new Applies
// sees everything acknowledged before and after.
func TestServerRestart(t *testing.T) {
	s := mqtttest.StartNATSServer(t, mqtttest.NATSServerOptions{})
	ctx := context.Background()
	st := open(t, s.URL, "restart", 1)
	apply := func(i int) {
		t.Helper()
		m := &message.Message{Topic: fmt.Sprint("k/", i), Payload: []byte("v"), Retain: true}
		deadline := time.Now().Add(30 * time.Second)
		for {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := st.Apply(actx, store.Retain(m.Topic, m), store.Enqueue("c", store.Queued{Seq: uint64(i + 1), MsgID: uint64(i + 1), Msg: m, QoS: 1}))
			cancel()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Apply %d after the restart: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range 50 {
		apply(i)
	}
	s.Restart()
	for i := 50; i < 100; i++ {
		apply(i)
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got, err := st.Load(lctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Retained) != 100 || len(got.Sessions) != 1 || len(got.Sessions[0].Queue) != 100 {
		t.Fatalf("after the restart: %d retained, sessions %v", len(got.Retained), got.Sessions)
	}
}
