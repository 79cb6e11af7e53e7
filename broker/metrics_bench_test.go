package broker

import (
	"testing"
	"time"

	"github.com/ternmq/tern/message"
)

// BenchmarkMetricCounters is what the metrics add to one message that
// goes in and out once: the per-QoS message and payload counters both
// ways and the route latency histogram (a clock read and two atomic
// adds). Serial, and with every core counting at once (the atomic adds
// then share cache lines).
func BenchmarkMetricCounters(b *testing.B) {
	m := &message.Message{Topic: "a/b", Payload: make([]byte, 64), QoS: 1, Created: time.Now()}
	count := func(st *stats) {
		st.countIn(m)
		st.routed(m)
		st.countOut(m.QoS, len(m.Payload))
	}
	b.Run("serial", func(b *testing.B) {
		var st stats
		b.ReportAllocs()
		for b.Loop() {
			count(&st)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var st stats
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				count(&st)
			}
		})
	})
}
