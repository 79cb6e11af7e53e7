package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// Run runs the scenario cfg describes and returns its result. The error
// is non-nil when the scenario could not run (a configuration error, a
// connection or subscription refused; the result is then nil) or was
// interrupted by ctx (the partial result comes with the error). Lost
// messages are reported, not errors. Every connection and goroutine Run
// starts has ended when it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.URL, _ = brokerURL(cfg.URL) // with its scheme, once for all connections
	if cfg.SubURL != "" {
		cfg.SubURL, _ = brokerURL(cfg.SubURL)
	}
	r := &runner{cfg: cfg, res: newResult(cfg)}
	if openEnded(cfg.Scenario) {
		// Ctrl-C ends an open-ended run, not its connections: pub still
		// collects the acknowledgements due, and both disconnect cleanly.
		r.life = context.WithoutCancel(ctx)
	}
	stopSampler := r.counts.sampler(ctx, cfg.SampleInterval, cfg.Progress)
	var err error
	switch cfg.Scenario {
	case FanIn, FanOut, Topics, Latency:
		err = r.messages(ctx)
	case Retained:
		err = r.retained(ctx)
	case Connect:
		err = r.connect(ctx)
	case Idle:
		err = r.idle(ctx)
	case Pub:
		err = r.pub(ctx)
	case Sub:
		err = r.sub(ctx)
	}
	r.res.Series = stopSampler()
	r.closeAll(ctx)
	r.finishAcks()
	switch {
	case err != nil && ctx.Err() == nil:
		return nil, err
	case ctx.Err() != nil && openEnded(cfg.Scenario):
		return r.res, nil // Ctrl-C is how an open-ended run ends
	case ctx.Err() != nil:
		return r.res, fmt.Errorf("interrupted: %w", ctx.Err())
	case err != nil:
		return nil, err
	}
	return r.res, nil
}

type runner struct {
	cfg    Config
	res    *Result
	counts counters        // what the sampler reads
	acks   shardedHist     // publishers' PUBLISH to PUBACK / PUBCOMP latency
	life   context.Context // the connections' context, nil: the run's
	mu     sync.Mutex
	conns  []*conn // every connection opened, closed by closeAll
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Logf != nil {
		r.cfg.Logf(format, args...)
	}
}

func (r *runner) topic(parts ...string) string {
	t := "bench/" + r.cfg.RunID
	for _, p := range parts {
		t += "/" + p
	}
	return t
}

// options returns the options of connection i of a role ('p', 's', 'c').
func (r *runner) options(role byte, i int) connOptions {
	url := r.cfg.URL
	if role == 's' && r.cfg.SubURL != "" {
		url = r.cfg.SubURL
	}
	return connOptions{
		url:            url,
		dial:           transport.DialOptions{TLS: r.cfg.TLS},
		version:        r.cfg.Protocol,
		clientID:       "tb" + r.cfg.RunID + string(role) + strconv.Itoa(i),
		username:       r.cfg.Username,
		password:       r.cfg.Password,
		keepAlive:      r.cfg.KeepAlive,
		connectTimeout: r.cfg.ConnectTimeout,
		bufSize:        512,
		queue:          4,
		counts:         &r.counts,
		life:           r.life,
		persistent:     r.cfg.Persistent && role == 's',
		writeEach:      r.cfg.WritePerPublish,
	}
}

// publisher returns the options of publisher i, with the in-flight window
// and the acknowledgement latency of QoS 1 and 2.
func (r *runner) publisher(i, queue int) connOptions {
	o := r.options('p', i)
	o.bufSize, o.queue = 16<<10, queue
	if r.cfg.QoS > 0 {
		o.inflight = r.cfg.Inflight
		o.ackLatency = &r.acks
	}
	o.payloadSize, o.pubIndex = r.cfg.PayloadSize, uint32(i)
	return o
}

// finishAcks fills the acknowledgement figures from the publishers, once
// their readers have ended.
func (r *runner) finishAcks() {
	r.counts.mu.Lock()
	var acked int64
	for _, c := range r.counts.pubs {
		if c != nil {
			acked += c.acked.Load()
		}
	}
	r.counts.mu.Unlock()
	r.res.Acked = acked
	if r.cfg.QoS > 0 && len(r.counts.pubs) > 0 {
		h := r.acks.merged()
		r.res.setAckLatency(h)
		r.res.addLatency(GroupPublishers, "PUBLISH to its acknowledgement (QoS "+strconv.Itoa(int(r.cfg.QoS))+")", h)
	}
}

// open opens n connections, r.cfg.Concurrency at a time. With all, the
// first failure stops the opening and is returned; otherwise failures are
// counted and the error is returned only if no connection came up. The
// slice holds nil for connections that failed.
func (r *runner) open(ctx context.Context, n int, all bool, mk func(i int) connOptions) ([]*conn, int, error) {
	conns := make([]*conn, n)
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, failed atomic.Int64
		errOnce      sync.Once
		firstErr     error
		wg           sync.WaitGroup
	)
	for range min(max(r.cfg.Concurrency, 1), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || octx.Err() != nil {
					return
				}
				c, err := dialConn(ctx, mk(i))
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					if all {
						cancel()
					}
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	r.mu.Lock()
	up := 0
	for _, c := range conns {
		if c != nil {
			r.conns = append(r.conns, c)
			up++
		}
	}
	r.mu.Unlock()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil && (all || up == 0) {
		return conns, int(failed.Load()), firstErr
	}
	return conns, int(failed.Load()), nil
}

// closeAll disconnects every connection, collecting the errors that broke
// some of them during the run.
func (r *runner) closeAll(ctx context.Context) {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		if err := c.Err(); err != nil {
			if r.res.Errors == 0 {
				r.res.FirstError = err.Error()
			}
			r.res.Errors++
		}
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	forEach(max(r.cfg.Concurrency, 1), conns, func(c *conn) error { c.disconnect(dctx); return nil })
}

// forEach calls f for every non-nil connection, k at a time, and returns
// the first error.
func forEach(k int, conns []*conn, f func(*conn) error) error {
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	for range min(k, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if conns[i] == nil {
					continue
				}
				if err := f(conns[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// rss reads the broker's resident set size, if a pid was given.
func (r *runner) rss() int64 {
	if r.cfg.BrokerPID <= 0 {
		return 0
	}
	kib, err := readRSS(r.cfg.BrokerPID)
	if err != nil {
		r.logf("broker rss: %v", err)
	}
	return kib
}

// waitFor polls until done reports true, ctx ends, or progress has not
// changed for the drain period. It reports whether done was reached.
func (r *runner) waitFor(ctx context.Context, check func() (progress int64, done bool)) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	last, lastChange := int64(-1), time.Now()
	for {
		p, done := check()
		if done {
			return true
		}
		now := time.Now()
		if p != last {
			last, lastChange = p, now
		} else if now.Sub(lastChange) >= r.cfg.Drain {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// publishLoop publishes up to n messages (n < 0: until ctx ends) on c, at
// rate msgs/s (0: as fast as the connection and its window allow), and
// returns how many it queued. Pacing is a token bucket filled by a ticker.
func publishLoop(ctx context.Context, c *conn, base item, topicOf func(seq uint64) string, n int64, rate float64) int64 {
	var seq uint64
	more := func() bool { return n < 0 || int64(seq) < n }
	send := func() bool {
		it := base
		it.seq = seq
		if topicOf != nil {
			it.topic = topicOf(seq)
		}
		if c.publish(ctx, it) != nil {
			return false
		}
		seq++
		return true
	}
	if rate <= 0 {
		for more() && send() {
		}
		return int64(seq)
	}
	interval := time.Duration(float64(time.Second) / rate)
	interval = min(max(interval, time.Millisecond), 100*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	tokens, burst := 1.0, max(1, rate/10) // at most 100 ms worth at once
	last := time.Now()
	for more() {
		for ; tokens >= 1 && more(); tokens-- {
			if !send() {
				return int64(seq)
			}
		}
		select {
		case <-ctx.Done():
			return int64(seq)
		case now := <-t.C:
			tokens = min(tokens+rate*now.Sub(last).Seconds(), burst)
			last = now
		}
	}
	return int64(seq)
}

// split returns how many of total messages publisher i of p sends; -1
// (unbounded) when total is 0.
func split(total, p, i int) int64 {
	if total == 0 {
		return -1
	}
	n := total / p
	if i < total%p {
		n++
	}
	return int64(n)
}

// checkQoS refuses a QoS above the broker's MQTT 5 Maximum QoS.
func checkQoS(c *conn, qos byte) error {
	if c.maxQoS < qos {
		return fmt.Errorf("the broker allows QoS %d at most, --qos %d asked", c.maxQoS, qos)
	}
	return nil
}

// messages runs fanin, fanout, topics and latency: subscribers first,
// then publishers, then publishing, then waiting for the deliveries.
func (r *runner) messages(ctx context.Context) error {
	cfg := r.cfg
	P, S := cfg.Publishers, cfg.Subscribers
	if P == 0 || S == 0 {
		return errors.New("needs at least one publisher and one subscriber")
	}
	topicOf := func(int) string { return r.topic("in") }
	filter := r.topic("in")
	switch cfg.Scenario {
	case FanOut:
		topicOf = func(int) string { return r.topic("out") }
		filter = r.topic("out")
	case Topics:
		topicOf = func(i int) string { return r.topic("t", strconv.Itoa(i)) }
		filter = r.topic("#")
	}
	queue := 1024
	if P > 100 || S > 100 {
		queue = 128
	}
	r.res.RSSBeforeKiB = r.rss()

	trackers := make([]*tracker, S)
	for i := range trackers {
		trackers[i] = newTracker(P)
	}
	r.counts.addTrackers(trackers)
	r.logf("%s: run %s: connecting %d subscribers to %s", cfg.Scenario, cfg.RunID, S, cfg.URL)
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
	if err := forEach(cfg.Concurrency, subs, func(c *conn) error { return c.subscribe(ctx, cfg.QoS, filter) }); err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	r.logf("%s: connecting %d publishers", cfg.Scenario, P)
	pubs, _, err := r.open(ctx, P, true, func(i int) connOptions { return r.publisher(i, queue) })
	r.counts.addPubs(pubs)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	if err := checkQoS(pubs[0], cfg.QoS); err != nil {
		return err
	}

	r.logf("%s: publishing", cfg.Scenario)
	sent := make([]int64, P)
	cpu := r.startCPU()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	for i, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := item{qos: cfg.QoS, topic: topicOf(i)}
			sent[i] = publishLoop(pctx, c, base, nil, split(cfg.Count, P, i), cfg.Rate/float64(P))
		}()
	}
	wg.Wait()
	pubEnd := time.Now()
	truncated := cfg.Count > 0 && pctx.Err() != nil
	cancel()
	var total int64
	for _, n := range sent {
		total += n
	}
	expected := total * int64(S)
	r.logf("%s: published %d in %v; waiting for deliveries", cfg.Scenario, total, pubEnd.Sub(start).Round(time.Millisecond))
	r.waitFor(ctx, func() (int64, bool) {
		delivered := sumUnique(trackers)
		var acked, outstanding int64
		for _, c := range pubs {
			acked += c.acked.Load()
			outstanding += int64(c.outstanding())
		}
		return delivered + acked, delivered >= expected && outstanding == 0
	})
	r.res.RSSAfterKiB = r.rss()
	cpu.finish(sumUnique(trackers))

	res := r.res
	res.Sent, res.Expected, res.Truncated = total, expected, truncated
	res.SentPerSec = perSec(total, pubEnd.Sub(start))
	hist := NewHistogram()
	var last time.Time
	var delivered int64
	for _, tr := range trackers {
		st := tr.snapshot(hist)
		delivered += st.unique
		res.Duplicates += st.dups
		res.Reordered += st.reordered
		res.Invalid += st.invalid
		res.Loss += max(total-st.unique, 0)
		if st.last.After(last) {
			last = st.last
		}
	}
	if last.IsZero() {
		last = pubEnd
	}
	r.finishDelivery(hist, delivered, start, last)
	return nil
}

// finishDelivery fills the delivery figures of the result.
func (r *runner) finishDelivery(hist *Histogram, delivered int64, start, last time.Time) {
	res := r.res
	res.Delivered = delivered
	if res.Expected > 0 {
		res.LossPercent = round3(100 * float64(res.Loss) / float64(res.Expected))
	}
	d := last.Sub(start)
	res.DurationSec = round3(d.Seconds())
	res.DeliveredPerSec = round3(perSec(delivered, d))
	res.SentPerSec = round3(res.SentPerSec)
	res.setLatency(hist)
	label := "publish to delivery"
	if r.cfg.Scenario == Retained {
		label = "SUBSCRIBE to delivery of the retained messages"
	}
	res.addLatency(GroupSubscribers, label, hist)
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func sumUnique(trs []*tracker) int64 {
	var n int64
	for _, t := range trs {
		n += t.unique.Load()
	}
	return n
}
