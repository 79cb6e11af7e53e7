package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
)

// TestPubSub runs the two open-ended scenarios against each other, as two
// shells would: sub first, then pub on a topic per publisher (%i); sub
// stops at the count. Then a pub that runs until its context is cancelled
// (Ctrl-C) ends without error and reports what it sent.
func TestPubSub(t *testing.T) {
	verifyNoLeaks(t)
	addrs := startBroker(t, broker.Listener{Type: "tcp", Addr: "127.0.0.1:0"})
	url := "tcp://" + addrs[0].String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	subscribed := make(chan struct{})
	type outcome struct {
		res *Result
		err error
	}
	subDone := make(chan outcome, 1)
	go func() {
		res, err := Run(ctx, Config{Scenario: Sub, URL: url, Topic: "pubsub/+", Subscribers: 2, QoS: 1, Count: 1200,
			Duration: 45 * time.Second, SampleInterval: 100 * time.Millisecond,
			Logf: func(format string, args ...any) {
				t.Logf(format, args...)
				if strings.Contains(format, "subscribed") {
					close(subscribed)
				}
			}})
		subDone <- outcome{res, err}
	}()
	select {
	case <-subscribed:
	case o := <-subDone:
		t.Fatalf("sub ended before subscribing: %v", o.err)
	}
	pres, err := Run(ctx, Config{Scenario: Pub, URL: url, Topic: "pubsub/%i", Publishers: 3, QoS: 1, Count: 600,
		Rate: 3000, SampleInterval: 100 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatalf("pub: %v", err)
	}
	if pres.Sent != 600 || pres.Acked != 600 || pres.SentPerSec <= 0 || pres.AckP50Ms <= 0 || pres.AckMaxMs < pres.AckP99Ms {
		t.Errorf("pub: sent %d acked %d at %v/s, ack p50 %v p99 %v max %v", pres.Sent, pres.Acked, pres.SentPerSec, pres.AckP50Ms, pres.AckP99Ms, pres.AckMaxMs)
	}
	if len(pres.Latency) != 1 || pres.Latency[0].Group != GroupPublishers || pres.Latency[0].Hist.Count() != 600 {
		t.Errorf("pub latency groups: %+v", pres.Latency)
	}
	o := <-subDone
	if o.err != nil {
		t.Fatalf("sub: %v", o.err)
	}
	s := o.res
	// Two subscribers, each receives the 600 messages of 3 publishers.
	if s.Delivered != 1200 || s.Loss != 0 || s.Duplicates != 0 || s.Invalid != 0 || s.LatencySamples != 1200 || s.P50Ms <= 0 {
		t.Errorf("sub: delivered %d loss %d dups %d invalid %d, %d latency samples, p50 %v",
			s.Delivered, s.Loss, s.Duplicates, s.Invalid, s.LatencySamples, s.P50Ms)
	}
	if n := len(s.Series); n == 0 || s.Series[n-1].Received != 1200 {
		t.Errorf("sub series: %+v", s.Series)
	}
	var sent int64
	for _, smp := range pres.Series {
		sent = max(sent, smp.Sent)
	}
	if sent != 600 {
		t.Errorf("pub series ends at %d sent, want 600: %+v", sent, pres.Series)
	}

	// Ctrl-C: the context ends the run, which is no error.
	ictx, icancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, icancel)
	res, err := Run(ictx, Config{Scenario: Pub, URL: url, QoS: 1, Rate: 500, Logf: t.Logf})
	if err != nil || res == nil || res.Sent == 0 || res.Acked != res.Sent {
		t.Errorf("pub until cancelled: %v, %+v", err, res)
	}
}

func TestOpenTracker(t *testing.T) {
	tr := newOpenTracker()
	now := time.Now()
	pay := func(pub uint32, seq uint64) []byte {
		b := make([]byte, HeaderSize)
		PutHeader(b, Header{Publisher: pub, Seq: seq, Sent: now.UnixNano()})
		return b
	}
	// Publisher 7 joined in its middle (from 1000): 1000..1009 but 1004
	// and 1005 lost; 1002 twice.
	for _, q := range []uint64{1000, 1001, 1002, 1002, 1003, 1006, 1007, 1008, 1009} {
		tr.record(pay(7, q), now)
	}
	// Publisher 60000: 5, then restarts at 0 (a new pub run): 0, 1, 3.
	for _, q := range []uint64{3, 5, 0, 1, 3} {
		tr.record(pay(60000, q), now)
	}
	tr.record(pay(maxOpenPublishers, 0), now) // out of range
	st := tr.snapshot(nil)
	// gaps: 1004, 1005 of publisher 7; 4 of the first run of 60000; 2 of its second.
	if st.unique != 13 || st.dups != 1 || st.gaps != 4 || st.restarts != 1 || st.invalid != 1 {
		t.Errorf("stats %+v; want 13 unique, 1 dup, 4 gaps, 1 restart, 1 invalid", st)
	}
	if len(tr.pubs[7].words) > 1 {
		t.Errorf("a publisher seen from seq 1000 holds %d words", len(tr.pubs[7].words))
	}
}
