package broker

import (
	"context"
	"sync"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// writeBatch is how many bytes the writer encodes before one Write.
const writeBatch = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeLoop is the connection's only writer. It sends control packets
// (acknowledgements, SUBACK, PINGRESP ...) and the session's queued
// messages, batching whatever is ready into one Write.
//
// It runs only while there is something to write: kick and send start it
// (startWriter), and it returns as soon as its queues are empty, so an
// idle connection holds no writer goroutine and its stack. At most one
// runs at a time (the running flag), so there is still a single write
// path. It stops for good (writerDone) when quit is closed, after sending
// what is in the control queue, when a final packet has been sent, or
// when a write fails. With RetryInterval set it stays, to keep time.
func (c *conn) writeLoop() {
	defer c.srv.live.Add(-1)
	var retry <-chan time.Time
	if c.srv.cfg.retryInterval > 0 && c.version != packet.V5 {
		t := time.NewTicker(c.srv.cfg.retryInterval / 2)
		defer t.Stop()
		retry = t.C
	}
	var pending []ctrlPkt
	for {
		quitting := false
		select {
		case p := <-c.ctrl:
			pending = append(pending, p)
		case <-c.wake:
		case <-c.quit:
			quitting = true
		default:
			if retry == nil {
				if c.idleExit() {
					return
				}
				continue
			}
			select {
			case p := <-c.ctrl:
				pending = append(pending, p)
			case <-c.wake:
			case <-retry:
				c.markRetries()
			case <-c.quit:
				quitting = true
			}
		}
		more, final, err := c.flush(&pending)
		if err != nil || final {
			c.nc.Close() // after a DISCONNECT, the close [v5 MQTT-3.14.4-2] [v5 MQTT-4.13.2-1]
			c.writerFinished()
			return
		}
		if quitting {
			c.writerFinished()
			return
		}
		if more {
			c.signal()
		}
	}
}

// idleExit is called by the writer when it has nothing to do: it marks
// itself stopped and reports true, unless work arrived in the meantime
// and no other writer was started for it, when it carries on.
func (c *conn) idleExit() bool {
	c.running.Store(false)
	if len(c.ctrl) == 0 && len(c.wake) == 0 && !c.quitting() {
		return true
	}
	return !c.running.CompareAndSwap(false, true)
}

// startWriter starts the writer goroutine unless it runs or has finished.
func (c *conn) startWriter() {
	if !c.finished.Load() && c.running.CompareAndSwap(false, true) {
		c.srv.live.Add(1)
		go c.writeLoop()
	}
}

// writerFinished marks the writer stopped for good.
func (c *conn) writerFinished() {
	c.finishOnce.Do(func() {
		c.finished.Store(true)
		close(c.writerDone)
	})
}

func (c *conn) quitting() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// outPool holds the writer's batches of messages (up to 256 each).
var outPool = sync.Pool{New: func() any { s := make([]out, 0, 16); return &s }}

// out is a message the writer took from the session for one batch.
type out struct {
	d   delivery
	id  uint16
	dup bool
	rel bool // send PUBREL instead of PUBLISH (QoS 2 resend)
}

// flush sends pending control packets and as many queued messages as the
// in-flight window allows, in one Write. It reports whether messages are
// left that did not fit in the batch, and whether a final packet was sent.
func (c *conn) flush(pending *[]ctrlPkt) (more, final bool, err error) {
	bp := bufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 64<<10 {
			*bp = buf[:0]
			bufPool.Put(bp)
		}
	}()

	outs, more := c.take()
	defer func() {
		clear(outs) // drop the message references
		outs = outs[:0]
		outPool.Put(&outs)
	}()
	if c.srv.Store != nil {
		c.storeSent(outs)
	}
	for {
		select {
		case p := <-c.ctrl:
			*pending = append(*pending, p)
			continue
		default:
		}
		break
	}
	// Control packets go out whatever the in-flight window, which holds
	// back only QoS > 0 PUBLISHes [v5 MQTT-3.3.4-10] [v5 MQTT-4.9.0-3].
	for _, p := range *pending {
		buf = c.appendCtrl(buf, p)
		if p.final {
			// A DISCONNECT is the last packet: nothing follows it
			// [v5 MQTT-3.14.4-1].
			final = true
			break
		}
	}
	clear(*pending)
	*pending = (*pending)[:0]
	if !final {
		now := time.Now()
		for i := range outs {
			buf = c.appendOut(buf, &outs[i], now)
		}
	}
	if len(buf) == 0 {
		return more, final, nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.writeTimeout))
	n, err := c.nc.Write(buf)
	c.srv.stats.bytesOut.Add(uint64(n))
	if err != nil && !c.isKicked() && !c.srv.closing.Load() {
		c.log.Debug("write failed", "client", c.info.ClientID, "err", err) // not when the broker closed the connection itself
	}
	return more, final, err
}

// take moves messages from the session to the wire: first the in-flight
// ones to resend after a reconnect, then the retained backlog, then the
// queue, while the in-flight window has room and the batch is not full.
func (c *conn) take() ([]out, bool) {
	s := c.sess
	s.mu.Lock()
	defer s.mu.Unlock()
	outs := (*outPool.Get().(*[]out))[:0]
	now := time.Now()
	// Resend in the order first sent (Outbound.Resume at CONNECT, or
	// markRetries), within the in-flight window: a client that reconnects
	// with a smaller Receive Maximum gets no more than it allows
	// [v5 MQTT-3.3.4-9]; new messages wait behind them.
	for len(outs) < 256 {
		id, f, ok := s.out.NextResend(now)
		if !ok {
			break
		}
		// A resend keeps its packet id and has DUP 1 [v5 MQTT-3.3.1-1]; a
		// QoS 2 message whose PUBREC came is resent as PUBREL, never as
		// PUBLISH [v5 MQTT-4.3.3-6]. A PUBLISH once sent is resent whatever
		// its Message Expiry Interval says [v5 MQTT-4.3.3-7].
		// The same packet id, DUP 1 [v3 MQTT-2.3.1-4] [v3 MQTT-3.3.1-1]; a
		// released QoS 2 message gets its PUBREL, never the PUBLISH again
		// [v3 MQTT-4.3.3-1].
		outs = append(outs, out{d: f.Item, id: id, dup: true, rel: f.Released})
	}
	if s.out.Resending() {
		return outs, len(outs) == 256
	}
	for len(outs) < 256 {
		q := &s.backlog
		if q.Len() == 0 {
			q = &s.queue
			if s.hold > 0 {
				return outs, false // a subscription is being set up; onSubscribe kicks us
			}
		}
		if q.Len() == 0 {
			return outs, false
		}
		d := *q.Peek()
		if d.ctl != nil {
			q.Pop()
			outs = append(outs, out{d: d})
			continue
		}
		if d.qos > 0 && s.out.Full() {
			// The send quota is used up: no QoS > 0 PUBLISH until an
			// acknowledgement frees one [v5 MQTT-4.9.0-2].
			return outs, false // the window is full; a PUBACK will wake us
		}
		q.Pop()
		if d.msg.Expired(now) {
			continue // [v5 MQTT-3.3.2-5] an expired message is not delivered
		}
		var id uint16 // QoS 0: no packet id, DUP 0 [v3 MQTT-4.3.1-1]
		if d.qos > 0 {
			// A packet id not in use [v3 MQTT-2.3.1-4], held until the
			// PUBACK or PUBCOMP [v3 MQTT-4.3.2-1] [v3 MQTT-4.3.3-1].
			// A new message gets a non-zero packet id not in use
			// [v5 MQTT-2.2.1-4] [v5 MQTT-4.3.2-1] [v5 MQTT-4.3.3-1],
			// unacknowledged until its PUBACK [v5 MQTT-4.3.2-3], or its
			// PUBREC [v5 MQTT-4.3.3-3] and then PUBCOMP [v5 MQTT-4.3.3-5].
			var ok bool
			if id, ok = s.out.Add(d, d.qos, now); !ok {
				q.PushFront(d) // every packet id is in use
				return outs, false
			}
		}
		// First sent with DUP 0 [v5 MQTT-4.3.1-1] [v5 MQTT-4.3.2-2] [v5 MQTT-4.3.3-2].
		outs = append(outs, out{d: d, id: id})
	}
	return outs, true
}

// markRetries sends again, in order, the in-flight messages when one is
// unacknowledged for longer than the retry interval (MQTT 3.1 / 3.1.1
// only).
func (c *conn) markRetries() {
	s := c.sess
	limit := time.Now().Add(-c.srv.cfg.retryInterval)
	s.mu.Lock()
	if s.out.Overdue(limit) {
		s.out.Resume()
	}
	s.mu.Unlock()
}

func (c *conn) appendCtrl(buf []byte, p ctrlPkt) []byte {
	v := c.version
	var err error
	start := len(buf)
	if p.p == nil {
		code := p.code
		if v != packet.V5 {
			code = 0
		}
		// Spelled out on the stack: no allocation per acknowledgement
		// (only the trace log, when on, builds a packet to print).
		switch p.t {
		case packet.PUBACK:
			pk := packet.Puback{PacketID: p.id, ReasonCode: code}
			buf, err = pk.Append(buf, v)
		case packet.PUBREC:
			pk := packet.Pubrec{PacketID: p.id, ReasonCode: code}
			buf, err = pk.Append(buf, v)
		case packet.PUBREL:
			pk := packet.Pubrel{PacketID: p.id, ReasonCode: code}
			buf, err = pk.Append(buf, v)
		case packet.PUBCOMP:
			pk := packet.Pubcomp{PacketID: p.id, ReasonCode: code}
			buf, err = pk.Append(buf, v)
		case packet.PINGRESP:
			pk := packet.Pingresp{}
			buf, err = pk.Append(buf, v)
		}
		if c.trace && err == nil {
			c.log.Log(context.Background(), LevelTrace, "send", "client", c.info.ClientID, "packet", ackPacket(p.t, p.id, code).String())
		}
	} else {
		buf, err = packet.AppendFitting(buf, p.p, v, c.maxOut) // [v5 MQTT-3.1.2-24]
	}
	if err != nil {
		c.log.Error("cannot encode packet", "client", c.info.ClientID, "packet", p.t, "err", err)
		return buf[:start]
	}
	if c.trace && p.p != nil {
		c.log.Log(context.Background(), LevelTrace, "send", "client", c.info.ClientID, "packet", p.p.String())
	}
	return buf
}

// appendOut encodes one message for the wire. A message larger than the
// client's maximum packet size is not sent [v5 MQTT-3.1.2-24]: it is
// counted as dropped and completed as if it had been sent
// [v5 MQTT-3.1.2-25].
func (c *conn) appendOut(buf []byte, o *out, now time.Time) []byte {
	if o.d.ctl != nil {
		return c.appendCtrl(buf, ctrlPkt{p: o.d.ctl})
	}
	if o.rel {
		pk := packet.Pubrel{PacketID: o.id}
		b, _ := pk.Append(buf, c.version)
		if c.trace {
			c.log.Log(context.Background(), LevelTrace, "send", "client", c.info.ClientID, "packet", pk.String(), "resend", true)
		}
		return b
	}
	p := o.d.wireForm(o.id, o.dup, c.version, now)
	newAlias := c.aliasOut.Apply(&p) // [v5 MQTT-3.3.2-11] [v5 MQTT-3.1.2-26] [v5 MQTT-3.1.2-27]
	start := len(buf)
	b, err := p.Append(buf, c.version)
	if err == nil && c.maxOut > 0 && len(b)-start > int(c.maxOut) {
		err = errTooLarge // [v5 MQTT-3.1.2-24]
	}
	if err == nil && newAlias != 0 {
		c.aliasOut.Commit(o.d.msg.Topic, newAlias) // the client knows it once this PUBLISH is sent
	}
	if err != nil {
		if o.id != 0 {
			c.sess.unsent(c.srv, o.id, o.d.qos)
			c.signal() // the window has room again: look at the queue once more
		}
		c.srv.dropped(c.sess, o.d.msg, err)
		c.log.Debug("message not sent", "client", c.info.ClientID, "topic", o.d.msg.Topic, "err", err)
		return buf[:start]
	}
	c.srv.stats.countOut(o.d.qos, len(o.d.msg.Payload))
	if c.trace {
		c.log.Log(context.Background(), LevelTrace, "send", "client", c.info.ClientID, "packet", p.String())
	}
	return b
}

// ackPacket builds, on the heap, the packet a ctrlPkt without p stands
// for: an acknowledgement or PINGRESP. appendCtrl encodes those on the
// stack instead; this is for the trace log and for acknowledgements that
// carry a reason string.
func ackPacket(t packet.Type, id uint16, code packet.ReasonCode) packet.Packet {
	switch t {
	case packet.PUBACK:
		return &packet.Puback{PacketID: id, ReasonCode: code}
	case packet.PUBREC:
		return &packet.Pubrec{PacketID: id, ReasonCode: code}
	case packet.PUBREL:
		return &packet.Pubrel{PacketID: id, ReasonCode: code}
	case packet.PUBCOMP:
		return &packet.Pubcomp{PacketID: id, ReasonCode: code}
	}
	return &packet.Pingresp{}
}

// storeSent stores the packet ids of the stored QoS 2 messages about to
// be sent for the first time, before they are written: after a restart
// each is resent with DUP under the same id, which the client knows as a
// duplicate [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2]. (QoS 1 messages are
// sent again as new ones, which QoS 1 allows, so their ids are not
// stored.) If the store fails, the messages go anyway: the client has a
// better chance of getting them once than not at all.
func (c *conn) storeSent(outs []out) {
	var cs []store.Change
	for i := range outs {
		o := &outs[i]
		if o.d.seq != 0 && o.d.qos == 2 && !o.dup && o.id != 0 {
			cs = append(cs, store.Sent(c.sess.id, o.d.seq, o.id))
		}
	}
	c.srv.persist("packet ids of QoS 2 messages sent", cs...)
}
