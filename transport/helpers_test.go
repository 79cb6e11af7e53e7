package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testTimeout bounds every wait in these tests: it only turns a hang into
// a failure and never decides a pass.
const testTimeout = 10 * time.Second

// leakCheck fails t if goroutines outlive it. Call it first: it runs
// after every other cleanup (listeners closed by t.Cleanup included).
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// acceptResult is one Accept outcome.
type acceptResult struct {
	c   net.Conn
	err error
}

// acceptAsync runs one Accept in a goroutine.
func acceptAsync(l net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := l.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

// waitAccept waits for an acceptAsync result and fails the test on error.
func waitAccept(t *testing.T, ch <-chan acceptResult) net.Conn {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept: %v", r.err)
		}
		return r.c
	case <-time.After(testTimeout):
		t.Fatal("Accept did not return")
		return nil
	}
}

// exchange sends a message each way between two connected conns and
// checks both arrive intact. The messages are larger than one TCP segment
// and one WebSocket frame buffer.
func exchange(t *testing.T, client, server net.Conn) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	defer client.SetDeadline(time.Time{})
	defer server.SetDeadline(time.Time{})
	up := bytes.Repeat([]byte("client->server "), 5000)
	down := bytes.Repeat([]byte("server->client "), 7000)
	errc := make(chan error, 2)
	go func() { _, err := client.Write(up); errc <- err }()
	go func() { _, err := server.Write(down); errc <- err }()
	gotUp := make([]byte, len(up))
	if _, err := io.ReadFull(server, gotUp); err != nil {
		t.Fatalf("server read: %v", err)
	}
	gotDown := make([]byte, len(down))
	if _, err := io.ReadFull(client, gotDown); err != nil {
		t.Fatalf("client read: %v", err)
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
		t.Fatal("data differs after the round trip")
	}
}

// checkClosedAccept closes l and checks Accept then fails with net.ErrClosed.
func checkClosedAccept(t *testing.T, l net.Listener) {
	t.Helper()
	ch := acceptAsync(l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case r := <-ch:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("Accept after Close: got %v, want an error wrapping net.ErrClosed", r.err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Accept did not return after Close")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Accept after Close: got %v, want net.ErrClosed", err)
	}
}

// closeAll closes conns concurrently and waits: WebSocket connections run
// a close handshake that completes at once when both ends close together.
func closeAll(conns ...net.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
		}()
	}
	wg.Wait()
}

// readAsync runs one Read of up to n bytes on c in a goroutine.
func readAsync(c net.Conn, n int) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, n))
		ch <- err
	}()
	return ch
}

// checkTimeout checks that err is a deadline error in every way callers
// test for one.
func checkTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a net.Error with Timeout() true", err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want errors.Is(err, os.ErrDeadlineExceeded)", err)
	}
}

// pki is a test CA with a server and two client certificates, as files.
type pki struct {
	dir                           string
	caFile, certFile, keyFile     string
	clientCert, otherCert         tls.Certificate // signed by the CA / by another CA
	clientCertFile, clientKeyFile string
	pool                          *x509.CertPool // holding the CA
	serverName                    string
}

var (
	pkiOnce sync.Once
	pkiErr  error
	pkiPEM  map[string][]byte
)

// newPKI writes a CA, a server certificate for 127.0.0.1 and localhost, a
// client certificate with common name "alice" and one from an unknown CA
// into a temporary directory. The keys are made once per test binary.
func newPKI(t *testing.T) *pki {
	t.Helper()
	pkiOnce.Do(func() { pkiPEM, pkiErr = makePKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	dir := t.TempDir()
	for name, b := range pkiPEM {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := &pki{
		dir:            dir,
		caFile:         filepath.Join(dir, "ca.pem"),
		certFile:       filepath.Join(dir, "server.pem"),
		keyFile:        filepath.Join(dir, "server-key.pem"),
		clientCertFile: filepath.Join(dir, "client.pem"),
		clientKeyFile:  filepath.Join(dir, "client-key.pem"),
		pool:           x509.NewCertPool(),
		serverName:     "localhost",
	}
	p.pool.AppendCertsFromPEM(pkiPEM["ca.pem"])
	var err error
	if p.clientCert, err = tls.X509KeyPair(pkiPEM["client.pem"], pkiPEM["client-key.pem"]); err != nil {
		t.Fatal(err)
	}
	if p.otherCert, err = tls.X509KeyPair(pkiPEM["other.pem"], pkiPEM["other-key.pem"]); err != nil {
		t.Fatal(err)
	}
	return p
}

// serverTLS builds the server configuration with the given client auth.
func (p *pki) serverTLS(t *testing.T, auth ClientAuthMode) *tls.Config {
	t.Helper()
	c := &TLSConfig{CertFile: p.certFile, KeyFile: p.keyFile, ClientAuth: auth}
	if auth != ClientAuthNone {
		c.ClientCAFile = p.caFile
	}
	cfg, err := c.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return cfg
}

// clientTLS returns a client configuration trusting the CA, presenting the
// given certificates.
func (p *pki) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: p.serverName, Certificates: certs}
}

// dialTLS returns a client configuration for Dial: trusting the CA, with
// no ServerName, so Dial must set it from the URL.
func (p *pki) dialTLS() *tls.Config {
	return &tls.Config{RootCAs: p.pool}
}

func makePKI() (map[string][]byte, error) {
	out := make(map[string][]byte)
	serial := int64(1)
	newKey := func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
	put := func(name string, der []byte, key *ecdsa.PrivateKey) error {
		out[name+".pem"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if key != nil {
			kb, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				return err
			}
			out[name+"-key.pem"] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
		}
		return nil
	}
	now := time.Now()
	makeCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
		key, err := newKey()
		if err != nil {
			return nil, nil, nil, err
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{CommonName: cn},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, nil, nil, err
		}
		cert, err := x509.ParseCertificate(der)
		return cert, key, der, err
	}
	leaf := func(name, cn string, server bool, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
		key, err := newKey()
		if err != nil {
			return err
		}
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		return put(name, der, key)
	}
	ca, caKey, caDER, err := makeCA("Tern test CA")
	if err != nil {
		return nil, err
	}
	if err := put("ca", caDER, nil); err != nil {
		return nil, err
	}
	other, otherKey, _, err := makeCA("Unknown CA")
	if err != nil {
		return nil, err
	}
	if err := leaf("server", "localhost", true, ca, caKey); err != nil {
		return nil, err
	}
	if err := leaf("client", "alice", false, ca, caKey); err != nil {
		return nil, err
	}
	if err := leaf("other", "mallory", false, other, otherKey); err != nil {
		return nil, err
	}
	return out, nil
}
