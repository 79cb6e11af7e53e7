package memory

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
)

// TestQueue checks the slice-backed queue against a map: random puts
// (mostly in increasing Seq order, some out of order or replacing),
// removes (mostly from the front, some anywhere or missing), marks.
func TestQueue(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	msg := &message.Message{Topic: "t"}
	for round := range 50 {
		var q queue
		ref := map[uint64]store.Queued{}
		next := uint64(1)
		for range 2000 {
			switch op := r.IntN(10); {
			case op < 4:
				seq := next
				if r.IntN(5) == 0 && next > 10 {
					seq = next - uint64(r.IntN(10)) // out of order or a replacement
				} else {
					next++
				}
				m := store.Queued{Seq: seq, MsgID: seq, Msg: msg, QoS: byte(r.IntN(3))}
				q.put(m)
				ref[seq] = m
			case op < 8:
				// The oldest, as completions mostly come.
				var oldest uint64
				for s := range ref {
					if oldest == 0 || s < oldest {
						oldest = s
					}
				}
				q.remove(oldest)
				delete(ref, oldest)
			case op < 9:
				seq := uint64(r.IntN(int(next) + 5))
				q.remove(seq)
				delete(ref, seq)
			default:
				seq := uint64(r.IntN(int(next) + 5))
				if m := q.get(seq); m != nil {
					m.PacketID = 9
					w := ref[seq]
					w.PacketID = 9
					ref[seq] = w
				} else if _, ok := ref[seq]; ok {
					t.Fatalf("round %d: get(%d) is nil, want a message", round, seq)
				}
			}
			var got []store.Queued
			for _, m := range q.q {
				if m.Msg != nil {
					got = append(got, m)
				}
			}
			want := make([]store.Queued, 0, len(ref))
			for _, m := range ref {
				want = append(want, m)
			}
			slices.SortFunc(want, func(a, b store.Queued) int { return int(a.Seq) - int(b.Seq) })
			if q.len() != len(want) || len(got) != len(want) {
				t.Fatalf("round %d: len %d (%d live), want %d", round, q.len(), len(got), len(want))
			}
			for i := range got {
				if got[i].Seq != want[i].Seq || got[i].QoS != want[i].QoS || got[i].PacketID != want[i].PacketID {
					t.Fatalf("round %d: entry %d is %+v, want %+v", round, i, got[i], want[i])
				}
			}
			for i := 1; i < len(q.q); i++ {
				if q.q[i-1].Seq >= q.q[i].Seq {
					t.Fatalf("round %d: not in Seq order at %d", round, i)
				}
			}
		}
	}
}
