package broker

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// offlineSubscriber leaves a persistent session subscribed to filter at
// QoS 1, offline, so that every message to it is queued.
func offlineSubscriber(t *testing.T, addr, id, user, filter string) {
	t.Helper()
	c := dialRaw(t, addr, packet.V311)
	c.connect(&packet.Connect{ClientID: id, Username: user, CleanStart: false})
	c.subscribe(1, filter, 1)
	c.send(&packet.Disconnect{})
	c.expectClosed()
}

// num reads a number from a decoded JSON log line.
func num(l map[string]any, key string) uint64 {
	f, _ := l[key].(float64)
	return uint64(f)
}

// TestDropSummaryLog floods an offline session with a queue of 10: the
// first drop is logged at once, the thousands that follow within the
// interval (an hour here) in one summary at shutdown, with the right
// totals, and Stats and $SYS count every one.
func TestDropSummaryLog(t *testing.T) {
	const queue, msgs = 10, 5000
	var lc logCapture
	srv := &Server{SysInterval: 10 * time.Millisecond, MaxQueuedMessages: queue, Logger: lc.logger(slog.LevelInfo)}
	srv.dropLogEvery = time.Hour // nothing but the first drop and shutdown write a line
	addr := startServer(t, srv)
	offlineSubscriber(t, addr, "slow", "sam", "d/#")

	for i := 0; i < msgs; i++ {
		if err := srv.Publish("d/x", []byte(strconv.Itoa(i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	const dropped = msgs - queue
	st := srv.Stats()
	if st.Dropped != dropped || st.DroppedQueueFull != dropped {
		t.Fatalf("Stats: Dropped %d, DroppedQueueFull %d; want %d", st.Dropped, st.DroppedQueueFull, dropped)
	}
	// $SYS shows the totals.
	for _, topic := range []string{"$SYS/broker/publish/messages/dropped", "$SYS/broker/publish/messages/dropped/queue-full"} {
		waitSys(t, srv, topic, strconv.Itoa(dropped))
	}
	waitSys(t, srv, "$SYS/broker/publish/messages/dropped/too-large", "0")

	lines := lc.find(t, "messages dropped")
	if len(lines) != 1 {
		t.Fatalf("%d drop lines before the interval passed, want 1: %v", len(lines), lines)
	}
	if l := lines[0]; num(l, "dropped") != 1 || num(l, "dropped_total") != 1 || l["client"] != "slow" || l["user"] != "sam" ||
		l["reason"] != "session queue full" || l["level"] != "WARN" {
		t.Errorf("first drop line %v", l)
	}

	srv.Close() // writes what is pending
	lines = lc.find(t, "messages dropped")
	if len(lines) != 2 {
		t.Fatalf("%d drop lines after shutdown, want 2: %v", len(lines), lines)
	}
	l := lines[1]
	by, _ := l["by_reason"].(map[string]any)
	if num(l, "dropped") != dropped-1 || num(l, "dropped_total") != dropped || by == nil || num(by, "queue-full") != dropped-1 {
		t.Errorf("summary line %v; want dropped %d, dropped_total %d", l, dropped-1, dropped)
	}
}

// waitSys waits until the retained $SYS message on topic has payload want.
func waitSys(t *testing.T, srv *Server, topic, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		got := make(chan string, 1)
		unsub, err := srv.Subscribe(topic, 0, func(m *Message) {
			select {
			case got <- string(m.Payload):
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case last = <-got:
		case <-time.After(time.Second):
		}
		unsub()
		if last == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s = %q, want %q", topic, last, want)
}

// TestDropSummaryInterval drops messages over several intervals of 20 ms:
// the lines are at most one per interval (plus the first), each carries
// the drops since the previous one and the running total, and together
// they account for every drop.
func TestDropSummaryInterval(t *testing.T) {
	const every = 20 * time.Millisecond
	var lc logCapture
	srv := &Server{SysInterval: -1, MaxQueuedMessages: 5, Logger: lc.logger(slog.LevelInfo)}
	srv.dropLogEvery = every
	addr := startServer(t, srv)
	offlineSubscriber(t, addr, "s1", "", "d/#")
	offlineSubscriber(t, addr, "s2", "", "d/#")

	start := time.Now()
	for i := 0; i < 3000; i++ {
		srv.Publish("d/x", nil, 1, false)
		if i%500 == 0 {
			time.Sleep(every / 2)
		}
	}
	perClient := uint64(3000 - 5)
	if d := srv.Stats().Dropped; d != 2*perClient {
		t.Fatalf("Dropped = %d, want %d", d, 2*perClient)
	}
	// The last summary comes when its interval has passed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sum [2]uint64
		lines := lc.find(t, "messages dropped")
		for _, l := range lines {
			i := map[any]int{"s1": 0, "s2": 1}[l["client"]]
			sum[i] += num(l, "dropped")
			if num(l, "dropped_total") != sum[i] {
				t.Fatalf("line %v: dropped_total is not the running sum %d", l, sum[i])
			}
		}
		if sum[0] == perClient && sum[1] == perClient {
			// At most one line per client per interval, plus the first
			// and the final one; elapsed is measured, not assumed.
			window := time.Since(start)
			bound := 2 * (2 + int(window/every))
			if len(lines) > bound {
				t.Errorf("%d lines in %v at one per %v per client (bound %d)", len(lines), window, every, bound)
			}
			t.Logf("%d lines for %d drops", len(lines), 2*perClient)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines account for %v drops, want %d each:\n%s", sum, perClient, lc.text())
		}
		time.Sleep(time.Millisecond)
	}
}
