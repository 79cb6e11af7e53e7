package broker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCapture collects a server's log lines, written by slog's JSON
// handler, for tests to decode.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (lc *logCapture) Write(p []byte) (int, error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.buf.Write(p)
}

// logger returns a JSON logger writing to lc at level.
func (lc *logCapture) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(lc, &slog.HandlerOptions{Level: level}))
}

func (lc *logCapture) text() string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.buf.String()
}

// lines decodes every line.
func (lc *logCapture) lines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(lc.text()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the lines with message msg.
func (lc *logCapture) find(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lc.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitFor waits until at least n lines with message msg have been logged
// and returns them.
func (lc *logCapture) waitFor(t testing.TB, msg string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := lc.find(t, msg); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d %q log lines; log:\n%s", n, msg, lc.text())
		}
		time.Sleep(time.Millisecond)
	}
}
