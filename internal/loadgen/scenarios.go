package loadgen

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ternmq/tern/packet"
)

// retained stores Count retained messages (QoS 1 or 2, acknowledged),
// then times a new subscriber receiving them all, then deletes them.
func (r *runner) retained(ctx context.Context) error {
	cfg := r.cfg
	topicOf := func(seq uint64) string { return r.topic("r", strconv.FormatUint(seq, 10)) }
	r.res.RSSBeforeKiB = r.rss()
	pubs, _, err := r.open(ctx, 1, true, func(i int) connOptions { return r.publisher(i, 1024) })
	r.counts.addPubs(pubs)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	pub := pubs[0]
	if err := checkQoS(pub, cfg.QoS); err != nil {
		return err
	}

	r.logf("retained: run %s: storing %d retained messages", cfg.RunID, cfg.Count)
	cpu := r.startCPU()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	base := item{qos: cfg.QoS, retain: true}
	n := publishLoop(pctx, pub, base, topicOf, int64(cfg.Count), cfg.Rate)
	r.res.Truncated = pctx.Err() != nil
	cancel()
	// The cleanup must delete what was published, even if we stop early.
	defer r.deleteRetained(ctx, n, topicOf)
	acked := r.waitFor(ctx, func() (int64, bool) { return pub.acked.Load(), pub.outstanding() == 0 })
	stored := pub.acked.Load() - pub.nacked.Load()
	r.res.Sent = n
	r.res.SentPerSec = perSec(n, time.Since(start))
	if !acked {
		r.logf("retained: %d of %d publishes not acknowledged", n-pub.acked.Load(), n)
	}
	if ctx.Err() != nil {
		return nil
	}

	r.logf("retained: subscribing to %s", r.topic("r", "#"))
	tr := newTracker(1)
	r.counts.addTrackers([]*tracker{tr})
	subs, _, err := r.open(ctx, 1, true, func(i int) connOptions {
		o := r.options('s', i)
		o.bufSize, o.queue = 64<<10, 1024
		o.onPublish = func(p *packet.Publish, now time.Time) {
			if p.Retain {
				tr.record(p.Payload, now)
			}
		}
		return o
	})
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	sub := subs[0]
	subStart := tr.setSince(time.Now())
	if err := sub.subscribe(ctx, cfg.QoS, r.topic("r", "#")); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	r.waitFor(ctx, func() (int64, bool) { u := tr.unique.Load(); return u, u >= stored })
	r.res.RSSAfterKiB = r.rss()
	cpu.finish(stored)
	sub.disconnect(ctx)

	hist := NewHistogram()
	st := tr.snapshot(hist)
	res := r.res
	res.Expected = stored
	res.Loss = max(stored-st.unique, 0)
	res.Duplicates, res.Reordered, res.Invalid = st.dups, st.reordered, st.invalid
	last := st.last
	if last.IsZero() {
		last = time.Now()
	}
	r.finishDelivery(hist, st.unique, subStart, last)
	return nil
}

// deleteRetained publishes empty retained messages on the first n topics,
// on a new connection, bounded in time even when ctx has ended.
func (r *runner) deleteRetained(ctx context.Context, n int64, topicOf func(uint64) string) {
	if n == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(r.cfg.Duration, 30*time.Second))
	defer cancel()
	r.logf("retained: deleting %d retained messages", n)
	o := r.options('d', 0)
	o.bufSize, o.queue, o.inflight = 16<<10, 1024, r.cfg.Inflight
	c, err := dialConn(cctx, o)
	if err != nil {
		r.logf("retained: cleanup: %v", err)
		return
	}
	defer c.disconnect(cctx)
	done := publishLoop(cctx, c, item{qos: 1, retain: true, empty: true}, topicOf, n, 0)
	r.waitFor(cctx, func() (int64, bool) { return c.acked.Load(), c.outstanding() == 0 })
	if done < n || c.outstanding() > 0 {
		r.logf("retained: cleanup incomplete: %d of %d deleted", c.acked.Load(), n)
	}
}

// connect opens Connections connections as fast as Concurrency allows and
// reports connects per second and CONNECT-to-CONNACK latency.
func (r *runner) connect(ctx context.Context) error {
	cfg := r.cfg
	r.res.RSSBeforeKiB = r.rss()
	r.logf("connect: run %s: opening %d connections, %d at a time, to %s", cfg.RunID, cfg.Connections, cfg.Concurrency, cfg.URL)
	start := time.Now()
	conns, failed, err := r.open(ctx, cfg.Connections, false, func(i int) connOptions { return r.options('c', i) })
	elapsed := time.Since(start)
	r.res.ConnectFailures = failed
	if err != nil {
		return err
	}
	r.res.RSSAfterKiB = r.rss()
	hist := NewHistogram()
	up := 0
	for _, c := range conns {
		if c != nil {
			up++
			hist.Record(c.handshake)
		}
	}
	r.finishConns(up, hist, elapsed)
	r.res.addLatency(GroupConnections, "CONNECT to CONNACK", hist)
	r.res.ConnectsPerSec = round3(perSec(int64(up), elapsed))
	return nil
}

// idle holds Connections idle connections for Duration, reporting how many
// are up.
func (r *runner) idle(ctx context.Context) error {
	cfg := r.cfg
	r.res.RSSBeforeKiB = r.rss()
	live := &r.counts.live
	r.logf("idle: run %s: opening %d connections to %s", cfg.RunID, cfg.Connections, cfg.URL)
	start := time.Now()
	conns, failed, err := r.open(ctx, cfg.Connections, false, func(i int) connOptions { return r.options('i', i) })
	r.res.ConnectFailures = failed
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	r.logf("idle: %d connections up in %v; holding them for %v", live.Load(), elapsed.Round(time.Millisecond), cfg.Duration)
	hold := time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	r.res.RSSAfterKiB = r.rss()
	r.startCPU().finish(0) // records the peak RSS (VmHWM)
	hist := NewHistogram()
	for _, c := range conns {
		if c != nil {
			hist.Record(c.handshake)
		}
	}
	r.finishConns(int(live.Load()), hist, time.Since(hold))
	r.res.addLatency(GroupConnections, "CONNECT to CONNACK", hist)
	r.res.ConnectsPerSec = round3(perSec(int64(hist.Count()), elapsed))
	return nil
}

// finishConns fills the figures of connect and idle.
func (r *runner) finishConns(up int, hist *Histogram, d time.Duration) {
	res := r.res
	res.ConnectionsUp = up
	res.DurationSec = round3(d.Seconds())
	res.setLatency(hist)
	if r.cfg.BrokerPID > 0 && up > 0 && res.RSSBeforeKiB > 0 && res.RSSAfterKiB > 0 {
		res.KiBPerConn = round3(float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(up))
	}
}
