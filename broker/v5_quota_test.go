package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestV5ReceiveMaximumNewConnection: the client's send quota is not
// preserved across network connections (section 4.9). A client that left
// with 2 QoS 2 messages unreleased (Receive Maximum 2) comes back to its
// session and may have 2 new ones unreleased besides them; the old ids
// are still known: a resend is not a new message [v5 MQTT-4.3.3-10] and
// its PUBREL gets PUBCOMP 0x00 [v5 MQTT-4.3.3-11], freeing a unit of the
// quota, as the client counts that PUBCOMP. One more than the quota is
// DISCONNECT 0x93 [v5 noid:receive-maximum].
func TestV5ReceiveMaximumNewConnection(t *testing.T) {
	t.Parallel()
	srv := &Server{ReceiveMaximum: 2}
	addr := ptNewServer(t, srv)
	sub, _ := v5fConnect(t, addr, "rq-sub", nil)
	sub.subscribe(1, "rq/#", 0)
	publish := func(c *rawClient, id uint16, dup bool) {
		t.Helper()
		c.send(&packet.Publish{Topic: "rq/x", QoS: 2, PacketID: id, Dup: dup, Payload: []byte{byte('0' + id)}})
		if code, _ := v5fAck(t, c, 2, id); code.IsError() {
			t.Fatalf("PUBREC %d code 0x%02x", id, byte(code))
		}
	}

	c, _ := v5fConnect(t, addr, "rq", v5fPersistent)
	publish(c, 1, false)
	publish(c, 2, false)
	c.send(&packet.Disconnect{})
	c.expectClosed()
	ptWaitConnected(t, srv, 1)

	c, ack := v5fConnect(t, addr, "rq", v5fPersistent)
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	publish(c, 3, false)
	publish(c, 4, false)
	publish(c, 2, true) // the resend of an old one: not new, not counted
	c.send(&packet.Pubrel{PacketID: 1})
	if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 1 || comp.ReasonCode != packet.Success {
		t.Fatalf("want PUBCOMP 1 0x00, got %v", comp)
	}
	publish(c, 5, false)
	var got []string
	for range 5 {
		got = append(got, string(sub.expectPublish().Payload))
	}
	if want := "1 2 3 4 5"; fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("subscriber got %v, want [%s], each once", got, want)
	}
	c.send(&packet.Publish{Topic: "rq/x", QoS: 2, PacketID: 6, Payload: []byte("6")})
	expectKicked(t, c, packet.ReceiveMaximumExceeded)
	sub.noPacket(100 * time.Millisecond)
}
