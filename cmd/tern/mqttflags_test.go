package main

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
)

// tlsFront is a TLS listener that accepts only the TLS versions it is
// given and relays each connection to a plain MQTT server, recording the
// version each handshake settled on.
type tlsFront struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	conns    []net.Conn
	closed   bool
	versions []uint16
}

func startTLSFront(t *testing.T, pki *testpki.PKI, minV, maxV uint16, upstream string) *tlsFront {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(pki.CertFile, pki.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minV, MaxVersion: maxV})
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !f.track(c) {
				return
			}
			f.wg.Add(1)
			go f.relay(c.(*tls.Conn), upstream)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		f.closed = true
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *tlsFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns = append(f.conns, c)
	return true
}

func (f *tlsFront) relay(c *tls.Conn, upstream string) {
	defer f.wg.Done()
	defer c.Close()
	c.SetDeadline(time.Now().Add(mqtttest.DefaultTimeout))
	if err := c.Handshake(); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	f.mu.Lock()
	f.versions = append(f.versions, c.ConnectionState().Version)
	f.mu.Unlock()
	up, err := net.DialTimeout("tcp", upstream, mqtttest.DefaultTimeout)
	if err != nil || !f.track(up) {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() { io.Copy(up, c); up.Close(); close(done) }()
	io.Copy(c, up)
	c.Close()
	<-done
}

func (f *tlsFront) port() string { return port(f.ln.Addr().String()) }

// seen returns the TLS versions of the handshakes so far.
func (f *tlsFront) seen() []uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint16(nil), f.versions...)
}

// TestTLSVersionAndCapath: --tls-version is the lowest TLS version, as
// in Mosquitto: tlsv1.3 cannot reach a TLS 1.2-only server, tlsv1.2 and
// tlsv1.1 can, and both reach a TLS 1.3-only one. --capath trusts every
// PEM file of a directory under any name (no hashed names needed; other
// files and subdirectories are skipped); a directory without a
// certificate is an error naming --capath.
func TestTLSVersionAndCapath(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tls12 := startTLSFront(t, pki, tls.VersionTLS12, tls.VersionTLS12, b.Addr)
	tls13 := startTLSFront(t, pki, tls.VersionTLS13, tls.VersionTLS13, b.Addr)
	pub := func(f *tlsFront, args ...string) (int, string) {
		t.Helper()
		code, _, e := runProc(t, tern, append([]string{"pub", "-h", "localhost", "-p", f.port(), "-t", "tls", "-m", "x", "-q", "1"}, args...)...)
		return code, e
	}
	ca := []string{"--cafile", pki.CAFile}
	for _, tc := range []struct {
		front   *tlsFront
		version string
		ok      bool
		want    uint16
	}{
		{tls12, "tlsv1.3", false, 0},
		{tls12, "tlsv1.2", true, tls.VersionTLS12},
		{tls12, "tlsv1.1", true, tls.VersionTLS12},
		{tls12, "", true, tls.VersionTLS12},
		{tls13, "tlsv1.3", true, tls.VersionTLS13},
		{tls13, "tlsv1.2", true, tls.VersionTLS13},
	} {
		args := ca
		if tc.version != "" {
			args = append([]string{"--tls-version", tc.version}, ca...)
		}
		before := len(tc.front.seen())
		code, e := pub(tc.front, args...)
		if tc.ok != (code == 0) {
			t.Errorf("--tls-version %q against %v: exit %d %s", tc.version, tc.front.ln.Addr(), code, e)
			continue
		}
		if !tc.ok {
			if !strings.Contains(strings.ToLower(e), "tls") && !strings.Contains(e, "version") {
				t.Errorf("--tls-version %s refused without saying why: %s", tc.version, e)
			}
			continue
		}
		if got := tc.front.seen(); len(got) != before+1 || got[before] != tc.want {
			t.Errorf("--tls-version %q: handshakes %v, want one more of %x", tc.version, got, tc.want)
		}
	}

	// --capath: the CA under a plain name, beside a file that is not a
	// certificate and a subdirectory.
	capath := filepath.Join(dir, "cas")
	if err := os.MkdirAll(filepath.Join(capath, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"my-ca.pem": string(pem), "README": "not a certificate\n", "sub/other.pem": "junk"} {
		if err := os.WriteFile(filepath.Join(capath, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, e := pub(tls13, "--capath", capath); code != 0 {
		t.Errorf("--capath %s: exit %d %s", capath, code, e)
	}
	// Another CA only: the server's certificate is unknown.
	other, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherDir := filepath.Join(dir, "other")
	os.Mkdir(otherDir, 0o755)
	if err := os.Symlink(other.CAFile, filepath.Join(otherDir, "1a2b3c4d.0")); err != nil {
		t.Fatal(err)
	}
	if code, e := pub(tls13, "--capath", otherDir); code != 1 || !strings.Contains(e, "certificate") {
		t.Errorf("--capath with another CA: exit %d %s", code, e)
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if code, e := pub(tls13, "--capath", empty); code == 0 || !strings.Contains(e, "--capath") {
		t.Errorf("--capath without a certificate: exit %d %s", code, e)
	}
}

// TestHTTPProxyFlag: --proxy http://host:port takes pub and sub through
// an HTTP CONNECT proxy to the broker.
func TestHTTPProxyFlag(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	p := mqtttest.StartHTTPProxy(t)
	conn := []string{"-h", b.Host, "-p", b.Port, "--proxy", p.URL}
	if code, _, e := runProc(t, tern, append(append([]string{"pub"}, conn...), "-t", "via/http", "-r", "-q", "1", "-m", "proxied")...); code != 0 {
		t.Fatalf("pub --proxy: exit %d %s", code, e)
	}
	if code, out, e := runProc(t, tern, append(append([]string{"sub"}, conn...), "-t", "via/http", "-C", "1", "-W", "20")...); code != 0 || out != "proxied\n" {
		t.Errorf("sub --proxy: exit %d %q %s", code, out, e)
	}
	if got := p.Targets(); len(got) != 2 || got[0] != b.Addr || got[1] != b.Addr {
		t.Errorf("the proxy was asked for %v, want %s twice", got, b.Addr)
	}
	// Nothing listening behind the proxy: exit 1, as a refused connection.
	if code, _, e := runProc(t, tern, "pub", "-h", "127.0.0.1", "-p", port(mqtttest.FreeAddr(t)), "--proxy", p.URL, "-t", "a", "-m", "b"); code != 1 {
		t.Errorf("proxy to nowhere: exit %d %s", code, e)
	}
}

// TestNoLocalAndRetainHandling asserts the effect of --no-local and
// --retain-handling on a Tern broker.
func TestNoLocalAndRetainHandling(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	conn := []string{"-h", b.Host, "-p", b.Port, "-V", "5"}
	run := func(tool string, args ...string) (int, string) {
		t.Helper()
		code, out, e := runProc(t, tern, append(append([]string{tool}, conn...), args...)...)
		if code != 0 && code != exitTimeout {
			t.Fatalf("%s %q: exit %d %s", tool, args, code, e)
		}
		return code, out
	}
	// --no-local: --remove-retained clears the retained message it
	// receives with an empty PUBLISH from its own connection; without
	// --no-local that message comes back and is printed, with it not.
	for _, noLocal := range []bool{false, true} {
		run("pub", "-t", "nl/a", "-r", "-q", "1", "-m", "v")
		args := []string{"-t", "nl/#", "--remove-retained", "-F", "%t:%p:%r", "-W", "2"}
		want := "nl/a:v:1\nnl/a::0\n"
		if noLocal {
			args = append(args, "--no-local")
			want = "nl/a:v:1\n"
		}
		if _, out := run("sub", args...); out != want {
			t.Errorf("sub --no-local=%v printed %q, want %q", noLocal, out, want)
		}
	}
	// --retain-handling: 2 never sends retained messages; 1 only to a new
	// subscription (not when a kept session already has it); 0 always.
	run("pub", "-t", "rh/a", "-r", "-q", "1", "-m", "kept")
	sub := func(rh string, session ...string) string {
		t.Helper()
		_, out := run("sub", append([]string{"-t", "rh/#", "-q", "1", "--retain-handling", rh, "-W", "1"}, session...)...)
		return out
	}
	if out := sub("2"); out != "" {
		t.Errorf("--retain-handling 2 printed %q", out)
	}
	if out := sub("0"); out != "kept\n" {
		t.Errorf("--retain-handling 0 printed %q", out)
	}
	for _, tc := range []struct{ rh, again string }{{"1", ""}, {"0", "kept\n"}} {
		session := []string{"-c", "-i", "rh-" + tc.rh, "-x", "60"}
		if out := sub(tc.rh, session...); out != "kept\n" {
			t.Errorf("--retain-handling %s, new subscription: printed %q", tc.rh, out)
		}
		if out := sub(tc.rh, session...); out != tc.again {
			t.Errorf("--retain-handling %s, subscription kept in the session: printed %q, want %q", tc.rh, out, tc.again)
		}
	}
}
