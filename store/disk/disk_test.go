package disk

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/storetest"
)

// TestMain fails the package if any test leaves a goroutine behind; it
// also runs the child process of TestKill9.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(killChild())
	}
	goleak.VerifyTestMain(m)
}

// testLogger sends the store's log to the test's, and to buf if not nil.
func testLogger(t testing.TB, buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t, buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct {
	t   testing.TB
	buf *syncBuffer
}

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	if w.buf != nil {
		w.buf.Write(p)
	}
	return len(p), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"sync", Options{Sync: true}},
		// Compaction after every few hundred bytes of dead records: the
		// suite then runs across many compactions.
		{"compacting", Options{CompactBytes: 512}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, storetest.Config{
				Open: func(t testing.TB, dir string) (store.Session, error) {
					o := c.opts
					o.Logger = testLogger(t, nil)
					return Open(dir, o)
				},
				Durable: true, CrashSafe: true, AppendOnly: true,
			})
		})
	}
}

func open(t testing.TB, dir string, opts Options) *Session {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t, nil)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func msg(n uint64) *message.Message {
	return &message.Message{Topic: fmt.Sprintf("t/%d", n), Payload: bytes.Repeat([]byte{byte(n)}, 64), QoS: 1}
}

// A directory is one session: a second Open, from this process or
// another (TestKill9 tries that too), is refused until the first closes.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "open elsewhere") {
		t.Fatalf("second Open of a directory in use: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir, Options{}) // free again
}

// Concurrent callers share one fsync: while the first caller's write
// is held up, seven more queue their changes; all seven go out with the
// next single write and fsync of the broker log.
func TestGroupCommit(t *testing.T) {
	s := open(t, t.TempDir(), Options{Sync: true})
	b := s.Broker()
	const callers = 8
	first := true
	b.writeHook = func(p []byte) error { // runs in the writer, mu free
		if first {
			first = false
			waitFor(t, "the other callers to queue their changes", func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return len(b.pending) == callers-1
			})
		}
		_, err := b.f.Write(p)
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	add := func(n uint64) {
		defer wg.Done()
		errs <- s.AddOutgoing(store.Outgoing{Seq: n, Msg: msg(n)})
	}
	wg.Add(1)
	go add(1)
	waitFor(t, "the first caller to lead", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.writing
	})
	for n := uint64(2); n <= callers; n++ {
		wg.Add(1)
		go add(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Syncs(); got != 2 {
		t.Fatalf("%d callers took %d fsyncs, want 2 (one for the first, one for the seven behind it)", callers, got)
	}
	out, err := s.Outgoing()
	if err != nil || len(out) != callers {
		t.Fatalf("Outgoing: %d messages, %v", len(out), err)
	}
}

// waitFor polls cond until it holds, failing t after a generous minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			panic("timed out waiting for " + what) // t.Fatal cannot stop other goroutines
		}
	}
}

// The log stays bounded by compaction however many messages pass
// through, and compaction keeps exactly the live state.
func TestCompactionBoundsTheLog(t *testing.T) {
	dir := t.TempDir()
	const compactAt = 64 << 10
	s := open(t, dir, Options{CompactBytes: compactAt})
	path := filepath.Join(dir, BrokerLogName)
	maxSize := int64(0)
	for n := uint64(1); n <= 20000; n++ {
		if err := s.AddOutgoing(store.Outgoing{Seq: n, Msg: msg(n)}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSent(n, uint16(n)); err != nil {
			t.Fatal(err)
		}
		if n%100 != 0 { // one message in a hundred stays, never acknowledged
			if err := s.DeleteOutgoing(n); err != nil {
				t.Fatal(err)
			}
		}
		if n%1000 == 0 {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			maxSize = max(maxSize, st.Size())
		}
	}
	if c := s.Broker().compactions.Load(); c < 5 {
		t.Fatalf("%d compactions for ~3 MB of changes with CompactBytes %d", c, compactAt)
	}
	_, live, err := s.Broker().Compact()
	if err != nil {
		t.Fatal(err)
	}
	// 200 live messages: the log never grows much past twice the live
	// state plus four times CompactBytes (one of them written while a
	// compaction runs, copied into the new log).
	if limit := 2*live + 4*compactAt + 4096; maxSize > limit {
		t.Fatalf("the log grew to %d bytes; with %d live it should stay under %d", maxSize, live, limit)
	}
	out, err := s.Outgoing()
	if err != nil || len(out) != 200 || out[0].Seq != 100 || out[0].PacketID != 100 || out[199].Seq != 20000 {
		t.Fatalf("after compactions: %d messages (%v)", len(out), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	again, err := s.Outgoing()
	if err != nil || len(again) != 200 || again[5].Seq != 600 || again[5].PacketID != 600 {
		t.Fatalf("after reopening: %d messages (%v)", len(again), err)
	}
}

// A crash during compaction leaves its new log unfinished beside the
// old one, which is complete: Open removes the leftover.
func TestCompactionLeftover(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	if err := s.AddOutgoing(store.Outgoing{Seq: 1, Msg: msg(1)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	leftover := filepath.Join(dir, brokerCompactName)
	if err := os.WriteFile(leftover, append(brokerHeader(), 1, 2, 3), 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if out, err := s.Outgoing(); err != nil || len(out) != 1 {
		t.Fatalf("Outgoing: %v %v", out, err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("the leftover of a compaction is still there: %v", err)
	}
}

func TestTornTailIsReported(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for n := uint64(1); n <= 3; n++ {
		if err := s.AddOutgoing(store.Outgoing{Seq: n, Msg: msg(n)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, BrokerLogName)
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-10); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	s = open(t, dir, Options{Logger: testLogger(t, &logs)})
	if out, _ := s.Outgoing(); len(out) != 2 {
		t.Fatalf("%d messages after tearing the third, want 2", len(out))
	}
	if l := logs.String(); !strings.Contains(l, "torn tail") || !strings.Contains(l, "path="+path) || !strings.Contains(l, "bytes=") {
		t.Fatalf("the torn tail was not reported with its file and size: %q", l)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{CompactBytes: -1}); err == nil || !strings.Contains(err.Error(), "Options.CompactBytes") {
		t.Errorf("negative CompactBytes: %v", err)
	}
	// A directory of the earlier session format is refused, by name,
	// rather than opened as an empty session beside it.
	dir := t.TempDir()
	old := filepath.Join(dir, "session.log")
	os.WriteFile(old, []byte("TERNSESS\x01\x00\x00\x00\x00\x00\x00\x00"), 0o600)
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), old) || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("a session.log of the earlier format: %v", err)
	} else {
		t.Log(err)
	}
	// The damage the broker log refuses is refused here too (the cases
	// are TestBrokerCorrupt's): one code path for both ends.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, BrokerLogName), []byte("SQLite format 3\x00 and more"), 0o600)
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "not a Tern broker log") {
		t.Errorf("a foreign file: %v", err)
	}
	// A log whose creation a crash interrupted holds nothing yet.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, BrokerLogName), []byte(brokerMagic[:3]), 0o600)
	s := open(t, dir, Options{})
	if out, err := s.Outgoing(); err != nil || len(out) != 0 {
		t.Errorf("a log cut inside its header: %v %v", out, err)
	}
}

// Once the log cannot be written, every change fails with that error
// (nothing is acknowledged that is not kept), and a reopened session has
// what was written before; a full disk refuses the change with
// store.ErrFull and takes changes again once there is room.
func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	b := s.Broker()
	if err := s.AddOutgoing(store.Outgoing{Seq: 1, Msg: msg(1)}); err != nil {
		t.Fatal(err)
	}
	b.writeHook = func([]byte) error { return &os.PathError{Op: "write", Path: b.path, Err: syscall.ENOSPC} }
	if err := s.AddOutgoing(store.Outgoing{Seq: 2, Msg: msg(2)}); !errors.Is(err, store.ErrFull) {
		t.Fatalf("AddOutgoing on a full disk: %v, want ErrFull", err)
	}
	b.writeHook = nil
	if err := s.AddOutgoing(store.Outgoing{Seq: 2, Msg: msg(2)}); err != nil {
		t.Fatalf("AddOutgoing of the refused Seq once there is room: %v", err)
	}
	b.writeHook = func([]byte) error { return errors.New("an I/O error") }
	err := s.AddOutgoing(store.Outgoing{Seq: 3, Msg: msg(3)})
	if err == nil || !strings.Contains(err.Error(), "no more changes") {
		t.Fatalf("AddOutgoing with a failing log: %v", err)
	}
	for name, call := range map[string]func() error{
		"AddIncoming": func() error { return s.AddIncoming(1) },
		"MarkSent":    func() error { return s.MarkSent(1, 1) },
		"Outgoing":    func() error { _, err := s.Outgoing(); return err },
		"Clear":       s.Clear,
	} {
		if e := call(); e == nil || e.Error() != err.Error() {
			t.Errorf("%s after the failure: %v, want %v", name, e, err)
		}
	}
	s.Close()
	s = open(t, dir, Options{})
	if out, err := s.Outgoing(); err != nil || len(out) != 2 || out[0].Seq != 1 || out[1].Seq != 2 {
		t.Fatalf("reopened: %v %v", out, err)
	}
}
