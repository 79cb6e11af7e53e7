package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is one point of a run's time series, taken once per
// Config.SampleInterval (a second by default) while the run goes on, and
// once more at its end. Counters are totals since the run started; rates
// are per second since the previous sample.
type Sample struct {
	Elapsed     time.Duration // since the run started
	Sent        int64         // PUBLISH packets written by the publishers
	Received    int64         // distinct messages received by the subscribers
	Acked       int64         // QoS 1/2 publishes acknowledged (PUBACK, PUBCOMP, or an MQTT 5 PUBREC error)
	Inflight    int64         // QoS 1/2 publishes written and not yet acknowledged
	Connections int64         // connections up
	Connects    int64         // connections opened since the start (up or since closed)

	SentRate     float64 // publishes written per second
	ReceivedRate float64 // messages received per second
	ConnectRate  float64 // connections opened per second
}

// counters are the live totals of a run that the sampler reads: atomics
// owned by the runner, plus the connections and trackers it registers.
type counters struct {
	live     atomic.Int64 // connections up
	connects atomic.Int64 // connections opened

	mu       sync.Mutex
	pubs     []*conn    // publishers
	trackers []*tracker // one per subscriber
}

func (c *counters) addPubs(cs []*conn) {
	c.mu.Lock()
	c.pubs = append(c.pubs, cs...)
	c.mu.Unlock()
}

func (c *counters) addTrackers(ts []*tracker) {
	c.mu.Lock()
	c.trackers = append(c.trackers, ts...)
	c.mu.Unlock()
}

// sample returns the counters now (rates unset).
func (c *counters) sample() Sample {
	s := Sample{Connections: c.live.Load(), Connects: c.connects.Load()}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pubs {
		if p == nil {
			continue
		}
		s.Sent += p.published.Load()
		s.Acked += p.acked.Load()
		s.Inflight += int64(p.outstanding())
	}
	for _, t := range c.trackers {
		s.Received += t.unique.Load()
	}
	return s
}

// sampler samples the counters every interval until the returned function
// is called, which takes a last sample and returns the series. Each sample
// goes to report, if not nil, on the sampler's goroutine.
func (c *counters) sampler(ctx context.Context, interval time.Duration, report func(Sample)) (stop func() []Sample) {
	start := time.Now()
	var (
		series []Sample
		prev   Sample
	)
	// take appends the sample at now; with merge it replaces the last one
	// instead, extending its interval to now.
	take := func(now time.Time, merge bool) {
		s := c.sample()
		s.Elapsed = now.Sub(start)
		if merge && len(series) > 0 {
			series = series[:len(series)-1]
			prev = Sample{}
			if len(series) > 0 {
				prev = series[len(series)-1]
			}
		}
		if dt := (s.Elapsed - prev.Elapsed).Seconds(); dt > 0 {
			s.SentRate = float64(s.Sent-prev.Sent) / dt
			s.ReceivedRate = float64(s.Received-prev.Received) / dt
			s.ConnectRate = float64(s.Connects-prev.Connects) / dt
		}
		series = append(series, s)
		prev = s
		if report != nil {
			report(s)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				take(now, false)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() []Sample {
		close(done)
		wg.Wait()
		// The last, partial interval; one too short for its rates to mean
		// anything extends the sample before it.
		now := time.Now()
		take(now, now.Sub(start)-prev.Elapsed < interval/4)
		return series
	}
}

// shardedHist records latencies from many connections' goroutines: each
// records into the shard of its index, under that shard's lock, so that a
// thousand publishers neither contend on one lock nor hold a histogram
// each.
type shardedHist struct {
	shards [16]struct {
		mu sync.Mutex
		h  *Histogram
	}
}

func (s *shardedHist) record(i int, d time.Duration) {
	sh := &s.shards[i%len(s.shards)]
	sh.mu.Lock()
	if sh.h == nil {
		sh.h = NewHistogram()
	}
	sh.h.Record(d)
	sh.mu.Unlock()
}

// merged returns the union of the shards.
func (s *shardedHist) merged() *Histogram {
	h := NewHistogram()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h.Merge(sh.h)
		sh.mu.Unlock()
	}
	return h
}
