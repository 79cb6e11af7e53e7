package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
	"github.com/ternmq/tern/store/storetest"
)

func hasState(b *Broker) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.index != nil
}

// TestBrokerDropsStateAfterLoad: the first Load hands over the state the
// open replayed and, the state being large, the store keeps no copy;
// later Loads replay the log and see every Apply that returned, across
// a compaction.
func TestBrokerDropsStateAfterLoad(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBroker(t.TempDir(), BrokerOptions{Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.smallMax = 0 // every state is large
	applyN(t, b, 1, 10)
	if !hasState(b) {
		t.Fatal("no state in memory before the first Load")
	}
	if n := queued(t, b); n != 9 {
		t.Fatalf("first Load: %d queued, want 9", n)
	}
	if hasState(b) {
		t.Fatal("the store still holds the state after the first Load")
	}
	applyN(t, b, 10, 20)
	if n := queued(t, b); n != 19 {
		t.Fatalf("Load from the log: %d queued, want 19", n)
	}
	if err := b.Apply(ctx, store.Dequeue("c", 1), store.Retain("a/b", storetest.FullMessage(100))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Compact(); err != nil {
		t.Fatal(err)
	}
	st, err := b.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 1 || len(st.Sessions[0].Queue) != 18 || len(st.Retained) != 1 || st.MaxMsgID != 19 {
		t.Fatalf("Load after a compaction: %+v", st)
	}
	if st.Saved.IsZero() {
		t.Fatal("Load from the log: Saved is zero")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Load(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
}

// TestBrokerKeepsSmallState: a small state stays in memory after the
// first Load (a compaction copies it); once it has grown large, the next
// compaction drops it and replays the log.
func TestBrokerKeepsSmallState(t *testing.T) {
	b, err := OpenBroker(t.TempDir(), BrokerOptions{Sync: SyncNone, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.smallMax = 4 << 10
	applyN(t, b, 1, 5)
	queued(t, b)
	if !hasState(b) {
		t.Fatal("a small state was dropped at the first Load")
	}
	if _, _, err := b.Compact(); err != nil {
		t.Fatal(err)
	}
	if !hasState(b) {
		t.Fatal("a small state was dropped at a compaction")
	}
	applyN(t, b, 5, 200)
	if _, _, err := b.Compact(); err != nil {
		t.Fatal(err)
	}
	if hasState(b) {
		t.Fatalf("a state of %d bytes is still held after a compaction", b.Size())
	}
	if n := queued(t, b); n != 199 {
		t.Fatalf("%d queued, want 199", n)
	}
}

// TestBrokerKeepState: with KeepState the state stays in memory, however
// large.
func TestBrokerKeepState(t *testing.T) {
	b, err := OpenBroker(t.TempDir(), BrokerOptions{KeepState: true, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.smallMax = 0
	applyN(t, b, 1, 5)
	queued(t, b)
	applyN(t, b, 5, 8)
	if !hasState(b) {
		t.Fatal("KeepState: the state was dropped")
	}
	if n := queued(t, b); n != 7 {
		t.Fatalf("%d queued, want 7", n)
	}
}

// TestBrokerLoadDuringWrites: Loads that replay the log while batches
// are written and the log is compacted under them each see at least
// every Apply that returned before they were called.
func TestBrokerLoadDuringWrites(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBroker(t.TempDir(), BrokerOptions{Sync: SyncNone, CompactBytes: 8 << 10, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.smallMax = 0 // Loads replay the log
	if _, err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var done atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			q := store.Queued{Seq: uint64(i), MsgID: uint64(i), Msg: storetest.FullMessage(uint64(i)), QoS: 1}
			if err := b.Apply(ctx, store.Enqueue("c", q)); err != nil {
				t.Error(err)
				return
			}
			if i > 10 { // keep about ten queued: the log is mostly dead bytes
				if err := b.Apply(ctx, store.Dequeue("c", uint64(i-10))); err != nil {
					t.Error(err)
					return
				}
			}
			done.Store(int64(i))
		}
	}()
	loads := 0
	for done.Load() < n && loads < 10_000 {
		want := done.Load()
		st, err := b.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		loads++
		var top uint64
		for _, s := range st.Sessions {
			for _, q := range s.Queue {
				top = max(top, q.Seq)
			}
		}
		if int64(top) < want {
			t.Fatalf("Load %d: the last message queued is %d, but %d Apply calls had returned", loads, top, want)
		}
	}
	wg.Wait()
	if b.compactions.Load() == 0 {
		t.Fatal("no compaction ran under the Loads")
	}
	t.Logf("%d Loads, %d compactions", loads, b.compactions.Load())
}

// TestBrokerReadoptsSmallState: once a dropped state has shrunk back to
// small, the compaction that replays it keeps it as the copy again.
func TestBrokerReadoptsSmallState(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBroker(t.TempDir(), BrokerOptions{Sync: SyncNone, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.smallMax = 4 << 10
	queued(t, b)
	applyN(t, b, 1, 200)
	if _, _, err := b.Compact(); err != nil {
		t.Fatal(err)
	}
	if hasState(b) {
		t.Fatal("a large state is still held after a compaction")
	}
	for i := 1; i < 198; i++ {
		if err := b.Apply(ctx, store.Dequeue("c", uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.Compact(); err != nil {
		t.Fatal(err)
	}
	if !hasState(b) || b.adoptions.Load() != 1 {
		t.Fatalf("the state, small again, was not kept by the compaction that replayed it (adoptions %d)", b.adoptions.Load())
	}
	applyN(t, b, 200, 202)
	if got, want := stateString(t, loadNow(t, b)), stateString(t, replayNow(t, b)); got != want {
		t.Fatalf("the state kept differs from the log's:\n%s\nwant\n%s", got, want)
	}
}

// TestBrokerAdoptUnderWrites: a state that grows large and shrinks back
// while it is written and compacted (automatically, beside the writes)
// is dropped and kept again, and what is kept is always the log's state.
func TestBrokerAdoptUnderWrites(t *testing.T) {
	ctx := context.Background()
	b, err := OpenBroker(t.TempDir(), BrokerOptions{Sync: SyncNone, CompactBytes: 4 << 10, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.smallMax = 8 << 10
	queued(t, b)
	model := memory.NewBroker() // what the state must be
	apply := func(c store.Change) {
		t.Helper()
		if err := b.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
		model.Apply(ctx, c)
	}
	seq := uint64(0)
	for round := range 20 {
		first := seq + 1
		for range 100 { // large
			seq++
			apply(store.Enqueue("c", store.Queued{Seq: seq, MsgID: seq, Msg: storetest.FullMessage(seq), QoS: 1}))
		}
		for s := first; s < seq; s++ { // small again, one at a time, as PUBACKs come
			apply(store.Dequeue("c", s))
		}
		want, err := model.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := stateString(t, replayNow(t, b)); got != stateString(t, want) {
			t.Fatalf("round %d: the log's state differs from the changes made:\n%s\nwant\n%s", round, got, stateString(t, want))
		}
		if hasState(b) {
			if got := stateString(t, loadNow(t, b)); got != stateString(t, want) {
				t.Fatalf("round %d: the state kept differs from the changes made:\n%s\nwant\n%s", round, got, stateString(t, want))
			}
		}
	}
	if b.adoptions.Load() == 0 {
		t.Fatalf("no state was kept again in %d compactions", b.compactions.Load())
	}
	t.Logf("%d compactions, %d states kept again", b.compactions.Load(), b.adoptions.Load())
}

// loadNow returns the state b holds in memory.
func loadNow(t *testing.T, b *Broker) *store.BrokerState {
	t.Helper()
	b.mu.Lock()
	idx := b.index
	b.mu.Unlock()
	if idx == nil {
		t.Fatal("the store holds no state")
	}
	st, err := idx.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// replayNow returns the state of b's log, read from the file.
func replayNow(t *testing.T, b *Broker) *store.BrokerState {
	t.Helper()
	b.mu.Lock()
	for b.writing || len(b.pending) > 0 {
		b.cond.Wait()
	}
	f, err := os.Open(b.path)
	end := b.end
	b.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := replayTo(context.Background(), f, end, b.path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// stateString prints st, Saved aside, messages by their content.
func stateString(t *testing.T, st *store.BrokerState) string {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "max %d\n", st.MaxMsgID)
	for _, s := range st.Sessions {
		fmt.Fprintf(&sb, "session %q %+v subs %v in %v\n", s.ClientID, s.Info, s.Subs, s.Incoming)
		for _, q := range s.Queue {
			fmt.Fprintf(&sb, "  %d %d %d %d %v %v %q %q\n", q.Seq, q.MsgID, q.QoS, q.PacketID, q.Released, q.SubIDs, q.Msg.Topic, q.Msg.Payload)
		}
	}
	topics := make([]string, 0, len(st.Retained))
	for _, m := range st.Retained {
		topics = append(topics, m.Topic+"="+string(m.Payload))
	}
	slices.Sort(topics)
	fmt.Fprintf(&sb, "retained %v\n", topics)
	return sb.String()
}
