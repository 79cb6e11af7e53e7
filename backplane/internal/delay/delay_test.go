package delay

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOf(t *testing.T) {
	m := &message.Message{Topic: "w"}
	if d, got := Of(m); d != 0 || got != m {
		t.Errorf("Of(no delay) = %v, %p; want 0, the message itself", d, got)
	}
	m.Properties.WillDelay = 2
	m.Properties.Mark(packet.PropWillDelay)
	d, got := Of(m)
	if d != 2*time.Second || got.Properties.WillDelay != 0 || got.Properties.Has(packet.PropWillDelay) {
		t.Errorf("Of(2s) = %v, delay property %v %v; want 2s without the property", d, got.Properties.WillDelay, got.Properties.Has(packet.PropWillDelay))
	}
	if m.Properties.WillDelay != 2 {
		t.Error("Of changed its argument")
	}
}

func TestQueue(t *testing.T) {
	var q Queue
	done := make(chan struct{})
	q.After(time.Millisecond, func() { close(done) })
	var late atomic.Bool
	q.After(time.Hour, func() { late.Store(true) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a 1ms function did not run")
	}
	fs := q.Close()
	if len(fs) != 1 || late.Load() {
		t.Fatalf("Close returned %d functions (late ran: %v), want the hour's one, not run", len(fs), late.Load())
	}
	fs[0]()
	if !late.Load() {
		t.Error("the returned function is not the waiting one")
	}
	if q.After(time.Millisecond, func() {}) {
		t.Error("After on a closed queue accepted a function")
	}
}
