package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/storetest"
)

func TestBrokerConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		opts BrokerOptions
		drop bool // the state counts as large: dropped at the first Load, replayed by later ones
	}{
		{"sync", BrokerOptions{}, false},
		{"none", BrokerOptions{Sync: SyncNone}, false},
		{"compacting", BrokerOptions{Sync: SyncNone, CompactBytes: 4096}, false},
		{"keepstate", BrokerOptions{Sync: SyncNone, CompactBytes: 4096, KeepState: true}, false},
		{"dropped", BrokerOptions{CompactBytes: 4096}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.RunBroker(t, storetest.BrokerConfig{
				Open: func(t testing.TB, dir string) (store.Broker, error) {
					o := c.opts
					o.Logger = testLogger(t, nil)
					b, err := OpenBroker(dir, o)
					if err == nil && c.drop {
						b.smallMax = 0
					}
					return b, err
				},
				Durable: true, CrashSafe: true,
			})
		})
	}
}

func openB(t *testing.T, dir string, buf *syncBuffer) *Broker {
	t.Helper()
	b, err := OpenBroker(dir, BrokerOptions{Logger: testLogger(t, buf)})
	if err != nil {
		t.Fatalf("OpenBroker: %v", err)
	}
	return b
}

func applyN(t *testing.T, b *Broker, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		m := storetest.FullMessage(uint64(i))
		if err := b.Apply(context.Background(), store.Enqueue("c", store.Queued{Seq: uint64(i), MsgID: uint64(i), Msg: m, QoS: 1})); err != nil {
			t.Fatal(err)
		}
	}
}

func queued(t *testing.T, b *Broker) int {
	t.Helper()
	st, err := b.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) == 0 {
		return 0
	}
	return len(st.Sessions[0].Queue)
}

// TestBrokerTornTail: a log cut inside its last record opens with every
// batch before it, says so in the log, and appends after them.
func TestBrokerTornTail(t *testing.T) {
	dir := t.TempDir()
	b := openB(t, dir, nil)
	applyN(t, b, 1, 11)
	size := b.Size()
	applyN(t, b, 11, 12)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, BrokerLogName)
	if err := os.Truncate(path, size+20); err != nil {
		t.Fatal(err)
	}
	var logged syncBuffer
	b = openB(t, dir, &logged)
	defer b.Close()
	if n := queued(t, b); n != 10 {
		t.Fatalf("%d queued after the torn tail, want 10", n)
	}
	if !strings.Contains(logged.String(), "torn tail") || !strings.Contains(logged.String(), path) {
		t.Errorf("the torn tail was not reported with the file name: %q", logged.String())
	}
	applyN(t, b, 11, 13)
	b.Close()
	b = openB(t, dir, nil)
	defer b.Close()
	if n := queued(t, b); n != 12 {
		t.Fatalf("%d queued after appending to a recovered log, want 12", n)
	}
}

// TestBrokerCorrupt: damage that is not a torn tail is refused with an
// error that names the file and says what to do.
func TestBrokerCorrupt(t *testing.T) {
	for _, c := range []struct {
		name string
		harm func(path string) error
		want string
	}{
		{"flipped byte mid-file", func(p string) error { return overwriteAt(p, 100, 0xff) }, "fails its checksum"},
		{"not a log", func(p string) error { return os.WriteFile(p, []byte("hello, this is not a Tern log at all"), 0o600) }, "is not a Tern broker log"},
		{"newer version", func(p string) error { return overwriteAt(p, 8, 9) }, "format version 9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			b := openB(t, dir, nil)
			applyN(t, b, 1, 20)
			b.Close()
			path := filepath.Join(dir, BrokerLogName)
			if err := c.harm(path); err != nil {
				t.Fatal(err)
			}
			_, err := OpenBroker(dir, BrokerOptions{Logger: testLogger(t, nil)})
			if err == nil {
				t.Fatal("a damaged log opened")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not say %q and name %s", err, c.want, path)
			}
			t.Log(err)
		})
	}
}

func overwriteAt(path string, off int64, v byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt([]byte{v}, off)
	return err
}

// TestBrokerDiskFull: a batch the disk has no room for is refused with
// ErrFull and not kept; the store takes batches again once there is room.
func TestBrokerDiskFull(t *testing.T) {
	dir := t.TempDir()
	b := openB(t, dir, nil)
	applyN(t, b, 1, 3)
	full := true
	b.writeHook = func(p []byte) error {
		if full {
			b.f.Write(p[:len(p)/2]) // a partial write, as ENOSPC leaves it
			return &os.PathError{Op: "write", Path: b.path, Err: syscall.ENOSPC}
		}
		_, err := b.f.Write(p)
		return err
	}
	err := b.Apply(context.Background(), store.Enqueue("c", store.Queued{Seq: 3, MsgID: 3, Msg: storetest.FullMessage(3), QoS: 1}))
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("Apply on a full disk: %v, want ErrFull", err)
	}
	t.Log(err)
	full = false
	applyN(t, b, 4, 6)
	if n := queued(t, b); n != 4 {
		t.Fatalf("%d queued, want 4 (1, 2, 4, 5)", n)
	}
	b.Close()
	b = openB(t, dir, nil)
	defer b.Close()
	if n := queued(t, b); n != 4 {
		t.Fatalf("%d queued after reopening, want 4", n)
	}
}

// TestBrokerLocked: a second open of the same directory is refused.
func TestBrokerLocked(t *testing.T) {
	dir := t.TempDir()
	b := openB(t, dir, nil)
	defer b.Close()
	if _, err := OpenBroker(dir, BrokerOptions{}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second OpenBroker: %v, want an error naming %s", err, dir)
	}
}

// TestBrokerDiskFullTmpfs fills a real (small tmpfs) file system: Apply
// returns ErrFull, nothing half-written stays, and once space is freed
// the store takes changes again and reopens with every kept batch. It
// needs the right to mount (root in a container); it skips otherwise.
func TestBrokerDiskFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 256<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "data")
	b, err := OpenBroker(dir, BrokerOptions{Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	var full error
	for i := 1; i < 10000; i++ {
		err := b.Apply(context.Background(), store.Enqueue("c", store.Queued{Seq: uint64(i), MsgID: uint64(i), Msg: storetest.FullMessage(uint64(i)), QoS: 1}))
		if err != nil {
			full = err
			break
		}
		kept++
	}
	if !errors.Is(full, store.ErrFull) {
		t.Fatalf("after %d batches: %v, want ErrFull", kept, full)
	}
	t.Logf("after %d batches: %v", kept, full)
	if n := queued(t, b); n != kept {
		t.Fatalf("%d queued, want the %d kept", n, kept)
	}
	os.Remove(filler)
	applyN(t, b, 20000, 20010)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openB(t, dir, nil)
	defer b.Close()
	if n := queued(t, b); n != kept+10 {
		t.Fatalf("%d queued after reopening, want %d", n, kept+10)
	}
}

// TestBrokerCommitWindow: with SyncAlways, a CommitWindow above 0 makes
// the writer wait for more batches before it writes and fsyncs, so the
// same concurrent load takes fewer fsyncs than with no window; and with
// or without a window, Apply returns only once its own record is in the
// part of the log that is fsynced (what the broker acknowledges is on
// disk). The load is bounded in count; nothing is timed.
func TestBrokerCommitWindow(t *testing.T) {
	const writers, each = 8, 25
	fsyncs := map[time.Duration]int64{}
	for _, window := range []time.Duration{0, 20 * time.Millisecond} {
		dir := t.TempDir()
		b, err := OpenBroker(dir, BrokerOptions{CommitWindow: window, Logger: testLogger(t, nil)})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					id := fmt.Sprintf("w%d-m%d", w, i)
					m := storetest.FullMessage(uint64(w*each + i + 1))
					m.Payload = []byte("payload-" + id + ";")
					q := store.Queued{Seq: uint64(w*each + i + 1), MsgID: uint64(w*each + i + 1), Msg: m, QoS: 1}
					if err := b.Apply(context.Background(), store.Enqueue("c"+strconv.Itoa(w), q)); err != nil {
						errs <- err
						return
					}
					// Acknowledged: the record must be in the fsynced prefix.
					synced := b.synced.Load()
					data, err := os.ReadFile(filepath.Join(dir, BrokerLogName))
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Contains(data[:min(int64(len(data)), synced)], m.Payload) {
						errs <- fmt.Errorf("window %v: Apply of %s returned before its record was fsynced (fsynced prefix %d bytes of %d)", window, id, synced, len(data))
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		fsyncs[window] = b.syncs.Load()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		// Everything is there after a reopen.
		b2, err := OpenBroker(dir, BrokerOptions{Logger: testLogger(t, nil)})
		if err != nil {
			t.Fatal(err)
		}
		st, err := b2.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range st.Sessions {
			n += len(s.Queue)
		}
		if n != writers*each {
			t.Errorf("window %v: %d messages after reopen, want %d", window, n, writers*each)
		}
		b2.Close()
		t.Logf("commit window %v: %d Apply calls from %d goroutines took %d fsyncs", window, writers*each, writers, fsyncs[window])
	}
	if fsyncs[20*time.Millisecond] >= fsyncs[0] {
		t.Errorf("a 20ms commit window took %d fsyncs, no window %d: the window does not batch", fsyncs[20*time.Millisecond], fsyncs[0])
	}
}
