package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ternmq/tern/packet"
)

// startMosquitto runs Debian's mosquitto on a free loopback port and
// returns its URL and pid; it is killed when the test ends.
func startMosquitto(t *testing.T) (string, int) {
	t.Helper()
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto not installed: apt-get install mosquitto")
		}
		path = "/usr/sbin/mosquitto"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// max_queued_messages: mosquitto drops QoS 1/2 messages beyond 1000
	// queued per client by default; the tests want no loss.
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "-c", conf)
	logf, _ := os.Create(filepath.Join(dir, "mosquitto.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "tcp://" + addr, cmd.Process.Pid
}

func TestMosquitto(t *testing.T) {
	url, pid := startMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := Config{URL: url, Duration: 30 * time.Second, Drain: 5 * time.Second, Rate: -1, Logf: t.Logf}

	run := func(t *testing.T, c Config) *Result {
		t.Helper()
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		res, err := Run(ctx, c)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		t.Logf("%+v", *res)
		if res.Errors != 0 || res.Invalid != 0 {
			t.Errorf("%d connection errors (%s), %d invalid payloads", res.Errors, res.FirstError, res.Invalid)
		}
		return res
	}
	// exact checks a scenario that must deliver everything exactly once.
	exact := func(t *testing.T, r *Result, sent, delivered int64) {
		t.Helper()
		if r.Sent != sent || r.Expected != delivered || r.Delivered != delivered || r.Loss != 0 || r.Duplicates != 0 {
			t.Errorf("sent %d expected %d delivered %d loss %d dups %d; want sent %d, delivered %d, no loss or dups",
				r.Sent, r.Expected, r.Delivered, r.Loss, r.Duplicates, sent, delivered)
		}
		if r.LatencySamples != delivered || r.P50Ms <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs {
			t.Errorf("latency: %d samples, p50 %v p99 %v max %v", r.LatencySamples, r.P50Ms, r.P99Ms, r.MaxMs)
		}
		if r.DeliveredPerSec <= 0 || r.DurationSec <= 0 {
			t.Errorf("rate %v over %vs", r.DeliveredPerSec, r.DurationSec)
		}
	}

	for _, tc := range []struct {
		qos      byte
		protocol packet.Version
	}{{1, packet.V311}, {2, packet.V5}, {1, packet.V31}} {
		t.Run(fmt.Sprintf("fanin/qos%d/v%d", tc.qos, tc.protocol), func(t *testing.T) {
			c := base
			c.Scenario, c.QoS, c.Protocol, c.Publishers, c.Count = FanIn, tc.qos, tc.protocol, 2, 400
			r := run(t, c)
			exact(t, r, 400, 400)
			if r.Reordered != 0 {
				t.Errorf("%d reordered on one topic", r.Reordered)
			}
		})
	}
	t.Run("fanin/write-per-publish", func(t *testing.T) {
		c := base
		c.Scenario, c.QoS, c.Publishers, c.Count, c.BrokerPID, c.WritePerPublish = FanIn, 1, 2, 2000, pid, true
		r := run(t, c)
		exact(t, r, 2000, 2000)
		if !r.WritePerPublish {
			t.Error("write_per_publish false in the result")
		}
		// The broker's figures from /proc: its peak is at least what it
		// holds now; CPU per message is the CPU time over the deliveries.
		if r.RSSAfterKiB <= 0 || r.PeakRSSKiB < r.RSSAfterKiB || r.BrokerCPUSec < 0 {
			t.Errorf("rss after %d KiB, peak %d KiB, cpu %vs", r.RSSAfterKiB, r.PeakRSSKiB, r.BrokerCPUSec)
		}
		if want := r.BrokerCPUSec * 1e6 / float64(r.Delivered); math.Abs(r.BrokerCPUUsPerMsg-want) > 0.01 {
			t.Errorf("cpu %v µs/msg, want %vs / %d messages = %v", r.BrokerCPUUsPerMsg, r.BrokerCPUSec, r.Delivered, want)
		}
	})
	t.Run("fanin/qos0", func(t *testing.T) {
		c := base
		c.Scenario, c.Publishers, c.Count, c.Rate = FanIn, 2, 400, 2000
		r := run(t, c)
		// QoS 0 may lose, never duplicates, and accounts for every message.
		if r.Sent != 400 || r.Delivered+r.Loss != 400 || r.Duplicates != 0 {
			t.Errorf("sent %d delivered %d loss %d dups %d", r.Sent, r.Delivered, r.Loss, r.Duplicates)
		}
	})
	t.Run("fanout", func(t *testing.T) {
		c := base
		c.Scenario, c.QoS, c.Subscribers, c.Count = FanOut, 1, 3, 200
		exact(t, run(t, c), 200, 600)
	})
	t.Run("topics", func(t *testing.T) {
		c := base
		c.Scenario, c.QoS, c.Publishers, c.Count, c.Protocol = Topics, 1, 20, 400, packet.V5
		exact(t, run(t, c), 400, 400)
	})
	t.Run("latency", func(t *testing.T) {
		c := base
		c.Scenario, c.QoS, c.Publishers, c.Rate, c.Duration = Latency, 1, 2, 1000, time.Second
		r := run(t, c)
		if r.Sent == 0 {
			t.Fatal("nothing sent")
		}
		exact(t, r, r.Sent, r.Sent)
	})
	t.Run("retained", func(t *testing.T) {
		c := base
		c.Scenario, c.Count = Retained, 500
		r := run(t, c)
		exact(t, r, 500, 500)
		checkNoRetained(t, ctx, url, "bench/"+r.RunID+"/r/#")
	})
	t.Run("connect", func(t *testing.T) {
		for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
			c := base
			c.Scenario, c.Connections, c.Concurrency, c.Protocol = Connect, 50, 10, v
			r := run(t, c)
			if r.ConnectionsUp != 50 || r.ConnectFailures != 0 || r.LatencySamples != 50 || r.ConnectsPerSec <= 0 {
				t.Errorf("v%d: up %d, failures %d, samples %d, %v/s", v, r.ConnectionsUp, r.ConnectFailures, r.LatencySamples, r.ConnectsPerSec)
			}
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := base
		c.Scenario, c.Connections, c.Duration, c.BrokerPID = Idle, 50, 500*time.Millisecond, pid
		r := run(t, c)
		if r.ConnectionsUp != 50 || r.ConnectFailures != 0 || r.RSSBeforeKiB <= 0 || r.RSSAfterKiB <= 0 {
			t.Errorf("up %d, failures %d, rss %d -> %d", r.ConnectionsUp, r.ConnectFailures, r.RSSBeforeKiB, r.RSSAfterKiB)
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		ictx, icancel := context.WithCancel(ctx)
		c := base
		c.Scenario, c.QoS, c.Rate, c.Duration = Latency, 1, 500, time.Hour
		c.Logf = func(format string, args ...any) {
			if format == "%s: publishing" {
				time.AfterFunc(200*time.Millisecond, icancel)
			}
		}
		res, err := Run(ictx, c)
		if !errors.Is(err, context.Canceled) || res == nil {
			t.Errorf("interrupted run: %v, %v", res, err)
		}
	})
}

// checkNoRetained subscribes to filter and checks that no retained message
// arrives before a marker published after the SUBACK.
func checkNoRetained(t *testing.T, ctx context.Context, url, filter string) {
	t.Helper()
	var retained atomic.Int64
	marker := make(chan struct{})
	o := connOptions{url: url, version: packet.V311, clientID: "tbcheck", keepAlive: time.Minute, connectTimeout: 10 * time.Second, inflight: 1}
	o.onPublish = func(p *packet.Publish, _ time.Time) {
		if p.Retain {
			retained.Add(1)
		} else if len(p.Payload) == 0 {
			close(marker)
		}
	}
	c, err := dialConn(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.disconnect(ctx)
	if err := c.subscribe(ctx, 1, filter); err != nil {
		t.Fatal(err)
	}
	if err := c.publish(ctx, item{qos: 1, empty: true, topic: filter[:len(filter)-1] + "marker"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-marker:
	case <-ctx.Done():
		t.Fatal("marker never arrived")
	}
	if n := retained.Load(); n != 0 {
		t.Errorf("%d retained messages left after the cleanup", n)
	}
}

func TestConnectRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, s := range []string{FanIn, Connect} {
		_, err := Run(context.Background(), Config{Scenario: s, URL: "tcp://" + addr, Connections: 3, Count: 10})
		if err == nil {
			t.Errorf("%s against a closed port: no error", s)
		}
	}
}
