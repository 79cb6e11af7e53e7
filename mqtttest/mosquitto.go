package mqtttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/broker/auth"
)

// NeedBinary returns the path of the program name, looked up in PATH and
// then in /usr/sbin and /sbin (where Debian puts daemons such as
// mosquitto, outside a normal user's PATH). If it is not installed the
// test is skipped with a message naming the Debian package to install:
//
//	mqtttest.NeedBinary(t, "mosquitto_sub", "mosquitto-clients")
func NeedBinary(t testing.TB, name, debPackage string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	t.Skipf("%s not installed: apt-get install %s", name, debPackage)
	return ""
}

// MosquittoOptions configures StartMosquitto. The zero value is a
// Mosquitto that lets every client in, on one plain TCP listener.
type MosquittoOptions struct {
	// Listener holds extra lines for the test's listener section, which
	// follows its "listener <port> 127.0.0.1" line: "max_connections 3",
	// say.
	Listener []string
	// Config holds extra lines for the end of mosquitto.conf: global
	// options such as "max_inflight_messages 1" or "max_keepalive 10".
	Config []string
	// Users makes a password file holding these users (name → password),
	// with Mosquitto 2.0's PBKDF2 hashes, and refuses clients without a
	// user name unless AllowAnonymous.
	Users map[string]string
	// PasswordFile is an existing password file to use instead of Users.
	PasswordFile string
	// AllowAnonymous keeps clients without a user name allowed along with
	// Users or PasswordFile. Without either, every client is allowed.
	AllowAnonymous bool
	// StartTimeout bounds the wait for Mosquitto to accept connections.
	// Default 15s.
	StartTimeout time.Duration
}

// Mosquitto is a running Mosquitto broker started by StartMosquitto.
type Mosquitto struct {
	// Addr is its address, "127.0.0.1:port"; Host and Port are its parts.
	Addr, Host, Port string
	// URL is "tcp://" + Addr.
	URL string
	// ConfigFile and LogFile are the generated mosquitto.conf and the log
	// Mosquitto writes (log_type all), both in a t.TempDir.
	ConfigFile, LogFile string

	t       testing.TB
	path    string
	opts    MosquittoOptions
	mu      sync.Mutex // guards proc
	proc    *mosquittoProc
	outputs []*logBuffer // standard output and error of every process started
}

// mosquittoProc is one run of the mosquitto process.
type mosquittoProc struct {
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited closes
}

// StartMosquitto runs Debian's mosquitto broker (/usr/sbin/mosquitto or
// on PATH) on a free 127.0.0.1 port, in the foreground, with a generated
// configuration: the listener, persistence off, anonymous clients allowed
// unless opts say otherwise, everything logged to a file in a t.TempDir.
// It returns once the port accepts connections, and stops Mosquitto when
// the test ends, printing its log if the test failed. It skips the test
// if mosquitto is not installed.
func StartMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	path := NeedBinary(t, "mosquitto", "mosquitto")
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Second
	}
	dir := t.TempDir()
	m := &Mosquitto{t: t, path: path, opts: opts,
		ConfigFile: filepath.Join(dir, "mosquitto.conf"),
		LogFile:    filepath.Join(dir, "mosquitto.log")}
	pwFile := opts.PasswordFile
	if len(opts.Users) > 0 {
		if pwFile != "" {
			t.Fatalf("mqtttest: MosquittoOptions: set Users or PasswordFile, not both")
		}
		pwFile = filepath.Join(dir, "passwords")
		if err := writeMosquittoPasswords(pwFile, opts.Users); err != nil {
			t.Fatalf("mqtttest: MosquittoOptions.Users: %v", err)
		}
	}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Logf("mqtttest: mosquitto's log (%s):\n%s", m.LogFile, m.Log())
		}
	})
	// The port is free when FreePort looks, but another process may take
	// it before Mosquitto binds it: then try another.
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		if err := m.writeConfig(port, pwFile); err != nil {
			t.Fatalf("mqtttest: writing %s: %v", m.ConfigFile, err)
		}
		out, err := m.start()
		if err == nil {
			return m
		}
		if attempt < 3 && strings.Contains(out.String(), "Address already in use") {
			continue
		}
		t.Fatalf("mqtttest: StartMosquitto: %v\nmosquitto's log:\n%s", err, m.Log())
	}
}

func writeMosquittoPasswords(file string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for name := range users {
		if err := auth.CheckUsername(name); err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		// The fewest iterations HashPassword makes: a test needs no strength.
		hash, err := auth.HashPassword(users[name], auth.HashOptions{PBKDF2: true, Cost: auth.MinPBKDF2Iterations})
		if err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", name, hash)
	}
	return os.WriteFile(file, []byte(b.String()), 0o600)
}

func (m *Mosquitto) writeConfig(port int, pwFile string) error {
	m.Host, m.Port = "127.0.0.1", strconv.Itoa(port)
	m.Addr = net.JoinHostPort(m.Host, m.Port)
	m.URL = "tcp://" + m.Addr
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	line("# generated by mqtttest.StartMosquitto")
	line("per_listener_settings false")
	line("persistence false")
	line("log_dest file " + m.LogFile)
	line("log_dest stderr")
	line("log_type all")
	line("connection_messages true")
	if os.Geteuid() == 0 {
		// Started as root, mosquitto would switch to the mosquitto user,
		// who can read neither the 0600 password file nor the test's
		// 0700 temporary directory.
		line("user root")
	}
	switch {
	case pwFile == "":
		line("allow_anonymous true")
	default:
		line("password_file " + pwFile)
		line("allow_anonymous " + strconv.FormatBool(m.opts.AllowAnonymous))
	}
	line(fmt.Sprintf("listener %d 127.0.0.1", port))
	for _, l := range m.opts.Listener {
		line(l)
	}
	for _, l := range m.opts.Config {
		line(l)
	}
	return os.WriteFile(m.ConfigFile, []byte(b.String()), 0o600)
}

// start runs mosquitto and waits until it accepts a connection, it exits,
// or StartTimeout passes.
// It returns the process's output (with log_dest stderr, its log).
func (m *Mosquitto) start() (*logBuffer, error) {
	p := &mosquittoProc{out: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(m.path, "-c", m.ConfigFile)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return p.out, fmt.Errorf("starting %s: %w", m.path, err)
	}
	m.mu.Lock()
	m.proc = p
	m.outputs = append(m.outputs, p.out)
	m.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", m.Addr)
		if err == nil {
			c.Close()
			return p.out, nil
		}
		select {
		case <-p.exited:
			return p.out, fmt.Errorf("mosquitto exited before listening on %s: %v", m.Addr, p.err)
		case <-ctx.Done():
			m.Kill()
			return p.out, fmt.Errorf("mosquitto does not accept connections on %s after %v: %v", m.Addr, m.opts.StartTimeout, err)
		case <-tick.C:
		}
	}
}

// Kill stops Mosquitto now (SIGTERM, then SIGKILL if it lingers for more
// than DefaultTimeout) and waits for the process to end. Clients see the
// connection close. It does nothing if Mosquitto is not running.
func (m *Mosquitto) Kill() {
	m.mu.Lock()
	p := m.proc
	m.proc = nil
	m.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(DefaultTimeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Restart stops Mosquitto, if it runs, and starts it again on the same
// port with the same configuration (persistence is off: sessions and
// retained messages are gone). It fails the test if Mosquitto does not
// come back, for instance because another process took the port.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Kill()
	if _, err := m.start(); err != nil {
		m.t.Fatalf("mqtttest: Mosquitto.Restart: %v\nmosquitto's log:\n%s", err, m.Log())
	}
}

// Log returns what Mosquitto has logged: its log file, or, if it could not
// write one, its standard output and error.
func (m *Mosquitto) Log() string {
	if b, err := os.ReadFile(m.LogFile); err == nil && len(b) > 0 {
		return string(b)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(reading %s: %v)", m.LogFile, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, o := range m.outputs {
		b.WriteString(o.String())
	}
	return b.String()
}
