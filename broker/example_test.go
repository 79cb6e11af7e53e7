package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// Example embeds a broker in a program: it serves MQTT on a loopback port
// and the program itself subscribes and publishes through the inline
// client, without a network connection. Ready says when the listener is
// open; no sleeping.
func Example() {
	srv := &broker.Server{
		Listeners:   []broker.Listener{{Addr: "127.0.0.1:0"}},       // a free port
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)), // quiet
		SysInterval: -1,                                             // no $SYS topics
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	<-srv.Ready()
	if srv.Addrs() == nil {
		panic(<-served) // the listener could not be opened
	}

	got := make(chan string, 1)
	unsubscribe, err := srv.Subscribe("greetings/+", 1, func(m *broker.Message) {
		got <- fmt.Sprintf("%s: %s (QoS %d)", m.Topic, m.Payload, m.QoS)
	})
	if err != nil {
		panic(err)
	}
	if err := srv.Publish("greetings/world", []byte("hello"), 1, false); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	unsubscribe()

	if err := srv.Shutdown(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("ListenAndServe returned ErrServerClosed:", errors.Is(<-served, broker.ErrServerClosed))
	// Output:
	// greetings/world: hello (QoS 1)
	// ListenAndServe returned ErrServerClosed: true
}

// passwordAuth lets one user in with one password.
type passwordAuth struct {
	user, password string
}

func (a passwordAuth) Authenticate(_ context.Context, req *broker.AuthRequest) error {
	if req.Username != a.user || string(req.Password) != a.password {
		return broker.ErrBadCredentials // CONNACK 4 (MQTT 3.1.1) or 0x86 (MQTT 5)
	}
	return nil
}

// Example_customAuth refuses a client with a bad password. The client is
// written with package packet, to show the CONNACK return code on the wire.
func Example_customAuth() {
	srv := &broker.Server{
		Authenticator: passwordAuth{user: "alice", password: "s3cret"},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		SysInterval:   -1,
		Listeners:     []broker.Listener{{Addr: "127.0.0.1:0"}},
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if addrs == nil {
		panic(<-served)
	}

	connect := func(password string) {
		nc, err := net.Dial("tcp", addrs[0].String())
		if err != nil {
			panic(err)
		}
		defer nc.Close()
		w := packet.NewWriter(nc)
		if err := w.WritePacket(&packet.Connect{Version: packet.V311, ClientID: "c1", CleanStart: true,
			Username: "alice", Password: []byte(password)}); err != nil {
			panic(err)
		}
		r := packet.NewReader(nc)
		r.Version = packet.V311
		p, err := r.ReadPacket()
		if err != nil {
			panic(err)
		}
		ack := p.(*packet.Connack)
		fmt.Printf("password %q: CONNACK return code %d (%s)\n", password, ack.ReasonCode,
			ack.ReasonCode.Text(packet.CONNACK, packet.V311))
	}
	connect("guess")
	connect("s3cret")

	if err := srv.Shutdown(context.Background()); err != nil {
		panic(err)
	}
	<-served
	// Output:
	// password "guess": CONNACK return code 4 (Connection Refused, bad user name or password)
	// password "s3cret": CONNACK return code 0 (Connection Accepted)
}
