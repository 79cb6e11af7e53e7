package mqtttest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/transport"
)

// LogEnv is the environment variable that makes StartBroker stream the
// broker's log, at trace level, to standard error instead of keeping it
// for a failure report (as the broker package's own tests do).
const LogEnv = "TERN_TEST_LOG"

// logKeep is how much of a broker's log StartBroker keeps for the report
// of a failed test: the most recent bytes.
const logKeep = 256 << 10

// BrokerConfig configures StartBroker. The zero value runs a default
// broker.Server on TCP only.
type BrokerConfig struct {
	// Server is the broker to run, configured as the test needs, and not
	// yet started. nil means a zero broker.Server. If its Logger is nil it
	// gets one that keeps the log in memory and prints it when the test
	// fails (or streams it to standard error, see LogEnv).
	Server *broker.Server
	// Mem also serves the broker on an in-memory listener, which
	// Broker.DialMem connects to.
	Mem bool
	// ShutdownTimeout bounds the Shutdown at the end of the test, and then
	// the wait for the connection goroutines to exit; past it the test
	// fails. Default 5s.
	ShutdownTimeout time.Duration
}

// Broker is a running in-process broker started by StartBroker.
type Broker struct {
	// Server is the running broker, for Publish, Subscribe, Stats and the
	// like. The test must not shut it down itself.
	Server *broker.Server
	// Addr is its TCP address, "127.0.0.1:port"; Host and Port are its
	// parts.
	Addr, Host, Port string
	// URL is "tcp://" + Addr, for transport.Dial and clients taking URLs.
	URL string

	mem *transport.MemListener
	log *logBuffer
}

// StartBroker runs a Tern broker on a free 127.0.0.1 TCP port until the
// test ends. At the end it shuts the server down (Shutdown, which sends
// MQTT 5 clients DISCONNECT 0x8B), checks that Serve returned
// broker.ErrServerClosed and waits for every connection goroutine of the
// server to exit, failing the test otherwise; the check is exact per
// server, so parallel tests may each run their own. The broker's log is
// printed if the test failed. cfg is optional: at most one may be given.
func StartBroker(t testing.TB, cfg ...BrokerConfig) *Broker {
	t.Helper()
	if len(cfg) > 1 {
		t.Fatalf("mqtttest: StartBroker takes at most one BrokerConfig, got %d: merge them", len(cfg))
	}
	var c BrokerConfig
	if len(cfg) == 1 {
		c = cfg[0]
	}
	srv := c.Server
	if srv == nil {
		srv = &broker.Server{}
	}
	timeout := c.ShutdownTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	b := &Broker{Server: srv}
	if srv.Logger == nil {
		if os.Getenv(LogEnv) != "" {
			srv.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: broker.LevelTrace}))
		} else {
			b.log = &logBuffer{}
			srv.Logger = slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	if err := srv.Validate(); err != nil {
		t.Fatalf("mqtttest: StartBroker: the broker.Server is not valid: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: StartBroker: listening on 127.0.0.1: %v", err)
	}
	b.Addr = l.Addr().String()
	b.Host, b.Port, _ = net.SplitHostPort(b.Addr)
	b.URL = "tcp://" + b.Addr

	listeners := []net.Listener{l}
	if c.Mem {
		b.mem = transport.NewMemListener()
		listeners = append(listeners, b.mem)
	}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errc <- srv.Serve(l) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("mqtttest: broker Shutdown: %v", err)
		}
		for range listeners {
			select {
			case err := <-errc:
				if !errors.Is(err, broker.ErrServerClosed) {
					t.Errorf("mqtttest: broker Serve returned %v, want broker.ErrServerClosed", err)
				}
			case <-ctx.Done():
				t.Errorf("mqtttest: broker Serve did not return within %v of Shutdown", timeout)
			}
		}
		waitNoConnGoroutines(t, srv, timeout)
		if t.Failed() && b.log != nil {
			t.Logf("mqtttest: broker log (last %d KiB at most):\n%s", logKeep>>10, b.log.String())
		}
	})
	return b
}

// DialMem connects to the broker's in-memory listener. It fails unless
// BrokerConfig.Mem was set.
func (b *Broker) DialMem(ctx context.Context) (net.Conn, error) {
	if b.mem == nil {
		return nil, errors.New("mqtttest: Broker.DialMem: the broker has no in-memory listener: set BrokerConfig.Mem")
	}
	return b.mem.Dial(ctx)
}

// Log returns the broker's log so far, or "" if the Server came with its
// own Logger or LogEnv streams it to standard error. It keeps the most
// recent 256 KiB.
func (b *Broker) Log() string {
	if b.log == nil {
		return ""
	}
	return b.log.String()
}

// waitNoConnGoroutines fails t unless every connection goroutine of srv
// exits within timeout. Shutdown returns once the connections are
// finished; their goroutines end a moment later.
func waitNoConnGoroutines(t testing.TB, srv *broker.Server, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := srv.Stats().ConnGoroutines
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("mqtttest: %d connection goroutines of the broker still run %v after Shutdown:\n%s",
				n, timeout, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// logBuffer keeps the most recent logKeep bytes written to it (between
// logKeep and twice that, to copy rarely).
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

var _ io.Writer = (*logBuffer)(nil)

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*logKeep {
		l.buf = append(l.buf[:0:0], l.buf[len(l.buf)-logKeep:]...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf[max(0, len(l.buf)-logKeep):])
}
