package mqtttest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
	"github.com/ternmq/tern/transport"
)

// Proxy is a running Tern MQTT proxy started by StartProxy.
type Proxy struct {
	// Server is the running proxy; the test must not shut it down itself.
	Server *proxy.Server
	// Addr is where clients connect ("127.0.0.1:port", or the listener's
	// address); URL is the URL to give clients.
	Addr, URL string
}

// StartProxy serves srv on l, or on a free 127.0.0.1 TCP port when l is
// nil, until the test ends, then shuts it down and fails the test if its
// connections do not end within 5 seconds. If srv.Logger is nil it logs
// to a buffer printed when the test fails (or to standard error, see
// LogEnv).
func StartProxy(t testing.TB, srv *proxy.Server, l net.Listener) *Proxy {
	t.Helper()
	if srv.Logger == nil {
		if os.Getenv(LogEnv) != "" {
			srv.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			buf := &logBuffer{}
			srv.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("proxy log:\n%s", buf.String())
				}
			})
		}
	}
	if err := srv.Validate(); err != nil {
		t.Fatalf("mqtttest: StartProxy: %v", err)
	}
	if l == nil {
		var err error
		if l, err = transport.ListenTCP("127.0.0.1:0"); err != nil {
			t.Fatalf("mqtttest: StartProxy: %v", err)
		}
	}
	p := &Proxy{Server: srv, Addr: l.Addr().String(), URL: "tcp://" + l.Addr().String()}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("mqtttest: proxy Shutdown: %v (%d connections left)", err, srv.Conns())
		}
		if err := <-errc; !errors.Is(err, proxy.ErrServerClosed) {
			t.Errorf("mqtttest: proxy Serve returned %v, want proxy.ErrServerClosed", err)
		}
	})
	return p
}

// Tap is a TCP relay that decodes, without changing them, the MQTT
// packets it relays in each direction, started by StartTap: put it
// between a proxy and its upstream to see exactly what the upstream was
// sent.
type Tap struct {
	// Addr is where to connect; URL is "tcp://" + Addr.
	Addr, URL string

	mu      sync.Mutex
	packets [2][]packet.Packet // by Direction
	errs    []error
}

// StartTap relays every connection it accepts to target ("host:port")
// until the test ends, decoding both directions.
func StartTap(t testing.TB, target string) *Tap {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &Tap{Addr: l.Addr().String(), URL: "tcp://" + l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", target, DefaultTimeout)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			ver := make(chan packet.Version, 1)
			wg.Add(2)
			go func() { defer wg.Done(); tp.relay(c, u, ClientToServer, ver) }()
			go func() { defer wg.Done(); tp.relay(u, c, ServerToClient, ver) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return tp
}

// relay copies src to dst and decodes what passes. The client→server
// decoder learns the version from the CONNECT and hands it to the other
// direction through ver.
func (tp *Tap) relay(src, dst net.Conn, d Direction, ver chan packet.Version) {
	defer dst.Close()
	defer src.Close()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := packet.NewReader(pr)
		if d == ServerToClient {
			select {
			case v := <-ver:
				r.Version = v
				ver <- v
			case <-time.After(DefaultTimeout):
				pr.CloseWithError(errors.New("no CONNECT seen"))
				return
			}
		}
		for {
			p, err := r.ReadPacket()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.ErrUnexpectedEOF) {
					tp.mu.Lock()
					tp.errs = append(tp.errs, err)
					tp.mu.Unlock()
				}
				pr.CloseWithError(err)
				return
			}
			if c, ok := p.(*packet.Connect); ok && d == ClientToServer {
				select {
				case ver <- c.Version:
				default:
				}
			}
			tp.mu.Lock()
			tp.packets[d] = append(tp.packets[d], p)
			tp.mu.Unlock()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
			pw.Write(buf[:n]) // fails once the decoder gave up; the relay goes on
		}
		if err != nil {
			break
		}
	}
	pw.Close()
	<-done
}

// Packets returns the packets relayed so far in direction d.
func (tp *Tap) Packets(d Direction) []packet.Packet {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]packet.Packet(nil), tp.packets[d]...)
}

// Errors returns the decoding errors seen: a malformed packet relayed.
func (tp *Tap) Errors() []error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]error(nil), tp.errs...)
}
