package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is the outcome of one run. The JSON field names are stable:
// comparison scripts parse them, and new fields are only ever added.
// Every field is always present; fields that do not apply to a scenario
// are zero. Times are milliseconds (_ms) or seconds (_s), rates per
// second, memory KiB. The time series and the latency histograms are not
// in the JSON: WriteCSV and WriteHTML write them.
type Result struct {
	Scenario     string    `json:"scenario"`
	RunID        string    `json:"run_id"`
	URL          string    `json:"url"`
	Protocol     int       `json:"protocol"`
	QoS          int       `json:"qos"`
	Publishers   int       `json:"publishers"`
	Subscribers  int       `json:"subscribers"`
	PayloadBytes int       `json:"payload_bytes"`
	TargetRate   float64   `json:"target_rate"` // msgs/s asked for; 0 = as fast as possible
	Started      time.Time `json:"started"`

	Sent            int64   `json:"sent"`              // messages published
	SentPerSec      float64 `json:"sent_per_sec"`      // over the publishing phase
	Expected        int64   `json:"expected"`          // deliveries expected: sent × subscribers
	Delivered       int64   `json:"delivered"`         // distinct messages received, over all subscribers
	DeliveredPerSec float64 `json:"delivered_per_sec"` // delivered / duration_s
	Loss            int64   `json:"loss"`              // expected − delivered, per subscriber, summed
	LossPercent     float64 `json:"loss_percent"`
	Duplicates      int64   `json:"duplicates"`
	Reordered       int64   `json:"reordered"` // first arrivals after a higher seq of the same publisher
	Invalid         int64   `json:"invalid"`   // payloads without a valid header

	// Latency: publish to delivery (from the header's send time); for
	// retained, SUBSCRIBE to delivery; for connect and idle, CONNECT to
	// CONNACK.
	LatencySamples int64   `json:"latency_samples"`
	P50Ms          float64 `json:"p50_ms"`
	P90Ms          float64 `json:"p90_ms"`
	P99Ms          float64 `json:"p99_ms"`
	P999Ms         float64 `json:"p999_ms"`
	MaxMs          float64 `json:"max_ms"`
	MeanMs         float64 `json:"mean_ms"`

	// DurationSec: from the first publish to the last delivery (retained:
	// from SUBSCRIBE; connect: opening all connections; idle: the hold).
	DurationSec float64 `json:"duration_s"`
	Truncated   bool    `json:"truncated"` // publishing stopped at the max duration before the count

	Connections     int     `json:"connections"`    // connect, idle: asked for
	ConnectionsUp   int     `json:"connections_up"` // connect, idle: up at the end of the run
	ConnectFailures int     `json:"connect_failures"`
	ConnectsPerSec  float64 `json:"connects_per_sec"`

	BrokerPID    int     `json:"broker_pid"`
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"` // (after − before) / connections up, with broker_pid
	// PeakRSSKiB: the broker's VmHWM at the end of the run (its resident
	// peak since it started), with broker_pid.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// Broker CPU time (utime + stime of /proc/PID/stat, to 10 ms) from
	// the first publish to the last delivery, with broker_pid; and
	// divided by the messages delivered, in µs (fanin, fanout, topics,
	// latency; retained: storing and delivering, over the messages
	// stored).
	BrokerCPUSec      float64 `json:"broker_cpu_s"`
	BrokerCPUUsPerMsg float64 `json:"broker_cpu_us_per_msg"`
	// WritePerPublish: every PUBLISH went out in a write of its own
	// (--write-per-publish), as devices send; false: the publishers
	// coalesced what was queued into one write (a flood).
	WritePerPublish bool `json:"write_per_publish"`

	Errors     int    `json:"errors"` // connections broken during the run
	FirstError string `json:"first_error"`

	// Publishers' QoS 1/2 acknowledgements: how many, and the latency
	// from writing the PUBLISH to reading its PUBACK (QoS 1) or PUBCOMP
	// (QoS 2).
	Acked    int64   `json:"acked"`
	AckP50Ms float64 `json:"ack_p50_ms"`
	AckP99Ms float64 `json:"ack_p99_ms"`
	AckMaxMs float64 `json:"ack_max_ms"`

	// Restarts: sub only, publisher runs seen starting over at sequence
	// number 0 (a pub restarted while sub ran).
	Restarts int64 `json:"restarts"`

	Series  []Sample       `json:"-"` // the time series, one Sample per second
	Latency []LatencyGroup `json:"-"` // latency histograms, per client group
}

// Client groups of the latency histograms and the throughput series.
const (
	GroupPublishers  = "publishers"
	GroupSubscribers = "subscribers"
	GroupConnections = "connections"
)

// LatencyGroup is the latency histogram of one client group.
type LatencyGroup struct {
	Group string     // GroupPublishers, GroupSubscribers or GroupConnections
	What  string     // what is measured, e.g. "publish to delivery"
	Hist  *Histogram // the recorded values
}

// addLatency adds the histogram of group, if it holds values.
func (r *Result) addLatency(group, what string, h *Histogram) {
	if h != nil && h.Count() > 0 {
		r.Latency = append(r.Latency, LatencyGroup{Group: group, What: what, Hist: h})
	}
}

// setAckLatency fills the acknowledgement latency fields from h.
func (r *Result) setAckLatency(h *Histogram) {
	r.AckP50Ms = msOf(h.Percentile(50))
	r.AckP99Ms = msOf(h.Percentile(99))
	r.AckMaxMs = msOf(h.Max())
}

func msOf(d time.Duration) float64 { return round3(float64(d) / 1e6) }

func newResult(cfg Config) *Result {
	return &Result{
		Scenario:        cfg.Scenario,
		RunID:           cfg.RunID,
		URL:             cfg.URL,
		Protocol:        int(cfg.Protocol),
		QoS:             int(cfg.QoS),
		Publishers:      cfg.Publishers,
		Subscribers:     cfg.Subscribers,
		PayloadBytes:    cfg.PayloadSize,
		TargetRate:      cfg.Rate,
		Started:         time.Now().UTC().Truncate(time.Millisecond),
		Connections:     cfg.Connections,
		BrokerPID:       cfg.BrokerPID,
		WritePerPublish: cfg.WritePerPublish,
	}
}

// setLatency fills the latency fields from h.
func (r *Result) setLatency(h *Histogram) {
	ms := msOf
	r.LatencySamples = int64(h.Count())
	r.P50Ms = ms(h.Percentile(50))
	r.P90Ms = ms(h.Percentile(90))
	r.P99Ms = ms(h.Percentile(99))
	r.P999Ms = ms(h.Percentile(99.9))
	r.MaxMs = ms(h.Max())
	r.MeanMs = ms(h.Mean())
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

// WriteJSON writes r as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes results as human-readable tables: each scenario
// with the columns of its own figures (messages for fanin, fanout,
// topics, latency and retained; publishing for pub; receiving for sub;
// connections for connect and idle), one row per run, each table followed
// by the runs' other figures.
func WriteTable(w io.Writer, rs ...*Result) error {
	for len(rs) > 0 {
		n := 1
		for n < len(rs) && layoutOf(rs[n].Scenario) == layoutOf(rs[0].Scenario) {
			n++
		}
		if err := writeTable(w, layoutOf(rs[0].Scenario), rs[:n]); err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

type layout int

const (
	layoutMessages layout = iota
	layoutPub
	layoutSub
	layoutConnect
	layoutIdle
)

func layoutOf(scenario string) layout {
	switch scenario {
	case Pub:
		return layoutPub
	case Sub:
		return layoutSub
	case Connect:
		return layoutConnect
	case Idle:
		return layoutIdle
	}
	return layoutMessages
}

func durText(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(time.Millisecond).String()
}

func writeTable(w io.Writer, l layout, rs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	switch l {
	case layoutMessages:
		fmt.Fprintln(tw, "scenario\tqos\tpubs\tsubs\tsent\tdelivered\tmsgs/s\tloss\tdups\treordered\tp50\tp90\tp99\tmax\tduration\t")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
				r.Scenario, r.QoS, r.Publishers, r.Subscribers, r.Sent, r.Delivered,
				human(r.DeliveredPerSec), lossText(r), r.Duplicates, r.Reordered,
				msText(r.P50Ms), msText(r.P90Ms), msText(r.P99Ms), msText(r.MaxMs), durText(r.DurationSec))
		}
	case layoutPub:
		fmt.Fprintln(tw, "scenario\tqos\tpubs\tsent\tmsgs/s\tacked\tack p50\tack p99\tack max\tduration\t")
		for _, r := range rs {
			acked := "-"
			if r.QoS > 0 {
				acked = strconv.FormatInt(r.Acked, 10)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				r.Scenario, r.QoS, r.Publishers, r.Sent, human(r.SentPerSec), acked,
				msText(r.AckP50Ms), msText(r.AckP99Ms), msText(r.AckMaxMs), durText(r.DurationSec))
		}
	case layoutSub:
		fmt.Fprintln(tw, "scenario\tqos\tsubs\treceived\tmsgs/s\tloss\tdups\treordered\tp50\tp90\tp99\tmax\tduration\t")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
				r.Scenario, r.QoS, r.Subscribers, r.Delivered, human(r.DeliveredPerSec), lossText(r),
				r.Duplicates, r.Reordered, msText(r.P50Ms), msText(r.P90Ms), msText(r.P99Ms), msText(r.MaxMs), durText(r.DurationSec))
		}
	case layoutConnect:
		fmt.Fprintln(tw, "scenario\tconnections\tup\tfailed\tconnects/s\tp50\tp90\tp99\tmax\tduration\t")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				r.Scenario, r.Connections, r.ConnectionsUp, r.ConnectFailures, human(r.ConnectsPerSec),
				msText(r.P50Ms), msText(r.P90Ms), msText(r.P99Ms), msText(r.MaxMs), durText(r.DurationSec))
		}
	case layoutIdle:
		fmt.Fprintln(tw, "scenario\tconnections\tup\tfailed\theld\tbroker RSS before\tafter\tKiB/conn\tconnect p50\tp99\tmax\t")
		for _, r := range rs {
			rss := func(kib int64) string {
				if r.BrokerPID <= 0 {
					return "-"
				}
				return strconv.FormatInt(kib, 10) + " KiB"
			}
			perConn := "-"
			if r.BrokerPID > 0 {
				perConn = fmt.Sprintf("%.2f", r.KiBPerConn)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				r.Scenario, r.Connections, r.ConnectionsUp, r.ConnectFailures, durText(r.DurationSec),
				rss(r.RSSBeforeKiB), rss(r.RSSAfterKiB), perConn, msText(r.P50Ms), msText(r.P99Ms), msText(r.MaxMs))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		var extra []string
		if l == layoutConnect {
			extra = append(extra, "latency: CONNECT to CONNACK")
		}
		if l == layoutMessages && r.SentPerSec > 0 {
			extra = append(extra, fmt.Sprintf("published %s msgs/s", human(r.SentPerSec)))
		}
		if (l == layoutMessages || l == layoutSub) && r.P999Ms > 0 {
			extra = append(extra, "p99.9 "+msText(r.P999Ms))
		}
		if l == layoutMessages && r.QoS > 0 && r.Acked > 0 {
			extra = append(extra, fmt.Sprintf("acknowledged %d, ack p50 %s p99 %s", r.Acked, msText(r.AckP50Ms), msText(r.AckP99Ms)))
		}
		if l != layoutIdle && r.BrokerPID > 0 {
			extra = append(extra, fmt.Sprintf("broker RSS %d -> %d KiB, peak %d KiB", r.RSSBeforeKiB, r.RSSAfterKiB, r.PeakRSSKiB))
		}
		if l == layoutMessages && r.BrokerPID > 0 && r.BrokerCPUSec > 0 {
			extra = append(extra, fmt.Sprintf("broker CPU %.2fs, %.2f µs/msg", r.BrokerCPUSec, r.BrokerCPUUsPerMsg))
		}
		if l == layoutMessages && r.WritePerPublish {
			extra = append(extra, "one write per PUBLISH")
		}
		if r.Truncated {
			extra = append(extra, "publishing stopped at the max duration")
		}
		if r.Restarts > 0 {
			extra = append(extra, fmt.Sprintf("%d publisher runs started over (seq 0 again)", r.Restarts))
		}
		if r.Invalid > 0 {
			extra = append(extra, fmt.Sprintf("%d invalid payloads", r.Invalid))
		}
		if r.Errors > 0 {
			extra = append(extra, fmt.Sprintf("%d connection errors, first: %s", r.Errors, r.FirstError))
		}
		if len(extra) > 0 {
			if _, err := fmt.Fprintf(w, "%s: %s\n", r.Scenario, strings.Join(extra, "; ")); err != nil {
				return err
			}
		}
	}
	return nil
}

func lossText(r *Result) string {
	if r.Loss == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.2f%%)", r.Loss, r.LossPercent)
}

func msText(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}

// human formats a rate with three significant figures.
func human(f float64) string {
	switch {
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e4:
		return fmt.Sprintf("%.1fk", f/1e3)
	default:
		return fmt.Sprintf("%.0f", f)
	}
}

// newRunID returns 8 random hex digits.
func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
