package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ternmq/tern/store/disk"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
)

func init() { commands = append(commands, newBrokerCmd) }

// brokerOptions are the flags of tern broker: those of the configuration
// keys (flags), and those that are not keys.
type brokerOptions struct {
	config        string
	listen        []string
	ports         []string
	http          []string
	exampleConfig bool
	flags         []*keyFlag
}

func newBrokerCmd() *cobra.Command { return brokerCommand(new(brokerOptions)) }

// brokerCommand returns tern broker with its flags bound to o.
func brokerCommand(o *brokerOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an MQTT broker",
		Long: `Run an MQTT 3.1 / 3.1.1 / 5.0 broker.

With no configuration it listens on 127.0.0.1:1883 only and lets every
client in. Listeners, authentication, ACLs, limits and the MQTT 5 features
come from flags or a YAML file (--config); flags override the file.
tern broker --example-config prints a configuration file with every key,
its default and its flag. Relative paths in the file are taken from the
file's directory; relative paths in flags from the working directory.

Listeners on the command line (each replaces the file's listeners):
  -p PORT                    plain MQTT on 127.0.0.1:PORT, like mosquitto -p
  --listen tcp://HOST:PORT   plain MQTT (0.0.0.0 for every interface)
  --listen ws://HOST:PORT/PATH   MQTT over WebSocket (path default /mqtt)
  --listen unix:///PATH/TO/SOCKET   unix socket
  --http HOST:PORT           the HTTP API, Prometheus metrics (/metrics) and
                             health (/healthz, /readyz), added to the others
TLS and secure WebSocket listeners need certificates: configure them in the
YAML file (listeners[].tls.cert_file, key_file, client_ca_file, client_auth).

Signals: SIGINT and SIGTERM shut down gracefully (wills are published,
MQTT 5 clients are told 0x8B); SIGHUP reloads the password and ACL files.`,
		Example: `  tern broker
  tern broker -p 1884
  tern broker --listen tcp://0.0.0.0:1883 --listen ws://0.0.0.0:8080/mqtt
  tern broker --http 127.0.0.1:8080
  tern broker --example-config > tern.yaml
  tern broker --config tern.yaml --log-level trace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBroker(cmd, o)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&o.config, "config", "c", "", "YAML configuration `FILE` (see --example-config)")
	fl.BoolVar(&o.exampleConfig, "example-config", false, "print a configuration file with every key, its default and its flag, and exit")
	fl.StringArrayVarP(&o.listen, "listen", "l", nil, "listener `URL` (repeatable): tcp://HOST:PORT, ws://HOST:PORT/PATH, unix:///PATH [listeners]")
	fl.StringArrayVarP(&o.ports, "port", "p", nil, "listen on 127.0.0.1:`PORT` (repeatable), like mosquitto -p [listeners]")
	fl.StringArrayVar(&o.http, "http", nil, "serve the HTTP API, metrics and health on `ADDR` (host:port, repeatable), besides the MQTT listeners [listeners, type http]")
	o.flags = addKeyFlags(fl)
	return cmd
}

// brokerSetup is a Server built from the configuration, with what the
// start-up log lines and SIGHUP need.
type brokerSetup struct {
	srv             *broker.Server
	cfg             *brokerConfig
	level           *slog.LevelVar
	pw              *auth.PasswordFile // nil without a password file
	acl             *auth.ACLFile      // nil without an ACL file
	defaultListener bool               // no listener was configured
	data            string             // where the data lives, for the first log line
	cluster         string             // the back plane's engine and address ("" for none), for the log
}

// buildServer turns the configuration file and the flags into a Server;
// every error names the setting to fix as the user wrote it.
func buildServer(o *brokerOptions, stderr io.Writer) (*brokerSetup, error) {
	c := newBrokerConfig()
	if o.config != "" {
		if err := c.loadFile(o.config); err != nil {
			return nil, err
		}
	}
	if err := c.applyFlags(o.flags); err != nil {
		return nil, err
	}
	st := &brokerSetup{cfg: c, level: new(slog.LevelVar)}
	switch c.LogLevel {
	case "trace":
		st.level.Set(broker.LevelTrace)
	case "debug":
		st.level.Set(slog.LevelDebug)
	case "warn", "warning":
		st.level.Set(slog.LevelWarn)
	case "error":
		st.level.Set(slog.LevelError)
	}
	opts := &slog.HandlerOptions{Level: st.level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey && a.Value.Any() == broker.LevelTrace {
			a.Value = slog.StringValue("TRACE")
		}
		return a
	}}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, opts)
	}
	srv := &broker.Server{Logger: slog.New(h)}
	st.srv = srv

	if err := st.setListeners(o); err != nil {
		return nil, err
	}
	srv.Listeners = c.Listeners
	srv.MaxPacketSize = c.Limits.MaxPacketSize
	srv.MaxQueuedMessages = c.Limits.MaxQueuedMessages
	srv.QueueQoS0 = c.Limits.QueueQoS0
	srv.MaxInflight = c.Limits.MaxInflight
	srv.ConnectTimeout = c.Limits.ConnectTimeout
	srv.WriteTimeout = c.Limits.WriteTimeout
	srv.RetryInterval = c.Limits.RetryInterval
	srv.HookTimeout = c.Limits.HookTimeout
	if c.Limits.QueuePolicy == broker.DropOldest.String() {
		srv.QueuePolicy = broker.DropOldest
	}
	srv.SysInterval = c.SysInterval
	if srv.SysInterval == 0 {
		srv.SysInterval = -1 // 0 turns $SYS off, as in Mosquitto; the Server's 0 is the default
	}
	srv.CopyPerSubscription = c.CopyPerSubscription

	m := &c.MQTT5
	srv.MaxSessionExpiry = m.MaxSessionExpiry
	srv.ReceiveMaximum = uint16(m.ReceiveMaximum)
	srv.TopicAliasMaximum = broker.TopicAliases(uint16(m.TopicAliasMaximum))
	srv.OutboundTopicAliases = m.OutboundTopicAliases
	srv.MaximumQoS = broker.QoS(byte(m.MaximumQoS))
	srv.RetainUnavailable = !m.RetainAvailable
	srv.WildcardSubscriptionsUnavailable = !m.WildcardSubscriptions
	srv.SubscriptionIDsUnavailable = !m.SubscriptionIdentifiers
	srv.SharedSubscriptionsUnavailable = !m.SharedSubs
	strategy, err := broker.ParseSharedStrategy(m.SharedStrategy)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.where("mqtt5.shared_strategy"), err)
	}
	srv.SharedStrategy = strategy
	srv.ServerKeepAlive = m.ServerKeepAlive
	srv.ResponseInformation = m.ResponseInformation

	if err := st.setAuth(); err != nil {
		return nil, err
	}
	if err := st.setHTTP(); err != nil { // httpconf.go
		return nil, err
	}
	if err := srv.Validate(); err != nil {
		return nil, c.explain(err)
	}
	for i, l := range srv.Listeners {
		if l.TLS == nil {
			continue
		}
		if _, err := l.TLS.Build(); err != nil { // loads the certificate and key now, not at the first listen
			return nil, c.tlsError(i, err)
		}
	}
	return st, nil
}

// setListeners settles the listeners: those of --listen and -p replace
// the file's (and say so); none at all is the local-only default.
func (st *brokerSetup) setListeners(o *brokerOptions) error {
	c := st.cfg
	var cli []broker.Listener
	var from []string
	for _, u := range o.listen {
		l, err := parseListenURL(u)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", u, err)
		}
		cli = append(cli, l)
		from = append(from, "--listen "+u)
	}
	for _, p := range o.ports {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("-p %q: a port is a number from 0 to 65535 (0: any free port)", p)
		}
		cli = append(cli, broker.Listener{Type: "tcp", Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(n))})
		from = append(from, "-p "+p)
	}
	if len(cli) > 0 {
		if n := len(c.Listeners); n > 0 {
			var given []string
			if len(o.listen) > 0 {
				given = append(given, "--listen")
			}
			if len(o.ports) > 0 {
				given = append(given, "-p")
			}
			web := 0
			for _, l := range c.Listeners {
				if l.Type == "http" || l.Type == "https" {
					web++
				}
			}
			n -= web
			verb, what := "replaces", fmt.Sprintf("the %d listeners", n)
			if len(given) > 1 {
				verb = "replace"
			}
			if n == 1 {
				what = "the listener"
			}
			msg := fmt.Sprintf("%s %s %s of %s", strings.Join(given, " and "), verb, what, c.file)
			if web > 0 {
				msg += " (its http listeners stay)"
			}
			st.srv.Logger.Info(msg)
		}
		// The file's http listeners stay, after those of the command
		// line, with where they were set.
		kept := map[string]origin{}
		for j, l := range c.Listeners {
			if l.Type != "http" && l.Type != "https" {
				continue
			}
			old, now := concrete("listeners[]", j), concrete("listeners[]", len(cli))
			for p, o := range c.set {
				if p == old || strings.HasPrefix(p, old+".") {
					kept[now+strings.TrimPrefix(p, old)] = o
				}
			}
			cli = append(cli, l)
		}
		for p := range c.set {
			if p == "listeners" || strings.HasPrefix(p, "listeners[") {
				delete(c.set, p)
			}
		}
		c.Listeners = cli
		for i, f := range from {
			c.set[concrete("listeners[]", i)] = origin{flag: f}
		}
		for p, o := range kept {
			c.set[p] = o
		}
	}
	mqtt := 0
	for _, l := range c.Listeners {
		if l.Type != "http" && l.Type != "https" {
			mqtt++
		}
	}
	if mqtt == 0 {
		c.Listeners = append(c.Listeners, broker.Listener{Type: "tcp", Addr: broker.DefaultAddr})
		st.defaultListener = true
	}
	for _, a := range o.http {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("--http %q: want HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every interface)", a)
		}
		c.set[concrete("listeners[]", len(c.Listeners))] = origin{flag: "--http " + a}
		c.Listeners = append(c.Listeners, broker.Listener{Type: "http", Addr: a})
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Type == "" {
			l.Type = "tcp"
		}
		// A unix socket is a file: relative to the file's directory too.
		if o, ok := c.set[concrete("listeners[].addr", i)]; ok && o.line > 0 && l.Type == "unix" && l.Addr != "" && !filepath.IsAbs(l.Addr) {
			l.Addr = filepath.Join(c.dir, l.Addr)
		}
		if (l.Type == "tls" || l.Type == "wss" || l.Type == "https") && l.TLS == nil {
			item := concrete("listeners[]", i)
			return fmt.Errorf("%s: a %s listener needs a certificate: set %s.tls.cert_file and %s.tls.key_file", c.where(item), l.Type, item, item)
		}
		if l.TLS == nil {
			continue
		}
		for _, f := range []struct{ key, path string }{
			{"cert_file", l.TLS.CertFile}, {"key_file", l.TLS.KeyFile}, {"client_ca_file", l.TLS.ClientCAFile},
		} {
			if f.path == "" {
				continue
			}
			fh, err := os.Open(f.path)
			if err != nil {
				return fmt.Errorf("%s: %w", c.where(concrete("listeners[].tls.", i)+f.key), err)
			}
			fh.Close()
		}
	}
	return nil
}

// setAuth loads the password and ACL files and sets SCRAM.
func (st *brokerSetup) setAuth() error {
	c, srv := st.cfg, st.srv
	_, scramSet := c.set["auth.scram"]
	_, anonSet := c.set["auth.allow_anonymous"]
	certCN := -1
	for i, l := range srv.Listeners {
		if l.UseCertCommonName && (l.Type == "tls" || l.Type == "wss") && certCN < 0 {
			certCN = i
		}
	}
	if c.Auth.PasswordFile == "" {
		switch {
		case scramSet && c.Auth.SCRAM:
			return fmt.Errorf("%s: SCRAM needs a password file: set auth.password_file (--password-file)", c.where("auth.scram"))
		case anonSet && !c.Auth.AllowAnonymous:
			return fmt.Errorf("%s: without a password file every client connects anonymously; set auth.password_file (--password-file)", c.where("auth.allow_anonymous"))
		case certCN >= 0:
			return fmt.Errorf("%s: the certificate's common name is checked by the password file's authentication; set auth.password_file (an empty file will do)",
				c.where(concrete("listeners[].use_cert_common_name", certCN)))
		}
	} else {
		p, err := auth.LoadPasswordFile(c.Auth.PasswordFile)
		if err != nil {
			return fmt.Errorf("%s: %w", c.where("auth.password_file"), err)
		}
		p.AllowAnonymous = c.Auth.AllowAnonymous
		p.UseCertCN = certCN >= 0
		srv.Authenticator = p
		st.pw = p
		// SCRAM (MQTT 5 enhanced authentication) is on by default with a
		// password file.
		if c.Auth.SCRAM || !scramSet {
			srv.AuthMethods = p.SCRAMMethods()
			if scramSet && p.SCRAMLen() == 0 {
				srv.Logger.Warn("auth.scram is on but no user in the password file has SCRAM credentials yet; set their passwords again with tern passwd",
					"file", p.Path())
			}
		}
	}
	if c.Auth.ACLFile != "" {
		a, err := auth.LoadACLFile(c.Auth.ACLFile)
		if err != nil {
			return fmt.Errorf("%s: %w", c.where("auth.acl_file"), err)
		}
		srv.Authorizer = a
		st.acl = a
	}
	return nil
}

// explain rewrites the errors of Server.Validate, one "Field: message"
// per line, into the keys and flags the user set.
func (c *brokerConfig) explain(err error) error {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		field, msg, ok := strings.Cut(l, ": ")
		g, i := generic(field)
		k := fieldKeys[g]
		if !ok || k == nil {
			lines = append(lines, l)
			continue
		}
		path := concrete(k.path, i)
		if k.path == "listeners[].tls" {
			lines = append(lines, c.tlsError(i, errors.New(msg)).Error())
			continue
		}
		lines = append(lines, c.where(path)+": "+msg)
	}
	if len(lines) == 1 {
		return errors.New(lines[0])
	}
	return errors.New("invalid configuration:\n  " + strings.Join(lines, "\n  "))
}

// tlsError names the key of listener i's tls section that a
// transport.TLSConfig error ("tls: client_auth ...") is about.
func (c *brokerConfig) tlsError(i int, err error) error {
	msg := strings.TrimPrefix(err.Error(), "tls: ")
	path := concrete("listeners[].tls", i)
	named := 0 // keys the message gives a value of
	for _, k := range keys {
		if strings.HasPrefix(k.path, "listeners[].tls.") && strings.Contains(msg, k.path[len("listeners[].tls."):]+` "`) {
			named++
		}
	}
	if sub, rest, ok := strings.Cut(msg, " "); ok && named == 1 && keyIndex["listeners[].tls."+sub] != nil {
		return fmt.Errorf("%s: %s", c.where(path+"."+sub), rest)
	}
	return fmt.Errorf("%s: %s", c.where(path), msg)
}

// parseListenURL reads tcp://host:port, ws://host:port/path or
// unix:///path.
func parseListenURL(s string) (broker.Listener, error) {
	if !strings.Contains(s, "://") {
		s = "tcp://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return broker.Listener{}, err
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		if u.Host == "" {
			return broker.Listener{}, errors.New("want tcp://HOST:PORT")
		}
		return broker.Listener{Type: "tcp", Addr: u.Host}, nil
	case "ws":
		return broker.Listener{Type: "ws", Addr: u.Host, Path: u.Path}, nil
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" {
			return broker.Listener{}, errors.New("want unix:///PATH")
		}
		return broker.Listener{Type: "unix", Addr: p}, nil
	case "tls", "ssl", "mqtts", "wss":
		return broker.Listener{}, fmt.Errorf("%s listeners need certificates: configure them in the YAML file (listeners[].tls)", u.Scheme)
	}
	return broker.Listener{}, fmt.Errorf("unknown scheme %q: use tcp, ws or unix", u.Scheme)
}

func runBroker(cmd *cobra.Command, o *brokerOptions) error {
	if o.exampleConfig {
		return writeExampleConfig(cmd.OutOrStdout())
	}
	st, err := buildServer(o, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	srv, log := st.srv, st.srv.Logger
	broker.Version = versionString()
	var ds *disk.Broker
	var dir string
	if !st.cfg.sharedStore() { // else setCluster opens the shared session store
		if ds, dir, err = st.openStore(); err != nil {
			return err
		}
	} else if err := st.checkSharedStore(); err != nil {
		return err
	}
	switch {
	case st.cfg.sharedStore():
		// setCluster opens the store and says where it is (st.data).
	case ds != nil:
		srv.Store = ds
		defer func() {
			if err := ds.Close(); err != nil {
				log.Error("closing the store", "dir", dir, "err", err)
			}
		}()
		st.data = fmt.Sprintf("%s (durable, sync %s)", dir, st.cfg.Store.Sync)
	default:
		st.data = "in memory only (--in-memory): sessions, queued and retained messages are lost when the broker stops"
	}
	closeCluster, err := st.setCluster() // cluster.go
	if err != nil {
		return err
	}
	defer closeCluster() // after Shutdown, which leaves the back plane
	st.logStartup()
	if st.cluster != "" {
		log.Info("cluster: joining the back plane at start", "engine", st.cluster, "node", st.cfg.Cluster.Node)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	var bridges []*bridge.Bridge // bridgeconf.go
	if len(st.cfg.Bridges) > 0 {
		select {
		case <-srv.Ready():
		case err := <-errc:
			return err
		}
		bdir := ""
		if ds != nil {
			bdir = dir
		}
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		bridges, err = st.startBridges(bctx, bdir)
		cancel()
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			srv.Shutdown(sctx)
			cancel()
			<-errc
			return err
		}
	}
	defer func() { closeBridges(bridges) }()
	for {
		select {
		case err := <-errc:
			if errors.Is(err, broker.ErrServerClosed) {
				return nil
			}
			return err
		case <-hup:
			st.reload()
		case <-ctx.Done():
			log.Info("shutting down")
			closeBridges(bridges) // first, so that they leave their sessions as they are
			bridges = nil
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Shutdown(sctx)
			cancel()
			<-errc
			if err != nil {
				log.Warn("shutdown timed out; connections closed", "err", err)
			}
			log.Info("stopped")
			return nil
		}
	}
}
