package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
		asJSON   bool
		quiet    bool
		tlsFiles benchTLSFiles
	)
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Load-test an MQTT broker",
		Long: `Bench connects publishers and subscribers to an MQTT broker, runs one
bounded scenario and reports delivered messages per second, loss,
duplicates, reordering and end-to-end latency percentiles.

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

Every run uses a fresh run id in its topics (bench/<run>/...) and client ids.
Publishing stops at --count or --duration, whichever comes first; then bench
waits until every message has arrived or nothing has arrived for --drain.
Loss is reported, not an error; the exit status is non-zero when the
scenario could not run (a connection or subscription refused).`,
		Example: `  tern bench fanin --qos 1 --count 200000
  tern bench fanout --subscribers 50 --json
  tern bench latency --rate 5000 --duration 30s --protocol 5
  tern bench idle --connections 10000 --broker-pid $(pidof mosquitto)`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: loadgen.Scenarios,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Scenario = args[0]
			cfg.Protocol = packet.Version(protocol)
			if qos < 0 || qos > 2 {
				return fmt.Errorf("--qos %d: must be 0, 1 or 2", qos)
			}
			cfg.QoS = byte(qos)
			tc, err := tlsFiles.config()
			if err != nil {
				return err
			}
			cfg.TLS = tc
			cfg.Rate = rate
			if !cmd.Flags().Changed("rate") {
				cfg.Rate = -1 // the scenario's default
			}
			if !quiet {
				stderr := cmd.ErrOrStderr()
				cfg.Logf = func(format string, args ...any) {
					fmt.Fprintf(stderr, "tern bench: "+format+"\n", args...)
				}
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := loadgen.Run(ctx, cfg)
			if res != nil {
				out := cmd.OutOrStdout()
				var werr error
				if asJSON {
					werr = res.WriteJSON(out)
				} else {
					werr = loadgen.WriteTable(out, res)
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
	f.IntVarP(&cfg.Count, "count", "n", 0, "messages to publish in all, spread over the publishers (0: the scenario's default; latency: no limit, --duration ends it)")
	f.IntVar(&cfg.PayloadSize, "payload", 64, fmt.Sprintf("payload size in bytes (at least %d, the header)", loadgen.HeaderSize))
	f.Float64Var(&rate, "rate", 0, "total publish rate in msgs/s; 0 = as fast as possible (latency: 20000)")
	f.IntVar(&cfg.Inflight, "inflight", 64, "QoS 1/2 messages in flight per publisher (capped by the broker's Receive Maximum)")
	f.DurationVar(&cfg.Duration, "duration", 0, "latency, idle: how long to run (10s, 30s); others: the longest publishing may take (60s)")
	f.DurationVar(&cfg.Drain, "drain", 5*time.Second, "after publishing, wait this long without progress before counting the rest as lost")
	f.IntVar(&cfg.Connections, "connections", 0, "connect, idle: connections to open (1000, 10000)")
	f.IntVar(&cfg.Concurrency, "concurrency", 50, "connections opened at a time")
	f.DurationVar(&cfg.KeepAlive, "keepalive", 60*time.Second, "MQTT keep alive")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 10*time.Second, "time allowed for each CONNECT / CONNACK")
	f.DurationVar(&cfg.Interval, "interval", 5*time.Second, "progress report period (on stderr)")
	f.IntVar(&cfg.BrokerPID, "broker-pid", 0, "read this process's VmRSS before and after (the broker must run on this machine)")
	f.StringVar(&cfg.RunID, "run-id", "", "run id in topics and client ids, up to 12 letters and digits (default random)")
	f.BoolVar(&asJSON, "json", false, "write the result as JSON instead of a table")
	f.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	return cmd
}
