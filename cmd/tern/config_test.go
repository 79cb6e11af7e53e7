package main

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// TestConfigErrors runs tern broker with bad configuration files and
// flags and checks the whole message: it names the key as written (with
// the file and line) or the flag, and says how to fix the value.
func TestConfigErrors(t *testing.T) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		yaml string   // tern.yaml, given as -c tern.yaml; "" for none
		args []string // more arguments
		want string   // the whole of stderr; DIR is the test's directory
	}{
		// Keys that do not exist.
		{"unknown key", "limits:\n  bogus: 1\n", nil,
			`tern.yaml:2: unknown key "bogus" in limits; tern broker --example-config prints every key`},
		{"misspelt key", "listners: []\n", nil,
			`tern.yaml:1: unknown key "listners" at the top level (did you mean listeners?); tern broker --example-config prints every key`},
		{"key in the wrong section", "max_inflight: 5\n", nil,
			`tern.yaml:1: unknown key "max_inflight" at the top level (did you mean limits.max_inflight?); tern broker --example-config prints every key`},
		{"unknown listener key", "listeners:\n  - type: tcp\n    adr: 127.0.0.1:0\n", nil,
			`tern.yaml:3: unknown key "adr" in listeners[0] (did you mean listeners[0].addr?); tern broker --example-config prints every key`},
		{"duplicate key", "limits:\n  max_inflight: 5\n  max_inflight: 6\n", nil,
			`tern.yaml:3: limits.max_inflight is set twice (first on line 2)`},

		// Values of the wrong type, with a hint.
		{"duration without unit", "sys_interval: 5\n", nil,
			`tern.yaml:1: sys_interval: 5 has no unit: write a duration such as 5s (units: ms, s, m, h)`},
		{"not a duration", "limits:\n  write_timeout: soon\n", nil,
			`tern.yaml:2: limits.write_timeout: "soon" is not a duration: write one such as 30s, 1m30s or 500ms`},
		{"not an integer", "limits:\n  max_inflight: lots\n", nil,
			`tern.yaml:2: limits.max_inflight: "lots" is not a whole number: write one such as 20`},
		{"not a boolean", "mqtt5:\n  retain_available: maybe\n", nil,
			`tern.yaml:2: mqtt5.retain_available: "maybe" is not a boolean: write true or false`},
		{"not a choice", "log_level: loud\n", nil,
			`tern.yaml:1: log_level: "loud" is not one of trace, debug, info, warn, error`},
		{"shared strategy", "mqtt5:\n  shared_strategy: fair\n", nil,
			`tern.yaml:2: mqtt5.shared_strategy: "fair" is not one of round-robin, random, sticky-client, hash-topic`},
		{"section given a value", "limits: 5\n", nil,
			`tern.yaml:1: limits must be a mapping of keys (key: value), not the value "5"`},
		{"value given a list", "log_level: [info]\n", nil,
			`tern.yaml:1: log_level must be a single value, not a list`},
		{"not a mapping", "- a\n- b\n", nil,
			`tern.yaml:1: the file must be a mapping of keys (key: value); tern broker --example-config prints every key`},

		// Values out of range: nothing is accepted that would not work.
		{"receive_maximum 0", "mqtt5:\n  receive_maximum: 0\n", nil, `tern.yaml:2: mqtt5.receive_maximum: 0 is outside 1..65535`},
		{"topic_alias_maximum", "mqtt5:\n  topic_alias_maximum: 70000\n", nil, `tern.yaml:2: mqtt5.topic_alias_maximum: 70000 is outside 0..65535`},
		{"topic_alias_maximum negative", "mqtt5:\n  topic_alias_maximum: -1\n", nil, `tern.yaml:2: mqtt5.topic_alias_maximum: -1 is outside 0..65535`},
		{"maximum_qos", "mqtt5:\n  maximum_qos: 3\n", nil, `tern.yaml:2: mqtt5.maximum_qos: 3 is outside 0..2`},
		{"max_inflight 0", "limits:\n  max_inflight: 0\n", nil, `tern.yaml:2: limits.max_inflight: 0 is outside 1..65535`},
		{"connect_timeout 0", "limits:\n  connect_timeout: 0s\n", nil,
			`tern.yaml:2: limits.connect_timeout: 0s is not positive: write a duration such as 10s`},
		{"max_session_expiry negative", "mqtt5:\n  max_session_expiry: -1s\n", nil,
			`tern.yaml:2: mqtt5.max_session_expiry: -1s must not be negative`},
		{"server_keep_alive large", "mqtt5:\n  server_keep_alive: 70000s\n", nil,
			`tern.yaml:2: mqtt5.server_keep_alive: 19h26m40s is outside 0s..18h12m15s`},
		{"server_keep_alive small", "mqtt5:\n  server_keep_alive: 500ms\n", nil,
			`tern.yaml:2: mqtt5.server_keep_alive: 500ms is less than one second`},

		// Listeners: errors name listeners[i] and the key, never a Go field.
		{"listener type", "listeners:\n  - type: quic\n    addr: x:1\n", nil,
			`tern.yaml:2: listeners[0].type: "quic" is not one of tcp, tls, ws, wss, unix, http, https`},
		{"tls without certificate", "listeners:\n  - type: tcp\n    addr: 127.0.0.1:0\n  - type: tls\n    addr: 127.0.0.1:0\n", nil,
			`tern.yaml:4: listeners[1]: a tls listener needs a certificate: set listeners[1].tls.cert_file and listeners[1].tls.key_file`},
		{"missing certificate", "listeners:\n  - type: tls\n    addr: 127.0.0.1:0\n    tls:\n      cert_file: certs/missing.pem\n      key_file: certs/missing.key\n", nil,
			`tern.yaml:5: listeners[0].tls.cert_file: open DIR/certs/missing.pem: no such file or directory`},
		{"client_auth without CA", "listeners:\n  - type: tls\n    addr: 127.0.0.1:0\n    tls:\n      cert_file: " + pki.CertFile +
			"\n      key_file: " + pki.KeyFile + "\n      client_auth: require\n", nil,
			`tern.yaml:7: listeners[0].tls.client_auth: "require" needs client_ca_file`},
		{"key is not a key", "listeners:\n  - type: tls\n    addr: 127.0.0.1:0\n    tls:\n      cert_file: " + pki.CertFile +
			"\n      key_file: " + pki.CAFile + "\n", nil,
			`tern.yaml:4: listeners[0].tls: cert_file "` + pki.CertFile + `", key_file "` + pki.CAFile + `": tls: found a certificate rather than a key in the PEM for the private key`},
		{"tls on tcp", "listeners:\n  - type: tcp\n    addr: 127.0.0.1:0\n    tls:\n      cert_file: " + pki.CertFile + "\n      key_file: " + pki.KeyFile + "\n", nil,
			`tern.yaml:4: listeners[0].tls: only tls, wss, http and https listeners use TLS; remove it or make the listener tls or wss`},
		{"path on tcp", "listeners:\n  - type: tcp\n    addr: 127.0.0.1:0\n    path: /mqtt\n", nil,
			`tern.yaml:4: listeners[0].path: only ws and wss listeners have a path; remove it or make the listener ws or wss`},
		{"path without slash", "listeners:\n  - type: ws\n    addr: 127.0.0.1:0\n    path: mqtt\n", nil,
			`tern.yaml:4: listeners[0].path: "mqtt" must start with '/'`},
		{"unix without path", "listeners:\n  - type: unix\n", nil,
			`tern.yaml:2: listeners[0].addr: a unix listener needs a socket path`},
		{"two listeners, one name", "listeners:\n  - addr: 127.0.0.1:1\n  - addr: 127.0.0.1:1\n", nil,
			`tern.yaml:3: listeners[1].name: "tcp 127.0.0.1:1" is used by two listeners`},
		{"cert common name on tcp", "listeners:\n  - addr: 127.0.0.1:1\n    use_cert_common_name: true\n", nil,
			`tern.yaml:3: listeners[0].use_cert_common_name: needs a tls or wss listener`},

		// Authentication.
		{"missing password file", "auth:\n  password_file: passwd\n", nil,
			`tern.yaml:2: auth.password_file: open DIR/passwd: no such file or directory`},
		{"scram without password file", "auth:\n  scram: true\n", nil,
			`tern.yaml:2: auth.scram: SCRAM needs a password file: set auth.password_file (--password-file)`},
		{"allow_anonymous false without password file", "auth:\n  allow_anonymous: false\n", nil,
			`tern.yaml:2: auth.allow_anonymous: without a password file every client connects anonymously; set auth.password_file (--password-file)`},

		// Flags.
		{"--password-file", "", []string{"--password-file", "nope"},
			`--password-file: open DIR/nope: no such file or directory`},
		{"--scram", "", []string{"--scram"},
			`--scram: SCRAM needs a password file: set auth.password_file (--password-file)`},
		{"--max-packet-size", "", []string{"--max-packet-size", "10"},
			`invalid argument "10" for "--max-packet-size" flag: 10 is outside 64..268435460`},
		{"--receive-maximum", "", []string{"--receive-maximum", "0"},
			`invalid argument "0" for "--receive-maximum" flag: 0 is outside 1..65535`},
		{"--sys-interval", "", []string{"--sys-interval", "5"},
			`invalid argument "5" for "--sys-interval" flag: 5 has no unit: write a duration such as 5s (units: ms, s, m, h)`},
		{"--queue-policy", "", []string{"--queue-policy", "fifo"},
			`invalid argument "fifo" for "--queue-policy" flag: "fifo" is not one of drop-newest, drop-oldest`},
		{"--listen scheme", "", []string{"--listen", "ftp://x:1"}, `--listen "ftp://x:1": unknown scheme "ftp": use tcp, ws or unix`},
		{"--listen tls", "", []string{"--listen", "tls://x:1"},
			`--listen "tls://x:1": tls listeners need certificates: configure them in the YAML file (listeners[].tls)`},
		{"-p", "", []string{"-p", "70000"}, `-p "70000": a port is a number from 0 to 65535 (0: any free port)`},
		{"a flag names the flag", "", []string{"--listen", "tcp://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"},
			`--listen tcp://127.0.0.1:0: "tcp 127.0.0.1:0" is used by two listeners`},
		{"missing config file", "", []string{"-c", "nope.yaml"}, `config file: open DIR/nope.yaml: no such file or directory`},

		// YAML syntax errors point at the line at fault, not at the
		// enclosing block.
		{"bad indentation", "log_level: info\nlimits:\n  max_inflight: 5\n max_queued_messages: 10\n", nil,
			"tern.yaml:4: YAML syntax error: did not find expected key\n  4 |  max_queued_messages: 10"},
		{"bad indentation in a list", "listeners:\n  - type: tcp\n    addr: 127.0.0.1:0\n   path: /a\n", nil,
			"tern.yaml:4: YAML syntax error: did not find expected '-' indicator\n  4 |    path: /a"},
		{"unclosed bracket", "log_level: info\nlimits: [1, 2\nsys_interval: 5s\n", nil,
			"tern.yaml:2: YAML syntax error: did not find expected ',' or ']'\n  2 | limits: [1, 2"},
		{"tab", "log_level: info\n\tsys_interval: 5s\n", nil,
			"tern.yaml:2: YAML syntax error: found a tab character that violates indentation\n  2 | \tsys_interval: 5s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"broker"}
			if tc.yaml != "" {
				writeIn(t, dir, "tern.yaml", tc.yaml)
				args = append(args, "-c", "tern.yaml")
			}
			stdout, stderr, code := runTern(t, dir, append(args, tc.args...)...)
			want := "tern: " + strings.ReplaceAll(tc.want, "DIR", dir) + "\n"
			if code != 2 || stderr != want || stdout != "" {
				t.Errorf("exit %d, stderr\n%s\nwant exit 2, stderr\n%s", code, stderr, want)
			}
		})
	}
}

// TestExampleConfig checks that tern broker --example-config prints
// every key of the table, that parsing it gives the defaults, and that
// with the commented-out keys uncommented every key decodes.
func TestExampleConfig(t *testing.T) {
	out, stderr, code := runTern(t, "", "broker", "--example-config")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	example := writeFile(t, "tern.yaml", out)
	got, err := buildFromArgs(t, "-c", example)
	if err != nil {
		t.Fatalf("parsing the example: %v\n%s", err, out)
	}
	want, err := buildFromArgs(t)
	if err != nil {
		t.Fatal(err)
	}
	got.Logger, want.Logger = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the example does not give the defaults:\n got %+v\nwant %+v", got, want)
	}

	// Uncommented, the example sets every key.
	uncomment := regexp.MustCompile(`(?m)^( {0,8})# ( *[a-z_]+:(?: .*)?)$`) // not the wrapped comments, further right
	full := uncomment.ReplaceAllString(out, "$1$2")
	c := newBrokerConfig()
	if err := c.loadFile(writeFile(t, "full.yaml", full)); err != nil {
		t.Fatalf("the example with every key: %v\n%s", err, full)
	}
	for _, k := range keys {
		if _, ok := c.set[concrete(k.path, 0)]; !ok {
			t.Errorf("the example lacks %s:\n%s", k.path, full)
		}
	}
	if !strings.Contains(out, versionString()[:len("tern ")]) {
		t.Errorf("the example does not say which tern printed it")
	}
}

// TestConfigTableCoversServer: every field of broker.Server, Listener and
// transport.TLSConfig is set by a configuration key, or is one that only
// a program can set.
func TestConfigTableCoversServer(t *testing.T) {
	programOnly := map[string]bool{"Logger": true, "Observers": true, "HTTPHandler": true} // HTTPHandler: set from the http listeners (httpapi)
	check := func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() || programOnly[f.Name] {
				continue
			}
			if fieldKeys[prefix+f.Name] == nil {
				t.Errorf("no configuration key sets %s%s", prefix, f.Name)
			}
		}
	}
	check(reflect.TypeOf(broker.Server{}), "")
	check(reflect.TypeOf(broker.Listener{}), "Listeners[].")
	check(reflect.TypeOf(transport.TLSConfig{}), "Listeners[].TLS.")
	for _, k := range keys {
		if k.kind != kSection && k.kind != kList && k.ptr == nil {
			t.Errorf("%s sets nothing", k.path)
		}
		if k.def != "" && !strings.Contains(k.path, "[]") {
			if _, err := k.parse(k.def); err != nil {
				t.Errorf("%s: the default %q does not parse: %v", k.path, k.def, err)
			}
		}
	}
}

// TestRelativePaths runs tern broker from / with a configuration file in
// a temporary directory that names its files relatively: the password
// file, the ACL file, the TLS certificates and a unix socket are found
// beside the configuration file.
func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	pki, err := testpki.New(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	writeIn(t, dir, "passwd", passwordLine(t, "alice", "wonderland", false)+passwordLine(t, "bob", "builder", false))
	writeIn(t, dir, "acl", "user alice\ntopic readwrite alice/#\n")
	cfg := writeIn(t, dir, "tern.yaml", `
listeners:
  - type: tls
    addr: 127.0.0.1:0
    tls:
      cert_file: certs/server.pem
      key_file: ./certs/server.key
      client_ca_file: certs/../certs/ca.pem
      client_auth: request
  - type: unix
    addr: tern.sock
auth:
  password_file: passwd
  acl_file: acl
`)
	b := startBroker(t, "/", "--config", cfg)
	b.waitLog(`msg="authentication: password file" file=` + regexp.QuoteMeta(filepath.Join(dir, "passwd")) + ` users=2 `)
	b.waitLog(`msg="authorization: ACL file" file=` + regexp.QuoteMeta(filepath.Join(dir, "acl")) + ` rules=1`)
	b.waitLog(`msg=listening listener="unix ` + regexp.QuoteMeta(filepath.Join(dir, "tern.sock")) + `"`)

	connect := func(nc net.Conn) {
		t.Helper()
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		w, r := packet.NewWriter(nc), packet.NewReader(nc)
		r.Version = packet.V311
		if err := w.WritePacket(&packet.Connect{Version: packet.V311, ClientID: "rel", CleanStart: true,
			Username: "alice", Password: []byte("wonderland")}); err != nil {
			t.Fatal(err)
		}
		p, err := r.ReadPacket()
		if ack, ok := p.(*packet.Connack); err != nil || !ok || ack.ReasonCode != 0 {
			t.Fatalf("got %v, %v; want CONNACK 0\n%s", p, err, b)
		}
	}
	nc, err := tls.Dial("tcp", b.addr(), pki.ClientConfig())
	if err != nil {
		t.Fatalf("TLS with the certificate from certs/server.pem: %v", err)
	}
	connect(nc)
	unix, err := net.Dial("unix", filepath.Join(dir, "tern.sock"))
	if err != nil {
		t.Fatalf("the unix socket beside the configuration file: %v", err)
	}
	connect(unix)
}

// TestREADMEExampleConfig keeps the configuration file of README.md the
// output of --example-config.
func TestREADMEExampleConfig(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := writeExampleConfig(&out); err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(out.String(), versionString(), "tern <version>")
	_, block, ok := strings.Cut(string(readme), "```yaml\n# Configuration file of tern broker")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no example configuration block")
	}
	if got := "# Configuration file of tern broker" + block; got != want {
		t.Errorf("README.md's example configuration differs from tern broker --example-config; paste this:\n%s", want)
	}
}
