package broker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestHTTPListener: an http listener serves HTTPHandler beside the MQTT
// listener, with the listener's name in the request context; Shutdown
// ends a stream that never finishes on its own, and then the handler is
// gone; a listener of type http without a handler is refused by
// Validate.
func TestHTTPListener(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	ended := make(chan struct{})
	srv := &Server{SysInterval: -1, Logger: testLogger(t),
		Listeners: []Listener{{Type: "tcp", Addr: "127.0.0.1:0"}, {Type: "http", Name: "api", Addr: "127.0.0.1:0"}},
		HTTPHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/stream" {
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				close(started)
				<-r.Context().Done() // ends when the server stops
				close(ended)
				return
			}
			io.WriteString(w, HTTPListener(r.Context()))
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs %v: %v", addrs, <-errc)
	}
	base := "http://" + addrs[1].String()
	resp, err := http.Get(base + "/name")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "api" {
		t.Fatalf("listener name %q, want api", b)
	}
	if err := srv.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}
	sresp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("Shutdown returned before the stream's handler")
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe: %v", err)
	}

	bad := &Server{Listeners: []Listener{{Type: "http", Addr: "127.0.0.1:0"}}}
	if err := bad.Validate(); err == nil {
		t.Fatal("an http listener without HTTPHandler is valid")
	}
}
