package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTP listeners: the listeners of type "http" and "https" serve
// Server.HTTPHandler (package httpapi: the HTTP API, metrics, health and,
// later, the console) next to the MQTT listeners, opened and closed with
// them. The server tracks every call of the handler, so that Shutdown and
// Close return only once the handler's goroutines are gone, streams
// (Server-Sent Events) and hijacked connections (WebSocket) included:
// net/http's own Shutdown waits for neither. Their request contexts are
// cancelled when the server stops, which a streaming handler must watch.

// httpListenerKey is the context key of the listener an HTTP request came
// through.
type httpListenerKey struct{}

// HTTPListener returns the name of the http listener that accepted the
// request whose context is ctx ("" for a request that did not come
// through one), for ClientInfo.Listener.
func HTTPListener(ctx context.Context) string {
	name, _ := ctx.Value(httpListenerKey{}).(string)
	return name
}

// serveHTTP serves HTTPHandler on l until the server stops.
func (s *Server) serveHTTP(l net.Listener, info Listener) error {
	hs := &http.Server{
		Handler:           s.trackHTTP(s.HTTPHandler),
		ReadHeaderTimeout: s.cfg.connectTimeout,
		IdleTimeout:       2 * time.Minute,
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(s.httpCtx, httpListenerKey{}, info.Name)
		},
		ErrorLog: slog.NewLogLogger(s.cfg.log.With("listener", info.Name).Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.httpServers[hs] = struct{}{}
	s.mu.Unlock()
	err := hs.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || s.isClosed() {
		return ErrServerClosed
	}
	return err
}

// trackHTTP counts the calls of h, refusing those that arrive once the
// server is stopping.
func (s *Server) trackHTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			w.Header().Set("Connection", "close")
			http.Error(w, "the broker is shutting down", http.StatusServiceUnavailable)
			return
		}
		s.httpWG.Add(1)
		s.mu.Unlock()
		defer s.httpWG.Done()
		h.ServeHTTP(w, r)
	})
}

// httpList returns the HTTP servers; call after stop.
func (s *Server) httpList() []*http.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*http.Server, 0, len(s.httpServers))
	for hs := range s.httpServers {
		list = append(list, hs)
	}
	return list
}

// shutdownHTTP closes the HTTP listeners, lets the requests under way
// finish (streams end: their contexts are cancelled) and waits for the
// handler calls, or until ctx ends, when it closes what is left.
func (s *Server) shutdownHTTP(ctx context.Context) error {
	list := s.httpList()
	if len(list) == 0 {
		return nil
	}
	var first error
	for _, hs := range list {
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
			if first == nil {
				first = err
			}
		}
	}
	done := make(chan struct{})
	go func() {
		s.httpWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return first
	case <-ctx.Done():
		s.cfg.log.Warn("HTTP handlers still running after the shutdown deadline; waiting for them", "err", ctx.Err())
		<-done // their contexts are cancelled: they end, even if late
		return ctx.Err()
	}
}

// closeHTTP closes the HTTP listeners and connections at once and waits
// for the handler calls, whose contexts are cancelled.
func (s *Server) closeHTTP() {
	for _, hs := range s.httpList() {
		hs.Close()
	}
	s.httpWG.Wait()
}
