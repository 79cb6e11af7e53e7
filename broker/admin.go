package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

// The administration API: what an operator's tools (the HTTP API of
// package httpapi, a console, a program embedding the broker) read and do
// besides MQTT. Every call takes a snapshot under the broker's locks, one
// at a time and never two at once (LOCKING.md: the registry's lock, then
// each session's own, released before the next), and calls no hook while
// holding one.

// ClientStatus is a snapshot of one client session.
type ClientStatus struct {
	ClientID   string
	Username   string
	Version    packet.Version
	RemoteAddr string // "" while offline
	Listener   string // the listener of its connection ("" while offline)
	Connected  bool   // a connection is attached; false: a persistent session waiting for its client
	// KeepAlive is the keep alive in force on the connection (after the
	// Server Keep Alive); 0 for none or while offline.
	KeepAlive time.Duration
	// ConnectedSince is when its connection's CONNECT was accepted; zero
	// while offline.
	ConnectedSince time.Time
	Subscriptions  []SubscriptionStatus // sorted by filter
	Inflight       int                  // QoS 1 and 2 messages sent and not yet acknowledged
	Queued         int                  // messages waiting to be sent
}

// SubscriptionStatus is one subscription of a client session.
type SubscriptionStatus struct {
	ClientID          string
	Filter            string // as subscribed, "$share/{group}/" included
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubscriptionID    uint32 // 0: none
}

// ErrNoClient is returned by DisconnectClient for a client id that has no
// connection.
var ErrNoClient = errors.New("broker: no client connected with that id")

// sessionList returns the client sessions of the registry, without the
// broker's in-process ones, in no particular order.
func (s *Server) sessionList() []*session {
	s.regMu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		if ss.inline == nil {
			list = append(list, ss)
		}
	}
	s.regMu.Unlock()
	return list
}

// status is the snapshot of ss; ok is false for a session that ended
// meanwhile. withSubs fills in the subscriptions.
func (ss *session) status(withSubs bool) (st ClientStatus, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.removed {
		return st, false
	}
	st = ClientStatus{
		ClientID: ss.id,
		Username: ss.info.Username,
		Version:  ss.info.Version,
		Inflight: ss.out.Len(),
		Queued:   ss.queue.Len(),
	}
	if c := ss.conn; c != nil {
		// c's kaSecs and since were set before it was attached under
		// ss.mu, which we hold.
		st.Connected = true
		st.Listener = ss.info.Listener
		if a := ss.info.RemoteAddr; a != nil {
			st.RemoteAddr = a.String()
		}
		st.KeepAlive = time.Duration(c.kaSecs) * time.Second
		st.ConnectedSince = c.since
	}
	if withSubs && len(ss.subs) > 0 {
		st.Subscriptions = make([]SubscriptionStatus, 0, len(ss.subs))
		for f, sub := range ss.subs {
			st.Subscriptions = append(st.Subscriptions, SubscriptionStatus{
				ClientID: ss.id, Filter: f, QoS: sub.QoS, NoLocal: sub.NoLocal,
				RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, SubscriptionID: sub.SubID,
			})
		}
		slices.SortFunc(st.Subscriptions, func(a, b SubscriptionStatus) int { return strings.Compare(a.Filter, b.Filter) })
	}
	return st, true
}

// Clients returns a snapshot of every client session, connected or a
// persistent one waiting for its client, sorted by client id. The
// broker's own in-process subscriptions (Subscribe) are not clients.
func (s *Server) Clients() []ClientStatus {
	if s.init() != nil {
		return nil
	}
	list := s.sessionList()
	out := make([]ClientStatus, 0, len(list))
	for _, ss := range list {
		if st, ok := ss.status(true); ok {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b ClientStatus) int { return strings.Compare(a.ClientID, b.ClientID) })
	return out
}

// Client returns the snapshot of the session of one client id.
func (s *Server) Client(id string) (ClientStatus, bool) {
	if s.init() != nil {
		return ClientStatus{}, false
	}
	s.regMu.Lock()
	ss := s.sessions[id]
	s.regMu.Unlock()
	if ss == nil || ss.inline != nil {
		return ClientStatus{}, false
	}
	return ss.status(true)
}

// Subscriptions returns every subscription of the client sessions,
// sorted by client id and filter.
func (s *Server) Subscriptions() []SubscriptionStatus {
	var out []SubscriptionStatus
	for _, st := range s.Clients() {
		out = append(out, st.Subscriptions...)
	}
	return out
}

// DisconnectClient closes the connection of the client with this id, as
// an administrator's action: an MQTT 5 client gets DISCONNECT 0x98
// Administrative action first. Its will is published (it did not
// disconnect itself) and a persistent session stays. It returns
// ErrNoClient when no such client is connected.
func (s *Server) DisconnectClient(id string) error {
	if err := s.init(); err != nil {
		return err
	}
	s.regMu.Lock()
	ss := s.sessions[id]
	s.regMu.Unlock()
	if ss == nil || ss.inline != nil {
		return ErrNoClient
	}
	ss.mu.Lock()
	c := ss.conn
	ss.mu.Unlock()
	if c == nil {
		return ErrNoClient
	}
	c.log.Info("disconnecting client: administrative action", "client", id)
	c.closeWith(packet.AdministrativeAction)
	return nil
}

// Retained returns the retained messages whose topics match filter, at
// most limit of them (limit <= 0: 100), sorted by topic, and whether
// there were more. The broker's own $SYS messages match only a filter
// that starts with $SYS. Expired messages are left out.
func (s *Server) Retained(filter string, limit int) (msgs []*Message, more bool, err error) {
	if err := s.init(); err != nil {
		return nil, false, err
	}
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, false, fmt.Errorf("filter %q: %w", filter, err)
	}
	if limit <= 0 {
		limit = 100
	}
	var all []*Message
	s.retained.match(filter, func(m *Message) { all = append(all, m) })
	slices.SortFunc(all, func(a, b *Message) int { return strings.Compare(a.Topic, b.Topic) })
	if len(all) > limit {
		return all[:limit], true, nil
	}
	return all, false, nil
}

// Authenticate asks the broker's Authenticator about req, as at a
// CONNECT, with the same deadline (HookTimeout): for a program that
// admits clients by other ways than MQTT (package httpapi's HTTP users).
// A nil Authenticator accepts everybody. req.Username may be changed by
// the hook. A hook that panics is reported as an error.
func (s *Server) Authenticate(ctx context.Context, req *AuthRequest) (err error) {
	if err := s.init(); err != nil {
		return err
	}
	if _, allowAll := s.cfg.authn.(AllowAll); allowAll {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("broker: authenticator failed: %v", p)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // the server closing ends the wait
	defer stop()
	return s.authenticate(ctx, req)
}

// Authorize asks the broker's Authorizer whether the client of info may
// take action a on topic (a topic name for ActionPublish, a filter for
// ActionSubscribe), with the deadline HookTimeout: for a program that
// publishes and subscribes for others (package httpapi). A nil
// Authorizer allows everything; a hook that panics or overruns refuses.
func (s *Server) Authorize(info *ClientInfo, a Action, topicOrFilter string) (ok bool) {
	if s.init() != nil {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return s.authorize(info, a, topicOrFilter)
}

// addrString is a net.Addr for ClientInfo.RemoteAddr from a string such
// as an HTTP request's RemoteAddr.
type addrString struct{ network, addr string }

func (a addrString) Network() string { return a.network }
func (a addrString) String() string  { return a.addr }

// Addr returns a net.Addr for a network and address given as strings,
// for ClientInfo.RemoteAddr of clients that do not come through the
// broker's listeners (HTTP users).
func Addr(network, address string) net.Addr { return addrString{network, address} }

// PublishAs publishes m for the client of info that does not come
// through an MQTT listener (an HTTP user of package httpapi), with the
// checks a PUBLISH gets: a valid topic name, the Authorizer (a refusal
// is ErrNotAuthorized), the Maximum QoS (a *Refusal with 0x9B QoS not
// supported) and Retain Available (0x9A Retain not supported). It returns
// once the message is accepted: kept by the Store, if there is one, and
// in the queues of its subscribers. matched is the number of sessions and
// shared groups it went to (with a back plane, one more: the other
// nodes). The broker takes ownership of m.
func (s *Server) PublishAs(info *ClientInfo, m *Message) (matched int, err error) {
	if err := s.init(); err != nil {
		return 0, err
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return 0, &Refusal{Code: packet.TopicNameInvalid, Reason: fmt.Sprintf("topic %q: %v", m.Topic, err)}
	}
	if m.QoS > s.cfg.maxQoS {
		return 0, &Refusal{Code: packet.QoSNotSupported, Reason: fmt.Sprintf("QoS %d is above the broker's maximum QoS %d", m.QoS, s.cfg.maxQoS)}
	}
	if m.Retain && s.RetainUnavailable {
		return 0, &Refusal{Code: packet.RetainNotSupported, Reason: "the broker does not keep retained messages"}
	}
	if !s.Authorize(info, ActionPublish, m.Topic) {
		return 0, ErrNotAuthorized
	}
	m.From = info.ClientID
	return s.publishInline(m, info)
}

// AuthorizeReceive asks the Authorizer, when it is a ReceiveAuthorizer,
// whether the client of info may receive a message on topic, as the
// broker asks before each delivery to an MQTT client; true when it is
// not one.
func (s *Server) AuthorizeReceive(info *ClientInfo, topic string) (ok bool) {
	if s.init() != nil {
		return false
	}
	ra := s.cfg.recvAuthz
	if ra == nil {
		return true
	}
	defer func() {
		if p := recover(); p != nil {
			ok = false
		}
	}()
	return s.authorizeReceive(ra, info, topic)
}
