package mqtttest_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// testRoundTrip is what a test in another package writes: a broker, a
// raw client, one message, and nothing to stop by hand.
func testRoundTrip(t testing.TB) {
	b := mqtttest.StartBroker(t) // shut down, and checked for leaks, when t ends

	c := mqtttest.DialRaw(t, b.Addr, packet.V5)
	c.Connect(&packet.Connect{ClientID: "example", CleanStart: true})
	c.Subscribe(1, "greetings/#", 1)

	if err := b.Server.Publish("greetings/world", []byte("hello"), 1, false); err != nil {
		t.Fatal(err)
	}
	pub := c.ExpectPublish()
	fmt.Printf("%s %q QoS %d\n", pub.Topic, pub.Payload, pub.QoS)
	c.Send(&packet.Puback{PacketID: pub.PacketID})
}

// Example runs testRoundTrip as a test would. (An example gets no
// *testing.T; exampleT stands in for one.)
func Example() {
	t := &exampleT{}
	defer t.finish()
	testRoundTrip(t)
	// Output: greetings/world "hello" QoS 1
}

// exampleT is the little of testing.TB an example needs: failures are
// printed, cleanups run at the end.
type exampleT struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (t *exampleT) Helper()             {}
func (t *exampleT) Cleanup(f func())    { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Failed() bool        { return t.failed }
func (t *exampleT) Logf(string, ...any) {}
func (t *exampleT) Errorf(format string, args ...any) {
	t.failed = true
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (t *exampleT) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic("example failed")
}
func (t *exampleT) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }

func (t *exampleT) finish() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
