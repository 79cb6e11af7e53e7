package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

func init() { commands = append(commands, newTestCmd) }

func newTestCmd() *cobra.Command {
	return newMQTTCmd(toolTest, "Round-trip test: publish to a topic you subscribe to, report latency and loss",
		`Connect, subscribe to a topic, publish numbered messages to it at --rate and
QoS -q, and print each message's round trip as it comes back, like ping:

  seq=3 qos=1 time=0.412 ms

until Ctrl-C, -C round trips, or -W seconds. Then wait up to --drain for the
messages still on their way and print the summary: sent, received, lost,
duplicated and out of order, and the round trip's min/avg/p50/p99/max.
Messages carry the run's id, so several testers may share a topic.

Exit status: 0 when every message came back once and in order; 2 when one was
lost, duplicated or reordered; 27 when -W ran out before -C round trips were
done; the CONNACK reason code when the broker refused the connection; 1 for
other errors. So "tern test -W 5 -C 10" is a health check for scripts.

The connection options are those of tern pub and tern sub (-h, -p, -L, TLS,
-u, -P, -V, -D connect ..., the defaults file $XDG_CONFIG_HOME/tern/test,
--save and --load).`,
		`  tern test                         # one round trip a second on localhost until Ctrl-C
  tern test -h broker.example -q 1 --rate 100 -C 1000
  tern test -W 5 -C 10 -q 2 && echo healthy
  tern test -L mqtts://broker.example/health/me --rate 0 -C 100   # back to back`,
		runTest)
}

// tripStats counts a test run's round trips.
type tripStats struct {
	mu        sync.Mutex
	sent      map[int]time.Time
	received  map[int]bool
	highest   int
	rtts      []time.Duration
	dups      int
	reordered int
	arrived   chan struct{} // signalled on every new arrival
	closed    bool          // the summary is out: print no more
}

func runTest(ctx context.Context, cmd *cobra.Command, o *mqttOptions) error {
	out := cmd.OutOrStdout()
	var rnd [4]byte
	rand.Read(rnd[:])
	run := hex.EncodeToString(rnd[:])
	tp := "tern/test/" + run
	if len(o.topics) > 0 {
		tp = o.topics[0]
	}
	prefix := []byte("tern-test " + run + " ")

	cfg, err := o.clientConfig(cmd.ErrOrStderr())
	if err != nil {
		return usageErr("%v", err)
	}
	st := &tripStats{sent: map[int]time.Time{}, received: map[int]bool{}, arrived: make(chan struct{}, 1)}
	handle := func(m *client.Message) {
		now := time.Now()
		rest, ok := bytes.CutPrefix(m.Payload, prefix)
		if !ok {
			return // another tester's, or someone else's
		}
		if i := bytes.IndexByte(rest, ' '); i >= 0 {
			rest = rest[:i]
		}
		seq, err := strconv.Atoi(string(rest))
		if err != nil {
			return
		}
		st.mu.Lock()
		sentAt, known := st.sent[seq]
		var line string
		switch {
		case !known || st.closed:
		case st.received[seq]:
			st.dups++
			line = fmt.Sprintf("seq=%d qos=%d DUPLICATE", seq, m.QoS)
		default:
			st.received[seq] = true
			rtt := now.Sub(sentAt)
			st.rtts = append(st.rtts, rtt)
			note := ""
			if seq < st.highest {
				st.reordered++
				note = " OUT OF ORDER"
			}
			st.highest = max(st.highest, seq)
			line = fmt.Sprintf("seq=%d qos=%d time=%.3f ms%s", seq, m.QoS, float64(rtt)/float64(time.Millisecond), note)
		}
		if line != "" {
			fmt.Fprintln(out, line)
		}
		st.mu.Unlock()
		select {
		case st.arrived <- struct{}{}:
		default:
		}
	}
	lossCtx, lost := stopOnLoss(ctx, &cfg)
	defer lost(nil)
	c, err := client.New(cfg)
	if err != nil {
		return usageErr("%v", err)
	}
	defer disconnect(c, o)

	// -W bounds the whole run, connection included.
	runCtx, cancel := context.WithCancel(lossCtx)
	defer cancel()
	timedOut := false
	var wmu sync.Mutex
	if o.timeout > 0 {
		t := time.AfterFunc(time.Duration(o.timeout)*time.Second, func() {
			wmu.Lock()
			timedOut = true
			wmu.Unlock()
			cancel()
		})
		defer t.Stop()
	}
	isTimedOut := func() bool {
		wmu.Lock()
		defer wmu.Unlock()
		return timedOut
	}
	if _, err := c.Connect(runCtx); err != nil {
		if isTimedOut() {
			return timeoutErr(o)
		}
		return connectError(o, err)
	}
	if _, err := c.SubscribeWith(runCtx, o.subscription([]string{tp}, o.qos, handle)); err != nil {
		if isTimedOut() {
			return timeoutErr(o)
		}
		return runErr(o, fmt.Errorf("subscribing to %q: %w", tp, err))
	}
	fmt.Fprintf(out, "TEST %s topic %s qos %d, run %s\n", o.serverURL(), tp, o.qos, run)

	var pubErr error
	start := time.Now()
	seq := 0
	for runCtx.Err() == nil && (o.count == 0 || seq < o.count) {
		seq++
		switch {
		case o.rate > 0:
			due := start.Add(time.Duration(float64(seq-1) / o.rate * float64(time.Second)))
			if !sleepUntil(runCtx, due) {
				seq--
				continue
			}
		case seq > 1:
			// Back to back: the next once the last is back, or --drain.
			if !waitArrival(runCtx, st, seq-1, o.drain) {
				seq--
				continue
			}
		}
		payload := strconv.AppendInt(append([]byte(nil), prefix...), int64(seq), 10)
		if pad := o.payloadSize - len(payload); pad > 0 {
			payload = append(payload, ' ')
			payload = append(payload, bytes.Repeat([]byte{'.'}, pad-1)...)
		}
		st.mu.Lock()
		st.sent[seq] = time.Now()
		st.mu.Unlock()
		m := &message.Message{Topic: tp, Payload: payload, QoS: byte(o.qos)}
		if o.version == packet.V5 {
			m.Properties = o.props[cmdPublish]
		}
		tok := c.PublishAsync(m)
		if o.qos == 0 {
			// A QoS 0 message is done once written; wait for it, so
			// that the next starts after it.
			if _, err := tok.Wait(runCtx); err != nil && runCtx.Err() == nil {
				pubErr = err
				break
			}
		}
	}
	// Wait for the messages on their way, up to --drain; when -W ended
	// a run of -C round trips, there is no more time. A Ctrl-C that
	// ended the run does not end the drain (the last message sent just
	// before it is not lost); a second one does.
	drainBase, stopSignals := signal.NotifyContext(context.WithoutCancel(ctx), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	drainCtx, dcancel := context.WithTimeout(drainBase, o.drain)
	if !isTimedOut() || o.count == 0 {
		for {
			st.mu.Lock()
			missing := len(st.sent) - len(st.received)
			st.mu.Unlock()
			if missing == 0 {
				break
			}
			select {
			case <-st.arrived:
				continue
			case <-drainCtx.Done():
			}
			break
		}
	}
	dcancel()

	lostN, dups, reordered := st.summary(out, o.serverURL(), tp)
	switch {
	case lostErr(o, lossCtx) != nil:
		return lostErr(o, lossCtx)
	case pubErr != nil:
		return runErr(o, fmt.Errorf("publishing: %w", pubErr))
	case isTimedOut() && o.count > 0 && (seq < o.count || lostN > 0):
		return timeoutErr(o)
	case lostN > 0 || dups > 0 || reordered > 0:
		return &exitCodeError{code: exitLoss, quiet: o.quiet,
			err: fmt.Errorf("%d lost, %d duplicated, %d out of order", lostN, dups, reordered)}
	}
	return nil
}

// summary prints the run's figures and returns its faults.
func (st *tripStats) summary(w io.Writer, server, topic string) (lost, dups, reordered int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	lost = len(st.sent) - len(st.received)
	fmt.Fprintf(w, "--- %s %s ---\n", server, topic)
	lossPct := 0.0
	if len(st.sent) > 0 {
		lossPct = 100 * float64(lost) / float64(len(st.sent))
	}
	fmt.Fprintf(w, "%d sent, %d received, %d lost (%.1f%%), %d duplicated, %d out of order\n",
		len(st.sent), len(st.received), lost, lossPct, st.dups, st.reordered)
	if n := len(st.rtts); n > 0 {
		r := slices.Clone(st.rtts)
		slices.Sort(r)
		var sum time.Duration
		for _, d := range r {
			sum += d
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		pct := func(p float64) time.Duration { return r[min(n-1, int(p*float64(n)))] }
		fmt.Fprintf(w, "round trip min/avg/p50/p99/max = %.3f/%.3f/%.3f/%.3f/%.3f ms\n",
			ms(r[0]), ms(sum/time.Duration(n)), ms(pct(0.5)), ms(pct(0.99)), ms(r[n-1]))
	}
	return lost, st.dups, st.reordered
}

// sleepUntil waits until t or ctx ends; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitArrival waits until seq has come back, or for at most limit; false
// when ctx ended.
func waitArrival(ctx context.Context, st *tripStats, seq int, limit time.Duration) bool {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		st.mu.Lock()
		back := st.received[seq]
		st.mu.Unlock()
		if back {
			return true
		}
		select {
		case <-st.arrived:
		case <-timer.C:
			return ctx.Err() == nil
		case <-ctx.Done():
			return false
		}
	}
}
