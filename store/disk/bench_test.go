package disk

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
	"github.com/ternmq/tern/store/storetest"
)

// BenchmarkCycle: AddOutgoing + MarkSent + DeleteOutgoing of a message
// with a 64-byte payload, by 1 and by 8 goroutines, with and without
// Sync (with 8 goroutines and Sync, group commit shares the fsyncs;
// fsyncs/op says how many each cycle took).
func BenchmarkCycle(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, g := range []int{1, 8} {
			name := "sync=false"
			if sync {
				name = "sync=true"
			}
			b.Run(name+"/goroutines="+strconv.Itoa(g), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{Sync: sync, Logger: testLogger(b, nil)})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				storetest.BenchmarkCycle(b, s, g)
				b.ReportMetric(float64(s.Broker().Syncs())/float64(b.N), "fsyncs/op")
			})
		}
	}
}

// fill writes n live messages with 64-byte payloads, each sent, to a
// session in dir, and closes it.
func fill(b *testing.B, dir string, n int) {
	s, err := Open(dir, Options{Logger: testLogger(b, nil)})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	for i := 1; i <= n; i++ {
		m := &message.Message{Topic: "bench/open", Payload: payload, QoS: 1}
		if err := s.AddOutgoing(store.Outgoing{Seq: uint64(i), Msg: m, PacketID: pid(i)}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

const openRecords = 100_000

// pid is the packet id of message i of fill: a packet id names one
// flight at a time, so the messages beyond the 65,535th wait unsent.
func pid(i int) uint16 {
	if i > 65535 {
		return 0
	}
	return uint16(i)
}

// BenchmarkOpen: opening (replaying) a session of 100k live messages;
// heap-B/msg is what the index keeps in memory per message.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	fill(b, dir, openRecords)
	b.ResetTimer()
	var heap float64
	for i := 0; i < b.N; i++ {
		before := heapInUse()
		s, err := Open(dir, Options{Logger: testLogger(b, nil)})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		heap = float64(heapInUse()-before) / openRecords
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-B/msg")
}

// BenchmarkOutgoing: reading the 100k messages back, as a client does
// once after a restart.
func BenchmarkOutgoing(b *testing.B) {
	dir := b.TempDir()
	fill(b, dir, openRecords)
	s, err := Open(dir, Options{Logger: testLogger(b, nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := s.Outgoing()
		if err != nil || len(out) != openRecords {
			b.Fatal(len(out), err)
		}
	}
}

// BenchmarkMemoryHeld compares with the memory store: heap-B/msg is what
// it holds per message of the same shape (the message itself).
func BenchmarkMemoryHeld(b *testing.B) {
	var heap float64
	for i := 0; i < b.N; i++ {
		before := heapInUse()
		s := memory.New()
		for j := 1; j <= openRecords; j++ {
			m := &message.Message{Topic: "bench/open", Payload: make([]byte, 64), QoS: 1}
			s.AddOutgoing(store.Outgoing{Seq: uint64(j), Msg: m, PacketID: pid(j)})
		}
		heap = float64(heapInUse()-before) / openRecords
		s.Close()
	}
	b.ReportMetric(heap, "heap-B/msg")
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
