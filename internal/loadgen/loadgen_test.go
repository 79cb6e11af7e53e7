package loadgen

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() int64{
		"uniform":   func() int64 { return rng.Int64N(10_000_000) },
		"lognormal": func() int64 { return int64(math.Exp(rng.NormFloat64()*2 + 12)) },
		"small":     func() int64 { return rng.Int64N(300) },
		"wide":      func() int64 { return rng.Int64N(1 << 40) },
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			for _, n := range []int{1, 2, 7, 1000, 100_000} {
				h := NewHistogram()
				vals := make([]int64, n)
				for i := range vals {
					vals[i] = gen()
					h.Record(time.Duration(vals[i]))
				}
				slices.Sort(vals)
				for _, q := range []float64{0, 1, 25, 50, 90, 99, 99.9, 99.99, 100} {
					rank := max(int(math.Ceil(q/100*float64(n))), 1)
					want := vals[rank-1]
					got := int64(h.Percentile(q))
					// got is the top of want's bucket, capped at the max.
					if got < want || float64(got-want) > float64(want)/subCount {
						t.Errorf("n=%d p%v = %d, reference %d (relative error %.4f)", n, q, got, want, float64(got-want)/float64(want))
					}
				}
				if h.Max() != time.Duration(vals[n-1]) || h.Min() != time.Duration(vals[0]) || h.Count() != uint64(n) {
					t.Errorf("n=%d: min %v max %v count %d, want %d %d %d", n, h.Min(), h.Max(), h.Count(), vals[0], vals[n-1], n)
				}
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 10_000 {
		d := time.Duration(rng.Int64N(1e9))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	for _, q := range []float64{50, 90, 99, 99.9} {
		if a.Percentile(q) != all.Percentile(q) {
			t.Errorf("merged p%v = %v, want %v", q, a.Percentile(q), all.Percentile(q))
		}
	}
	if a.Max() != all.Max() || a.Min() != all.Min() || a.Count() != all.Count() || a.Mean() != all.Mean() {
		t.Errorf("merged summary differs")
	}
}

func TestHistogramEdges(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(50) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Error("empty histogram should report zeros")
	}
	h.Record(-5)
	h.Record(1 << 62)
	if h.Min() != 0 || h.Max() != maxValue {
		t.Errorf("clamping: min %v max %v", h.Min(), h.Max())
	}
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: range [%d, %d] maps to %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if i > 0 {
			if _, prevHi := bucketRange(i - 1); prevHi+1 != lo {
				t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, prevHi)
			}
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{{}, {Publisher: 7, Seq: 1 << 40, Sent: time.Now().UnixNano()}, {Publisher: math.MaxUint32, Seq: math.MaxUint64, Sent: -1}} {
		b := make([]byte, 64)
		PutHeader(b, h)
		got, ok := ParseHeader(b)
		if !ok || got != h {
			t.Errorf("round trip of %+v: %+v, %v", h, got, ok)
		}
		got, ok = ParseHeader(b[:HeaderSize])
		if !ok || got != h {
			t.Errorf("exact-size round trip of %+v: %+v", h, got)
		}
	}
	b := make([]byte, HeaderSize)
	PutHeader(b, Header{Publisher: 0x01020304, Seq: 5, Sent: 6})
	want := []byte{1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6}
	if !bytes.Equal(b, want) {
		t.Errorf("wire form % x, want % x", b, want)
	}
	if _, ok := ParseHeader(b[:HeaderSize-1]); ok {
		t.Error("short payload parsed")
	}
}

func TestSeqSet(t *testing.T) {
	type counts struct{ unique, dups, reordered int }
	run := func(seqs []uint64) counts {
		var s seqSet
		var c counts
		for _, q := range seqs {
			dup, re := s.add(q)
			switch {
			case dup:
				c.dups++
			default:
				c.unique++
				if re {
					c.reordered++
				}
			}
		}
		return c
	}
	seq := func(from, to uint64) []uint64 {
		var r []uint64
		for i := from; i < to; i++ {
			r = append(r, i)
		}
		return r
	}
	cases := []struct {
		name string
		seqs []uint64
		want counts
	}{
		{"in order", seq(0, 1000), counts{1000, 0, 0}},
		{"duplicate", []uint64{0, 1, 1, 2}, counts{3, 1, 0}},
		{"old duplicate", append(seq(0, 500), 3, 130, 499), counts{500, 3, 0}},
		{"swap", []uint64{0, 2, 1, 3}, counts{4, 0, 1}},
		{"late", append(append(seq(0, 10), seq(11, 300)...), 10), counts{300, 0, 1}},
		{"late duplicate", append(append(seq(0, 10), seq(11, 300)...), 10, 10, 12), counts{300, 2, 1}},
		{"gap", append(seq(0, 10), seq(20, 30)...), counts{20, 0, 0}},
		{"reverse", []uint64{5, 4, 3, 2, 1, 0}, counts{6, 0, 5}},
	}
	for _, tc := range cases {
		if got := run(tc.seqs); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}

	// A hole keeps the window open; it is bounded, and what falls out of
	// it no longer counts as a duplicate.
	var s seqSet
	s.add(1) // 0 never arrives
	for i := uint64(2); i < 3*64*maxWindowWords; i++ {
		s.add(i)
	}
	if len(s.words) > maxWindowWords {
		t.Errorf("window grew to %d words", len(s.words))
	}
	if dup, _ := s.add(0); dup {
		t.Error("a forgotten sequence number counted as duplicate")
	}
	if dup, _ := s.add(3*64*maxWindowWords - 1); !dup {
		t.Error("a recent duplicate not detected")
	}

	// In order, the bitmap stays small.
	var o seqSet
	for i := range uint64(1 << 20) {
		o.add(i)
	}
	if len(o.words) > 1 {
		t.Errorf("in-order window holds %d words", len(o.words))
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker(2)
	now := time.Now()
	pay := func(pub uint32, seq uint64) []byte {
		b := make([]byte, 32)
		PutHeader(b, Header{Publisher: pub, Seq: seq, Sent: now.Add(-time.Millisecond).UnixNano()})
		return b
	}
	for _, m := range []struct {
		pub uint32
		seq uint64
	}{{0, 0}, {1, 0}, {0, 1}, {1, 2}, {1, 1}, {0, 1}, {0, 2}, {1, 2}} {
		tr.record(pay(m.pub, m.seq), now)
	}
	tr.record([]byte("short"), now)
	tr.record(pay(5, 0), now) // publisher out of range
	h := NewHistogram()
	st := tr.snapshot(h)
	if st.unique != 6 || st.dups != 2 || st.reordered != 1 || st.invalid != 2 {
		t.Errorf("stats %+v, want 6 unique, 2 dups, 1 reordered, 2 invalid", st)
	}
	if h.Count() != 6 || h.Percentile(50) < time.Millisecond || h.Percentile(50) > time.Millisecond*101/100 {
		t.Errorf("latency: %d samples, p50 %v", h.Count(), h.Percentile(50))
	}
}

func TestBrokerURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:1883":  "tcp://127.0.0.1:1883",
		"mqtt://example.com":    "mqtt://example.com",
		"localhost:1884":        "tcp://localhost:1884",
		"localhost":             "tcp://localhost",
		"mqtts://h:8883":        "mqtts://h:8883",
		"wss://h/mqtt":          "wss://h/mqtt",
		"ws://h:8080":           "ws://h:8080",
		"unix:///run/tern.sock": "unix:///run/tern.sock",
	} {
		if got, err := brokerURL(in); err != nil || got != want {
			t.Errorf("brokerURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp://", "http://x", "unix://", ""} {
		if _, err := brokerURL(bad); err == nil || !strings.Contains(err.Error(), "--url") {
			t.Errorf("brokerURL(%q): %v, want an error naming --url", bad, err)
		}
	}
	for u, want := range map[string]bool{"mqtts://h": true, "ssl://h": true, "WSS://h": true, "tcp://h": false, "ws://h": false, "h:1883": false} {
		if isTLS(u) != want {
			t.Errorf("isTLS(%q) = %v", u, !want)
		}
	}
}

func TestConfig(t *testing.T) {
	c := Config{Scenario: Latency, Rate: -1}.WithDefaults()
	if c.Rate != 20000 || c.Duration != 10*time.Second || c.Publishers != 10 || len(c.RunID) != 8 {
		t.Errorf("latency defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	c = Config{Scenario: FanIn, Rate: -1}.WithDefaults()
	if c.Rate != 0 || c.Count != 100_000 || c.QoS != 0 {
		t.Errorf("fanin defaults: %+v", c)
	}
	if c := (Config{Scenario: Retained}).WithDefaults(); c.QoS != 1 {
		t.Errorf("retained QoS %d, want 1", c.QoS)
	}
	for _, bad := range []Config{
		{Scenario: "nope"},
		{Scenario: FanIn, PayloadSize: 10},
		{Scenario: FanIn, QoS: 3},
		{Scenario: FanIn, RunID: "a/b"},
		{Scenario: FanIn, Protocol: 6},
		{Scenario: FanIn, URL: "http://x"},
		{Scenario: FanIn, URL: "tcp://x", TLS: &tls.Config{}},
	} {
		c := bad.WithDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}

func TestResultOutput(t *testing.T) {
	r := newResult(Config{Scenario: FanIn}.WithDefaults())
	h := NewHistogram()
	h.Record(1500 * time.Microsecond)
	r.setLatency(h)
	r.Sent, r.Delivered, r.Loss, r.Expected = 10, 9, 1, 10
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "qos", "publishers", "subscribers", "sent", "delivered", "delivered_per_sec",
		"loss", "duplicates", "reordered", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "duration_s"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if m["p50_ms"] != 1.5 {
		t.Errorf("p50_ms = %v, want 1.5", m["p50_ms"])
	}
	buf.Reset()
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "fanin") || !strings.Contains(buf.String(), "1.50ms") {
		t.Errorf("table:\n%s", buf.String())
	}
}

// TestTableLayouts: every scenario prints its own figures, and not a
// table of zeros of another scenario's.
func TestTableLayouts(t *testing.T) {
	for _, tc := range []struct {
		scenario   string
		want, not  []string
		firstField string
	}{
		{FanIn, []string{"delivered", "msgs/s", "loss", "reordered", "p99"}, []string{"connects/s", "KiB/conn", "acked"}, "fanin"},
		{Retained, []string{"delivered", "loss"}, []string{"connects/s"}, "retained"},
		{Connect, []string{"connections", "up", "failed", "connects/s", "p99", "CONNECT to CONNACK"}, []string{"delivered", "msgs/s", "loss", "dups"}, "connect"},
		{Idle, []string{"connections", "held", "KiB/conn", "broker RSS before"}, []string{"delivered", "msgs/s", "loss", "dups", "connects/s"}, "idle"},
		{Pub, []string{"sent", "msgs/s", "acked", "ack p99"}, []string{"delivered", "loss", "dups", "connects/s"}, "pub"},
		{Sub, []string{"received", "msgs/s", "loss", "dups", "p99"}, []string{"sent", "acked", "connects/s"}, "sub"},
	} {
		r := newResult(Config{Scenario: tc.scenario, QoS: 1}.WithDefaults())
		r.Connections, r.ConnectionsUp, r.ConnectsPerSec, r.P99Ms = 10, 10, 1234, 2
		var buf bytes.Buffer
		if err := WriteTable(&buf, r); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		lines := strings.Split(out, "\n")
		header := strings.Fields(lines[0])
		if len(lines) < 2 || header[0] != "scenario" || strings.Fields(lines[1])[0] != tc.firstField {
			t.Errorf("%s: table\n%s", tc.scenario, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", tc.scenario, w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: %q does not belong in\n%s", tc.scenario, n, out)
			}
		}
	}
	// Results of different scenarios: one table each.
	var buf bytes.Buffer
	WriteTable(&buf, newResult(Config{Scenario: FanIn}), newResult(Config{Scenario: FanOut}), newResult(Config{Scenario: Connect}))
	if n := strings.Count(buf.String(), "scenario "); n != 2 {
		t.Errorf("%d table headers for fanin, fanout, connect:\n%s", n, buf.String())
	}
}

// TestReports writes the CSV and HTML reports of a result made up here:
// a row and a chart point per sample, a histogram and a percentile plot
// per latency group, and text from the run escaped.
func TestReports(t *testing.T) {
	r := newResult(Config{Scenario: FanIn, URL: "tcp://h/<script>alert(1)</script>", QoS: 1}.WithDefaults())
	for i := range 5 {
		r.Series = append(r.Series, Sample{Elapsed: time.Duration(i+1) * time.Second, Sent: int64(1000 * (i + 1)),
			SentRate: 1000, Received: int64(900 * (i + 1)), ReceivedRate: 900, Connections: 3, Connects: 3})
	}
	sub, pub := NewHistogram(), NewHistogram()
	for i := range 1000 {
		sub.Record(time.Duration(100+i) * time.Microsecond)
		pub.Record(time.Duration(50+i) * time.Microsecond)
	}
	r.addLatency(GroupSubscribers, "publish to delivery", sub)
	r.addLatency(GroupPublishers, "PUBLISH to its acknowledgement", pub)
	r.addLatency(GroupConnections, "empty", NewHistogram()) // no values: no charts

	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 6 || lines[0] != strings.Join(CSVHeader, ",") || lines[5] != "5.000,5000,1000.000,4500,900.000,0,0,3,3,0.000" {
		t.Errorf("CSV:\n%s", buf.String())
	}

	buf.Reset()
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		`<g class="series" data-group="publishers" data-points="5">`,
		`<g class="series" data-group="subscribers" data-points="5">`,
		`<g class="bars" data-group="subscribers">`, `<g class="bars" data-group="publishers">`,
		"Latency of the subscribers: publish to delivery", "1000 samples",
		"tcp://h/&lt;script&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "connections: empty") {
		t.Error("unescaped text or a chart of an empty histogram")
	}
	if n := strings.Count(page, `<svg class="chart percentiles"`); n != 2 {
		t.Errorf("%d percentile plots, want 2", n)
	}
}
