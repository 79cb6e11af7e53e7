package disk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
)

// Compaction rewrites the log with the live state alone, without
// stopping the writes. It runs in a goroutine of its own:
//
//  1. It notes where the log ends (from) and takes the state at that
//     point: a copy of the index in memory, taken there and then, if
//     the store still holds one (see dropLargeIndex) and the state is
//     small (see cloneMax: a copy of a few
//     milliseconds at most); otherwise, so as not to hold the writes
//     that long (or because there is no index), it replays the log up
//     to from into a state of its own, as an open does, with no lock
//     held. That state lives as long as the compaction.
//  2. It writes that state to broker.log.compact, then copies after it
//     the records written to the old log since from (each batch record
//     stands alone, so it means the same after the snapshot), and
//     fsyncs. Batches go on being written to the old log meanwhile.
//  3. Once what is left to copy is small, it takes the writer's role
//     (batches queue for this moment only), copies the rest, fsyncs,
//     renames the new log over broker.log, makes it the log and fsyncs
//     the directory.
//
// A crash before the rename leaves the old log, complete, and a
// leftover the next open removes; after it, the new log. A failure
// leaves the old log in place; it is logged and tried again after as
// much growth again. While it runs the log may grow by CompactBytes;
// beyond that, Apply waits for it (a store written faster than it can
// be compacted stays bounded: about twice the live state plus four
// times CompactBytes).

// tailInLock is how much of the old log's tail the switch copies with
// the writes held; more is copied before, with the writes going on.
const tailInLock = 1 << 20

// cloneMax: a compaction copies the state from the index, with the
// writes held, if the log was at most this size after the last one (or
// at open) and is at most four times this size now; otherwise it
// replays the log beside the writes. Past that size, once the state
// has been loaded, the store drops the index (unless KeepState): it is
// then a second copy of a large state, and compactions replay anyway.
const cloneMax = 8 << 20

// small reports whether the state is small enough for a compaction to
// copy it from the index (see cloneMax); mu is held.
func (b *Broker) small() bool {
	return b.base <= b.smallMax && b.end <= 4*b.smallMax
}

// dropLargeIndex drops the index once the state has been loaded, if it
// is large and the store is not to keep it; mu is held. A small state's
// index stays: it costs little memory and spares each compaction a
// replay of a log that is mostly dead records (under a QoS 1 load, a
// compaction every few seconds). Once dropped, it is rebuilt by the
// first compaction that finds the state small again (see adopt).
func (b *Broker) dropLargeIndex() {
	if b.index != nil && b.loaded && !b.opts.KeepState && !b.small() {
		b.index = nil
	}
}

// errStopped: Close stopped the compaction.
var errStopped = errors.New("store/disk: the store is closing")

// maybeCompact starts a compaction once the log has grown by
// CompactBytes beyond twice its size after the last one; mu is held.
func (b *Broker) maybeCompact() {
	if b.closed || b.stopping || b.err != nil || b.compacting || b.end < 2*b.base+b.opts.CompactBytes {
		return
	}
	b.startCompact()
}

// startCompact starts a compaction; mu is held and none is running.
func (b *Broker) startCompact() {
	b.compacting = true
	b.compactLimit = b.end + b.opts.CompactBytes
	done := make(chan struct{})
	b.compactDone = done
	old, from := b.f, b.end
	var st *store.BrokerState
	b.dropLargeIndex()
	if b.index != nil && b.small() {
		st, _ = b.index.Load(context.Background()) // nil on error: replayed instead
	}
	go func() {
		start := time.Now()
		var ad adoption
		size, err := b.compact(old, from, st, &ad)
		if err == nil && ad.idx != nil {
			b.adopt(ad)
		}
		b.mu.Lock()
		b.compacting, b.compactErr = false, err
		switch {
		case errors.Is(err, errStopped):
		case err != nil:
			b.base = b.end // try again after as much growth again
			b.log.Warn("store/disk: compacting the broker log failed; it stays as it is", "path", b.path, "err", err)
		default:
			b.log.Debug("store/disk: compacted the broker log", "path", b.path, "from", from, "to", size, "took", time.Since(start))
		}
		b.cond.Broadcast() // Apply calls held by compactLimit
		b.mu.Unlock()
		close(done)
	}()
}

func (b *Broker) hook(phase string) {
	if b.compactHook != nil {
		b.compactHook(phase)
	}
}

// adoption is a state a compaction replayed, kept to become the index
// again (see adopt): idx is the state at snap bytes into the new log.
type adoption struct {
	idx  *memory.Broker
	snap int64
}

// compact is the compaction's goroutine: old is the log, from where it
// ended when the compaction started, st the state there if it was
// copied (nil: it is replayed from old). It returns the new log's size.
// If the store had dropped its index and the state replayed turned out
// small, it leaves that state in ad, for adopt.
func (b *Broker) compact(old *os.File, from int64, st *store.BrokerState, ad *adoption) (int64, error) {
	if st == nil {
		idx, err := replayIndex(context.Background(), old, from, b.path)
		if err != nil {
			return 0, err
		}
		if st, err = idx.Load(context.Background()); err != nil {
			return 0, err
		}
		b.mu.Lock()
		if b.index == nil && b.loaded && !b.opts.KeepState {
			ad.idx = idx
		}
		b.mu.Unlock()
	}
	tmpPath := filepath.Join(b.dir, brokerCompactName)
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()
	size, err := writeState(&syncingWriter{f: tmp}, st)
	st = nil // the copy of the state can go
	if err != nil {
		return 0, err
	}
	ad.snap = size
	if size > b.smallMax {
		ad.idx = nil // large: not to be kept
	}
	b.hook("snapshot")
	// Copy the records written meanwhile, until little is left.
	pos := from
	for {
		b.mu.Lock()
		end, stop := b.end, b.stopping || b.err != nil
		b.mu.Unlock()
		if stop {
			return 0, errStopped
		}
		if end-pos <= tailInLock {
			break
		}
		if err := copyRange(tmp, old, pos, end); err != nil {
			return 0, err
		}
		size += end - pos
		pos = end
	}
	// fsync before the rename, whatever the SyncMode: a rename that
	// reached the disk before the data would turn a power loss into an
	// empty log. Most of it is synced here, with the writes going on.
	if err := tmp.Sync(); err != nil {
		return 0, err
	}
	b.hook("switch")

	// The switch: the writes wait while the last of the tail is copied.
	b.mu.Lock()
	for b.writing {
		b.cond.Wait()
	}
	if b.stopping || b.closed || b.err != nil {
		b.mu.Unlock()
		return 0, errStopped
	}
	b.writing = true
	end := b.end
	b.mu.Unlock()
	err = copyRange(tmp, old, pos, end)
	if err == nil {
		size += end - pos
		if err = tmp.Sync(); err == nil {
			err = os.Rename(tmpPath, b.path)
		}
	}
	b.mu.Lock()
	defer func() {
		b.writing = false
		b.cond.Broadcast()
		b.mu.Unlock()
	}()
	if err != nil {
		return 0, err
	}
	renamed = true
	b.f, b.end, b.base = tmp, size, size
	if b.opts.Sync == SyncAlways {
		b.synced.Store(size)
	}
	old.Close()
	b.compactions.Add(1)
	if err := syncDir(b.dir); err != nil {
		// The new log is in place but its name may not be durable: a
		// power loss could bring back the old one, without what is
		// written from now on. Take no more changes.
		b.err = fmt.Errorf("store/disk: syncing %s after a compaction, so the store takes no more changes until it is reopened: %w", b.dir, err)
		return size, b.err
	}
	return size, nil
}

// replayTo returns the state of the first size bytes of log f, which
// are whole records (a later Load).
func replayTo(ctx context.Context, f *os.File, size int64, path string) (*store.BrokerState, error) {
	state, err := replayIndex(ctx, f, size, path)
	if err != nil {
		return nil, err
	}
	return state.Load(ctx)
}

// replayIndex replays the first size bytes of log f, which are whole
// records, into a state in memory.
func replayIndex(ctx context.Context, f *os.File, size int64, path string) (*memory.Broker, error) {
	state := memory.NewBroker()
	_, torn, err := scanBrokerLog(f, size, path, func(cs []store.Change) error {
		return state.Apply(ctx, cs...) // ctx.Err() once cancelled
	})
	if err == nil && torn != "" {
		err = fmt.Errorf("store/disk: %s changed while it was read: %s", path, torn)
	}
	if err != nil {
		return nil, err
	}
	return state, nil
}

// adoptRounds bounds adopt's catching up with a log written faster than
// it reads.
const adoptRounds = 16

// adopt makes ad.idx, the small state a compaction replayed after the
// store had dropped its index (a large state that shrank), the index
// again, so that later compactions copy it rather than replay the log:
// it applies to it the records the compaction copied after the snapshot
// and those written since, reading the new log with no lock held, and
// takes it as the index once it has caught up (under mu, so that the
// writer applies every later batch to it). The compaction is still
// running (compacting is set), so the log is not replaced meanwhile. It
// gives up, leaving the index dropped, if the store stops or fails, or
// if the writes keep ahead of it.
func (b *Broker) adopt(ad adoption) {
	pos := ad.snap
	for range adoptRounds {
		b.mu.Lock()
		if b.stopping || b.closed || b.err != nil || b.index != nil {
			b.mu.Unlock()
			return
		}
		if pos == b.end {
			b.index = ad.idx
			b.adoptions.Add(1)
			b.mu.Unlock()
			return
		}
		f, end := b.f, b.end
		b.mu.Unlock()
		r := bufio.NewReaderSize(io.NewSectionReader(f, pos, end-pos), 1<<20)
		_, torn, err := scanRecords(r, pos, end, b.path, func(cs []store.Change) error {
			return ad.idx.Apply(context.Background(), cs...)
		})
		if err != nil || torn != "" {
			b.log.Warn("store/disk: reading back the compacted log failed; compactions replay the log", "path", b.path, "err", err, "torn", torn)
			return
		}
		pos = end
	}
}

// syncingWriter writes to f and fsyncs it after every syncEvery bytes:
// a snapshot of hundreds of megabytes flushed by one fsync at the end
// would hold up, for as long, the fsyncs of the batches written
// meanwhile (they queue behind it in the device).
type syncingWriter struct {
	f       *os.File
	pending int
}

const syncEvery = 1 << 20

func (w *syncingWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.pending += n; err == nil && w.pending >= syncEvery {
		w.pending, err = 0, w.f.Sync()
	}
	return n, err
}

// copyRange appends bytes [from, to) of src to dst.
func copyRange(dst io.Writer, src io.ReaderAt, from, to int64) error {
	if to <= from {
		return nil
	}
	_, err := io.Copy(dst, io.NewSectionReader(src, from, to-from))
	return err
}

// writeState writes a log of state st to f: the header, then batches of
// about 1 MiB. It returns the bytes written.
func writeState(f io.Writer, st *store.BrokerState) (int64, error) {
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(brokerHeader())
	size := int64(headerSize)
	e := &encoder{seen: map[uint64]struct{}{}}
	e.buf, e.start = beginRecord(nil, recBatch)
	n := 0
	var werr error
	put := func(c store.Change) {
		if werr != nil {
			return
		}
		if werr = e.change(&c); werr != nil {
			return
		}
		if n++; len(e.buf) < 1<<20 {
			return
		}
		werr = flushRec(w, e, &size)
		n = 0
	}
	for _, s := range st.Sessions {
		put(store.PutSession(s.ClientID, s.Info))
		for f, sub := range s.Subs {
			put(store.Subscribe(s.ClientID, f, sub))
		}
		for _, q := range s.Queue {
			put(store.Enqueue(s.ClientID, q))
		}
		for _, id := range s.Incoming {
			put(store.AddIncoming(s.ClientID, id))
		}
	}
	for _, m := range st.Retained {
		put(store.Retain(m.Topic, m))
	}
	for name, pos := range st.Marks {
		put(store.Mark(name, pos))
	}
	if werr == nil && n > 0 {
		werr = flushRec(w, e, &size)
	}
	if werr != nil {
		return 0, werr
	}
	return size, w.Flush()
}

// flushRec ends the record e holds, writes it to w and begins the next,
// keeping the messages seen (later records refer to them).
func flushRec(w io.Writer, e *encoder, size *int64) error {
	rec, err := e.end()
	if err != nil {
		return err
	}
	if _, err := w.Write(rec); err != nil {
		return err
	}
	*size += int64(len(rec))
	e.buf, e.start = beginRecord(e.buf[:0], recBatch)
	return nil
}

// Compact rewrites the log with the live state alone, now, whatever its
// size, and returns the sizes before and after. Apply goes on meanwhile.
func (b *Broker) Compact() (before, after int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.writing || len(b.pending) > 0 || b.compacting {
		switch {
		case b.compacting:
			done := b.compactDone
			b.mu.Unlock()
			<-done
			b.mu.Lock()
		case !b.writing:
			b.writeBatch()
		default:
			b.cond.Wait()
		}
	}
	if b.closed || b.stopping {
		return 0, 0, store.ErrClosed
	}
	if b.err != nil {
		return 0, 0, b.err
	}
	before = b.end
	b.startCompact()
	done := b.compactDone
	b.mu.Unlock()
	<-done
	b.mu.Lock()
	if b.compactErr != nil {
		return before, b.end, fmt.Errorf("store/disk: compacting %s: %w", b.path, b.compactErr)
	}
	return before, b.end, nil
}
