package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/internal/subfmt"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

func init() { commands = append(commands, newSubCmd) }

// formatHelp sums up -F for the help of sub and rr.
const formatHelp = `
FORMAT (-F), as mosquitto_sub's: %t topic, %p payload, %x / %X payload in
hex, %l payload length, %q QoS, %r retain, %m packet id, %I ISO 8601 time,
%U Unix time, %j / %J the message as JSON (payload as a string / as JSON,
--pretty indents), MQTT 5: %A topic alias, %C content type, %D correlation
data, %E message expiry, %F payload format, %P user properties, %R response
topic, %S subscription identifier; @Y @m @d @H @M @S @N ... strftime fields
of the receive time; \n \t \e \a \0 \\ escapes; widths and - 0 flags as
printf. tern sub prints byte for byte what mosquitto_sub prints.
`

func newSubCmd() *cobra.Command {
	return newMQTTCmd(toolSub, "Subscribe and print messages (like mosquitto_sub)",
		`Subscribe to one or more topic filters and print the messages that arrive,
until Ctrl-C, -C messages or -W seconds. The options are mosquitto_sub's, and
the output is byte for byte mosquitto_sub's (-v, -N, -F, --pretty).

-t may be repeated; all filters go in one SUBSCRIBE. -T hides topics, -R
hides retained messages (MQTT 5: asks the broker not to send them),
--retained-only prints retained messages and exits at the first live one,
--remove-retained clears each retained message it receives. -U unsubscribes
(from an earlier session's subscriptions, with -c). -E exits once subscribed.
Tern adds MQTT 5's subscription options Mosquitto lacks: --no-local,
--retain-handling and --sub-id.
`+formatHelp+mqttHelpTail,
		`  tern sub -t 'sensors/#' -v
  tern sub -t a -t b -C 10 -W 30 -F '%I %t %p'
  tern sub -V 5 -t 'sensors/#' -F '%j' --pretty
  tern sub -t '#' --remove-retained --retained-only
  tern sub -L mqtts://broker.example/sensors/temp --cafile ca.pem
  tern sub -V 5 -t chat --no-local --retain-handling 2`,
		runSub)
}

// printer writes received messages to stdout, one at a time.
type printer struct {
	mu  sync.Mutex
	p   *subfmt.Printer
	out io.Writer
	err io.Writer
	o   *mqttOptions
}

func newPrinter(o *mqttOptions, out, errw io.Writer) (*printer, error) {
	p, err := subfmt.Compile(subfmt.Options{Format: o.format, FormatSet: o.formatSet, Verbose: o.verbose, NoEOL: o.noEOL, Pretty: o.pretty})
	if err != nil {
		return nil, usageErr("-F: %v", err)
	}
	return &printer{p: p, out: out, err: errw, o: o}, nil
}

// print prints one message.
func (pr *printer) print(m *client.Message, at time.Time) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	sm := subfmt.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, PacketID: m.PacketID,
		Properties: m.Properties, Received: at}
	if pr.o.version != packet.V5 {
		sm.Properties = packet.Properties{}
	}
	if err := pr.p.Print(pr.out, &sm); err != nil {
		var je *subfmt.JSONError
		if errors.As(err, &je) {
			for i := 0; i < je.Count; i++ {
				fmt.Fprintf(pr.err, "Error: %v\n", je)
			}
		} else if !pr.o.quiet {
			fmt.Fprintf(pr.err, "tern sub: %v\n", err)
		}
	}
}

// subscription returns the SUBSCRIBE options of -t, -q and the
// subscription options.
func (o *mqttOptions) subscription(filters []string, qos int, h client.Handler) client.SubscribeOptions {
	opts := client.SubscribeOptions{Handler: h}
	for _, f := range filters {
		fl := client.Filter{Topic: f, QoS: byte(qos)}
		if o.version == packet.V5 {
			fl.NoLocal = o.noLocal
			fl.RetainAsPublished = o.retainAsPub
			if o.noRetained {
				fl.RetainHandling = 2 // mosquitto_sub -R: MQTT_SUB_OPT_SEND_RETAIN_NEVER
			}
			if o.retainHandling >= 0 {
				fl.RetainHandling = byte(o.retainHandling)
			}
		}
		opts.Filters = append(opts.Filters, fl)
	}
	if o.version == packet.V5 {
		opts.User = o.props[cmdSubscribe].User
		opts.ID = o.userSubID() // none unless asked, as mosquitto_sub
	}
	return opts
}

// userSubID is the subscription identifier the user asked for, 0 if none.
func (o *mqttOptions) userSubID() uint32 {
	if o.subID != 0 {
		return o.subID
	}
	if ids := o.props[cmdSubscribe].SubscriptionIDs; len(ids) > 0 {
		return ids[0]
	}
	return 0
}

func runSub(ctx context.Context, cmd *cobra.Command, o *mqttOptions) error {
	pr, err := newPrinter(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	cfg, err := o.clientConfig(cmd.ErrOrStderr())
	if err != nil {
		return usageErr("%v", err)
	}
	if o.count > 0 && o.count < 20 && o.version == packet.V5 && !cfg.Properties.Has(packet.PropReceiveMaximum) {
		// As mosquitto_sub: no more messages in flight than it will take.
		cfg.Properties.ReceiveMaximum = uint16(o.count)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		printed  int
		done     bool
		timedOut bool
		c        *client.Client
		removals []*client.Token
	)
	finish := func() {
		done = true
		cancel()
	}
	tr := &tracer{on: o.debug, w: cmd.ErrOrStderr()}
	handle := func(m *client.Message) {
		at := time.Now()
		tr.received(m)
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		for _, f := range o.filterOut {
			if topic.Match(f, m.Topic) {
				return
			}
		}
		if o.removeRetained && m.Retain && len(m.Payload) > 0 {
			// Clear it with an empty retained message, as mosquitto_sub
			// does, at the subscription's QoS; waited for before exiting.
			removals = append(removals, c.PublishAsync(&message.Message{Topic: m.Topic, QoS: byte(o.qos), Retain: true}))
		}
		if o.retainedOnly && !m.Retain {
			finish()
			return
		}
		if o.noRetained && m.Retain {
			return
		}
		if o.randomFilter < 100 && rand.Float64()*100 >= o.randomFilter {
			return
		}
		pr.print(m, at)
		printed++
		if o.count > 0 && printed >= o.count {
			finish()
		}
	}
	cfg.OnMessage = handle
	c, err = client.New(cfg)
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
		// The timeout starts once connected (mosquitto_sub(1), -W).
		t := time.AfterFunc(time.Duration(o.timeout)*time.Second, func() {
			mu.Lock()
			if !done {
				timedOut = true
				finish()
			}
			mu.Unlock()
		})
		defer t.Stop()
	}
	subOpts := o.subscription(o.topics, o.qos, handle)
	tr.subscribe(subOpts)
	sub, err := c.SubscribeWith(ctx, subOpts)
	tr.suback(sub)
	if err != nil {
		var re *client.ReasonError
		if errors.As(err, &re) {
			return runErr(o, fmt.Errorf("every subscription was refused: %v", re))
		}
		if ctx.Err() != nil {
			return subEnd(o, timedOut)
		}
		return runErr(o, fmt.Errorf("subscribing: %w", err))
	}
	for i, code := range sub.Codes {
		if code.IsError() && !o.quiet {
			fmt.Fprintf(cmd.ErrOrStderr(), "tern sub: subscription to %q refused: %v\n", o.topics[i], code)
		}
	}
	if len(o.unsubscribe) > 0 {
		if _, err := c.Unsubscribe(ctx, o.unsubscribe...); err != nil && ctx.Err() == nil {
			return runErr(o, fmt.Errorf("-U: %w", err))
		}
	}
	if o.exitAfterSub {
		return nil
	}
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	for _, tok := range removals {
		if _, err := tok.Wait(wctx); err != nil {
			return runErr(o, fmt.Errorf("--remove-retained: %w", err))
		}
	}
	return subEnd(o, timedOut)
}

// subEnd is the exit of a sub or rr that stopped: 27 when -W ran out.
func subEnd(o *mqttOptions, timedOut bool) error {
	if timedOut {
		return timeoutErr(o)
	}
	return nil
}
