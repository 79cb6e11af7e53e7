package broker

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// eventLog is an Observer that keeps every event.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) Observe(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) of(kind EventKind) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitPublish waits for an EventPublish on topic and returns it.
func (l *eventLog) waitPublish(t *testing.T, topic string) Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, e := range l.of(EventPublish) {
			if e.Topic == topic {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publish event for %q", topic)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestObservePublishEverywhere: Observers see every message that enters
// the broker (a client's PUBLISH, Server.Publish, a will), and not the
// broker's $SYS messages; in-process subscriptions are reported too.
func TestObservePublishEverywhere(t *testing.T) {
	var ev eventLog
	srv := &Server{SysInterval: 5 * time.Millisecond, Observers: []Observer{&ev}}
	addr := startServer(t, srv)

	// In-process subscription, and a $SYS update seen by it.
	sys := make(chan struct{}, 1)
	unsub, err := srv.Subscribe("$SYS/broker/uptime", 0, func(*Message) {
		select {
		case sys <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	c := dialRaw(t, addr, packet.V311)
	c.connect(&packet.Connect{ClientID: "net", CleanStart: true, Username: "u"})
	c.send(&packet.Publish{Topic: "from/net", QoS: 1, PacketID: 1, Payload: []byte("n")})
	c.recv()
	if err := srv.Publish("from/inline", []byte("i"), 1, false); err != nil {
		t.Fatal(err)
	}
	w := dialRaw(t, addr, packet.V5)
	w.connect(&packet.Connect{ClientID: "dies", CleanStart: true, Username: "wu",
		Will: &packet.Will{Topic: "from/will", Payload: []byte("bye"), QoS: 1}})
	w.nc.Close() // no DISCONNECT: the will is published

	e := ev.waitPublish(t, "from/net")
	if e.Client == nil || e.Client.ClientID != "net" || e.Client.Username != "u" || e.Client.Inline || string(e.Message.Payload) != "n" {
		t.Errorf("client publish event %+v", e)
	}
	e = ev.waitPublish(t, "from/inline")
	if e.Client == nil || !e.Client.Inline || e.QoS != 1 || string(e.Message.Payload) != "i" {
		t.Errorf("in-process publish event %+v", e)
	}
	e = ev.waitPublish(t, "from/will")
	if e.Client == nil || e.Client.ClientID != "dies" || e.Client.Username != "wu" || e.Message.From != "dies" || string(e.Message.Payload) != "bye" {
		t.Errorf("will publish event %+v", e)
	}

	select {
	case <-sys:
	case <-time.After(5 * time.Second):
		t.Fatal("no $SYS message")
	}
	for _, e := range ev.of(EventPublish) {
		if strings.HasPrefix(e.Topic, "$SYS/") {
			t.Errorf("$SYS message reported: %s", e.Topic)
		}
	}
	if got := srv.Stats().MessagesReceived; got != 2 {
		t.Errorf("MessagesReceived = %d, want 2 (the client's and the program's; not $SYS)", got)
	}

	unsub()
	unsub() // reported once
	subs, unsubs := ev.of(EventSubscribe), ev.of(EventUnsubscribe)
	if len(subs) != 1 || !subs[0].Client.Inline || subs[0].Topic != "$SYS/broker/uptime" {
		t.Errorf("subscribe events %+v", subs)
	}
	if len(unsubs) != 1 || !unsubs[0].Client.Inline || unsubs[0].Topic != "$SYS/broker/uptime" {
		t.Errorf("unsubscribe events %+v", unsubs)
	}
}
