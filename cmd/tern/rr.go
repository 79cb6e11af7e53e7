package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

func init() { commands = append(commands, newRRCmd) }

func newRRCmd() *cobra.Command {
	return newMQTTCmd(toolRR, "Send a request and print the response (like mosquitto_rr)",
		`Subscribe to the response topic (-e), publish the request (-t, with -m, -f,
-n or -s) with that Response Topic (MQTT 5), print the first message that
arrives on the response topic, and exit. -W bounds the wait (exit status 27).
The options are mosquitto_rr's; the output is printed as tern sub prints it
(-v, -N, -F, --pretty).
`+formatHelp+mqttHelpTail,
		`  tern rr -t svc/time/req -e svc/time/resp/me -m now
  tern rr -t svc/echo -e reply/me -m hello -W 5 -v
  tern rr -t svc/calc -e reply/me -m '1+1' -D publish correlation-data 42 -F '%C %p'`,
		runRR)
}

func runRR(ctx context.Context, cmd *cobra.Command, o *mqttOptions) error {
	payload, err := o.payload(cmd)
	if err != nil {
		return err
	}
	pr, err := newPrinter(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := o.clientConfig(cmd.ErrOrStderr())
	if err != nil {
		return usageErr("%v", err)
	}
	ctx, lost := stopOnLoss(ctx, &cfg)
	defer lost(nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		got      bool
		timedOut bool
	)
	tr := &tracer{on: o.debug, w: cmd.ErrOrStderr()}
	handle := func(m *client.Message) {
		at := time.Now()
		tr.received(m)
		mu.Lock()
		defer mu.Unlock()
		if got || (o.noRetained && m.Retain) {
			return
		}
		got = true
		pr.print(m, at)
		cancel()
	}
	c, err := client.New(cfg)
	if err != nil {
		return usageErr("%v", err)
	}
	tr.c = c
	defer disconnect(c, o)
	defer tr.disconnect()
	tr.connect()
	ack, err := c.Connect(ctx)
	if err != nil {
		return connectError(o, err)
	}
	tr.connack(ack)
	if o.timeout > 0 {
		t := time.AfterFunc(time.Duration(o.timeout)*time.Second, func() {
			mu.Lock()
			if !got {
				timedOut = true
				cancel()
			}
			mu.Unlock()
		})
		defer t.Stop()
	}
	subOpts := o.subscription([]string{o.responseTopic}, o.qos, handle)
	tr.subscribe(subOpts)
	sub, err := c.SubscribeWith(ctx, subOpts)
	tr.suback(sub)
	if err != nil {
		var re *client.ReasonError
		if errors.As(err, &re) {
			return runErr(o, fmt.Errorf("subscribing to the response topic %q refused: %v", o.responseTopic, re))
		}
		if ctx.Err() != nil {
			return subEnd(o, timedOut)
		}
		return runErr(o, fmt.Errorf("subscribing to the response topic: %w", err))
	}
	req := &message.Message{Topic: o.topics[0], Payload: payload, QoS: byte(o.qos)}
	if o.version == packet.V5 {
		req.Properties = o.props[cmdPublish]
		req.Properties.ResponseTopic = o.responseTopic
	}
	res, err := c.Publish(ctx, req)
	if err != nil && ctx.Err() == nil {
		return runErr(o, fmt.Errorf("publishing the request to %q: %w", o.topics[0], err))
	}
	if err == nil {
		tr.published(req, res)
	}
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	if err := lostErr(o, ctx); err != nil && !got {
		return err
	}
	return subEnd(o, timedOut)
}
