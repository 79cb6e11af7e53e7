// Package loadgen is the engine of tern bench, Tern's MQTT load
// generator. It connects publishers and subscribers to any MQTT broker
// over any transport of package transport, runs one scenario and reports
// delivered messages per second, loss, duplicates, reordering and
// end-to-end latency percentiles. The bounded scenarios (fanin, fanout,
// topics, retained, latency, connect, idle) run publishers and
// subscribers together; the open-ended ones (pub, sub) run one side each,
// until their context ends, so that two processes can load a remote
// broker.
//
// While a run goes on, a sampler takes the counters once a second (a
// Sample: sent, received, in flight, connections, and their rates); the
// series is in the Result for the CSV and HTML reports (WriteCSV,
// WriteHTML), beside latency histograms per client group.
//
// Every payload starts with a Header (publisher index, sequence number,
// send time); subscribers decode it to measure latency and to account
// for every message with a small bitmap per publisher. Packets are
// written with package packet over a bufio.Writer, one reader and one
// writer goroutine per connection, so that the generator is not the
// bottleneck it measures.
package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

// Scenario names.
const (
	FanIn    = "fanin"    // P publishers -> 1 subscriber, one topic
	FanOut   = "fanout"   // 1 publisher -> S subscribers, one topic
	Topics   = "topics"   // P publishers on a topic each -> 1 subscriber on a wildcard
	Retained = "retained" // store R retained messages, then time a new subscriber receiving them
	Latency  = "latency"  // a fixed publish rate for a duration
	Connect  = "connect"  // open C connections with concurrency K: connects/s
	Idle     = "idle"     // hold C idle connections for a duration
	Pub      = "pub"      // open-ended: P publishers on a topic pattern at a rate, until the context ends
	Sub      = "sub"      // open-ended: S subscribers on a filter pattern, until the context ends
)

// Scenarios lists the scenario names in the order of the documentation.
var Scenarios = []string{FanIn, FanOut, Topics, Retained, Latency, Connect, Idle, Pub, Sub}

// openEnded reports whether scenario runs until its context ends (or its
// duration or count), its end being no error.
func openEnded(scenario string) bool { return scenario == Pub || scenario == Sub }

// ClientIndex is the placeholder that Config.Topic replaces with the
// client's index (0, 1, ...), as emqtt-bench's %i.
const ClientIndex = "%i"

// maxOpenPublishers bounds the publisher indexes a sub scenario accounts
// for (and so the clients of a pub scenario): the tracker keeps a small
// state per publisher index.
const maxOpenPublishers = 1 << 16

// Config describes one run. Zero fields take the scenario's default (see
// WithDefaults), except Rate, where 0 means as fast as possible and a
// negative value the scenario's default.
type Config struct {
	Scenario string

	URL      string         // tcp://, mqtt://, mqtts://, ssl://, tls://, ws://, wss:// or unix:// URL, or host:port; default tcp://127.0.0.1:1883
	SubURL   string         // where the subscribers connect, if not URL (another node of a cluster); same forms
	TLS      *tls.Config    // for mqtts://, ssl://, tls:// and wss://; nil: the system's roots, no client certificate
	Protocol packet.Version // 3, 4 or 5; default 4 (3.1.1)
	Username string
	Password string

	QoS         byte
	Publishers  int
	Subscribers int
	Count       int     // messages published in all (retained: R); latency: 0 = no limit, Duration ends it
	PayloadSize int     // bytes, at least HeaderSize; default 64
	Rate        float64 // msgs/s over all publishers; 0 = as fast as possible
	Inflight    int     // QoS 1/2 window per publisher, capped by the broker's Receive Maximum; default 64

	Duration time.Duration // latency, idle: how long to run; others: the longest the publishing may take
	Drain    time.Duration // after publishing, how long to wait without progress before counting the rest lost; default 5s

	Connections int           // connect, idle: how many; default 1000 / 10,000
	Concurrency int           // connections opened at a time; default 50
	KeepAlive   time.Duration // default 60s
	// Persistent: subscribers connect with a persistent session (3.1.1
	// clean session 0; 5.0 Session Expiry Interval 300 s), so that a
	// durable broker stores the QoS 1/2 messages queued for them.
	Persistent     bool
	ConnectTimeout time.Duration // per connection, default 10s

	// BrokerPID: if set, the broker's VmRSS is read before and after,
	// its VmHWM (peak) at the end, and its CPU time (/proc/PID/stat)
	// over the publishing and delivery.
	BrokerPID int
	// WritePerPublish: every connection writes each packet it sends
	// (every PUBLISH, every acknowledgement) in a write of its own, as
	// devices do. False: a publisher coalesces what its queue holds into
	// one write, which floods the broker with large reads and hides its
	// per-packet costs.
	WritePerPublish bool
	RunID           string // in every topic and client id; default random

	// Topic is the topic (pub) or filter (sub) of the open-ended
	// scenarios; ClientIndex (%i) in it is replaced by the client's index.
	// Default bench/%i for pub, bench/# for sub.
	Topic string

	// Logf, if set, receives the lines that say what the run is doing.
	Logf func(format string, args ...any)
	// Progress, if set, receives every Sample as it is taken, on the
	// sampler's goroutine.
	Progress func(Sample)
	// SampleInterval is the period of the time series; default 1s.
	SampleInterval time.Duration
}

// WithDefaults returns c with its zero fields set to the defaults of its
// scenario.
func (c Config) WithDefaults() Config {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.URL == "" {
		c.URL = "tcp://127.0.0.1:1883"
	}
	if c.Protocol == 0 {
		c.Protocol = packet.V311
	}
	switch c.Scenario {
	case FanIn:
		def(&c.Publishers, 10)
		def(&c.Subscribers, 1)
		def(&c.Count, 100_000)
	case FanOut:
		def(&c.Publishers, 1)
		def(&c.Subscribers, 100)
		def(&c.Count, 10_000)
	case Topics:
		def(&c.Publishers, 1000)
		def(&c.Subscribers, 1)
		def(&c.Count, 100_000)
	case Retained:
		c.Publishers, c.Subscribers = 1, 1
		def(&c.Count, 100_000)
		if c.QoS == 0 {
			c.QoS = 1 // acknowledged, so that all are stored before the subscriber comes
		}
	case Latency:
		def(&c.Publishers, 10)
		def(&c.Subscribers, 1)
		if c.Rate < 0 {
			c.Rate = 20_000
		}
		defDur(&c.Duration, 10*time.Second)
	case Connect:
		c.Publishers, c.Subscribers = 0, 0
		def(&c.Connections, 1000)
	case Idle:
		c.Publishers, c.Subscribers = 0, 0
		def(&c.Connections, 10_000)
		defDur(&c.Duration, 30*time.Second)
	case Pub:
		c.Subscribers = 0
		def(&c.Publishers, 1)
		if c.Rate < 0 {
			c.Rate = 1000
		}
		if c.Topic == "" {
			c.Topic = "bench/" + ClientIndex
		}
	case Sub:
		c.Publishers = 0
		def(&c.Subscribers, 1)
		if c.Topic == "" {
			c.Topic = "bench/#"
		}
	}
	if c.Rate < 0 {
		c.Rate = 0
	}
	def(&c.PayloadSize, 64)
	def(&c.Inflight, 64)
	def(&c.Concurrency, 50)
	if !openEnded(c.Scenario) { // pub and sub: 0 is no limit
		defDur(&c.Duration, 60*time.Second)
	}
	defDur(&c.SampleInterval, time.Second)
	defDur(&c.Drain, 5*time.Second)
	defDur(&c.KeepAlive, 60*time.Second)
	defDur(&c.ConnectTimeout, 10*time.Second)
	if c.RunID == "" {
		c.RunID = newRunID()
	}
	return c
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	var errs []error
	if c.SubURL != "" {
		if _, err := brokerURL(c.SubURL); err != nil {
			errs = append(errs, fmt.Errorf("--sub-url: %w", err))
		} else if c.TLS != nil && !isTLS(c.SubURL) {
			errs = append(errs, fmt.Errorf("--sub-url %q does not use TLS, yet TLS options (--cafile, --cert, --key, --insecure) are set: use mqtts:// or wss://", c.SubURL))
		}
	}
	if _, err := brokerURL(c.URL); err != nil {
		errs = append(errs, err)
	} else if c.TLS != nil && !isTLS(c.URL) {
		errs = append(errs, fmt.Errorf("--url %q does not use TLS, yet TLS options (--cafile, --cert, --key, --insecure) are set: use mqtts:// or wss://", c.URL))
	}
	if !slices.Contains(Scenarios, c.Scenario) {
		errs = append(errs, fmt.Errorf("unknown scenario %q (one of %v)", c.Scenario, Scenarios))
	}
	if !c.Protocol.Valid() {
		errs = append(errs, fmt.Errorf("protocol %d: must be 3, 4 or 5", c.Protocol))
	}
	if c.QoS > 2 {
		errs = append(errs, fmt.Errorf("qos %d: must be 0, 1 or 2", c.QoS))
	}
	if c.PayloadSize < HeaderSize {
		errs = append(errs, fmt.Errorf("payload size %d: must be at least %d bytes to hold the header", c.PayloadSize, HeaderSize))
	}
	if c.Publishers < 0 || c.Subscribers < 0 || c.Count < 0 || c.Connections < 0 || c.Concurrency < 0 {
		errs = append(errs, errors.New("counts must not be negative"))
	}
	if c.Inflight < 1 || c.Inflight > 65535 {
		errs = append(errs, fmt.Errorf("inflight %d: must be 1 to 65535", c.Inflight))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if c.Duration < 0 {
		errs = append(errs, errors.New("--duration must not be negative"))
	}
	if c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second {
		errs = append(errs, fmt.Errorf("keepalive %v: must be 0 to 65535s", c.KeepAlive))
	}
	if c.Scenario == Latency && c.Rate == 0 && c.Count == 0 && c.Duration <= 0 {
		errs = append(errs, errors.New("latency: needs a rate, a count or a duration"))
	}
	if openEnded(c.Scenario) {
		if c.Publishers > maxOpenPublishers || c.Subscribers > maxOpenPublishers {
			errs = append(errs, fmt.Errorf("--clients: at most %d", maxOpenPublishers))
		}
		if err := checkTopicPattern(c.Topic, c.Scenario == Sub); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.RunID) > 12 || strings.IndexFunc(c.RunID, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) >= 0 {
		errs = append(errs, fmt.Errorf("run id %q: at most 12 letters and digits (it goes into topics and client ids)", c.RunID))
	}
	return errors.Join(errs...)
}

// topicFor returns pattern with ClientIndex replaced by i.
func topicFor(pattern string, i int) string {
	return strings.ReplaceAll(pattern, ClientIndex, strconv.Itoa(i))
}

// checkTopicPattern checks a pub topic or sub filter pattern, with its
// placeholder replaced, against the MQTT rules.
func checkTopicPattern(pattern string, filter bool) error {
	t := topicFor(pattern, 0)
	var err error
	if filter {
		err = topic.ValidateFilter(t)
	} else {
		err = topic.ValidateName(t)
	}
	if err != nil {
		return fmt.Errorf("--topic %q: %w", pattern, err)
	}
	return nil
}
