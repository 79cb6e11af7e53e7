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
	case <-c.goneCh:
		c.mu.Lock()
		defer c.mu.Unlock()
		return nil, c.gone
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// reqInit is the first Request's subscription to the response topics,
// which concurrent first Requests wait for instead of subscribing too.
type reqInit struct {
	done chan struct{}
	r    *requester
	err  error
}

// requester subscribes to the response topics the first time. Concurrent
// first calls share one subscription: one of them subscribes, the others
// wait for it (and try again themselves if it gave up because its own
// context ended).
func (c *Client) requester(ctx context.Context) (*requester, error) {
	for {
		c.mu.Lock()
		if r := c.reqs; r != nil {
			c.mu.Unlock()
			return r, nil
		}
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if p := c.reqInit; p != nil {
			c.mu.Unlock()
			select {
			case <-p.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if p.err == nil {
				return p.r, nil
			}
			if errors.Is(p.err, context.Canceled) || errors.Is(p.err, context.DeadlineExceeded) {
				continue // the leader's context ended, not ours: try ourselves
			}
			return nil, p.err
		}
		p := &reqInit{done: make(chan struct{})}
		c.reqInit = p
		c.mu.Unlock()
		p.r, p.err = c.subscribeResponses(ctx)
		c.mu.Lock()
		c.reqInit = nil
		if p.err == nil {
			c.reqs = p.r
		}
		c.mu.Unlock()
		close(p.done)
		return p.r, p.err
	}
}

// subscribeResponses makes the requester and its subscription.
func (c *Client) subscribeResponses(ctx context.Context) (*requester, error) {
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
