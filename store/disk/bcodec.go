package disk

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// The broker log (broker.log) is framed like the session log (header,
// then records of length, CRC-32C, type, body) with its own magic. One
// record holds one Apply call's batch, so that a batch is kept whole or
// not at all: a torn record drops the whole batch.
const (
	brokerMagic   = "TERNBRKR"
	brokerVersion = 1
	recBatch      = 1 // a batch of changes, each an op byte and its fields
)

func brokerHeader() []byte {
	h := make([]byte, headerSize)
	copy(h, brokerMagic)
	binary.LittleEndian.PutUint32(h[8:], brokerVersion)
	return h
}

// Flags of an encoded enqueue.
const (
	qRetain   = 1
	qReleased = 2
	qBody     = 4 // the message follows; otherwise an earlier change of the log carried it
)

// encoder builds a batch record. It writes each message's body once per
// batch: later enqueues of the same MsgID in the batch refer to it.
type encoder struct {
	buf   []byte
	start int
	seen  map[uint64]struct{}
}

func (e *encoder) begin() {
	e.buf, e.start = beginRecord(e.buf[:0], recBatch)
	clear(e.seen)
}

func (e *encoder) end() ([]byte, error) {
	if len(e.buf)-e.start-recHeader > maxRecord {
		return nil, fmt.Errorf("store/disk: a batch of %d bytes is more than the %d a record holds", len(e.buf), maxRecord)
	}
	return endRecord(e.buf, e.start), nil
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
	e.buf = appendTime(e.buf, t)
}

// msg appends a message: QoS, the flags and times, From, and the message
// as an MQTT 5 PUBLISH of QoS 0 (topic, retain, properties, payload).
func (e *encoder) msg(m *message.Message) error {
	e.buf = append(e.buf, m.QoS)
	e.time(m.Created)
	e.time(m.Expires)
	e.str(m.From)
	p := packet.Publish{Topic: m.Topic, Retain: m.Retain, Properties: m.Properties, Payload: m.Payload}
	n := len(e.buf)
	e.buf = append(e.buf, 0, 0, 0, 0)
	var err error
	if e.buf, err = p.Append(e.buf, packet.V5); err != nil {
		return fmt.Errorf("store/disk: the message of topic %q cannot be stored: %w", m.Topic, err)
	}
	binary.LittleEndian.PutUint32(e.buf[n:], uint32(len(e.buf)-n-4))
	return nil
}

// change appends one change. An OpEnqueueAll or OpDequeueAll is written
// as the OpEnqueue or OpDequeue of each of its targets: the format does
// not change, and the message body goes once (the later enqueues refer
// to it).
func (e *encoder) change(c *store.Change) error {
	switch c.Op {
	case store.OpEnqueueAll:
		var one store.Change
		for i := range c.Targets {
			t := &c.Targets[i]
			one = store.Enqueue(t.ClientID, store.Queued{Seq: t.Seq, MsgID: c.Queued.MsgID, Msg: c.Queued.Msg, QoS: t.QoS, Retain: t.Retain, SubIDs: t.SubIDs})
			if err := e.change(&one); err != nil {
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
	case store.OpEnqueue:
		q := &c.Queued
		if q.Msg == nil {
			return fmt.Errorf("store/disk: Enqueue(%q, seq %d): Msg is nil", c.ClientID, q.Seq)
		}
		e.str(c.ClientID)
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
		for _, id := range q.SubIDs {
			e.uv(uint64(id))
		}
		if !seen {
			return e.msg(q.Msg)
		}
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
		return fmt.Errorf("store/disk: unknown change kind %d", c.Op)
	}
	return nil
}

// decoder reads the changes of a batch body. Messages carried by earlier
// changes are found by MsgID in msgs. Strings and payloads are copied
// out of the body, which the caller reuses.
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

func (d *decoder) uv32() uint32 {
	v := d.uv()
	if v > 1<<32-1 {
		d.fail("number out of range")
	}
	return uint32(v)
}

func (d *decoder) uv16() uint16 {
	v := d.uv()
	if v > 65535 {
		d.fail("packet id out of range")
	}
	return uint16(v)
}

func (d *decoder) str() string {
	n := d.uv()
	if n > uint64(len(d.b)) {
		d.fail("string runs past the record")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	if d.byte1() == 0 {
		return time.Time{}
	}
	if len(d.b) < 12 {
		d.fail("time cut short")
		return time.Time{}
	}
	t := readTime(d.b, true)
	d.b = d.b[12:]
	return t
}

func (d *decoder) msg() *message.Message {
	m := &message.Message{QoS: d.byte1()}
	m.Created = d.time()
	m.Expires = d.time()
	m.From = d.str()
	if d.err != nil || len(d.b) < 4 {
		d.fail("message cut short")
		return nil
	}
	n := int(binary.LittleEndian.Uint32(d.b))
	if n > len(d.b)-4 {
		d.fail("message runs past the record")
		return nil
	}
	raw := make([]byte, n) // the message's slices alias this copy, not the caller's buffer
	copy(raw, d.b[4:4+n])
	d.b = d.b[4+n:]
	p, used, err := packet.Decode(packet.V5, raw)
	if err != nil || used != n {
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

// next decodes the next change into c; it returns false at the end of
// the body or on an error (d.err).
func (d *decoder) next(c *store.Change) bool {
	if len(d.b) == 0 || d.err != nil {
		return false
	}
	*c = store.Change{Op: store.Op(d.byte1())}
	switch c.Op {
	case store.OpSession:
		c.ClientID = d.str()
		c.Session.Expiry = d.uv32()
		c.Session.Disconnected = d.time()
		c.Session.Version = d.byte1()
		if d.byte1() == 1 {
			w := &store.Will{Delay: d.uv32()}
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
		c.Sub.ID = d.uv32()
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
		q.PacketID = d.uv16()
		n := d.uv()
		if n > uint64(len(d.b)) {
			d.fail("too many subscription ids")
			return false
		}
		for range n {
			q.SubIDs = append(q.SubIDs, d.uv32())
		}
		if fl&qBody != 0 {
			q.Msg = d.msg()
			if q.Msg != nil {
				d.msgs[q.MsgID] = q.Msg
			}
		} else if q.Msg = d.msgs[q.MsgID]; q.Msg == nil && d.err == nil {
			d.fail(fmt.Sprintf("message id %d of an enqueue was never stored", q.MsgID))
		}
	case store.OpSent:
		c.ClientID = d.str()
		c.Queued.Seq = d.uv()
		c.Queued.PacketID = d.uv16()
	case store.OpReleased, store.OpDequeue:
		c.ClientID = d.str()
		c.Queued.Seq = d.uv()
	case store.OpAddIncoming, store.OpDeleteIncoming:
		c.ClientID = d.str()
		c.PacketID = d.uv16()
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
