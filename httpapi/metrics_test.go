package httpapi_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// scrape reads /metrics with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp := do(t, "GET", url+"/metrics", "", nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// labels ("k=v" pairs); -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetrics: after known traffic from real MQTT clients (and one
// refused, one not MQTT at all), the scraped metrics say what happened:
// connections by listener and protocol, connects and refusals, messages
// and payload bytes by QoS, drops, queues, retained messages,
// subscriptions, routing latency; and every metric of the broker is
// there, with the Go runtime's and the process's.
func TestMetrics(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	sub := mqttClient(t, b, "sub", "alice")
	got := subscribe(t, sub, "public/#", 2)
	mqtttest.Connect(t, client.Config{Servers: []string{b.URL}, ClientID: "v3", Version: packet.V311, Username: "bob", Password: []byte("bob-pw")})
	pub := mqttClient(t, b, "pub", "alice")
	for q := byte(0); q <= 2; q++ {
		for range int(q) + 1 { // 1 message at QoS 0, 2 at QoS 1, 3 at QoS 2
			if _, err := pub.Publish(ctx, &message.Message{Topic: "public/m", Payload: []byte("1234567890"), QoS: q}); err != nil {
				t.Fatal(err)
			}
			recvMsg(t, got)
		}
	}
	if _, err := pub.Publish(ctx, &message.Message{Topic: "public/keep", Payload: []byte("k"), QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	recvMsg(t, got)
	// A persistent session, offline, with two messages queued for it.
	off := mqtttest.Connect(t, client.Config{Servers: []string{b.URL}, ClientID: "offline", Username: "bob", Password: []byte("bob-pw"),
		SessionExpiry: 3600})
	subscribe(t, off, "bob/q", 1)
	if err := off.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	for st, _ := b.Server.Client("offline"); st.Connected; st, _ = b.Server.Client("offline") {
		if ctx.Err() != nil {
			t.Fatal("the session is still online")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 2 {
		b.Server.Publish("bob/q", []byte("q"), 1, false)
	}
	// A refused client, and a connection that is not MQTT.
	bad, err := client.New(client.Config{Servers: []string{b.URL}, ClientID: "bad", Username: "alice", Password: []byte("wrong")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Connect(ctx); err == nil {
		t.Fatal("a wrong password connected")
	}
	bad.Disconnect(ctx)
	nc, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	nc.SetReadDeadline(time.Now().Add(mqtttest.DefaultTimeout))
	nc.Read(make([]byte, 16)) // closed by the broker
	nc.Close()

	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(mqtttest.DefaultTimeout)
	for {
		fams = scrape(t, b.HTTP)
		if value(fams, "tern_connections_failed_total") >= 1 &&
			value(fams, "tern_messages_sent_total", "qos=2") == 3 && value(fams, "tern_sessions", "state=offline") == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	listener := "tcp " + b.Addr
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tern_connections", []string{"listener=" + listener, "protocol=5.0"}, 2},
		{"tern_connections", []string{"listener=" + listener, "protocol=3.1.1"}, 1},
		{"tern_sessions", []string{"state=connected"}, 3},
		{"tern_sessions", []string{"state=offline"}, 1},
		{"tern_connects_accepted_total", nil, 4},
		{"tern_connects_refused_total", []string{"reason=bad_user_name_or_password"}, 1},
		{"tern_messages_received_total", []string{"qos=0"}, 1 + 0},
		{"tern_messages_received_total", []string{"qos=1"}, 2 + 1 + 2},
		{"tern_messages_received_total", []string{"qos=2"}, 3},
		{"tern_messages_sent_total", []string{"qos=0"}, 1},
		{"tern_messages_sent_total", []string{"qos=1"}, 3},
		{"tern_messages_sent_total", []string{"qos=2"}, 3},
		{"tern_payload_received_bytes_total", []string{"qos=2"}, 30},
		{"tern_payload_sent_bytes_total", []string{"qos=1"}, 21},
		{"tern_session_queued_messages", nil, 2},
		{"tern_session_queued_messages_max", nil, 2},
		{"tern_session_inflight_messages", nil, 0},
		{"tern_retained_messages", nil, 1},
		{"tern_subscriptions", nil, 2},
		{"tern_route_duration_seconds", nil, 9},
		{"tern_messages_dropped_total", []string{"reason=queue_full"}, 0},
	} {
		if v := value(fams, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if v := value(fams, "tern_connections_failed_total"); v < 1 {
		t.Errorf("tern_connections_failed_total: %v, want the HTTP request sent to the MQTT port", v)
	}
	if v := value(fams, "tern_network_received_bytes_total"); v < 100 {
		t.Errorf("tern_network_received_bytes_total = %v", v)
	}
	for _, name := range httpapi.MetricNames() {
		if strings.HasPrefix(name, "tern_store_") || strings.HasPrefix(name, "tern_cluster_") {
			continue // only with a store, a back plane
		}
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "tern_build_info", "tern_uptime_seconds"} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	// Conventions: counters end in _total, and only they.
	for name, f := range fams {
		if isCounter := f.GetType() == dto.MetricType_COUNTER; isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s: type %v and name disagree", name, f.GetType())
		}
	}
}
