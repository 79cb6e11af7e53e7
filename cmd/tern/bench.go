package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ternmq/tern/internal/loadgen"
	"github.com/ternmq/tern/packet"
)

func init() { commands = append(commands, newBenchCmd) }

// benchTLSFiles are the TLS flags of tern bench, named like
// mosquitto_pub's.
type benchTLSFiles struct {
	caFile, certFile, keyFile string
	insecure                  bool
}

// config returns the TLS client configuration the flags describe, nil
// when none is set.
func (f benchTLSFiles) config() (*tls.Config, error) {
	if f == (benchTLSFiles{}) {
		return nil, nil
	}
	// --insecure is the user's explicit choice, for test brokers with
	// self-signed certificates.
	tc := &tls.Config{InsecureSkipVerify: f.insecure}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--cafile: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cafile %s: no PEM certificate in it", f.caFile)
		}
	}
	switch {
	case f.certFile != "" && f.keyFile != "":
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %w", f.certFile, f.keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case f.certFile != "":
		return nil, errors.New("--cert needs --key, the file of its private key")
	case f.keyFile != "":
		return nil, errors.New("--key needs --cert, the file of its certificate")
	}
	return tc, nil
}

func newBenchCmd() *cobra.Command {
	var (
		cfg      loadgen.Config
		protocol int
		qos      int
		rate     float64
		clients  int
		asJSON   bool
		quiet    bool
		htmlFile string
		csvFile  string
		tlsFiles benchTLSFiles
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Load-test an MQTT broker",
		Long: `Bench connects publishers and subscribers to an MQTT broker, runs one
scenario and reports delivered messages per second, loss, duplicates,
reordering and end-to-end latency percentiles.

Scenarios (defaults in parentheses):
  fanin     P publishers (10) -> 1 subscriber on one topic, --count in all (100000)
  fanout    1 publisher -> S subscribers (100) on one topic (10000 messages)
  topics    P publishers (1000), each on its own topic -> 1 subscriber on a wildcard
  retained  store --count retained messages (100000) at QoS 1, then time a new
            subscriber receiving them all; they are deleted afterwards
  latency   publish at a fixed --rate (20000/s) for --duration (10s)
  connect   open --connections (1000), --concurrency at a time: connects/s
  idle      hold --connections (10000) idle for --duration (30s); with
            --broker-pid, report the broker's memory per connection
  pub       open-ended: --clients publishers (1) publish to --topic (bench/%i,
            %i the client's index) at --rate in all (1000/s; 0 as fast as
            possible) until Ctrl-C, --duration or --count
  sub       open-ended: --clients subscribers (1) on --topic (bench/#) until
            Ctrl-C, --duration or --count; loss, duplicates and latency of what
            a pub (in another shell, on another machine) sends

The bounded scenarios use a fresh run id in their topics (bench/<run>/...)
and client ids. Publishing stops at --count or --duration, whichever comes
first; then bench waits until every message has arrived or nothing has
arrived for --drain. Loss is reported, not an error; the exit status is
non-zero when the scenario could not run (a connection or subscription
refused) or was interrupted (pub and sub end on Ctrl-C normally).

While it runs, bench shows per-second send and receive rates, messages in
flight and connections up: on one updating line when stderr is a terminal,
as a plain line every --interval otherwise. --html writes a report with
throughput over time and latency histograms and percentile plots per client
group; --csv the per-second time series.`,
		Example: `  tern bench fanin --qos 1 --count 200000
  tern bench fanout --subscribers 50 --json
  tern bench latency --rate 5000 --duration 30s --protocol 5 --html latency.html
  tern bench idle --connections 10000 --broker-pid $(pidof mosquitto)
  tern bench connect --url mqtts://broker:8883 --cafile ca.pem --cert me.pem --key me.key
  tern bench sub --url tcp://broker:1883 --topic 'bench/#' --clients 10 --qos 1   # shell 1
  tern bench pub --url tcp://broker:1883 --topic 'bench/%i' --clients 100 --rate 10000   # shell 2`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: loadgen.Scenarios,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Scenario = args[0]
			cfg.Protocol = packet.Version(protocol)
			if qos < 0 || qos > 2 {
				return fmt.Errorf("--qos %d: must be 0, 1 or 2", qos)
			}
			cfg.QoS = byte(qos)
			cfg.Rate = rate
			if !cmd.Flags().Changed("rate") {
				cfg.Rate = -1 // the scenario's default
			}
			open := cfg.Scenario == loadgen.Pub || cfg.Scenario == loadgen.Sub
			if !open && (cmd.Flags().Changed("clients") || cmd.Flags().Changed("topic")) {
				return fmt.Errorf("--clients and --topic apply to the pub and sub scenarios; %s takes --publishers and --subscribers", cfg.Scenario)
			}
			switch cfg.Scenario {
			case loadgen.Pub:
				cfg.Publishers = clients
			case loadgen.Sub:
				cfg.Subscribers = clients
			}
			tc, err := tlsFiles.config()
			if err != nil {
				return err
			}
			cfg.TLS = tc
			if interval <= 0 {
				return fmt.Errorf("--interval %v: must be positive", interval)
			}
			var live *progressLine
			if !quiet {
				live = newProgressLine(cmd.ErrOrStderr(), cfg.Scenario, interval)
				cfg.Logf = live.logf
				cfg.Progress = live.sample
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first Ctrl-C bench finishes its run (pub waits for
			// its acknowledgements); a second one ends the process.
			stopAfter := context.AfterFunc(ctx, func() {
				stop()
				if live != nil {
					live.logf("stopping (Ctrl-C again to quit at once)")
				}
			})
			defer stopAfter()
			res, err := loadgen.Run(ctx, cfg)
			if live != nil {
				live.finish()
			}
			if res != nil {
				out := cmd.OutOrStdout()
				var werr error
				if asJSON {
					werr = res.WriteJSON(out)
				} else {
					werr = loadgen.WriteTable(out, res)
				}
				for _, f := range []struct {
					flag, name string
					write      func(io.Writer) error
				}{{"--html", htmlFile, res.WriteHTML}, {"--csv", csvFile, res.WriteCSV}} {
					if f.name != "" && werr == nil {
						werr = writeReport(f.flag, f.name, f.write)
					}
				}
				if err == nil {
					err = werr
				}
			}
			if err != nil {
				return fmt.Errorf("bench %s: %w", cfg.Scenario, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.URL, "url", "tcp://127.0.0.1:1883", "broker URL: tcp://, mqtts:// (TLS), ws://, wss://host[:port][/path] or unix:///path")
	f.StringVar(&cfg.SubURL, "sub-url", "", "subscribers connect here instead of --url (another node of a cluster: latency across nodes); same forms")
	f.StringVar(&tlsFiles.caFile, "cafile", "", "mqtts://, wss://: PEM file of the CA certificates that sign the broker's (default: the system's)")
	f.StringVar(&tlsFiles.certFile, "cert", "", "mqtts://, wss://: PEM client certificate, with --key")
	f.StringVar(&tlsFiles.keyFile, "key", "", "mqtts://, wss://: PEM private key of --cert")
	f.BoolVar(&tlsFiles.insecure, "insecure", false, "mqtts://, wss://: do not verify the broker's certificate (tests only)")
	f.IntVar(&protocol, "protocol", 4, "MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5 (5.0)")
	f.StringVarP(&cfg.Username, "username", "u", "", "user name")
	f.StringVarP(&cfg.Password, "password", "P", "", "password")
	f.IntVarP(&qos, "qos", "q", 0, "QoS of publishes and subscriptions (retained: at least 1)")
	f.IntVarP(&cfg.Publishers, "publishers", "p", 0, "publishers (0: the scenario's default)")
	f.IntVarP(&cfg.Subscribers, "subscribers", "s", 0, "subscribers (0: the scenario's default)")
	f.IntVarP(&clients, "clients", "c", 1, "pub, sub: how many clients (publishers or subscribers)")
	f.StringVarP(&cfg.Topic, "topic", "t", "", "pub: topic (default bench/%i); sub: filter (default bench/#); %i is the client's index")
	f.IntVarP(&cfg.Count, "count", "n", 0, "messages to publish in all, spread over the publishers (0: the scenario's default; latency, pub: no limit; sub: messages to receive)")
	f.IntVar(&cfg.PayloadSize, "payload", 64, fmt.Sprintf("payload size in bytes (at least %d, the header)", loadgen.HeaderSize))
	f.Float64Var(&rate, "rate", 0, "total publish rate in msgs/s; 0 = as fast as possible (latency: 20000; pub: 1000)")
	f.IntVar(&cfg.Inflight, "inflight", 64, "QoS 1/2 messages in flight per publisher (capped by the broker's Receive Maximum)")
	f.DurationVar(&cfg.Duration, "duration", 0, "latency, idle: how long to run (10s, 30s); pub, sub: 0 = until Ctrl-C; others: the longest publishing may take (60s)")
	f.DurationVar(&cfg.Drain, "drain", 5*time.Second, "after publishing, wait this long without progress before counting the rest as lost")
	f.IntVar(&cfg.Connections, "connections", 0, "connect, idle: connections to open (1000, 10000)")
	f.IntVar(&cfg.Concurrency, "concurrency", 50, "connections opened at a time")
	f.DurationVar(&cfg.KeepAlive, "keepalive", 60*time.Second, "MQTT keep alive")
	f.BoolVar(&cfg.Persistent, "persistent", false, "subscribers keep persistent sessions (clean session 0; MQTT 5: expiry 300s), which a durable broker stores")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 10*time.Second, "time allowed for each CONNECT / CONNACK")
	f.DurationVar(&interval, "interval", 5*time.Second, "progress line period when stderr is not a terminal (on a terminal: one line updated every second)")
	f.IntVar(&cfg.BrokerPID, "broker-pid", 0, "read this process's VmRSS before and after, its peak (VmHWM) and its CPU time per message from /proc (the broker must run on this machine)")
	f.BoolVar(&cfg.WritePerPublish, "write-per-publish", false, "send every PUBLISH (and every acknowledgement) in a write of its own, as devices do, instead of coalescing what is queued into one write")
	f.StringVar(&cfg.RunID, "run-id", "", "run id in topics and client ids, up to 12 letters and digits (default random)")
	f.BoolVar(&asJSON, "json", false, "write the result as JSON instead of a table")
	f.StringVar(&htmlFile, "html", "", "also write a self-contained HTML report (throughput over time, latency histograms and percentiles) to this file")
	f.StringVar(&csvFile, "csv", "", "also write the per-second time series as CSV to this file")
	f.BoolVar(&quiet, "quiet", false, "no progress on stderr")
	return cmd
}

// writeReport creates name and writes a report into it.
func writeReport(flag, name string, write func(io.Writer) error) error {
	fh, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	err = write(fh)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, name, err)
	}
	return nil
}

// progressLine shows a run's progress on stderr: on a terminal, one line
// rewritten in place every second (log lines are printed above it); on
// anything else, a plain line every interval, so that logs stay readable.
type progressLine struct {
	mu       sync.Mutex
	w        io.Writer
	fd       int  // the terminal's, when term
	term     bool // w is a terminal
	shown    bool // the live line is on screen
	line     string
	every    time.Duration // plain lines: period
	next     time.Duration // plain lines: elapsed time of the next
	scenario string
}

func newProgressLine(w io.Writer, scenario string, every time.Duration) *progressLine {
	p := &progressLine{w: w, scenario: scenario, every: every, next: every}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.term, p.fd = true, int(f.Fd())
	}
	return p
}

// clearLine is a carriage return and ANSI "erase to end of line".
const clearLine = "\r\x1b[K"

// logf prints one log line (above the live line on a terminal).
func (p *progressLine) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msg := fmt.Sprintf("tern bench: "+format, args...)
	if p.term && p.shown {
		fmt.Fprintf(p.w, "%s%s\n%s", clearLine, msg, p.line)
		return
	}
	fmt.Fprintln(p.w, msg)
}

// sample shows one Sample.
func (p *progressLine) sample(s loadgen.Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := p.format(s)
	if p.term {
		if width, _, err := term.GetSize(p.fd); err == nil && width > 1 && len(text) >= width {
			text = text[:width-1] // a wrapped line could not be rewritten in place
		}
		p.line, p.shown = text, true
		fmt.Fprint(p.w, clearLine+text)
		return
	}
	if s.Elapsed+p.every/20 >= p.next {
		fmt.Fprintln(p.w, "tern bench: "+text)
		for p.next <= s.Elapsed+p.every/20 {
			p.next += p.every
		}
	}
}

// finish removes the live line: the result follows.
func (p *progressLine) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term && p.shown {
		fmt.Fprint(p.w, clearLine)
		p.shown = false
	}
}

// format is the text of a progress line.
func (p *progressLine) format(s loadgen.Sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %4ds", p.scenario, int(s.Elapsed.Round(time.Second)/time.Second))
	switch p.scenario {
	case loadgen.Connect, loadgen.Idle:
		fmt.Fprintf(&b, "  connections %d up  opened %s/s (%d)", s.Connections, rateText(s.ConnectRate), s.Connects)
	default:
		if p.scenario != loadgen.Sub {
			fmt.Fprintf(&b, "  sent %s/s (%d)", rateText(s.SentRate), s.Sent)
		}
		if p.scenario != loadgen.Pub {
			fmt.Fprintf(&b, "  received %s/s (%d)", rateText(s.ReceivedRate), s.Received)
		}
		if p.scenario != loadgen.Sub {
			fmt.Fprintf(&b, "  in flight %d", s.Inflight)
		}
		fmt.Fprintf(&b, "  connections %d", s.Connections)
	}
	return b.String()
}

// rateText formats a rate with three significant figures.
func rateText(f float64) string {
	switch {
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e4:
		return fmt.Sprintf("%.1fk", f/1e3)
	default:
		return fmt.Sprintf("%.0f", f)
	}
}
