package client_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store/disk"
)

// BenchmarkPublishDiskSync measures QoS 1 publishes (each Publish
// waiting for its PUBACK) from several goroutines sharing one client
// whose session is in store/disk with Sync: every accepted message costs
// an fsync'd add, sent mark and delete, so the figure shows whether
// concurrent publishers share fsyncs (the store's group commit) or queue
// behind the client's lock.
//
//	go test -run '^$' -bench BenchmarkPublishDiskSync -benchtime 2000x ./client/
func BenchmarkPublishDiskSync(b *testing.B) {
	_, url := startTern(b, nil)
	payload := make([]byte, 64)
	for _, g := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			st, err := disk.Open(b.TempDir(), disk.Options{Sync: true})
			if err != nil {
				b.Fatal(err)
			}
			c := connect(b, client.Config{Servers: []string{url}, Store: st})
			m := &message.Message{Topic: "bench/disk", Payload: payload, QoS: 1}
			cx := ctx(b)
			b.ResetTimer()
			var wg sync.WaitGroup
			per := (b.N + g - 1) / g
			errs := make(chan error, g)
			for range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if _, err := c.Publish(cx, m); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per*g)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestConcurrentPublishersDiskSync: goroutines publishing QoS 1 at once
// onto store/disk with Sync (whose calls the client makes without its
// lock, concurrently) all succeed, each goroutine's messages arrive in
// the order it published them, and the store is empty afterwards.
func TestConcurrentPublishersDiskSync(t *testing.T) {
	_, url := startTern(t, nil)
	dir := t.TempDir()
	st, err := disk.Open(dir, disk.Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	const g, n = 8, 40
	sub := connect(t, client.Config{Servers: []string{url}, MaxBuffered: g * n})
	got, err := sub.Subscribe(ctx(t), "conc/#", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := connect(t, client.Config{Servers: []string{url}, Store: st})
	var wg sync.WaitGroup
	errs := make(chan error, g)
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				m := &message.Message{Topic: fmt.Sprintf("conc/%d", w), Payload: []byte(fmt.Sprint(i)), QoS: 1}
				if _, err := c.Publish(ctx(t), m); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next, stop := iterPull(got.Messages(ctx(t)))
	defer stop()
	last := map[string]int{}
	for range g * n {
		m, ok := next()
		if !ok {
			t.Fatal("messages missing")
		}
		i := 0
		fmt.Sscan(string(m.Payload), &i)
		if prev, seen := last[m.Topic]; seen && i != prev+1 || !seen && i != 0 {
			t.Fatalf("%s: %d after %d", m.Topic, i, prev)
		}
		last[m.Topic] = i
	}
	if err := c.Disconnect(ctx(t)); err != nil {
		t.Fatal(err)
	}
	st2, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if outs, err := st2.Outgoing(); err != nil || len(outs) != 0 {
		t.Fatalf("store after every PUBACK: %d messages, %v", len(outs), err)
	}
}
