package transport

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTLSConfigValidate(t *testing.T) {
	leakCheck(t)
	p := newPKI(t)
	ok := TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  TLSConfig
		want []string
	}{
		{"empty", TLSConfig{}, []string{"tls: cert_file is required", "tls: key_file is required"}},
		{"missing cert", TLSConfig{CertFile: "x.pem", KeyFile: p.keyFile},
			[]string{`tls: cert_file "x.pem": open x.pem: no such file`}},
		{"missing key", TLSConfig{CertFile: p.certFile, KeyFile: "nokey.pem"},
			[]string{`tls: key_file "nokey.pem": open nokey.pem`}},
		{"missing ca", TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: "ca-x.pem", ClientAuth: ClientAuthRequire},
			[]string{`tls: client_ca_file "ca-x.pem": open ca-x.pem`}},
		{"require without ca", TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, ClientAuth: ClientAuthRequire},
			[]string{`tls: client_auth "require" needs client_ca_file`}},
		{"bad mode", TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, ClientAuth: 7},
			[]string{"tls: client_auth 7"}},
		{"bad version", TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, MinVersion: 0x0999},
			[]string{"tls: min_version 0x0999"}},
	} {
		err := tc.cfg.Validate()
		if err == nil {
			t.Errorf("%s: Validate succeeded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tc.name, err, w)
			}
		}
		if _, berr := tc.cfg.Build(); berr == nil {
			t.Errorf("%s: Build succeeded", tc.name)
		}
	}

	// A key that does not match the certificate fails in Build.
	bad := TLSConfig{CertFile: p.certFile, KeyFile: p.clientKeyFile}
	if _, err := bad.Build(); err == nil || !strings.Contains(err.Error(), "cert_file") {
		t.Errorf("mismatched key pair: %v", err)
	}
	// A CA file without certificates fails in Build.
	notCA := TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.keyFile, ClientAuth: ClientAuthRequest}
	if _, err := notCA.Build(); err == nil || !strings.Contains(err.Error(), "client_ca_file") {
		t.Errorf("CA file without certificates: %v", err)
	}
	cfg, err := ok.Build()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("defaults: MinVersion %x, ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

func TestClientAuthModeText(t *testing.T) {
	for in, want := range map[string]ClientAuthMode{
		"": ClientAuthNone, "none": ClientAuthNone, "request": ClientAuthRequest,
		"require": ClientAuthRequire, "require-and-verify": ClientAuthRequire,
	} {
		var m ClientAuthMode
		if err := m.UnmarshalText([]byte(in)); err != nil || m != want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", in, m, err, want)
		}
	}
	var m ClientAuthMode
	if err := m.UnmarshalText([]byte("always")); err == nil {
		t.Error(`UnmarshalText("always") succeeded`)
	}
	for _, m := range []ClientAuthMode{ClientAuthNone, ClientAuthRequest, ClientAuthRequire} {
		b, err := m.MarshalText()
		var back ClientAuthMode
		if err != nil || back.UnmarshalText(b) != nil || back != m {
			t.Errorf("round trip of %v: %q, %v", m, b, err)
		}
	}
}

// tlsPair accepts one TLS connection from a client with clientCfg and
// returns both ends; the client's handshake error, if any, is returned
// instead of failing.
func tlsPair(t *testing.T, l net.Listener, clientCfg *tls.Config) (client, server net.Conn, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ch := acceptAsync(l)
	type dialResult struct {
		c   net.Conn
		err error
	}
	dialed := make(chan dialResult, 1)
	go func() {
		d := tls.Dialer{Config: clientCfg}
		c, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err == nil {
			// TLS 1.3: a refused client certificate surfaces on the
			// client's first read, after the server's handshake.
			c.SetDeadline(time.Now().Add(testTimeout))
			if _, err = c.Write([]byte("x")); err == nil {
				_, err = c.Read(make([]byte, 1))
			}
			c.SetDeadline(time.Time{})
			if err != nil {
				c.Close()
			}
		}
		dialed <- dialResult{c, err}
	}()
	server = waitAccept(t, ch)
	server.SetDeadline(time.Now().Add(testTimeout))
	serr := server.(*tls.Conn).HandshakeContext(ctx)
	if serr == nil {
		b := make([]byte, 1)
		if _, serr = server.Read(b); serr == nil {
			_, serr = server.Write(b) // echo the byte back
		}
	}
	server.SetDeadline(time.Time{})
	r := <-dialed
	if err = r.err; err == nil {
		err = serr
	}
	if err != nil {
		if r.c != nil {
			r.c.Close()
		}
		server.Close()
		return nil, nil, err
	}
	return r.c, server, nil
}

func TestTLSNoClientAuth(t *testing.T) {
	leakCheck(t)
	p := newPKI(t)
	l, err := ListenTLS("127.0.0.1:0", p.serverTLS(t, ClientAuthNone))
	if err != nil {
		t.Fatal(err)
	}
	client, server, err := tlsPair(t, l, p.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, client, server)
	cs, ok := ConnectionState(server)
	if !ok || !cs.HandshakeComplete || cs.Version < tls.VersionTLS12 {
		t.Errorf("ConnectionState: %+v, %v", cs, ok)
	}
	if cn, ok := PeerCommonName(server); ok {
		t.Errorf("PeerCommonName without a client certificate: %q", cn)
	}
	if _, ok := ConnectionState(&net.TCPConn{}); ok {
		t.Error("ConnectionState of a TCP conn reported TLS")
	}
	client.Close()
	server.Close()
	checkClosedAccept(t, l)
}

func TestTLSRequireClientCert(t *testing.T) {
	leakCheck(t)
	p := newPKI(t)
	l, err := ListenTLS("127.0.0.1:0", p.serverTLS(t, ClientAuthRequire))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, err := tlsPair(t, l, p.clientTLS()); err == nil {
		t.Error("a client without a certificate was accepted")
	}
	if _, _, err := tlsPair(t, l, p.clientTLS(p.otherCert)); err == nil {
		t.Error("a client with a certificate from an unknown CA was accepted")
	}
	client, server, err := tlsPair(t, l, p.clientTLS(p.clientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer server.Close()
	if cn, ok := PeerCommonName(server); !ok || cn != "alice" {
		t.Errorf("PeerCommonName = %q, %v; want alice", cn, ok)
	}
	exchange(t, client, server)
}

func TestTLSRequestClientCert(t *testing.T) {
	leakCheck(t)
	p := newPKI(t)
	l, err := ListenTLS("127.0.0.1:0", p.serverTLS(t, ClientAuthRequest))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, server, err := tlsPair(t, l, p.clientTLS())
	if err != nil {
		t.Fatalf("a client without a certificate: %v", err)
	}
	if cn, ok := PeerCommonName(server); ok {
		t.Errorf("PeerCommonName without a certificate: %q", cn)
	}
	client.Close()
	server.Close()

	// PeerCommonName completes the handshake itself.
	ch := acceptAsync(l)
	errc := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", l.Addr().String(), p.clientTLS(p.clientCert))
		if err == nil {
			defer c.Close()
			_, err = c.Read(make([]byte, 1)) // until the server closes
		}
		errc <- err
	}()
	server = waitAccept(t, ch)
	server.SetDeadline(time.Now().Add(testTimeout))
	if cn, ok := PeerCommonName(server); !ok || cn != "alice" {
		t.Errorf("PeerCommonName = %q, %v; want alice", cn, ok)
	}
	server.Close()
	<-errc
}

func TestListenTLSNeedsCertificate(t *testing.T) {
	if _, err := ListenTLS("127.0.0.1:0", nil); err == nil {
		t.Error("ListenTLS with a nil config succeeded")
	}
	if _, err := ListenTLS("127.0.0.1:0", &tls.Config{}); err == nil {
		t.Error("ListenTLS without a certificate succeeded")
	}
}
