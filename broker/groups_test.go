package broker

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// liveGroups returns the shared subscription groups the server holds,
// counted both ways.
func liveGroups(srv *Server) (counter int64, inMap int) {
	srv.groups.Range(func(_, _ any) bool { inMap++; return true })
	return srv.groupCount.Load(), inMap
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestSharedGroupsFreed subscribes and unsubscribes 100,000 distinct
// shared subscription groups through the in-process client, 1,000 at a
// time, and checks that the server ends with no group and the heap it
// started with. A group that stayed would cost its shareGroup (about 80
// bytes), its two strings and its sync.Map entry, over 150 bytes: 15 MB
// for all of them, against 512 KiB allowed for the runtime's own noise
// (the in-process subscription registry and pools, sized by the warm-up
// round before the first measurement).
func TestSharedGroupsFreed(t *testing.T) {
	const total, batch = 100_000, 1_000
	srv := &Server{SysInterval: -1, Logger: testLogger(t)}
	startServer(t, srv)
	handler := func(*Message) {}
	round := func(base int) {
		unsubs := make([]func(), 0, batch)
		for i := 0; i < batch; i++ {
			u, err := srv.Subscribe("$share/g"+strconv.Itoa(base+i)+"/sensors/+/temp", 1, handler)
			if err != nil {
				t.Fatal(err)
			}
			unsubs = append(unsubs, u)
		}
		if c, m := liveGroups(srv); c != batch || m != batch {
			t.Fatalf("with %d groups subscribed: counter %d, map %d", batch, c, m)
		}
		for _, u := range unsubs {
			u()
		}
	}
	round(-batch) // warm-up: grows what is sized by the largest batch
	before := heapAlloc()
	for base := 0; base < total; base += batch {
		round(base)
	}
	after := heapAlloc()
	if c, m := liveGroups(srv); c != 0 || m != 0 {
		t.Errorf("after unsubscribing every group: counter %d, map %d, want 0", c, m)
	}
	if n := srv.shared.Len(); n != 0 || srv.sharedSubs.Load() != 0 {
		t.Errorf("shared trie holds %d entries, counter %d", n, srv.sharedSubs.Load())
	}
	if after > before+512<<10 {
		t.Errorf("heap grew by %d KiB over %d groups subscribed and unsubscribed", (after-before)>>10, total)
	}
	t.Logf("heap before %d KiB, after %d KiB", before>>10, after>>10)
}

// TestSharedGroupFreedWhenMembersLeave frees a group whatever way its
// last member leaves: UNSUBSCRIBE, the end of a clean session, a clean
// start over a persistent session, and checks that the group works
// again when created anew.
func TestSharedGroupFreedWhenMembersLeave(t *testing.T) {
	srv := &Server{SysInterval: -1}
	addr := startServer(t, srv)
	waitGroups := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, m := liveGroups(srv)
			if c == want && m == int(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("groups: counter %d, map %d, want %d", c, m, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	pub := dialRaw(t, addr, packet.V311)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})

	// Two members; the group stays until both have gone.
	a := dialRaw(t, addr, packet.V5)
	a.connect(&packet.Connect{ClientID: "a", CleanStart: true})
	a.subscribe(1, "$share/grp/t/+", 1)
	b := dialRaw(t, addr, packet.V311)
	b.connect(&packet.Connect{ClientID: "b", CleanStart: true})
	b.subscribe(1, "$share/grp/t/+", 1)
	c := dialRaw(t, addr, packet.V311)
	c.connect(&packet.Connect{ClientID: "c", CleanStart: false})
	c.subscribe(1, "$share/other/t/#", 0)
	waitGroups(2)

	// UNSUBSCRIBE by one member: the group stays.
	a.send(&packet.Unsubscribe{PacketID: 2, Filters: []string{"$share/grp/t/+"}})
	if _, ok := a.recv().(*packet.Unsuback); !ok {
		t.Fatal("want UNSUBACK")
	}
	waitGroups(2)
	// The end of the last member's clean session frees it.
	b.send(&packet.Disconnect{})
	b.expectClosed()
	waitGroups(1)
	// A clean start over c's persistent session frees "other".
	c.send(&packet.Disconnect{})
	c.expectClosed()
	waitGroups(1) // c's session lives on, offline, still a member
	c2 := dialRaw(t, addr, packet.V311)
	c2.connect(&packet.Connect{ClientID: "c", CleanStart: true})
	waitGroups(0)

	// The group can be created again, and delivers.
	a.subscribe(3, "$share/grp/t/+", 1)
	waitGroups(1)
	pub.send(&packet.Publish{Topic: "t/1", Payload: []byte("again"), QoS: 0})
	if p := a.expectPublish(); string(p.Payload) != "again" {
		t.Fatalf("got %q", p.Payload)
	}
	a.send(&packet.Unsubscribe{PacketID: 4, Filters: []string{"$share/grp/t/+"}})
	a.recv()
	waitGroups(0)
}

// TestSharedGroupChurnNoDuplicates races members that join and leave a
// group (freeing and re-creating it over and over) against a publisher:
// a message must never reach two members, which would happen if two
// groups of the same name and filter lived at once. Run with -race.
func TestSharedGroupChurnNoDuplicates(t *testing.T) {
	srv := &Server{SysInterval: -1, Logger: testLogger(t)}
	startServer(t, srv)
	const msgs = 3000
	var mu sync.Mutex
	seen := map[string]int{}
	handler := func(m *Message) {
		mu.Lock()
		seen[string(m.Payload)]++
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				u, err := srv.Subscribe("$share/churn/c/#", 0, handler)
				if err != nil {
					t.Error(err)
					return
				}
				runtime.Gosched()
				u()
			}
		}()
	}
	for i := 0; i < msgs; i++ {
		if err := srv.Publish("c/x", []byte(fmt.Sprint(i)), 0, false); err != nil {
			t.Fatal(err)
		}
		if i%16 == 0 {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for p, n := range seen {
		if n > 1 {
			t.Errorf("message %s delivered %d times", p, n)
		}
	}
	if c, m := liveGroups(srv); c != 0 || m != 0 {
		t.Errorf("groups left: counter %d, map %d", c, m)
	}
	t.Logf("%d of %d messages found a member", len(seen), msgs)
}
