package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// The log file starts with a header: the magic "TERNSESS", the format
// version (uint32) and four reserved zero bytes.
const (
	magic      = "TERNSESS"
	version    = 1
	headerSize = 16
)

func fileHeader() []byte {
	h := make([]byte, headerSize)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], version)
	return h
}

// A record is its length (uint32: type and body), the CRC-32C of type
// and body (uint32), the type (one byte) and the body. Integers are
// little-endian.
const (
	recHeader = 8
	maxRecord = 1 << 29 // a PUBLISH is at most 256 MiB; this leaves room
)

// Record types and their bodies.
const (
	recAdd      = 1 // addFixed bytes (see below), From (uint16 length + bytes), the message as an MQTT 5 PUBLISH
	recSent     = 2 // seq (uint64), packet id (uint16)
	recReleased = 3 // seq
	recDelete   = 4 // seq
	recAddIn    = 5 // packet id
	recDelIn    = 6 // packet id
	recClear    = 7 // empty
)

// The fixed part of an add record's body, by offset. Packet id and flags
// sit at fixed places so that compaction can write a message's current
// state into its record without decoding the message.
const (
	addSeq      = 0  // uint64
	addPacketID = 8  // uint16
	addFlags    = 10 // byte: flagReleased, flagCreated, flagExpires
	addQoS      = 11 // byte: Msg.QoS
	addCreated  = 12 // int64 Unix seconds, uint32 nanoseconds
	addExpires  = 24 // the same
	addFixed    = 36
)

const (
	flagReleased = 1 << iota
	flagCreated  // Msg.Created is not the zero time
	flagExpires  // Msg.Expires is not the zero time
)

// inRecSize is the size of an incoming record, header included.
const inRecSize = recHeader + 1 + 2

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

// appendSeqRecord appends a record whose body is a sequence number and
// optionally a packet id.
func appendSeqRecord(dst []byte, typ byte, seq uint64, id uint16, withID bool) []byte {
	dst, start := beginRecord(dst, typ)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	if withID {
		dst = binary.LittleEndian.AppendUint16(dst, id)
	}
	return endRecord(dst, start)
}

func appendIDRecord(dst []byte, typ byte, id uint16) []byte {
	dst, start := beginRecord(dst, typ)
	return endRecord(binary.LittleEndian.AppendUint16(dst, id), start)
}

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

// appendAdd appends the add record of o. The message travels as an MQTT
// 5 PUBLISH of QoS 0 (its QoS is in the fixed part): the codec keeps
// topic, payload, retain flag and every property a PUBLISH can carry.
func appendAdd(dst []byte, o store.Outgoing) ([]byte, error) {
	m := o.Msg
	if m == nil {
		return dst, fmt.Errorf("store/disk: AddOutgoing(seq %d): Msg is nil", o.Seq)
	}
	if len(m.From) > 65535 {
		return dst, fmt.Errorf("store/disk: AddOutgoing(seq %d): Msg.From is %d bytes, more than 65535", o.Seq, len(m.From))
	}
	dst, start := beginRecord(dst, recAdd)
	dst = binary.LittleEndian.AppendUint64(dst, o.Seq)
	dst = binary.LittleEndian.AppendUint16(dst, o.PacketID)
	var flags byte
	if o.Released {
		flags |= flagReleased
	}
	if !m.Created.IsZero() {
		flags |= flagCreated
	}
	if !m.Expires.IsZero() {
		flags |= flagExpires
	}
	dst = append(dst, flags, m.QoS)
	dst = appendTime(dst, m.Created)
	dst = appendTime(dst, m.Expires)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.From)))
	dst = append(dst, m.From...)
	p := packet.Publish{Topic: m.Topic, Retain: m.Retain, Properties: m.Properties, Payload: m.Payload}
	dst, err := p.Append(dst, packet.V5)
	if err != nil {
		return dst[:start], fmt.Errorf("store/disk: AddOutgoing(seq %d): the message cannot be stored: %w", o.Seq, err)
	}
	if len(dst)-start-recHeader > maxRecord {
		return dst[:start], fmt.Errorf("store/disk: AddOutgoing(seq %d): the message takes %d bytes, more than the %d a record holds", o.Seq, len(dst)-start, maxRecord)
	}
	return endRecord(dst, start), nil
}

// errMalformed marks a record whose checksum holds but whose body does
// not parse: not a torn write but a bug or a file from elsewhere.
var errMalformed = errors.New("malformed record")

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

// decodeAdd decodes the body of an add record. The message's strings
// and slices alias body.
func decodeAdd(body []byte) (store.Outgoing, error) {
	if len(body) < addFixed+2 {
		return store.Outgoing{}, fmt.Errorf("%w: add record of %d bytes", errMalformed, len(body))
	}
	o := store.Outgoing{
		Seq:      binary.LittleEndian.Uint64(body[addSeq:]),
		PacketID: binary.LittleEndian.Uint16(body[addPacketID:]),
		Released: body[addFlags]&flagReleased != 0,
	}
	flags := body[addFlags]
	m := &message.Message{
		QoS:     body[addQoS],
		Created: readTime(body[addCreated:], flags&flagCreated != 0),
		Expires: readTime(body[addExpires:], flags&flagExpires != 0),
	}
	n := int(binary.LittleEndian.Uint16(body[addFixed:]))
	rest := body[addFixed+2:]
	if len(rest) < n {
		return o, fmt.Errorf("%w: seq %d: From runs past the record", errMalformed, o.Seq)
	}
	m.From, rest = string(rest[:n]), rest[n:]
	p, used, err := packet.Decode(packet.V5, rest)
	if err != nil || used != len(rest) {
		return o, fmt.Errorf("%w: seq %d: the message does not decode (%d of %d bytes): %v", errMalformed, o.Seq, used, len(rest), err)
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		return o, fmt.Errorf("%w: seq %d: a %v instead of a PUBLISH", errMalformed, o.Seq, p.Type())
	}
	m.Topic, m.Retain, m.Properties, m.Payload = pub.Topic, pub.Retain, pub.Properties, pub.Payload
	o.Msg = m
	return o, nil
}
