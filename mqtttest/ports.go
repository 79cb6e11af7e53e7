package mqtttest

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago:
// it listens on port 0 and closes the listener. Another process may take
// the port before the caller does; a helper that starts a server on it
// should retry on "address already in use", as StartMosquitto does. To
// serve in-process, listen on "127.0.0.1:0" instead.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: no free loopback port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("mqtttest: closing the probe listener: %v", err)
	}
	return port
}

// FreeAddr returns "127.0.0.1:port" for a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
