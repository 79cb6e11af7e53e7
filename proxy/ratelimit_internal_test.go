package proxy

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestRateLimitBuckets drives RateLimit with a fake clock: bursts of one
// second's worth pass at once, then each message waits its share of a
// second, for messages and for bytes; Disconnect closes with 0x96
// instead of waiting.
func TestRateLimitBuckets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s := &Server{}
	c := newConn(s, a)
	c.cw.version = packet.V5
	defer c.cancel()
	clock := time.Unix(1000, 0)
	var waits []time.Duration
	rl := &RateLimit{Messages: 10, Bytes: 1000,
		now: func() time.Time { return clock },
		sleep: func(_ context.Context, d time.Duration) bool {
			waits = append(waits, d)
			clock = clock.Add(d)
			return true
		}}
	pub := func(size int) Verdict {
		return rl.Filter(context.Background(), c, Up, &packet.Publish{Topic: "t", Payload: make([]byte, size-1)})
	}
	// Ten small messages: the burst, no wait.
	for range 10 {
		if v := pub(10); v.Action != Pass {
			t.Fatalf("verdict %v", v.Action)
		}
	}
	if len(waits) != 0 {
		t.Fatalf("waited %v within the burst", waits)
	}
	// The eleventh waits a tenth of a second.
	pub(10)
	if len(waits) != 1 || math.Abs(waits[0].Seconds()-0.1) > 1e-6 {
		t.Fatalf("waits %v, want [100ms]", waits)
	}
	// Bytes: 900 bytes left... a 2000-byte message waits for a full
	// bucket, then goes into debt, which the next one pays.
	clock = clock.Add(10 * time.Second) // buckets full again
	waits = nil
	pub(2000)
	if len(waits) != 0 {
		t.Fatalf("a full bucket made a large message wait %v", waits)
	}
	pub(10)
	if len(waits) != 1 || math.Abs(waits[0].Seconds()-(1+0.01)) > 1e-6 {
		t.Fatalf("waits %v, want [1.01s] to pay the 1000-byte debt and the 10 bytes", waits)
	}
	// Other packets and the other direction pass untouched.
	if v := rl.Filter(context.Background(), c, Up, &packet.Pingreq{}); v.Action != Pass {
		t.Fatal("PINGREQ held")
	}
	// Disconnect: over the limit closes with 0x96.
	rd := &RateLimit{Messages: 1, Policy: Disconnect, now: func() time.Time { return clock }}
	if v := rd.Filter(context.Background(), c, Up, &packet.Publish{Topic: "t"}); v.Action != Pass {
		t.Fatal("the first message was refused")
	}
	if v := rd.Filter(context.Background(), c, Up, &packet.Publish{Topic: "t"}); v.Action != Close || v.Code != packet.MessageRateTooHigh {
		t.Fatalf("got %v %v, want close 0x96", v.Action, v.Code)
	}
	clock = clock.Add(time.Second)
	if v := rd.Filter(context.Background(), c, Up, &packet.Publish{Topic: "t"}); v.Action != Pass {
		t.Fatal("a message a second later was refused")
	}
}
