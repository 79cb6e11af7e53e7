// Package transport carries MQTT bytes: listeners that give the broker
// plain net.Conns, whatever is underneath, and a dialer for clients and
// tools. It knows nothing of MQTT packets and imports no other Tern package.
//
// # Listeners
//
// Every listener is a net.Listener whose Accept returns a net.Conn with
// working deadlines (the broker enforces keepalive through them), and whose
// Close makes Accept return an error wrapping net.ErrClosed.
//
//   - [ListenTCP]: TCP with keep-alive probes and TCP_NODELAY.
//   - [ListenTLS]: TLS over the same TCP listener, configured by a
//     *tls.Config, which [TLSConfig.Build] makes from file names
//     (certificate, key, client CAs, client authentication mode, minimum
//     version); [TLSConfig.Validate] reports a bad field by its
//     configuration-file name.
//   - [ListenWebSocket]: MQTT over WebSocket (ws, or wss with
//     [WSOptions].TLS) on one HTTP path, default /mqtt. The handshake must
//     offer the subprotocol "mqtt" (or "mqttv3.1", which older MQTT.js and
//     Paho releases send), which the server selects; other handshakes are
//     refused with 400. Messages are binary; the connection is a byte
//     stream, so MQTT packets and WebSocket messages need not align
//     (MQTT 3.1.1 and 5.0, chapter 6). Close also closes the upgraded
//     connections, which http.Server would not.
//   - [ListenUnix]: a Unix domain socket; a stale socket file is removed
//     before listening and the file is removed on Close.
//   - [MemListener]: no sockets at all, for tests. [MemListener.Dial]
//     returns the client end of a buffered in-memory connection whose
//     server end Accept returns. Unlike net.Pipe, each direction buffers
//     64 KiB, so a writer does not wait for the reader; deadlines and
//     Close behave as on TCP (it passes golang.org/x/net/nettest.TestConn).
//
// For TLS connections, and secure WebSocket connections, [ConnectionState]
// returns the TLS state and [PeerCommonName] the common name of the
// verified client certificate, completing the handshake first if needed:
// the broker can take it as the username of certificate-authenticated
// clients.
//
// # Dialing
//
// [Dial] connects to a URL: tcp:// or mqtt:// (port 1883), ssl://, tls://
// or mqtts:// (8883), ws:// (80) and wss:// (443) with path default /mqtt,
// and unix:///path. [DialOptions] adds a client TLS configuration, extra
// WebSocket handshake headers, and a proxy for every TCP-based scheme:
// socks5://[user:pass@]host:port (via golang.org/x/net/proxy) or
// http://[user:pass@]host:port (HTTP CONNECT).
//
// # WebSocket deadlines
//
// WebSocket connections come from github.com/coder/websocket's net.Conn
// adapter. One difference from TCP follows from it: a deadline that expires
// while a Read or Write is blocked closes the whole WebSocket connection,
// not just that call. The call still returns a timeout error (errors.Is
// os.ErrDeadlineExceeded, net.Error.Timeout). A deadline that passes with
// no call in progress only makes later calls fail until it is reset. Close
// runs the WebSocket close handshake but gives the peer at most 2 seconds
// to answer before closing the network connection.
package transport
