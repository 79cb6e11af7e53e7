package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// The values kept in Redis are small binary records: unsigned varints,
// strings as a varint length and bytes, times as a presence byte and
// Unix seconds and nanoseconds, and messages as their QoS, times and
// publisher followed by an MQTT 5 PUBLISH of QoS 0, which carries the
// topic, retain flag, payload and every property a PUBLISH can hold.
// Every record starts with a format byte, so that a later format can
// read what an earlier one wrote.

const recordFormat = 1

var errMalformed = errors.New("store/redis: malformed record")

type enc struct{ b []byte }

func (e *enc) uv(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) byte1(v byte) { e.b = append(e.b, v) }
func (e *enc) str(s string) {
	e.uv(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.byte1(0)
		return
	}
	e.byte1(1)
	e.b = binary.AppendVarint(e.b, t.Unix())
	e.uv(uint64(t.Nanosecond()))
}

func (e *enc) msg(m *message.Message) error {
	e.byte1(m.QoS)
	e.time(m.Created)
	e.time(m.Expires)
	e.str(m.From)
	p := packet.Publish{Topic: m.Topic, Retain: m.Retain, Properties: m.Properties, Payload: m.Payload}
	raw, err := p.Append(nil, packet.V5)
	if err != nil {
		return fmt.Errorf("store/redis: the message of topic %q cannot be stored: %w", m.Topic, err)
	}
	e.str(string(raw))
	return nil
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (d *dec) byte1() byte {
	if len(d.b) == 0 {
		d.fail("cut short")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uv() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) uv32() uint32 {
	v := d.uv()
	if v > 1<<32-1 {
		d.fail("number out of range")
	}
	return uint32(v)
}

func (d *dec) bytes() []byte {
	n := d.uv()
	if n > uint64(len(d.b)) {
		d.fail("string runs past the record")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) time() time.Time {
	if d.byte1() == 0 {
		return time.Time{}
	}
	s, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad time")
		return time.Time{}
	}
	d.b = d.b[n:]
	ns := d.uv()
	if ns >= 1e9 {
		d.fail("bad time")
	}
	return time.Unix(s, int64(ns))
}

func (d *dec) msg() *message.Message {
	m := &message.Message{QoS: d.byte1()}
	m.Created = d.time()
	m.Expires = d.time()
	m.From = d.str()
	raw := d.bytes()
	if d.err != nil {
		return nil
	}
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

func (d *dec) format() {
	if f := d.byte1(); f != recordFormat && d.err == nil {
		d.fail(fmt.Sprintf("record format %d, this version reads %d", f, recordFormat))
	}
}

// encodeInfo is the record of a session's own state.
func encodeInfo(s *store.SessionInfo) (string, error) {
	e := enc{b: []byte{recordFormat}}
	e.uv(uint64(s.Expiry))
	e.time(s.Disconnected)
	e.byte1(s.Version)
	if s.Will == nil || s.Will.Msg == nil {
		e.byte1(0)
		return string(e.b), nil
	}
	e.byte1(1)
	e.uv(uint64(s.Will.Delay))
	if err := e.msg(s.Will.Msg); err != nil {
		return "", err
	}
	return string(e.b), nil
}

func decodeInfo(b string) (store.SessionInfo, error) {
	var s store.SessionInfo
	if b == "" {
		return s, nil // created by a change, never stored with PutSession
	}
	d := dec{b: []byte(b)}
	d.format()
	s.Expiry = d.uv32()
	s.Disconnected = d.time()
	s.Version = d.byte1()
	if d.byte1() == 1 {
		w := &store.Will{Delay: d.uv32()}
		w.Msg = d.msg()
		s.Will = w
	}
	return s, d.err
}

func encodeSub(s store.Subscription) string {
	e := enc{b: []byte{recordFormat}}
	var fl byte
	if s.NoLocal {
		fl |= 1
	}
	if s.RetainAsPublished {
		fl |= 2
	}
	e.b = append(e.b, s.QoS, fl, s.RetainHandling)
	e.uv(uint64(s.ID))
	return string(e.b)
}

func decodeSub(b string) (store.Subscription, error) {
	d := dec{b: []byte(b)}
	d.format()
	var s store.Subscription
	s.QoS = d.byte1()
	fl := d.byte1()
	s.NoLocal, s.RetainAsPublished = fl&1 != 0, fl&2 != 0
	s.RetainHandling = d.byte1()
	s.ID = d.uv32()
	return s, d.err
}

// encodeHead is the part of a queued message's record that is its own:
// message id, QoS, retain flag and subscription ids. The message follows
// it (encodeMsg), shared by every queue it enters in one batch.
func encodeHead(msgID uint64, qos byte, retain bool, subIDs []uint32) string {
	e := enc{b: []byte{recordFormat}}
	e.uv(msgID)
	var fl byte
	if retain {
		fl = 1
	}
	e.b = append(e.b, qos, fl)
	e.uv(uint64(len(subIDs)))
	for _, id := range subIDs {
		e.uv(uint64(id))
	}
	return string(e.b)
}

func encodeMsg(m *message.Message) (string, error) {
	if m == nil {
		return "", errors.New("store/redis: a change carries no message (Msg is nil)")
	}
	e := enc{}
	if err := e.msg(m); err != nil {
		return "", err
	}
	return string(e.b), nil
}

// decodeQueued reads the record of a queued message (head and message);
// msgs shares one *message.Message between records that carry the same
// message id and the same message bytes.
func decodeQueued(b string, msgs map[string]*message.Message) (store.Queued, error) {
	d := dec{b: []byte(b)}
	d.format()
	var q store.Queued
	q.MsgID = d.uv()
	q.QoS = d.byte1()
	q.Retain = d.byte1()&1 != 0
	n := d.uv()
	if n > uint64(len(d.b)) {
		d.fail("too many subscription ids")
		return q, d.err
	}
	for range n {
		q.SubIDs = append(q.SubIDs, d.uv32())
	}
	if d.err != nil {
		return q, d.err
	}
	key := string(binary.AppendUvarint(nil, q.MsgID)) + string(d.b)
	if m, ok := msgs[key]; ok {
		q.Msg = m
		return q, nil
	}
	q.Msg = d.msg()
	if d.err == nil && len(d.b) != 0 {
		d.fail("bytes after the message")
	}
	if d.err == nil {
		msgs[key] = q.Msg
	}
	return q, d.err
}

func encodeRetained(m *message.Message) (string, error) {
	s, err := encodeMsg(m)
	return string([]byte{recordFormat}) + s, err
}

func decodeRetained(b string) (*message.Message, error) {
	d := dec{b: []byte(b)}
	d.format()
	m := d.msg()
	if d.err == nil && len(d.b) != 0 {
		d.fail("bytes after the message")
	}
	return m, d.err
}
