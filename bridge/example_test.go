package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
)

// start runs a broker on a free local port.
func start(ctx context.Context) (*broker.Server, string) {
	srv := &broker.Server{Listeners: []broker.Listener{{Addr: "127.0.0.1:0"}}, SysInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go srv.ListenAndServe()
	<-srv.Ready()
	return srv, "mqtt://" + srv.Addrs()[0].String()
}

// A bridge from an edge broker to a central one: what devices publish
// under sensors/ on the edge reaches the centre under site1/sensors/, and
// commands published there under site1/cmd/ come down as cmd/.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	centre, centreURL := start(ctx)
	defer centre.Shutdown(ctx)
	edge, _ := start(ctx)
	defer edge.Shutdown(ctx)

	b, err := bridge.Start(ctx, edge, bridge.Config{
		Name:   "to-centre",
		Remote: centreURL,
		Topics: []bridge.Mapping{
			{Topic: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"},
			{Topic: "cmd/#", Direction: bridge.In, QoS: 1, RemotePrefix: "site1/"},
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(ctx)
	for !b.Status().Connected {
		time.Sleep(10 * time.Millisecond)
	}

	got := make(chan string, 2)
	unsub, _ := centre.Subscribe("site1/sensors/#", 1, func(m *broker.Message) { got <- m.Topic + " " + string(m.Payload) })
	defer unsub()
	unsub2, _ := edge.Subscribe("cmd/#", 1, func(m *broker.Message) { got <- m.Topic + " " + string(m.Payload) })
	defer unsub2()

	edge.Publish("sensors/t1", []byte("21.5"), 1, false)
	fmt.Println(<-got)
	// The bridge's subscription on the centre is made once it connected.
	for centre.Stats().Subscriptions < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	centre.Publish("site1/cmd/valve", []byte("open"), 1, false)
	fmt.Println(<-got)
	// Output:
	// site1/sensors/t1 21.5
	// cmd/valve open
}
