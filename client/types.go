package client

import (
	"context"
	"sync"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// Connack is the server's answer to a successful CONNECT.
type Connack struct {
	SessionPresent bool
	ReasonCode     packet.ReasonCode // 0 on success
	Properties     packet.Properties // MQTT 5: what the server announced
	Server         string            // the URL connected to
}

// PublishResult is the server's acknowledgement of a publish: the PUBACK
// (QoS 1) or the PUBREC and PUBCOMP (QoS 2). QoS 0 publishes have a zero
// result once written to the network.
type PublishResult struct {
	PacketID   uint16
	ReasonCode packet.ReasonCode // MQTT 5; 0x10 No matching subscribers is a success
	Properties packet.Properties // MQTT 5: ReasonString, User
}

// Token is a publish on its way (PublishAsync). It completes once: with
// the acknowledgement, or with an error.
//
// Its channel is made only when someone waits before it completes (Done,
// or Wait on a token not yet complete): a windowed publisher that waits
// on tokens mostly complete already makes none.
type Token struct {
	mu       sync.Mutex
	finished bool          // under mu
	done     chan struct{} // under mu: made on demand, closed on completion
	res      PublishResult // set before finished, read-only after
	err      error
}

func newToken() *Token { return &Token{} }

// complete records the outcome; only the first call counts. A nil token
// (a message restored from the store) is fine.
func (t *Token) complete(res PublishResult, err error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return
	}
	t.res, t.err = res, err
	t.finished = true
	if t.done != nil {
		close(t.done)
	}
}

// Done is closed when the publish completed.
func (t *Token) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		t.done = make(chan struct{})
		if t.finished {
			close(t.done)
		}
	}
	return t.done
}

// Wait waits until the publish completes or ctx ends, and returns its
// outcome or ctx's error. A QoS 1 or 2 message accepted into the session
// is still delivered after ctx ends. Every call returns the same
// *PublishResult, the token's own: read it, do not change it.
func (t *Token) Wait(ctx context.Context) (*PublishResult, error) {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return &t.res, t.err
	}
	if t.done == nil {
		t.done = make(chan struct{})
	}
	done := t.done
	t.mu.Unlock()
	select {
	case <-done:
		return &t.res, t.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Message is an application message received from the server.
type Message struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Dup        bool
	PacketID   uint16
	Properties packet.Properties // MQTT 5: every property, SubscriptionIDs included

	c     *Client
	entry *ackEntry // QoS 1 and 2 until acknowledged
	acked bool
}

// Handler receives messages. Each subscription calls its handler from one
// goroutine of its own, in the order the messages arrived, so a slow
// handler delays only its own subscription; it may publish, subscribe and
// unsubscribe. A subscription buffers up to Config.MaxBuffered messages
// for its handler: beyond that QoS 0 messages for it are dropped (logged,
// and counted by Subscription.Dropped), and QoS 1 and 2 ones are kept but
// acknowledged only once the handler takes them, so that the server's
// in-flight limit (the client's Receive Maximum) stops the flow.
type Handler func(*Message)

// Ack acknowledges a QoS 1 or 2 message when Config.ManualAck is set
// (otherwise, and for QoS 0, it does nothing). Acknowledgements go out in
// the order the messages arrived [v5 MQTT-4.6.0-2] [v3 MQTT-4.6.0-2]: a
// message acknowledged before an earlier one waits for it. A message
// whose connection broke is not acknowledged: the server sends it again.
func (m *Message) Ack() {
	if m.c == nil || !m.c.cfg.ManualAck {
		return
	}
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.acked || m.entry == nil {
		return
	}
	m.acked = true
	m.c.releaseLocked(m.entry)
}

// pubOp is one publish accepted by the client.
type pubOp struct {
	msg    *message.Message
	seq    uint64 // store sequence number; 0 for QoS 0
	tok    *Token // &token; nil for messages restored from the store
	token  Token
	stored bool // QoS 1 and 2: in the store (under c.mu)
}

// ready reports whether op may be sent: QoS 0, or in the store.
func (op *pubOp) ready() bool { return op.seq == 0 || op.stored }
