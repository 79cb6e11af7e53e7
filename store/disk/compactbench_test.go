package disk

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
)

// BenchmarkCompactStall: how long an Apply waits while the log of a
// large state (20,000 sessions with a queued message each, 200,000
// retained messages) is compacted. Four goroutines apply a QoS 1 cycle
// (enqueue, dequeue) throughout, at a steady rate (one Apply, then a
// millisecond's pause: about 4,000 a second in all, a broker's steady
// load, not a flood that would measure the scheduler of this 2-core
// machine); each iteration compacts once.
// max-wait-ms is the longest single Apply seen during the compactions,
// idle-max-wait-ms the longest in a second of the same load without one,
// compact-ms the mean time of one compaction, applies/compaction how
// many Apply calls returned while one ran.
func BenchmarkCompactStall(b *testing.B) {
	for _, mode := range []SyncMode{SyncNone, SyncAlways} {
		name := "sync=always"
		if mode == SyncNone {
			name = "sync=none"
		}
		b.Run(name, func(b *testing.B) {
			s, err := OpenBroker(b.TempDir(), BrokerOptions{Sync: mode, CompactBytes: 1 << 40, Logger: testLogger(b, nil)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fillState(b, s, 20_000, 200_000)
			ctx, stop := context.WithCancel(context.Background())
			var maxWait atomic.Int64
			var applies atomic.Int64
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := "stall-" + strconv.Itoa(g)
					m := &message.Message{Topic: "stall/" + strconv.Itoa(g), Payload: make([]byte, 64), QoS: 1}
					for seq := uint64(1); ctx.Err() == nil; seq++ {
						for _, c := range []store.Change{
							store.Enqueue(id, store.Queued{Seq: seq, MsgID: 1 << 40, Msg: m, QoS: 1}),
							store.Dequeue(id, seq),
						} {
							start := time.Now()
							if err := s.Apply(context.Background(), c); err != nil {
								b.Error(err)
								return
							}
							d := int64(time.Since(start))
							for old := maxWait.Load(); d > old && !maxWait.CompareAndSwap(old, d); old = maxWait.Load() {
							}
							applies.Add(1)
							time.Sleep(time.Millisecond)
						}
					}
				}()
			}
			// The longest wait with no compaction, for comparison: a
			// second of the same load.
			time.Sleep(50 * time.Millisecond)
			maxWait.Store(0)
			time.Sleep(time.Second)
			idle := maxWait.Load()
			maxWait.Store(0)
			before := applies.Load()
			b.ResetTimer()
			for range b.N {
				if _, _, err := s.Compact(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			during := applies.Load() - before
			worst := maxWait.Load()
			stop()
			wg.Wait()
			b.ReportMetric(float64(worst)/1e6, "max-wait-ms")
			b.ReportMetric(float64(idle)/1e6, "idle-max-wait-ms")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "compact-ms")
			b.ReportMetric(float64(during)/float64(b.N), "applies/compaction")
		})
	}
}
