package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ternmq/tern/packet"
)

// argTok is one option of a command line, as the parser splits it.
type argTok struct {
	flag  *pflag.Flag // nil for -D and for what pflag will reject
	value string      // the flag's value ("" for a boolean flag)
	prop  []string    // -D: the command, the property and its value(s)
}

// scanArgs splits args into options, knowing which flags of fs take a
// value, so that "-m -D" publishes the message "-D" as Mosquitto does. It
// takes -D out (pflag cannot read a flag with three or four arguments)
// and returns the other arguments, unchanged, for pflag.
func scanArgs(fs *pflag.FlagSet, args []string) (toks []argTok, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i:]...)
			return toks, rest, nil
		case a == "-D" || a == "--property":
			n := propArgCount(args[i+1:])
			if len(args)-(i+1) < n {
				return nil, nil, fmt.Errorf("%s %s: give a command, a property and a value (-D publish content-type text/plain), or for a user property a name and a value (-D connect user-property site berlin)",
					a, strings.Join(args[i+1:], " "))
			}
			toks = append(toks, argTok{prop: args[i+1 : i+1+n]})
			i += n
		case strings.HasPrefix(a, "--") && len(a) > 2:
			rest = append(rest, a)
			name, value, hasValue := strings.Cut(a[2:], "=")
			f := fs.Lookup(name)
			if f == nil {
				toks = append(toks, argTok{})
				continue
			}
			if !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
				i++
				value = args[i]
				rest = append(rest, value)
			}
			toks = append(toks, argTok{flag: f, value: value})
		case strings.HasPrefix(a, "-") && len(a) > 1:
			rest = append(rest, a)
			for j := 1; j < len(a); j++ {
				f := fs.ShorthandLookup(a[j : j+1])
				if f == nil {
					toks = append(toks, argTok{})
					break
				}
				if f.NoOptDefVal != "" {
					toks = append(toks, argTok{flag: f})
					continue
				}
				value := strings.TrimPrefix(a[j+1:], "=")
				if j+1 == len(a) && i+1 < len(args) {
					i++
					value = args[i]
					rest = append(rest, value)
				}
				toks = append(toks, argTok{flag: f, value: value})
				break
			}
		default:
			rest = append(rest, a)
		}
	}
	return toks, rest, nil
}

// parseInto parses one list of arguments (the command line, or one line
// of an options file) into o.
func (o *mqttOptions) parseInto(fs *pflag.FlagSet, args []string) ([]argTok, error) {
	toks, rest, err := scanArgs(fs, args)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		if t.prop != nil {
			if err := o.addProperty(t.prop); err != nil {
				return nil, err
			}
		}
	}
	if err := fs.Parse(rest); err != nil {
		return nil, fmt.Errorf("%v (tern %s --help lists the options)", err, o.tool)
	}
	if o.err != nil {
		return nil, o.err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every value follows its option (quote a message with spaces: -m 'hello world')", fs.Arg(0))
	}
	return toks, nil
}

// configDir is the directory of Tern's option files:
// $XDG_CONFIG_HOME/tern, else $HOME/.config/tern.
func configDir(getenv func(string) string) (string, error) {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "tern"), nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "tern"), nil
	}
	return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set")
}

// readOptionsFile reads an options file: one option per line, its value
// after the first space ("-h broker.example", "--will-retain"), lines
// starting with # ignored, as Mosquitto reads ~/.config/mosquitto_pub. A
// -D line is split into its words, the last taking the rest of the line
// ("-D connect user-property site north wing"). A missing file is no
// error: it gives nil.
func readOptionsFile(name string) ([][]string, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lines [][]string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r\n")
		if strings.HasPrefix(line, "#") {
			lines = append(lines, nil)
			continue
		}
		line = strings.TrimLeft(line, " \t")
		opt, value, hasValue := strings.Cut(line, " ")
		switch {
		case opt == "":
			lines = append(lines, nil)
		case (opt == "-D" || opt == "--property") && hasValue:
			n := 3
			if f := strings.Fields(value); len(f) > 1 && f[1] == "user-property" {
				n = 4
			}
			lines = append(lines, append([]string{opt}, splitWords(value, n)...))
		case hasValue:
			lines = append(lines, []string{opt, value})
		default:
			lines = append(lines, []string{opt})
		}
	}
	return lines, sc.Err()
}

// splitWords splits s into at most n words separated by spaces or tabs,
// the last taking the rest of s.
func splitWords(s string, n int) []string {
	var words []string
	for len(words) < n-1 {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return words
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			return append(words, s)
		}
		words = append(words, s[:end])
		s = s[end:]
	}
	if s = strings.TrimLeft(s, " \t"); s != "" {
		words = append(words, s)
	}
	return words
}

// parseMQTTArgs parses the options of tool: the defaults file
// ($XDG_CONFIG_HOME/tern/<tool>), then the connection saved under --load,
// then the command line, each later one adding to or overriding the
// earlier (Mosquitto's -t of sub, -T and -U add; the rest override).
func parseMQTTArgs(tool mqttTool, args []string, getenv func(string) string) (*mqttOptions, []argTok, error) {
	o := newMQTTOptions(tool)
	fs := o.flagSet()
	fs.SetOutput(discard{})

	// --load and --help are looked for first, as Mosquitto looks for -o.
	toks, _, err := scanArgs(fs, args)
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	load := ""
	for _, t := range toks {
		if t.flag != nil && t.flag.Name == "help" {
			o.help = true
			return o, nil, nil
		}
		if t.flag != nil && t.flag.Name == "load" {
			load = t.value
		}
	}

	files := []string{}
	dir, dirErr := configDir(getenv)
	if dirErr == nil {
		files = append(files, filepath.Join(dir, string(tool)))
	}
	if load != "" {
		if err := checkSaveName(load); err != nil {
			return nil, nil, usageErr("--load %s: %v", load, err)
		}
		if dirErr != nil {
			return nil, nil, usageErr("--load %s: %v", load, dirErr)
		}
		p := savedPath(dir, load)
		if _, err := os.Stat(p); err != nil {
			return nil, nil, usageErr("--load %s: no connection saved under that name (%s); save one with --save %s", load, p, load)
		}
		files = append(files, p)
	}
	for _, name := range files {
		lines, err := readOptionsFile(name)
		if err != nil {
			return nil, nil, usageErr("%s: %v", name, err)
		}
		for i, line := range lines {
			if line == nil {
				continue
			}
			if _, err := o.parseInto(fs, line); err != nil {
				return nil, nil, usageErr("%s line %d: %v", name, i+1, err)
			}
		}
	}
	cmdToks, err := o.parseInto(fs, args)
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	if err := o.validate(); err != nil {
		return nil, nil, usageErr("%v", err)
	}
	return o, cmdToks, nil
}

// discard is an io.Writer that drops pflag's own messages: the errors
// are returned and printed once.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// validate checks the options together, as Mosquitto's
// client_config_load and each tool's main do, and fills in the defaults
// that depend on other options.
func (o *mqttOptions) validate() error {
	switch {
	case o.psk != "" || o.pskIdentity != "":
		return errors.New("--psk, --psk-identity: TLS-PSK is not supported (Go's crypto/tls has no PSK cipher suites); use certificates: --cafile, --cert, --key")
	case o.tlsEngine != "" || o.engineKpass != "":
		return errors.New("--tls-engine, --tls-engine-kpass-sha1: OpenSSL engines are not supported; give the key as a PEM file with --key")
	case o.keyform != "" && o.keyFile == "":
		return errors.New("--keyform needs --key, the file of the private key")
	case o.keyform != "" && o.keyform != "pem":
		return fmt.Errorf("--keyform %s: only pem is supported", o.keyform)
	case o.certFile != "" && o.keyFile == "":
		return errors.New("--cert needs --key, the file of its private key")
	case o.keyFile != "" && o.certFile == "":
		return errors.New("--key needs --cert, the file of its certificate")
	case o.hasWillPayload && o.willTopic == "":
		return errors.New("--will-payload needs --will-topic, the topic of the will")
	case o.willRetain && o.willTopic == "":
		return errors.New("--will-retain needs --will-topic, the topic of the will")
	case o.hasWillQoS && o.willTopic == "":
		return errors.New("--will-qos needs --will-topic, the topic of the will")
	case o.id != "" && o.idPrefix != "":
		return errors.New("-i and -I cannot be used together: give the client identifier (-i) or its prefix (-I)")
	case o.proxy != "" && o.scheme == "unix":
		return errors.New("--proxy cannot be used with a unix socket (--unix)")
	}
	if o.ciphers != "" {
		if _, err := cipherSuites(o.ciphers); err != nil {
			return err
		}
	}

	if o.needV5 != "" {
		if o.versionSet && o.version != packet.V5 {
			return fmt.Errorf("%s needs MQTT 5, and -V asks for %s; drop -V or give -V 5", o.needV5, versionName(o.version))
		}
		o.version = packet.V5
	}
	if o.tool == toolRR && o.version != packet.V5 && o.versionSet {
		// mosquitto_rr falls back on its own correlation for 3.1.1;
		// Tern's request/response needs MQTT 5's response topic.
		return fmt.Errorf("-V %s: tern rr needs MQTT 5 (response topic and correlation data); drop -V", versionName(o.version))
	}
	if o.version == packet.V5 {
		if o.props[cmdConnect].Has(packet.PropSessionExpiry) {
			if o.sessionExpiry >= 0 {
				return errors.New("-x and -D connect session-expiry-interval both set the session expiry interval; give one")
			}
			o.sessionExpiry = int64(o.props[cmdConnect].SessionExpiry)
		}
		if !o.clean && o.sessionExpiry == -1 {
			// -c without -x: a session that does not expire.
			o.sessionExpiry = math.MaxUint32
		}
		if o.sessionExpiry == math.MaxUint32 && (o.idPrefix != "" || o.id == "") {
			return errors.New("a session that never expires (-c, or -x -1) needs a client identifier: give -i")
		}
	} else if !o.clean && (o.idPrefix != "" || o.id == "") {
		// [v3 MQTT-3.1.3-7] an empty client identifier needs clean session 1.
		return errors.New("-c keeps the session of a client identifier: give -i")
	}
	if o.sessionExpiry < 0 {
		o.sessionExpiry = 0
	}
	if o.hasPass && !o.hasUser && o.version != packet.V5 {
		// [v3 MQTT-3.1.2-22] no password without a user name before MQTT 5.
		return fmt.Errorf("-P needs -u with MQTT %s (a password without a user name is MQTT 5 only)", map[packet.Version]string{packet.V31: "3.1", packet.V311: "3.1.1"}[o.version])
	}

	switch o.tool {
	case toolPub:
		if len(o.topics) == 0 || o.mode == msgNone {
			return errors.New("give the topic (-t) and the message (-m, -f, -l, -n or -s), as in tern pub -t sensors/temp -m 21.5")
		}
	case toolRR:
		if len(o.topics) == 0 || o.mode == msgNone || o.responseTopic == "" {
			return errors.New("give the request topic (-t), the message (-m, -f, -n or -s) and the response topic (-e), as in tern rr -t svc/time -e reply/me -m now")
		}
	case toolSub:
		if len(o.topics) == 0 {
			return errors.New("give a topic filter to subscribe to with -t (repeat it for more), as in tern sub -t 'sensors/#'")
		}
		if o.noRetained && o.retainedOnly {
			return errors.New("-R and --retained-only cannot be used together: -R drops the retained messages --retained-only prints")
		}
	}
	return nil
}

// versionName is the -V spelling of v.
func versionName(v packet.Version) string {
	switch v {
	case packet.V31:
		return "31"
	case packet.V311:
		return "311"
	}
	return "5"
}

// tlsOn reports whether the connection uses TLS: -L mqtts:// or wss://,
// --cafile, --capath, --tls-use-os-certs, or -p 8883 (as Mosquitto 2.0,
// which then trusts the system's certificates).
func (o *mqttOptions) tlsOn() bool {
	switch o.scheme {
	case "mqtts", "wss":
		return true
	case "unix":
		return false
	}
	return o.cafile != "" || o.capath != "" || o.useOSCerts || (o.scheme == "" && o.port == 8883)
}

// serverURL is the URL the client dials.
func (o *mqttOptions) serverURL() string {
	if o.scheme == "unix" {
		return "unix://" + o.unixPath
	}
	scheme := o.scheme
	if scheme == "" {
		scheme = "mqtt"
	}
	if o.tlsOn() {
		switch scheme {
		case "mqtt":
			scheme = "mqtts"
		case "ws":
			scheme = "wss"
		}
	}
	port := o.port
	if port == 0 {
		port = map[string]int{"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}[scheme]
	}
	host := o.host
	if host == "" {
		host = "localhost"
	}
	u := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
	if scheme == "ws" || scheme == "wss" {
		u += "/mqtt"
	}
	return u
}

// clientID is the client identifier to connect with: -i, or -I and the
// process id, or empty (the broker assigns one).
func (o *mqttOptions) clientID() string {
	if o.idPrefix != "" {
		return o.idPrefix + strconv.Itoa(os.Getpid())
	}
	return o.id
}
