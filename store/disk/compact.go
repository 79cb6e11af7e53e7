package disk

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// maybeCompact rewrites the log with the live state alone once enough
// of it is dead; mu is held and this goroutine is the writer. mu stays
// held throughout, so changes wait for the compaction: its cost is
// amortized over the CompactBytes written since the last one. A failure
// leaves the old log in place; it is logged and tried again after
// CompactBytes more. While Outgoing reads the log it is not compacted.
func (s *Session) maybeCompact() {
	dead := s.end - s.live
	if s.closed || s.err != nil || s.readers > 0 || dead < s.opts.CompactBytes || dead < s.live || s.end < s.retryAt {
		return
	}
	// Records queued while the last batch was written go to the old log
	// first: their offsets are in it.
	if err := s.flushMu(false); err != nil {
		return
	}
	start := time.Now()
	from := s.end
	if err := s.compact(); err != nil {
		s.retryAt = s.end + s.opts.CompactBytes
		s.log.Warn("store/disk: compaction failed; the log stays as it is", "dir", s.dir, "err", err)
		return
	}
	s.compactions.Add(1)
	s.log.Debug("store/disk: compacted the session log", "dir", s.dir, "from", from, "to", s.end, "took", time.Since(start))
}

// compact writes the live state to a new file, fsyncs it, renames it
// over the log and fsyncs the directory; mu is held, this goroutine is
// the writer and nothing is pending. Each message's add record is copied from the old log with
// its current packet id and release flag written into it; the pending
// incoming ids follow. A crash before the rename leaves the old log and
// a leftover that Open removes; after it, the new log.
func (s *Session) compact() (err error) {
	tmpPath := filepath.Join(s.dir, compactName)
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	w.Write(fileHeader())
	off := int64(headerSize)

	// Copy the messages in the order of the old log: the reads are
	// sequential and one record at a time is in memory.
	seqs := slices.Collect(maps.Keys(s.out))
	slices.SortFunc(seqs, func(a, b uint64) int { return cmp.Compare(s.out[a].off, s.out[b].off) })
	offs := make([]int64, len(seqs))
	r := chunkReader{f: s.f}
	for i, seq := range seqs {
		e := s.out[seq]
		rec, err := r.read(e.off, int(e.size))
		if err != nil {
			return fmt.Errorf("reading seq %d: %w", seq, err)
		}
		if typ, _, ok := checkRecord(rec); !ok || typ != recAdd {
			return fmt.Errorf("the record of seq %d at offset %d fails its checksum: the log was damaged after it was opened", seq, e.off)
		}
		body := rec[recHeader+1:]
		binary.LittleEndian.PutUint16(body[addPacketID:], e.id)
		if e.released {
			body[addFlags] |= flagReleased
		} else {
			body[addFlags] &^= flagReleased
		}
		binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[recHeader:], castagnoli))
		if _, err := w.Write(rec); err != nil {
			return err
		}
		offs[i] = off
		off += int64(len(rec))
	}
	var small []byte
	for _, id := range slices.Sorted(maps.Keys(s.in)) {
		small = appendIDRecord(small[:0], recAddIn, id)
		w.Write(small)
		off += int64(len(small))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Always fsync before the rename, Sync or not: a rename that reached
	// the disk before the data would turn a power loss into an empty log.
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmpPath, s.path); err != nil {
		return err
	}
	renamed = true
	old := s.f
	s.f = tmp
	old.Close()
	for i, seq := range seqs {
		e := s.out[seq]
		e.off = offs[i]
		s.out[seq] = e
	}
	s.end, s.live = off, off
	if err := syncDir(s.dir); err != nil {
		// The new log is in place but its name may not be durable: a
		// power loss could bring back the old one, without what is
		// written from now on. Take no more changes.
		s.fail(err)
		return nil
	}
	return nil
}

// chunkReader reads records at increasing offsets with few system calls:
// one ReadAt fills a 1 MiB window, from which each record is copied into
// a buffer of its own (decoded messages alias it, so it must not be
// shared). A record larger than half the window is read on its own.
type chunkReader struct {
	f   *os.File
	buf []byte
	off int64 // file offset of buf[0]
	n   int   // valid bytes in buf
}

func (c *chunkReader) read(off int64, size int) ([]byte, error) {
	rec := make([]byte, size)
	if off >= c.off && off+int64(size) <= c.off+int64(c.n) {
		copy(rec, c.buf[off-c.off:])
		return rec, nil
	}
	const window = 1 << 20
	if size > window/2 {
		if _, err := c.f.ReadAt(rec, off); err != nil {
			return nil, err
		}
		return rec, nil
	}
	if c.buf == nil {
		c.buf = make([]byte, window)
	}
	n, err := c.f.ReadAt(c.buf, off)
	c.off, c.n = off, n
	if n < size {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	copy(rec, c.buf)
	return rec, nil
}
