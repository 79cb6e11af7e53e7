package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/jetstream"
)

// Two nodes share a session: one stores it, the other loads it.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	srv.ReadyForConnections(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	open := func() (*jetstream.Store, *nats.Conn) {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			panic(err)
		}
		s, err := jetstream.Open(ctx, nc, jetstream.Config{Name: "example"})
		if err != nil {
			panic(err)
		}
		return s, nc
	}
	a, nca := open()
	defer nca.Close()
	defer a.Close()
	b, ncb := open()
	defer ncb.Close()
	defer b.Close()

	st, _ := a.Load(ctx) // MaxMsgID: where a's message ids start
	m := &message.Message{Topic: "sensors/1", Payload: []byte("21.5"), QoS: 1}
	if err := a.Apply(ctx,
		store.PutSession("dev-1", store.SessionInfo{Expiry: 3600, Version: 5}),
		store.Enqueue("dev-1", store.Queued{Seq: 1, MsgID: st.MaxMsgID + 1, Msg: m, QoS: 1})); err != nil {
		fmt.Println(err)
		return
	}
	ss, ok, err := b.LoadSession(ctx, "dev-1")
	fmt.Println(ok, err, ss.Info.Expiry, len(ss.Queue), ss.Queue[0].Msg.Topic, string(ss.Queue[0].Msg.Payload))
	// Output: true <nil> 3600 1 sensors/1 21.5
}
