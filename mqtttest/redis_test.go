package mqtttest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
)

func TestStartRedis(t *testing.T) {
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mqtttest.RedisPing(ctx, r.Addr); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	if err := mqtttest.RedisPing(ctx, r.Addr); err == nil {
		t.Fatal("Redis answers after Kill")
	}
	r.Restart()
	if err := mqtttest.RedisPing(ctx, r.Addr); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
}
