package disk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
)

// File names in a broker data directory.
const (
	BrokerLogName     = "broker.log"
	brokerCompactName = "broker.log.compact"
	brokerLockName    = "broker.lock"
)

// ErrLocked is wrapped by the error of OpenBroker and Open when another
// process, or another open store of this one, holds the directory.
var ErrLocked = errors.New("store/disk: directory locked")

// SyncMode says when a broker store's Apply returns.
type SyncMode uint8

const (
	// SyncAlways (the default): Apply returns once its batch is written
	// and fsynced, so an acknowledged message survives a power loss.
	// Concurrent batches share one write(2) and one fsync (group commit).
	SyncAlways SyncMode = iota
	// SyncNone: Apply returns once its batch is written with write(2),
	// before any fsync, so it survives the process being killed but not
	// a power loss or an OS crash (the kernel writes back within about 30
	// seconds on Linux). Like Mosquitto's acknowledging before it saves,
	// but without losing anything to kill -9.
	SyncNone
)

// BrokerOptions tunes a broker store. The zero value fsyncs every batch
// (shared between concurrent callers) and compacts as needed.
type BrokerOptions struct {
	Sync SyncMode
	// CommitWindow is how long the writer waits, with SyncAlways, for more
	// batches to join the one it is about to fsync: a longer window means
	// fewer fsyncs and a longer wait for each Apply. 0 (the default)
	// waits for nothing: batches that arrive while one is being written
	// make the next one, which already shares fsyncs under load. At most
	// 100ms.
	CommitWindow time.Duration
	// CompactBytes is how much the log may grow beyond twice its size at
	// the last compaction (or open) before it is rewritten with the live
	// state alone. 0 means DefaultCompactBytes (4 MiB).
	CompactBytes int64
	// Logger receives what the store reports of itself (a torn tail
	// dropped at open, a failed write, compactions). nil: slog.Default().
	Logger *slog.Logger
	// KeepState keeps a copy of the whole state in memory for as long as
	// the store is open, whatever its size, so that every Load reads no
	// file. Without it (the default), the copy that OpenBroker replays
	// the log into is handed to the first Load and then dropped once the
	// state is large (see Memory in the package doc): the broker, which
	// loads once and keeps its own maps, holds the only copy; a later
	// Load replays the log from disk. A client's session store (Open)
	// keeps it: it loads at every reconnection.
	KeepState bool
}

// Broker is the durable [store.Broker]: the broker's state in one
// append-only log, broker.log, in a directory, rewritten into a new log
// when the log has grown to about twice the live state. The state is
// kept in memory from the open to the first Load (messages shared with
// the broker, by pointer), and after it while it is small or with
// BrokerOptions.KeepState.
type Broker struct {
	dir, path string
	opts      BrokerOptions
	log       *slog.Logger
	lock      *os.File

	// mu guards what follows. Apply encodes its batch with no lock held,
	// queues it and waits; one waiter at a time is the writer, which
	// writes everything queued with one write(2) and one fsync with mu
	// released, then applies the batches it wrote to the index in log
	// order (a batch that failed to be written is not applied).
	mu      sync.Mutex
	cond    *sync.Cond
	closed  bool
	err     error // sticky: the log is in an unknown state
	pending []*bwaiter
	writing bool
	f       *os.File
	end     int64 // size of the log
	base    int64 // size of the log after the last compaction or at open
	saved   time.Time

	// index is the state of what is written, in log order. Unless
	// opts.KeepState, it is dropped once the first Load has handed it
	// over if the state is large (see small), or at a compaction once it
	// has grown large; nil from then on.
	index    *memory.Broker
	loaded   bool  // the first Load has returned the state
	smallMax int64 // cloneMax; tests lower it

	syncs       atomic.Int64 // fsyncs of batches that completed
	synced      atomic.Int64 // with SyncAlways: the size of the log known to be fsynced
	compactions atomic.Int64
	adoptions   atomic.Int64 // for tests: indexes rebuilt by adopt

	// Compaction runs in a goroutine of its own, beside the writes (see
	// compact.go); compacting is set while it does, done is closed when
	// it ends, and stopping (set by Close) makes it give up.
	compacting  bool
	stopping    bool
	compactDone chan struct{}
	// compactLimit: while a compaction runs, the log may grow up to this
	// size (CompactBytes beyond where it was when the compaction began);
	// beyond it, Apply waits for the compaction, so that a store written
	// faster than it can be compacted stays bounded.
	compactLimit int64
	compactErr   error              // the last compaction's
	compactHook  func(phase string) // for tests: called by the compaction at each phase
	writeHook    func([]byte) error // for tests: replaces the write
}

// bwaiter is one Apply call waiting for its batch to be written.
type bwaiter struct {
	rec     []byte
	changes []store.Change
	lazy    bool // ApplyLazy: needs no fsync of its own
	done    bool
	err     error
}

var _ store.LazyApplier = (*Broker)(nil)

// OpenBroker opens the broker store in dir, creating dir and an empty
// store if there is none. It replays broker.log into memory, drops a torn
// tail a crash left (reported to the logger) and locks dir against
// other processes until Close. A log that is damaged otherwise (a
// checksum that fails before the last record, a file that is not a
// Tern broker log, a newer format) is refused with an error naming the
// file and what to do.
func OpenBroker(dir string, opts BrokerOptions) (*Broker, error) {
	switch {
	case opts.CompactBytes < 0:
		return nil, fmt.Errorf("store/disk: BrokerOptions.CompactBytes is %d: set a positive number of bytes, or 0 for the default (%d)", opts.CompactBytes, DefaultCompactBytes)
	case opts.CommitWindow < 0 || opts.CommitWindow > 100*time.Millisecond:
		return nil, fmt.Errorf("store/disk: BrokerOptions.CommitWindow is %v: set it between 0 and 100ms", opts.CommitWindow)
	case opts.Sync > SyncNone:
		return nil, fmt.Errorf("store/disk: BrokerOptions.Sync is %d: use SyncAlways or SyncNone", opts.Sync)
	}
	if opts.CompactBytes == 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	b := &Broker{dir: dir, path: filepath.Join(dir, BrokerLogName), opts: opts, log: opts.Logger, index: memory.NewBroker(), smallMax: cloneMax}
	b.cond = sync.NewCond(&b.mu)
	if b.log == nil {
		b.log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store/disk: creating the data directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, brokerLockName))
	if err != nil {
		return nil, err
	}
	b.lock = lock
	if err := os.Remove(filepath.Join(dir, brokerCompactName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("store/disk: removing the leftover of an interrupted compaction: %w", err)
	}
	f, err := os.OpenFile(b.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store/disk: opening the broker log: %w", err)
	}
	b.f = f
	if err := b.replay(); err != nil {
		f.Close()
		lock.Close()
		return nil, err
	}
	b.base = b.end
	return b, nil
}

// replay reads broker.log into the index.
func (b *Broker) replay() error {
	st, err := b.f.Stat()
	if err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	size := st.Size()
	if size > headerSize {
		b.saved = st.ModTime()
	}
	off, torn, err := scanBrokerLog(b.f, size, b.path, func(cs []store.Change) error {
		return b.index.Apply(context.Background(), cs...)
	})
	if errors.Is(err, errEmptyLog) {
		return b.create()
	}
	if err != nil {
		return err
	}
	if torn != "" {
		b.log.Warn("store/disk: dropping the torn tail of the broker log, the last batch a crash cut short", "path", b.path, "offset", off, "bytes", size-off, "why", torn)
		if err := b.f.Truncate(off); err != nil {
			return fmt.Errorf("store/disk: cutting the torn tail off %s: %w", b.path, err)
		}
		if err := b.f.Sync(); err != nil {
			return fmt.Errorf("store/disk: %w", err)
		}
	}
	b.end = off
	return nil
}

// errEmptyLog: the log has no complete header (new, or its creation was
// interrupted): nothing was ever stored in it.
var errEmptyLog = errors.New("empty log")

// scanBrokerLog reads a broker log of size bytes: the header, then each
// batch, passed to apply, until the end or a torn tail (a last record cut
// short or failing its checksum), whose reason it returns with the offset
// where the whole records end. Damage before the last record, a foreign
// file or a newer format is an error naming path and what to do.
func scanBrokerLog(f io.ReaderAt, size int64, path string, apply func([]store.Change) error) (end int64, torn string, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	hdr := make([]byte, headerSize)
	n, _ := io.ReadFull(r, hdr)
	want := brokerHeader()
	switch {
	case n < headerSize && bytes.HasPrefix(want, hdr[:n]):
		return 0, "", errEmptyLog
	case !bytes.Equal(hdr[:len(brokerMagic)], want[:len(brokerMagic)]):
		return 0, "", fmt.Errorf("store/disk: %s is not a Tern broker log (it starts with %q): move it away, or give the broker another data directory", path, hdr[:min(n, len(brokerMagic))])
	case binary.LittleEndian.Uint32(hdr[8:]) != brokerVersion:
		return 0, "", fmt.Errorf("store/disk: %s has format version %d; this Tern reads version %d: run the Tern that wrote it, or move the file away to start afresh",
			path, binary.LittleEndian.Uint32(hdr[8:]), brokerVersion)
	}
	return scanRecords(r, headerSize, size, path, apply)
}

// scanRecords reads the records of a broker log from r, which is at
// offset off of a log of size bytes, as scanBrokerLog does.
func scanRecords(r io.Reader, off, size int64, path string, apply func([]store.Change) error) (end int64, torn string, err error) {
	var buf []byte
	d := decoder{msgs: map[uint64]*message.Message{}}
	var cs []store.Change
	for off < size {
		var h [recHeader]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return off, "a record header is cut short", nil
		}
		n := int64(binary.LittleEndian.Uint32(h[:]))
		if n == 0 || n > maxRecord || off+recHeader+n > size {
			return off, fmt.Sprintf("a record of %d bytes runs past the end", n), nil
		}
		rec := growTo(&buf, recHeader+int(n))
		copy(rec, h[:])
		if _, err := io.ReadFull(r, rec[recHeader:]); err != nil {
			return off, "", fmt.Errorf("store/disk: reading %s: %w", path, err)
		}
		typ, body, ok := checkRecord(rec)
		if !ok {
			if off+int64(len(rec)) < size {
				// Not the last record: not a torn write but damage.
				return off, "", fmt.Errorf("store/disk: %s: the record at offset %d fails its checksum and %d bytes follow it: the file is damaged; run `tern store check` for details, restore a backup, or move the file away to start afresh",
					path, off, size-off-int64(len(rec)))
			}
			return off, "the last record fails its checksum", nil
		}
		if typ != recBatch {
			return off, "", fmt.Errorf("store/disk: %s, record at offset %d: %w: unknown type %d: the file is damaged or from a newer Tern; move it away to start afresh", path, off, errMalformed, typ)
		}
		d.b, d.err = body, nil
		cs = cs[:0]
		var c store.Change
		for d.next(&c) {
			cs = append(cs, c)
		}
		if d.err != nil {
			return off, "", fmt.Errorf("store/disk: %s, record at offset %d: %w: the file is damaged or was written by another program; move it away to start afresh", path, off, d.err)
		}
		if err := apply(cs); err != nil {
			return off, "", err
		}
		off += int64(len(rec))
	}
	return off, "", nil
}

func (b *Broker) create() error {
	if err := b.f.Truncate(0); err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	if _, err := b.f.Write(brokerHeader()); err != nil {
		return fmt.Errorf("store/disk: writing %s: %w", b.path, err)
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	if err := syncDir(b.dir); err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	b.end = headerSize
	return nil
}

// Load implements [store.Broker]. The first Load returns the state
// OpenBroker replayed and, unless BrokerOptions.KeepState, drops the
// store's copy of it if the state is large (see small); a Load without
// that copy replays the log from disk (with the writes going on: it
// sees every Apply that returned before it was called), which costs
// about what an open does.
func (b *Broker) Load(ctx context.Context) (*store.BrokerState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	locked := true
	defer func() {
		if locked {
			b.mu.Unlock()
		}
	}()
	if b.closed {
		return nil, store.ErrClosed
	}
	// Changes queued and not yet written are not in the log: wait for
	// them, so that Load sees every Apply that returned. With no writer,
	// the log is whole records up to b.end, and b.path is b.f (the
	// compaction renames its new log over it as the writer).
	for b.writing || len(b.pending) > 0 {
		if b.err != nil {
			return nil, b.err
		}
		if !b.writing {
			b.writeBatch()
			continue
		}
		b.cond.Wait()
	}
	if b.err != nil { // what is written is unknown: as every Apply, refuse
		return nil, b.err
	}
	if b.index != nil {
		st, err := b.index.Load(ctx)
		if err != nil {
			return nil, err
		}
		st.Saved = b.saved
		b.loaded = true
		b.dropLargeIndex()
		return st, nil
	}
	// Read the log through a descriptor of its own, which a compaction
	// that replaces the log (or Close) leaves open; bytes up to end are
	// never rewritten.
	f, err := os.Open(b.path)
	end, saved := b.end, b.saved
	b.mu.Unlock()
	locked = false
	if err != nil {
		return nil, fmt.Errorf("store/disk: reading the broker log: %w", err)
	}
	defer f.Close()
	st, err := replayTo(ctx, f, end, b.path)
	if err != nil {
		return nil, err
	}
	st.Saved = saved
	return st, nil
}

var encPool = sync.Pool{New: func() any { return new(encoder) }}

// Apply implements [store.Broker]: it returns once the batch is written
// (and with SyncAlways fsynced). A batch the disk has no room for
// returns an error wrapping store.ErrFull and is not kept; the store
// takes later batches once there is room again.
func (b *Broker) Apply(ctx context.Context, changes ...store.Change) error {
	return b.apply(false, changes)
}

// ApplyLazy implements [store.LazyApplier]: it returns once the batch is
// written with write(2), which survives the process being killed; with
// SyncAlways it is fsynced with the next batch that needs it (or at
// Close), and a batch of lazy changes alone costs no fsync.
func (b *Broker) ApplyLazy(ctx context.Context, changes ...store.Change) error {
	return b.apply(true, changes)
}

func (b *Broker) apply(lazy bool, changes []store.Change) error {
	if len(changes) == 0 {
		return nil
	}
	e := encPool.Get().(*encoder)
	e.begin()
	for i := range changes {
		if err := e.change(&changes[i]); err != nil {
			encPool.Put(e)
			return err
		}
	}
	rec, err := e.end()
	if err != nil {
		encPool.Put(e)
		return err
	}
	w := &bwaiter{rec: rec, changes: changes, lazy: lazy}
	b.mu.Lock()
	if b.closed || b.err != nil {
		err := b.err
		if b.closed {
			err = store.ErrClosed
		}
		b.mu.Unlock()
		encPool.Put(e)
		return err
	}
	b.pending = append(b.pending, w)
	for !w.done {
		if b.writing || b.compacting && b.end >= b.compactLimit {
			b.cond.Wait()
			continue
		}
		b.writeBatch()
	}
	b.mu.Unlock()
	w.rec = nil
	if cap(e.buf) <= 1<<20 {
		encPool.Put(e)
	}
	return w.err
}

// writeBatch writes everything pending with one write and one fsync; mu
// is held, released while writing. This goroutine is the writer.
func (b *Broker) writeBatch() {
	b.writing = true
	if b.opts.Sync == SyncAlways && b.opts.CommitWindow > 0 {
		b.mu.Unlock()
		time.Sleep(b.opts.CommitWindow)
		b.mu.Lock()
	}
	batch := b.pending
	b.pending = nil
	if b.err != nil || len(batch) == 0 {
		b.finish(batch, b.err)
		return
	}
	size, sync := 0, false
	for _, w := range batch {
		size += len(w.rec)
		sync = sync || !w.lazy
	}
	buf := batch[0].rec // alone (mostly, unless under load): no copy
	if len(batch) > 1 {
		buf = make([]byte, 0, size)
		for _, w := range batch {
			buf = append(buf, w.rec...)
		}
	}
	from := b.end
	b.mu.Unlock()
	err := b.write(buf, sync)
	b.mu.Lock()
	if err != nil {
		err = b.writeFailed(from, err)
		b.finish(batch, err)
		return
	}
	b.end += int64(len(buf))
	if b.opts.Sync == SyncAlways && sync {
		b.synced.Store(b.end)
	}
	b.saved = time.Now()
	if b.index != nil {
		for _, w := range batch {
			b.index.Apply(context.Background(), w.changes...)
		}
	}
	b.finish(batch, nil)
	b.maybeCompact()
}

// finish completes the waiters of batch and hands the writer's role on.
func (b *Broker) finish(batch []*bwaiter, err error) {
	for _, w := range batch {
		w.done, w.err = true, err
	}
	b.writing = false
	b.cond.Broadcast()
}

// write writes buf and, with SyncAlways and sync set, fsyncs the log.
func (b *Broker) write(buf []byte, sync bool) error {
	if b.writeHook != nil {
		if err := b.writeHook(buf); err != nil {
			return err
		}
	} else if _, err := b.f.Write(buf); err != nil {
		return err
	}
	if b.opts.Sync == SyncAlways && sync {
		if err := b.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: nothing written since the last good one is known to
			// be on disk. Take no more changes.
			return &syncError{err}
		}
		b.syncs.Add(1)
	}
	return nil
}

type syncError struct{ err error }

func (e *syncError) Error() string { return "fsync: " + e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// writeFailed handles a failed write of a batch that started at offset
// from; mu is held. A disk that is full (or a quota reached) is not
// fatal: the partial write is cut off and the batch refused with
// store.ErrFull, and later batches are tried. Anything else makes the
// store refuse every change until it is reopened.
func (b *Broker) writeFailed(from int64, err error) error {
	var se *syncError
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if full && !errors.As(err, &se) {
		if terr := b.f.Truncate(from); terr == nil {
			b.log.Warn("store/disk: the disk is full: refusing changes until there is room", "path", b.path, "err", err)
			return fmt.Errorf("%w: writing %s: %v: free some space on its file system", store.ErrFull, b.path, err)
		}
	}
	if b.err == nil {
		b.err = fmt.Errorf("store/disk: writing %s failed, so the store takes no more changes until it is reopened: %w", b.path, err)
		b.log.Error("store/disk: broker log write failed", "path", b.path, "err", err)
	}
	return b.err
}

// Close implements [store.Broker]: it stops a compaction that runs (the
// log stays as it is), writes what is pending, fsyncs the log (whatever
// the SyncMode), closes it and unlocks the directory.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return store.ErrClosed
	}
	b.stopping = true
	for b.compacting {
		done := b.compactDone
		b.mu.Unlock()
		<-done
		b.mu.Lock()
	}
	if b.closed { // a concurrent Close did it meanwhile
		b.mu.Unlock()
		return store.ErrClosed
	}
	for b.writing || len(b.pending) > 0 {
		if !b.writing {
			b.writeBatch()
			continue
		}
		b.cond.Wait()
	}
	if b.closed { // a concurrent Close did it meanwhile
		b.mu.Unlock()
		return store.ErrClosed
	}
	b.closed = true
	err := b.err
	if serr := b.f.Sync(); err == nil {
		err = serr
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	if lerr := b.lock.Close(); err == nil {
		err = lerr
	}
	b.mu.Unlock()
	return err
}

// Size returns the size of the log in bytes.
func (b *Broker) Size() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.end
}

// Syncs returns the number of fsyncs of batches completed since the
// store was opened (0 with SyncNone): with concurrent callers or a
// CommitWindow, fewer than the Apply calls.
func (b *Broker) Syncs() int64 { return b.syncs.Load() }
