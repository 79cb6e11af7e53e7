package disk

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// load opens the log (creating it if there is none) and replays it into
// the index. A leftover of a compaction that a crash interrupted before
// its rename is removed: the log it was to replace is complete.
func (s *Session) load() error {
	if err := os.Remove(filepath.Join(s.dir, compactName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store/disk: removing the leftover of an interrupted compaction: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("store/disk: opening the session log: %w", err)
	}
	s.f = f
	if err := s.replay(); err != nil {
		f.Close()
		return err
	}
	return nil
}

// replay reads the whole log: the header, then records until the end of
// the file or the first record that is cut short or fails its checksum,
// which is a torn write and is cut off with everything after it.
func (s *Session) replay() error {
	s.out = map[uint64]entry{}
	s.in = map[uint16]struct{}{}
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	size := st.Size()
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, size), 1<<20)
	hdr := make([]byte, headerSize)
	n, _ := io.ReadFull(r, hdr)
	want := fileHeader()
	switch {
	case n < headerSize && bytes.HasPrefix(want, hdr[:n]):
		// A new log, or one whose creation a crash interrupted: nothing
		// was ever stored in it.
		return s.create()
	case !bytes.Equal(hdr[:len(magic)], want[:len(magic)]):
		return fmt.Errorf("store/disk: %s is not a Tern session log (it starts with %q): move it away or open another directory", s.path, hdr[:min(n, len(magic))])
	case binary.LittleEndian.Uint32(hdr[8:]) != version:
		return fmt.Errorf("store/disk: %s has format version %d; this Tern reads version %d: open it with the Tern that wrote it",
			s.path, binary.LittleEndian.Uint32(hdr[8:]), version)
	}

	off := int64(headerSize)
	s.live = headerSize
	var buf []byte
	var torn string
	for off < size {
		var h [recHeader]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			torn = "a record header is cut short"
			break
		}
		n := int64(binary.LittleEndian.Uint32(h[:]))
		if n == 0 || n > maxRecord || off+recHeader+n > size {
			torn = fmt.Sprintf("a record of %d bytes runs past the end", n)
			break
		}
		rec := growTo(&buf, recHeader+int(n))
		copy(rec, h[:])
		if _, err := io.ReadFull(r, rec[recHeader:]); err != nil {
			return fmt.Errorf("store/disk: reading %s: %w", s.path, err)
		}
		typ, body, ok := checkRecord(rec)
		if !ok {
			torn = "a record fails its checksum"
			break
		}
		if err := s.apply(typ, body, off, len(rec)); err != nil {
			return fmt.Errorf("store/disk: %s, record at offset %d: %w: the file is damaged or was written by another program; move it away to start the session afresh", s.path, off, err)
		}
		off += int64(len(rec))
	}
	if torn != "" {
		// A crash cut the last write short; the records before it are
		// whole. Appends go on from there, not after the torn bytes.
		s.log.Warn("store/disk: dropping the torn tail of the session log", "path", s.path, "offset", off, "bytes", size-off, "why", torn)
		if err := s.f.Truncate(off); err != nil {
			return fmt.Errorf("store/disk: cutting the torn tail off %s: %w", s.path, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("store/disk: %w", err)
		}
	}
	s.end = off
	return nil
}

// growTo returns (*buf)[:n], growing *buf if needed.
func growTo(buf *[]byte, n int) []byte {
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	return (*buf)[:n]
}

// create writes the header of a new log and makes the file's name and
// header durable.
func (s *Session) create() error {
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	if _, err := s.f.Write(fileHeader()); err != nil {
		return fmt.Errorf("store/disk: writing %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("store/disk: %w", err)
	}
	s.end, s.live = headerSize, headerSize
	return nil
}

// bodySize is the least body of each record type; -1: no such type.
var bodySize = [...]int{-1, recAdd: addFixed + 2, recSent: 10, recReleased: 8, recDelete: 8, recAddIn: 2, recDelIn: 2, recClear: 0}

// apply replays one record into the index; the same rules as the live
// calls, which never log a change that does not apply.
func (s *Session) apply(typ byte, body []byte, off int64, size int) error {
	if int(typ) >= len(bodySize) || bodySize[typ] < 0 {
		return fmt.Errorf("%w: unknown type %d", errMalformed, typ)
	}
	if len(body) < bodySize[typ] {
		return fmt.Errorf("%w: type %d with a body of %d bytes", errMalformed, typ, len(body))
	}
	switch typ {
	case recAdd:
		seq := binary.LittleEndian.Uint64(body[addSeq:])
		if old, ok := s.out[seq]; ok {
			s.live -= int64(old.size)
		}
		s.out[seq] = entry{off: off, size: uint32(size), id: binary.LittleEndian.Uint16(body[addPacketID:]), released: body[addFlags]&flagReleased != 0}
		s.live += int64(size)
	case recSent, recReleased:
		seq := binary.LittleEndian.Uint64(body)
		if e, ok := s.out[seq]; ok {
			if typ == recSent {
				e.id = binary.LittleEndian.Uint16(body[8:])
			} else {
				e.released = true
			}
			s.out[seq] = e
		}
	case recDelete:
		seq := binary.LittleEndian.Uint64(body)
		if e, ok := s.out[seq]; ok {
			delete(s.out, seq)
			s.live -= int64(e.size)
		}
	case recAddIn:
		id := binary.LittleEndian.Uint16(body)
		if _, ok := s.in[id]; !ok {
			s.in[id] = struct{}{}
			s.live += inRecSize
		}
	case recDelIn:
		id := binary.LittleEndian.Uint16(body)
		if _, ok := s.in[id]; ok {
			delete(s.in, id)
			s.live -= inRecSize
		}
	case recClear:
		clear(s.out)
		clear(s.in)
		s.live = headerSize
	}
	return nil
}
