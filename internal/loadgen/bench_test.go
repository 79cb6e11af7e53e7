package loadgen

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// sinkBroker accepts connections, answers CONNECT with CONNACK and
// discards everything else: it measures the generator alone. With ack
// set it also acknowledges QoS 1 and 2 publishes (PUBACK, PUBREC, and
// PUBCOMP for PUBREL), so that a publisher's in-flight window turns over.
func sinkBroker(b *testing.B, ack bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReaderSize(nc, 64<<10)
				rd := packet.NewReader(br)
				if _, err := rd.ReadPacket(); err != nil {
					return
				}
				bw := bufio.NewWriterSize(nc, 16<<10)
				w := packet.NewWriter(bw)
				w.Version = packet.V311
				w.WritePacket(&packet.Connack{})
				bw.Flush()
				if !ack {
					io.Copy(io.Discard, br)
					return
				}
				for {
					p, err := rd.ReadPacket()
					if err != nil {
						return
					}
					switch p := p.(type) {
					case *packet.Publish:
						switch p.QoS {
						case 1:
							w.WritePacket(&packet.Puback{PacketID: p.PacketID})
						case 2:
							w.WritePacket(&packet.Pubrec{PacketID: p.PacketID})
						}
					case *packet.Pubrel:
						w.WritePacket(&packet.Pubcomp{PacketID: p.PacketID})
					}
					if br.Buffered() == 0 {
						if bw.Flush() != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}

func benchPublish(b *testing.B, qos byte) {
	url := sinkBroker(b, qos > 0)
	ctx := context.Background()
	o := connOptions{url: url, version: packet.V311, clientID: "b", bufSize: 16 << 10,
		queue: 1024, payloadSize: 64, connectTimeout: 5 * time.Second}
	if qos > 0 {
		o.inflight = 64
	}
	c, err := dialConn(ctx, o)
	if err != nil {
		b.Fatal(err)
	}
	defer c.disconnect(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	publishLoop(ctx, c, item{topic: "bench/x/in", qos: qos}, nil, int64(b.N), 0)
	if qos > 0 {
		for c.outstanding() > 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// BenchmarkPublishQoS0 is the rate one publisher connection writes at.
func BenchmarkPublishQoS0(b *testing.B) { benchPublish(b, 0) }

// BenchmarkPublishQoS1 is one publisher with 64 QoS 1 messages in flight
// against a peer that acknowledges at once: the cost of the window.
func BenchmarkPublishQoS1(b *testing.B) { benchPublish(b, 1) }

// BenchmarkPublishQoS2 is BenchmarkPublishQoS1 with the QoS 2 exchange.
func BenchmarkPublishQoS2(b *testing.B) { benchPublish(b, 2) }

// BenchmarkTrackerRecord is the subscriber's accounting per message.
func BenchmarkTrackerRecord(b *testing.B) {
	tr := newTracker(10)
	p := make([]byte, 64)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		PutHeader(p, Header{Publisher: uint32(i % 10), Seq: uint64(i / 10), Sent: now.UnixNano()})
		tr.record(p, now)
	}
}

// inProcessBroker starts a Tern broker on a loopback port for b.
func inProcessBroker(b *testing.B) string {
	srv := &broker.Server{Listeners: []broker.Listener{{Type: "tcp", Addr: "127.0.0.1:0"}},
		MaxQueuedMessages: 1 << 20, MaxInflight: 65535, Logger: slog.New(slog.DiscardHandler)}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if addrs == nil {
		b.Fatal(<-errc)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-errc; !errors.Is(err, broker.ErrServerClosed) {
			b.Error(err)
		}
	})
	return "tcp://" + addrs[0].String()
}

// benchRun runs one scenario per b.N iteration against an in-process
// broker and reports the scenario's own rate: end to end, the generator
// and the broker share the machine.
func benchRun(b *testing.B, cfg Config, metric func(*Result) (float64, string)) {
	cfg.URL = inProcessBroker(b)
	ctx := context.Background()
	var sum float64
	var unit string
	for b.Loop() {
		res, err := Run(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if (res.Loss != 0 && cfg.QoS > 0) || res.Errors != 0 {
			b.Fatalf("loss %d, errors %d (%s)", res.Loss, res.Errors, res.FirstError)
		}
		v, u := metric(res)
		sum, unit = sum+v, u
	}
	b.ReportMetric(sum/float64(b.N), unit)
}

// BenchmarkE2EFanInQoS1: 4 publishers, 1 subscriber, 50,000 QoS 1
// messages per iteration through an in-process Tern broker.
func BenchmarkE2EFanInQoS1(b *testing.B) {
	benchRun(b, Config{Scenario: FanIn, QoS: 1, Publishers: 4, Count: 50_000, Rate: -1},
		func(r *Result) (float64, string) { return r.DeliveredPerSec, "msgs/s" })
}

// BenchmarkE2EFanInQoS0: as BenchmarkE2EFanInQoS1 at QoS 0.
func BenchmarkE2EFanInQoS0(b *testing.B) {
	benchRun(b, Config{Scenario: FanIn, QoS: 0, Publishers: 4, Count: 50_000, Rate: -1},
		func(r *Result) (float64, string) { return r.DeliveredPerSec, "msgs/s" })
}

// BenchmarkE2EConnect: 500 connections, 50 at a time, per iteration.
func BenchmarkE2EConnect(b *testing.B) {
	benchRun(b, Config{Scenario: Connect, Connections: 500, Concurrency: 50},
		func(r *Result) (float64, string) { return r.ConnectsPerSec, "connects/s" })
}
