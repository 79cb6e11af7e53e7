package broker

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// waitReady waits on srv.Ready, failing the test if it stays open.
func waitReady(t *testing.T, srv *Server) {
	t.Helper()
	select {
	case <-srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready not closed")
	}
}

// TestReadyListenAndServe starts ListenAndServe on two port-0 listeners,
// waits on Ready and connects to both at once: no sleeping, no retry.
func TestReadyListenAndServe(t *testing.T) {
	srv := &Server{SysInterval: -1, Logger: testLogger(t), Listeners: []Listener{
		{Name: "one", Addr: "127.0.0.1:0"},
		{Name: "two", Addr: "127.0.0.1:0"},
	}}
	select {
	case <-srv.Ready():
		t.Fatal("Ready closed before ListenAndServe")
	default:
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	waitReady(t, srv)
	addrs := srv.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs = %v, want 2", addrs)
	}
	for i, a := range addrs {
		if a.(*net.TCPAddr).Port == 0 {
			t.Fatalf("Addrs[%d] = %v: no port", i, a)
		}
		c := dialRaw(t, a.String(), packet.V311)
		c.connect(&packet.Connect{ClientID: "c" + string(rune('0'+i)), CleanStart: true})
		c.send(&packet.Pingreq{})
		if _, ok := c.recv().(*packet.Pingresp); !ok {
			t.Fatal("want PINGRESP")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe = %v", err)
	}
	checkNoConnGoroutines(t, srv)
}

// TestReadyNeverHangs: Ready is closed whenever the server will not
// serve, so that a program waiting on it always wakes up.
func TestReadyNeverHangs(t *testing.T) {
	t.Run("listener fails", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		srv := &Server{SysInterval: -1, Logger: testLogger(t), Listeners: []Listener{
			{Name: "ok", Addr: "127.0.0.1:0"},
			{Name: "taken", Addr: busy.Addr().String()},
		}}
		errc := make(chan error, 1)
		go func() { errc <- srv.ListenAndServe() }()
		waitReady(t, srv)
		if a := srv.Addrs(); a != nil {
			t.Errorf("Addrs = %v after a failed ListenAndServe, want nil", a)
		}
		if err := <-errc; err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("ListenAndServe = %v, want the bind error", err)
		}
		srv.Close()
	})
	t.Run("invalid configuration", func(t *testing.T) {
		srv := &Server{MaxInflight: -1}
		waitReady(t, srv)
		if err := srv.ListenAndServe(); err == nil {
			t.Fatal("ListenAndServe accepted MaxInflight -1")
		}
	})
	t.Run("shut down before serving", func(t *testing.T) {
		srv := &Server{SysInterval: -1, Logger: testLogger(t)}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, srv)
	})
	t.Run("Serve", func(t *testing.T) {
		srv := &Server{SysInterval: -1}
		addr := startServer(t, srv)
		waitReady(t, srv)
		c := dialRaw(t, addr, packet.V5)
		c.connect(&packet.Connect{ClientID: "s", CleanStart: true})
	})
}
