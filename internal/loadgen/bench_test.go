package loadgen

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// sinkBroker accepts connections, answers CONNECT with CONNACK and
// discards everything else: it measures the generator alone.
func sinkBroker(b *testing.B) string {
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
				w := packet.NewWriter(nc)
				w.Version = packet.V311
				w.WritePacket(&packet.Connack{})
				io.Copy(io.Discard, br)
			}()
		}
	}()
	return "tcp://" + l.Addr().String()
}

// BenchmarkPublishQoS0 is the rate one publisher connection writes at.
func BenchmarkPublishQoS0(b *testing.B) {
	url := sinkBroker(b)
	ctx := context.Background()
	c, err := dialConn(ctx, connOptions{url: url, version: packet.V311, clientID: "b", bufSize: 16 << 10,
		queue: 1024, payloadSize: 64, connectTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.disconnect(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	publishLoop(ctx, c, item{topic: "bench/x/in"}, nil, int64(b.N), 0)
}

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
