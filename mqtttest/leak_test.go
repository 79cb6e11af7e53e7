package mqtttest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
)

// TestLeakCheck: a goroutine that outlives the test is reported; one
// that ends in a cleanup registered after LeakCheck is not. Not
// parallel: LeakCheck sees the whole process.
func TestLeakCheck(t *testing.T) {
	stop := make(chan struct{})
	ft := &fakeT{TB: t}
	ft.run(func() {
		mqtttest.LeakCheck(ft)
		go func() { <-stop }()
	})
	close(stop)
	if !ft.failed || !strings.Contains(ft.msg, "found unexpected goroutines") {
		t.Fatalf("LeakCheck missed a leaked goroutine: failed %v, %q", ft.failed, ft.msg)
	}

	ft = &fakeT{TB: t}
	ft.run(func() {
		mqtttest.LeakCheck(ft)
		stop := make(chan struct{})
		go func() { <-stop }()
		ft.Cleanup(func() { close(stop) })
		mqtttest.StartBroker(ft) // its own cleanup runs before the check
	})
	if ft.failed {
		t.Fatalf("LeakCheck reported goroutines that had ended: %s", ft.msg)
	}
}

func TestVerifyNoneAfterStop(t *testing.T) {
	done := make(chan struct{})
	go func() { time.Sleep(10 * time.Millisecond); close(done) }()
	mqtttest.VerifyNone(t) // goleak retries until the sleeper ends
	<-done
}
