package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
	"github.com/ternmq/tern/transport"
)

// A proxy in front of a broker: clients may publish under devices/ only,
// and every client identifier gets a tenant prefix upstream.
func ExampleServer() {
	// The upstream broker, on a free port.
	bl, _ := transport.ListenTCP("127.0.0.1:0")
	b := &broker.Server{SysInterval: -1, Logger: slog.New(slog.DiscardHandler)}
	go b.Serve(bl)
	defer b.Shutdown(context.Background())

	px := &proxy.Server{
		Upstreams: []string{"tcp://" + bl.Addr().String()},
		Logger:    slog.New(slog.DiscardHandler),
		Filters: []proxy.Filter{
			&proxy.TopicFilter{Up: proxy.Rules{Allow: []string{"devices/#"}}},
			&proxy.Rewrite{ClientID: "tenant-a/{client_id}"},
		},
	}
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	go px.Serve(pl)
	defer px.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _ := client.New(client.Config{Servers: []string{"tcp://" + pl.Addr().String()}, ClientID: "dev1"})
	c.Connect(ctx)
	defer c.Disconnect(ctx)
	ok, _ := c.Publish(ctx, &message.Message{Topic: "devices/dev1/temp", Payload: []byte("21.5"), QoS: 1})
	_, err := c.Publish(ctx, &message.Message{Topic: "admin/reboot", QoS: 1})
	fmt.Println(ok.ReasonCode.Text(packet.PUBACK, packet.V5))
	fmt.Println(err)
	// Output:
	// No matching subscribers
	// client: PUBACK 0x87 Not authorized
}
