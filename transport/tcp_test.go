package transport

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTCPListener(t *testing.T) {
	leakCheck(t)
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := acceptAsync(l)
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := waitAccept(t, ch)
	defer server.Close()
	if server.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("server RemoteAddr %v, client LocalAddr %v", server.RemoteAddr(), client.LocalAddr())
	}
	exchange(t, client, server)
	checkClosedAccept(t, l)
}

// unixPath returns a socket path short enough for sun_path (108 bytes),
// which t.TempDir under a long TMPDIR may not be.
func unixPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.sock")
	if len(p) < 100 {
		return p
	}
	dir, err := os.MkdirTemp("/tmp", "tern")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

func TestUnixListener(t *testing.T) {
	leakCheck(t)
	path := unixPath(t)
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket file: %v, %v", fi, err)
	}
	// A second listener on a live socket is refused, and leaves it alone.
	if l2, err := ListenUnix(path); err == nil {
		l2.Close()
		t.Fatal("ListenUnix on a socket in use succeeded")
	} else if !errors.Is(err, errSocketInUse) {
		t.Errorf("ListenUnix on a socket in use: %v", err)
	}
	// Its probe shows up at the live listener as a connection closed at once.
	waitAccept(t, acceptAsync(l)).Close()

	ch := acceptAsync(l)
	client, err := Dial(context.Background(), "unix://"+path, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := waitAccept(t, ch)
	defer server.Close()
	exchange(t, client, server)
	checkClosedAccept(t, l)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
}

func TestUnixStaleSocket(t *testing.T) {
	leakCheck(t)
	path := unixPath(t)
	// A socket file nobody listens on, as a crashed process leaves it.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file missing: %v", err)
	}
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	l.Close()

	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := ListenUnix(path); err == nil {
		l.Close()
		t.Fatal("ListenUnix over a regular file succeeded")
	} else if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("ListenUnix over a regular file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Errorf("the regular file was touched: %q, %v", b, err)
	}
}
