// Package wire encodes the messages back plane nodes send each other
// through an engine: a small header (sending node, sequence, what the
// receiver is to do) followed by the message as an MQTT 5 PUBLISH, so the
// codec that reads clients' packets reads these too.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

const version = 1

const (
	flagPlain = 1 << iota
	flagWill
	// flagWillDelay: a uvarint Will Delay Interval (seconds) follows the
	// groups. The PUBLISH codec does not carry the Will Delay property, so
	// the frame does; frames without it are as before.
	flagWillDelay
)

// Header is what travels with a forwarded message besides the message.
type Header struct {
	Node        string // sending node
	Incarnation uint64 // random per Join, so Seq restarts are told apart
	Seq         uint64 // per sending node incarnation, increasing
	Plain       bool
	Will        bool
	Groups      []backplane.Group
}

// ErrBad reports an undecodable frame.
var ErrBad = errors.New("backplane/wire: malformed frame")

// Append appends the frame for h and m to dst.
func Append(dst []byte, h *Header, m *message.Message) ([]byte, error) {
	dst = append(dst, version)
	var fl byte
	if h.Plain {
		fl |= flagPlain
	}
	if h.Will {
		fl |= flagWill
	}
	willDelay := m.Properties.WillDelay
	if willDelay != 0 {
		fl |= flagWillDelay
	}
	dst = append(dst, fl)
	dst = appendString(dst, h.Node)
	dst = binary.AppendUvarint(dst, h.Incarnation)
	dst = binary.AppendUvarint(dst, h.Seq)
	dst = appendString(dst, m.From)
	dst = binary.AppendVarint(dst, unixNano(m.Created))
	dst = binary.AppendVarint(dst, unixNano(m.Expires))
	dst = binary.AppendUvarint(dst, uint64(len(h.Groups)))
	for _, g := range h.Groups {
		dst = appendString(dst, g.Name)
		dst = appendString(dst, g.Filter)
	}
	if willDelay != 0 {
		dst = binary.AppendUvarint(dst, uint64(willDelay))
	}
	p := packet.Publish{QoS: m.QoS, Retain: m.Retain, Topic: m.Topic,
		Properties: m.Properties, Payload: m.Payload}
	p.Properties.TopicAlias = 0
	p.Properties.Unmark(packet.PropTopicAlias)
	p.Properties.WillDelay = 0
	p.Properties.Unmark(packet.PropWillDelay)
	if p.QoS > 0 {
		p.PacketID = 1
	}
	return p.Append(dst, packet.V5)
}

// Decode reads a frame. The message's payload and properties share b.
func Decode(b []byte) (*Header, *message.Message, error) {
	d := decoder{b: b}
	if v := d.byte(); v != version {
		if d.err != nil {
			return nil, nil, d.err
		}
		return nil, nil, fmt.Errorf("%w: version %d, want %d", ErrBad, v, version)
	}
	fl := d.byte()
	h := &Header{Plain: fl&flagPlain != 0, Will: fl&flagWill != 0}
	h.Node = d.string()
	h.Incarnation = d.uvarint()
	h.Seq = d.uvarint()
	from := d.string()
	created, expires := d.varint(), d.varint()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, nil, fmt.Errorf("%w: %d groups", ErrBad, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		h.Groups = append(h.Groups, backplane.Group{Name: d.string(), Filter: d.string()})
	}
	var willDelay uint64
	if fl&flagWillDelay != 0 {
		willDelay = d.uvarint()
		if willDelay == 0 || willDelay > 1<<32-1 {
			return nil, nil, fmt.Errorf("%w: Will Delay Interval %d", ErrBad, willDelay)
		}
	}
	if d.err != nil {
		return nil, nil, d.err
	}
	pk, _, err := packet.Decode(packet.V5, d.b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBad, err)
	}
	p, ok := pk.(*packet.Publish)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %v, not PUBLISH", ErrBad, pk.Type())
	}
	m := &message.Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain,
		Properties: p.Properties, From: from, Created: fromNano(created), Expires: fromNano(expires)}
	if willDelay != 0 {
		m.Properties.WillDelay = uint32(willDelay)
		m.Properties.Mark(packet.PropWillDelay)
	}
	return h, m, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated", ErrBad)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
