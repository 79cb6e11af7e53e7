package proxy_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

// TestMosquittoUpstream: Debian's mosquitto behind the proxy, with the
// topic and rewrite filters, and mosquitto_pub / mosquitto_sub and Tern's
// client as the clients.
func TestMosquittoUpstream(t *testing.T) {
	subBin := mqtttest.NeedBinary(t, "mosquitto_sub", "mosquitto-clients")
	pubBin := mqtttest.NeedBinary(t, "mosquitto_pub", "mosquitto-clients")
	m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	tap := mqtttest.StartTap(t, m.Addr)
	px := mqtttest.StartProxy(t, &proxy.Server{Upstreams: []string{tap.URL},
		Filters: []proxy.Filter{topicFilter(), &proxy.Rewrite{ClientID: "px-{client_id}"}}}, nil)
	t.Cleanup(func() {
		if errs := tap.Errors(); len(errs) > 0 {
			t.Errorf("mosquitto was sent malformed bytes: %v", errs)
		}
	})
	_, port, _ := strings.Cut(px.Addr, ":")
	for _, ver := range []string{"mqttv31", "mqttv311", "mqttv5"} {
		t.Run(ver, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			subID := "sub-" + ver
			sub := exec.CommandContext(ctx, subBin, "-h", "127.0.0.1", "-p", port, "-V", ver, "-i", subID,
				"-t", "#", "-t", "secret/#", "-q", "1", "-C", "3", "-W", "15", "-v")
			var out strings.Builder
			sub.Stdout, sub.Stderr = &out, &out
			if err := sub.Start(); err != nil {
				t.Fatal(err)
			}
			subDone := make(chan error, 1)
			go func() { subDone <- sub.Wait() }()
			// Wait until mosquitto has the subscription (its SUBACK went down).
			eventually(t, "mosquitto_sub subscribed", func() bool {
				for _, p := range tap.Packets(mqtttest.ServerToClient) {
					if _, ok := p.(*packet.Suback); ok && strings.Contains(readFile(m.LogFile), "px-"+subID+" 1 #") {
						return true
					}
				}
				return false
			})
			pub := func(topic, msg string, qos string) {
				t.Helper()
				cmd := exec.CommandContext(ctx, pubBin, "-h", "127.0.0.1", "-p", port, "-V", ver, "-t", topic, "-m", msg, "-q", qos)
				if o, err := cmd.CombinedOutput(); err != nil && !strings.HasPrefix(topic, "mixed/secret") {
					t.Fatalf("mosquitto_pub %s: %v\n%s", topic, err, o)
				}
			}
			pub("mixed/secret/a", "denied-up", "1") // dropped by the proxy
			pub("ok/a", "one", "1")
			// Straight to mosquitto: on a topic the subscriber must not get.
			direct := mqtttest.Connect(t, client.Config{Servers: []string{m.URL}, ClientID: "direct-" + ver, CleanStart: true})
			for qos := byte(0); qos <= 2; qos++ {
				if _, err := direct.Publish(ctx, &message.Message{Topic: "secret/x", Payload: []byte("denied-down"), QoS: qos}); err != nil {
					t.Fatal(err)
				}
			}
			pub("mixed/b", "two", "2")
			// Tern's client through the proxy, too.
			tc := mqtttest.Connect(t, client.Config{Servers: []string{px.URL}, ClientID: "tern-" + ver, CleanStart: true, Version: packet.V311})
			if _, err := tc.Publish(ctx, &message.Message{Topic: "ok/tern", Payload: []byte("three"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-subDone:
				if err != nil {
					t.Fatalf("mosquitto_sub: %v\n%s", err, out.String())
				}
			case <-ctx.Done():
				t.Fatalf("mosquitto_sub did not finish: %s", out.String())
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			want := []string{"ok/a one", "mixed/b two", "ok/tern three"}
			if !slicesEqual(got, want) {
				t.Fatalf("mosquitto_sub printed %q, want %q", got, want)
			}
		})
	}
	log := readFile(m.LogFile)
	if !strings.Contains(log, " as px-sub-mqttv5 ") || !strings.Contains(log, " as px-tern-mqttv311 ") {
		t.Fatalf("mosquitto did not see the rewritten client ids:\n%s", log)
	}
	for _, p := range tap.Packets(mqtttest.ClientToServer) {
		if pub, ok := p.(*packet.Publish); ok && strings.HasPrefix(pub.Topic, "mixed/secret") {
			t.Fatalf("%v reached mosquitto", pub)
		}
		if s, ok := p.(*packet.Subscribe); ok && s.Subscriptions[0].Filter == "secret/#" || ok && len(s.Subscriptions) != 1 {
			t.Fatalf("mosquitto got %v, want only the # subscription", s)
		}
	}
}

func readFile(name string) string {
	b, _ := os.ReadFile(name)
	return string(b)
}
