package console_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// TestConsoleInChromium drives the console in headless Chromium against
// a real broker with real MQTT clients: log in, watch a client connect
// and the message rate move, browse retained messages, publish from the
// form to a subscriber, search the clients, disconnect one (it sees the
// DISCONNECT), see the topic tree and the configuration without its
// secrets. Screenshots are saved as the test's artefacts.
func TestConsoleInChromium(t *testing.T) {
	settings := map[string]any{
		"listeners": []map[string]any{{"type": "tcp", "addr": "127.0.0.1:1883"}, {"type": "http", "addr": "127.0.0.1:8080"}},
		"auth":      map[string]any{"password_file": "/etc/tern/passwd-SECRET", "allow_anonymous": false},
		"http":      map[string]any{"admins": "alice", "tokens_file": "/etc/tern/tokens-SECRET"},
		"cluster":   map[string]any{"url": "redis://tern:pw-SECRET@redis:6379/0"},
	}
	b := fixture(t, console.Config{Settings: settings})
	mqtt := b.Addrs[0].String()
	br := startBrowser(t, "alice", "alice-pw")

	// Log in: the browser is challenged and answers as alice.
	br.do(chromedp.Navigate(b.HTTP + "/console/"))
	br.waitFor("the console to start", `document.body.dataset.ready === "1"`)
	br.waitFor("the user's name", `document.querySelector("#whoami").textContent === "alice (administrator)"`)
	if br.authChallenges() == 0 {
		t.Error("the browser was not asked to authenticate")
	}
	br.waitFor("the stats stream", `document.querySelector("#stream-status").textContent.startsWith("live")`)
	br.waitFor("no client yet", `document.querySelector("#stat-clients").textContent === "0"`)

	// A client connects: the overview counts it.
	sensor := mqtttest.Connect(t, client.Config{Servers: []string{mqtt}, ClientID: "sensor-1", Username: "alice", Password: []byte("alice-pw")})
	br.waitFor("the client to show", `document.querySelector("#stat-clients").textContent === "1"`)

	// It publishes: the rate of messages in moves, on the card and in the
	// plot. Bounded: at most 400 messages in 10 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	moved := false
	for i := 0; i < 40 && !moved; i++ {
		for j := range 10 {
			if _, err := sensor.Publish(ctx, &message.Message{Topic: "public/load", QoS: 1, Payload: fmt.Appendf(nil, "%d-%d", i, j)}); err != nil {
				t.Fatal(err)
			}
		}
		moved = eval[bool](br, `Number(document.querySelector("#stat-in-rate").textContent) > 0 &&
			Number(document.querySelector('#plot-messages polyline[data-series="in"]').dataset.last) > 0`)
		time.Sleep(250 * time.Millisecond)
	}
	if !moved {
		t.Fatalf("the message rate did not move: card %q", eval[string](br, `document.querySelector("#stat-in-rate").textContent`))
	}
	if os.Getenv("TERN_CONSOLE_SCREENSHOTS") == "1" {
		screenshotLoad(t, br, mqtt)
	}
	br.screenshot("overview.png", true)

	// Retained messages: text, binary (base64) and a long one, browsed
	// with a filter.
	for topic, payload := range map[string][]byte{
		"public/sensors/kitchen": []byte(`{"t":21.5}`),
		"public/sensors/hall":    {0xff, 0x00, 0xfe},
		"public/sensors/long":    []byte(strings.Repeat("x", 1000)),
		"public/other":           []byte("not under sensors"),
	} {
		if _, err := sensor.Publish(ctx, &message.Message{Topic: topic, QoS: 1, Retain: true, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	br.do(chromedp.Click(chromedp.CSS(`nav a[data-page="retained"]`)))
	br.waitFor("the retained page", `!document.querySelector("#page-retained").hidden`)
	br.clear("retained-filter")
	br.do(chromedp.SendKeys(chromedp.ID("retained-filter"), "public/sensors/#"),
		chromedp.Click(chromedp.CSS(`#retained-form button`)))
	br.waitFor("three retained messages", `document.querySelectorAll("#retained-table tbody tr").length === 3`)
	for expr, want := range map[string]string{
		`document.querySelector('tr[data-topic="public/sensors/kitchen"] .payload').textContent`:     `{"t":21.5}`,
		`document.querySelector('tr[data-topic="public/sensors/hall"] .payload').textContent`:        "/wD+",
		`document.querySelector('tr[data-topic="public/sensors/hall"] .payload').className`:          "payload b64",
		`document.querySelector('tr[data-topic="public/sensors/long"] .payload').textContent`:        strings.Repeat("x", 300) + "…",
		`document.querySelector('tr[data-topic="public/sensors/long"] td:nth-child(3)').textContent`: "1000 B",
		`document.querySelector("#retained-count").textContent`:                                      "3 messages",
	} {
		if got := eval[string](br, expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	// The preview of the long payload opens in full on a click.
	br.do(chromedp.Click(chromedp.CSS(`tr[data-topic="public/sensors/long"] .payload`)))
	br.waitFor("the whole payload", `document.querySelector('tr[data-topic="public/sensors/long"] .payload').textContent.length === 1000`)
	br.screenshot("retained.png", false)

	// Publish from the form; a real client receives it.
	got := make(chan *client.Message, 4)
	listener := mqtttest.Connect(t, client.Config{Servers: []string{mqtt}, ClientID: "listener-1", Username: "alice", Password: []byte("alice-pw")})
	if _, err := listener.Subscribe(ctx, "public/from-console/#", 1, func(m *client.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	br.do(chromedp.Click(chromedp.CSS(`nav a[data-page="publish"]`)),
		chromedp.SendKeys(chromedp.ID("publish-topic"), "public/from-console/greeting"),
		chromedp.SendKeys(chromedp.ID("publish-payload"), "hello from the console"),
		chromedp.SetValue(chromedp.ID("publish-qos"), "1"),
		chromedp.SendKeys(chromedp.ID("publish-content-type"), "text/plain"),
		chromedp.Click(chromedp.ID("publish-button")))
	br.waitFor("the publish to be accepted", `document.querySelector("#publish-result").dataset.result === "ok"`)
	select {
	case m := <-got:
		if m.Topic != "public/from-console/greeting" || string(m.Payload) != "hello from the console" || m.QoS != 1 || m.Properties.ContentType != "text/plain" {
			t.Errorf("the subscriber got %s %q QoS %d content type %q", m.Topic, m.Payload, m.QoS, m.Properties.ContentType)
		}
	case <-time.After(mqtttest.DefaultTimeout):
		t.Fatal("the subscriber did not get the message published from the form")
	}
	if r := eval[string](br, `document.querySelector("#publish-result").textContent`); !strings.Contains(r, "1 matching subscription") {
		t.Errorf("publish result %q, want one matching subscription", r)
	}
	br.screenshot("publish.png", false)
	// The ACL holds for the console's user: alice may not publish to bob/.
	br.clear("publish-topic")
	br.do(chromedp.SendKeys(chromedp.ID("publish-topic"), "bob/private"), chromedp.Click(chromedp.ID("publish-button")))
	br.waitFor("the refusal", `document.querySelector("#publish-result").dataset.result === "error"`)
	if r := eval[string](br, `document.querySelector("#publish-result").textContent`); !strings.Contains(r, "not authorized") {
		t.Errorf("publishing to a topic the ACL denies: %q, want a refusal naming the cause", r)
	}

	// Clients: search, then disconnect one; it sees the DISCONNECT.
	down := make(chan error, 4)
	mqtttest.Connect(t, client.Config{Servers: []string{mqtt}, ClientID: "victim-1", Username: "bob", Password: []byte("bob-pw"),
		KeepAlive: 30 * time.Second, BackoffMin: time.Hour, BackoffMax: time.Hour,
		OnConnectionDown: func(err error) {
			select {
			case down <- err:
			default:
			}
		}})
	br.do(chromedp.Click(chromedp.CSS(`nav a[data-page="clients"]`)))
	br.waitFor("the clients", `document.querySelectorAll("#clients-table tbody tr").length === 3`)
	for expr, want := range map[string]string{
		`document.querySelector('tr[data-client="victim-1"] td:nth-child(3)').textContent`:   "bob",
		`document.querySelector('tr[data-client="victim-1"] td:nth-child(4)').textContent`:   packet.V5.String(),
		`document.querySelector('tr[data-client="victim-1"] td:nth-child(6)').textContent`:   "30s",
		`document.querySelector('tr[data-client="listener-1"] td:nth-child(7)').textContent`: "public/from-console/# (QoS 1)",
		`document.querySelector("#client-count").textContent`:                                "3 of 3 clients",
	} {
		if got := eval[string](br, expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	if addr := eval[string](br, `document.querySelector('tr[data-client="victim-1"] td:nth-child(2)').textContent`); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("victim-1's address %q", addr)
	}
	br.screenshot("clients.png", true)
	br.do(chromedp.SendKeys(chromedp.ID("client-search"), "vict"))
	br.waitFor("the search", `document.querySelectorAll("#clients-table tbody tr").length === 1 && document.querySelector('#clients-table tbody tr').dataset.client === "victim-1"`)
	br.do(chromedp.Click(chromedp.CSS(`button[data-client="victim-1"]`)))
	br.waitFor("the button to ask for confirmation", `document.querySelector('button[data-client="victim-1"]').textContent === "Confirm"`)
	br.do(chromedp.Click(chromedp.CSS(`button[data-client="victim-1"]`)))
	select {
	case err := <-down:
		var de *client.DisconnectError
		if !errors.As(err, &de) || de.ReasonCode != packet.AdministrativeAction {
			t.Errorf("the disconnected client's cause: %v, want DISCONNECT 0x98 Administrative action", err)
		}
	case <-time.After(mqtttest.DefaultTimeout):
		t.Fatal("the client was not disconnected")
	}
	br.waitFor("the client to go", `!document.querySelector('button[data-client="victim-1"]')`)
	if msg := eval[string](br, `document.querySelector("#clients-error").textContent`); msg != "" {
		t.Errorf("an error on the clients page: %q", msg)
	}

	// Subscriptions as a topic tree.
	if _, err := sensor.Subscribe(ctx, "public/sensors/+/temp", 0, func(*client.Message) {}); err != nil {
		t.Fatal(err)
	}
	br.do(chromedp.Click(chromedp.CSS(`nav a[data-page="subscriptions"]`)))
	br.waitFor("the topic tree", `document.querySelector('li[data-filter="public/sensors/+/temp"]') !== null`)
	for expr, want := range map[string]string{
		`document.querySelector('li[data-filter="public/sensors/+/temp"] .subs').textContent`:       "sensor-1 (QoS 0)",
		`document.querySelector('li[data-filter="public/from-console/#"] .subs').textContent`:       "listener-1 (QoS 1)",
		`document.querySelector('li[data-filter="public"] > details > summary .level').textContent`: "public",
		`document.querySelector("#subscriptions-count").textContent`:                                "2 subscriptions",
	} {
		if got := eval[string](br, expr); got != want {
			t.Errorf("%s = %q, want %q", expr, got, want)
		}
	}
	br.screenshot("subscriptions.png", false)

	// The configuration, secrets hidden.
	br.do(chromedp.Click(chromedp.CSS(`nav a[data-page="config"]`)))
	br.waitFor("the configuration", `document.querySelector('#config-table tr[data-key="cluster.url"]') !== null`)
	text := eval[string](br, `document.querySelector("#page-config").innerText`)
	if strings.Contains(text, "SECRET") {
		t.Errorf("the configuration page shows a secret:\n%s", text)
	}
	for key, want := range map[string]string{
		"cluster.url":          "redis://tern:(hidden)@redis:6379/0",
		"auth.password_file":   "(hidden)",
		"http.tokens_file":     "(hidden)",
		"http.admins":          "alice",
		"listeners[1].type":    "http",
		"auth.allow_anonymous": "false",
	} {
		if got := eval[string](br, fmt.Sprintf(`document.querySelector('#config-table tr[data-key=%s] td:last-child').textContent`, jsString(key))); got != want {
			t.Errorf("configuration %s = %q, want %q", key, got, want)
		}
	}
	br.screenshot("config.png", false)

	if ex := br.pageExceptions(); len(ex) > 0 {
		t.Errorf("uncaught exceptions on the page: %q", ex)
	}
}

// TestConsoleInChromiumNotAdmin: a user who is not an administrator sees
// the overview, and the clients page says why it is empty.
func TestConsoleInChromiumNotAdmin(t *testing.T) {
	b := fixture(t, console.Config{})
	br := startBrowser(t, "bob", "bob-pw")
	br.do(chromedp.Navigate(b.HTTP + "/console/#clients"))
	br.waitFor("the user's name", `document.querySelector("#whoami").textContent === "bob"`)
	br.waitFor("the refusal", `!document.querySelector("#clients-error").hidden`)
	if msg := eval[string](br, `document.querySelector("#clients-error").textContent`); !strings.Contains(msg, "not an administrator") {
		t.Errorf("clients page for bob: %q", msg)
	}
	if ex := br.pageExceptions(); len(ex) > 0 {
		t.Errorf("uncaught exceptions on the page: %q", ex)
	}
}

// screenshotLoad gives the overview's plots something to show for the
// issue's screenshot: for 40 seconds, a varying rate of messages to a
// subscriber and clients coming and going. Bounded: at most 40 × 60
// messages and 8 clients.
func screenshotLoad(t *testing.T, br *browser, mqtt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := func(id string) client.Config {
		return client.Config{Servers: []string{mqtt}, ClientID: id, Username: "alice", Password: []byte("alice-pw")}
	}
	sub, err := client.New(cfg("dashboard"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(context.Background())
	if _, err := sub.Subscribe(ctx, "public/load", 0, func(*client.Message) {}); err != nil {
		t.Fatal(err)
	}
	pub, err := client.New(cfg("meter"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(context.Background())
	var extra []*client.Client
	defer func() {
		for _, c := range extra {
			c.Disconnect(context.Background())
		}
	}()
	for sec := range 40 {
		if sec%5 == 0 && len(extra) < 8 {
			c, err := client.New(cfg(fmt.Sprintf("device-%d", sec/5)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			extra = append(extra, c)
		}
		n := 30 + int(25*math.Sin(float64(sec)/4))
		start := time.Now()
		for i := range n {
			if _, err := pub.Publish(ctx, &message.Message{Topic: "public/load", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second / time.Duration(n+1))
		}
		if d := time.Second - time.Since(start); d > 0 {
			time.Sleep(d)
		}
	}
}
