package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
)

// BrokerConfig describes the [store.Broker] under test.
type BrokerConfig struct {
	// Open opens the broker store kept in dir (empty the first time). The
	// suite closes every store it opens.
	Open func(t testing.TB, dir string) (store.Broker, error)
	// Durable: what the store held when it was closed is there when dir
	// is opened again.
	Durable bool
	// CrashSafe: a copy of dir taken while the store is open (as a
	// process killed at that moment leaves it) opens to the state of the
	// Apply calls that returned.
	CrashSafe bool
}

// RunBroker runs the broker conformance suite as subtests of t: round
// trips of every field (every MQTT 5 property of queued, retained and
// will messages), ordering of queues, in-flight marks, deletion,
// changes that refer to nothing, Close, concurrent use (run it with
// -race), and for durable stores reopening after Close and after a
// simulated crash. The reference is [memory.Broker] driven by the same
// changes.
func RunBroker(t *testing.T, c BrokerConfig) {
	if c.Open == nil {
		t.Fatal("storetest.BrokerConfig.Open is nil: set it to a function that opens the store in a directory")
	}
	if c.CrashSafe && !c.Durable {
		t.Fatal("storetest.BrokerConfig: CrashSafe needs Durable")
	}
	h := &bharness{c}
	t.Run("Empty", h.testEmpty)
	t.Run("RoundTrip", h.testRoundTrip)
	t.Run("Order", h.testOrder)
	t.Run("Delete", h.testDelete)
	t.Run("Missing", h.testMissing)
	t.Run("SharedMessage", h.testShared)
	t.Run("PacketIDReused", h.testPacketIDReused)
	t.Run("EnqueueAll", h.testEnqueueAll)
	t.Run("Marks", h.testMarks)
	t.Run("Closed", h.testClosed)
	t.Run("Concurrent", h.testConcurrent)
	t.Run("Random", h.testRandom)
	if c.Durable {
		t.Run("Reopen", h.testReopen)
	}
	if c.CrashSafe {
		t.Run("Crash", h.testCrash)
	}
}

type bharness struct{ BrokerConfig }

// bmodel is the reference: a memory store applying the same changes.
type bmodel struct{ *memory.Broker }

func newBModel() bmodel { return bmodel{memory.NewBroker()} }

func (h *bharness) open(t testing.TB, dir string) store.Broker {
	t.Helper()
	b, err := h.Open(t, dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func (h *bharness) reopen(t testing.TB, b store.Broker, dir string) store.Broker {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return h.open(t, dir)
}

// apply applies cs to b and to the model.
func (m bmodel) apply(t testing.TB, b store.Broker, cs ...store.Change) {
	t.Helper()
	if err := b.Apply(context.Background(), cs...); err != nil {
		t.Fatalf("Apply(%v): %v", ops(cs), err)
	}
	if err := m.Broker.Apply(context.Background(), cs...); err != nil {
		t.Fatalf("model: %v", err)
	}
}

func ops(cs []store.Change) []store.Op {
	o := make([]store.Op, len(cs))
	for i := range cs {
		o[i] = cs[i].Op
	}
	return o
}

// check compares what b loads with the model.
func (m bmodel) check(t testing.TB, b store.Broker) {
	t.Helper()
	want, err := m.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if d := DiffBrokerState(got, want); d != "" {
		t.Fatalf("Load: %s", d)
	}
}

// DiffBrokerState describes the first way got differs from want
// (Saved aside), or returns "".
func DiffBrokerState(got, want *store.BrokerState) string {
	if got.MaxMsgID < want.MaxMsgID {
		return fmt.Sprintf("MaxMsgID %d, want at least %d", got.MaxMsgID, want.MaxMsgID)
	}
	if len(got.Sessions) != len(want.Sessions) {
		return fmt.Sprintf("%d sessions %v, want %d %v", len(got.Sessions), ids(got.Sessions), len(want.Sessions), ids(want.Sessions))
	}
	for i := range want.Sessions {
		if d := diffSession(&got.Sessions[i], &want.Sessions[i]); d != "" {
			return fmt.Sprintf("session %q: %s", want.Sessions[i].ClientID, d)
		}
	}
	if len(got.Retained) != len(want.Retained) {
		return fmt.Sprintf("%d retained messages, want %d", len(got.Retained), len(want.Retained))
	}
	byTopic := func(ms []*message.Message) []*message.Message {
		ms = slices.Clone(ms)
		slices.SortFunc(ms, func(a, b *message.Message) int { return strings.Compare(a.Topic, b.Topic) })
		return ms
	}
	g, w := byTopic(got.Retained), byTopic(want.Retained)
	for i := range w {
		if d := diffMessage(g[i], w[i]); d != "" {
			return fmt.Sprintf("retained message %d (topic %q): %s", i, w[i].Topic, d)
		}
	}
	if !maps.Equal(got.Marks, want.Marks) {
		return fmt.Sprintf("marks %v, want %v", got.Marks, want.Marks)
	}
	return ""
}

// testMarks: a mark is kept with the batch it came in, replaced by the
// next one of its feed, deleted by an empty position, and kept across a
// reopen and a compaction's rewrite of the state.
func (h *bharness) testMarks(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	m.apply(t, b, store.Mark("backplane", "1-1"), store.Mark("other", "x"))
	m.apply(t, b, store.Enqueue("c", store.Queued{Seq: 1, MsgID: 1, Msg: FullMessage(1), QoS: 2}), store.Mark("backplane", "1700000000000-7"))
	m.apply(t, b, store.Mark("other", ""))
	m.check(t, b)
	st, err := b.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"backplane": "1700000000000-7"}; !maps.Equal(st.Marks, want) {
		t.Fatalf("Marks %v, want %v", st.Marks, want)
	}
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

func ids(ss []store.StoredSession) []string {
	var r []string
	for _, s := range ss {
		r = append(r, s.ClientID)
	}
	return r
}

func diffSession(g, w *store.StoredSession) string {
	switch {
	case g.ClientID != w.ClientID:
		return fmt.Sprintf("client id %q", g.ClientID)
	case g.Info.Expiry != w.Info.Expiry:
		return fmt.Sprintf("Expiry %d, want %d", g.Info.Expiry, w.Info.Expiry)
	case g.Info.Version != w.Info.Version:
		return fmt.Sprintf("Version %d, want %d", g.Info.Version, w.Info.Version)
	case !g.Info.Disconnected.Equal(w.Info.Disconnected) || g.Info.Disconnected.IsZero() != w.Info.Disconnected.IsZero():
		return fmt.Sprintf("Disconnected %v, want %v", g.Info.Disconnected, w.Info.Disconnected)
	case (g.Info.Will == nil) != (w.Info.Will == nil):
		return fmt.Sprintf("Will %v, want %v", g.Info.Will, w.Info.Will)
	case w.Info.Will != nil && g.Info.Will.Delay != w.Info.Will.Delay:
		return fmt.Sprintf("Will.Delay %d, want %d", g.Info.Will.Delay, w.Info.Will.Delay)
	}
	if w.Info.Will != nil {
		if d := diffMessage(g.Info.Will.Msg, w.Info.Will.Msg); d != "" {
			return "Will.Msg: " + d
		}
	}
	if len(g.Subs) != len(w.Subs) || !maps.Equal(g.Subs, w.Subs) {
		return fmt.Sprintf("Subs %v, want %v", g.Subs, w.Subs)
	}
	if !slices.Equal(g.Incoming, w.Incoming) {
		return fmt.Sprintf("Incoming %v, want %v", g.Incoming, w.Incoming)
	}
	if len(g.Queue) != len(w.Queue) {
		return fmt.Sprintf("%d queued, want %d", len(g.Queue), len(w.Queue))
	}
	for i := range w.Queue {
		a, b := g.Queue[i], w.Queue[i]
		switch {
		case a.Seq != b.Seq:
			return fmt.Sprintf("queue[%d]: Seq %d, want %d", i, a.Seq, b.Seq)
		case a.MsgID != b.MsgID, a.QoS != b.QoS, a.Retain != b.Retain, a.PacketID != b.PacketID, a.Released != b.Released:
			return fmt.Sprintf("queue[%d]: MsgID %d QoS %d Retain %v PacketID %d Released %v, want %d %d %v %d %v",
				i, a.MsgID, a.QoS, a.Retain, a.PacketID, a.Released, b.MsgID, b.QoS, b.Retain, b.PacketID, b.Released)
		case !slices.Equal(a.SubIDs, b.SubIDs) && len(a.SubIDs)+len(b.SubIDs) > 0:
			return fmt.Sprintf("queue[%d]: SubIDs %v, want %v", i, a.SubIDs, b.SubIDs)
		case a.Msg == nil:
			return fmt.Sprintf("queue[%d]: Msg nil", i)
		}
		if d := diffMessage(a.Msg, b.Msg); d != "" {
			return fmt.Sprintf("queue[%d] (seq %d): %s", i, a.Seq, d)
		}
	}
	return ""
}

func (h *bharness) testEmpty(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	m.check(t, b)
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

// fullSession is a session with every field set.
func fullSession(n uint64) store.SessionInfo {
	return store.SessionInfo{
		Expiry:       uint32(n * 100),
		Disconnected: time.Date(2025, 1, 2, 3, 4, 5, int(n), time.UTC),
		Will:         &store.Will{Msg: FullMessage(n + 1000), Delay: uint32(n)},
		Version:      5,
	}
}

func (h *bharness) testRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	m.apply(t, b,
		store.PutSession("a", fullSession(1)),
		store.PutSession("ü-b", store.SessionInfo{Expiry: 0xFFFFFFFF, Version: 4}),
		store.Subscribe("a", "x/+/y", store.Subscription{QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 268435455}),
		store.Subscribe("a", "#", store.Subscription{QoS: 1}),
		store.Subscribe("ü-b", "$share/g/t", store.Subscription{}),
	)
	for i, o := range roundTripCases() {
		q := store.Queued{Seq: o.Seq, MsgID: uint64(i + 1), Msg: o.Msg, QoS: o.Msg.QoS, Retain: i%2 == 0, SubIDs: []uint32{uint32(i), 7}, PacketID: o.PacketID, Released: o.Released}
		m.apply(t, b, store.Enqueue("a", q))
	}
	m.apply(t, b,
		store.Sent("a", 1, 300),
		store.Released("a", 1),
		store.AddIncoming("a", 1), store.AddIncoming("a", 65535), store.AddIncoming("ü-b", 3),
		store.Retain("r/1", retainMsg("r/1", 1)),
		store.Retain("bare", &message.Message{Topic: "bare", Retain: true}),
	)
	m.check(t, b)
	got, err := b.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxMsgID < 7 {
		t.Errorf("MaxMsgID %d, want at least 7", got.MaxMsgID)
	}
	if h.Durable {
		b = h.reopen(t, b, dir)
		m.check(t, b)
		st, err := b.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Saved.IsZero() {
			t.Error("Saved is zero after changes were stored")
		}
	}
}

// testOrder: a queue loads in Seq order whatever the order of Enqueue.
func (h *bharness) testOrder(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	r := rand.New(rand.NewPCG(1, 2))
	for _, seq := range r.Perm(300) {
		m.apply(t, b, store.Enqueue("c", store.Queued{Seq: uint64(seq) + 1, MsgID: uint64(seq) + 1, Msg: FullMessage(uint64(seq)), QoS: 1}))
	}
	m.check(t, b)
	st, _ := b.Load(context.Background())
	if len(st.Sessions) != 1 || !slices.IsSortedFunc(st.Sessions[0].Queue, func(a, b store.Queued) int { return cmpSeq(a.Seq, b.Seq) }) {
		t.Fatal("queue not in Seq order")
	}
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

func (h *bharness) testDelete(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	for i := range uint64(10) {
		m.apply(t, b,
			store.PutSession(fmt.Sprint("s", i), fullSession(i)),
			store.Subscribe(fmt.Sprint("s", i), "f", store.Subscription{QoS: 1}),
			store.Enqueue(fmt.Sprint("s", i), store.Queued{Seq: 1, MsgID: i + 1, Msg: FullMessage(i), QoS: 1}),
			store.Enqueue(fmt.Sprint("s", i), store.Queued{Seq: 2, MsgID: 100 + i, Msg: FullMessage(i + 100), QoS: 2}),
			store.AddIncoming(fmt.Sprint("s", i), uint16(i+1)),
			store.Retain(fmt.Sprint("t", i), retainMsg(fmt.Sprint("t", i), i)),
		)
	}
	m.apply(t, b,
		store.DeleteSession("s0"),
		store.Unsubscribe("s1", "f"),
		store.Dequeue("s2", 1),
		store.Dequeue("s3", 2), store.Dequeue("s3", 1),
		store.DeleteIncoming("s4", 5),
		store.Retain("t5", nil),
		store.PutSession("s6", store.SessionInfo{Expiry: 5}), // replaces the will and times
	)
	m.check(t, b)
	// A deleted session comes back empty.
	m.apply(t, b, store.PutSession("s0", store.SessionInfo{Expiry: 1}))
	m.check(t, b)
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

// testMissing: changes that refer to nothing stored are ignored.
func (h *bharness) testMissing(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	m.apply(t, b,
		store.DeleteSession("nobody"),
		store.Unsubscribe("nobody", "f"),
		store.Sent("nobody", 1, 1),
		store.Released("nobody", 1),
		store.Dequeue("nobody", 1),
		store.DeleteIncoming("nobody", 1),
		store.Retain("none", nil),
	)
	m.apply(t, b, store.PutSession("a", store.SessionInfo{Expiry: 10}), store.Sent("a", 9, 1), store.Dequeue("a", 9))
	m.check(t, b)
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

// testPacketIDReused: a packet id names one flight at a time. The broker
// reuses an id once its flight has ended and writes that message's
// Dequeue lazily, so the store may see the id sent again first: the
// earlier message is gone then, or a restart would resend it under the
// id and send the live one again under another.
func (h *bharness) testPacketIDReused(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	for seq := uint64(1); seq <= 4; seq++ {
		if err := b.Apply(context.Background(), store.Enqueue("c", store.Queued{Seq: seq, MsgID: seq, Msg: FullMessage(seq), QoS: 2})); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range [][]store.Change{
		{store.Sent("c", 1, 7), store.Released("c", 1)},
		{store.Sent("c", 2, 8)},
		{store.Sent("c", 3, 7)}, // 7 again: message 1 has ended
		// Enqueued in flight already (a compaction's rewrite, say): 8
		// again ends message 2.
		{store.Enqueue("c", store.Queued{Seq: 5, MsgID: 5, Msg: FullMessage(5), QoS: 2, PacketID: 8})},
	} {
		if err := b.Apply(context.Background(), c...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(b store.Broker) {
		t.Helper()
		st, err := b.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ss := range st.Sessions {
			for _, q := range ss.Queue {
				got = append(got, fmt.Sprintf("%d:%d", q.Seq, q.PacketID))
			}
		}
		if want := []string{"3:7", "4:0", "5:8"}; !slices.Equal(got, want) {
			t.Fatalf("queue (seq:packet id) %v, want %v", got, want)
		}
	}
	check(b)
	if h.Durable {
		b = h.reopen(t, b, dir)
		check(b)
	}
	b.Close()
}

// testShared: one message in many queues, dequeued one by one, stays
// whole in the queues that still hold it.
func (h *bharness) testShared(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	msg := FullMessage(42)
	var cs []store.Change
	for i := range 20 {
		cs = append(cs, store.Enqueue(fmt.Sprint("s", i), store.Queued{Seq: 1, MsgID: 42, Msg: msg, QoS: byte(i % 3)}))
	}
	m.apply(t, b, cs...)
	for i := range 19 {
		m.apply(t, b, store.Dequeue(fmt.Sprint("s", i), 1))
	}
	m.check(t, b)
	if h.Durable {
		b = h.reopen(t, b, dir)
		m.check(t, b)
		m.apply(t, b, store.Dequeue("s19", 1))
		m.check(t, h.reopen(t, b, dir))
	}
}

// testEnqueueAll: OpEnqueueAll and OpDequeueAll do what an OpEnqueue or
// OpDequeue per target does (the model is given those), mixed with
// other changes in one batch.
func (h *bharness) testEnqueueAll(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	both := func(cs ...store.Change) {
		t.Helper()
		if err := b.Apply(context.Background(), cs...); err != nil {
			t.Fatalf("Apply(%v): %v", ops(cs), err)
		}
		var one []store.Change
		for i := range cs {
			cs[i].Each(func(c *store.Change) { one = append(one, *c) })
		}
		if err := m.Broker.Apply(context.Background(), one...); err != nil {
			t.Fatalf("model: %v", err)
		}
	}
	var seq uint64
	for n := uint64(1); n <= 10; n++ {
		var ts []store.Target
		for i := range 20 {
			seq++
			ts = append(ts, store.Target{ClientID: fmt.Sprint("s", i), Seq: seq, QoS: byte(1 + i%2), Retain: i%3 == 0, SubIDs: []uint32{uint32(i)}})
		}
		both(store.PutSession("s0", fullSession(n)), store.EnqueueAll(n, FullMessage(n), ts), store.Retain("r", retainMsg("r", n)))
	}
	// Dequeue every other message of every session, in one change.
	var ts []store.Target
	for s := uint64(1); s <= seq; s += 2 {
		ts = append(ts, store.Target{ClientID: fmt.Sprint("s", (s-1)%20), Seq: s})
	}
	both(store.DequeueAll(ts), store.Sent("s1", 2, 7))
	both(store.DequeueAll(nil), store.EnqueueAll(99, FullMessage(99), nil))
	m.check(t, b)
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

func (h *bharness) testClosed(t *testing.T) {
	b := h.open(t, t.TempDir())
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if err := b.Apply(context.Background(), store.PutSession("a", store.SessionInfo{})); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Load(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Load after Close: %v, want ErrClosed", err)
	}
}

// randomBatch builds a batch of random changes on a few sessions.
func randomBatch(r *rand.Rand, prefix string, next *uint64) []store.Change {
	var cs []store.Change
	for range 1 + r.IntN(4) {
		id := fmt.Sprintf("%s%d", prefix, r.IntN(4))
		seq := uint64(r.IntN(12) + 1)
		switch k := r.IntN(20); {
		case k < 6:
			*next++
			cs = append(cs, store.Enqueue(id, store.Queued{Seq: *next, MsgID: *next, Msg: FullMessage(*next), QoS: 1 + byte(k%2), SubIDs: []uint32{uint32(k)}}))
		case k < 8:
			cs = append(cs, store.Sent(id, *next-uint64(r.IntN(3)), uint16(r.IntN(65535)+1)))
		case k < 9:
			cs = append(cs, store.Released(id, *next-uint64(r.IntN(3))))
		case k < 12:
			cs = append(cs, store.Dequeue(id, *next-seq%4))
		case k < 13:
			cs = append(cs, store.Subscribe(id, fmt.Sprint("f/", seq), store.Subscription{QoS: byte(seq % 3), ID: uint32(seq)}))
		case k < 14:
			cs = append(cs, store.Unsubscribe(id, fmt.Sprint("f/", seq)))
		case k < 15:
			cs = append(cs, store.AddIncoming(id, uint16(seq)))
		case k < 16:
			cs = append(cs, store.DeleteIncoming(id, uint16(seq)))
		case k < 17:
			cs = append(cs, store.PutSession(id, fullSession(seq)))
		case k < 18:
			if r.IntN(4) == 0 {
				cs = append(cs, store.DeleteSession(id))
			}
		default:
			if r.IntN(3) == 0 {
				cs = append(cs, store.Retain(fmt.Sprint(prefix, "r/", seq), nil))
			} else {
				*next++
				cs = append(cs, store.Retain(fmt.Sprint(prefix, "r/", seq), retainMsg(fmt.Sprint(prefix, "r/", seq), *next)))
			}
		}
	}
	return cs
}

func (h *bharness) testRandom(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	r := rand.New(rand.NewPCG(3, 4))
	var next uint64
	for i := range 2000 {
		m.apply(t, b, randomBatch(r, "", &next)...)
		if i%250 == 0 {
			m.check(t, b)
			if h.Durable && i%500 == 0 {
				b = h.reopen(t, b, dir)
				m.check(t, b)
			}
		}
	}
	m.check(t, b)
}

// testConcurrent: goroutines apply batches to sessions of their own at
// once; the store ends with all of them.
func (h *bharness) testConcurrent(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	const workers, batches = 8, 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			next := uint64(w) << 32
			for range batches {
				cs := randomBatch(r, fmt.Sprint("w", w, "-"), &next)
				// Changes of a worker's own sessions do not conflict with
				// another's, so the model can apply them in any order.
				if err := b.Apply(context.Background(), cs...); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				m.Broker.Apply(context.Background(), cs...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Apply: %v", err)
	}
	m.check(t, b)
	if h.Durable {
		m.check(t, h.reopen(t, b, dir))
	}
}

func (h *bharness) testReopen(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	r := rand.New(rand.NewPCG(6, 7))
	var next uint64
	for range 5 {
		for range 100 {
			m.apply(t, b, randomBatch(r, "", &next)...)
		}
		b = h.reopen(t, b, dir)
		m.check(t, b)
	}
}

// testCrash copies the directory of an open store at random points, as a
// process killed there would leave it, and opens each copy: it holds
// every change whose Apply returned and goes on working.
func (h *bharness) testCrash(t *testing.T) {
	dir := t.TempDir()
	b := h.open(t, dir)
	m := newBModel()
	r := rand.New(rand.NewPCG(8, 9))
	var next uint64
	steps, crashes := 1500, 0
	if testing.Short() {
		steps = 400
	}
	for i := 1; i <= steps; i++ {
		m.apply(t, b, randomBatch(r, "", &next)...)
		if r.IntN(100) != 0 {
			continue
		}
		crashes++
		snap := filepath.Join(t.TempDir(), "crashed")
		CopyDir(t, dir, snap)
		c := h.open(t, snap)
		m.check(t, c)
		cm := bmodel{memory.NewBroker()}
		st, _ := m.Load(context.Background())
		cm.restore(t, st)
		cnext := next
		for range 20 {
			cm.apply(t, c, randomBatch(r, "", &cnext)...)
		}
		cm.check(t, h.reopen(t, c, snap))
	}
	if crashes == 0 {
		t.Fatal("the test crashed nothing: change its seed")
	}
	m.check(t, b)
}

// restore fills the model with st.
func (m bmodel) restore(t testing.TB, st *store.BrokerState) {
	var cs []store.Change
	for _, s := range st.Sessions {
		cs = append(cs, store.PutSession(s.ClientID, s.Info))
		for f, sub := range s.Subs {
			cs = append(cs, store.Subscribe(s.ClientID, f, sub))
		}
		for _, q := range s.Queue {
			cs = append(cs, store.Enqueue(s.ClientID, q))
		}
		for _, id := range s.Incoming {
			cs = append(cs, store.AddIncoming(s.ClientID, id))
		}
	}
	for _, msg := range st.Retained {
		cs = append(cs, store.Retain(msg.Topic, msg))
	}
	for name, pos := range st.Marks {
		cs = append(cs, store.Mark(name, pos))
	}
	if err := m.Broker.Apply(context.Background(), cs...); err != nil {
		t.Fatal(err)
	}
}

// retainMsg is FullMessage(n) published to topic with the RETAIN flag.
func retainMsg(topic string, n uint64) *message.Message {
	m := FullMessage(n)
	m.Topic, m.Retain = topic, true
	return m
}
