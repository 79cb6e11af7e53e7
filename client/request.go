package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// requester routes responses to the Requests waiting for them.
type requester struct {
	prefix  string // response topics are prefix + id
	sub     *Subscription
	waiting map[string]chan *Message // by correlation data
}

func (r *requester) closeLocked() { clear(r.waiting) }

// Request publishes req (MQTT 5) with a Response Topic of the client's
// own and fresh Correlation Data, and waits for the response: the first
// message on that topic carrying the same Correlation Data (MQTT 5
// section 4.10). The client subscribes to its response topics once, on
// the first Request. req's Topic, Payload, QoS and properties are used;
// its ResponseTopic and CorrelationData are set by Request.
func (c *Client) Request(ctx context.Context, req *message.Message) (*Message, error) {
	if c.cfg.Version != packet.V5 {
		return nil, errors.New("client: Request needs MQTT 5 (Config.Version)")
	}
	r, err := c.requester(ctx)
	if err != nil {
		return nil, err
	}
	var b [16]byte
	rand.Read(b[:])
	corr := string(b[:])
	ch := make(chan *Message, 1)
	c.mu.Lock()
	r.waiting[corr] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(r.waiting, corr)
		c.mu.Unlock()
	}()
	m := *req
	m.Properties.ResponseTopic = r.prefix + "r"
	m.Properties.CorrelationData = b[:]
	if _, err := c.Publish(ctx, &m); err != nil {
		return nil, err
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-c.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// requester subscribes to the response topics the first time.
func (c *Client) requester(ctx context.Context) (*requester, error) {
	c.mu.Lock()
	r := c.reqs
	c.mu.Unlock()
	if r != nil {
		return r, nil
	}
	var b [6]byte
	rand.Read(b[:])
	nr := &requester{prefix: "tern/rr/" + hex.EncodeToString(b[:]) + "/", waiting: map[string]chan *Message{}}
	sub, err := c.SubscribeWith(ctx, SubscribeOptions{
		Filters: []Filter{{Topic: nr.prefix + "#", QoS: 1}},
		Handler: func(m *Message) {
			c.mu.Lock()
			ch := nr.waiting[string(m.Properties.CorrelationData)]
			delete(nr.waiting, string(m.Properties.CorrelationData))
			c.mu.Unlock()
			if ch != nil {
				ch <- m // buffered, and taken out of the map: one send
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("client: Request: subscribing to the response topic: %w", err)
	}
	nr.sub = sub
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reqs != nil { // a concurrent first Request won
		return c.reqs, nil
	}
	c.reqs = nr
	return nr, nil
}

// Respond publishes response to the Response Topic of req with its
// Correlation Data: the server side of Request.
func (c *Client) Respond(ctx context.Context, req *Message, response *message.Message) (*PublishResult, error) {
	if req.Properties.ResponseTopic == "" {
		return nil, errors.New("client: Respond: the request has no Response Topic")
	}
	m := *response
	m.Topic = req.Properties.ResponseTopic
	m.Properties.CorrelationData = req.Properties.CorrelationData
	return c.Publish(ctx, &m)
}
