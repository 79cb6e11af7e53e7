package disk

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ternmq/tern/store"
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
