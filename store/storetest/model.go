package storetest

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ternmq/tern/store"
)

// model is what a session should hold: the reference the suite checks
// a store against. Its methods apply a change to the store and to the
// model and fail the test if the store refuses it.
type model struct {
	out map[uint64]store.Outgoing
	in  map[uint16]bool
}

func newModel() *model {
	return &model{out: map[uint64]store.Outgoing{}, in: map[uint16]bool{}}
}

func (m *model) state() state {
	var st state
	for _, seq := range slices.Sorted(maps.Keys(m.out)) {
		st.out = append(st.out, m.out[seq])
	}
	st.in = slices.Sorted(maps.Keys(m.in))
	return st
}

func (m *model) check(t testing.TB, s store.Session) {
	t.Helper()
	expect(t, s, m.state())
}

func (m *model) add(t testing.TB, s store.Session, o store.Outgoing) {
	t.Helper()
	if err := s.AddOutgoing(o); err != nil {
		t.Fatalf("AddOutgoing(seq %d): %v", o.Seq, err)
	}
	m.endFlight(o.Seq, o.PacketID)
	m.out[o.Seq] = o
}

// endFlight removes the message other than seq stored under packet id
// id, if any: an id names one flight at a time (see store.Session's
// MarkSent).
func (m *model) endFlight(seq uint64, id uint16) {
	if id == 0 {
		return
	}
	for s, o := range m.out {
		if s != seq && o.PacketID == id {
			delete(m.out, s)
		}
	}
}

func (m *model) sent(t testing.TB, s store.Session, seq uint64, id uint16) {
	t.Helper()
	if err := s.MarkSent(seq, id); err != nil {
		t.Fatalf("MarkSent(%d, %d): %v", seq, id, err)
	}
	m.endFlight(seq, id)
	o := m.out[seq]
	o.PacketID = id
	m.out[seq] = o
}

func (m *model) released(t testing.TB, s store.Session, seq uint64) {
	t.Helper()
	if err := s.MarkReleased(seq); err != nil {
		t.Fatalf("MarkReleased(%d): %v", seq, err)
	}
	o := m.out[seq]
	o.Released = true
	m.out[seq] = o
}

func (m *model) del(t testing.TB, s store.Session, seq uint64) {
	t.Helper()
	if err := s.DeleteOutgoing(seq); err != nil {
		t.Fatalf("DeleteOutgoing(%d): %v", seq, err)
	}
	delete(m.out, seq)
}

func (m *model) addIn(t testing.TB, s store.Session, id uint16) {
	t.Helper()
	if err := s.AddIncoming(id); err != nil {
		t.Fatalf("AddIncoming(%d): %v", id, err)
	}
	m.in[id] = true
}

func (m *model) delIn(t testing.TB, s store.Session, id uint16) {
	t.Helper()
	if err := s.DeleteIncoming(id); err != nil {
		t.Fatalf("DeleteIncoming(%d): %v", id, err)
	}
	delete(m.in, id)
}

func (m *model) clear(t testing.TB, s store.Session) {
	t.Helper()
	if err := s.Clear(); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	clear(m.out)
	clear(m.in)
}

func (m *model) clone() *model {
	return &model{out: maps.Clone(m.out), in: maps.Clone(m.in)}
}

// step applies one random change, the way a client's session goes:
// mostly new messages, sends, releases and completions, now and then a
// PUBREL, rarely a clean start.
func (m *model) step(t testing.TB, s store.Session, r *rand.Rand, next *uint64) {
	t.Helper()
	pick := func() (uint64, bool) {
		if len(m.out) == 0 {
			return 0, false
		}
		// Prefer the oldest, as acknowledgements come in order mostly.
		keys := slices.Sorted(maps.Keys(m.out))
		return keys[min(len(keys)-1, r.IntN(3))], true
	}
	switch op := r.IntN(100); {
	case op < 35:
		*next++
		o := store.Outgoing{Seq: *next, Msg: FullMessage(*next)}
		if r.IntN(2) == 0 {
			o.PacketID = uint16(1 + r.IntN(65535))
		}
		m.add(t, s, o)
	case op < 55:
		if seq, ok := pick(); ok {
			m.sent(t, s, seq, uint16(1+r.IntN(65535)))
		}
	case op < 62:
		if seq, ok := pick(); ok {
			m.released(t, s, seq)
		}
	case op < 85:
		if seq, ok := pick(); ok {
			m.del(t, s, seq)
		}
	case op < 92:
		m.addIn(t, s, uint16(1+r.IntN(200)))
	case op < 99:
		m.delIn(t, s, uint16(1+r.IntN(200)))
	default:
		m.clear(t, s)
	}
}

// testModel applies random changes and checks the store against the
// model as it goes (and, for durable stores, after reopening it).
func (h *harness) testModel(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	r := rand.New(rand.NewPCG(11, 17))
	var next uint64
	steps := 3000
	if testing.Short() {
		steps = 600
	}
	for i := 1; i <= steps; i++ {
		m.step(t, s, r, &next)
		if i%97 == 0 {
			m.check(t, s)
		}
		if h.Durable && i%500 == 0 {
			s = h.reopen(t, s, dir)
			m.check(t, s)
		}
	}
	m.check(t, s)
}

// testConcurrent has 8 goroutines change the session at once, each on
// its own messages and packet identifiers, while another reads it.
func (h *harness) testConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	const workers, perWorker = 8, 150
	models := make([]*model, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	stop := make(chan struct{})
	for w := range workers {
		models[w] = newModel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- runWorker(s, models[w], w, perWorker)
		}()
	}
	var rd sync.WaitGroup
	rd.Add(1)
	go func() { // a reader: what it sees is always well formed
		defer rd.Done()
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			out, err := s.Outgoing()
			if err != nil {
				errs <- err
				return
			}
			if !slices.IsSortedFunc(out, func(a, b store.Outgoing) int { return cmpSeq(a.Seq, b.Seq) }) {
				errs <- errors.New("Outgoing is not in Seq order")
				return
			}
			for _, o := range out {
				if o.Msg == nil || o.Msg.Topic != FullMessage(o.Seq).Topic {
					errs <- errors.New("Outgoing returned a message that is not the one added")
					return
				}
			}
			in, err := s.Incoming()
			if err != nil {
				errs <- err
				return
			}
			if !slices.IsSorted(in) {
				errs <- errors.New("Incoming is not in increasing order")
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rd.Wait()
	for range workers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	all := newModel()
	for _, m := range models {
		maps.Copy(all.out, m.out)
		maps.Copy(all.in, m.in)
	}
	all.check(t, s)
	if h.Durable {
		all.check(t, h.reopen(t, s, dir))
	}
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// runWorker is one goroutine of testConcurrent: it owns the sequence
// numbers w<<32+i and the packet identifiers w*1000+i.
func runWorker(s store.Session, m *model, w, n int) error {
	r := rand.New(rand.NewPCG(uint64(w), 99))
	for i := 1; i <= n; i++ {
		seq := uint64(w)<<32 + uint64(i)
		o := store.Outgoing{Seq: seq, Msg: FullMessage(seq)}
		if err := s.AddOutgoing(o); err != nil {
			return err
		}
		id := uint16(w*1000 + i)
		if err := s.MarkSent(seq, id); err != nil {
			return err
		}
		o.PacketID = id
		if r.IntN(2) == 0 {
			if err := s.MarkReleased(seq); err != nil {
				return err
			}
			o.Released = true
		}
		m.out[seq] = o
		if r.IntN(3) > 0 {
			if err := s.DeleteOutgoing(seq); err != nil {
				return err
			}
			delete(m.out, seq)
		}
		if err := s.AddIncoming(id); err != nil {
			return err
		}
		m.in[id] = true
		if r.IntN(2) == 0 {
			if err := s.DeleteIncoming(id); err != nil {
				return err
			}
			delete(m.in, id)
		}
	}
	return nil
}
