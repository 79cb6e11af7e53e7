package topic

import (
	"strings"
	"sync"
)

// Trie maps topic filters to subscribers and finds, for a topic name, every
// subscriber whose filter matches it. A subscriber is identified by a key K
// (a client id, a session pointer, ...) and carries a value V (its
// subscription options, say). There is at most one entry per (filter, key)
// pair.
//
// Filters are stored level by level: each node holds its literal children
// in a map keyed by level, and its '+' and '#' children in separate fields,
// so a match costs one map lookup per level of the name plus one step into
// each wildcard branch that exists. Matching does not allocate.
//
// The trie knows nothing of shared subscriptions: a "$share/g/f" filter is
// stored and matched literally, like any other string. A broker that wants
// shared subscriptions stores them under whatever filter it chooses
// (typically the inner filter f from [ParseShare], with the group in K or
// V) and picks one member per group itself.
//
// Filters given to Add, Remove and Get should be valid ([ValidateFilter]),
// and names given to Match valid ([ValidateName]). Invalid ones are handled
// without panicking, their levels taken literally where they are not
// exactly "+" or "#", but what they match is unspecified.
//
// A Trie is safe for concurrent use. Match, Get, Len and Walk take a read
// lock and run in parallel with each other; Add and Remove take the write
// lock and cost O(levels of the filter). The callbacks of Match and Walk run
// while the read lock is held: they must not call any method of the same
// Trie (Add or Remove would deadlock, and so may a nested Match when a
// writer is waiting), and should be quick, since they hold up writers.
// Collect what you need and act after the call returns.
//
// The zero value is an empty Trie ready to use. A Trie must not be copied
// after first use.
type Trie[K comparable, V any] struct {
	mu    sync.RWMutex
	root  node[K, V]
	count int // number of entries
	nodes int // number of nodes below root, for tests
}

// NewTrie returns an empty Trie. It is equivalent to new(Trie[K, V]).
func NewTrie[K comparable, V any]() *Trie[K, V] {
	return new(Trie[K, V])
}

type entry[K comparable, V any] struct {
	key   K
	value V
}

// indexMin and indexMax give the hysteresis of a node's key index: it is
// built when a node has more than indexMax entries and dropped when it falls
// below indexMin. Smaller nodes are searched linearly.
const (
	indexMin = 8
	indexMax = 16
)

type node[K comparable, V any] struct {
	parent   *node[K, V]
	level    string // key in parent.children; unused for '+' and '#' children
	children map[string]*node[K, V]
	plus     *node[K, V] // child for a '+' level
	hash     *node[K, V] // child for a '#' level
	filter   string      // the whole filter ending here; set while entries != nil
	entries  []entry[K, V]
	index    map[K]int // key -> position in entries, for large nodes only
}

// child returns n's child for a filter level, or nil.
func (n *node[K, V]) child(level string) *node[K, V] {
	switch level {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.children[level]
}

// addChild returns n's child for a filter level, creating it if needed.
func (t *Trie[K, V]) addChild(n *node[K, V], level string) *node[K, V] {
	if c := n.child(level); c != nil {
		return c
	}
	c := &node[K, V]{parent: n}
	t.nodes++
	switch level {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		// Clone so that the trie does not pin the caller's string, which
		// may be a slice of a whole packet buffer.
		c.level = strings.Clone(level)
		if n.children == nil {
			n.children = make(map[string]*node[K, V])
		}
		n.children[c.level] = c
	}
	return c
}

// unused reports whether n holds no entries and has no children.
func (n *node[K, V]) unused() bool {
	return len(n.entries) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// find returns the position of key in n.entries, or -1.
func (n *node[K, V]) find(key K) int {
	if n.index != nil {
		if i, ok := n.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range n.entries {
		if n.entries[i].key == key {
			return i
		}
	}
	return -1
}

// lookup returns the node for filter, or nil if there is none.
func (t *Trie[K, V]) lookup(filter string) *node[K, V] {
	n := &t.root
	for {
		i := strings.IndexByte(filter, '/')
		if i < 0 {
			return n.child(filter)
		}
		if n = n.child(filter[:i]); n == nil {
			return nil
		}
		filter = filter[i+1:]
	}
}

// Add adds the entry (filter, key, value), or replaces the value of the
// existing entry for (filter, key); replaced reports which. The trie keeps
// its own copy of filter, but keeps key and value as given.
func (t *Trie[K, V]) Add(filter string, key K, value V) (replaced bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for rest := filter; ; {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			n = t.addChild(n, rest)
			break
		}
		n = t.addChild(n, rest[:i])
		rest = rest[i+1:]
	}
	if i := n.find(key); i >= 0 {
		n.entries[i].value = value
		return true
	}
	if len(n.entries) == 0 {
		n.filter = strings.Clone(filter)
	}
	n.entries = append(n.entries, entry[K, V]{key, value})
	if n.index != nil {
		n.index[key] = len(n.entries) - 1
	} else if len(n.entries) > indexMax {
		n.index = make(map[K]int, len(n.entries))
		for i := range n.entries {
			n.index[n.entries[i].key] = i
		}
	}
	t.count++
	return false
}

// Remove removes the entry for (filter, key) and reports whether there was
// one. Nodes left empty are pruned, so memory does not grow with churn.
func (t *Trie[K, V]) Remove(filter string, key K) (removed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.lookup(filter)
	if n == nil {
		return false
	}
	i := n.find(key)
	if i < 0 {
		return false
	}
	last := len(n.entries) - 1
	if i != last {
		n.entries[i] = n.entries[last]
		if n.index != nil {
			n.index[n.entries[i].key] = i
		}
	}
	n.entries[last] = entry[K, V]{} // drop references
	n.entries = n.entries[:last]
	if n.index != nil {
		delete(n.index, key)
		if len(n.entries) < indexMin {
			n.index = nil
		}
	}
	switch {
	case len(n.entries) == 0:
		n.entries = nil
		n.filter = ""
	case cap(n.entries) >= 32 && 4*len(n.entries) <= cap(n.entries):
		n.entries = append([]entry[K, V](nil), n.entries...)
		if n.index != nil {
			// A Go map never shrinks: rebuild the index at the new size
			// too, so that a node that once held many entries does not
			// keep their memory.
			n.index = make(map[K]int, len(n.entries))
			for i := range n.entries {
				n.index[n.entries[i].key] = i
			}
		}
	}
	t.count--
	// Prune empty nodes up to the root.
	for n != &t.root && n.unused() {
		p := n.parent
		switch n {
		case p.plus:
			p.plus = nil
		case p.hash:
			p.hash = nil
		default:
			delete(p.children, n.level)
			if len(p.children) == 0 {
				p.children = nil
			}
		}
		n.parent = nil
		t.nodes--
		n = p
	}
	return true
}

// Get returns the value of the entry for (filter, key).
func (t *Trie[K, V]) Get(filter string, key K) (value V, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n := t.lookup(filter); n != nil {
		if i := n.find(key); i >= 0 {
			return n.entries[i].value, true
		}
	}
	return value, false
}

// Len returns the number of entries.
func (t *Trie[K, V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// Match calls fn(filter, key, value) for every entry whose filter matches
// the topic name, as [Match] would decide, until fn returns false. Filters
// beginning with '+' or '#' do not match names beginning with '$'
// [MQTT-4.7.2-1]. The filter passed to fn is the trie's stored copy; fn may
// keep it. Entries are visited in no particular order, and a client
// subscribed with several matching filters is reported once per filter:
// MQTT 5.0 section 4.7.4 (overlapping subscriptions) is up to the caller.
//
// Match does not allocate. fn is called with the read lock held; see [Trie].
func (t *Trie[K, V]) Match(name string, fn func(filter string, key K, value V) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	root := &t.root
	i := strings.IndexByte(name, '/')
	level, rest, more := name, "", false
	if i >= 0 {
		level, rest, more = name[:i], name[i+1:], true
	}
	// [v5 MQTT-4.7.2-1] [v3 MQTT-4.7.2-1] no wildcard-first filter matches a
	// name beginning with '$'.
	if len(name) == 0 || name[0] != '$' {
		if root.hash != nil && !root.hash.emit(fn) {
			return
		}
		if root.plus != nil && !root.plus.match(rest, more, fn) {
			return
		}
	}
	if c := root.children[level]; c != nil {
		c.match(rest, more, fn)
	}
}

// match reports entries at and below n for a name whose levels up to n
// have matched; rest holds the remaining levels if more is true. It returns
// false when fn asked to stop.
func (n *node[K, V]) match(rest string, more bool, fn func(string, K, V) bool) bool {
	for {
		if !more {
			// The name ends here: n's own entries match, and so do those of
			// "n/#" ("sport/#" matches "sport").
			if !n.emit(fn) {
				return false
			}
			return n.hash == nil || n.hash.emit(fn)
		}
		if n.hash != nil && !n.hash.emit(fn) {
			return false
		}
		i := strings.IndexByte(rest, '/')
		level, next, nmore := rest, "", false
		if i >= 0 {
			level, next, nmore = rest[:i], rest[i+1:], true
		}
		if n.plus != nil && !n.plus.match(next, nmore, fn) {
			return false
		}
		// [v5 MQTT-4.7.3-4] [v3 MQTT-4.7.3-4] literal levels compare
		// verbatim.
		c := n.children[level]
		if c == nil {
			return true
		}
		n, rest, more = c, next, nmore
	}
}

// emit calls fn for each entry of n; it returns false when fn asked to stop.
func (n *node[K, V]) emit(fn func(string, K, V) bool) bool {
	for i := range n.entries {
		e := &n.entries[i]
		if !fn(n.filter, e.key, e.value) {
			return false
		}
	}
	return true
}

// Walk calls fn(filter, key, value) for every entry, in no particular
// order, until fn returns false. fn is called with the read lock held; see
// [Trie].
func (t *Trie[K, V]) Walk(fn func(filter string, key K, value V) bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	t.root.walk(fn)
}

func (n *node[K, V]) walk(fn func(string, K, V) bool) bool {
	if !n.emit(fn) {
		return false
	}
	for _, c := range n.children {
		if !c.walk(fn) {
			return false
		}
	}
	if n.plus != nil && !n.plus.walk(fn) {
		return false
	}
	return n.hash == nil || n.hash.walk(fn)
}
