package packet

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// decoder reads the primitive data types of MQTT (section 1.5) from one
// packet body. Errors are sticky: after the first one every read returns a
// zero value, so a decode function reads its fields and checks d.err once.
type decoder struct {
	b   []byte
	off int
	t   Type
	v   Version
	err error
}

func (d *decoder) fail(err *ProtocolError) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) short() {
	d.fail(malformed(d.t, "noid:truncated", "remaining length too short for the packet's content"))
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) u8() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.short()
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) u16() uint16 {
	if d.err != nil || len(d.b)-d.off < 2 {
		d.short()
		return 0
	}
	x := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return x
}

func (d *decoder) u32() uint32 {
	if d.err != nil || len(d.b)-d.off < 4 {
		d.short()
		return 0
	}
	x := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return x
}

// vbi reads a variable byte integer (section 1.5.5).
func (d *decoder) vbi() uint32 {
	if d.err != nil {
		return 0
	}
	x, n, err := decodeVBI(d.b[d.off:])
	if err != nil {
		err.Packet = d.t
		d.fail(err)
		return 0
	}
	d.off += n
	return x
}

// bin reads Binary Data: a two-byte length and that many bytes. The result
// aliases the packet buffer; it is nil when the length is 0.
func (d *decoder) bin() []byte {
	n := int(d.u16())
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.short()
		return nil
	}
	if n == 0 {
		return nil
	}
	b := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return b
}

// str reads a UTF-8 Encoded String and checks it: well-formed, no
// surrogates, no U+0000. [v5 MQTT-1.5.4-1] [v5 MQTT-1.5.4-2] [v3 MQTT-1.5.3-1]
// [v3 MQTT-1.5.3-2]. A BOM (EF BB BF) is kept as it is. [v5 MQTT-1.5.4-3]
// [v3 MQTT-1.5.3-3]. The string aliases the packet buffer.
func (d *decoder) str() string {
	b := d.bin()
	if d.err != nil || len(b) == 0 {
		return ""
	}
	if !validUTF8(b) {
		spec := versioned(d.v, "MQTT-1.5.4-1", "MQTT-1.5.3-1")
		if containsZero(b) {
			spec = versioned(d.v, "MQTT-1.5.4-2", "MQTT-1.5.3-2") // U+0000
		}
		d.fail(malformed(d.t, spec, "string is not well-formed UTF-8 or contains U+0000"))
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// rest returns the unread bytes (a PUBLISH payload, a password in 3.1).
func (d *decoder) rest() []byte {
	if d.err != nil || d.off == len(d.b) {
		return nil
	}
	b := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return b
}

// entries counts the entries left in the packet, each a two-byte length,
// that many bytes and extra more (the SUBSCRIBE and UNSUBSCRIBE payloads),
// so that their slice is allocated once, at its size, and not grown by
// append to many times the packet size. A cut-off last entry counts.
func (d *decoder) entries(extra int) int {
	n := 0
	for i := d.off; i < len(d.b); n++ {
		if len(d.b)-i >= 2 {
			i += int(binary.BigEndian.Uint16(d.b[i:]))
		}
		i += 2 + extra
	}
	return n
}

// end checks that the content used up exactly the remaining length.
func (d *decoder) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail(malformed(d.t, "noid:trailing-bytes", "remaining length longer than the packet's content"))
	}
	return d.err
}

// validUTF8 reports whether b is well-formed UTF-8 without U+0000. Go's
// decoder already rejects surrogate halves (U+D800 to U+DFFF) and overlong
// forms. ASCII is checked eight bytes at a time.
func validUTF8(b []byte) bool {
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if x&0x8080808080808080 != 0 || (x-0x0101010101010101)&^x&0x8080808080808080 != 0 {
			break // non-ASCII or a zero byte somewhere in these eight
		}
		b = b[8:]
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.Valid(b[i:]) && !containsZero(b[i:])
		}
	}
	return true
}

func containsZero(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

// ValidUTF8String reports whether s may be sent as an MQTT UTF-8 Encoded
// String: well-formed, no surrogates, no U+0000, at most 65,535 bytes.
func ValidUTF8String(s string) bool {
	return len(s) <= 65535 && validUTF8(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// decodeVBI decodes a Variable Byte Integer from the front of b and returns
// it and its length. A fifth continuation byte is malformed; so is a value
// not encoded in the fewest bytes [v5 MQTT-1.5.5-1] (for 3.1.1 the table of
// section 2.2.3 gives the same ranges).
func decodeVBI(b []byte) (uint32, int, *ProtocolError) {
	var x uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, malformed(0, "noid:truncated", "variable byte integer truncated")
		}
		c := b[i]
		x |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, 0, malformed(0, "v5 MQTT-1.5.5-1", "variable byte integer not in its shortest form")
			}
			return x, i + 1, nil
		}
	}
	return 0, 0, malformed(0, "noid:vbi-5-bytes", "variable byte integer longer than four bytes")
}

// vbiLen is the number of bytes x takes as a Variable Byte Integer.
func vbiLen(x int) int {
	switch {
	case x < 128:
		return 1
	case x < 16384:
		return 2
	case x < 2097152:
		return 3
	}
	return 4
}

func appendVBI(dst []byte, x uint32) []byte {
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if x == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendU16(dst []byte, x uint16) []byte { return append(dst, byte(x>>8), byte(x)) }

func appendU32(dst []byte, x uint32) []byte {
	return append(dst, byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

func appendString(dst []byte, s string) []byte {
	return append(appendU16(dst, uint16(len(s))), s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	return append(appendU16(dst, uint16(len(b))), b...)
}

// Lengths are patched in after the content is written: reserve the
// maximum size of a variable byte integer, write, then close the gap.

// reserveVBI appends room for a variable byte integer and returns its offset.
func reserveVBI(dst []byte) ([]byte, int) { return append(dst, 0, 0, 0, 0), len(dst) }

// fillVBI writes the length of everything after the reserved room at off
// and moves that content down over the unused bytes.
func fillVBI(dst []byte, off int) []byte {
	n := len(dst) - off - 4
	k := vbiLen(n)
	appendVBI(dst[off:off], uint32(n))
	if k < 4 {
		copy(dst[off+k:], dst[off+4:])
		dst = dst[:len(dst)-(4-k)]
	}
	return dst
}

// encoder collects the first encoding error, like decoder.
type encoder struct {
	t   Type
	err error
}

func (e *encoder) check(ok bool, msg string) {
	if !ok && e.err == nil {
		e.err = encErr(e.t, msg)
	}
}

func (e *encoder) str(s, field string) {
	if !ValidUTF8String(s) {
		e.check(false, field+" is not a valid MQTT string (UTF-8, no U+0000, at most 65535 bytes)")
	}
}

// code checks that reason code c is one of set.
func (e *encoder) code(set *reasonSet, c ReasonCode) {
	if !set.has(c) {
		e.check(false, "reason code not allowed: "+c.String())
	}
}

func (e *encoder) bin(b []byte, field string) {
	if len(b) > 65535 {
		e.check(false, field+" is longer than 65535 bytes")
	}
}

// header starts a packet: the first byte and room for the remaining length.
func header(dst []byte, t Type, flags byte) ([]byte, int) {
	dst = append(dst, byte(t)<<4|flags)
	return reserveVBI(dst)
}

// finish patches the remaining length of a packet started with header.
func finish(dst []byte, start, off int, e *encoder) ([]byte, error) {
	if e.err == nil && len(dst)-off-4 > MaxRemainingLength {
		e.err = encErr(e.t, "remaining length exceeds 268435455 bytes")
	}
	if e.err != nil {
		return dst[:start], e.err
	}
	return fillVBI(dst, off), nil
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "+#") }
