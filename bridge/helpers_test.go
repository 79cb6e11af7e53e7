package bridge_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

const waitFor = 20 * time.Second

// startBridge starts a bridge on srv and closes it when the test ends
// (before the brokers, which were started earlier).
func startBridge(t *testing.T, srv *broker.Server, cfg bridge.Config) *bridge.Bridge {
	t.Helper()
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := bridge.Start(ctx, srv, cfg)
	if err != nil {
		t.Fatalf("bridge.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Logf("bridge %s Close: %v", cfg.Name, err)
		}
	})
	return b
}

// waitUntil polls cond until it holds, failing the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConnected(t *testing.T, b *bridge.Bridge) {
	t.Helper()
	waitUntil(t, "bridge "+b.Name()+" to connect", func() bool { return b.Status().Connected })
}

// subscribe connects a client to url and subscribes it to filter.
func subscribe(t *testing.T, url, filter string, qos byte, v packet.Version) *mqtttest.Collector {
	t.Helper()
	c := mqtttest.Connect(t, client.Config{Servers: []string{url}, Version: v})
	col := &mqtttest.Collector{}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.Subscribe(ctx, filter, qos, col.Handle); err != nil {
		t.Fatalf("subscribe %s on %s: %v", filter, url, err)
	}
	return col
}

// publisher connects a client to url.
func publisher(t *testing.T, url string, v packet.Version) *client.Client {
	t.Helper()
	return mqtttest.Connect(t, client.Config{Servers: []string{url}, Version: v})
}

func publish(t *testing.T, c *client.Client, topicName, payload string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.Publish(ctx, &message.Message{Topic: topicName, Payload: []byte(payload), QoS: qos}); err != nil {
		t.Fatalf("publish %s: %v", topicName, err)
	}
}

// checkExactly checks that payloads p0..p(n-1) arrived, each exactly once
// (QoS 2, or a connection that never broke), or at least once.
func checkPayloads(t *testing.T, got map[string]int, prefix string, n int, exactlyOnce bool) {
	t.Helper()
	var missing, dup []string
	for i := range n {
		p := prefix + strconv.Itoa(i)
		switch c := got[p]; {
		case c == 0:
			missing = append(missing, p)
		case c > 1 && exactlyOnce:
			dup = append(dup, fmt.Sprintf("%s×%d", p, c))
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("%s: %d missing %v, %d duplicated %v", prefix, len(missing), missing, len(dup), dup)
	}
}

// logBuf is a log kept in memory and printed if the test fails (or
// streamed to standard error with TERN_TEST_LOG set).
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func quietLogger(t *testing.T) *slog.Logger {
	if os.Getenv(mqtttest.LogEnv) != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			t.Logf("log:\n%s", l.buf.String())
			l.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
