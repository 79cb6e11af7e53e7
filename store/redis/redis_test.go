package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/storetest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

// prefixOf names the store of a storetest directory: reopening the
// directory reopens the same keys.
func prefixOf(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return "t" + hex.EncodeToString(h[:6])
}

func runSuite(t *testing.T, rdb goredis.UniversalClient) {
	storetest.RunBroker(t, storetest.BrokerConfig{
		Open: func(t testing.TB, dir string) (store.Broker, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return Open(ctx, rdb, Config{Prefix: prefixOf(dir)})
		},
		Durable: true,
	})
}

func TestBrokerSuite(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	t.Cleanup(func() { rdb.Close() })
	runSuite(t, rdb)
}

func TestBrokerSuiteCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a Redis Cluster takes seconds to form")
	}
	rc := mqtttest.StartRedisCluster(t, 3)
	rc.WaitAllOK(t)
	rdb := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: rc.Addrs})
	t.Cleanup(func() { rdb.Close() })
	runSuite(t, rdb)
}

// TestLoadSession: LoadSession returns what Load returns for one session,
// and nothing for a session that is not stored; MsgIDBase hands out
// disjoint blocks above every stored id.
func TestLoadSession(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	rdb := goredis.NewClient(&goredis.Options{Addr: r.Addr})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := storetest.FullMessage(1)
	if err := s.Apply(ctx,
		store.PutSession("a}b{c", store.SessionInfo{Expiry: 60, Version: 5}),
		store.Subscribe("a}b{c", "x/#", store.Subscription{QoS: 2, ID: 3}),
		store.EnqueueAll(7, m, []store.Target{{ClientID: "a}b{c", Seq: 1, QoS: 2}, {ClientID: "other", Seq: 2, QoS: 1}}),
		store.Sent("a}b{c", 1, 9), store.Released("a}b{c", 1),
		store.AddIncoming("a}b{c", 4),
	); err != nil {
		t.Fatal(err)
	}
	ss, ok, err := s.LoadSession(ctx, "a}b{c")
	if err != nil || !ok {
		t.Fatalf("LoadSession: %v %v", ok, err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := &store.BrokerState{Sessions: []store.StoredSession{ss}, MaxMsgID: st.MaxMsgID}
	if d := storetest.DiffBrokerState(want, &store.BrokerState{Sessions: st.Sessions[:1], MaxMsgID: st.MaxMsgID}); d != "" || st.Sessions[0].ClientID != "a}b{c" {
		t.Fatalf("LoadSession differs from Load: %s", d)
	}
	if q := ss.Queue; len(q) != 1 || q[0].PacketID != 9 || !q[0].Released || len(ss.Incoming) != 1 || ss.Subs["x/#"].ID != 3 {
		t.Fatalf("LoadSession: %+v", ss)
	}
	if _, ok, err := s.LoadSession(ctx, "nobody"); ok || err != nil {
		t.Fatalf("LoadSession(nobody): %v %v", ok, err)
	}
	b1, err := s.MsgIDBase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := s.MsgIDBase(ctx)
	if b1 < st.MaxMsgID || b2 < b1+MsgIDBlock {
		t.Fatalf("MsgIDBase: %d then %d (block %d, max stored %d)", b1, b2, uint64(MsgIDBlock), st.MaxMsgID)
	}
}
