// Package httpapi is the HTTP face of a Tern broker: an http.Handler that
// serves, on the broker's http listeners (broker.Server.HTTPHandler),
//
//   - the HTTP bridge under /api/v1/: publish with POST /api/v1/publish,
//     read retained messages with GET /api/v1/retained, subscribe with
//     Server-Sent Events (GET /api/v1/subscribe) or a JSON-over-WebSocket
//     stream (GET /api/v1/ws); and the clients and subscriptions, with a
//     disconnect, for administrators;
//   - Prometheus metrics at /metrics;
//   - /healthz (the process answers) and /readyz (the listeners are open,
//     the store is open, the back plane is reachable) for orchestrators;
//   - its own description, OpenAPI 3, at /api/v1/openapi.yaml.
//
// HTTP users are authenticated by the broker's own Authenticator (HTTP
// basic authentication: the user name and password an MQTT client would
// send) or by a bearer token of Config.Tokens, and every topic they touch
// is checked by the broker's Authorizer, so ACLs hold for them as for
// MQTT clients. A user acts as the client "http:" + user name.
//
// The web console will be mounted on the same handler (Config.Console).
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// Config configures a Handler. The zero value works: the broker's
// Authenticator and Authorizer decide, no bearer tokens, no administrators,
// metrics and health without authentication.
type Config struct {
	// Tokens maps bearer tokens ("Authorization: Bearer TOKEN") to the
	// user names they act as; the Authenticator is not asked about them,
	// the Authorizer is, for every topic.
	Tokens map[string]string
	// Admins are the user names that may list and disconnect clients
	// (/api/v1/clients, /api/v1/subscriptions). None: nobody may.
	Admins []string
	// ProtectMetrics requires authentication for /metrics too.
	ProtectMetrics bool
	// MaxBody bounds the body of a publish request. Default 1 MiB.
	MaxBody int64
	// StreamBuffer is how many messages a subscription stream (SSE,
	// WebSocket) holds for a slow reader before it drops them (and says
	// how many). Default 256.
	StreamBuffer int
	// AuthCacheTTL is how long a user name and password that the
	// Authenticator accepted are accepted again without asking it (a
	// password hash check costs tens of milliseconds by design, too much
	// for every request). A changed password file takes effect for
	// passwords already seen after this long. Default 1 minute; negative:
	// ask the Authenticator on every request.
	AuthCacheTTL time.Duration
	// Console, when set, is served under /console/ behind the same
	// authentication (the web console).
	Console http.Handler
	// Logger: nil for slog.Default().
	Logger *slog.Logger
	// Registry receives the broker's collector and the Go runtime and
	// process collectors; nil: a new one. Served at /metrics.
	Registry *prometheus.Registry
}

// Handler is the HTTP API, metrics and health of one broker.Server.
type Handler struct {
	srv    *broker.Server
	cfg    Config
	tokens []tokenEntry
	cache  authCache
	mux    *http.ServeMux
	log    *slog.Logger
	reg    *prometheus.Registry
}

type tokenEntry struct {
	sum  [32]byte
	user string
}

// Routes are the method and pattern of every route of the handler, as
// documented in openapi.yaml (the test checks one against the other).
var Routes = []string{
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	"GET /api/v1/openapi.yaml",
	"POST /api/v1/publish",
	"GET /api/v1/retained",
	"GET /api/v1/subscribe",
	"GET /api/v1/ws",
	"GET /api/v1/clients",
	"DELETE /api/v1/clients/{id}",
	"GET /api/v1/subscriptions",
}

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3 description of the API.
func OpenAPI() []byte { return slices.Clone(openAPI) }

// New returns the handler for srv. It registers the broker's metrics
// collector in cfg.Registry (or a new registry).
func New(srv *broker.Server, cfg Config) (*Handler, error) {
	if srv == nil {
		return nil, errors.New("httpapi: New needs a broker.Server")
	}
	if cfg.MaxBody < 0 {
		return nil, fmt.Errorf("httpapi: Config.MaxBody %d must not be negative (0 means 1 MiB)", cfg.MaxBody)
	}
	if cfg.StreamBuffer < 0 {
		return nil, fmt.Errorf("httpapi: Config.StreamBuffer %d must not be negative (0 means 256)", cfg.StreamBuffer)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.StreamBuffer == 0 {
		cfg.StreamBuffer = 256
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = time.Minute
	}
	h := &Handler{srv: srv, cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, reg: cfg.Registry}
	if h.log == nil {
		h.log = slog.Default()
	}
	for tok, user := range cfg.Tokens {
		if tok == "" {
			return nil, fmt.Errorf("httpapi: Config.Tokens: the token of user %q is empty", user)
		}
		h.tokens = append(h.tokens, tokenEntry{sha256.Sum256([]byte(tok)), user})
	}
	if h.reg == nil {
		h.reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{
		NewCollector(srv),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := h.reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: registering the metrics: %w", err)
		}
	}

	prom := promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{ErrorLog: slogPromLogger{h.log}})
	metrics := prom
	if cfg.ProtectMetrics {
		metrics = h.authed(func(w http.ResponseWriter, r *http.Request, _ *broker.ClientInfo) { prom.ServeHTTP(w, r) })
	}
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("GET /metrics", metrics)
	h.mux.HandleFunc("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
	h.mux.Handle("POST /api/v1/publish", h.authed(h.publish))
	h.mux.Handle("GET /api/v1/retained", h.authed(h.retained))
	h.mux.Handle("GET /api/v1/subscribe", h.authed(h.sse))
	h.mux.Handle("GET /api/v1/ws", h.authed(h.websocket))
	h.mux.Handle("GET /api/v1/clients", h.authed(h.admin(h.clients)))
	h.mux.Handle("DELETE /api/v1/clients/{id}", h.authed(h.admin(h.disconnect)))
	h.mux.Handle("GET /api/v1/subscriptions", h.authed(h.admin(h.subscriptions)))
	if cfg.Console != nil {
		h.mux.Handle("/console/", h.authed(func(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
			cfg.Console.ServeHTTP(w, r.WithContext(withUser(r.Context(), who, h.isAdmin(who)))) // console.go
		}))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The mux answers 405 for a known path with another method; this
		// is every other path.
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see /api/v1/openapi.yaml)", r.Method, r.URL.Path))
	})
	return h, nil
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Registry is the Prometheus registry served at /metrics.
func (h *Handler) Registry() *prometheus.Registry { return h.reg }

func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := h.srv.Health(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// authedFunc is a handler that runs for an authenticated user.
type authedFunc func(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo)

// authed authenticates the request: a bearer token of Config.Tokens, or
// basic authentication (or none: an anonymous user) checked by the
// broker's Authenticator.
func (h *Handler) authed(next authedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, status, msg := h.authenticate(r)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Basic realm="tern", charset="UTF-8"`)
			}
			writeError(w, status, msg)
			return
		}
		next(w, r.WithContext(withUser(r.Context(), who, h.isAdmin(who))), who)
	})
}

// User returns the authenticated user of a request the handler passed
// on (to Config.Console): the ClientInfo the Authorizer is asked about;
// nil for a request that was not authenticated. UserFrom tells whether
// the user is an administrator too.
func User(ctx context.Context) *broker.ClientInfo {
	u, _ := UserFrom(ctx)
	return u.Info
}

func (h *Handler) authenticate(r *http.Request) (who *broker.ClientInfo, status int, msg string) {
	info := &broker.ClientInfo{
		Version:    packet.V5,
		RemoteAddr: broker.Addr("tcp", r.RemoteAddr),
		Listener:   broker.HTTPListener(r.Context()),
		TLS:        r.TLS,
	}
	authz := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(authz, " "); ok && strings.EqualFold(scheme, "Bearer") {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		for _, e := range h.tokens {
			if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
				info.Username = e.user
				info.ClientID = "http:" + e.user
				return info, 0, ""
			}
		}
		return nil, http.StatusUnauthorized, "unknown bearer token"
	}
	user, pass, basic := r.BasicAuth()
	if authz != "" && !basic {
		return nil, http.StatusUnauthorized, "unsupported Authorization header: use Basic (user and password) or Bearer (a token)"
	}
	info.Username = user
	info.ClientID = "http:" + user
	key := cacheKey(user, pass, basic)
	if name, ok := h.cache.get(key, time.Now()); ok {
		info.Username = name
		info.ClientID = "http:" + name
		return info, 0, ""
	}
	req := &broker.AuthRequest{ClientInfo: *info}
	if basic {
		req.Password = []byte(pass)
	}
	if err := h.srv.Authenticate(r.Context(), req); err != nil {
		var ref *broker.Refusal
		if errors.As(err, &ref) && (ref.Code == packet.ServerUnavailable || ref.Code == packet.ServerBusy) {
			return nil, http.StatusServiceUnavailable, "authentication unavailable: " + ref.Reason
		}
		if !basic {
			return nil, http.StatusUnauthorized, "authentication required: send a user name and password (basic authentication) or a bearer token"
		}
		return nil, http.StatusUnauthorized, "bad user name or password"
	}
	info.Username = req.Username // the hook may have changed it
	info.ClientID = "http:" + info.Username
	if h.cfg.AuthCacheTTL > 0 {
		h.cache.put(key, info.Username, time.Now().Add(h.cfg.AuthCacheTTL))
	}
	return info, 0, ""
}

// admin lets only Config.Admins in.
func (h *Handler) admin(next authedFunc) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
		if !h.isAdmin(who) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("user %q is not an administrator (http.admins)", who.Username))
			return
		}
		next(w, r, who)
	}
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{msg})
}

// WriteError answers with status and the API's error body,
// {"error": msg}: for handlers mounted beside the API (Config.Console).
func WriteError(w http.ResponseWriter, status int, msg string) { writeError(w, status, msg) }

// WriteJSON answers with status and v as JSON, not cached, as the API's
// handlers do.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// slogPromLogger is promhttp's error log on slog.
type slogPromLogger struct{ l *slog.Logger }

func (s slogPromLogger) Println(v ...any) { s.l.Warn("metrics: " + fmt.Sprint(v...)) }

// authCache remembers the credentials the Authenticator accepted, by a
// hash of user name and password (the password itself is not kept).
type authCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedAuth
}

type cachedAuth struct {
	user    string
	expires time.Time
}

// maxCached bounds the cache: past it, expired entries are dropped, and
// if that is not enough, all of them.
const maxCached = 1024

func cacheKey(user, pass string, basic bool) [32]byte {
	h := sha256.New()
	if basic {
		h.Write([]byte{1})
	}
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *authCache) get(k [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || now.After(e.expires) {
		return "", false
	}
	return e.user, true
}

func (c *authCache) put(k [32]byte, user string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[32]byte]cachedAuth{}
	}
	if len(c.m) >= maxCached {
		now := time.Now()
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCached {
			clear(c.m)
		}
	}
	c.m[k] = cachedAuth{user, expires}
}
