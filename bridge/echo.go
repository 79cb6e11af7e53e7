package bridge

import (
	"hash/fnv"
	"sync"
	"time"
)

// echoTable remembers the messages the bridge sent to an MQTT 3.1 / 3.1.1
// remote, which has no No Local subscription option: when the remote
// sends one back on a subscription of the bridge (a mapping "both", or
// an "in" mapping overlapping an "out" one), it is the bridge's own
// message coming back, and is not carried in again.
//
// An entry is a count per (topic, payload) so that n identical messages
// sent make n echoes expected; entries are forgotten after echoTTL, and
// the table holds at most echoMax of them (the oldest go first).
type echoTable struct {
	mu      sync.Mutex
	entries map[uint64]*echoEntry
	now     func() time.Time
}

type echoEntry struct {
	n    int
	last time.Time
}

const (
	echoTTL = time.Minute
	echoMax = 10000
)

func newEchoTable() *echoTable {
	return &echoTable{entries: map[uint64]*echoEntry{}, now: time.Now}
}

func echoKey(topic string, payload []byte) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum64()
}

// sent records a message sent to the remote.
func (e *echoTable) sent(topic string, payload []byte) {
	k := echoKey(topic, payload)
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.entries) >= echoMax {
		e.sweep(now)
	}
	en := e.entries[k]
	if en == nil {
		en = &echoEntry{}
		e.entries[k] = en
	}
	en.n++
	en.last = now
}

// echo reports whether a message received from the remote is one the
// bridge sent, and forgets one such message if so.
func (e *echoTable) echo(topic string, payload []byte) bool {
	k := echoKey(topic, payload)
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.entries[k]
	if en == nil || now.Sub(en.last) > echoTTL {
		delete(e.entries, k)
		return false
	}
	en.n--
	if en.n <= 0 {
		delete(e.entries, k)
	}
	return true
}

// sweep drops the expired entries, and the oldest half if none expired.
func (e *echoTable) sweep(now time.Time) {
	for k, en := range e.entries {
		if now.Sub(en.last) > echoTTL {
			delete(e.entries, k)
		}
	}
	if len(e.entries) < echoMax {
		return
	}
	cut := now.Add(-echoTTL / 2)
	for k, en := range e.entries {
		if en.last.Before(cut) || len(e.entries) >= echoMax {
			delete(e.entries, k)
		}
	}
}

func (e *echoTable) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.entries)
}
