package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ternmq/tern/packet"
)

// until describes when an open-ended run stops, for the log.
func (r *runner) until() string {
	var parts []string
	if r.cfg.Count > 0 {
		parts = append(parts, fmt.Sprintf("%d messages", r.cfg.Count))
	}
	if r.cfg.Duration > 0 {
		parts = append(parts, r.cfg.Duration.String())
	}
	parts = append(parts, "Ctrl-C")
	s := parts[0]
	for _, p := range parts[1:] {
		s += " or " + p
	}
	return s
}

// pub publishes on Topic (%i: the publisher's index) from Publishers
// connections at Rate in all, until ctx ends, Duration passes or Count
// messages are sent; then it waits for the acknowledgements still due.
func (r *runner) pub(ctx context.Context) error {
	cfg := r.cfg
	P := cfg.Publishers
	queue := 1024
	if P > 100 {
		queue = 128
	}
	r.res.RSSBeforeKiB = r.rss()
	r.logf("pub: run %s: connecting %d publishers to %s", cfg.RunID, P, cfg.URL)
	pubs, _, err := r.open(ctx, P, true, func(i int) connOptions { return r.publisher(i, queue) })
	r.counts.addPubs(pubs)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	if err := checkQoS(pubs[0], cfg.QoS); err != nil {
		return err
	}
	rate := "as fast as possible"
	if cfg.Rate > 0 {
		rate = human(cfg.Rate) + " msgs/s"
	}
	r.logf("pub: publishing to %s at QoS %d, %s, until %s", cfg.Topic, cfg.QoS, rate, r.until())
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Duration > 0 {
		pctx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancel()
	start := time.Now()
	sent := make([]int64, P)
	var wg sync.WaitGroup
	for i, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := item{qos: cfg.QoS, topic: topicFor(cfg.Topic, i)}
			sent[i] = publishLoop(pctx, c, base, nil, split(cfg.Count, P, i), cfg.Rate/float64(P))
		}()
	}
	wg.Wait()
	end := time.Now()
	var total int64
	for _, n := range sent {
		total += n
	}
	if cfg.QoS > 0 {
		// The acknowledgements still due, even after Ctrl-C: until none
		// is outstanding or none has come for the drain period.
		r.logf("pub: published %d; waiting for their acknowledgements", total)
		r.waitFor(context.WithoutCancel(ctx), func() (int64, bool) {
			var acked, outstanding int64
			for _, c := range pubs {
				acked += c.acked.Load()
				outstanding += int64(c.outstanding())
			}
			return acked, outstanding == 0
		})
	}
	r.res.RSSAfterKiB = r.rss()
	res := r.res
	res.Sent = total
	res.SentPerSec = round3(perSec(total, end.Sub(start)))
	res.DurationSec = round3(end.Sub(start).Seconds())
	return nil
}

// sub subscribes Subscribers connections to Topic (%i: the subscriber's
// index) and accounts for what arrives until ctx ends, Duration passes or
// Count messages have arrived in all. Publishers are counted from the
// first of their messages that arrives: loss is the sequence numbers
// missing after it.
func (r *runner) sub(ctx context.Context) error {
	cfg := r.cfg
	S := cfg.Subscribers
	queue := 1024
	if S > 100 {
		queue = 128
	}
	r.res.RSSBeforeKiB = r.rss()
	trackers := make([]*tracker, S)
	for i := range trackers {
		trackers[i] = newOpenTracker()
	}
	r.counts.addTrackers(trackers)
	r.logf("sub: run %s: connecting %d subscribers to %s", cfg.RunID, S, cfg.URL)
	subs, _, err := r.open(ctx, S, true, func(i int) connOptions {
		o := r.options('s', i)
		o.bufSize, o.queue = 64<<10, queue
		tr := trackers[i]
		o.onPublish = func(p *packet.Publish, now time.Time) { tr.record(p.Payload, now) }
		return o
	})
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	filters := make(map[*conn]string, S)
	for i, c := range subs {
		filters[c] = topicFor(cfg.Topic, i)
	}
	if err := forEach(cfg.Concurrency, subs, func(c *conn) error { return c.subscribe(ctx, cfg.QoS, filters[c]) }); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	r.logf("sub: %d subscribed to %s at QoS %d, until %s", S, cfg.Topic, cfg.QoS, r.until())
	start := time.Now()
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-deadline:
			break wait
		case <-tick.C:
			if cfg.Count > 0 && sumUnique(trackers) >= int64(cfg.Count) {
				break wait
			}
		}
	}
	end := time.Now()
	r.res.RSSAfterKiB = r.rss()

	res := r.res
	hist := NewHistogram()
	var delivered int64
	var first, last time.Time
	for _, tr := range trackers {
		st := tr.snapshot(hist)
		delivered += st.unique
		res.Duplicates += st.dups
		res.Reordered += st.reordered
		res.Invalid += st.invalid
		res.Loss += st.gaps
		res.Restarts += st.restarts
		if !st.first.IsZero() && (first.IsZero() || st.first.Before(first)) {
			first = st.first
		}
		if st.last.After(last) {
			last = st.last
		}
	}
	res.Expected = delivered + res.Loss
	if first.IsZero() || !last.After(first) {
		first, last = start, end // nothing, or one instant: the whole wait
	}
	r.finishDelivery(hist, delivered, first, last)
	return nil
}
