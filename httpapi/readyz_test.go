package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	bpmem "github.com/ternmq/tern/backplane/memory"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/mqtttest"
	storemem "github.com/ternmq/tern/store/memory"
)

// TestStoreAndClusterFigures: with a store and a back plane, /metrics
// has their figures, and /readyz turns 503 when the back plane is cut
// off and when the store is closed under the broker, saying which.
func TestStoreAndClusterFigures(t *testing.T) {
	t.Parallel()
	plane := bpmem.New()
	st := storemem.NewBroker()
	srv := &broker.Server{SysInterval: -1, Store: st,
		Backplane: func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
			cfg.ID = "n1"
			return plane.Join(ctx, cfg)
		}}
	b := mqtttest.StartHTTPBroker(t, srv, httpapi.Config{})
	publish := func(topic string) (int, string) {
		code, body := call(t, "POST", b.HTTP+"/api/v1/publish", "", `{"topic":"`+topic+`","payload":"x","qos":1,"retain":true}`)
		return code, string(body)
	}
	if code, body := publish("kept/a"); code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	fams := scrape(t, b.HTTP)
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"tern_store_applies_total", nil, 1},
		{"tern_store_apply_failures_total", nil, 0},
		{"tern_store_apply_duration_seconds", nil, 1},
		{"tern_cluster_info", []string{"engine=memory", "node=n1"}, 1},
		{"tern_cluster_reachable", nil, 1},
		{"tern_cluster_forwarded_messages_total", nil, 1},
	} {
		if v := value(fams, c.name, c.labels...); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	if code, body := call(t, "GET", b.HTTP+"/readyz", "", nil); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}

	// The back plane out of reach: the next forward says so.
	if err := plane.Partition("n1"); err != nil {
		t.Fatal(err)
	}
	publish("kept/b") // the other nodes cannot be told: an error, or accepted here
	code, body := call(t, "GET", b.HTTP+"/readyz", "", nil)
	if code != 503 || !strings.Contains(string(body), "back plane") {
		t.Errorf("readyz with the back plane cut off: %d %s", code, body)
	}
	if v := value(scrape(t, b.HTTP), "tern_cluster_reachable"); v != 0 {
		t.Errorf("tern_cluster_reachable = %v, want 0", v)
	}
	if err := plane.Heal("n1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(mqtttest.DefaultTimeout)
	for code != 200 && time.Now().Before(deadline) {
		publish("kept/c")
		code, body = call(t, "GET", b.HTTP+"/readyz", "", nil)
	}
	if code != 200 {
		t.Fatalf("readyz after healing: %d %s", code, body)
	}

	// The store closed under the broker: publishes fail, not ready.
	st.Close()
	if code, body := publish("kept/d"); code != 503 || !strings.Contains(body, "store") {
		t.Errorf("publish with the store closed: %d %s", code, body)
	}
	code, body = call(t, "GET", b.HTTP+"/readyz", "", nil)
	if code != 503 || !strings.Contains(string(body), "store") {
		t.Errorf("readyz with the store closed: %d %s", code, body)
	}
	if v := value(scrape(t, b.HTTP), "tern_store_apply_failures_total"); v < 1 {
		t.Errorf("tern_store_apply_failures_total = %v", v)
	}
}
