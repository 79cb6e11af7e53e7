package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsDial dials l's WebSocket endpoint with the library's client, offering
// protos, and returns the client connection and the handshake response.
func wsDial(t *testing.T, url string, tlsCfg *tls.Config, protos ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: protos,
	})
}

func listenWS(t *testing.T, opts WSOptions) net.Listener {
	t.Helper()
	l, err := ListenWebSocket("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWebSocketEcho(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{})
	ch := acceptAsync(l)
	ws, resp, err := wsDial(t, "ws://"+l.Addr().String()+"/mqtt", nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "mqtt" {
		t.Errorf("selected subprotocol %q, want mqtt", got)
	}
	server := waitAccept(t, ch)
	client := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	exchange(t, client, server)

	// [v3 MQTT-6.0.0-2] [v5 MQTT-6.0.0-2] packets and messages need not align: send three
	// "packets" as two messages, the second packet split across them.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("AAAABB")); err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte("BBCCCC")); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(testTimeout))
	got := make([]byte, 12)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != "AAAABBBBCCCC" {
		t.Fatalf("stream across messages: %q, %v", got, err)
	}
	// Every server write is one binary message. [v3 MQTT-6.0.0-1] [v5 MQTT-6.0.0-1]
	server.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := server.Write([]byte("pkt")); err != nil {
		t.Fatal(err)
	}
	typ, msg, err := ws.Read(ctx)
	if err != nil || typ != websocket.MessageBinary || string(msg) != "pkt" {
		t.Fatalf("server message: %v %q %v", typ, msg, err)
	}

	// Closing the server end shows as EOF to the client.
	rc := readAsync(client, 1)
	if err := server.Close(); err != nil {
		t.Errorf("server Close: %v", err)
	}
	if err := <-rc; err != io.EOF {
		t.Errorf("client Read after server Close: got %v, want io.EOF", err)
	}
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("server Read after Close: got %v, want net.ErrClosed", err)
	}
	client.Close()
	checkClosedAccept(t, l)
}

func TestWebSocketRemoteAddr(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{Path: "/ws"})
	defer l.Close()
	ch := acceptAsync(l)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	client, err := Dial(ctx, "ws://"+l.Addr().String()+"/ws", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	server := waitAccept(t, ch)
	defer closeAll(client, server)
	ra, ok := server.RemoteAddr().(*net.TCPAddr)
	if !ok || !ra.IP.Equal(net.IPv4(127, 0, 0, 1)) || ra.Port == 0 {
		t.Errorf("server RemoteAddr = %#v, want 127.0.0.1:port", server.RemoteAddr())
	}
	if server.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("server RemoteAddr %v, client LocalAddr %v", server.RemoteAddr(), client.LocalAddr())
	}
	if server.LocalAddr().String() != l.Addr().String() || client.RemoteAddr().String() != l.Addr().String() {
		t.Errorf("server LocalAddr %v, client RemoteAddr %v, listener %v",
			server.LocalAddr(), client.RemoteAddr(), l.Addr())
	}
	exchange(t, client, server)
}

func TestWebSocketSubprotocols(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{})
	defer l.Close()
	url := "ws://" + l.Addr().String() + "/mqtt"

	// No "mqtt" offered: refused with 400 before the upgrade.
	for _, protos := range [][]string{nil, {"chat"}} {
		_, resp, err := wsDial(t, url, nil, protos...)
		if err == nil {
			t.Fatalf("offering %q: handshake succeeded", protos)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("offering %q: response %v, want 400", protos, resp)
		}
	}
	// The server's preference wins, in the client's spelling; mqttv3.1
	// is accepted for old clients.
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"chat", "mqtt"}, "mqtt"},
		{[]string{"mqttv3.1", "mqtt"}, "mqtt"},
		{[]string{"mqttv3.1"}, "mqttv3.1"},
		{[]string{"MQTT"}, "MQTT"},
	} {
		ch := acceptAsync(l)
		ws, resp, err := wsDial(t, url, nil, tc.offer...)
		if err != nil {
			t.Fatalf("offering %q: %v", tc.offer, err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.want {
			t.Errorf("offering %q: selected %q, want %q", tc.offer, got, tc.want)
		}
		server := waitAccept(t, ch)
		ws.CloseNow()
		server.Close()
	}
}

func TestWebSocketHTTPErrors(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") != "http://evil.example" },
	})
	defer l.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: testTimeout}
	base := "http://" + l.Addr().String()

	get := func(path string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/other", nil); code != http.StatusNotFound {
		t.Errorf("wrong path: %d, want 404", code)
	}
	if code := get("/mqtt", nil); code != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d, want 426", code)
	}
	upgrade := map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "mqtt",
		"Origin": "http://evil.example",
	}
	if code := get("/mqtt", upgrade); code != http.StatusForbidden {
		t.Errorf("refused origin: %d, want 403", code)
	}
	if _, _, err := wsDial(t, "ws://"+l.Addr().String()+"/other", nil, "mqtt"); err == nil {
		t.Error("WebSocket handshake on the wrong path succeeded")
	}
}

func TestWebSocketCloseClosesConns(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{})
	var clients, servers []net.Conn
	for range 3 {
		ch := acceptAsync(l)
		ws, _, err := wsDial(t, "ws://"+l.Addr().String()+"/mqtt", nil, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, websocket.NetConn(context.Background(), ws, websocket.MessageBinary))
		servers = append(servers, waitAccept(t, ch))
	}
	// One server conn is closed before the listener: it is not closed twice.
	closeAll(servers[2], clients[2])

	// Clients read while the listener closes, as an MQTT client does.
	errc := make(chan error, 2)
	for _, c := range clients[:2] {
		c.SetReadDeadline(time.Now().Add(testTimeout))
		go func() {
			_, err := c.Read(make([]byte, 1))
			errc <- err
		}()
	}
	checkClosedAccept(t, l)
	for range 2 {
		if err := <-errc; err != io.EOF {
			t.Errorf("client Read when the listener closed: got %v, want io.EOF (going away)", err)
		}
	}
	for _, s := range servers[:2] {
		if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("server Write after listener Close: got %v, want net.ErrClosed", err)
		}
	}
	closeAll(clients...)
	// A closed listener refuses connections.
	if _, _, err := wsDial(t, "ws://"+l.Addr().String()+"/mqtt", nil, "mqtt"); err == nil {
		t.Error("handshake after Close succeeded")
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestWebSocketDeadlines(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{})
	defer l.Close()

	pair := func() (client, server net.Conn) {
		ch := acceptAsync(l)
		ws, _, err := wsDial(t, "ws://"+l.Addr().String()+"/mqtt", nil, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), waitAccept(t, ch)
	}

	// A deadline during a blocked Read: a timeout, and (library
	// behaviour) the connection is closed.
	client, server := pair()
	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := server.Read(make([]byte, 1))
	checkTimeout(t, err)
	client.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("client Read succeeded after the server's read deadline closed the connection")
	}
	closeAll(client, server)

	// A deadline moved into the past interrupts a blocked Read.
	client, server = pair()
	server.SetReadDeadline(time.Now().Add(time.Hour))
	rc := readAsync(server, 1)
	server.SetReadDeadline(time.Now().Add(-time.Second))
	checkTimeout(t, <-rc)
	closeAll(client, server)

	// A deadline already past: calls fail at once with a timeout, without
	// harm to the connection, and work again once it is cleared.
	client, server = pair()
	server.SetDeadline(time.Now().Add(-time.Second))
	n, err := server.Write([]byte("x"))
	if n != 0 {
		t.Errorf("Write past the deadline wrote %d bytes", n)
	}
	checkTimeout(t, err)
	_, err = server.Read(make([]byte, 1))
	checkTimeout(t, err)
	server.SetDeadline(time.Time{})
	exchange(t, client, server)
	closeAll(client, server)

	// Calls after Close report net.ErrClosed, not a timeout.
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if err := server.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetDeadline after Close: %v", err)
	}
}

func TestWebSocketTextMessageCloses(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{})
	defer l.Close()
	ch := acceptAsync(l)
	ws, _, err := wsDial(t, "ws://"+l.Addr().String()+"/mqtt", nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	server := waitAccept(t, ch)
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// [v3 MQTT-6.0.0-1] [v5 MQTT-6.0.0-1] a data frame that is not binary closes the connection.
	clientErr := make(chan error, 1)
	go func() {
		_, _, err := ws.Read(ctx)
		clientErr <- err
	}()
	if err := ws.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := server.Read(make([]byte, 5)); err == nil {
		t.Fatal("server read a text message")
	}
	if err := <-clientErr; websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Errorf("client saw %v, want close status 1003", err)
	}
}

func TestWebSocketReadLimit(t *testing.T) {
	leakCheck(t)
	l := listenWS(t, WSOptions{ReadLimit: 16})
	defer l.Close()
	ch := acceptAsync(l)
	ws, _, err := wsDial(t, "ws://"+l.Addr().String()+"/mqtt", nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	server := waitAccept(t, ch)
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	clientErr := make(chan error, 1)
	go func() {
		_, _, err := ws.Read(ctx)
		clientErr <- err
	}()
	ws.Write(ctx, websocket.MessageBinary, bytes.Repeat([]byte("x"), 16))
	ws.Write(ctx, websocket.MessageBinary, bytes.Repeat([]byte("y"), 100))
	server.SetReadDeadline(time.Now().Add(testTimeout))
	got := make([]byte, 16)
	if _, err := io.ReadFull(server, got); err != nil || string(got) != strings.Repeat("x", 16) {
		t.Fatalf("message at the limit: %q, %v", got, err)
	}
	got = make([]byte, 100)
	if n, err := io.ReadFull(server, got); err == nil {
		t.Errorf("a message over the limit was read (%d bytes)", n)
	}
	if err := <-clientErr; websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("client saw %v, want close status 1009", err)
	}
}

func TestWebSocketSecure(t *testing.T) {
	leakCheck(t)
	p := newPKI(t)
	l := listenWS(t, WSOptions{TLS: p.serverTLS(t, ClientAuthRequest)})
	url := "wss://" + l.Addr().String() + "/mqtt"

	ch := acceptAsync(l)
	ws, resp, err := wsDial(t, url, p.clientTLS(p.clientCert), "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("client TLS state: %+v", resp.TLS)
	}
	server := waitAccept(t, ch)
	client := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	exchange(t, client, server)
	cs, ok := ConnectionState(server)
	if !ok || !cs.HandshakeComplete {
		t.Errorf("ConnectionState of a wss conn: %v, %v", cs, ok)
	}
	if cn, ok := PeerCommonName(server); !ok || cn != "alice" {
		t.Errorf("PeerCommonName = %q, %v; want alice", cn, ok)
	}
	ra, ok := server.RemoteAddr().(*net.TCPAddr)
	if !ok || !ra.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("RemoteAddr of a wss conn: %v", server.RemoteAddr())
	}
	closeAll(client, server)

	// Without a client certificate: connected, but no common name.
	ch = acceptAsync(l)
	ws, _, err = wsDial(t, url, p.clientTLS(), "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	server = waitAccept(t, ch)
	if cn, ok := PeerCommonName(server); ok {
		t.Errorf("PeerCommonName without a client certificate: %q", cn)
	}
	// A plain ws conn is not TLS.
	if _, ok := ConnectionState(&wsConn{}); ok {
		t.Error("ConnectionState of a plain ws conn reported TLS")
	}
	ws.CloseNow()
	server.Close()
	checkClosedAccept(t, l)
}

func TestListenWebSocketOptions(t *testing.T) {
	if _, err := ListenWebSocket("127.0.0.1:0", WSOptions{Path: "mqtt"}); err == nil || !strings.Contains(err.Error(), "path") {
		t.Errorf("relative path: %v", err)
	}
	if _, err := ListenWebSocket("127.0.0.1:0", WSOptions{TLS: &tls.Config{}}); err == nil {
		t.Error("TLS without a certificate accepted")
	}
}
