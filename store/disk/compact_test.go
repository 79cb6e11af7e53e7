package disk

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
	"github.com/ternmq/tern/store/storetest"
)

// TestCompactionDoesNotStall holds a compaction after it wrote its
// snapshot and applies changes meanwhile: every Apply returns while the
// compaction is held, and everything is there afterwards, in the open
// store, in a copy of the directory taken while the compaction was held
// and in one taken after it (as a process killed at either moment leaves
// it), and after a reopen.
func TestCompactionDoesNotStall(t *testing.T) {
	dir := t.TempDir()
	s := openB(t, dir, nil)
	defer s.Close()
	model := memory.NewBroker()
	both := func(cs ...store.Change) {
		t.Helper()
		if err := applyWithin(s, time.Minute, cs...); err != nil {
			t.Fatal(err)
		}
		model.Apply(context.Background(), cs...)
	}
	// A state to compact: 200 sessions and 2,000 retained messages.
	for i := range 200 {
		id := "c" + strconv.Itoa(i)
		both(store.PutSession(id, store.SessionInfo{Expiry: 60, Version: 5}),
			store.Subscribe(id, "t/"+id, store.Subscription{QoS: 1}),
			store.Enqueue(id, store.Queued{Seq: 1, MsgID: uint64(i + 1), QoS: 1, Msg: storetest.FullMessage(uint64(i))}))
	}
	for i := range 2000 {
		both(store.Retain("r/"+strconv.Itoa(i), retained(i)))
	}

	paused, resume := make(chan struct{}), make(chan struct{})
	s.compactHook = func(phase string) {
		if phase == "snapshot" {
			close(paused)
			<-resume
		}
	}
	compacted := make(chan error, 1)
	go func() { _, _, err := s.Compact(); compacted <- err }()
	select {
	case <-paused:
	case <-time.After(time.Minute):
		t.Fatal("the compaction did not reach its snapshot")
	}
	// The compaction is held: changes go on, to the old log.
	for i := range 300 {
		id := "c" + strconv.Itoa(i%200)
		seq := uint64(2 + i/200)
		both(store.Enqueue(id, store.Queued{Seq: seq, MsgID: uint64(1000 + i), QoS: 1, Msg: storetest.FullMessage(uint64(1000 + i))}),
			store.Retain("r/"+strconv.Itoa(i), nil),
			store.Dequeue(id, 1))
	}
	both(store.DeleteSession("c7"), store.AddIncoming("c8", 9))
	held := copyNow(t, dir)
	heldWant, _ := model.Load(context.Background())
	close(resume)
	select {
	case err := <-compacted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the compaction did not end")
	}
	if n := s.compactions.Load(); n != 1 {
		t.Fatalf("%d compactions, want 1", n)
	}
	both(store.Retain("after", retained(1)), store.Sent("c9", 2, 77))
	after := copyNow(t, dir)

	check := func(what string, b *Broker, want *store.BrokerState) {
		t.Helper()
		got, err := b.Load(context.Background())
		if err != nil {
			t.Fatalf("%s: Load: %v", what, err)
		}
		if d := storetest.DiffBrokerState(got, want); d != "" {
			t.Fatalf("%s: %s", what, d)
		}
	}
	want, _ := model.Load(context.Background())
	check("open", s, want)
	// Killed after the compaction: the new log and what came after it.
	b := openB(t, after, nil)
	check("killed after the compaction", b, want)
	b.Close()
	// Killed while the compaction was held: the old log has everything
	// applied until then; the unfinished new one is dropped.
	if _, err := os.Stat(filepath.Join(held, brokerCompactName)); err != nil {
		t.Fatalf("the copy taken during the compaction has no %s: %v", brokerCompactName, err)
	}
	b = openB(t, held, nil)
	check("killed during the compaction", b, heldWant)
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openB(t, dir, nil)
	check("reopened", s, want)
}

func retained(i int) *message.Message {
	return &message.Message{Topic: "r/" + strconv.Itoa(i), Payload: []byte(strconv.Itoa(i)), QoS: 1, Retain: true}
}

// applyWithin is Apply, failing if it does not return within d (a
// stalled Apply fails the test instead of hanging it).
func applyWithin(s *Broker, d time.Duration, cs ...store.Change) error {
	done := make(chan error, 1)
	go func() { done <- s.Apply(context.Background(), cs...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return context.DeadlineExceeded
	}
}

// TestApplyLazy: a lazy batch is written (Load and a copy of the
// directory, as kill -9 leaves it, have it) without an fsync of its own;
// the next durable batch's fsync covers it, and Close syncs it too.
func TestApplyLazy(t *testing.T) {
	dir := t.TempDir()
	s := openB(t, dir, nil)
	defer s.Close()
	ctx := context.Background()
	m := storetest.FullMessage(1)
	if err := s.Apply(ctx, store.Enqueue("c", store.Queued{Seq: 1, MsgID: 1, Msg: m, QoS: 1}),
		store.Enqueue("c", store.Queued{Seq: 2, MsgID: 2, Msg: m, QoS: 1})); err != nil {
		t.Fatal(err)
	}
	syncs := s.Syncs()
	if err := s.ApplyLazy(ctx, store.DequeueAll([]store.Target{{ClientID: "c", Seq: 1}})); err != nil {
		t.Fatal(err)
	}
	if got := s.Syncs(); got != syncs {
		t.Fatalf("a lazy batch took %d fsyncs", got-syncs)
	}
	if n := queued(t, s); n != 1 {
		t.Fatalf("%d queued after the lazy dequeue, want 1", n)
	}
	b := openB(t, copyNow(t, dir), nil)
	if n := queued(t, b); n != 1 {
		t.Fatalf("killed after the lazy dequeue: %d queued, want 1", n)
	}
	b.Close()
	if err := s.Apply(ctx, store.Retain("r", retained(1))); err != nil {
		t.Fatal(err)
	}
	if got := s.Syncs(); got != syncs+1 {
		t.Fatalf("the next durable batch took %d fsyncs, want 1", got-syncs)
	}
	if s.synced.Load() != s.Size() {
		t.Fatalf("synced up to %d of %d bytes after a durable batch", s.synced.Load(), s.Size())
	}
}

// copyNow copies dir as a process killed now leaves it.
func copyNow(t *testing.T, dir string) string {
	d := t.TempDir()
	storetest.CopyDir(t, dir, d)
	return d
}
