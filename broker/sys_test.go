package broker

import (
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestLoadAverage checks the moving averages against figures worked out
// by hand, with a fake clock: 600 events in one minute from rest give
// 600 x (1 - e^-1) per minute over 1 minute, 600 x (1 - e^-1/5) over 5
// and 600 x (1 - e^-1/15) over 15; a steady 600 per minute converges to
// 600; silence decays by e^-1 per period.
func TestLoadAverage(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9*math.Max(1, want) }
	var l loadAvg
	l.update(600, time.Minute)
	want := [3]float64{600 * (1 - math.Exp(-1)), 600 * (1 - math.Exp(-0.2)), 600 * (1 - math.Exp(-1.0/15))}
	for i := range l {
		if !near(l[i], want[i]) {
			t.Errorf("after one minute: %s = %v, want %v", loadWindows[i].name, l[i], want[i])
		}
	}
	// The same rate in other steps: 10 per 1 s for 6 hours.
	var steady loadAvg
	for i := 0; i < 6*3600; i++ {
		steady.update(10, time.Second)
	}
	for i := range steady {
		if math.Abs(steady[i]-600) > 0.01 {
			t.Errorf("steady 600/min: %s = %v", loadWindows[i].name, steady[i])
		}
	}
	before := steady
	steady.update(0, 5*time.Minute)
	for i, w := range loadWindows {
		if want := before[i] * math.Exp(-float64(5*time.Minute)/float64(w.d)); !near(steady[i], want) {
			t.Errorf("after 5 silent minutes: %s = %v, want %v", w.name, steady[i], want)
		}
	}
	before = steady
	steady.update(5, 0) // no time passed: nothing to fold in
	if steady != before {
		t.Errorf("an update over no time changed %v to %v", before, steady)
	}
}

// sysValues subscribes to $SYS/# and returns the latest payload of each
// topic, once every topic in want is present.
func sysValues(t *testing.T, srv *Server, want ...string) map[string]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	unsub, err := srv.Subscribe("$SYS/#", 0, func(m *Message) {
		mu.Lock()
		got[m.Topic] = string(m.Payload)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		missing := ""
		for _, w := range want {
			if _, ok := got[w]; !ok {
				missing = w
			}
		}
		if missing == "" {
			out := make(map[string]string, len(got))
			for k, v := range got {
				out[k] = v
			}
			mu.Unlock()
			return out
		}
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s in $SYS", missing)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSysLoadHeapRetained reads the new $SYS figures from a running
// broker: load averages after known traffic, heap and goroutines, and a
// retained count that leaves the $SYS messages out.
func TestSysLoadHeapRetained(t *testing.T) {
	srv := &Server{SysInterval: 10 * time.Millisecond, MaxQueuedMessages: 10000}
	addr := startServer(t, srv)
	pub := dialRaw(t, addr, packet.V311)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	const msgs = 200
	for i := 0; i < msgs; i++ {
		pub.send(&packet.Publish{Topic: "load/" + strconv.Itoa(i%3), Payload: []byte("payload"), QoS: 1, PacketID: uint16(i + 1), Retain: i < 3})
		pub.recv()
	}
	// Wait for an update that has seen all of it.
	waitSys(t, srv, "$SYS/broker/messages/received", strconv.Itoa(msgs))

	var windows []string
	for _, w := range loadWindows {
		windows = append(windows, w.name)
	}
	var names []string
	for _, topics := range loadTopics {
		for _, tp := range topics {
			for _, w := range windows {
				names = append(names, "$SYS/broker/load/"+tp+"/"+w)
			}
		}
	}
	vals := sysValues(t, srv, append(names, "$SYS/broker/heap/current", "$SYS/broker/heap/maximum",
		"$SYS/broker/runtime/goroutines", "$SYS/broker/retained messages/count")...)
	f := func(topic string) float64 {
		v, err := strconv.ParseFloat(vals[topic], 64)
		if err != nil {
			t.Fatalf("%s = %q: %v", topic, vals[topic], err)
		}
		return v
	}
	// The values may come from two consecutive updates (the loop goes on
	// while they are read), which differ by far less than 1 %.
	same := func(a, b float64) bool { return math.Abs(a-b) <= 0.01*math.Max(a, b) }
	for _, w := range windows {
		in, bytesIn := f("$SYS/broker/load/messages/received/"+w), f("$SYS/broker/load/bytes/received/"+w)
		if in <= 0 || bytesIn <= in || !same(f("$SYS/broker/load/publish/received/"+w), in) || f("$SYS/broker/load/connections/"+w) <= 0 {
			t.Errorf("%s: messages/received %v, bytes/received %v, connections %v", w, in, bytesIn, f("$SYS/broker/load/connections/"+w))
		}
		if d := f("$SYS/broker/load/publish/dropped/" + w); d != 0 {
			t.Errorf("%s: publish/dropped %v, want 0", w, d)
		}
	}
	cur, maxHeap := f("$SYS/broker/heap/current"), f("$SYS/broker/heap/maximum")
	if cur <= 0 || maxHeap < cur {
		t.Errorf("heap current %v, maximum %v", cur, maxHeap)
	}
	if g := f("$SYS/broker/runtime/goroutines"); g < 2 {
		t.Errorf("goroutines %v", g)
	}
	// Three retained messages of the client's; dozens of $SYS ones.
	if n := vals["$SYS/broker/retained messages/count"]; n != "3" {
		t.Errorf("retained messages/count = %s, want 3", n)
	}
	if n := srv.Stats().Retained; n != 3 {
		t.Errorf("Stats().Retained = %d, want 3", n)
	}
	// Clearing one retained message and the count follows.
	pub.send(&packet.Publish{Topic: "load/0", Retain: true})
	waitSys(t, srv, "$SYS/broker/retained messages/count", "2")
}
