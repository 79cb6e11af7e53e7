package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/memory"
	"github.com/ternmq/tern/broker"
)

// ExampleServer_backplane joins two brokers on one back plane (here the
// in-process one of package backplane/memory; a program would use
// backplane/redis or backplane/nats): a message published on one reaches
// a subscriber of the other.
func ExampleServer_backplane() {
	plane := memory.New()
	node := func(name string) *broker.Server {
		return &broker.Server{
			Backplane: func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
				cfg.ID = name
				return plane.Join(ctx, cfg)
			},
			Logger:      slog.New(slog.DiscardHandler),
			SysInterval: -1,
		}
	}
	a, b := node("a"), node("b")
	defer a.Close()
	defer b.Close()

	got := make(chan string, 1)
	unsubscribe, err := b.Subscribe("sensors/+", 1, func(m *broker.Message) {
		got <- fmt.Sprintf("on b: %s %s", m.Topic, m.Payload)
	})
	if err != nil {
		panic(err)
	}
	defer unsubscribe()
	if err := a.Publish("sensors/t1", []byte("21.5"), 1, false); err != nil {
		panic(err)
	}
	select {
	case s := <-got:
		fmt.Println(s)
	case <-time.After(5 * time.Second):
		fmt.Println("nothing arrived")
	}
	fmt.Println(a.NodeID(), b.NodeID())
	// Output:
	// on b: sensors/t1 21.5
	// a b
}
