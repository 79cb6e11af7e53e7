package client

import (
	"fmt"
	"strings"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/session"
)

// handle acts on one packet from the server. An error ends the
// connection (a *packet.ProtocolError: with a DISCONNECT of its code).
func (c *Client) handle(cn *conn, p packet.Packet) error {
	switch p := p.(type) {
	case *packet.Publish:
		return c.handlePublish(cn, p)
	case *packet.Puback:
		c.mu.Lock()
		f, ok := c.out.Ack(p.PacketID)
		if ok {
			c.finishFlightLocked(cn, f.Item, packet.PUBACK, p.PacketID, p.ReasonCode, p.Properties)
			c.signalRoomLocked(cn)
		}
		c.mu.Unlock()
	case *packet.Pubrec:
		c.mu.Lock()
		var seq uint64
		released := false
		if f := c.out.Get(p.PacketID); f != nil {
			seq, released = f.Item.seq, f.Released
		}
		res, f := c.out.Rec(p.PacketID, p.ReasonCode, time.Now())
		switch res {
		case session.RecRelease:
			if !released {
				if err := c.store.MarkReleased(seq); err != nil {
					c.log.Error("store: MarkReleased", "err", err)
				}
			}
			cn.ctrl = append(cn.ctrl, &packet.Pubrel{PacketID: p.PacketID}) // [v5 MQTT-4.3.3-3] [v3 MQTT-4.3.3-1]
		case session.RecFailed:
			c.finishFlightLocked(cn, f.Item, packet.PUBREC, p.PacketID, p.ReasonCode, p.Properties)
		default:
			rel := &packet.Pubrel{PacketID: p.PacketID}
			if cn.version == packet.V5 {
				rel.ReasonCode = packet.PacketIdentifierNotFound
			}
			cn.ctrl = append(cn.ctrl, rel)
		}
		c.mu.Unlock()
		cn.signal()
	case *packet.Pubcomp:
		c.mu.Lock()
		if f, ok := c.out.Comp(p.PacketID); ok {
			c.finishFlightLocked(cn, f.Item, packet.PUBCOMP, p.PacketID, p.ReasonCode, p.Properties)
			c.signalRoomLocked(cn)
		}
		c.mu.Unlock()
	case *packet.Pubrel:
		c.mu.Lock()
		found := c.in.Release(p.PacketID)
		if found {
			if err := c.store.DeleteIncoming(p.PacketID); err != nil {
				c.log.Error("store: DeleteIncoming", "err", err)
			}
		}
		comp := &packet.Pubcomp{PacketID: p.PacketID}
		if !found && cn.version == packet.V5 {
			comp.ReasonCode = packet.PacketIdentifierNotFound // [v5 MQTT-4.3.3-11]
		}
		cn.ctrl = append(cn.ctrl, comp)
		c.mu.Unlock()
		cn.signal()
	case *packet.Suback:
		c.finishCtrl(cn, p.PacketID, p)
	case *packet.Unsuback:
		c.finishCtrl(cn, p.PacketID, p)
	case *packet.Pingresp:
	case *packet.Disconnect:
		return &DisconnectError{ReasonCode: p.ReasonCode, Properties: p.Properties}
	case *packet.Auth:
		return c.handleAuth(cn, p)
	default:
		return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: p.Type(), Spec: "v5 noid:client-unexpected",
			Msg: fmt.Sprintf("a server does not send %v to a client", p.Type())}
	}
	return nil
}

// finished is a QoS 1 or 2 publish whose exchange the server ended: to
// be deleted from the store, then reported to its publisher.
type finished struct {
	seq uint64
	tok *Token
	res PublishResult
	err error
}

// maxFinished bounds the acknowledgements the reader gathers before it
// completes them.
const maxFinished = 256

// finishFlightLocked ends a QoS 1 or 2 publish the server acknowledged
// (the flight is out of the session already). Its store deletion and its
// publisher's answer are made by the reader without the lock
// (flushFinished), once no further packet is buffered, so that a burst of
// acknowledgements shares the store's fsyncs.
func (c *Client) finishFlightLocked(cn *conn, op *pubOp, t packet.Type, id uint16, code packet.ReasonCode, props packet.Properties) {
	if !props.IsZero() {
		props = cloneAckProps(props) // the Reader reuses the acknowledgement (ReuseAcks)
	}
	res := PublishResult{PacketID: id, ReasonCode: code, Properties: props}
	var err error
	// A PUBCOMP ends an exchange whose PUBREC already accepted the
	// message: its code (0x92 after a PUBREL sent again, when the first
	// PUBCOMP was lost) is reported in the result, not as a failure.
	if code.IsError() && t != packet.PUBCOMP {
		err = &ReasonError{Packet: t, ReasonCode: code, Properties: props}
	}
	cn.finished = append(cn.finished, finished{seq: op.seq, tok: op.tok, res: res, err: err})
	c.wakeRoomLocked()
}

// flushFinished deletes the finished publishes from the store and then
// completes their tokens: a publish is reported done only once the store
// has let go of it. Called by the reader, without the lock.
func (c *Client) flushFinished(cn *conn) {
	f := cn.finished
	if len(f) == 0 {
		return
	}
	if c.storeInline(len(f)) {
		for i := range f {
			c.deleteOutgoing(f[i].seq)
		}
	} else {
		c.storeConcurrently(len(f), func(i int) { c.deleteOutgoing(f[i].seq) })
	}
	for i := range f {
		f[i].tok.complete(f[i].res, f[i].err)
		f[i] = finished{}
	}
	cn.finished = f[:0]
}

// deleteOutgoing removes a finished publish from the store.
func (c *Client) deleteOutgoing(seq uint64) {
	c.timeStore(func() {
		if err := c.store.DeleteOutgoing(seq); err != nil {
			c.log.Error("store: DeleteOutgoing", "err", err)
		}
	})
}

// handlePublish takes a PUBLISH: aliases, QoS 2 exactly-once state,
// routing to the subscriptions, and the acknowledgement in receive order.
func (c *Client) handlePublish(cn *conn, p *packet.Publish) error {
	if cn.version == packet.V5 {
		if err := cn.inAliases.Resolve(p); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var e *ackEntry
	deliver := true
	switch p.QoS {
	case 1:
		e = &ackEntry{cn: cn, id: p.PacketID, qos: 1}
	case 2:
		first, err := c.in.Receive(p.PacketID)
		if err != nil {
			return err
		}
		e = &ackEntry{cn: cn, id: p.PacketID, qos: 2}
		if first {
			if err := c.store.AddIncoming(p.PacketID); err != nil {
				c.log.Error("store: AddIncoming", "err", err)
			}
		} else {
			deliver = false // [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2]
			if orig := c.unacked2[p.PacketID]; orig != nil && orig.pending > 0 {
				// Still unacknowledged by the application (ManualAck):
				// the PUBREC waits for it.
				e.pending = 1
				orig.follow = e
			}
		}
	}
	if e != nil {
		cn.acks = append(cn.acks, e)
	}
	if deliver {
		m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Dup: p.Dup, PacketID: p.PacketID, Properties: p.Properties, c: c}
		m.Properties.TopicAlias = 0
		m.Properties.Unmark(packet.PropTopicAlias)
		c.routeLocked(m, e)
	}
	if e != nil && e.pending > 0 && e.qos == 2 && deliver {
		c.unacked2[e.id] = e
	}
	c.flushAcksLocked(cn)
	return nil
}

// releaseLocked counts one delivery of e as accepted; at zero its
// acknowledgement may go, in order.
func (c *Client) releaseLocked(e *ackEntry) {
	if e == nil || e.pending == 0 {
		return
	}
	e.pending--
	if e.pending > 0 {
		return
	}
	if e.qos == 2 && c.unacked2[e.id] == e {
		delete(c.unacked2, e.id)
	}
	if c.cn == e.cn {
		c.flushAcksLocked(e.cn)
	}
	if f := e.follow; f != nil {
		e.follow = nil
		c.releaseLocked(f)
	}
}

// flushAcksLocked queues the acknowledgements that are due, in the order
// the PUBLISHes came [v5 MQTT-4.6.0-2] [v5 MQTT-4.6.0-3] [v3 MQTT-4.6.0-2] [v3 MQTT-4.6.0-3].
func (c *Client) flushAcksLocked(cn *conn) {
	n := 0
	for _, e := range cn.acks {
		if e.pending > 0 {
			break
		}
		if e.qos == 1 {
			cn.ctrl = append(cn.ctrl, &packet.Puback{PacketID: e.id})
		} else {
			cn.ctrl = append(cn.ctrl, &packet.Pubrec{PacketID: e.id})
		}
		n++
	}
	if n > 0 {
		clear(cn.acks[:n])
		cn.acks = cn.acks[n:]
		if len(cn.acks) == 0 {
			cn.acks = nil
		}
		cn.signal()
	}
}

// signalRoomLocked wakes the writer after an acknowledgement freed a place
// in the window, if something waits for one (a queued message or a
// resend); otherwise the writer sleeps on.
func (c *Client) signalRoomLocked(cn *conn) {
	if c.queue.Len() > 0 || c.out.Resending() {
		cn.signal()
	}
}

// cloneAckProps copies what an acknowledgement's properties may hold
// (Reason String, User Properties) out of the Reader's reused storage.
func cloneAckProps(p packet.Properties) packet.Properties {
	p.ReasonString = strings.Clone(p.ReasonString)
	if p.User != nil {
		u := make([]packet.UserProperty, len(p.User))
		for i, kv := range p.User {
			u[i] = packet.UserProperty{Key: strings.Clone(kv.Key), Value: strings.Clone(kv.Value)}
		}
		p.User = u
	}
	return p
}
