package packet_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ternmq/tern/packet"
)

// A client writes a CONNECT and a PUBLISH; a server reads them. The
// Reader learns the protocol version from the CONNECT.
func Example() {
	var conn bytes.Buffer // stands in for a net.Conn

	w := packet.NewWriter(&conn)
	_ = w.WritePacket(&packet.Connect{Version: packet.V5, ClientID: "sensor-1", CleanStart: true, KeepAlive: 30})
	pub := &packet.Publish{QoS: 1, PacketID: 1, Topic: "sensors/1/temp", Payload: []byte("21.5")}
	pub.Properties.ContentType = "text/plain"
	pub.Properties.User = []packet.UserProperty{{Key: "unit", Value: "C"}}
	_ = w.WritePacket(pub)

	r := packet.NewReader(&conn)
	for {
		p, err := r.ReadPacket()
		if err != nil {
			break
		}
		fmt.Println(p)
	}
	// Output:
	// CONNECT v5.0 client="sensor-1" clean=true keepalive=30
	// PUBLISH topic="sensors/1/temp" qos=1 id=1 payload=4B "21.5" props={ContentType:"text/plain" User:["unit"="C"]}
}

// A server that reads a broken packet gets a *ProtocolError carrying the
// reason code to send in its DISCONNECT and the rule that was broken.
func ExampleProtocolError() {
	// A QoS 3 PUBLISH: both QoS bits set.
	wire := []byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}
	_, _, err := packet.Decode(packet.V5, wire)

	var pe *packet.ProtocolError
	if errors.As(err, &pe) {
		fmt.Printf("send DISCONNECT 0x%02x (%s), rule %s\n", byte(pe.Code), pe.Code, pe.Spec)
	}
	fmt.Println(errors.Is(err, packet.ErrMalformed))
	// Output:
	// send DISCONNECT 0x81 (Malformed Packet), rule v5 MQTT-3.3.1-4
	// true
}

// A property with a zero value is sent only when marked present.
func ExampleProperties_Mark() {
	d := &packet.Disconnect{}
	d.Properties.Mark(packet.PropSessionExpiry) // "end the session now": 0, sent explicitly
	b, _ := packet.Encode(d, packet.V5)
	fmt.Printf("% x\n", b)
	// Output:
	// e0 07 00 05 11 00 00 00 00
}

// Reading with a maximum packet size refuses an oversized packet before
// allocating memory for it.
func ExampleReader_maxPacketSize() {
	big, _ := packet.Encode(&packet.Publish{Topic: "t", Payload: make([]byte, 10_000)}, packet.V311)
	r := packet.NewReader(bytes.NewReader(big))
	r.Version = packet.V311
	r.MaxPacketSize = 1024
	_, err := r.ReadPacket()
	fmt.Println(errors.Is(err, packet.ErrPacketTooLarge))
	// Output:
	// true
}
