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
