package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// A record of the log is one JetStream message: a kind byte, then the
// kind's body. A batch record holds the changes of one Apply call; a batch
// too large for one NATS message travels as parts, and takes effect at its
// last part.
const (
	recBatch = 1 // the changes
	recPart  = 2 // batch id, part index, part count, then a slice of a batch record's body
)

// Flags of an encoded enqueue.
const (
	qRetain   = 1
	qReleased = 2
	qBody     = 4 // the message follows; otherwise an earlier enqueue of the batch carried it
)

var errMalformed = errors.New("store/jetstream: malformed record")

// encoder builds a batch body. Each message body goes once per batch:
// later enqueues of the same MsgID in the batch refer to it.
type encoder struct {
	buf  []byte
	seen map[uint64]struct{}
}

func (e *encoder) str(s string) {
	e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) uv(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = append(e.buf, 1)
	e.buf = binary.AppendVarint(e.buf, t.Unix())
	e.uv(uint64(t.Nanosecond()))
}

// msg appends a message: QoS, times, From, and the message as an MQTT 5
// PUBLISH of QoS 0 (topic, retain flag, every property, payload).
func (e *encoder) msg(m *message.Message) error {
	e.buf = append(e.buf, m.QoS)
	e.time(m.Created)
	e.time(m.Expires)
	e.str(m.From)
	p := packet.Publish{Topic: m.Topic, Retain: m.Retain, Properties: m.Properties, Payload: m.Payload}
	var body []byte
	var err error
	if body, err = p.Append(nil, packet.V5); err != nil {
		return fmt.Errorf("store/jetstream: the message of topic %q cannot be stored: %w", m.Topic, err)
	}
	e.uv(uint64(len(body)))
	e.buf = append(e.buf, body...)
	return nil
}

func (e *encoder) enqueue(id string, q *store.Queued) error {
	if q.Msg == nil {
		return fmt.Errorf("store/jetstream: Enqueue(%q, seq %d): Msg is nil", id, q.Seq)
	}
	e.buf = append(e.buf, byte(store.OpEnqueue))
	e.str(id)
	e.uv(q.Seq)
	e.uv(q.MsgID)
	var fl byte
	if q.Retain {
		fl |= qRetain
	}
	if q.Released {
		fl |= qReleased
	}
	_, seen := e.seen[q.MsgID]
	if !seen {
		fl |= qBody
		if e.seen == nil {
			e.seen = map[uint64]struct{}{}
		}
		e.seen[q.MsgID] = struct{}{}
	}
	e.buf = append(e.buf, q.QoS, fl)
	e.uv(uint64(q.PacketID))
	e.uv(uint64(len(q.SubIDs)))
	for _, s := range q.SubIDs {
		e.uv(uint64(s))
	}
	if !seen {
		return e.msg(q.Msg)
	}
	return nil
}

// change appends one change; an OpEnqueueAll or OpDequeueAll goes as the
// OpEnqueue or OpDequeue of each target (the body once).
func (e *encoder) change(c *store.Change) error {
	switch c.Op {
	case store.OpEnqueue:
		return e.enqueue(c.ClientID, &c.Queued)
	case store.OpEnqueueAll:
		for i := range c.Targets {
			t := &c.Targets[i]
			q := store.Queued{Seq: t.Seq, MsgID: c.Queued.MsgID, Msg: c.Queued.Msg, QoS: t.QoS, Retain: t.Retain, SubIDs: t.SubIDs}
			if err := e.enqueue(t.ClientID, &q); err != nil {
				return err
			}
		}
		return nil
	case store.OpDequeueAll:
		for i := range c.Targets {
			e.buf = append(e.buf, byte(store.OpDequeue))
			e.str(c.Targets[i].ClientID)
			e.uv(c.Targets[i].Seq)
		}
		return nil
	}
	e.buf = append(e.buf, byte(c.Op))
	switch c.Op {
	case store.OpSession:
		s := &c.Session
		e.str(c.ClientID)
		e.uv(uint64(s.Expiry))
		e.time(s.Disconnected)
		e.buf = append(e.buf, s.Version)
		if s.Will == nil || s.Will.Msg == nil {
			e.buf = append(e.buf, 0)
			return nil
		}
		e.buf = append(e.buf, 1)
		e.uv(uint64(s.Will.Delay))
		return e.msg(s.Will.Msg)
	case store.OpDeleteSession:
		e.str(c.ClientID)
	case store.OpSubscribe:
		e.str(c.ClientID)
		e.str(c.Filter)
		var fl byte
		if c.Sub.NoLocal {
			fl |= 1
		}
		if c.Sub.RetainAsPublished {
			fl |= 2
		}
		e.buf = append(e.buf, c.Sub.QoS, fl, c.Sub.RetainHandling)
		e.uv(uint64(c.Sub.ID))
	case store.OpUnsubscribe:
		e.str(c.ClientID)
		e.str(c.Filter)
	case store.OpSent:
		e.str(c.ClientID)
		e.uv(c.Queued.Seq)
		e.uv(uint64(c.Queued.PacketID))
	case store.OpReleased, store.OpDequeue:
		e.str(c.ClientID)
		e.uv(c.Queued.Seq)
	case store.OpAddIncoming, store.OpDeleteIncoming:
		e.str(c.ClientID)
		e.uv(uint64(c.PacketID))
	case store.OpMark:
		e.str(c.Topic)
		e.str(c.Filter)
	case store.OpRetain:
		e.str(c.Topic)
		if c.Msg == nil {
			e.buf = append(e.buf, 0)
			return nil
		}
		e.buf = append(e.buf, 1)
		return e.msg(c.Msg)
	default:
		return fmt.Errorf("store/jetstream: unknown change kind %d", c.Op)
	}
	return nil
}

// encodeBatch returns the batch record of cs.
func encodeBatch(cs []store.Change) ([]byte, error) {
	e := encoder{buf: []byte{recBatch}}
	for i := range cs {
		if err := e.change(&cs[i]); err != nil {
			return nil, err
		}
	}
	return e.buf, nil
}

// decoder reads the changes of a batch body. Strings and payloads are
// copied out of the body.
type decoder struct {
	b    []byte
	err  error
	msgs map[uint64]*message.Message
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail("cut short")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uv() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvMax(limit uint64, what string) uint64 {
	v := d.uv()
	if v > limit {
		d.fail(what + " out of range")
		return 0
	}
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uv()
	if n > uint64(len(d.b)) {
		d.fail("a field runs past the record")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) time() time.Time {
	if d.byte1() == 0 {
		return time.Time{}
	}
	s, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad time")
		return time.Time{}
	}
	d.b = d.b[n:]
	return time.Unix(s, int64(d.uvMax(999999999, "nanoseconds")))
}

func (d *decoder) msg() *message.Message {
	m := &message.Message{QoS: d.byte1()}
	m.Created = d.time()
	m.Expires = d.time()
	m.From = d.str()
	raw := d.bytes()
	if d.err != nil {
		return nil
	}
	raw = append([]byte(nil), raw...) // the message's slices alias this copy
	p, used, err := packet.Decode(packet.V5, raw)
	if err != nil || used != len(raw) {
		d.fail(fmt.Sprintf("a message does not decode: %v", err))
		return nil
	}
	pub, ok := p.(*packet.Publish)
	if !ok {
		d.fail("a message is not a PUBLISH")
		return nil
	}
	m.Topic, m.Retain, m.Properties, m.Payload = pub.Topic, pub.Retain, pub.Properties, pub.Payload
	return m
}

// next decodes the next change into c; false at the end or on an error.
func (d *decoder) next(c *store.Change) bool {
	if len(d.b) == 0 || d.err != nil {
		return false
	}
	*c = store.Change{Op: store.Op(d.byte1())}
	switch c.Op {
	case store.OpSession:
		c.ClientID = d.str()
		c.Session.Expiry = uint32(d.uvMax(1<<32-1, "expiry"))
		c.Session.Disconnected = d.time()
		c.Session.Version = d.byte1()
		if d.byte1() == 1 {
			w := &store.Will{Delay: uint32(d.uvMax(1<<32-1, "will delay"))}
			w.Msg = d.msg()
			c.Session.Will = w
		}
	case store.OpDeleteSession:
		c.ClientID = d.str()
	case store.OpSubscribe:
		c.ClientID = d.str()
		c.Filter = d.str()
		c.Sub.QoS = d.byte1()
		fl := d.byte1()
		c.Sub.NoLocal, c.Sub.RetainAsPublished = fl&1 != 0, fl&2 != 0
		c.Sub.RetainHandling = d.byte1()
		c.Sub.ID = uint32(d.uvMax(1<<32-1, "subscription id"))
	case store.OpUnsubscribe:
		c.ClientID = d.str()
		c.Filter = d.str()
	case store.OpEnqueue:
		q := &c.Queued
		c.ClientID = d.str()
		q.Seq = d.uv()
		q.MsgID = d.uv()
		q.QoS = d.byte1()
		fl := d.byte1()
		q.Retain, q.Released = fl&qRetain != 0, fl&qReleased != 0
		q.PacketID = uint16(d.uvMax(65535, "packet id"))
		n := d.uv()
		if n > uint64(len(d.b)) {
			d.fail("too many subscription ids")
			return false
		}
		for range n {
			q.SubIDs = append(q.SubIDs, uint32(d.uvMax(1<<32-1, "subscription id")))
		}
		if fl&qBody != 0 {
			if q.Msg = d.msg(); q.Msg != nil {
				d.msgs[q.MsgID] = q.Msg
			}
		} else if q.Msg = d.msgs[q.MsgID]; q.Msg == nil {
			d.fail(fmt.Sprintf("message id %d of an enqueue was not in the batch", q.MsgID))
		}
	case store.OpSent:
		c.ClientID = d.str()
		c.Queued.Seq = d.uv()
		c.Queued.PacketID = uint16(d.uvMax(65535, "packet id"))
	case store.OpReleased, store.OpDequeue:
		c.ClientID = d.str()
		c.Queued.Seq = d.uv()
	case store.OpAddIncoming, store.OpDeleteIncoming:
		c.ClientID = d.str()
		c.PacketID = uint16(d.uvMax(65535, "packet id"))
	case store.OpMark:
		c.Topic = d.str()
		c.Filter = d.str()
	case store.OpRetain:
		c.Topic = d.str()
		if d.byte1() == 1 {
			c.Msg = d.msg()
		}
	default:
		d.fail(fmt.Sprintf("unknown change kind %d", c.Op))
	}
	return d.err == nil
}

// decodeBatch returns the changes of a batch body (the record without its
// kind byte).
func decodeBatch(body []byte) ([]store.Change, error) {
	d := decoder{b: body, msgs: map[uint64]*message.Message{}}
	var cs []store.Change
	var c store.Change
	for d.next(&c) {
		cs = append(cs, c)
	}
	return cs, d.err
}
