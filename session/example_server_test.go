package session_test

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/session"
)

// serveOne is a minimal MQTT 3.1.1 and 5.0 server built from package
// packet and package session alone: it accepts one connection from l,
// reads the CONNECT, authenticates the user name and password against
// users, answers CONNACK, then handles PUBLISH at QoS 0, 1 and 2 (the
// exactly-once state is a session.Inbound, the MQTT 5 topic aliases a
// session.InboundAliases), PINGREQ and DISCONNECT, writing a line to log
// for everything it receives. It has no subscriptions: it is the
// receiving end of a device's messages. One goroutine reads and answers,
// as each packet gets its answer before the next is read.
func serveOne(l net.Listener, users map[string]string, log io.Writer) error {
	nc, err := l.Accept()
	if err != nil {
		return err
	}
	defer nc.Close()
	r := packet.NewReader(nc)
	w := packet.NewWriter(nc)

	// CONNECT, within 10 seconds; the Reader learns the version from it.
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := r.ReadPacket()
	if err != nil {
		return err
	}
	cp, ok := p.(*packet.Connect)
	if !ok {
		return fmt.Errorf("first packet is %v, not CONNECT", p.Type())
	}
	v := cp.Version
	w.Version = v
	v5 := v == packet.V5

	// The authenticate step. A refusal is a CONNACK with a failure code
	// (3.1.1 has its own codes), then the close.
	if want, ok := users[cp.Username]; !ok || subtle.ConstantTimeCompare([]byte(want), cp.Password) != 1 {
		fmt.Fprintf(log, "server: CONNECT client %q, user %q: refused\n", cp.ClientID, cp.Username)
		code := packet.BadUserNameOrPassword
		if !v5 {
			code = code.V3Connack()
		}
		return w.WritePacket(&packet.Connack{ReasonCode: code})
	}
	fmt.Fprintf(log, "server: CONNECT client %q, user %q: accepted\n", cp.ClientID, cp.Username)

	// What this server keeps for the connection: the QoS 2 packet ids
	// received and not yet released, with the Receive Maximum announced
	// to an MQTT 5 client, and the topic aliases it sets.
	var in session.Inbound
	var aliases session.InboundAliases
	ack := &packet.Connack{}
	if v5 {
		in.Max = 10
		aliases.Reset(10)
		ack.Properties.ReceiveMaximum = uint16(in.Max)
		ack.Properties.TopicAliasMaximum = 10
		w.MaxPacketSize = cp.Properties.MaximumPacketSize // 0: no limit
	}
	if err := w.WritePacket(ack); err != nil {
		return err
	}

	for {
		if cp.KeepAlive > 0 { // one and a half keep alive periods
			nc.SetReadDeadline(time.Now().Add(time.Duration(cp.KeepAlive) * 1500 * time.Millisecond))
		} else {
			nc.SetReadDeadline(time.Time{})
		}
		p, err := r.ReadPacket()
		if err == nil {
			err = handle(p, w, &in, &aliases, v5, log)
		}
		var pe *packet.ProtocolError
		switch {
		case errors.Is(err, errDisconnected):
			return nil
		case errors.As(err, &pe) && v5:
			// A broken rule: MQTT 5 says which in a DISCONNECT, then closes.
			w.WritePacket(&packet.Disconnect{ReasonCode: pe.Code})
			return err
		case err != nil:
			return err
		}
	}
}

var errDisconnected = errors.New("client disconnected")

// handle answers one packet of a connected client.
func handle(p packet.Packet, w *packet.Writer, in *session.Inbound, aliases *session.InboundAliases, v5 bool, log io.Writer) error {
	switch p := p.(type) {
	case *packet.Publish:
		if v5 {
			if err := aliases.Resolve(p); err != nil {
				return err
			}
		}
		switch p.QoS {
		case 0:
			fmt.Fprintf(log, "server: message %q QoS 0: %q\n", p.Topic, p.Payload)
		case 1:
			// Passed on, then PUBACK; a resend is a new message.
			fmt.Fprintf(log, "server: message %q QoS 1: %q\n", p.Topic, p.Payload)
			return w.WritePacket(&packet.Puback{PacketID: p.PacketID})
		case 2:
			// Passed on once, whatever number of times it comes before
			// its PUBREL; PUBREC each time.
			first, err := in.Receive(p.PacketID)
			if err != nil {
				return err // more unreleased than the Receive Maximum
			}
			if first {
				fmt.Fprintf(log, "server: message %q QoS 2: %q\n", p.Topic, p.Payload)
			} else {
				fmt.Fprintf(log, "server: QoS 2 PUBLISH %d again: acknowledged, not passed on\n", p.PacketID)
			}
			return w.WritePacket(&packet.Pubrec{PacketID: p.PacketID})
		}
	case *packet.Pubrel:
		comp := &packet.Pubcomp{PacketID: p.PacketID}
		if in.Release(p.PacketID) {
			fmt.Fprintf(log, "server: PUBREL %d: released\n", p.PacketID)
		} else if v5 {
			comp.ReasonCode = packet.PacketIdentifierNotFound
		}
		return w.WritePacket(comp)
	case *packet.Pingreq:
		return w.WritePacket(&packet.Pingresp{})
	case *packet.Disconnect:
		fmt.Fprintln(log, "server: DISCONNECT")
		return errDisconnected
	default:
		return &packet.ProtocolError{Code: packet.ProtocolErrorCode, Packet: p.Type(), Msg: "not handled by this server"}
	}
	return nil
}

// A minimal single-connection server built from packet and session,
// and a client written with package packet: QoS 0, 1 and 2, a QoS 2
// PUBLISH sent twice (its PUBREC was lost, say) and passed on once.
// TestExampleServerWithMosquittoPub runs the same server against
// mosquitto_pub.
func Example_server() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() { done <- serveOne(l, map[string]string{"alice": "secret"}, os.Stdout) }()

	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	w := packet.NewWriter(nc)
	r := packet.NewReader(nc)
	r.Version = packet.V311
	// call sends p and prints the answer, if one is due.
	call := func(p packet.Packet, answer bool) {
		if err := w.WritePacket(p); err != nil {
			fmt.Println("client:", err)
			return
		}
		if !answer {
			return
		}
		got, err := r.ReadPacket()
		if err != nil {
			fmt.Println("client:", err)
			return
		}
		fmt.Println("client:", got)
	}
	call(&packet.Connect{Version: packet.V311, ClientID: "meter-1", CleanStart: true, KeepAlive: 30,
		Username: "alice", Password: []byte("secret")}, true)
	call(&packet.Publish{Topic: "meter/1/hello", Payload: []byte("hi")}, false)
	call(&packet.Publish{Topic: "meter/1/kwh", QoS: 1, PacketID: 1, Payload: []byte("42.1")}, true)
	call(&packet.Publish{Topic: "meter/1/kwh", QoS: 2, PacketID: 2, Payload: []byte("42.2")}, true)
	call(&packet.Publish{Topic: "meter/1/kwh", QoS: 2, PacketID: 2, Payload: []byte("42.2"), Dup: true}, true)
	call(&packet.Pubrel{PacketID: 2}, true)
	call(&packet.Pingreq{}, true)
	call(&packet.Disconnect{}, false)
	if err := <-done; err != nil {
		fmt.Println("server:", err)
	}
	// Output:
	// server: CONNECT client "meter-1", user "alice": accepted
	// client: CONNACK session_present=false code=0x00
	// server: message "meter/1/hello" QoS 0: "hi"
	// server: message "meter/1/kwh" QoS 1: "42.1"
	// client: PUBACK id=1
	// server: message "meter/1/kwh" QoS 2: "42.2"
	// client: PUBREC id=2
	// server: QoS 2 PUBLISH 2 again: acknowledged, not passed on
	// client: PUBREC id=2
	// server: PUBREL 2: released
	// client: PUBCOMP id=2
	// client: PINGRESP
	// server: DISCONNECT
}
