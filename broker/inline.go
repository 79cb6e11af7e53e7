package broker

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

// inlineSink delivers the messages of an in-process subscription to a Go
// function, in order, on a goroutine of its own.
type inlineSink struct {
	handler func(*Message)
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	drain   bool // set (before quit is closed) by stopDraining
}

func (in *inlineSink) kick() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *inlineSink) stop() {
	in.once.Do(func() { close(in.quit) })
	<-in.done
}

// stopDraining stops the sink after its handler has been given every
// message already queued: at Shutdown and Close, so that the wills
// published while the connections closed reach inline subscribers.
func (in *inlineSink) stopDraining() {
	in.once.Do(func() { in.drain = true; close(in.quit) })
	<-in.done
}

// Publish publishes a message from the broker itself (the inline client),
// as if a client had sent it: retained messages are stored and every
// matching subscriber gets it. It does not block on slow subscribers.
// With a Backplane, the message also goes to the other nodes; an error
// wrapping backplane.ErrUnreachable says it could not (it was delivered
// on this node). With a Store, an error says the store did not keep the
// message, and it was not published.
func (s *Server) Publish(topicName string, payload []byte, qos byte, retain bool) error {
	return s.PublishMessage(&Message{Topic: topicName, Payload: payload, QoS: qos, Retain: retain})
}

// PublishMessage is Publish with MQTT 5 properties: m.Properties are
// passed on to MQTT 5 subscribers. The broker takes ownership of m. With
// a Store, an error says the message could not be kept, and it was not
// published.
func (s *Server) PublishMessage(m *Message) error {
	_, err := s.publishInline(m, nil)
	return err
}

// publishInline publishes m for the client of info (nil: the broker
// itself) and returns the number of sessions and groups it went to.
func (s *Server) publishInline(m *Message, info *ClientInfo) (int, error) {
	if err := s.init(); err != nil {
		return 0, err
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return 0, err
	}
	if m.QoS > 2 {
		return 0, errors.New("broker: QoS must be 0, 1 or 2")
	}
	if s.isClosed() {
		return 0, ErrServerClosed
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	if m.Expires.IsZero() && m.Properties.MessageExpiry > 0 {
		m.Expires = m.Created.Add(time.Duration(m.Properties.MessageExpiry) * time.Second)
	}
	s.stats.countIn(m)
	n, err := s.publishStored(m, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("broker: the store did not keep the message: %w", err)
	}
	err = s.clusterPublish(m) // cluster.go
	if s.bp != nil {
		n++ // other nodes may have subscribers
	}
	if len(s.Observers) > 0 {
		if info == nil {
			info = inlineInfo()
		}
		s.observe(Event{Kind: EventPublish, Client: info, Topic: m.Topic, QoS: m.QoS, Message: m})
	}
	return n, err
}

// inlineInfo returns the ClientInfo of the broker's in-process client.
func inlineInfo() *ClientInfo { return &ClientInfo{Inline: true, Version: packet.V5} }

// Subscribe subscribes the inline client to filter: handler is called,
// on a goroutine of the subscription's own and in order, for every
// matching message, with the QoS of the message capped at qos. Retained
// messages matching filter are delivered first. A "$share/{group}/{filter}"
// filter joins a shared subscription group instead: each message goes
// to one member of the group, and no retained messages are sent. The
// returned function
// ends the subscription and waits for a running handler to return.
// Messages wait in a queue bounded by MaxQueuedMessages; a handler that
// falls behind loses messages, counted as drops.
func (s *Server) Subscribe(filter string, qos byte, handler func(*Message)) (unsubscribe func(), err error) {
	if err := s.init(); err != nil {
		return nil, err
	}
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, err
	}
	if qos > 2 {
		return nil, errors.New("broker: QoS must be 0, 1 or 2")
	}
	in := &inlineSink{handler: handler, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	ss := newSession("", s.sessSeq.Add(1))
	ss.inline = in
	ss.online.Store(true)
	ss.info = *inlineInfo()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrServerClosed
	}
	if s.inlines == nil {
		s.inlines = map[*session]struct{}{}
	}
	s.inlines[ss] = struct{}{}
	s.bgWG.Add(1)
	s.mu.Unlock()
	go s.inlineLoop(ss)
	sub := subscription{QoS: qos}
	ss.holdQueue(true) // retained first, then live messages (see onSubscribe)
	s.subscribe(ss, filter, sub)
	var retained []delivery
	if !topic.IsShared(filter) {
		retained = s.retainedFor(nil, filter, sub) // none for a shared subscription (section 4.8.2)
	}
	ss.mu.Lock()
	for _, d := range retained {
		ss.backlog.Push(d)
	}
	ss.mu.Unlock()
	ss.holdQueue(false)
	in.kick()
	s.observe(Event{Kind: EventSubscribe, Client: inlineInfo(), Topic: filter, QoS: qos})
	return func() {
		removed := s.unsubscribe(ss, filter)
		in.stop()
		s.mu.Lock()
		delete(s.inlines, ss)
		s.mu.Unlock()
		if removed { // not again if called twice
			s.observe(Event{Kind: EventUnsubscribe, Client: inlineInfo(), Topic: filter})
		}
	}, nil
}

func (s *Server) inlineLoop(ss *session) {
	defer s.bgWG.Done()
	in := ss.inline
	defer close(in.done)
	for {
		stopping := false
		select {
		case <-in.quit:
			if !in.drain {
				return
			}
			stopping = true // deliver what is queued, then stop
		case <-in.wake:
		}
		for {
			ss.mu.Lock()
			var batch []delivery
			for ss.backlog.Len() > 0 && len(batch) < 256 {
				batch = append(batch, ss.backlog.Pop())
			}
			for ss.hold == 0 && ss.queue.Len() > 0 && len(batch) < 256 {
				batch = append(batch, ss.queue.Pop())
			}
			ss.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			now := time.Now()
			for _, d := range batch {
				select {
				case <-in.quit:
					if !in.drain {
						return
					}
				default:
				}
				if d.msg == nil || d.msg.Expired(now) {
					continue
				}
				m := *d.msg
				m.QoS = d.qos
				m.Retain = d.retain
				in.handler(&m)
			}
		}
		if stopping {
			return
		}
	}
}
