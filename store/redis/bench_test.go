package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/store"
)

// BenchmarkApply measures what the broker's publish path costs on Redis:
// one QoS 1 message of 64 bytes enqueued for fanout persistent sessions
// (one Apply, as the broker writes it before the PUBACK), then dequeued
// (the lazy dequeue at the subscriber's PUBACK). ns/op is one message's
// enqueue and dequeue, Redis on loopback.
func BenchmarkApply(b *testing.B) {
	for _, cluster := range []bool{false, true} {
		name := "single"
		if cluster {
			name = "cluster"
		}
		b.Run(name, func(b *testing.B) {
			var rdb goredis.UniversalClient
			if cluster {
				rc := mqtttest.StartRedisCluster(b, 3)
				rc.WaitAllOK(b)
				rdb = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: rc.Addrs})
			} else {
				r := mqtttest.StartRedis(b, mqtttest.RedisOptions{})
				rdb = goredis.NewClient(&goredis.Options{Addr: r.Addr})
			}
			b.Cleanup(func() { rdb.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := Open(ctx, rdb, Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for _, fanout := range []int{1, 10} {
				b.Run(fmt.Sprint("fanout-", fanout), func(b *testing.B) {
					payload := make([]byte, 64)
					ctx := context.Background()
					b.ReportAllocs()
					for i := range b.N {
						seq := uint64(i + 1)
						ts := make([]store.Target, fanout)
						for j := range ts {
							ts[j] = store.Target{ClientID: fmt.Sprint("bench-", j), Seq: seq, QoS: 1}
						}
						m := &message.Message{Topic: "bench/apply", Payload: payload, QoS: 1}
						if err := s.Apply(ctx, store.EnqueueAll(seq, m, ts)); err != nil {
							b.Fatal(err)
						}
						if err := s.Apply(ctx, store.DequeueAll(ts)); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
