package disk

// The broker's write pattern on the log (Broker) and, for comparison, on
// bbolt (a well-kept embedded B+tree engine; here only, in a test file,
// so that it is no dependency of the product). Figures and the verdict:
// bench/notes/store-comparison.md.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
)

// boltBroker is the broker's store on bbolt, enough of it for the
// benchmarks: one key per queued message, session, subscription and
// retained topic; each Apply is one transaction, concurrent ones joined
// by bolt's DB.Batch (its group commit); each commit fsyncs twice (the
// pages, then the meta page).
type boltBroker struct {
	db      *bolt.DB
	batch   bool         // join concurrent Applies with DB.Batch (which waits up to MaxBatchDelay for company)
	lastTx  atomic.Int64 // id of the last write transaction committed: their count, less the first id
	firstTx int64
}

func (b *boltBroker) commits() int64 { return b.lastTx.Load() - b.firstTx }

var (
	bQueue    = []byte("q")
	bSessions = []byte("s")
	bSubs     = []byte("sub")
	bRetained = []byte("r")
)

func openBolt(tb testing.TB, dir string, nosync bool) *boltBroker {
	db, err := bolt.Open(filepath.Join(dir, "broker.bolt"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: nosync, NoFreelistSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	db.MaxBatchDelay = time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, n := range [][]byte{bQueue, bSessions, bSubs, bRetained} {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	var first int64
	db.View(func(tx *bolt.Tx) error { first = int64(tx.ID()); return nil })
	b := &boltBroker{db: db, firstTx: first}
	b.lastTx.Store(first)
	return b
}

func qkey(id string, seq uint64) []byte {
	k := append([]byte(id), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func encodeOne(c store.Change) []byte {
	var e encoder
	e.buf = e.buf[:0]
	if err := e.change(&c); err != nil {
		panic(err)
	}
	return e.buf
}

func (b *boltBroker) Apply(ctx context.Context, cs ...store.Change) error {
	// Encode outside the transaction, as the log does.
	vals := make([][]byte, len(cs))
	for i, c := range cs {
		switch c.Op {
		case store.OpEnqueue, store.OpSession, store.OpSubscribe, store.OpRetain:
			vals[i] = encodeOne(c)
		}
	}
	run := b.db.Update
	if b.batch {
		run = b.db.Batch
	}
	return run(func(tx *bolt.Tx) error {
		id := int64(tx.ID())
		tx.OnCommit(func() {
			for {
				old := b.lastTx.Load()
				if id <= old || b.lastTx.CompareAndSwap(old, id) {
					return
				}
			}
		})
		q := tx.Bucket(bQueue)
		for i, c := range cs {
			var err error
			switch c.Op {
			case store.OpEnqueue:
				err = q.Put(qkey(c.ClientID, c.Queued.Seq), vals[i])
			case store.OpSent:
				k := qkey(c.ClientID, c.Queued.Seq)
				if v := q.Get(k); v != nil {
					// The packet id lives in the value: rewrite it (bolt
					// rewrites the page anyway).
					nv := append([]byte(nil), v...)
					err = q.Put(k, nv)
				}
			case store.OpDequeue:
				err = q.Delete(qkey(c.ClientID, c.Queued.Seq))
			case store.OpSession:
				err = tx.Bucket(bSessions).Put([]byte(c.ClientID), vals[i])
			case store.OpSubscribe:
				err = tx.Bucket(bSubs).Put(append([]byte(c.ClientID+"\x00"), c.Filter...), vals[i])
			case store.OpRetain:
				if c.Msg == nil {
					err = tx.Bucket(bRetained).Delete([]byte(c.Topic))
				} else {
					err = tx.Bucket(bRetained).Put([]byte(c.Topic), vals[i])
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// load reads and decodes everything, as a restart does.
func (b *boltBroker) load() (sessions, retained, queued int, err error) {
	err = b.db.View(func(tx *bolt.Tx) error {
		d := decoder{msgs: map[uint64]*message.Message{}}
		var c store.Change
		each := func(name []byte, n *int) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				d.b, d.err = v, nil
				if !d.next(&c) {
					return fmt.Errorf("bad value: %v", d.err)
				}
				*n++
				return nil
			})
		}
		if err := each(bSessions, &sessions); err != nil {
			return err
		}
		var subs int
		if err := each(bSubs, &subs); err != nil {
			return err
		}
		if err := each(bQueue, &queued); err != nil {
			return err
		}
		return each(bRetained, &retained)
	})
	return
}

func (b *boltBroker) size(tb testing.TB) int64 {
	st, err := os.Stat(b.db.Path())
	if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

type applier interface {
	Apply(ctx context.Context, cs ...store.Change) error
}

// benchQoS1 is one QoS 1 message through one subscriber's session, as
// the broker stores it: enqueued when published (the PUBACK waits for
// this), sent under a packet id, dequeued at the subscriber's PUBACK.
// Each goroutine is a publisher with its own subscriber session.
func benchQoS1(b *testing.B, s applier, goroutines int) {
	ctx := context.Background()
	payload := make([]byte, 64)
	var next atomic.Uint64
	var wg sync.WaitGroup
	per := b.N/goroutines + 1
	b.ResetTimer()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "sub-" + strconv.Itoa(g)
			for i := range per {
				seq := uint64(i + 1)
				mid := next.Add(1)
				m := &message.Message{Topic: "sensors/" + strconv.Itoa(g) + "/temp", Payload: payload, QoS: 1, From: "pub-" + strconv.Itoa(g)}
				if err := s.Apply(ctx, store.Enqueue(id, store.Queued{Seq: seq, MsgID: mid, Msg: m, QoS: 1})); err != nil {
					b.Error(err)
					return
				}
				if err := s.Apply(ctx, store.Sent(id, seq, uint16(seq%65535+1))); err != nil {
					b.Error(err)
					return
				}
				if err := s.Apply(ctx, store.Dequeue(id, seq)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkBrokerQoS1 compares the log and bbolt on the QoS 1 cycle, by
// 1 and 16 publishers at once, fsynced and not. fsyncs/op (log) and
// commits/op (bolt, two fsyncs each) say how well each shares them.
func BenchmarkBrokerQoS1(b *testing.B) {
	for _, nosync := range []bool{false, true} {
		for _, g := range []int{1, 16} {
			name := fmt.Sprintf("sync=%v/publishers=%d", !nosync, g)
			b.Run("log/"+name, func(b *testing.B) {
				mode := SyncAlways
				if nosync {
					mode = SyncNone
				}
				s, err := OpenBroker(b.TempDir(), BrokerOptions{Sync: mode, Logger: testLogger(b, nil)})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				loadOnce(b, s)
				benchQoS1(b, s, g)
				b.ReportMetric(float64(s.syncs.Load())/float64(b.N), "fsyncs/op")
				b.ReportMetric(float64(s.Size())/float64(b.N), "log-B/op")
			})
			b.Run("bolt/"+name, func(b *testing.B) {
				s := openBolt(b, b.TempDir(), nosync)
				s.batch = g > 1
				defer s.db.Close()
				benchQoS1(b, s, g)
				b.ReportMetric(float64(s.commits())/float64(b.N), "commits/op")
				b.ReportMetric(float64(s.size(b))/float64(b.N), "file-B/op")
			})
		}
	}
}

// loadOnce loads the state of s once, as a broker does at start: from
// then on the store keeps no copy of the state in memory (unless
// KeepState), and its compactions replay the log.
func loadOnce(tb testing.TB, s *Broker) {
	if _, err := s.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// fillState stores sessions persistent sessions with two subscriptions
// and one queued message each, and retained retained messages with
// 64-byte payloads, in batches of 1,000.
func fillState(tb testing.TB, s applier, sessions, retained int) {
	ctx := context.Background()
	payload := make([]byte, 64)
	var cs []store.Change
	flush := func() {
		if err := s.Apply(ctx, cs...); err != nil {
			tb.Fatal(err)
		}
		cs = cs[:0]
	}
	for i := range sessions {
		id := "client-" + strconv.Itoa(i)
		cs = append(cs,
			store.PutSession(id, store.SessionInfo{Expiry: 3600, Version: 5}),
			store.Subscribe(id, "devices/"+strconv.Itoa(i)+"/cmd", store.Subscription{QoS: 1}),
			store.Subscribe(id, "broadcast/#", store.Subscription{QoS: 1}),
			store.Enqueue(id, store.Queued{Seq: 1, MsgID: uint64(i + 1), QoS: 1, Msg: &message.Message{Topic: "devices/" + strconv.Itoa(i) + "/cmd", Payload: payload, QoS: 1}}))
		if len(cs) >= 4000 {
			flush()
		}
	}
	for i := range retained {
		t := "state/" + strconv.Itoa(i/1000) + "/" + strconv.Itoa(i)
		cs = append(cs, store.Retain(t, &message.Message{Topic: t, Payload: payload, QoS: 1, Retain: true}))
		if len(cs) >= 1000 {
			flush()
		}
	}
	if len(cs) > 0 {
		flush()
	}
}

// BenchmarkBrokerRestart: opening a store of 10,000 sessions and 100,000
// retained messages and loading its state, as a restart does (the full
// size, 100,000 sessions and 1,000,000 retained, is measured by
// TestBrokerRestartFull with TERN_STORE_FULL=1).
func BenchmarkBrokerRestart(b *testing.B) {
	const sessions, retained = 10_000, 100_000
	b.Run("log", func(b *testing.B) {
		dir := b.TempDir()
		s, err := OpenBroker(dir, BrokerOptions{Sync: SyncNone, Logger: testLogger(b, nil)})
		if err != nil {
			b.Fatal(err)
		}
		fillState(b, s, sessions, retained)
		size := s.Size()
		s.Close()
		b.ResetTimer()
		for range b.N {
			s, err := OpenBroker(dir, BrokerOptions{Logger: testLogger(b, nil)})
			if err != nil {
				b.Fatal(err)
			}
			st, err := s.Load(context.Background())
			if err != nil || len(st.Sessions) != sessions || len(st.Retained) != retained {
				b.Fatalf("Load: %v", err)
			}
			s.Close()
		}
		b.ReportMetric(float64(size), "file-B")
	})
	b.Run("bolt", func(b *testing.B) {
		dir := b.TempDir()
		s := openBolt(b, dir, true)
		fillState(b, s, sessions, retained)
		s.db.Close()
		b.ResetTimer()
		var size int64
		for range b.N {
			s := openBolt(b, dir, false)
			ns, nr, _, err := s.load()
			if err != nil || ns != sessions || nr != retained {
				b.Fatalf("load: %d %d %v", ns, nr, err)
			}
			size = s.size(b)
			s.db.Close()
		}
		b.ReportMetric(float64(size), "file-B")
	})
}

// TestBrokerRestartFull measures the restart of the target,
// 100,000 sessions and 1,000,000 retained messages; it runs only with
// TERN_STORE_FULL=1 (it writes about 200 MB) and asserts nothing about
// time: it logs the figures.
func TestBrokerRestartFull(t *testing.T) {
	if os.Getenv("TERN_STORE_FULL") == "" {
		t.Skip("set TERN_STORE_FULL=1 to measure a restart with 100,000 sessions and 1,000,000 retained messages")
	}
	dir := t.TempDir()
	s, err := OpenBroker(dir, BrokerOptions{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	fillState(t, s, 100_000, 1_000_000)
	s.Close()
	start := time.Now()
	s, err = OpenBroker(dir, BrokerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("log: open+load of %d sessions, %d retained: %v, file %d bytes", len(st.Sessions), len(st.Retained), took, s.Size())
	s.Close()
}

// BenchmarkCompactStall: how long an Apply waits while the log of a
// large state (20,000 sessions with a queued message each, 200,000
// retained messages) is compacted. Four goroutines apply a QoS 1 cycle
// (enqueue, dequeue) throughout, at a steady rate (one Apply, then a
// millisecond's pause: about 4,000 a second in all, a broker's steady
// load, not a flood that would measure the scheduler of this 2-core
// machine); each iteration compacts once.
// max-wait-ms is the longest single Apply seen during the compactions,
// idle-max-wait-ms the longest in a second of the same load without one,
// compact-ms the mean time of one compaction, applies/compaction how
// many Apply calls returned while one ran.
func BenchmarkCompactStall(b *testing.B) {
	for _, mode := range []SyncMode{SyncNone, SyncAlways} {
		name := "sync=always"
		if mode == SyncNone {
			name = "sync=none"
		}
		b.Run(name, func(b *testing.B) {
			s, err := OpenBroker(b.TempDir(), BrokerOptions{Sync: mode, CompactBytes: 1 << 40, Logger: testLogger(b, nil)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			loadOnce(b, s)
			fillState(b, s, 20_000, 200_000)
			ctx, stop := context.WithCancel(context.Background())
			var maxWait atomic.Int64
			var applies atomic.Int64
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := "stall-" + strconv.Itoa(g)
					m := &message.Message{Topic: "stall/" + strconv.Itoa(g), Payload: make([]byte, 64), QoS: 1}
					for seq := uint64(1); ctx.Err() == nil; seq++ {
						for _, c := range []store.Change{
							store.Enqueue(id, store.Queued{Seq: seq, MsgID: 1 << 40, Msg: m, QoS: 1}),
							store.Dequeue(id, seq),
						} {
							start := time.Now()
							if err := s.Apply(context.Background(), c); err != nil {
								b.Error(err)
								return
							}
							d := int64(time.Since(start))
							for old := maxWait.Load(); d > old && !maxWait.CompareAndSwap(old, d); old = maxWait.Load() {
							}
							applies.Add(1)
							time.Sleep(time.Millisecond)
						}
					}
				}()
			}
			// The longest wait with no compaction, for comparison: a
			// second of the same load.
			time.Sleep(50 * time.Millisecond)
			maxWait.Store(0)
			time.Sleep(time.Second)
			idle := maxWait.Load()
			maxWait.Store(0)
			before := applies.Load()
			b.ResetTimer()
			for range b.N {
				if _, _, err := s.Compact(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			during := applies.Load() - before
			worst := maxWait.Load()
			stop()
			wg.Wait()
			b.ReportMetric(float64(worst)/1e6, "max-wait-ms")
			b.ReportMetric(float64(idle)/1e6, "idle-max-wait-ms")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "compact-ms")
			b.ReportMetric(float64(during)/float64(b.N), "applies/compaction")
		})
	}
}
