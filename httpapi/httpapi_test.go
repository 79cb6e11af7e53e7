package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// mqttClient connects a real MQTT 5 client as user.
func mqttClient(t *testing.T, b *mqtttest.HTTPBroker, id, user string) *client.Client {
	t.Helper()
	return mqtttest.Connect(t, client.Config{Servers: []string{b.URL}, ClientID: id, Username: user, Password: []byte(user + "-pw")})
}

// subscribe subscribes c and returns the channel of its messages.
func subscribe(t *testing.T, c *client.Client, filter string, qos byte) <-chan *client.Message {
	t.Helper()
	ch := make(chan *client.Message, 16)
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if _, err := c.Subscribe(ctx, filter, qos, func(m *client.Message) { ch <- m }); err != nil {
		t.Fatal(err)
	}
	return ch
}

func recvMsg(t *testing.T, ch <-chan *client.Message) *client.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(mqtttest.DefaultTimeout):
		t.Fatal("the MQTT client got no message")
	}
	return nil
}

// TestPublish: a POST /api/v1/publish reaches a real MQTT client with its
// QoS, retain flag and MQTT 5 properties, answers with the number of
// subscribers once the broker took it; a bearer token acts as its user.
func TestPublish(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{})
	sub := mqttClient(t, b, "sub", "alice")
	msgs := subscribe(t, sub, "public/#", 2)

	text := "hello"
	code, body := call(t, "POST", b.HTTP+"/api/v1/publish", "alice", httpapi.PublishRequest{
		Topic: "public/a", Payload: &text, QoS: 1,
		Properties: httpapi.Properties{ContentType: "text/plain", ResponseTopic: "public/reply",
			CorrelationData: base64.StdEncoding.EncodeToString([]byte{1, 2, 3}),
			UserProperties:  []httpapi.UserProperty{{"k", "v"}, {"k", "w"}}, MessageExpiry: 60, PayloadFormat: 1},
	})
	if code != 200 {
		t.Fatalf("publish: %d %s", code, body)
	}
	var pr httpapi.PublishResponse
	if err := json.Unmarshal(body, &pr); err != nil || pr.Matched != 1 {
		t.Fatalf("publish answer %s: matched %d, want 1", body, pr.Matched)
	}
	m := recvMsg(t, msgs)
	p := m.Properties
	if m.Topic != "public/a" || string(m.Payload) != "hello" || m.QoS != 1 || p.ContentType != "text/plain" ||
		p.ResponseTopic != "public/reply" || string(p.CorrelationData) != "\x01\x02\x03" || len(p.User) != 2 ||
		p.User[1] != (packet.UserProperty{Key: "k", Value: "w"}) || p.MessageExpiry == 0 || p.MessageExpiry > 60 || p.PayloadFormat != 1 {
		t.Fatalf("got %s %q qos %d %+v", m.Topic, m.Payload, m.QoS, p)
	}

	// Binary payload in base64, retained; bob by his bearer token.
	bobMsgs := subscribe(t, mqttClient(t, b, "bobsub", "bob"), "bob/#", 0)
	bin := base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0xfe})
	code, body = call(t, "POST", b.HTTP+"/api/v1/publish", "token:bob-token", httpapi.PublishRequest{Topic: "bob/bin", PayloadBase64: &bin, Retain: true})
	if code != 200 {
		t.Fatalf("bob's publish: %d %s", code, body)
	}
	if m := recvMsg(t, bobMsgs); string(m.Payload) != "\xff\x00\xfe" {
		t.Fatalf("bob got %q", m.Payload)
	}
	if ms, _, _ := b.Server.Retained("bob/bin", 0); len(ms) != 1 || ms[0].From != "http:bob" {
		t.Fatalf("retained: %v", ms)
	}

	// The ACL holds: alice may not publish to bob/..., nor bob to public/...
	for _, c := range []struct{ user, topic string }{{"alice", "bob/x"}, {"token:bob-token", "public/x"}, {"alice", "feeds/x"}} {
		if code, body := call(t, "POST", b.HTTP+"/api/v1/publish", c.user, httpapi.PublishRequest{Topic: c.topic, Payload: &text}); code != http.StatusForbidden {
			t.Errorf("%s publishing to %s: %d %s, want 403", c.user, c.topic, code, body)
		}
	}
	// No credentials, bad password, unknown token.
	if code, _ := call(t, "POST", b.HTTP+"/api/v1/publish", "", httpapi.PublishRequest{Topic: "public/a", Payload: &text}); code != 401 {
		t.Errorf("anonymous: %d, want 401", code)
	}
	req, _ := http.NewRequest("POST", b.HTTP+"/api/v1/publish", strings.NewReader(`{"topic":"public/a"}`))
	req.SetBasicAuth("alice", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("bad password: %d %q, want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if code, _ := call(t, "POST", b.HTTP+"/api/v1/publish", "token:nope", httpapi.PublishRequest{Topic: "public/a"}); code != 401 {
		t.Errorf("unknown token: %d, want 401", code)
	}
	select {
	case m := <-msgs:
		t.Fatalf("a refused publish arrived: %s", m.Topic)
	default:
	}
}

// TestPublishBadRequests: each malformed request gets 400 (or 413, 415)
// with an error naming the field.
func TestPublishBadRequests(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{MaxBody: 1024})
	for _, c := range []struct {
		body any
		code int
		want string
	}{
		{`{"topic":`, 400, "not a publish request"},
		{`{"topic":"public/a","bogus":1}`, 400, "bogus"},
		{`{"payload":"x"}`, 400, "topic: missing"},
		{`{"topic":"public/+"}`, 400, "topic"},
		{`{"topic":"public/a","qos":3}`, 400, "qos"},
		{`{"topic":"public/a","payload":"x","payload_base64":"eA=="}`, 400, "payload and payload_base64"},
		{`{"topic":"public/a","payload_base64":"%%%"}`, 400, "payload_base64"},
		{`{"topic":"public/a","response_topic":"a/#"}`, 400, "response_topic"},
		{`{"topic":"public/a","correlation_data":"%%"}`, 400, "correlation_data"},
		{`{"topic":"public/a","user_properties":[{"key":"a\u0000","value":"b"}]}`, 400, "user_properties[0].key"},
		{`{"topic":"public/a","payload_base64":"/w==","payload_format":1}`, 400, "payload_format"},
		{`{"topic":"public/a","payload":"` + strings.Repeat("x", 2000) + `"}`, 413, "max_body"},
	} {
		code, body := call(t, "POST", b.HTTP+"/api/v1/publish", "alice", c.body)
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("%.60v: %d %s; want %d naming %q", c.body, code, body, c.code, c.want)
		}
	}
	req, _ := http.NewRequest("POST", b.HTTP+"/api/v1/publish", strings.NewReader("topic=a"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("alice", "alice-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("a form body: %d, want 415", resp.StatusCode)
	}
	// No Content-Type at all (what a cross-site page can send without a
	// preflight) is refused too.
	req, _ = http.NewRequest("POST", b.HTTP+"/api/v1/publish", strings.NewReader(`{"topic":"public/a"}`))
	req.SetBasicAuth("alice", "alice-pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("no Content-Type: %d, want 415", resp.StatusCode)
	}
}

// TestPublishLimits: the broker's Maximum QoS and Retain Available hold
// for HTTP publishes (422).
func TestPublishLimits(t *testing.T) {
	t.Parallel()
	b := fixture(t, &broker.Server{MaximumQoS: broker.QoS(1), RetainUnavailable: true}, httpapi.Config{})
	for _, body := range []string{`{"topic":"public/a","qos":2}`, `{"topic":"public/a","retain":true,"payload":"x"}`} {
		if code, resp := call(t, "POST", b.HTTP+"/api/v1/publish", "alice", body); code != 422 {
			t.Errorf("%s: %d %s, want 422", body, code, resp)
		}
	}
}

// TestRetained: GET /api/v1/retained returns what real MQTT clients
// retained, in order, bounded by limit, within the user's ACL.
func TestRetained(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{})
	pub := mqttClient(t, b, "pub", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	for i := 3; i >= 1; i-- {
		if _, err := pub.Publish(ctx, &message.Message{Topic: fmt.Sprintf("public/r%d", i), Payload: []byte{'v', byte('0' + i)}, QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	b.Server.Publish("bob/secret", []byte("s"), 0, true)
	code, body := call(t, "GET", b.HTTP+"/api/v1/retained?filter=public/%23&limit=2", "alice", nil)
	var rr httpapi.RetainedResponse
	if code != 200 || json.Unmarshal(body, &rr) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if len(rr.Messages) != 2 || !rr.Truncated || rr.Messages[0].Topic != "public/r1" || rr.Messages[0].Payload != "v1" || !rr.Messages[0].Retain || rr.Messages[0].From != "pub" {
		t.Fatalf("retained: %s", body)
	}
	// Alice may not read bob/#; # for her is filtered by her read rules.
	if code, _ := call(t, "GET", b.HTTP+"/api/v1/retained?filter=bob/%23", "alice", nil); code != 403 {
		t.Errorf("alice reading bob/#: %d, want 403", code)
	}
	if code, _ := call(t, "GET", b.HTTP+"/api/v1/retained?filter=public/%23", "", nil); code != 401 {
		t.Errorf("anonymous: %d, want 401", code)
	}
	if code, _ := call(t, "GET", b.HTTP+"/api/v1/retained", "alice", nil); code != 400 {
		t.Errorf("no filter: %d, want 400", code)
	}
	code, body = call(t, "GET", b.HTTP+"/api/v1/retained?filter=bob/%23", "token:bob-token", nil)
	if code != 200 || !strings.Contains(string(body), `"bob/secret"`) {
		t.Errorf("bob reading bob/#: %d %s", code, body)
	}
}

// TestSSE: GET /api/v1/subscribe streams what a real MQTT client
// publishes (retained messages first) as Server-Sent Events, within the
// ACL; it ends when the client goes.
func TestSSE(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{})
	b.Server.Publish("public/kept", []byte("old"), 0, true)
	resp := do(t, "GET", b.HTTP+"/api/v1/subscribe?filter=public/%23&filter=feeds/%23&qos=1", "alice", nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(resp.Body)
	if ev := nextEvent(t, events); ev.name != "subscribed" {
		t.Fatalf("first event %+v", ev)
	}
	if ev := nextEvent(t, events); ev.name != "message" || !strings.Contains(ev.data, `"payload":"old"`) || !strings.Contains(ev.data, `"retain":true`) {
		t.Fatalf("retained event %+v", ev)
	}
	pub := mqttClient(t, b, "pub", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if _, err := pub.Publish(ctx, &message.Message{Topic: "public/live", Payload: []byte("now"), QoS: 1,
		Properties: packet.Properties{User: []packet.UserProperty{{Key: "a", Value: "b"}}}}); err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, events)
	var m httpapi.Message
	if ev.name != "message" || json.Unmarshal([]byte(ev.data), &m) != nil || m.Topic != "public/live" || m.Payload != "now" || m.QoS != 1 ||
		len(m.UserProperties) != 1 || m.From != "pub" {
		t.Fatalf("live event %+v", ev)
	}
	b.Server.Publish("feeds/x", []byte{0xff}, 0, false)
	if ev := nextEvent(t, events); !strings.Contains(ev.data, `"payload_base64":"/w=="`) {
		t.Fatalf("binary event %+v", ev)
	}

	for _, c := range []struct {
		user, query string
		code        int
	}{
		{"alice", "filter=bob/%23", 403},
		{"token:bob-token", "filter=%23", 403},
		{"", "filter=public/%23", 401},
		{"alice", "", 400},
		{"alice", "filter=a/%23/b", 400},
		{"alice", "filter=public/a&qos=5", 400},
	} {
		if code, body := call(t, "GET", b.HTTP+"/api/v1/subscribe?"+c.query, c.user, nil); code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.user, c.query, code, body, c.code)
		}
	}
}

// wsDial opens the WebSocket stream as user.
func wsDial(t *testing.T, b *mqtttest.HTTPBroker, user string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	setAuth(h, user)
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.HTTP, "http")+"/api/v1/ws", &websocket.DialOptions{HTTPHeader: h})
}

func wsSend(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func wsRecv(t *testing.T, c *websocket.Conn) httpapi.WSEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ev httpapi.WSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestWebSocket: the JSON stream subscribes, receives what real MQTT
// clients publish, publishes to them, unsubscribes, and answers each
// request, refusals included.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{})
	c, _, err := wsDial(t, b, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	mq := mqttClient(t, b, "mq", "alice")
	fromWS := subscribe(t, mq, "public/fromws", 1)

	wsSend(t, c, map[string]any{"type": "subscribe", "id": "1", "filter": "public/tows", "qos": 1})
	if ev := wsRecv(t, c); ev.Type != "ok" || ev.ID != "1" {
		t.Fatalf("subscribe: %+v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if _, err := mq.Publish(ctx, &message.Message{Topic: "public/tows", Payload: []byte("to ws"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if ev := wsRecv(t, c); ev.Type != "message" || ev.Message.Topic != "public/tows" || ev.Message.Payload != "to ws" {
		t.Fatalf("message: %+v", ev)
	}
	wsSend(t, c, map[string]any{"type": "publish", "id": "2", "topic": "public/fromws", "payload": "from ws", "qos": 1})
	if ev := wsRecv(t, c); ev.Type != "ok" || ev.ID != "2" || ev.Matched == nil || *ev.Matched != 1 {
		t.Fatalf("publish: %+v", ev)
	}
	if m := recvMsg(t, fromWS); string(m.Payload) != "from ws" {
		t.Fatalf("MQTT got %q", m.Payload)
	}
	for _, c2 := range []struct {
		req    map[string]any
		status int
	}{
		{map[string]any{"type": "subscribe", "id": "3", "filter": "bob/#"}, 403},
		{map[string]any{"type": "publish", "id": "4", "topic": "bob/x", "payload": "no"}, 403},
		{map[string]any{"type": "subscribe", "id": "5", "filter": "a/#/b"}, 400},
		{map[string]any{"type": "unsubscribe", "id": "6", "filter": "never"}, 404},
		{map[string]any{"type": "dance", "id": "7"}, 400},
	} {
		wsSend(t, c, c2.req)
		if ev := wsRecv(t, c); ev.Type != "error" || ev.ID != c2.req["id"] || ev.Status != c2.status {
			t.Errorf("%v: %+v, want error %d", c2.req, ev, c2.status)
		}
	}
	wsSend(t, c, map[string]any{"type": "unsubscribe", "id": "8", "filter": "public/tows"})
	if ev := wsRecv(t, c); ev.Type != "ok" || ev.ID != "8" {
		t.Fatalf("unsubscribe: %+v", ev)
	}
	c.Close(websocket.StatusNormalClosure, "")

	if _, resp, err := wsDial(t, b, ""); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("anonymous WebSocket: %v %v, want 401", err, resp)
	}
}

// TestAdminEndpoints: an administrator lists clients (as the broker sees
// them) and subscriptions and disconnects a client; others may not.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	b := fixture(t, nil, httpapi.Config{})
	mq := mqttClient(t, b, "victim", "bob")
	subscribe(t, mq, "bob/#", 1)
	code, body := call(t, "GET", b.HTTP+"/api/v1/clients", "alice", nil)
	var cl struct{ Clients []httpapi.ClientJSON }
	if code != 200 || json.Unmarshal(body, &cl) != nil || len(cl.Clients) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	c := cl.Clients[0]
	if c.ClientID != "victim" || c.Username != "bob" || c.Protocol != "5.0" || !c.Connected || c.Listener == "" || c.ConnectedSince == nil ||
		len(c.Subscriptions) != 1 || c.Subscriptions[0].Filter != "bob/#" {
		t.Fatalf("client %s", body)
	}
	code, body = call(t, "GET", b.HTTP+"/api/v1/subscriptions", "alice", nil)
	if code != 200 || !strings.Contains(string(body), `"filter":"bob/#"`) {
		t.Fatalf("subscriptions %d %s", code, body)
	}
	for _, u := range []string{"token:bob-token", "bob"} {
		if code, _ := call(t, "DELETE", b.HTTP+"/api/v1/clients/victim", u, nil); code != 403 {
			t.Errorf("%s disconnecting: %d, want 403", u, code)
		}
	}
	if code, body := call(t, "DELETE", b.HTTP+"/api/v1/clients/victim", "alice", nil); code != 200 {
		t.Fatalf("disconnect: %d %s", code, body)
	}
	deadline := time.Now().Add(mqtttest.DefaultTimeout)
	for {
		if st, _ := b.Server.Client("victim"); !st.Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client is still connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := call(t, "DELETE", b.HTTP+"/api/v1/clients/nobody", "alice", nil); code != 404 {
		t.Errorf("unknown client: %d, want 404", code)
	}
}

// TestHealth: /healthz answers while the process runs; /readyz says
// ready while the broker serves and 503 once it is closed.
func TestHealth(t *testing.T) {
	t.Parallel()
	srv := &broker.Server{SysInterval: -1}
	h, err := httpapi.New(srv, httpapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := fixture(t, nil, httpapi.Config{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := call(t, "GET", b.HTTP+p, "", nil); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	// A server that never started is not ready; the handler is served
	// here by net/http directly.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("readyz of a server not started: %d", rec.Code)
	}
	srv.Close()
}

// TestSSESlowReader: a stream whose reader does not keep up loses
// messages beyond its buffer instead of holding the broker up, and is
// told how many with a "dropped" event.
func TestSSESlowReader(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartHTTPBroker(t, &broker.Server{SysInterval: -1}, httpapi.Config{StreamBuffer: 1})
	resp := do(t, "GET", b.HTTP+"/api/v1/subscribe?filter=big", "", nil)
	defer resp.Body.Close()
	events := readEvents(resp.Body)
	if ev := nextEvent(t, events); ev.name != "subscribed" {
		t.Fatalf("first event %+v", ev)
	}
	// The reader stalls behind its events channel (64) and the sockets'
	// buffers: 400 messages of 64 KiB are more than they hold.
	payload := make([]byte, 64<<10)
	for i := range payload {
		payload[i] = 'x'
	}
	for range 400 {
		if err := b.Server.Publish("big", payload, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended without a dropped event")
			}
			if ev.name == "dropped" {
				var d struct{ Count uint64 }
				if err := json.Unmarshal([]byte(ev.data), &d); err != nil || d.Count == 0 {
					t.Fatalf("dropped event %q", ev.data)
				}
				t.Logf("dropped %d", d.Count)
				return
			}
		case <-deadline:
			t.Fatal("no dropped event")
		}
	}
}
