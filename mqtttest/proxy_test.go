package mqtttest_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// encode returns the wire form of p, failing the test if it has none.
func encode(t *testing.T, p packet.Packet, v packet.Version) []byte {
	t.Helper()
	b, err := packet.Encode(p, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds, failing the test after the
// harness's timeout (which only turns a hang into a failure).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(mqtttest.DefaultTimeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCutProxyPassCounts(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr})
	c := mqtttest.DialRaw(t, p.Addr, packet.V5)
	cp := &packet.Connect{Version: packet.V5, ClientID: "pass", CleanStart: true}
	pub := &packet.Publish{Topic: "a", Payload: []byte("hello"), QoS: 1, PacketID: 1}
	ack := c.Connect(cp)
	c.Send(pub)
	puback := mqtttest.Expect[*packet.Puback](c)
	c.Send(&packet.Disconnect{})
	if got := c.ExpectClosed(); len(got) != 0 {
		t.Fatalf("after DISCONNECT: %v", got)
	}
	wantUp := len(encode(t, cp, packet.V5)) + len(encode(t, pub, packet.V5)) + len(encode(t, &packet.Disconnect{}, packet.V5))
	wantDown := len(encode(t, ack, packet.V5)) + len(encode(t, puback, packet.V5))
	var st mqtttest.ProxyConnStats
	waitFor(t, "the proxy to count the DISCONNECT", func() bool {
		conns := p.Conns()
		if len(conns) != 1 {
			t.Fatalf("Conns: %+v, want one", conns)
		}
		st = conns[0]
		return st.Forwarded[mqtttest.ClientToServer] == int64(wantUp)
	})
	if st.Forwarded[mqtttest.ServerToClient] != int64(wantDown) || st.Dropped != [2]int64{} || st.Cut || st.BlackHole {
		t.Fatalf("stats %+v, want %d bytes up and %d down, none dropped", st, wantUp, wantDown)
	}
	select {
	case <-p.Triggered():
		t.Fatal("a Pass proxy triggered")
	default:
	}
}

// TestCutProxyEveryByte cuts CONNECT + QoS 1 PUBLISH at every byte
// position, client to server, the client sending the PUBLISH once the
// CONNACK came: it gets a CONNACK only if the whole CONNECT passed, never
// a PUBACK, and the broker receives no message.
func TestCutProxyEveryByte(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	cp := &packet.Connect{Version: packet.V311, ClientID: "cut", CleanStart: true}
	pub := &packet.Publish{Topic: "a/b", Payload: []byte("x"), QoS: 1, PacketID: 7}
	connect, publish := encode(t, cp, packet.V311), encode(t, pub, packet.V311)
	total := len(connect) + len(publish)
	for i := range total {
		p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr, Mode: mqtttest.Cut, After: int64(i)})
		c := mqtttest.DialRaw(t, p.Addr, packet.V311)
		if i < len(connect) {
			c.SendBytes(connect) // may fail once the cut is through
		} else {
			c.Connect(cp)
			c.SendBytes(publish)
		}
		if got := c.ExpectClosed(); len(got) != 0 {
			t.Fatalf("cut after %d bytes: the client got %v", i, got)
		}
		<-p.Triggered()
		st := p.Conns()[0]
		if !st.Cut || st.Forwarded[mqtttest.ClientToServer] != int64(i) {
			t.Fatalf("cut after %d bytes: stats %+v", i, st)
		}
		c.Close()
	}
	waitFor(t, "the broker to see every client go", func() bool { return b.Server.Stats().ClientsConnected == 0 })
	if n := b.Server.Stats().MessagesReceived; n != 0 {
		t.Fatalf("the broker received %d messages from cut PUBLISHes", n)
	}
	// Past the last byte the trigger never fires: the exchange completes.
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr, Mode: mqtttest.Cut, After: int64(total)})
	c := mqtttest.DialRaw(t, p.Addr, packet.V311)
	c.Connect(cp)
	c.Send(pub)
	if ack := mqtttest.Expect[*packet.Puback](c); ack.PacketID != 7 {
		t.Fatalf("PUBACK %v", ack)
	}
}

// TestCutProxyServerToClient cuts inside the CONNACK: the client reads a
// stream that ends within a packet.
func TestCutProxyServerToClient(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr, Mode: mqtttest.Cut, Dir: mqtttest.ServerToClient, After: 2})
	c := mqtttest.DialRaw(t, p.Addr, packet.V5)
	c.Send(&packet.Connect{ClientID: "s2c", CleanStart: true})
	if _, err := c.RecvTimeout(mqtttest.DefaultTimeout); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %v, want io.ErrUnexpectedEOF", err)
	}
	st := p.Conns()[0]
	if st.Forwarded[mqtttest.ServerToClient] != 2 || st.Dropped[mqtttest.ServerToClient] == 0 {
		t.Fatalf("stats %+v, want 2 bytes forwarded down and the rest dropped", st)
	}
}

// TestCutProxyKthConn: the trigger applies to the second connection only.
func TestCutProxyKthConn(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr, Mode: mqtttest.Cut, Conn: 2})
	first := mqtttest.DialRaw(t, p.Addr, packet.V5)
	first.Connect(&packet.Connect{ClientID: "first", CleanStart: true})
	second := mqtttest.DialRaw(t, p.Addr, packet.V5)
	second.Send(&packet.Connect{ClientID: "second", CleanStart: true})
	if got := second.ExpectClosed(); len(got) != 0 {
		t.Fatalf("second connection got %v, want nothing", got)
	}
	third := mqtttest.DialRaw(t, p.Addr, packet.V5)
	third.Connect(&packet.Connect{ClientID: "third", CleanStart: true})
	for _, c := range []*mqtttest.RawClient{first, third} {
		c.Send(&packet.Pingreq{})
		mqtttest.Expect[*packet.Pingresp](c)
	}
	if st := p.Conns(); len(st) != 3 || st[0].Cut || !st[1].Cut || st[2].Cut {
		t.Fatalf("stats %+v, want only the second cut", st)
	}
}

// TestCutProxyBlackHole: after the CONNECT, the connection goes silent
// both ways and stays open; the broker still counts the client; a later
// connection passes.
func TestCutProxyBlackHole(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	cp := &packet.Connect{Version: packet.V5, ClientID: "hole", CleanStart: true}
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr, Mode: mqtttest.BlackHole,
		After: int64(len(encode(t, cp, packet.V5)))})
	c := mqtttest.DialRaw(t, p.Addr, packet.V5)
	c.Connect(cp)
	c.Send(&packet.Pingreq{})
	<-p.Triggered()
	waitFor(t, "the PINGREQ to fall into the hole", func() bool { return p.Conns()[0].Dropped[mqtttest.ClientToServer] == 2 })
	c.NoPacket(100 * time.Millisecond)
	c.Close() // a close the broker never hears of
	if n := b.Server.Stats().ClientsConnected; n != 1 {
		t.Fatalf("ClientsConnected %d, want the half-open client still counted", n)
	}
	if st := p.Conns()[0]; !st.BlackHole || st.Cut {
		t.Fatalf("stats %+v", st)
	}
	c2 := mqtttest.DialRaw(t, p.Addr, packet.V5)
	c2.Connect(&packet.Connect{ClientID: "after", CleanStart: true})
	c2.Send(&packet.Pingreq{})
	mqtttest.Expect[*packet.Pingresp](c2)
}

func TestCutProxyNow(t *testing.T) {
	t.Parallel()
	b := mqtttest.StartBroker(t)
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: b.Addr})
	hole := mqtttest.DialRaw(t, p.Addr, packet.V311)
	hole.Connect(&packet.Connect{ClientID: "hole", CleanStart: true})
	p.BlackHoleNow()
	hole.Send(&packet.Pingreq{})
	waitFor(t, "the PINGREQ to fall into the hole", func() bool { return p.Conns()[0].Dropped[mqtttest.ClientToServer] == 2 })
	cut := mqtttest.DialRaw(t, p.Addr, packet.V311)
	cut.Connect(&packet.Connect{ClientID: "cut", CleanStart: true})
	p.CutNow()
	if got := cut.ExpectClosed(); len(got) != 0 {
		t.Fatalf("after CutNow: %v", got)
	}
	if st := p.Conns(); !st[0].BlackHole || !st[1].Cut {
		t.Fatalf("stats %+v", st)
	}
}

func TestCutProxyDialError(t *testing.T) {
	t.Parallel()
	p := mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: mqtttest.FreeAddr(t)})
	nc, err := net.DialTimeout("tcp", p.Addr, mqtttest.DefaultTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(mqtttest.DefaultTimeout))
	if _, err := nc.Read(make([]byte, 1)); err == nil || mqtttest.IsTimeout(err) {
		t.Fatalf("read %v, want the connection closed", err)
	}
	waitFor(t, "the dial error", func() bool { return p.Conns()[0].DialErr != nil })
}

func TestCutProxyBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  mqtttest.CutProxyConfig
		want string
	}{
		{mqtttest.CutProxyConfig{}, "CutProxyConfig.Target"},
		{mqtttest.CutProxyConfig{Target: "127.0.0.1:1", After: -1}, "CutProxyConfig.After"},
		{mqtttest.CutProxyConfig{Target: "127.0.0.1:1", Dir: 2}, "CutProxyConfig.Dir"},
		{mqtttest.CutProxyConfig{Target: "127.0.0.1:1", Mode: 9}, "CutProxyConfig.Mode"},
		{mqtttest.CutProxyConfig{Target: "127.0.0.1:1", Conn: -1}, "CutProxyConfig.Conn"},
	} {
		ft := &fakeT{TB: t}
		ft.run(func() { mqtttest.StartCutProxy(ft, tc.cfg) })
		if !ft.failed || !strings.Contains(ft.msg, tc.want) {
			t.Errorf("%+v: failed %v, message %q; want one naming %s", tc.cfg, ft.failed, ft.msg, tc.want)
		}
	}
}
