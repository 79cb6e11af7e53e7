package httpapi_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/mqtttest"
)

// statusRec records the status a handler answered.
type statusRec struct {
	http.ResponseWriter
	code int
}

func (s *statusRec) WriteHeader(c int) {
	if s.code == 0 {
		s.code = c
	}
	s.ResponseWriter.WriteHeader(c)
}

func (s *statusRec) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = 200
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRec) Flush()                      { http.NewResponseController(s.ResponseWriter).Flush() }
func (s *statusRec) Unwrap() http.ResponseWriter { return s.ResponseWriter }
func (s *statusRec) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// seen records, per route of httpapi.Routes, the statuses its handlers
// answered.
type seen struct {
	mux *http.ServeMux
	mu  sync.Mutex
	got map[string]map[int]bool
}

func newSeen() *seen {
	s := &seen{mux: http.NewServeMux(), got: map[string]map[int]bool{}}
	for _, r := range httpapi.Routes {
		s.mux.HandleFunc(r, func(http.ResponseWriter, *http.Request) {})
	}
	return s
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.mux.Handler(r)
		rec := &statusRec{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		s.mu.Lock()
		if s.got[pattern] == nil {
			s.got[pattern] = map[int]bool{}
		}
		s.got[pattern][rec.code] = true
		s.mu.Unlock()
	})
}

// documented reads openapi.yaml: route ("GET /path") -> statuses.
func documented(t *testing.T) map[string]map[int]bool {
	t.Helper()
	var doc struct {
		OpenAPI string                                                   `yaml:"openapi"`
		Paths   map[string]map[string]struct{ Responses map[string]any } `yaml:"paths"`
	}
	if err := yaml.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.yaml: version %q, want 3.x", doc.OpenAPI)
	}
	out := map[string]map[int]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			route := strings.ToUpper(method) + " " + path
			out[route] = map[int]bool{}
			for code := range op.Responses {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Fatalf("openapi.yaml: %s: status %q", route, code)
				}
				out[route][n] = true
			}
		}
	}
	return out
}

// TestOpenAPI: openapi.yaml documents exactly the handler's routes, and
// every status it documents for a route is one the real handler
// answers, and no other: each is provoked here, against a real broker.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	doc := documented(t)
	var docRoutes []string
	for r := range doc {
		docRoutes = append(docRoutes, r)
	}
	sort.Strings(docRoutes)
	routes := slices.Sorted(slices.Values(httpapi.Routes))
	if !slices.Equal(docRoutes, routes) {
		t.Fatalf("documented routes %v\nhandler routes %v", docRoutes, routes)
	}

	rec := newSeen()
	srv := &broker.Server{}
	withAuth(t, srv)
	h, err := httpapi.New(srv, httpapi.Config{Tokens: map[string]string{"bob-token": "bob"}, Admins: []string{"alice"}, MaxBody: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv.HTTPHandler = rec.wrap(h)
	srv.Listeners = []broker.Listener{{Type: "tcp", Addr: "127.0.0.1:0"}, {Type: "http", Addr: "127.0.0.1:0"}}
	mb := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: srv})
	b := &mqtttest.HTTPBroker{Broker: mb, HTTP: "http://" + mb.Addrs[1].String()}
	u := b.HTTP

	// Handlers of other configurations, served in process.
	local := func(srv *broker.Server, cfg httpapi.Config, method, path, user, body string) {
		t.Helper()
		h, err := httpapi.New(srv, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		setAuth(r.Header, user)
		rec.wrap(h).ServeHTTP(httptest.NewRecorder(), r)
	}
	notStarted := &broker.Server{}
	withAuth(t, notStarted)
	local(notStarted, httpapi.Config{}, "GET", "/readyz", "", "")
	local(notStarted, httpapi.Config{ProtectMetrics: true}, "GET", "/metrics", "", "")
	lowQoS := &broker.Server{MaximumQoS: broker.QoS(0)}
	local(lowQoS, httpapi.Config{}, "POST", "/api/v1/publish", "", `{"topic":"a","qos":1}`)
	closed := &broker.Server{}
	closed.Close()
	local(closed, httpapi.Config{}, "POST", "/api/v1/publish", "", `{"topic":"a"}`)
	notStarted.Close()
	lowQoS.Close()

	ok := `{"topic":"public/a","payload":"x"}`
	for _, c := range []struct{ method, path, user, body string }{
		{"GET", "/healthz", "", ""},
		{"GET", "/readyz", "", ""},
		{"GET", "/metrics", "", ""},
		{"GET", "/api/v1/openapi.yaml", "", ""},
		{"POST", "/api/v1/publish", "alice", ok},
		{"POST", "/api/v1/publish", "alice", `{"topic":`},
		{"POST", "/api/v1/publish", "", ok},
		{"POST", "/api/v1/publish", "alice", `{"topic":"bob/a"}`},
		{"POST", "/api/v1/publish", "alice", `{"topic":"public/a","payload":"` + strings.Repeat("x", 2000) + `"}`},
		{"GET", "/api/v1/retained?filter=public/%23", "alice", ""},
		{"GET", "/api/v1/retained", "alice", ""},
		{"GET", "/api/v1/retained?filter=public/%23", "", ""},
		{"GET", "/api/v1/retained?filter=bob/%23", "alice", ""},
		{"GET", "/api/v1/subscribe", "alice", ""},
		{"GET", "/api/v1/subscribe?filter=public/%23", "", ""},
		{"GET", "/api/v1/subscribe?filter=bob/%23", "alice", ""},
		{"GET", "/api/v1/ws", "alice", ""},
		{"GET", "/api/v1/ws", "", ""},
		{"GET", "/api/v1/clients", "alice", ""},
		{"GET", "/api/v1/clients", "", ""},
		{"GET", "/api/v1/clients", "bob", ""},
		{"DELETE", "/api/v1/clients/nobody", "alice", ""},
		{"DELETE", "/api/v1/clients/nobody", "", ""},
		{"DELETE", "/api/v1/clients/nobody", "token:bob-token", ""},
		{"GET", "/api/v1/subscriptions", "alice", ""},
		{"GET", "/api/v1/subscriptions", "", ""},
		{"GET", "/api/v1/subscriptions", "bob", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		call(t, c.method, u+c.path, c.user, body)
	}
	// 415: not JSON.
	req, _ := http.NewRequest("POST", u+"/api/v1/publish", strings.NewReader("x"))
	req.Header.Set("Content-Type", "text/plain")
	req.SetBasicAuth("alice", "alice-pw")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// 200: a stream, ended by the client.
	resp := do(t, "GET", u+"/api/v1/subscribe?filter=public/%23", "alice", nil)
	nextEvent(t, readEvents(resp.Body))
	resp.Body.Close()
	// 101, and 200 for a client disconnected by an administrator.
	c, _, err := wsDial(t, b, "alice")
	if err != nil {
		t.Fatal(err)
	}
	c.CloseNow()
	mqttClient(t, b, "victim", "bob")
	if code, body := call(t, "DELETE", u+"/api/v1/clients/victim", "alice", nil); code != 200 {
		t.Fatalf("disconnect: %d %s", code, body)
	}
	// The streams' handlers record their status when they return: the
	// broker's shutdown waits for them.
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, r := range routes {
		var want, got []int
		for s := range doc[r] {
			want = append(want, s)
		}
		for s := range rec.got[r] {
			got = append(got, s)
		}
		sort.Ints(want)
		sort.Ints(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s: documented statuses %v, the handler answered %v", r, want, got)
		}
	}
}
