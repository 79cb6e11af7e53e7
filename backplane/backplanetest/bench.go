package backplanetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/message"
)

// BenchJoin starts a node for a benchmark with the given ID and message
// handler. Traffic returns the bytes the node has sent to and received from
// the engine so far (a cut proxy's counts), or nil if it cannot tell.
type BenchJoin func(b *testing.B, id string, on func(context.Context, backplane.Delivery)) (n backplane.Node, traffic func() (sent, received int64))

// BenchForward measures forwarding from one node to another: messages of
// size payload bytes published on node "pub" by parallel publishers
// (parallel × GOMAXPROCS goroutines; 0 means one publisher) and received on
// node "sub", which subscribes to "bench/+". It reports msgs/s (counted
// from the first publish to the last delivery) and, when the join can tell,
// the bytes per message the publishing node sent to the engine, the
// receiving node got from it, and a third node with no matching interest
// got from it (its heartbeats only: it gets none of the messages).
func BenchForward(b *testing.B, join BenchJoin, payload, parallel int) {
	var got atomic.Int64
	done := make(chan struct{}, 1)
	probed := make(chan struct{}, 1)
	var want atomic.Int64
	want.Store(-1)
	pub, pubTraffic := join(b, "pub", nil)
	// idle has interest, but in nothing the benchmark publishes: it must get
	// no traffic for these messages.
	idle, idleTraffic := join(b, "idle", nil)
	if err := idle.Subscribe(context.Background(), "other/+"); err != nil {
		b.Fatal(err)
	}
	sub, subTraffic := join(b, "sub", func(_ context.Context, d backplane.Delivery) {
		if strings.HasPrefix(d.Message.Topic, "probe/") {
			select {
			case probed <- struct{}{}:
			default:
			}
			return
		}
		if got.Add(1) == want.Load() {
			done <- struct{}{}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, f := range []string{"bench/+", "probe/+"} {
		if err := sub.Subscribe(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until pub knows of sub's interest.
	deadline := time.Now().Add(timeout)
	for ready := false; !ready; {
		if err := pub.Forward(ctx, &message.Message{Topic: "probe/1"}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-probed:
			ready = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				b.Fatal("sub never received a probe from pub")
			}
		}
	}
	body := make([]byte, payload)
	var s0, r0, i0 int64
	if pubTraffic != nil && subTraffic != nil {
		s0, _ = pubTraffic()
		_, r0 = subTraffic()
		_, i0 = idleTraffic()
	}
	want.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	var seq atomic.Int64
	publish := func() {
		i := seq.Add(1)
		m := &message.Message{Topic: "bench/" + fmt.Sprint(i%8), Payload: body, QoS: 1, Created: time.Now()}
		if err := pub.Forward(ctx, m); err != nil {
			b.Error(err)
		}
	}
	if parallel > 0 {
		b.SetParallelism(parallel)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				publish()
			}
		})
	} else {
		for range b.N {
			publish()
		}
	}
	select {
	case <-done:
	case <-time.After(timeout):
		b.Fatalf("sub received %d of %d messages within %v", got.Load(), b.N, timeout)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if pubTraffic != nil && subTraffic != nil {
		s1, _ := pubTraffic()
		_, r1 := subTraffic()
		b.ReportMetric(float64(s1-s0)/float64(b.N), "B/msg-sent")
		b.ReportMetric(float64(r1-r0)/float64(b.N), "B/msg-recv")
		_, i1 := idleTraffic()
		b.ReportMetric(float64(i1-i0)/float64(b.N), "B/msg-idle")
	}
}

// BenchLatency publishes b.N messages of size payload on node "pub" at a
// fixed rate (messages per second, paced every millisecond and published by
// eight goroutines) and reports the p50, p99 and max latency, in microseconds, from
// just before Forward to the handler on node "sub".
func BenchLatency(b *testing.B, join BenchJoin, payload, rate int) {
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	done := make(chan struct{})
	probed := make(chan struct{}, 1)
	pub, _ := join(b, "pub", nil)
	sub, _ := join(b, "sub", func(_ context.Context, d backplane.Delivery) {
		if strings.HasPrefix(d.Message.Topic, "probe/") {
			select {
			case probed <- struct{}{}:
			default:
			}
			return
		}
		l := time.Since(d.Message.Created)
		mu.Lock()
		lat = append(lat, l)
		if len(lat) == b.N {
			close(done)
		}
		mu.Unlock()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, f := range []string{"lat/+", "probe/+"} {
		if err := sub.Subscribe(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(timeout)
	for ready := false; !ready; {
		if err := pub.Forward(ctx, &message.Message{Topic: "probe/1"}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-probed:
			ready = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				b.Fatal("sub never received a probe from pub")
			}
		}
	}
	body := make([]byte, payload)
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	// Eight publishers, as a broker has many clients: an engine whose
	// Forward waits for a round trip still keeps up with the rate.
	jobs := make(chan *message.Message, rate)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				if err := pub.Forward(ctx, m); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	sent := 0
	for sent < b.N {
		due := min(b.N, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; sent < due; sent++ {
			// Created is when the message is due: time waiting for a free
			// publisher counts.
			jobs <- &message.Message{Topic: "lat/1", Payload: body, QoS: 1, Created: time.Now()}
		}
		<-tick.C
	}
	close(jobs)
	wg.Wait()
	select {
	case <-done:
	case <-time.After(timeout):
		mu.Lock()
		n := len(lat)
		mu.Unlock()
		b.Fatalf("sub received %d of %d messages within %v", n, b.N, timeout)
	}
	b.StopTimer()
	achieved := float64(b.N) / time.Since(start).Seconds()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p99.9-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(achieved, "msgs/s")
}
