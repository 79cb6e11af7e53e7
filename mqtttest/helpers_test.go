package mqtttest_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// fakeT stands in for a testing.TB to see how a helper fails: Fatal and
// Skip end the goroutine that run started, as they do in a real test.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	skipped  bool
	msg      string
	cleanups []func()
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msg += fmt.Sprintf(format, args...) + "\n"
}

func (f *fakeT) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }

func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeT) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = true
	f.msg += fmt.Sprintf(format, args...) + "\n"
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Skip(args ...any) { f.Skipf("%s", fmt.Sprint(args...)) }

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *fakeT) Logf(format string, args ...any) {}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run calls fn on a goroutine of its own, as a test would run, then the
// cleanups it registered, last first.
func (f *fakeT) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.cleanups[i]()
		}()
		<-done
	}
}
