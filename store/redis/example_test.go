package redis_test

import (
	"context"
	"log"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/redis"
)

// Open a store shared by the broker nodes that use the same Redis (for a
// Redis Cluster pass goredis.NewClusterClient), and resume a session on
// this node. It is not run: it needs a Redis at 127.0.0.1:6379.
func Example() {
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := redis.Open(ctx, rdb, redis.Config{Prefix: "tern"})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	if err := st.Apply(ctx, store.PutSession("sensor-1", store.SessionInfo{Expiry: 3600, Version: 5})); err != nil {
		log.Fatal(err)
	}
	ss, ok, err := st.LoadSession(ctx, "sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	log.Println(ok, ss.Info.Expiry)
}
