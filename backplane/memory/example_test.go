package memory_test

import (
	"context"
	"fmt"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/memory"
	"github.com/ternmq/tern/message"
)

// Two nodes of one in-process cluster: b announces interest in "sensors/+",
// a forwards a message on "sensors/t1", and b's handler gets it; a message
// on a topic nobody wants goes nowhere.
func Example() {
	ctx := context.Background()
	c := memory.New()
	got := make(chan backplane.Delivery, 1)
	a, _ := c.Join(ctx, backplane.Config{ID: "a"})
	b, _ := c.Join(ctx, backplane.Config{ID: "b", OnMessage: func(_ context.Context, d backplane.Delivery) { got <- d }})
	defer a.Close(ctx)
	defer b.Close(ctx)

	if err := b.Subscribe(ctx, "sensors/+"); err != nil {
		fmt.Println(err)
	}
	_ = a.Forward(ctx, &message.Message{Topic: "other/t1", Payload: []byte("nobody")})
	_ = a.Forward(ctx, &message.Message{Topic: "sensors/t1", Payload: []byte("21.5")})
	d := <-got
	fmt.Printf("%s got %s=%s from node %s\n", b.ID(), d.Message.Topic, d.Message.Payload, d.Node)

	prev, _ := a.Claim(ctx, "client-1")
	fmt.Printf("client-1 had owner %q\n", prev)
	prev, _ = b.Claim(ctx, "client-1")
	fmt.Printf("client-1 had owner %q, now b\n", prev)
	// Output:
	// b got sensors/t1=21.5 from node a
	// client-1 had owner ""
	// client-1 had owner "a", now b
}

// ForwardAll hands a batch of messages to the engine at once, in order
// (ForwardBatch where the engine has it, else one Forward after the
// other) and says which ones it did not take: nil when it took them all.
func ExampleForwardAll() {
	ctx := context.Background()
	c := memory.New()
	got := make(chan backplane.Delivery, 3)
	a, _ := c.Join(ctx, backplane.Config{ID: "a"})
	b, _ := c.Join(ctx, backplane.Config{ID: "b", OnMessage: func(_ context.Context, d backplane.Delivery) { got <- d }})
	defer a.Close(ctx)
	defer b.Close(ctx)
	_ = b.Subscribe(ctx, "sensors/+")

	var batch []*message.Message
	for _, v := range []string{"21.5", "21.7", "21.6"} {
		batch = append(batch, &message.Message{Topic: "sensors/t1", QoS: 1, Payload: []byte(v)})
	}
	if errs := backplane.ForwardAll(ctx, a, batch); errs != nil {
		fmt.Println("not all taken:", errs)
	}
	for range batch {
		d := <-got
		fmt.Printf("%s %s\n", d.Message.Topic, d.Message.Payload)
	}
	// Output:
	// sensors/t1 21.5
	// sensors/t1 21.7
	// sensors/t1 21.6
}
