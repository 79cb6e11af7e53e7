package disk

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"
)

// Every log file starts with a header of headerSize bytes: an 8-byte
// magic, the format version (uint32) and four reserved zero bytes.
const headerSize = 16

// A record is its length (uint32: type and body), the CRC-32C of type
// and body (uint32), the type (one byte) and the body. Integers are
// little-endian.
const (
	recHeader = 8
	maxRecord = 1 << 29 // a PUBLISH is at most 256 MiB; this leaves room
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// beginRecord appends a record header and the type to dst; endRecord
// fills in the length and checksum once the body is appended.
func beginRecord(dst []byte, typ byte) ([]byte, int) {
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typ), len(dst)
}

func endRecord(rec []byte, start int) []byte {
	r := rec[start:]
	binary.LittleEndian.PutUint32(r, uint32(len(r)-recHeader))
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r[recHeader:], castagnoli))
	return rec
}

// checkRecord checks the checksum of the whole record rec and returns
// its type and body.
func checkRecord(rec []byte) (typ byte, body []byte, ok bool) {
	if len(rec) <= recHeader || int(binary.LittleEndian.Uint32(rec)) != len(rec)-recHeader {
		return 0, nil, false
	}
	if crc32.Checksum(rec[recHeader:], castagnoli) != binary.LittleEndian.Uint32(rec[4:]) {
		return 0, nil, false
	}
	return rec[recHeader], rec[recHeader+1:], true
}

// errMalformed marks a record whose checksum holds but whose body does
// not parse: not a torn write but a bug or a file from elsewhere.
var errMalformed = errors.New("malformed record")

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, make([]byte, 12)...)
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.Unix()))
	return binary.LittleEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

func readTime(b []byte, set bool) time.Time {
	if !set {
		return time.Time{}
	}
	return time.Unix(int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint32(b[8:])))
}

// growTo returns (*buf)[:n], growing *buf if needed.
func growTo(buf *[]byte, n int) []byte {
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	return (*buf)[:n]
}
