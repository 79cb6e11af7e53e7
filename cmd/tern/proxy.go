package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
	"github.com/ternmq/tern/transport"
)

func init() { commands = append(commands, newProxyCmd) }

// proxyFile is the YAML configuration of tern proxy. Every key is named
// by its yaml tag; unknown keys are refused by checkKeys with the key
// meant.
type proxyFile struct {
	Listen    []string `yaml:"listen"`
	Upstreams []string `yaml:"upstreams"`
	LogLevel  string   `yaml:"log_level"`
	LogFormat string   `yaml:"log_format"`
	TLS       struct {
		CertFile     string `yaml:"cert_file"`
		KeyFile      string `yaml:"key_file"`
		ClientCAFile string `yaml:"client_ca_file"`
		ClientAuth   string `yaml:"client_auth"`
	} `yaml:"tls"`
	UpstreamTLS struct {
		CAFile             string `yaml:"ca_file"`
		CertFile           string `yaml:"cert_file"`
		KeyFile            string `yaml:"key_file"`
		ServerName         string `yaml:"server_name"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	} `yaml:"upstream_tls"`
	Limits struct {
		MaxPacketSize  uint32        `yaml:"max_packet_size"`
		ConnectTimeout time.Duration `yaml:"connect_timeout"`
		DialTimeout    time.Duration `yaml:"dial_timeout"`
		WriteTimeout   time.Duration `yaml:"write_timeout"`
		BackoffMin     time.Duration `yaml:"backoff_min"`
		BackoffMax     time.Duration `yaml:"backoff_max"`
	} `yaml:"limits"`
	Topics struct {
		Up         rulesFile `yaml:"up"`
		Down       rulesFile `yaml:"down"`
		ReasonCode int       `yaml:"reason_code"`
	} `yaml:"topics"`
	Rewrite struct {
		ClientID string `yaml:"client_id"`
		Username string `yaml:"username"`
	} `yaml:"rewrite"`
	RateLimit struct {
		MessagesPerSecond float64 `yaml:"messages_per_second"`
		BytesPerSecond    float64 `yaml:"bytes_per_second"`
		OverLimit         string  `yaml:"over_limit"`
	} `yaml:"rate_limit"`
	PacketLog bool `yaml:"packet_log"`
}

type rulesFile struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

const proxyExample = `# tern proxy configuration. Every key is optional; flags override the file.
listen:                       # URLs: tcp://, tls:// (mqtts://), ws://, wss://, unix://
  - tcp://127.0.0.1:1884
upstreams:                    # the brokers, the first preferred; the others are failed over to
  - tcp://127.0.0.1:1883
log_level: info               # debug, info, warn or error
log_format: text              # text or json
tls:                          # the certificate of tls:// and wss:// listeners
  cert_file: ""               # PEM certificate (chain)
  key_file: ""                # PEM private key
  client_ca_file: ""          # CAs that client certificates must chain to
  client_auth: none           # none, request or require
upstream_tls:                 # for tls:// and wss:// upstreams
  ca_file: ""                 # CAs to trust (default: the system's)
  cert_file: ""               # client certificate to present
  key_file: ""
  server_name: ""             # default: the upstream URL's host
  insecure_skip_verify: false
limits:
  max_packet_size: 16777216   # bytes, from either side; 0x95 Packet too large beyond
  connect_timeout: 10s        # for the client's CONNECT and the upstream's CONNACK
  dial_timeout: 10s           # trying the upstreams for one client, then CONNACK 0x88
  write_timeout: 30s          # a peer that does not read for this long is disconnected
  backoff_min: 100ms          # between rounds of upstream attempts, doubling
  backoff_max: 2s
topics:                       # allow and deny lists of topic filters
  up:                         # PUBLISH topics from clients
    allow: []                 # empty: everything not denied
    deny: []
  down:                       # SUBSCRIBE filters, and PUBLISH topics delivered to clients
    allow: []
    deny: []
  reason_code: 0x87           # MQTT 5 code of a refusal (Not authorized)
rewrite:                      # templates: {client_id} {username} {cert_cn} {remote_ip}
  client_id: ""               # e.g. "tenant-a/{client_id}"; empty keeps it
  username: ""                # e.g. "{cert_cn}"
rate_limit:                   # per client connection; 0 is no limit
  messages_per_second: 0
  bytes_per_second: 0         # topic and payload bytes
  over_limit: delay           # delay (stop reading the client) or disconnect (0x96)
packet_log: false             # log every packet (at info), without payloads
`

type proxyOptions struct {
	config        string
	listen        []string
	upstreams     []string
	logLevel      string
	exampleConfig bool
}

func newProxyCmd() *cobra.Command {
	o := new(proxyOptions)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run an MQTT-aware proxy in front of a broker",
		Long: `Run an MQTT proxy: every client connection is forwarded to an upstream
broker, packet by packet, decoded and checked in both directions. Topic
allow and deny lists, client-id and user-name templates, per-client rate
limits, a maximum packet size and a packet log come from the YAML file
(--config); --example-config prints one with every key.

A malformed packet from either side closes that connection (MQTT 5 clients
get a DISCONNECT with its reason code) and is never passed on. Keep alive
and wills are the upstream broker's. With several upstreams, clients go to
the one that answered last and fail over to the others.

Signals: SIGINT and SIGTERM shut down (MQTT 5 clients are told 0x8B).`,
		Example: `  tern proxy --listen tcp://0.0.0.0:1884 --upstream tcp://127.0.0.1:1883
  tern proxy --listen ws://0.0.0.0:8080/mqtt --upstream tcp://a:1883 --upstream tcp://b:1883
  tern proxy --example-config > proxy.yaml
  tern proxy --config proxy.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProxy(cmd, o) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&o.config, "config", "c", "", "YAML configuration `FILE` (see --example-config)")
	fl.BoolVar(&o.exampleConfig, "example-config", false, "print a configuration file with every key and exit")
	fl.StringArrayVarP(&o.listen, "listen", "l", nil, "listener `URL` (repeatable; replaces the file's): tcp://, tls://, ws://, wss://, unix:// [listen]")
	fl.StringArrayVarP(&o.upstreams, "upstream", "u", nil, "upstream broker `URL` (repeatable, the first preferred; replaces the file's) [upstreams]")
	fl.StringVar(&o.logLevel, "log-level", "", "log `LEVEL`: debug, info, warn or error [log_level]")
	return cmd
}

// proxySetup is a proxy.Server and its listeners' URLs, from the
// configuration.
type proxySetup struct {
	srv    *proxy.Server
	listen []string
	tls    *tls.Config // for tls:// and wss:// listeners; nil without a certificate
}

func loadProxyFile(path string) (*proxyFile, error) {
	var f proxyFile
	if path == "" {
		return &f, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(path, data, err)
	}
	if len(root.Content) == 0 || root.Content[0].Tag == "!!null" {
		return &f, nil
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the file must be a mapping of keys (key: value); tern proxy --example-config prints every key", path, doc.Line)
	}
	if err := checkKeys(path, doc, reflect.TypeOf(f), ""); err != nil {
		return nil, err
	}
	if err := doc.Decode(&f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg := strings.TrimPrefix(te.Errors[0], "line ")
			if strings.Contains(msg, "time.Duration") {
				msg += ": write a duration such as 10s, 1m30s or 500ms"
			}
			return nil, fmt.Errorf("%s:%s", path, msg)
		}
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	// Relative file names are taken from the file's directory.
	dir := filepath.Dir(path)
	for _, p := range []*string{&f.TLS.CertFile, &f.TLS.KeyFile, &f.TLS.ClientCAFile,
		&f.UpstreamTLS.CAFile, &f.UpstreamTLS.CertFile, &f.UpstreamTLS.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return &f, nil
}

// checkKeys refuses a key that t (a struct) has no field for, naming the
// line, the section and the key meant.
func checkKeys(file string, n *yaml.Node, t reflect.Type, prefix string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := f.Tag.Get("yaml"); tag != "" {
			fields[tag] = f.Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			in := "at the top level"
			if prefix != "" {
				in = "in " + prefix
			}
			names := make([]string, 0, len(fields))
			guess, best := "", 3
			for name := range fields {
				names = append(names, name)
				if d := editDistance(k.Value, name); d < best && d < len(name)/2+1 {
					guess, best = name, d
				}
			}
			sort.Strings(names)
			msg := fmt.Sprintf("%s:%d: unknown key %q %s", file, k.Line, k.Value, in)
			if guess != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", guess)
			}
			return fmt.Errorf("%s; the keys there are %s (tern proxy --example-config prints every key)", msg, strings.Join(names, ", "))
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
			if v.Kind != yaml.MappingNode && v.Tag != "!!null" {
				return fmt.Errorf("%s:%d: %s must be a mapping of keys (key: value)", file, v.Line, strings.TrimPrefix(prefix+"."+k.Value, "."))
			}
			if err := checkKeys(file, v, ft, strings.TrimPrefix(prefix+"."+k.Value, ".")); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildProxy turns the file and the flags into a proxy.Server.
func buildProxy(o *proxyOptions, stderr io.Writer) (*proxySetup, error) {
	f, err := loadProxyFile(o.config)
	if err != nil {
		return nil, err
	}
	if len(o.listen) > 0 {
		f.Listen = o.listen
	}
	if len(o.upstreams) > 0 {
		f.Upstreams = o.upstreams
	}
	if o.logLevel != "" {
		f.LogLevel = o.logLevel
	}
	where := func(key, flag string) string {
		if o.config == "" {
			return flag
		}
		return fmt.Sprintf("%s (%s in %s)", flag, key, o.config)
	}
	if len(f.Listen) == 0 {
		f.Listen = []string{"tcp://127.0.0.1:1884"}
	}
	if len(f.Upstreams) == 0 {
		return nil, fmt.Errorf("no upstream broker: give --upstream URL (upstreams in the file), e.g. --upstream tcp://127.0.0.1:1883")
	}
	var level slog.Level
	switch strings.ToLower(f.LogLevel) {
	case "", "info":
		level = slog.LevelInfo
	case "debug":
		level = slog.LevelDebug
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("%s: %q is not one of debug, info, warn, error", where("log_level", "--log-level"), f.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f.LogFormat {
	case "", "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return nil, fmt.Errorf("log_format in %s: %q is not text or json", o.config, f.LogFormat)
	}
	srv := &proxy.Server{
		Upstreams:      f.Upstreams,
		MaxPacketSize:  f.Limits.MaxPacketSize,
		ConnectTimeout: f.Limits.ConnectTimeout,
		DialTimeout:    f.Limits.DialTimeout,
		WriteTimeout:   f.Limits.WriteTimeout,
		BackoffMin:     f.Limits.BackoffMin,
		BackoffMax:     f.Limits.BackoffMax,
		Logger:         slog.New(h),
	}
	for i, u := range f.Upstreams {
		if err := proxy.ValidateURL(u); err != nil {
			return nil, fmt.Errorf("%s: upstream %d: %v", where("upstreams", "--upstream"), i+1, err)
		}
	}
	if f.Limits.MaxPacketSize != 0 && f.Limits.MaxPacketSize < 64 {
		return nil, fmt.Errorf("limits.max_packet_size in %s: %d is below 64 bytes: raise it (default 16777216)", o.config, f.Limits.MaxPacketSize)
	}
	for key, d := range map[string]time.Duration{"connect_timeout": f.Limits.ConnectTimeout, "dial_timeout": f.Limits.DialTimeout,
		"write_timeout": f.Limits.WriteTimeout, "backoff_min": f.Limits.BackoffMin, "backoff_max": f.Limits.BackoffMax} {
		if d < 0 {
			return nil, fmt.Errorf("limits.%s in %s: %v is negative: give a duration such as 10s (0 for the default)", key, o.config, d)
		}
	}
	if up := f.UpstreamTLS; up.CAFile != "" || up.CertFile != "" || up.InsecureSkipVerify || up.ServerName != "" {
		cfg := &tls.Config{ServerName: up.ServerName, InsecureSkipVerify: up.InsecureSkipVerify}
		if up.CAFile != "" {
			pem, err := os.ReadFile(up.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstream_tls.ca_file in %s: %v", o.config, err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("upstream_tls.ca_file in %s: %s holds no PEM certificate", o.config, up.CAFile)
			}
		}
		if (up.CertFile == "") != (up.KeyFile == "") {
			return nil, fmt.Errorf("upstream_tls in %s: give both cert_file and key_file, or neither", o.config)
		}
		if up.CertFile != "" {
			c, err := tls.LoadX509KeyPair(up.CertFile, up.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("upstream_tls.cert_file / key_file in %s: %v", o.config, err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		srv.Dial.TLS = cfg
	}

	// The filters, in a fixed order: rewrite, topics, rate, log.
	if f.Rewrite.ClientID != "" || f.Rewrite.Username != "" {
		rw := &proxy.Rewrite{ClientID: f.Rewrite.ClientID, Username: f.Rewrite.Username}
		if err := rw.Validate(); err != nil {
			return nil, fmt.Errorf("rewrite in %s: %v", o.config, err)
		}
		srv.Filters = append(srv.Filters, rw)
	}
	tp := f.Topics
	if len(tp.Up.Allow)+len(tp.Up.Deny)+len(tp.Down.Allow)+len(tp.Down.Deny) > 0 {
		tf := &proxy.TopicFilter{Up: proxy.Rules(tp.Up), Down: proxy.Rules(tp.Down), Code: packet.ReasonCode(tp.ReasonCode)}
		if err := tf.Validate(); err != nil {
			return nil, fmt.Errorf("topics.%v in %s", err, o.config)
		}
		if tp.ReasonCode != 0 && (tp.ReasonCode < 0x80 || tp.ReasonCode > 0xff) {
			return nil, fmt.Errorf("topics.reason_code in %s: %#x is not a failure code: give one from 0x80 to 0xA2, such as 0x87 (Not authorized)", o.config, tp.ReasonCode)
		}
		srv.Filters = append(srv.Filters, tf)
	}
	if rl := f.RateLimit; rl.MessagesPerSecond != 0 || rl.BytesPerSecond != 0 {
		r := &proxy.RateLimit{Messages: rl.MessagesPerSecond, Bytes: rl.BytesPerSecond}
		switch rl.OverLimit {
		case "", "delay":
		case "disconnect":
			r.Policy = proxy.Disconnect
		default:
			return nil, fmt.Errorf("rate_limit.over_limit in %s: %q is not delay or disconnect", o.config, rl.OverLimit)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rate_limit in %s: %v", o.config, err)
		}
		srv.Filters = append(srv.Filters, r)
	}
	if f.PacketLog {
		srv.Filters = append(srv.Filters, &proxy.PacketLog{})
	}
	if err := srv.Validate(); err != nil {
		return nil, err
	}

	st := &proxySetup{srv: srv, listen: f.Listen}
	if f.TLS.CertFile != "" || f.TLS.KeyFile != "" {
		auth := transport.ClientAuthNone
		switch f.TLS.ClientAuth {
		case "", "none":
		case "request":
			auth = transport.ClientAuthRequest
		case "require":
			auth = transport.ClientAuthRequire
		default:
			return nil, fmt.Errorf("tls.client_auth in %s: %q is not none, request or require", o.config, f.TLS.ClientAuth)
		}
		cfg, err := (&transport.TLSConfig{CertFile: f.TLS.CertFile, KeyFile: f.TLS.KeyFile,
			ClientCAFile: f.TLS.ClientCAFile, ClientAuth: auth}).Build()
		if err != nil {
			return nil, fmt.Errorf("tls in %s: %v", o.config, err)
		}
		st.tls = cfg
	}
	for i, u := range st.listen {
		if !strings.Contains(u, "://") {
			u = "tcp://" + u
			st.listen[i] = u
		}
		if err := proxy.ValidateURL(u); err != nil {
			return nil, fmt.Errorf("%s: %v", where("listen", "--listen"), err)
		}
		if s := strings.SplitN(u, "://", 2)[0]; st.tls == nil && (s == "tls" || s == "ssl" || s == "mqtts" || s == "wss") {
			return nil, fmt.Errorf("%s: %s needs a certificate: set tls.cert_file and tls.key_file in the configuration file", where("listen", "--listen"), u)
		}
	}
	return st, nil
}

func runProxy(cmd *cobra.Command, o *proxyOptions) error {
	if o.exampleConfig {
		_, err := io.WriteString(cmd.OutOrStdout(), proxyExample)
		return err
	}
	st, err := buildProxy(o, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	srv, log := st.srv, st.srv.Logger
	var ls []net.Listener
	for _, u := range st.listen {
		l, err := proxy.Listen(u, st.tls)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("--listen %s: %v", u, err)
		}
		ls = append(ls, l)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, len(ls))
	for i, l := range ls {
		log.Info("proxy listening", "listen", st.listen[i], "addr", l.Addr().String(), "upstreams", strings.Join(srv.Upstreams, " "))
		go func() { errc <- srv.Serve(l) }()
	}
	var first error
	select {
	case err := <-errc:
		first = err
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown timed out", "err", err)
	}
	for range len(ls) - btoi(first != nil) {
		<-errc
	}
	if first != nil && !errors.Is(first, proxy.ErrServerClosed) {
		return first
	}
	log.Info("stopped")
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
