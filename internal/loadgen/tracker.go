package loadgen

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxWindowWords bounds the memory a seqSet uses: it remembers at most
// 64*maxWindowWords sequence numbers (2^20) behind the oldest missing one.
// A message arriving later than that is counted as a late first arrival.
const maxWindowWords = 1 << 20 / 64

// seqSet records which sequence numbers of one publisher have arrived at
// one subscriber: a bitmap starting at base, where every sequence number
// below base has arrived. While messages come in order the bitmap stays a
// word or two; a missing message keeps it open until it arrives or the
// window exceeds maxWindowWords, when the oldest words are forgotten.
type seqSet struct {
	base   uint64   // sequence number of bit 0 of words[0], a multiple of 64
	forgot uint64   // below this, words were dropped with holes in them
	words  []uint64 // bit i of words[j]: base+64*j+i arrived
	max    uint64   // highest sequence number seen
	low    uint64   // lowest sequence number seen
	n      uint64   // distinct sequence numbers seen
	any    bool     // max and low are valid
}

// startAt makes an empty set start its window at seq, for a subscriber
// that joins a publisher's stream in its middle: numbers below seq are
// not missing, they were sent before it came.
func (s *seqSet) startAt(seq uint64) {
	s.base = seq &^ 63
	s.forgot = s.base
}

// gaps returns how many sequence numbers between the lowest and the
// highest seen have not arrived.
func (s *seqSet) gaps() uint64 {
	if !s.any {
		return 0
	}
	return max(s.max-s.low+1, s.n) - s.n
}

// add records seq. dup reports that seq had arrived before; reordered
// that a first arrival came after a higher sequence number.
func (s *seqSet) add(seq uint64) (dup, reordered bool) {
	reordered = s.any && seq < s.max
	if !s.any || seq > s.max {
		s.max = seq
	}
	if !s.any || seq < s.low {
		s.low = seq
	}
	s.any = true
	if seq < s.base {
		if seq >= s.forgot {
			return true, false // its word was complete when dropped
		}
		s.n++
		return false, reordered // forgotten: a late first arrival
	}
	idx := seq - s.base
	w := int(idx / 64)
	if w >= maxWindowWords {
		// Slide: forget the oldest words so that w fits.
		drop := w - maxWindowWords + 1
		if drop >= len(s.words) {
			s.words = s.words[:0]
		} else {
			s.words = s.words[:copy(s.words, s.words[drop:])]
		}
		s.base += uint64(drop) * 64
		s.forgot = s.base
		w -= drop
	}
	for w >= len(s.words) {
		s.words = append(s.words, 0)
	}
	bit := uint64(1) << (idx % 64)
	if s.words[w]&bit != 0 {
		return true, false
	}
	s.n++
	s.words[w] |= bit
	for len(s.words) > 0 && s.words[0] == ^uint64(0) {
		s.words = s.words[1:]
		s.base += 64
	}
	return false, reordered
}

// tracker accounts for the messages one subscriber receives. The
// connection's reader goroutine calls record; the runner reads the totals.
type tracker struct {
	maxPub uint32 // publisher indexes must be below this
	since  int64  // non-zero: latency is measured from this time, not from the header
	open   bool   // open-ended: publishers are counted from their first message seen, and restart at seq 0

	mu        sync.Mutex
	pubs      []seqSet
	hist      *Histogram
	dups      int64
	reordered int64
	lostOld   int64 // open-ended: gaps of publisher runs that restarted
	restarts  int64 // open-ended: publisher runs that restarted
	invalid   int64 // payloads without a valid header
	first     time.Time
	last      time.Time

	unique atomic.Int64 // distinct messages received
}

func newTracker(publishers int) *tracker {
	return &tracker{maxPub: uint32(publishers), hist: NewHistogram()}
}

// newOpenTracker returns the tracker of an open-ended subscriber, which
// does not know its publishers: any index below maxOpenPublishers, each
// counted from the first of its messages that arrives. A sequence number
// 0 from a publisher seen before is a new run of it (a pub restarted):
// its state starts over and the old run's gaps are kept as loss.
func newOpenTracker() *tracker {
	t := newTracker(maxOpenPublishers)
	t.open = true
	return t
}

// record accounts for one received payload.
func (t *tracker) record(payload []byte, now time.Time) {
	h, ok := ParseHeader(payload)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok || h.Publisher >= t.maxPub {
		t.invalid++
		return
	}
	for int(h.Publisher) >= len(t.pubs) {
		t.pubs = append(t.pubs, seqSet{})
	}
	ps := &t.pubs[h.Publisher]
	if t.open {
		if ps.any && h.Seq == 0 {
			t.lostOld += int64(ps.gaps())
			t.restarts++
			*ps = seqSet{}
		}
		if !ps.any {
			ps.startAt(h.Seq)
		}
	}
	dup, reordered := ps.add(h.Seq)
	if dup {
		t.dups++
		return
	}
	if reordered {
		t.reordered++
	}
	sent := h.Sent
	if t.since != 0 {
		sent = t.since
	}
	t.hist.Record(time.Duration(now.UnixNano() - sent))
	if t.first.IsZero() {
		t.first = now
	}
	t.last = now
	t.unique.Add(1)
}

// trackerStats is a snapshot of a tracker's counters.
type trackerStats struct {
	unique, dups, reordered, invalid int64
	gaps                             int64 // open-ended: sequence numbers missing between the first and last seen
	restarts                         int64 // open-ended: publisher runs that started over
	first, last                      time.Time
}

// snapshot returns the counters and merges the latencies into hist.
func (t *tracker) snapshot(hist *Histogram) trackerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if hist != nil {
		hist.Merge(t.hist)
	}
	gaps := t.lostOld
	for i := range t.pubs {
		gaps += int64(t.pubs[i].gaps())
	}
	return trackerStats{unique: t.unique.Load(), dups: t.dups, reordered: t.reordered,
		invalid: t.invalid, gaps: gaps, restarts: t.restarts, first: t.first, last: t.last}
}

// setSince makes latency count from t instead of the header's send time,
// and returns t.
func (t *tracker) setSince(at time.Time) time.Time {
	t.mu.Lock()
	t.since = at.UnixNano()
	t.mu.Unlock()
	return at
}
