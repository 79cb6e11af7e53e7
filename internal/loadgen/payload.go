package loadgen

import "encoding/binary"

// HeaderSize is the size of the header at the start of every payload the
// load generator publishes; the payload size cannot be smaller.
const HeaderSize = 4 + 8 + 8

// Header is what a payload carries so that a subscriber can account for
// each message: which publisher sent it, its sequence number on that
// publisher (from 0), and when it was written (Unix nanoseconds).
// On the wire it is big-endian: publisher uint32, seq uint64, sent int64.
type Header struct {
	Publisher uint32
	Seq       uint64
	Sent      int64
}

// PutHeader writes h at the start of b, which must hold HeaderSize bytes.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b[0:], h.Publisher)
	binary.BigEndian.PutUint64(b[4:], h.Seq)
	binary.BigEndian.PutUint64(b[12:], uint64(h.Sent))
}

// ParseHeader reads the header at the start of b; ok is false when b is
// too short to hold one.
func ParseHeader(b []byte) (h Header, ok bool) {
	if len(b) < HeaderSize {
		return Header{}, false
	}
	return Header{
		Publisher: binary.BigEndian.Uint32(b[0:]),
		Seq:       binary.BigEndian.Uint64(b[4:]),
		Sent:      int64(binary.BigEndian.Uint64(b[12:])),
	}, true
}
