package mqtttest

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// RefuserConfig configures StartRefuser. The zero value refuses every
// client as unavailable (MQTT 5 0x88, MQTT 3.1.1 return code 3).
type RefuserConfig struct {
	// Code is the CONNACK reason code MQTT 5 clients get: one a CONNACK
	// may carry, 0x80 or more. 0 means packet.ServerUnavailable (0x88).
	Code packet.ReasonCode
	// V3Code is the return code MQTT 3.1 and 3.1.1 clients get, 1 to 5.
	// 0 means Code.V3Connack(), the closest to Code.
	V3Code packet.ReasonCode
	// ServerReference and ReasonString are sent to MQTT 5 clients as
	// CONNACK properties: a Server Reference goes with 0x9C (Use another
	// server) or 0x9D (Server moved) to redirect the client.
	ServerReference string
	ReasonString    string
}

// Refuser is a fake MQTT server started by StartRefuser.
type Refuser struct {
	// Addr is its address, "127.0.0.1:port"; URL is "tcp://" + Addr.
	Addr, URL string

	code, v3code packet.ReasonCode
	cfg          RefuserConfig
	l            net.Listener
	wg           sync.WaitGroup

	mu       sync.Mutex
	connects []*packet.Connect
	conns    map[net.Conn]struct{}
	closed   bool
}

// StartRefuser runs, until the test ends, a server on a free 127.0.0.1
// port that answers every CONNECT (MQTT 3.1, 3.1.1 or 5) with a refusing
// CONNACK, then closes the connection, for client tests of refusals and
// redirection. A first packet that is not a well-formed CONNECT is
// answered by closing the connection. Connects returns what the clients
// sent.
func StartRefuser(t testing.TB, cfg RefuserConfig) *Refuser {
	t.Helper()
	code, v3 := cfg.Code, cfg.V3Code
	if code == 0 {
		code = packet.ServerUnavailable
	}
	if !code.IsError() || !code.ValidFor(packet.CONNACK) {
		t.Fatalf("mqtttest: RefuserConfig.Code 0x%02x is not a refusing CONNACK reason code: use one of 0x80 and more that MQTT 5 allows in CONNACK", byte(code))
	}
	if v3 == 0 {
		v3 = code.V3Connack()
	}
	if v3 < packet.V3UnacceptableProtocolVersion || v3 > packet.V3NotAuthorized {
		t.Fatalf("mqtttest: RefuserConfig.V3Code %d is not a refusing MQTT 3.1.1 return code: use 1 to 5", byte(v3))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: StartRefuser: listening on 127.0.0.1: %v", err)
	}
	r := &Refuser{Addr: l.Addr().String(), code: code, v3code: v3, cfg: cfg, l: l, conns: map[net.Conn]struct{}{}}
	r.URL = "tcp://" + r.Addr
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		r.mu.Lock()
		r.closed = true
		for nc := range r.conns {
			nc.Close()
		}
		r.mu.Unlock()
		l.Close()
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(DefaultTimeout):
			t.Errorf("mqtttest: Refuser goroutines still run %v after it closed", DefaultTimeout)
		}
	})
	return r
}

// Connects returns the CONNECT packets received so far, in order.
func (r *Refuser) Connects() []*packet.Connect {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*packet.Connect(nil), r.connects...)
}

func (r *Refuser) accept() {
	defer r.wg.Done()
	for {
		nc, err := r.l.Accept()
		if err != nil {
			return // closed by the cleanup
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			nc.Close()
			return
		}
		r.conns[nc] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.serve(nc)
	}
}

// serve answers one connection. The Refuser is a test double, not an
// implementation of the protocol: its spec references are written as
// section numbers, not as tags, so that CONFORMANCE.md does not count it.
func (r *Refuser) serve(nc net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, nc)
		r.mu.Unlock()
		nc.Close()
	}()
	nc.SetDeadline(time.Now().Add(DefaultTimeout))
	p, err := packet.NewReader(nc).ReadPacket()
	if err != nil {
		return // not MQTT, or malformed: close
	}
	cp, ok := p.(*packet.Connect)
	if !ok {
		return // the first packet must be CONNECT (section 3.1 of both versions)
	}
	r.mu.Lock()
	r.connects = append(r.connects, cp)
	r.mu.Unlock()
	ack := &packet.Connack{ReasonCode: r.v3code} // Session Present 0, as a refusal has (3.1.1 and 5.0 section 3.2.2)
	if cp.Version == packet.V5 {
		ack.ReasonCode = r.code
		ack.Properties.ServerReference = r.cfg.ServerReference
		ack.Properties.ReasonString = r.cfg.ReasonString
	}
	w := packet.NewWriter(nc)
	w.Version = cp.Version
	if err := w.WritePacket(ack); err != nil {
		return
	}
	// Then close, as a refusing server must (3.1.1 section 3.2.2.3, 5.0
	// section 3.2.2.2): with a FIN first,
	// reading until the client closes, so that what it sent after its
	// CONNECT does not turn the close into a reset that could destroy the
	// CONNACK before the client reads it.
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.CloseWrite()
		buf := make([]byte, 512)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}
}
