package disk

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ternmq/tern/store"
)

// File names in a session directory.
const (
	logName     = "session.log"
	compactName = "session.log.compact" // compaction's new log until it is renamed over logName
	lockName    = "LOCK"
)

// DefaultCompactBytes is the default of Options.CompactBytes.
const DefaultCompactBytes = 4 << 20

// Options tunes a session store. The zero value keeps every change
// through a kill -9 of the process, not through a power loss.
type Options struct {
	// Sync makes every call return only once its change is on stable
	// storage (fsync), so that it survives a power loss or an OS crash.
	// Concurrent calls share one fsync (group commit).
	Sync bool
	// CompactBytes is how many bytes of the log may be dead (changes
	// that later ones made moot) before the log is rewritten with the
	// live state alone; it is rewritten only once the dead bytes are
	// also as many as the live ones. 0 means DefaultCompactBytes.
	CompactBytes int64
	// Logger receives what the store reports of itself (a torn tail
	// dropped at open, a failed write or compaction), with key=value
	// attributes. It may be called while the session is locked, so its
	// handler must not call the session. nil means slog.Default().
	Logger *slog.Logger
}

// Session is one session stored in a directory. It is safe for
// concurrent use.
type Session struct {
	dir, path string
	opts      Options
	log       *slog.Logger
	lock      *os.File // held open: the lock is released when it is closed

	// mu guards the index and the records not yet written. Every change
	// is applied to the index and appended to pending under mu, so the
	// order of the log is the order of the changes.
	mu      sync.Mutex
	closed  bool
	err     error // sticky: the log could not be written
	out     map[uint64]entry
	in      map[uint16]struct{}
	pending []byte   // records not yet written, in order
	queued  uint64   // records queued since Open; record n is the n-th
	end     int64    // size of the log once pending is written
	live    int64    // size of the log if it were compacted now
	retryAt int64    // after a failed compaction: try again once end reaches this
	small   [32]byte // room for encoding one small record

	// Group commit. One goroutine at a time is the writer (writing is
	// set): it takes everything pending, writes it with one write(2) and,
	// with Sync, one fsync, with mu released meanwhile so that other
	// changes queue up for the next batch. Callers wait on cond until
	// written covers their record; when the writer is done it wakes them
	// all, and one whose record is still pending becomes the next writer.
	// f, spare and written change only in the writer's hands (written
	// under mu as well); readers pins f against compaction.
	cond    *sync.Cond
	writing bool
	readers int      // Outgoing calls reading f
	f       *os.File // the log, opened for appending
	written uint64   // records written (and with Sync synced)
	spare   []byte   // the buffer pending is swapped with

	syncs       atomic.Int64 // fsyncs of the log, for tests
	compactions atomic.Int64 // for tests
	beforeSync  func()       // for tests: called by the writer before each fsync
}

// entry is what the index keeps of a message in memory: where its add
// record is and the state that later records changed. The message itself
// stays on disk until Outgoing reads it back.
type entry struct {
	off      int64  // offset of the add record in the log
	size     uint32 // size of the add record, header included
	id       uint16 // packet identifier
	released bool
}

var _ store.Session = (*Session)(nil)

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// Open opens the session stored in dir, creating dir and an empty
// session if there is none. It replays the log into an index in memory,
// drops a torn tail a crash left (reported to Options.Logger) and locks
// dir against other processes until Close.
func Open(dir string, opts Options) (*Session, error) {
	if opts.CompactBytes < 0 {
		return nil, fmt.Errorf("store/disk: Options.CompactBytes is %d: set a positive number of bytes, or 0 for the default (%d)", opts.CompactBytes, DefaultCompactBytes)
	}
	if opts.CompactBytes == 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	s := &Session{dir: dir, path: filepath.Join(dir, logName), opts: opts, log: opts.Logger}
	s.cond = sync.NewCond(&s.mu)
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store/disk: creating the session directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// change applies a change under mu and returns once it is written: f
// checks it against the index, updates the index and appends its
// record (or nothing, when the change is moot).
func (s *Session) change(f func() error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if err := f(); err != nil {
		s.mu.Unlock()
		return err
	}
	// Wait for the last record queued, ours or, if the change was moot,
	// whichever made it so.
	err := s.wait(s.queued)
	s.mu.Unlock()
	return err
}

// queue appends a record to pending; mu is held.
func (s *Session) queue(rec []byte) {
	s.pending = append(s.pending, rec...)
	s.queued++
	s.end += int64(len(rec))
}

// wait returns once record ticket is written (and synced); mu is held.
// If no one is writing, this goroutine becomes the writer: it writes
// everything pending, its own record and those queued before and
// behind it, with one write(2) and one fsync. While it does, callers
// that come later queue their records and wait; the next writer takes
// them all at once. This is group commit: n concurrent callers share
// about two fsyncs, not n.
func (s *Session) wait(ticket uint64) error {
	for s.written < ticket {
		if s.err != nil {
			return s.err
		}
		if s.writing {
			s.cond.Wait()
			continue
		}
		s.writing = true
		err := s.flush()
		if err == nil {
			s.maybeCompact()
		}
		s.writing = false
		s.cond.Broadcast()
	}
	return nil
}

// flush writes everything pending; mu is held and this goroutine is the
// writer. mu is released during the write, so that other goroutines
// queue their records meanwhile: they make the next batch.
func (s *Session) flush() error { return s.flushMu(true) }

// flushMu is flush, releasing mu during the write if release is set.
func (s *Session) flushMu(release bool) error {
	if s.err != nil {
		return s.err
	}
	if s.queued == s.written {
		return nil
	}
	batch, upto := s.pending, s.queued
	s.pending, s.spare = s.spare[:0], nil
	if release {
		s.mu.Unlock()
	}
	err := s.writeBatch(batch)
	if release {
		s.mu.Lock()
	}
	if err != nil {
		return s.fail(err)
	}
	s.written = upto
	if cap(batch) <= 1<<20 { // do not keep a large buffer for small batches
		s.spare = batch[:0]
	}
	return nil
}

// fail makes err sticky; mu is held.
func (s *Session) fail(err error) error {
	if s.err == nil {
		s.err = fmt.Errorf("store/disk: writing %s failed, so the session takes no more changes until it is reopened: %w", s.path, err)
		s.log.Error("store/disk: log write failed", "dir", s.dir, "err", err)
	}
	return s.err
}

// writeBatch writes b to the log with one write(2) and, with Sync,
// fsyncs it; this goroutine is the writer.
func (s *Session) writeBatch(b []byte) error {
	if len(b) > 0 {
		if _, err := s.f.Write(b); err != nil {
			return err
		}
	}
	if s.opts.Sync {
		if s.beforeSync != nil {
			s.beforeSync()
		}
		s.syncs.Add(1)
		return s.f.Sync()
	}
	return nil
}

// AddOutgoing implements [store.Session]. The message is encoded before
// the session is locked, so concurrent publishers encode in parallel.
func (s *Session) AddOutgoing(o store.Outgoing) error {
	bp := bufPool.Get().(*[]byte)
	rec, err := appendAdd((*bp)[:0], o)
	defer func() {
		if cap(rec) <= 64<<10 {
			*bp = rec[:0]
			bufPool.Put(bp)
		}
	}()
	if err != nil {
		return err
	}
	return s.change(func() error {
		if _, ok := s.out[o.Seq]; ok {
			return store.ErrExists
		}
		s.out[o.Seq] = entry{off: s.end, size: uint32(len(rec)), id: o.PacketID, released: o.Released}
		s.live += int64(len(rec))
		s.queue(rec)
		return nil
	})
}

// MarkSent implements [store.Session].
func (s *Session) MarkSent(seq uint64, id uint16) error {
	return s.change(func() error {
		e, ok := s.out[seq]
		if !ok {
			return store.ErrNotFound
		}
		if e.id != id {
			e.id = id
			s.out[seq] = e
			s.queue(appendSeqRecord(s.scratch(), recSent, seq, id, true))
		}
		return nil
	})
}

// MarkReleased implements [store.Session].
func (s *Session) MarkReleased(seq uint64) error {
	return s.change(func() error {
		e, ok := s.out[seq]
		if !ok {
			return store.ErrNotFound
		}
		if !e.released {
			e.released = true
			s.out[seq] = e
			s.queue(appendSeqRecord(s.scratch(), recReleased, seq, 0, false))
		}
		return nil
	})
}

// DeleteOutgoing implements [store.Session].
func (s *Session) DeleteOutgoing(seq uint64) error {
	return s.change(func() error {
		if e, ok := s.out[seq]; ok {
			delete(s.out, seq)
			s.live -= int64(e.size)
			s.queue(appendSeqRecord(s.scratch(), recDelete, seq, 0, false))
		}
		return nil
	})
}

// AddIncoming implements [store.Session].
func (s *Session) AddIncoming(id uint16) error {
	return s.change(func() error {
		if _, ok := s.in[id]; !ok {
			s.in[id] = struct{}{}
			s.live += inRecSize
			s.queue(appendIDRecord(s.scratch(), recAddIn, id))
		}
		return nil
	})
}

// DeleteIncoming implements [store.Session].
func (s *Session) DeleteIncoming(id uint16) error {
	return s.change(func() error {
		if _, ok := s.in[id]; ok {
			delete(s.in, id)
			s.live -= inRecSize
			s.queue(appendIDRecord(s.scratch(), recDelIn, id))
		}
		return nil
	})
}

// Incoming implements [store.Session].
func (s *Session) Incoming() ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if s.err != nil {
		return nil, s.err
	}
	return slices.Sorted(maps.Keys(s.in)), nil
}

// Clear implements [store.Session]. The log keeps the cleared changes
// until the next compaction.
func (s *Session) Clear() error {
	return s.change(func() error {
		s.out = map[uint64]entry{}
		s.in = map[uint16]struct{}{}
		s.live = headerSize
		rec, start := beginRecord(s.scratch(), recClear)
		s.queue(endRecord(rec, start))
		return nil
	})
}

// scratch returns a buffer for a small record; mu is held.
func (s *Session) scratch() []byte {
	return s.small[:0]
}

// Outgoing implements [store.Session]: it reads the messages back from
// the log. Changes go on meanwhile; compaction waits.
func (s *Session) Outgoing() ([]store.Outgoing, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	snap := make([]located, 0, len(s.out))
	for seq, e := range s.out {
		snap = append(snap, located{seq, e})
	}
	// The offsets in snap hold until readers drops back: no compaction
	// meanwhile. Every record in snap is queued; wait until it is
	// written too.
	s.readers++
	defer func() {
		s.mu.Lock()
		s.readers--
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	err := s.wait(s.queued)
	r := chunkReader{f: s.f}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// Read in file order, so that the reads are sequential.
	slices.SortFunc(snap, func(a, b located) int { return cmp.Compare(a.off, b.off) })
	out := make([]store.Outgoing, 0, len(snap))
	for _, l := range snap {
		rec, err := r.read(l.off, int(l.size))
		if err != nil {
			return nil, fmt.Errorf("store/disk: reading the message of seq %d at offset %d of %s: %w", l.seq, l.off, s.path, err)
		}
		typ, body, ok := checkRecord(rec)
		if !ok || typ != recAdd {
			return nil, fmt.Errorf("store/disk: the message of seq %d at offset %d of %s fails its checksum: the file was damaged after it was opened", l.seq, l.off, s.path)
		}
		o, err := decodeAdd(body)
		if err == nil && o.Seq != l.seq {
			err = fmt.Errorf("%w: seq %d where %d was expected", errMalformed, o.Seq, l.seq)
		}
		if err != nil {
			return nil, fmt.Errorf("store/disk: %s at offset %d: %w", s.path, l.off, err)
		}
		o.PacketID, o.Released = l.id, l.released
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b store.Outgoing) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// located is an index entry with its sequence number.
type located struct {
	seq uint64
	entry
}

// Close implements [store.Session]: it writes what is pending, fsyncs
// the log (with or without Options.Sync, so that a session closed in an
// orderly way survives a power loss too), closes it and unlocks the
// directory.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	// Wait for the writer and for readers of the log; then write what
	// callers still wait for (they return nil, or the write error).
	for s.writing || s.readers > 0 {
		s.cond.Wait()
	}
	s.writing = true
	err := s.flush()
	if err == nil && !s.opts.Sync {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	s.writing = false
	s.cond.Broadcast()
	s.out, s.in, s.pending, s.spare = nil, nil, nil, nil
	s.mu.Unlock()
	return err
}
