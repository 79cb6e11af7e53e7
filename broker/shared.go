package broker

import (
	"cmp"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	mqttsession "github.com/ternmq/tern/session"
	"github.com/ternmq/tern/topic"
)

// Shared subscriptions (MQTT 5 section 4.8.2, offered to 3.1.1 clients
// too): "$share/{group}/{filter}". The members of a group are stored in
// a trie of their own under the inner filter, keyed by (group, session),
// and each matching message goes to one member of each matching group,
// chosen by Server.SharedStrategy among the members that are connected
// (any member when none is). A delivery remembers its group, so that when
// a member's connection ends, what it had not yet been sent, and the QoS 1
// messages it had not acknowledged, go to another member.

// shareKey identifies one member of one group in the shared trie. The
// group is looked up once, at SUBSCRIBE, so routing needs no lookup.
type shareKey struct {
	g *shareGroup
	s *session
}

// shareGroup is one shared subscription group: a share name and the
// filter its members subscribed with. The round-robin position lives
// here. A group exists while it has members: the first SUBSCRIBE creates
// it, and it is freed when its last member leaves (UNSUBSCRIBE, the end
// of the session, a clean start), so that group names clients invent do
// not pile up. A group created again under the same name starts its
// round-robin afresh.
type shareGroup struct {
	name, filter string
	seq          uint64 // creation order, to sort matches by group
	next         atomic.Uint64
	// members counts the group's entries in the shared trie; -1 once the
	// group is freed, after which nobody may join it.
	members atomic.Int64
}

type groupID struct{ name, filter string }

// joinGroup returns the group of (name, filter), creating it, with one
// more member counted; the caller adds the member to the shared trie, or
// calls leaveGroup if it was a member already.
//
// A group is freed (members -1, then removed from Server.groups) only
// after its last member has left the shared trie, and a new group for the
// same (name, filter) is created only after that, so the trie never holds
// members of two groups of one (name, filter): a message cannot go to
// both, and one routed meanwhile reaches a member of the old group, which
// had left it after the message matched.
func (srv *Server) joinGroup(name, filter string) *shareGroup {
	id := groupID{name, filter}
	for {
		v, ok := srv.groups.Load(id)
		if !ok {
			// Cloned: name and filter may be slices of a SUBSCRIBE's buffer.
			g := &shareGroup{name: strings.Clone(name), filter: strings.Clone(filter), seq: srv.groupSeq.Add(1)}
			g.members.Store(1)
			if v, ok = srv.groups.LoadOrStore(groupID{g.name, g.filter}, g); !ok {
				srv.groupCount.Add(1)
				return g
			}
		}
		g := v.(*shareGroup)
		for {
			n := g.members.Load()
			if n < 0 {
				// Freed by its last member, who has not yet removed it:
				// remove it here and make a new one.
				srv.groups.CompareAndDelete(id, g)
				break
			}
			if g.members.CompareAndSwap(n, n+1) {
				return g
			}
		}
	}
}

// leaveGroup counts one member of g less, freeing g with its last one.
func (srv *Server) leaveGroup(g *shareGroup) {
	if g.members.Add(-1) == 0 && g.members.CompareAndSwap(0, -1) {
		srv.groups.CompareAndDelete(groupID{g.name, g.filter}, g)
		srv.groupCount.Add(-1)
	}
}

// shareMatch is one member of a group that a message matched.
type shareMatch struct {
	key shareKey
	sub subscription
}

var shareMatchPool = sync.Pool{New: func() any { s := make([]shareMatch, 0, 16); return &s }}

var hashSeed = maphash.MakeSeed()

// routeShared delivers m to one member of each shared subscription group
// whose filter matches, and returns the number of groups.
func (srv *Server) routeShared(m *Message) int {
	mp := shareMatchPool.Get().(*[]shareMatch)
	ms := (*mp)[:0]
	srv.shared.Match(m.Topic, func(_ string, k shareKey, sub subscription) bool {
		ms = append(ms, shareMatch{k, sub})
		return true
	})
	// Group by group; members in subscription order, so that the choice
	// is stable while the group does not change.
	slices.SortFunc(ms, func(a, b shareMatch) int {
		return cmp.Or(cmp.Compare(a.key.g.seq, b.key.g.seq), cmp.Compare(a.key.s.seq, b.key.s.seq))
	})
	n := 0
	for i := 0; i < len(ms); {
		j := i + 1
		for j < len(ms) && ms[j].key.g == ms[i].key.g {
			j++
		}
		g := ms[i].key.g
		srv.deliverShared(m, g, ms[i:j], srv.shareStart(m, g, j-i), nil, delivery{})
		n++
		i = j
	}
	clear(ms)
	*mp = ms[:0]
	shareMatchPool.Put(mp)
	return n
}

// shareStart is the member of a group of n matching members that the
// strategy offers m to first.
func (srv *Server) shareStart(m *Message, g *shareGroup, n int) int {
	switch srv.SharedStrategy {
	case SharedRandom:
		return rand.IntN(n)
	case SharedStickyClient:
		return int(maphash.String(hashSeed, m.From) % uint64(n))
	case SharedHashTopic:
		return int(maphash.String(hashSeed, m.Topic) % uint64(n))
	default:
		return int((g.next.Add(1) - 1) % uint64(n))
	}
}

// shareCandidates calls try with the members of a group in the order a
// message is offered to them: from start on, connected members before
// offline ones, skipping exclude, until try returns true.
func shareCandidates(members []shareMatch, start int, exclude *session, try func(mb *shareMatch) bool) bool {
	n := len(members)
	for pass := 0; pass < 2; pass++ {
		for i := range n {
			mb := &members[(start+i)%n]
			s := mb.key.s
			if s == exclude || (pass == 0) != s.online.Load() {
				continue
			}
			if try(mb) {
				return true
			}
		}
	}
	return false
}

// shareDelivery is what member mb of group g gets of m; prev, when it
// has a message, is a delivery being moved from another member: it keeps
// its QoS (and its seq and msgID, which the caller replaces).
func shareDelivery(m *Message, g *shareGroup, mb *shareMatch, prev delivery) delivery {
	d := delivery{msg: m, share: g}
	if prev.msg != nil {
		d = prev
		d.share = g
		d.qos = min(d.qos, mb.sub.QoS)
	} else {
		d.qos = min(m.QoS, mb.sub.QoS) // [v5 MQTT-4.8.2-3]
		if mb.sub.RetainAsPublished {
			d.retain = m.Retain
		}
	}
	d.subIDs = nil
	if mb.sub.SubID != 0 {
		d.subIDs = []uint32{mb.sub.SubID}
	}
	return d
}

// deliverShared gives m to one of members, a group's members that
// matched it, skipping exclude, starting with members[start] (see
// shareStart): connected members are tried before offline ones, and a
// member whose queue refuses the message passes it to the next. prev,
// when it has a message, is a delivery being moved from exclude, a
// member that left: it keeps its QoS. With a store, a delivery at QoS 1
// or 2 to a persistent member is kept in its stored queue before it is
// queued in memory, and a moved one leaves exclude's stored queue in the
// same write (see deliverKept). It reports whether a member took the
// message.
func (srv *Server) deliverShared(m *Message, g *shareGroup, members []shareMatch, start int, exclude *session, prev delivery) bool {
	if len(members) == 0 {
		return false
	}
	var why error = errNoMember
	ok := shareCandidates(members, start, exclude, func(mb *shareMatch) bool {
		s := mb.key.s
		d := shareDelivery(m, g, mb, prev)
		if !srv.mayReceive(s, m) {
			why = errDenied
			return false
		}
		var ok bool
		var err error
		if srv.keeps(s, d) {
			ok, err = srv.deliverKept(s, d, exclude, prev)
		} else {
			d.seq, d.msgID = 0, 0
			if ok, err = s.deliver(srv, d); ok && prev.seq != 0 {
				srv.forget(exclude, prev.seq) // it left exclude's stored queue
			}
		}
		if !ok {
			why = err
		}
		return ok
	})
	if !ok && prev.msg == nil {
		srv.dropped(members[start].key.s, m, why)
	}
	return ok
}

var errNoMember = &dropError{"no member of the shared subscription group could take the message"}

// subscribeShared adds s to the group of a "$share/" filter.
func (srv *Server) subscribeShared(s *session, group, inner string, sub subscription) {
	g := srv.joinGroup(group, inner)
	if srv.shared.Add(inner, shareKey{g, s}, sub) {
		srv.leaveGroup(g) // a member already: counted once
	} else {
		srv.sharedSubs.Add(1)
	}
}

// unsubscribeShared removes s from the group of a "$share/" filter,
// freeing the group if s was its last member.
func (srv *Server) unsubscribeShared(s *session, group, inner string) bool {
	v, ok := srv.groups.Load(groupID{group, inner})
	if !ok {
		return false // no such group, so s is not a member
	}
	g := v.(*shareGroup)
	if !srv.shared.Remove(inner, shareKey{g, s}) {
		return false
	}
	srv.sharedSubs.Add(-1)
	srv.leaveGroup(g)
	return true
}

// handOver moves the shared subscription messages of session s, whose
// connection has ended, to other members of their groups: those it had
// not been sent yet, and the QoS 1 messages it had not acknowledged.
// QoS 2 messages it was sent stay with it, to be completed when it
// reconnects [v5 MQTT-4.8.2-4], and die with the session
// [v5 MQTT-4.8.2-5]. A message no other member can take stays with s
// as it was: queued in its place, or in flight under its packet id.
func (srv *Server) handOver(s *session) {
	type unacked struct {
		id uint16
		f  *mqttsession.Flight[delivery]
		d  delivery
	}
	s.mu.Lock()
	var queued []delivery
	if s.queue.Any(isShared) {
		queued = s.queue.Extract(isShared)
	}
	var sent []unacked // in the order first sent
	if s.out.Len() > 0 {
		for _, id := range s.out.Order() {
			if f := s.out.Get(id); f.Item.share != nil && f.QoS == 1 {
				sent = append(sent, unacked{id, f, f.Item})
			}
		}
	}
	s.mu.Unlock()
	if len(queued) == 0 && len(sent) == 0 {
		return
	}
	moved := 0
	for _, u := range sent {
		if !srv.passOn(s, u.d) {
			continue
		}
		moved++
		s.mu.Lock()
		if s.out.Get(u.id) == u.f {
			s.out.Remove(u.id)
		}
		s.mu.Unlock()
	}
	var back []delivery
	for _, d := range queued {
		if srv.passOn(s, d) {
			moved++
		} else {
			back = append(back, d)
		}
	}
	if len(back) > 0 {
		s.mu.Lock()
		for i := len(back) - 1; i >= 0; i-- {
			s.queue.PushFront(back[i]) // ahead of what arrived meanwhile, in their order
		}
		s.mu.Unlock()
	}
	srv.cfg.log.Debug("shared subscription messages handed over", "client", s.id, "moved", moved, "kept", len(sent)+len(queued)-moved)
}

// passOn delivers d, taken from session from, to another member of its
// group. The group may have been freed since (from was its last member)
// and created again: members of the new group of the same name and
// filter are members too.
func (srv *Server) passOn(from *session, d delivery) bool {
	g := d.share
	var members []shareMatch
	srv.shared.Match(d.msg.Topic, func(_ string, k shareKey, sub subscription) bool {
		if k.s != from && (k.g == g || k.g.name == g.name && k.g.filter == g.filter) {
			members = append(members, shareMatch{k, sub})
		}
		return true
	})
	if len(members) == 0 {
		return false
	}
	slices.SortFunc(members, func(a, b shareMatch) int { return cmp.Compare(a.key.s.seq, b.key.s.seq) })
	g = members[0].key.g
	return srv.deliverShared(d.msg, g, members, srv.shareStart(d.msg, g, len(members)), from, d)
}

// isSharedFilter splits a "$share/{group}/{filter}" filter.
func isSharedFilter(filter string) (group, inner string, ok bool) {
	if !topic.IsShared(filter) {
		return "", "", false
	}
	group, inner, ok, err := topic.ParseShare(filter)
	return group, inner, ok && err == nil
}
