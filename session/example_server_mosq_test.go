package session_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader on
// different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runExampleServer runs serveOne on a fresh port and mosquitto_pub with
// args against it (stdin as its input), and returns the server's log,
// the server's error and mosquitto_pub's error and output.
func runExampleServer(t *testing.T, stdin string, args ...string) (log string, srvErr, pubErr error, pubOut string) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Skip("mosquitto_pub not installed: apt-get install mosquitto-clients")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var buf syncBuffer
	done := make(chan error, 1)
	go func() { done <- serveOne(l, map[string]string{"alice": "secret"}, &buf) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	cmd := exec.CommandContext(ctx, "mosquitto_pub", append([]string{"-h", "127.0.0.1", "-p", port}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, pubErr := cmd.CombinedOutput()
	l.Close() // serveOne is past Accept, or fails at it if mosquitto_pub never came
	if ctx.Err() != nil {
		t.Fatalf("mosquitto_pub did not end: %s\nserver log:\n%s", out, buf.String())
	}
	select {
	case srvErr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not end; its log:\n%s", buf.String())
	}
	return buf.String(), srvErr, pubErr, string(out)
}

// TestExampleServerWithMosquittoPub runs the package example's server
// against the real mosquitto_pub: QoS 2 over MQTT 3.1.1 (the brief's
// command line), a stream of QoS 2 messages over MQTT 5 within the
// server's Receive Maximum, and a refused password.
func TestExampleServerWithMosquittoPub(t *testing.T) {
	t.Run("v3.1.1/qos2", func(t *testing.T) {
		log, srvErr, pubErr, out := runExampleServer(t, "",
			"-V", "mqttv311", "-q", "2", "-i", "meter-2", "-u", "alice", "-P", "secret", "-t", "meter/2/kwh", "-m", "42.3")
		if srvErr != nil || pubErr != nil {
			t.Fatalf("server: %v; mosquitto_pub: %v %s\nserver log:\n%s", srvErr, pubErr, out, log)
		}
		want := regexp.MustCompile(`^server: CONNECT client "meter-2", user "alice": accepted
server: message "meter/2/kwh" QoS 2: "42.3"
server: PUBREL \d+: released
server: DISCONNECT
$`)
		if !want.MatchString(log) {
			t.Fatalf("server log:\n%s\nwant it to match\n%s", log, want)
		}
	})

	t.Run("v5/qos2-stream", func(t *testing.T) {
		const n = 50 // more than the Receive Maximum of 10: mosquitto_pub waits for PUBCOMPs
		var lines, want strings.Builder
		for i := range n {
			fmt.Fprintf(&lines, "reading %d\n", i)
			fmt.Fprintf(&want, "server: message \"meter/3/kwh\" QoS 2: \"reading %d\"\n", i)
		}
		log, srvErr, pubErr, out := runExampleServer(t, lines.String(),
			"-V", "mqttv5", "-q", "2", "-i", "meter-3", "-u", "alice", "-P", "secret", "-t", "meter/3/kwh", "-l")
		if srvErr != nil || pubErr != nil {
			t.Fatalf("server: %v; mosquitto_pub: %v %s\nserver log:\n%s", srvErr, pubErr, out, log)
		}
		var got strings.Builder
		released := 0
		for _, line := range strings.Split(log, "\n") {
			switch {
			case strings.HasPrefix(line, "server: message"):
				got.WriteString(line + "\n")
			case strings.HasPrefix(line, "server: PUBREL"):
				released++
			}
		}
		if got.String() != want.String() || released != n {
			t.Fatalf("server log:\n%s\nwant each of the %d messages once, in order, and as many PUBRELs (got %d)", log, n, released)
		}
		if !strings.HasSuffix(log, "server: DISCONNECT\n") {
			t.Fatalf("server log does not end with DISCONNECT:\n%s", log)
		}
	})

	t.Run("refused", func(t *testing.T) {
		log, srvErr, pubErr, out := runExampleServer(t, "",
			"-V", "mqttv311", "-q", "2", "-i", "meter-4", "-u", "alice", "-P", "wrong", "-t", "meter/4/kwh", "-m", "0")
		if srvErr != nil {
			t.Fatalf("server: %v", srvErr)
		}
		if pubErr == nil {
			t.Fatalf("mosquitto_pub succeeded with a wrong password: %s", out)
		}
		if log != "server: CONNECT client \"meter-4\", user \"alice\": refused\n" {
			t.Fatalf("server log:\n%s", log)
		}
		if !strings.Contains(strings.ToLower(out), "bad user name or password") {
			t.Fatalf("mosquitto_pub says %q, want the refusal's reason", out)
		}
	})
}
