package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binDir holds the tern binary that the black-box tests run, built once
// per test run by ternBinary.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tern-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// tern broker is durable by default: its default data directory is
	// under XDG_STATE_HOME, here one of the test's, never the user's.
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	os.Unsetenv("STATE_DIRECTORY")
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// ternBinary builds tern once and returns its path; in -short mode the
// tests that need it skip.
func ternBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the tern binary")
	}
	bin := filepath.Join(binDir, "tern")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// runTern runs tern with args in dir ("" for the test's directory) to
// its end and returns its stdout, stderr and exit code.
func runTern(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(ternBinary(t), args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// writeFile writes content to name in a new temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	return writeIn(t, t.TempDir(), name, content)
}

// writeIn writes content to name in dir.
func writeIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// brokerProc is a running tern broker.
type brokerProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	more chan struct{} // signalled on every write
	done chan error    // the result of Wait, put back by whoever reads it
	// stopped is set by stop, on the test's goroutine.
	stopped bool
}

func (b *brokerProc) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.logs.Write(p)
	b.mu.Unlock()
	select {
	case b.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

// String returns the logs so far.
func (b *brokerProc) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

// startBroker runs tern broker with args in dir ("" for the test's
// directory) and waits for its first listener; the test's cleanup stops it.
func startBroker(t *testing.T, dir string, args ...string) *brokerProc {
	t.Helper()
	b := launchBroker(t, dir, args...)
	b.waitLog(`msg=listening `)
	return b
}

// launchBroker runs tern broker as startBroker does, without waiting.
func launchBroker(t *testing.T, dir string, args ...string) *brokerProc {
	t.Helper()
	b := &brokerProc{t: t, more: make(chan struct{}, 1), done: make(chan error, 1)}
	b.cmd = exec.Command(ternBinary(t), append([]string{"broker"}, args...)...)
	b.cmd.Dir = dir
	b.cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir()) // a data directory of its own
	b.cmd.Stderr = b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(b.stop)
	return b
}

// addr is the address of the first listener, from its log line.
func (b *brokerProc) addr() string {
	b.t.Helper()
	return b.waitLog(`msg=listening .*addr=(\S+)`)[1]
}

// waitLog waits up to 30 seconds for a log line matching the regular
// expression and returns its submatches.
func (b *brokerProc) waitLog(expr string) []string {
	b.t.Helper()
	re := regexp.MustCompile(expr)
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		select {
		case <-b.more:
		case err := <-b.done:
			b.done <- err
			if m := re.FindStringSubmatch(b.String()); m != nil {
				return m
			}
			b.t.Fatalf("tern broker exited (%v) before logging %q:\n%s", err, expr, b)
		case <-deadline.C:
			b.t.Fatalf("no log line %q in 30s:\n%s", expr, b)
		}
	}
}

// signal sends sig to the broker.
func (b *brokerProc) signal(sig os.Signal) {
	b.t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatal(err)
	}
}

// stop sends SIGTERM and waits for a clean exit (once).
func (b *brokerProc) stop() {
	b.t.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	select {
	case err := <-b.done: // exited already
		b.done <- err
		return
	default:
	}
	b.signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		b.done <- err
		if err != nil {
			b.t.Errorf("tern broker exited with %v\n%s", err, b)
		}
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
		b.t.Errorf("tern broker did not stop on SIGTERM\n%s", b)
	}
}
