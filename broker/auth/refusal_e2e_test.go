package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// tlsFixture is a CA, a server certificate for 127.0.0.1 and client
// certificates it signed.
type tlsFixture struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	server tls.Certificate
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Tern refusal test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFixture{ca: ca, caKey: key}
	f.server = f.leaf(t, 2, "localhost", x509.ExtKeyUsageServerAuth)
	return f
}

// leaf makes a certificate signed by the CA with the given common name
// ("" for none).
func (f *tlsFixture) leaf(t *testing.T, serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Tern"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca, &key.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRefusalCodes checks, over real connections with MQTT 3.1, 3.1.1 and
// 5.0, the CONNACK code of each kind of refusal: no credentials when
// anonymous clients are not allowed and a user refused by policy get
// "not authorized" (5, 0x87); an unknown user, a wrong password or a
// username without a password get "bad user name or password" (4, 0x86).
func TestRefusalCodes(t *testing.T) {
	file := writeFile(t, t.TempDir(), "passwd",
		"alice:"+mustHash(t, "alice pw", HashOptions{Cost: 4})+"\nbob:"+mosquittoAlice7+"\n")
	fx := newTLSFixture(t)
	roots := x509.NewCertPool()
	roots.AddCert(fx.ca)
	// One broker per setting of AllowAnonymous, each with a TCP and a TLS
	// listener (the options are not changed while a broker runs).
	type addrs struct{ plain, tls string }
	brokers := map[bool]addrs{}
	for _, anonymous := range []bool{false, true} {
		pf, err := LoadPasswordFile(file)
		if err != nil {
			t.Fatal(err)
		}
		pf.UseCertCN, pf.AllowAnonymous = true, anonymous
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		brokers[anonymous] = addrs{
			plain: startBroker(t, &broker.Server{Authenticator: pf}),
			tls: startBrokerOn(t, &broker.Server{Authenticator: pf}, tls.NewListener(l, &tls.Config{
				Certificates: []tls.Certificate{fx.server},
				ClientAuth:   tls.VerifyClientCertIfGiven,
				ClientCAs:    roots,
			})),
		}
	}
	client := func(cert ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: roots, Certificates: cert}
	}
	noCN := client(fx.leaf(t, 3, "", x509.ExtKeyUsageClientAuth))
	withCN := client(fx.leaf(t, 4, "sensor-9", x509.ExtKeyUsageClientAuth))

	type codes struct{ v3, v5 packet.ReasonCode }
	accepted := codes{packet.V3Accepted, packet.Success}
	notAuthorized := codes{packet.V3NotAuthorized, packet.NotAuthorized}
	badCredentials := codes{packet.V3BadUsernameOrPassword, packet.BadUserNameOrPassword}
	for _, tt := range []struct {
		name      string
		anonymous bool
		tls       *tls.Config
		user, pw  string
		want      codes
	}{
		{"no credentials, anonymous off", false, nil, "", "", notAuthorized},
		{"no credentials, anonymous on", true, nil, "", "", accepted},
		{"unknown user", false, nil, "mallory", "alice pw", badCredentials},
		{"wrong password", false, nil, "alice", "alice pv", badCredentials},
		{"wrong password, Mosquitto hash", false, nil, "bob", "secret two", badCredentials},
		{"username without a password", false, nil, "alice", "", badCredentials},
		{"right password", false, nil, "alice", "alice pw", accepted},
		{"right password, Mosquitto hash", false, nil, "bob", "secret one", accepted},
		{"verified certificate with a common name", false, withCN, "", "", accepted},
		{"verified certificate without a common name", true, noCN, "alice", "alice pw", notAuthorized},
		{"TLS without a certificate, no credentials", false, client(), "", "", notAuthorized},
	} {
		for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
			t.Run(tt.name+"/"+v.String(), func(t *testing.T) {
				addr := brokers[tt.anonymous].plain
				if tt.tls != nil {
					addr = brokers[tt.anonymous].tls
				}
				cp := &packet.Connect{ClientID: "refusal-test", CleanStart: true, Username: tt.user, Password: []byte(tt.pw)}
				if tt.pw == "" {
					cp.Password = nil
				}
				want := tt.want.v3
				if v == packet.V5 {
					want = tt.want.v5
				}
				if got := connackCode(t, addr, tt.tls, v, cp); got != want {
					t.Errorf("CONNACK code 0x%02x, want 0x%02x", byte(got), byte(want))
				}
			})
		}
	}
	// MQTT 5 allows a password without a username: still anonymous.
	cp := &packet.Connect{ClientID: "refusal-test", CleanStart: true, Password: []byte("alice pw")}
	if got := connackCode(t, brokers[false].plain, nil, packet.V5, cp); got != packet.NotAuthorized {
		t.Errorf("password without a username: CONNACK code 0x%02x, want 0x87", byte(got))
	}
}
