// Package route holds what the back plane engines share (memory, Redis, and
// NATS since its forwarding goes through per-node JetStream queues): a
// node's reference counts of
// its own filters, and the table of every node's interest that a publishing
// node consults to find the nodes a message goes to.
package route

import (
	"slices"
	"sync"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/topic"
)

// Local counts one node's own subscriptions per filter.
type Local struct {
	mu sync.Mutex
	n  map[string]int
}

// Inc counts one more subscription to filter and reports whether it is the
// first.
func (l *Local) Inc(filter string) (first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = make(map[string]int)
	}
	l.n[filter]++
	return l.n[filter] == 1
}

// Dec counts one subscription less and reports whether it was the last; ok is
// false when there was none.
func (l *Local) Dec(filter string) (last, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.n[filter]
	if c == 0 {
		return false, false
	}
	if c == 1 {
		delete(l.n, filter)
		return true, true
	}
	l.n[filter] = c - 1
	return false, true
}

// Filters returns the filters with a count above zero.
func (l *Local) Filters() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.n))
	for f := range l.n {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// Target is what one node gets for one message.
type Target struct {
	Plain  bool
	Groups []backplane.Group
}

type memberKey struct{ node, group string }

// Table is every node's interest as one node knows it. It is safe for
// concurrent use.
type Table struct {
	plain  topic.Trie[string, struct{}]    // filter → node
	shared topic.Trie[memberKey, struct{}] // inner filter → (node, group)

	mu    sync.Mutex
	nodes map[string]map[string]struct{} // node → its filters, as given
	rr    map[backplane.Group]uint64     // next pick per group
}

// Add records that node has interest in filter (a "$share/" filter makes it
// a group member). Adding twice is the same as once. Invalid filters are
// ignored.
func (t *Table) Add(node, filter string) {
	g, shared, err := backplane.ParseFilter(filter)
	if err != nil {
		return
	}
	t.mu.Lock()
	if t.nodes == nil {
		t.nodes = make(map[string]map[string]struct{})
	}
	fs := t.nodes[node]
	if fs == nil {
		fs = make(map[string]struct{})
		t.nodes[node] = fs
	}
	fs[filter] = struct{}{}
	t.mu.Unlock()
	if shared {
		t.shared.Add(g.Filter, memberKey{node, g.Name}, struct{}{})
	} else {
		t.plain.Add(filter, node, struct{}{})
	}
}

// Remove forgets node's interest in filter.
func (t *Table) Remove(node, filter string) {
	g, shared, err := backplane.ParseFilter(filter)
	if err != nil {
		return
	}
	t.mu.Lock()
	delete(t.nodes[node], filter)
	if len(t.nodes[node]) == 0 {
		delete(t.nodes, node)
	}
	t.mu.Unlock()
	if shared {
		t.shared.Remove(g.Filter, memberKey{node, g.Name})
	} else {
		t.plain.Remove(filter, node)
	}
}

// Drop forgets all of node's interest.
func (t *Table) Drop(node string) {
	t.mu.Lock()
	fs := t.nodes[node]
	t.mu.Unlock()
	for f := range fs {
		t.Remove(node, f)
	}
}

// Set replaces node's interest with filters.
func (t *Table) Set(node string, filters []string) {
	t.Drop(node)
	for _, f := range filters {
		t.Add(node, f)
	}
}

// Nodes returns the nodes that have some interest.
func (t *Table) Nodes() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.nodes))
	for n := range t.nodes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Route returns, for a message on topic name published on node self, what
// each node gets: every other node with a matching non-shared filter gets it
// Plain, and each matching shared group is given to one member node, picked
// round robin (self included). Nodes that get nothing are absent.
func (t *Table) Route(name, self string) map[string]*Target {
	var out map[string]*Target
	get := func(n string) *Target {
		if out == nil {
			out = make(map[string]*Target)
		}
		tg := out[n]
		if tg == nil {
			tg = &Target{}
			out[n] = tg
		}
		return tg
	}
	var plain []string
	t.plain.Match(name, func(_ string, node string, _ struct{}) bool {
		if node != self {
			plain = append(plain, node)
		}
		return true
	})
	for _, n := range plain {
		get(n).Plain = true
	}
	var members map[backplane.Group][]string
	t.shared.Match(name, func(filter string, k memberKey, _ struct{}) bool {
		if members == nil {
			members = make(map[backplane.Group][]string)
		}
		g := backplane.Group{Name: k.group, Filter: filter}
		members[g] = append(members[g], k.node)
		return true
	})
	if len(members) > 0 {
		t.mu.Lock()
		if t.rr == nil {
			t.rr = make(map[backplane.Group]uint64)
		}
		for g, ns := range members {
			slices.Sort(ns)
			i := t.rr[g]
			t.rr[g] = i + 1
			tg := get(ns[i%uint64(len(ns))])
			tg.Groups = append(tg.Groups, g)
		}
		t.mu.Unlock()
	}
	return out
}
