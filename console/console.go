// Package console is the web console of a Tern broker: an http.Handler
// that package httpapi mounts at /console/ on the broker's http listeners
// (httpapi.Config.Console), behind the API's authentication.
//
// The console is plain HTML, CSS and JavaScript (ES modules) embedded in
// the binary; it needs no build step and loads nothing from elsewhere.
// Its pages are
//
//   - an overview with live message and connection rates, plotted every
//     second from a Server-Sent Events stream of the broker's Stats
//     (GET /console/api/stats/stream; one sample: GET /console/api/stats);
//   - the clients, with a search and a disconnect action, the
//     subscriptions as a topic tree, for administrators (the API's
//     /api/v1/clients and /api/v1/subscriptions);
//   - a browser of retained messages (GET /api/v1/retained) and a publish
//     form (POST /api/v1/publish), with the user's own rights: the
//     broker's Authorizer decides as for an MQTT client;
//   - the broker's configuration, secrets hidden, for administrators
//     (GET /console/api/config).
//
// The browser logs in with HTTP basic authentication: the user name and
// password an MQTT client would send.
package console

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

//go:embed assets
var assets embed.FS

// Config configures a Handler. The zero value works: no configuration
// shown, samples every second.
type Config struct {
	// Settings is the broker's effective configuration, as its owner
	// (tern broker) describes it: any value that encodes to JSON. The
	// owner hides its secrets; the console hides again whatever Redact
	// finds (passwords, keys, tokens, the password of a URL) before it
	// shows it, so a secret the owner missed is not shown either.
	Settings any
	// Interval is the time between two samples of the stats stream.
	// Default 1s.
	Interval time.Duration
	// Logger: nil for slog.Default().
	Logger *slog.Logger
}

// Handler serves the console.
type Handler struct {
	srv      *broker.Server
	cfg      Config
	settings any // redacted once
	mux      *http.ServeMux
	log      *slog.Logger
}

// New returns the console of srv.
func New(srv *broker.Server, cfg Config) (*Handler, error) {
	if srv == nil {
		return nil, errors.New("console: New needs a broker.Server")
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("console: Config.Interval %v must not be negative (0 means 1s)", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	settings, err := Redact(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("console: Config.Settings: %w", err)
	}
	h := &Handler{srv: srv, cfg: cfg, settings: settings, mux: http.NewServeMux(), log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	h.mux.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	h.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", onlyFiles(static, files)))
	h.mux.HandleFunc("GET /console/api/whoami", h.whoami)
	h.mux.HandleFunc("GET /console/api/stats", h.stats)
	h.mux.HandleFunc("GET /console/api/stats/stream", h.statsStream)
	h.mux.HandleFunc("GET /console/api/config", h.admin(h.config))
	h.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, http.StatusNotFound, fmt.Sprintf("no such console page: %s %s (the console is at %s)", r.Method, r.URL.Path, Prefix))
	})
	return h, nil
}

// ServeHTTP serves the console. Requests must come through package
// httpapi's handler (httpapi.Config.Console), which authenticates them;
// others are refused.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := httpapi.UserFrom(r.Context()); !ok {
		httpapi.WriteError(w, http.StatusUnauthorized, "the console is served through the HTTP API's handler (httpapi.Config.Console), which authenticates its users")
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	h.mux.ServeHTTP(w, r)
}

// onlyFiles serves the files of static and answers every other path
// (a directory, a missing file) with a JSON 404.
func onlyFiles(static fs.FS, files http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fi, err := fs.Stat(static, r.URL.Path); err != nil || !fi.Mode().IsRegular() {
			httpapi.WriteError(w, http.StatusNotFound, "no such asset: "+r.URL.Path)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Whoami is the answer of GET /console/api/whoami.
type Whoami struct {
	User  string `json:"user"`  // "" for an anonymous user
	Admin bool   `json:"admin"` // may see clients, subscriptions and the configuration
}

func (h *Handler) whoami(w http.ResponseWriter, r *http.Request) {
	u, _ := httpapi.UserFrom(r.Context())
	httpapi.WriteJSON(w, http.StatusOK, Whoami{User: u.Info.Username, Admin: u.Admin})
}

// admin lets only administrators (httpapi.Config.Admins) in.
func (h *Handler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u, _ := httpapi.UserFrom(r.Context()); !u.Admin {
			httpapi.WriteError(w, http.StatusForbidden, fmt.Sprintf("user %q is not an administrator (http.admins)", u.Info.Username))
			return
		}
		next(w, r)
	}
}

// ConfigResponse is the answer of GET /console/api/config.
type ConfigResponse struct {
	Settings any `json:"settings"` // null when the owner gave none
}

func (h *Handler) config(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, ConfigResponse{Settings: h.settings})
}
