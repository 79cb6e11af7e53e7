package transport

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// TCP keep-alive settings for accepted and dialed connections. MQTT has its
// own keepalive, but a client may disable it (keepalive 0) and a peer that
// vanished without a FIN must still be noticed: with these values a dead
// peer is detected after about two minutes of silence.
var keepAlive = net.KeepAliveConfig{
	Enable:   true,
	Idle:     60 * time.Second,
	Interval: 15 * time.Second,
	Count:    4,
}

func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{KeepAliveConfig: keepAlive}
}

func dialer() *net.Dialer {
	return &net.Dialer{KeepAliveConfig: keepAlive}
}

// ListenTCP listens on the TCP address addr ("host:port", ":1883",
// "127.0.0.1:0"). Accepted connections have TCP keep-alive on (idle 60s,
// then 4 probes 15s apart) and, as for every TCP connection Go makes,
// TCP_NODELAY set: MQTT packets are small and latency-sensitive, and Tern's
// writers batch their own writes.
//
// The listener is a *net.TCPListener; after Close, Accept returns an error
// wrapping net.ErrClosed.
func ListenTCP(addr string) (net.Listener, error) {
	return listenConfig().Listen(context.Background(), "tcp", addr)
}

// ListenUnix listens on the Unix domain socket at path. A stale socket file
// left by a process that died is removed first; a socket some process still
// listens on, or a path that is not a socket, is an error (finding out
// means connecting to it, so a live listener there sees one connection that
// closes at once). Close removes the socket file.
func ListenUnix(path string) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := listenConfig().Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, err
	}
	// The default for a listener that created its file, said explicitly.
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}

// removeStaleSocket removes path if it is a Unix socket nobody listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("transport: unix socket %q: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("transport: unix socket %q: file exists and is not a socket", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := dialer().DialContext(ctx, "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("transport: unix socket %q: %w", path, errSocketInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not provably stale (a full backlog, a permission problem): keep it.
		return fmt.Errorf("transport: unix socket %q exists: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("transport: removing stale unix socket: %w", err)
	}
	return nil
}

var errSocketInUse = errors.New("another process is listening on it")
