package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// This file connects tern pub, sub, rr and test: the client
// configuration their options describe, the exit statuses of failures,
// and the cobra command they share.

// clientConfig returns the client configuration of the options.
func (o *mqttOptions) clientConfig(stderr io.Writer) (client.Config, error) {
	tc, err := o.tlsConfig()
	if err != nil {
		return client.Config{}, err
	}
	cfg := client.Config{
		Servers:  []string{o.serverURL()},
		TLS:      tc,
		Version:  o.version,
		ClientID: o.clientID(),
		// Mosquitto's tools read no proxy from the environment; neither
		// do Tern's: only --proxy.
		Proxy:      "direct",
		KeepAlive:  time.Duration(o.keepalive) * time.Second,
		CleanStart: o.clean,
		// --insecure is the user's choice: the password goes out as it
		// does with mosquitto_pub --insecure.
		AllowInsecurePassword: o.insecure,
		ConnectTimeout:        30 * time.Second,
		// As Mosquitto's tools: a subscription carries an identifier
		// only when the user gives one (--sub-id, -D subscribe
		// subscription-identifier).
		NoSubscriptionIDs: true,
		// -M, mosquitto_pub's max_inflight (MOSQ_OPT_SEND_MAXIMUM):
		// the client's own bound, below the broker's Receive Maximum.
		MaxInflight: o.maxInflight,
		BackoffMin:  time.Second,
		BackoffMax:  30 * time.Second,
	}
	if o.proxy != "" {
		cfg.Proxy = strings.Replace(o.proxy, "socks5h://", "socks5://", 1)
	}
	if o.hasUser {
		cfg.Username = o.username
	}
	if o.hasPass {
		cfg.Password = []byte(o.password)
	}
	if o.version == packet.V5 {
		cfg.SessionExpiry = uint32(o.sessionExpiry)
		cfg.Properties = o.props[cmdConnect]
		cfg.Properties.SessionExpiry = 0
		cfg.Properties.Unmark(packet.PropSessionExpiry)
		if m := cfg.Properties.AuthMethod; m != "" {
			cfg.Auth = &fixedAuth{method: m, data: cfg.Properties.AuthData}
			cfg.Properties.AuthMethod, cfg.Properties.AuthData = "", nil
			cfg.Properties.Unmark(packet.PropAuthMethod)
			cfg.Properties.Unmark(packet.PropAuthData)
		} else if cfg.Properties.Has(packet.PropAuthData) {
			return cfg, errors.New("-D connect authentication-data needs -D connect authentication-method")
		}
	}
	if o.willTopic != "" {
		cfg.Will = &packet.Will{Topic: o.willTopic, Payload: []byte(o.willPayload), QoS: byte(o.willQoS), Retain: o.willRetain}
		if o.version == packet.V5 {
			cfg.Will.Properties = o.props[cmdWill]
		}
	}
	if o.bind != "" {
		d, err := bindDialer(o.bind, tc)
		if err != nil {
			return cfg, err
		}
		cfg.Dial = d
	}
	if o.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// fixedAuth is the authentication method of -D connect
// authentication-method (and -data): its data goes in the CONNECT, and a
// server asking for more ends the attempt.
type fixedAuth struct {
	method string
	data   []byte
}

func (a *fixedAuth) Name() string { return a.method }
func (a *fixedAuth) Begin() (client.AuthExchange, []byte, error) {
	return fixedExchange{a.method}, a.data, nil
}

type fixedExchange struct{ method string }

func (e fixedExchange) Next([]byte) ([]byte, error) {
	return nil, fmt.Errorf("the server continues the %s authentication, which -D connect authentication-data cannot answer", e.method)
}
func (fixedExchange) Done([]byte) error { return nil }

// bindDialer dials mqtt:// and mqtts:// from a local address (-A).
func bindDialer(local string, tc *tls.Config) (func(context.Context, string) (net.Conn, error), error) {
	ip := net.ParseIP(local)
	if ip == nil {
		addrs, err := net.DefaultResolver.LookupIPAddr(context.Background(), local)
		if err != nil || len(addrs) == 0 {
			return nil, fmt.Errorf("-A %s: not a local address (%v)", local, err)
		}
		ip = addrs[0].IP
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	return func(ctx context.Context, server string) (net.Conn, error) {
		u, err := url.Parse(server)
		if err != nil {
			return nil, err
		}
		switch u.Scheme {
		case "mqtt", "tcp":
			return d.DialContext(ctx, "tcp", u.Host)
		case "mqtts", "tls", "ssl":
			c := tc.Clone()
			if c.ServerName == "" {
				c.ServerName = u.Hostname()
			}
			td := &tls.Dialer{NetDialer: d, Config: c}
			return td.DialContext(ctx, "tcp", u.Host)
		}
		return nil, fmt.Errorf("-A binds mqtt:// and mqtts:// connections only, not %s://", u.Scheme)
	}, nil
}

// connectError is the exit status and message of a failed connection:
// the CONNACK reason code when the server refused, as Mosquitto's tools
// exit, else 1.
func connectError(o *mqttOptions, err error) error {
	var ce *client.ConnectError
	if errors.As(err, &ce) {
		return &exitCodeError{code: int(ce.ReasonCode), quiet: o.quiet,
			err: fmt.Errorf("connection refused by %s: %s (reason code %d)", ce.Server, reasonText(ce.ReasonCode, ce.Version), ce.ReasonCode)}
	}
	return &exitCodeError{code: exitError, err: fmt.Errorf("connecting to %s: %w", o.serverURL(), err), quiet: o.quiet}
}

// reasonText is the meaning of a CONNACK code in protocol version v.
func reasonText(code packet.ReasonCode, v packet.Version) string {
	if v != packet.V5 {
		switch code {
		case 1:
			return "unacceptable protocol version"
		case 2:
			return "identifier rejected"
		case 3:
			return "server unavailable"
		case 4:
			return "bad user name or password"
		case 5:
			return "not authorized"
		}
	}
	return code.String()
}

// errConnLost is the cause of a run ended by a lost connection.
var errConnLost = errors.New("connection lost")

// stopOnLoss makes the loss of the connection end ctx: tern pub, rr and
// test, like Mosquitto's, do not wait for a reconnection.
func stopOnLoss(ctx context.Context, cfg *client.Config) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	cfg.OnConnectionDown = func(err error) { cancel(fmt.Errorf("%w: %v", errConnLost, err)) }
	return ctx, cancel
}

// lostErr returns the error of a run whose connection was lost, nil if
// it was not.
func lostErr(o *mqttOptions, ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, errConnLost) {
		return &exitCodeError{code: exitError, err: cause, quiet: o.quiet}
	}
	return nil
}

// runErr wraps a failure after the connection with exit status 1.
func runErr(o *mqttOptions, err error) error {
	if err == nil {
		return nil
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return err
	}
	return &exitCodeError{code: exitError, err: err, quiet: o.quiet}
}

// timeoutErr is -W running out: exit status 27, as MOSQ_ERR_TIMEOUT.
func timeoutErr(o *mqttOptions) error {
	return &exitCodeError{code: exitTimeout, err: errors.New("timed out (-W)"), quiet: o.quiet}
}

// mqttRun is what a command does with its parsed options.
type mqttRun func(ctx context.Context, cmd *cobra.Command, o *mqttOptions) error

// newMQTTCmd returns the cobra command of tool. It parses its own flags
// (Mosquitto's -D takes three or four arguments, -h is the host), so
// cobra's flag parsing is off; the flags are still registered, for the
// help and for completion.
func newMQTTCmd(tool mqttTool, short, long, example string, run mqttRun) *cobra.Command {
	cmd := &cobra.Command{
		Use:                string(tool),
		Short:              short,
		Long:               long,
		Example:            example,
		DisableFlagParsing: true,
		ValidArgsFunction:  completeMQTT(tool),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, toks, err := parseMQTTArgs(tool, args, os.Getenv)
			if err != nil {
				return err
			}
			if o.help {
				return cmd.Help()
			}
			if o.save != "" {
				p, err := saveConnection(os.Getenv, o.save, toks)
				if err != nil {
					return usageErr("%v", err)
				}
				if !o.quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), "tern %s: connection options saved as %s (%s)\n", tool, o.save, p)
				}
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, cmd, o)
		},
	}
	cmd.Flags().AddFlagSet(newMQTTOptions(tool).flagSet())
	return cmd
}

// completeMQTT completes the values of the flags cobra cannot see (it
// does not parse them): -D's command and property, -V, --tls-version,
// --load's saved names.
func completeMQTT(tool mqttTool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if strings.HasPrefix(toComplete, "-") {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		n := len(args)
		isD := func(a string) bool { return a == "-D" || a == "--property" }
		switch {
		case n >= 1 && isD(args[n-1]):
			var out []cobra.Completion
			for _, c := range propCmdNames {
				if (c == "subscribe" || c == "unsubscribe") && tool != toolSub {
					continue
				}
				out = append(out, c)
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		case n >= 2 && isD(args[n-2]):
			for i, c := range propCmdNames {
				if c == args[n-1] {
					return propNamesFor(propCmd(i)), cobra.ShellCompDirectiveNoFileComp
				}
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		case n >= 1 && (args[n-1] == "-V" || args[n-1] == "--protocol-version"):
			return []cobra.Completion{"5\tMQTT 5.0", "311\tMQTT 3.1.1", "31\tMQTT 3.1"}, cobra.ShellCompDirectiveNoFileComp
		case n >= 1 && args[n-1] == "--tls-version":
			return []cobra.Completion{"tlsv1.3", "tlsv1.2", "tlsv1.1"}, cobra.ShellCompDirectiveNoFileComp
		case n >= 1 && (args[n-1] == "-q" || args[n-1] == "--qos" || args[n-1] == "--will-qos"):
			return []cobra.Completion{"0", "1", "2"}, cobra.ShellCompDirectiveNoFileComp
		case n >= 1 && (args[n-1] == "--load" || args[n-1] == "--save"):
			dir, err := configDir(os.Getenv)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			entries, _ := os.ReadDir(dir + "/connections")
			var out []cobra.Completion
			for _, e := range entries {
				if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					out = append(out, e.Name())
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		case n >= 1 && (args[n-1] == "-f" || args[n-1] == "--file" || args[n-1] == "--cafile" || args[n-1] == "--cert" ||
			args[n-1] == "--key" || args[n-1] == "--unix"):
			return nil, cobra.ShellCompDirectiveDefault
		case n >= 1 && args[n-1] == "--capath":
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// tracer prints -d's lines, in the form of Mosquitto's ("Client ID
// sending CONNECT"), for the packets the command sends and receives
// through the client; the client's own log (reconnections) comes too.
type tracer struct {
	on bool
	w  io.Writer
	mu sync.Mutex
	c  *client.Client
}

func (t *tracer) printf(format string, args ...any) {
	if t == nil || !t.on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	id := "(null)"
	if t.c != nil && t.c.ClientID() != "" {
		id = t.c.ClientID()
	}
	fmt.Fprintf(t.w, "Client %s "+format+"\n", append([]any{id}, args...)...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t *tracer) connect()                  { t.printf("sending CONNECT") }
func (t *tracer) connack(a *client.Connack) { t.printf("received CONNACK (%d)", a.ReasonCode) }
func (t *tracer) disconnect()               { t.printf("sending DISCONNECT") }
func (t *tracer) published(m *message.Message, res *client.PublishResult) {
	t.printf("sending PUBLISH (d0, q%d, r%d, m%d, '%s', ... (%d bytes))", m.QoS, b2i(m.Retain), res.PacketID, m.Topic, len(m.Payload))
	switch m.QoS {
	case 1:
		t.printf("received PUBACK (Mid: %d, RC:%d)", res.PacketID, res.ReasonCode)
	case 2:
		t.printf("received PUBREC (Mid: %d)", res.PacketID)
		t.printf("sending PUBREL (m%d)", res.PacketID)
		t.printf("received PUBCOMP (Mid: %d, RC:%d)", res.PacketID, res.ReasonCode)
	}
}
func (t *tracer) received(m *client.Message) {
	t.printf("received PUBLISH (d%d, q%d, r%d, m%d, '%s', ... (%d bytes))", b2i(m.Dup), m.QoS, b2i(m.Retain), m.PacketID, m.Topic, len(m.Payload))
}
func (t *tracer) subscribe(opts client.SubscribeOptions) {
	for _, f := range opts.Filters {
		opt := int(f.QoS) | b2i(f.NoLocal)<<2 | b2i(f.RetainAsPublished)<<3 | int(f.RetainHandling)<<4
		t.printf("sending SUBSCRIBE (Topic: %s, QoS: %d, Options: 0x%02x)", f.Topic, f.QoS, opt)
	}
}
func (t *tracer) suback(s *client.Subscription) {
	if s == nil {
		return
	}
	codes := make([]string, len(s.Codes))
	for i, c := range s.Codes {
		codes[i] = fmt.Sprint(int(c))
	}
	t.printf("received SUBACK: %s", strings.Join(codes, ", "))
}
