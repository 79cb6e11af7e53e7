package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/topic"
)

// Publish sends m and waits for its acknowledgement: the PUBACK of QoS 1,
// the PUBCOMP of QoS 2, or for QoS 0 the write to the network. It
// returns the server's reason code and properties; an MQTT 5 reason code
// of 0x80 or above is a *ReasonError.
//
// A QoS 1 or 2 message is accepted into the session (and Config.Store)
// before Publish waits: once accepted it is delivered even if ctx ends
// first, across reconnects and, with a durable store, restarts. If the
// queue is full (Config.MaxQueued), Publish waits for room until ctx ends;
// the message is then not accepted. A QoS 0 message published while the
// client is offline fails with ErrDropped unless Config.QueueQoS0 is set.
//
// An MQTT 5 message with a Message Expiry Interval (counted from
// m.Created, or from now) that passes while it waits in the client's
// queue is not sent: Publish fails with ErrExpired, reported when it is
// next due to be sent or at the next reconnection attempt, whichever
// comes first. Sent late, it carries the interval that remains.
//
// When nothing else is being written on the connection, Publish writes
// the message from its own goroutine (see "Goroutines and the write
// path" in the package documentation); that write, like the writer's, is
// bounded by Config.WriteTimeout.
//
// m must not be changed until Publish returns.
func (c *Client) Publish(ctx context.Context, m *message.Message) (*PublishResult, error) {
	tok, cn, err := c.enqueue(ctx, m, true)
	if err != nil {
		return nil, err
	}
	if cn != nil {
		cn.flushInline()
	}
	return tok.Wait(ctx)
}

// PublishAsync is Publish without waiting: the Token tells the outcome.
// A full queue completes the token at once with ErrQueueFull.
func (c *Client) PublishAsync(m *message.Message) *Token {
	tok, _, err := c.enqueue(context.Background(), m, false)
	if err != nil {
		tok = newToken()
		tok.complete(PublishResult{}, err)
	}
	return tok
}

// checkPublish validates m for version v.
func checkPublish(m *message.Message, v packet.Version) error {
	if m == nil {
		return errors.New("client: Publish: nil message")
	}
	if m.QoS > 2 {
		return fmt.Errorf("client: Publish: QoS %d: use 0, 1 or 2", m.QoS)
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("client: Publish: %w", err)
	}
	if v != packet.V5 && !m.Properties.IsZero() {
		return errors.New("client: Publish: message properties need MQTT 5 (Config.Version)")
	}
	return nil
}

// enqueue accepts m into the queue. With wait (Publish) it waits for
// room and returns the live connection, if any, for the caller to flush;
// without (PublishAsync) it wakes the writer.
func (c *Client) enqueue(ctx context.Context, m *message.Message, wait bool) (*Token, *conn, error) {
	if err := checkPublish(m, c.cfg.Version); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed {
			return nil, nil, ErrClosed
		}
		if c.gone != nil {
			return nil, nil, c.gone
		}
		if m.QoS == 0 && c.cn == nil && !c.cfg.QueueQoS0 {
			return nil, nil, ErrDropped
		}
		if c.queue.Len() < c.cfg.MaxQueued {
			break
		}
		if !wait {
			return nil, nil, ErrQueueFull
		}
		room := c.room
		c.roomWaiters++
		c.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			c.mu.Lock()
			c.roomWaiters--
			return nil, nil, fmt.Errorf("client: publish queue full (Config.MaxQueued %d), message not accepted: %w", c.cfg.MaxQueued, ctx.Err())
		}
		c.mu.Lock()
		c.roomWaiters--
	}
	if c.cn != nil && c.cn.version == packet.V5 {
		if err := c.serverAllowsLocked(m); err != nil {
			return nil, nil, err
		}
	}
	if m.Properties.MessageExpiry > 0 || !m.Expires.IsZero() {
		// Only a message that expires needs the clock.
		now := time.Now()
		if m.Expires.IsZero() {
			mm := *m
			mm.SetExpiry(now)
			m = &mm
		}
		if m.Expired(now) {
			return nil, nil, expiredError(m)
		}
	}
	op := &pubOp{msg: m}
	op.tok = &op.token // one allocation for both
	if m.QoS > 0 {
		// Acknowledged means kept: the message is in the store before
		// Publish says it is accepted, and before it is sent. Its place
		// in the queue (and its store sequence, the order a restart
		// resends in) is taken now, under the lock; the store write is
		// made without it, so that the reader, the writer and other
		// publishers go on meanwhile and concurrent publishers share the
		// store's fsyncs (group commit). The writer stops at a message
		// not yet stored.
		//
		// A fast store (memory, or disk without Sync) is written under
		// the lock, which costs less than leaving and taking it again.
		c.seq++
		op.seq = c.seq
		var err error
		add := func() { err = c.store.AddOutgoing(store.Outgoing{Seq: op.seq, Msg: m}) }
		if c.slowStore() {
			c.queue.Push(op)
			c.mu.Unlock()
			c.timeStore(add)
			c.mu.Lock()
			// A Disconnect flushing the queue waits for this write. (One
			// that came meanwhile and found the client offline answered
			// ErrClosed already; the message stays in the store, as the
			// other queued messages do, for a durable store's next process.)
			c.progressedLocked()
		} else {
			c.timeStore(add)
			if err == nil {
				c.queue.Push(op)
			}
		}
		if err != nil {
			c.queue.Extract(func(x **pubOp) bool { return *x == op })
			c.wakeRoomLocked()
			return nil, nil, fmt.Errorf("client: Publish: message not accepted, the store failed: %w", err)
		}
		op.stored = true
	} else {
		c.queue.Push(op)
	}
	if c.cn != nil {
		if wait {
			// One at a time: Publish writes it from its own goroutine
			// unless the writer is busy (conn.flushInline).
			return op.tok, c.cn, nil
		}
		c.cn.signal()
	}
	return op.tok, nil, nil
}

// expiredError is the error of a message that expired before it was sent.
func expiredError(m *message.Message) error {
	return fmt.Errorf("client: message to %q not sent: its Message Expiry Interval (%d s) passed while it was queued: %w",
		m.Topic, m.Properties.MessageExpiry, ErrExpired)
}

// expireLocked drops a queued message that expired before it was sent:
// out of the store, and its publisher told. The server deletes a message
// whose expiry passed before it could be delivered [v5 MQTT-3.3.2-5];
// the client applies the same rule to its own queue [v5 noid:client-expiry].
func (c *Client) expireLocked(op *pubOp) {
	if op.seq != 0 {
		if err := c.store.DeleteOutgoing(op.seq); err != nil {
			c.log.Error("store: DeleteOutgoing", "err", err)
		}
	}
	c.log.Info("queued message expired, not sent", "topic", op.msg.Topic, "expiry", op.msg.Properties.MessageExpiry)
	op.tok.complete(PublishResult{}, expiredError(op.msg))
}

// expireQueuedLocked drops every queued message that has expired by now,
// so that a publisher waiting while the client is offline hears of it
// before the next connection.
func (c *Client) expireQueuedLocked(now time.Time) {
	ops := c.queue.Extract(func(op **pubOp) bool { return (*op).ready() && (*op).msg.Expired(now) })
	for _, op := range ops {
		c.expireLocked(op)
	}
	if len(ops) > 0 {
		c.wakeRoomLocked()
	}
}

// serverAllowsLocked checks m against what the server announced in its
// CONNACK (MQTT 5 Maximum QoS, Retain Available).
func (c *Client) serverAllowsLocked(m *message.Message) error {
	p := &c.serverProps
	if p.Has(packet.PropMaximumQoS) && m.QoS > p.MaximumQoS {
		// [v5 MQTT-3.2.2-11]
		return fmt.Errorf("client: Publish: QoS %d is above the server's Maximum QoS %d", m.QoS, p.MaximumQoS)
	}
	if m.Retain && p.Has(packet.PropRetainAvailable) && p.RetainAvailable == 0 {
		// [v5 MQTT-3.2.2-14]
		return errors.New("client: Publish: the server does not support retained messages (Retain Available 0)")
	}
	return nil
}
