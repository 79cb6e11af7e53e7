package mqtttest

import (
	"testing"

	"go.uber.org/goleak"
)

// LeakOptions returns the goleak options every Tern leak check uses,
// followed by extra. It ignores the goroutine the os/signal package
// starts, once, on the first signal.Notify (command tests install signal
// handlers) and stays for the life of the process; nothing else, so that
// a real leak is never hidden.
func LeakOptions(extra ...goleak.Option) []goleak.Option {
	opts := []goleak.Option{
		goleak.IgnoreAnyFunction("os/signal.loop"),
	}
	return append(opts, extra...)
}

// VerifyTestMain runs the package's tests and then fails the run if
// goroutines are left, with LeakOptions(extra...). Call it from TestMain:
//
//	func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M, extra ...goleak.Option) {
	goleak.VerifyTestMain(m, LeakOptions(extra...)...)
}

// VerifyNone fails t if goroutines other than the test runner's are left
// now, with LeakOptions(extra...). goleak retries for a while before it
// reports, so goroutines that are ending do not count.
func VerifyNone(t testing.TB, extra ...goleak.Option) {
	t.Helper()
	goleak.VerifyNone(t, LeakOptions(extra...)...)
}

// LeakCheck fails t if, once the test and all of its cleanups have run,
// goroutines are left that were not running when LeakCheck was called.
// Call it first in the test, so that its check runs after every other
// cleanup (t.Cleanup runs them last-registered first), including those of
// StartBroker and the other helpers. It sees every goroutine of the
// process, so it does not suit tests that run in parallel with others
// (t.Parallel); those rely on VerifyTestMain and the per-server check of
// StartBroker.
func LeakCheck(t testing.TB, extra ...goleak.Option) {
	t.Helper()
	opts := LeakOptions(append([]goleak.Option{goleak.IgnoreCurrent()}, extra...)...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
