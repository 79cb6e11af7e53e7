package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
)

// engineAuth is a cluster: section's credentials and TLS keys.
type engineAuth struct {
	url, extra string // extra: more cluster keys, indented by 2
	pki        *testpki.PKI
	cert, key  string
}

func (a engineAuth) config(t *testing.T, name string) string {
	return writeFile(t, name+".yaml", fmt.Sprintf("cluster:\n  url: %s\n  node: %s\n%s  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n",
		a.url, name, a.extra, a.pki.CAFile, a.cert, a.key))
}

// startAuthNodes starts three brokers with the configuration of a.
func startAuthNodes(t *testing.T, a engineAuth) []*brokerProc {
	var nodes []*brokerProc
	for i := range 3 {
		nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory", "-c", a.config(t, fmt.Sprint("node", i+1))))
	}
	for i, n := range nodes {
		n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
	}
	return nodes
}

func newPKI(t *testing.T) (*testpki.PKI, string, string) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.ClientFiles("tern")
	if err != nil {
		t.Fatal(err)
	}
	return pki, cert, key
}

// TestBrokerClusterRedisTLS: three brokers on a redis-server that takes
// TLS only with a client certificate and an ACL user with a password.
func TestBrokerClusterRedisTLS(t *testing.T) {
	pki, cert, key := newPKI(t)
	tlsPort := mqtttest.FreePort(t)
	r := mqtttest.StartRedis(t, mqtttest.RedisOptions{Args: []string{"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", pki.CertFile, "--tls-key-file", pki.KeyFile, "--tls-ca-cert-file", pki.CAFile, "--tls-auth-clients", "yes",
		"--user", "tern", "on", ">secret", "~*", "&*", "+@all"}})
	_ = r
	a := engineAuth{url: fmt.Sprintf("rediss://127.0.0.1:%d", tlsPort), extra: "  user: tern\n  password: secret\n", pki: pki, cert: cert, key: key}
	testThreeNodes(t, startAuthNodes(t, a))

	// A wrong password, or no client certificate: the broker says so.
	bad := a
	bad.extra = "  user: tern\n  password: wrong\n"
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", bad.config(t, "bad"))
	if code == 0 || !strings.Contains(errOut, "WRONGPASS") {
		t.Errorf("wrong password: exit %d, stderr:\n%s", code, errOut)
	}
	noCert := writeFile(t, "nocert.yaml", fmt.Sprintf("cluster:\n  url: %s\n  user: tern\n  password: secret\n  tls:\n    ca_file: %s\n", a.url, pki.CAFile))
	if _, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", noCert); code == 0 {
		t.Errorf("no client certificate: exit 0, stderr:\n%s", errOut)
	}
}

// natsTLSConf is a nats-server tls block requiring client certificates.
func natsTLSConf(pki *testpki.PKI) string {
	return fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", pki.CertFile, pki.KeyFile, pki.CAFile)
}

// TestBrokerClusterNATSTLS: three brokers on Debian's nats-server with
// TLS and client certificates, logging in with a user and password, then
// with a token.
func TestBrokerClusterNATSTLS(t *testing.T) {
	pki, cert, key := newPKI(t)
	tlsOpts := []nats.Option{nats.RootCAs(pki.CAFile), nats.ClientCert(cert, key)}
	s := mqtttest.StartNATSServer(t, mqtttest.NATSServerOptions{
		Config:         natsTLSConf(pki) + "authorization {\n  user: tern\n  password: secret\n}\n",
		ConnectOptions: append(tlsOpts, nats.UserInfo("tern", "secret"))})
	a := engineAuth{url: "tls://" + s.Addr, extra: "  user: tern\n  password: secret\n", pki: pki, cert: cert, key: key}
	testThreeNodes(t, startAuthNodes(t, a))

	bad := a
	bad.extra = "  user: tern\n  password: wrong\n"
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", bad.config(t, "bad"))
	if code == 0 || !strings.Contains(strings.ToLower(errOut), "authorization") {
		t.Errorf("wrong password: exit %d, stderr:\n%s", code, errOut)
	}
}

func TestBrokerClusterNATSToken(t *testing.T) {
	pki, cert, key := newPKI(t)
	s := mqtttest.StartNATSServer(t, mqtttest.NATSServerOptions{
		Config:         natsTLSConf(pki) + "authorization {\n  token: s3cr3t\n}\n",
		ConnectOptions: []nats.Option{nats.RootCAs(pki.CAFile), nats.ClientCert(cert, key), nats.Token("s3cr3t")}})
	a := engineAuth{url: "nats://" + s.Addr, extra: "  token: s3cr3t\n", pki: pki, cert: cert, key: key}
	testThreeNodes(t, startAuthNodes(t, a))
}

// TestBrokerClusterAuthBadConfig: credentials that do not fit the engine
// are refused with an error naming the key.
func TestBrokerClusterAuthBadConfig(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"cluster:\n  url: redis://127.0.0.1:1\n  token: x\n", "cluster.token is for NATS"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  token: x\n  user: u\n", "one way to log in"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  creds_file: /nonexistent.creds\n", "cluster.creds_file"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  tls:\n    cert_file: /x.pem\n", "cluster.tls.key_file"},
		{"cluster:\n  url: nats://127.0.0.1:1\n  tls:\n    ca_file: /nonexistent.pem\n", "cluster.tls.ca_file"},
		{"cluster:\n  user: u\n", "but no cluster"},
		{"cluster:\n  url: redis://127.0.0.1:1\n  replicas: 3\n", "cluster.replicas is for NATS"},
		{"cluster:\n  user: u\n  embedded:\n    listen: 127.0.0.1:0\n", "embedded NATS server's routes"},
	} {
		_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "-c", writeFile(t, "c.yaml", tc.conf))
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr lacks %q:\n%s", tc.conf, code, tc.want, errOut)
		}
	}
}

// operatorConf writes a user's credentials file and returns the
// nats-server configuration of operator mode (an operator, a system
// account and an account with JetStream, in a memory resolver) that
// accepts it.
func operatorConf(t *testing.T) (conf, creds string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	op, err := nkeys.CreateOperator()
	must(err)
	opPub, _ := op.PublicKey()
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(op)
	must(err)
	account := func(js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		enc, err := ac.Encode(op)
		must(err)
		return kp, pub, enc
	}
	_, sysPub, sysJWT := account(false)
	acc, accPub, accJWT := account(true)
	user, err := nkeys.CreateUser()
	must(err)
	userPub, _ := user.PublicKey()
	userJWT, err := jwt.NewUserClaims(userPub).Encode(acc)
	must(err)
	seed, _ := user.Seed()
	file, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	creds = writeFile(t, "tern.creds", string(file))
	conf = fmt.Sprintf("operator: %q\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: {\n  %s: %q\n  %s: %q\n}\n",
		opJWT, sysPub, sysPub, sysJWT, accPub, accJWT)
	return conf, creds
}

// TestBrokerClusterNATSCreds: three brokers on Debian's nats-server in
// operator mode, logging in with a credentials file (user JWT and NKey
// seed).
func TestBrokerClusterNATSCreds(t *testing.T) {
	conf, creds := operatorConf(t)
	s := mqtttest.StartNATSServer(t, mqtttest.NATSServerOptions{Config: conf, ConnectOptions: []nats.Option{nats.UserCredentials(creds)}})
	var nodes []*brokerProc
	for i := range 3 {
		cfg := writeFile(t, fmt.Sprint("n", i, ".yaml"), fmt.Sprintf("cluster:\n  url: %s\n  node: node%d\n  creds_file: %s\n", s.URL, i+1, creds))
		nodes = append(nodes, launchBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--in-memory", "-c", cfg))
	}
	for i, n := range nodes {
		n.waitLog(fmt.Sprintf(`msg="joined the back plane" .*node=node%d`, i+1))
	}
	testThreeNodes(t, nodes)
	// Without the credentials: refused, and the broker says so.
	_, errOut, code := runTern(t, "", "broker", "--in-memory", "--listen", "tcp://127.0.0.1:0", "--cluster", s.URL)
	if code == 0 || !strings.Contains(strings.ToLower(errOut), "authorization") {
		t.Errorf("without credentials: exit %d, stderr:\n%s", code, errOut)
	}
}
