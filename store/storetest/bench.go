package storetest

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
)

// BenchmarkCycle measures the way of one QoS 1 message through s, as a
// client drives it: AddOutgoing when the application publishes,
// MarkSent when it goes out, DeleteOutgoing at the PUBACK. The message
// has a 64-byte payload; goroutines publishers run at once, sharing
// b.N cycles (with 8 and a store that syncs, they show group commit).
func BenchmarkCycle(b *testing.B, s store.Session, goroutines int) {
	payload := make([]byte, 64)
	for i := range payload {
		payload[i] = byte(i)
	}
	var seq atomic.Uint64
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				n := seq.Add(1)
				m := &message.Message{Topic: "bench/cycle", Payload: payload, QoS: 1}
				err := s.AddOutgoing(store.Outgoing{Seq: n, Msg: m})
				if err == nil {
					err = s.MarkSent(n, uint16(n%65535+1))
				}
				if err == nil {
					err = s.DeleteOutgoing(n)
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}
