package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

func init() { commands = append(commands, newPubCmd) }

// mqttHelpTail is the end of the help of pub, sub and rr: the parts of
// Mosquitto's manual pages Tern shares.
const mqttHelpTail = `
Connection: -h and -p, or -L URL, or --unix PATH. TLS is on with -L mqtts://
or wss://, --cafile, --capath, --tls-use-os-certs, or -p 8883 (as in
Mosquitto 2.0). -L also takes Tern's ws://, wss:// (WebSocket, path /mqtt)
and unix:///path.

PROPERTIES (MQTT 5; -D selects -V 5):
  -D connect     authentication-data, authentication-method, maximum-packet-size,
                 receive-maximum, request-problem-information,
                 request-response-information, session-expiry-interval,
                 topic-alias-maximum, user-property
  -D publish     content-type, correlation-data, message-expiry-interval,
                 payload-format-indicator, response-topic, topic-alias,
                 user-property
  -D subscribe   subscription-identifier, user-property
  -D unsubscribe user-property
  -D disconnect  session-expiry-interval, reason-string, server-reference,
                 user-property
  -D will        content-type, correlation-data, message-expiry-interval,
                 payload-format-indicator, response-topic, user-property,
                 will-delay-interval
  A user property takes a name and a value: -D publish user-property unit C.

DEFAULTS FILE: $XDG_CONFIG_HOME/tern/{pub,sub,rr,test} (else
~/.config/tern/...) holds default options, one per line, the value after the
first space ("-h broker.example", "-V 5"); lines starting with # are ignored.
The command line adds to them (-t of sub) or overrides them.

SAVED CONNECTIONS: --save NAME writes this command line's connection options
(host, port, -L, --unix, user, password, id, keep alive, -V, -c, -x, will,
TLS, proxy, -D connect/will/disconnect) to $XDG_CONFIG_HOME/tern/connections/NAME
(mode 0600), in the same one-option-per-line form; --load NAME reads them
before the command line: tern sub --load home -t '#'.

EXIT STATUS: 0 on success; 1 for bad options or a failed connection; the
CONNACK reason code when the broker refuses the connection (3.1.1: 1-5;
5: 128 and above); 27 when -W runs out.`

func newPubCmd() *cobra.Command {
	return newMQTTCmd(toolPub, "Publish a message (like mosquitto_pub)",
		`Publish one message, a file, standard input, or each line of standard
input to an MQTT broker, then disconnect. The options are mosquitto_pub's:
a mosquitto_pub command line works with "tern pub" in its place.

Message: -m MESSAGE, -f FILE, -n (empty), -s (all of stdin as one message)
or -l (each line of stdin, published as it is typed); one of them.
--repeat N publishes it N times, --repeat-delay seconds apart.
QoS 1 and 2 messages are waited for: tern pub exits once the broker has
acknowledged them.
`+mqttHelpTail,
		`  tern pub -t sensors/temp -m 21.5
  tern pub -h broker.example -p 8883 --cafile ca.pem -t a/b -q 1 -m hello
  tern pub -L mqtt://user:pass@broker:1883/sensors/temp -m 21.5
  tern pub -V 5 -t a/b -m '{"t":21}' -D publish content-type application/json -D publish user-property unit C
  tail -f /var/log/syslog | tern pub -t logs -l
  tern pub --save home -h broker.example -u me -P secret -t a -m first
  tern pub --load home -t a -m again`,
		runPub)
}

func runPub(ctx context.Context, cmd *cobra.Command, o *mqttOptions) error {
	payload, err := o.payload(cmd)
	if err != nil {
		return err
	}
	cfg, err := o.clientConfig(cmd.ErrOrStderr())
	if err != nil {
		return usageErr("%v", err)
	}
	cfg.MaxQueued = max(o.maxInflight, 1000)
	cfg.QueueQoS0 = o.mode == msgStdinLine // lines typed while reconnecting are kept
	if o.mode != msgStdinLine {
		var cancel context.CancelCauseFunc
		ctx, cancel = stopOnLoss(ctx, &cfg)
		defer cancel(nil)
	}
	c, err := client.New(cfg)
	if err != nil {
		return usageErr("%v", err)
	}
	stderr := cmd.ErrOrStderr()
	tr := &tracer{on: o.debug, w: stderr, c: c}
	tr.connect()
	ack, err := c.Connect(ctx)
	if err != nil {
		c.Disconnect(context.Background())
		return connectError(o, err)
	}
	tr.connack(ack)
	newMsg := func(p []byte) *message.Message {
		m := &message.Message{Topic: o.topics[0], Payload: p, QoS: byte(o.qos), Retain: o.retain}
		if o.version == packet.V5 {
			m.Properties = o.props[cmdPublish]
		}
		return m
	}
	var pubErr error
	report := func(m *message.Message, res *client.PublishResult, err error) {
		if err == nil {
			tr.published(m, res)
		}
		var re *client.ReasonError
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.As(err, &re):
			// The broker refused it (MQTT 5 reason code): a warning and
			// exit status 0, as mosquitto_pub.
			if !o.quiet {
				fmt.Fprintf(stderr, "Warning: publish to %q failed: %v\n", o.topics[0], re.ReasonCode)
			}
		case pubErr == nil:
			pubErr = err
			if !o.quiet {
				fmt.Fprintf(stderr, "tern pub: publish to %q failed: %v\n", o.topics[0], err)
			}
		}
	}
	publish := func(p []byte) {
		m := newMsg(p)
		res, err := c.Publish(ctx, m)
		report(m, res, err)
	}
	if o.mode == msgStdinLine {
		// Each line is published as soon as it is read, the line feed
		// taken off, as mosquitto_pub -l does.
		r := bufio.NewReader(cmd.InOrStdin())
		lines := make(chan []byte)
		readErr := make(chan error, 1)
		go func() {
			defer close(lines)
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 && line[len(line)-1] == '\n' {
					line = line[:len(line)-1]
				}
				if len(line) > 0 || err == nil {
					select {
					case lines <- line:
					case <-ctx.Done():
						return
					}
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						readErr <- err
					}
					return
				}
			}
		}()
		// Lines go out without waiting for the acknowledgement of the
		// one before, as mosquitto_pub -l's: up to -M unacknowledged
		// (Config.MaxInflight), the rest queued. A reporter waits for
		// their outcomes in order; room bounds what is accepted and not
		// yet done to the client's queue, so the queue never overflows.
		type sent struct {
			m   *message.Message
			tok *client.Token
		}
		room := make(chan struct{}, cfg.MaxQueued)
		pending := make(chan sent, cfg.MaxQueued)
		reported := make(chan struct{})
		go func() {
			defer close(reported)
			for p := range pending {
				res, err := p.tok.Wait(ctx)
				report(p.m, res, err)
				<-room
			}
		}()
	loop:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break loop
				}
				select {
				case room <- struct{}{}:
				case <-ctx.Done():
					break loop
				}
				m := newMsg(line)
				pending <- sent{m, c.PublishAsync(m)}
			case <-ctx.Done():
				break loop
			}
		}
		close(pending)
		<-reported
		select {
		case err := <-readErr:
			pubErr = fmt.Errorf("-l: reading stdin: %w", err)
		default:
		}
	} else {
		for i := 0; i < o.repeat && ctx.Err() == nil; i++ {
			if i > 0 && o.repeatDelay > 0 {
				t := time.NewTimer(o.repeatDelay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			if ctx.Err() == nil {
				publish(payload)
			}
		}
	}
	tr.disconnect()
	derr := disconnect(c, o)
	if err := lostErr(o, ctx); err != nil {
		return err
	}
	if pubErr != nil {
		return &exitCodeError{code: exitError, err: pubErr, quiet: true}
	}
	return runErr(o, derr)
}

// disconnect ends the connection with -D disconnect's properties.
func disconnect(c *client.Client, o *mqttOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if o.version == packet.V5 && !o.props[cmdDisconnect].IsZero() {
		return c.DisconnectWith(ctx, &packet.Disconnect{Properties: o.props[cmdDisconnect]})
	}
	return c.Disconnect(ctx)
}

// payload is the message of -m, -f or -s (nil for -n and -l), for pub
// and rr.
func (o *mqttOptions) payload(cmd *cobra.Command) ([]byte, error) {
	var payload []byte
	switch o.mode {
	case msgArg:
		payload = []byte(o.message)
	case msgFile:
		data, err := os.ReadFile(o.file)
		if err != nil {
			return nil, usageErr("-f: %v", err)
		}
		payload = data
	case msgStdinFile:
		data, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, runErr(o, fmt.Errorf("-s: reading stdin: %w", err))
		}
		payload = data
	}
	if len(payload) > packet.MaxRemainingLength {
		return nil, usageErr("the message is %d bytes; MQTT carries at most %d", len(payload), packet.MaxRemainingLength)
	}
	return payload, nil
}
