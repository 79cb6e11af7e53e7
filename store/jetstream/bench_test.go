package jetstream

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/store"
)

// benchApply measures Apply of the batch a QoS 1 message costs a
// persistent session (enqueue of 100 bytes, dequeue of the one before),
// from parallel goroutines (each its own session), and reports the log's
// bytes per batch.
func benchApply(b *testing.B, ss []*server.Server, replicas int) {
	st := open(b, ss[0].ClientURL(), "bench", replicas)
	defer st.Close()
	ctx := context.Background()
	var sessions atomic.Uint64
	payload := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint("s", sessions.Add(1))
		m := &message.Message{Topic: "bench/" + id, Payload: payload, QoS: 1}
		var seq uint64
		for pb.Next() {
			seq++
			cs := []store.Change{store.Enqueue(id, store.Queued{Seq: seq, MsgID: st.idBase() + seq, Msg: m, QoS: 1})}
			if seq > 1 {
				cs = append(cs, store.Dequeue(id, seq-1))
			}
			if err := st.Apply(ctx, cs...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	info, err := st.log.Info(ctx)
	if err == nil && info.State.Msgs > 0 {
		b.ReportMetric(float64(info.State.Bytes)/float64(info.State.Msgs), "log-bytes/batch")
	}
}

func BenchmarkApply(b *testing.B) { benchApply(b, []*server.Server{mqtttest.StartEmbeddedNATS(b)}, 1) }

func BenchmarkApplyCluster(b *testing.B) { benchApply(b, mqtttest.StartEmbeddedNATSCluster(b, 3), 3) }

// BenchmarkLoadSession measures LoadSession of a session of 10 queued
// messages among 1000 sessions, from another node.
func BenchmarkLoadSession(b *testing.B) {
	srv := mqtttest.StartEmbeddedNATS(b)
	w := open(b, srv.ClientURL(), "load", 1)
	ctx := context.Background()
	for i := range 1000 {
		id := fmt.Sprint("s", i)
		var cs []store.Change
		cs = append(cs, store.PutSession(id, store.SessionInfo{Expiry: 3600, Version: 5}))
		for q := range uint64(10) {
			cs = append(cs, store.Enqueue(id, store.Queued{Seq: q + 1, MsgID: uint64(i)*10 + q + 1, Msg: &message.Message{Topic: "t", Payload: make([]byte, 100), QoS: 1}, QoS: 1}))
		}
		if err := w.Apply(ctx, cs...); err != nil {
			b.Fatal(err)
		}
	}
	r := open(b, srv.ClientURL(), "load", 1)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ss, ok, err := r.LoadSession(ctx, fmt.Sprint("s", i%1000))
		if err != nil || !ok || len(ss.Queue) != 10 {
			b.Fatalf("LoadSession: %v %v %d", ok, err, len(ss.Queue))
		}
	}
}
