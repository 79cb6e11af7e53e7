package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
)

// Hashes made by other tools, to check that their files load.
const (
	// htpasswd -nbB -C 4 alice hunter2 (Apache 2.4)
	htpasswdAlice = "$2y$04$hfTZep4q3ZXKeMD12.RJy.krwdorsVDHjdNw4v/ty74KBSopBY3Rm"
	// echo -n 'correct horse' | argon2 saltsaltsalt16b -id -t 2 -m 10 -p 1 -l 32 -e
	// (the reference implementation, Debian's argon2 package)
	argon2refCarol = "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0MTZi$6+Z5/BvqPLj5NXKsHeQazFQS0+fzH1nP/eWBsq6+zQ0"
	// mosquitto_passwd -b f bob pw (Mosquitto 2.0)
	mosquittoBob = "$7$101$b2EjKLD4omF2D+BN$C3TxLpVk2qHdpUb10vVIMrN4rR9TTCqBlTRqXuLa2nGFFmf4SFbdv/CW4aE7oVZm4KiCnOSh+PCwp4LkQdWtNw=="
)

// fastArgon2 keeps argon2id tests quick.
var fastArgon2 = HashOptions{Argon2: true, Cost: 1, Argon2Memory: 64, Argon2Threads: 1}

func mustHash(t testing.TB, pw string, opts HashOptions) string {
	t.Helper()
	h, err := HashPassword(pw, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name   string
		opts   HashOptions
		prefix string
	}{
		{"bcrypt", HashOptions{Cost: 4}, "$2a$04$"},
		{"argon2id", fastArgon2, "$argon2id$v=19$m=64,t=1,p=1$"},
		{"argon2id defaults", HashOptions{Argon2: true, Argon2Memory: 64}, "$argon2id$v=19$m=64,t=3,p=2$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustHash(t, "s3cret pass", tt.opts)
			if !strings.HasPrefix(h, tt.prefix) {
				t.Fatalf("hash %q, want prefix %q", h, tt.prefix)
			}
			c, err := parseHash(h)
			if err != nil {
				t.Fatal(err)
			}
			if !c.verify([]byte("s3cret pass")) {
				t.Error("right password refused")
			}
			if c.verify([]byte("s3cret pas")) || c.verify(nil) {
				t.Error("wrong password accepted")
			}
			if h2 := mustHash(t, "s3cret pass", tt.opts); h2 == h {
				t.Error("two hashes of one password are equal: no salt?")
			}
		})
	}
	for _, tt := range []struct {
		pw   string
		opts HashOptions
		want string
	}{
		{"", HashOptions{}, "empty password"},
		{"x", HashOptions{Cost: 3}, "bcrypt cost 3 out of range 4 to 31"},
		{"x", HashOptions{Cost: 32}, "out of range"},
		{strings.Repeat("x", 73), HashOptions{Cost: 4}, "bcrypt uses only the first 72"},
		{"x", HashOptions{Argon2: true, Cost: -1}, "at least 1"},
		{"x", HashOptions{Argon2: true, Argon2Memory: 8, Argon2Threads: 2}, "below 8*p"},
	} {
		if _, err := HashPassword(tt.pw, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("HashPassword(%.10q, %+v) = %v, want error containing %q", tt.pw, tt.opts, err, tt.want)
		}
	}
}

func TestForeignHashes(t *testing.T) {
	for _, tt := range []struct{ hash, pw string }{
		{htpasswdAlice, "hunter2"},
		{argon2refCarol, "correct horse"},
		{"$2b$" + htpasswdAlice[4:], "hunter2"},
		{"$2a$" + htpasswdAlice[4:], "hunter2"},
		{argon2refCarol + "=", "correct horse"}, // padded base64
	} {
		c, err := parseHash(tt.hash)
		if err != nil {
			t.Fatalf("%s: %v", tt.hash, err)
		}
		if !c.verify([]byte(tt.pw)) || c.verify([]byte(tt.pw+"!")) {
			t.Errorf("%s does not verify as it should", tt.hash)
		}
	}
}

func TestParseHashErrors(t *testing.T) {
	for _, tt := range []struct{ hash, want string }{
		{"$1$abc$def", `unknown hash format "$1$..." (use bcrypt, argon2id or Mosquitto's $7$ or $6$; see tern passwd)`},
		{"$apr1$abc$def", `unknown hash format "$apr1$..."`},
		{"plaintext", "not a \"$\"-prefixed hash"},
		{"$2x$04$abc", "unknown hash format"},
		{"$2b$04$short", "malformed bcrypt hash"},
		{"$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "only the argon2id variant"},
		{"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "version must be v=19"},
		{"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "m, t and p are all required"},
		{"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "at least 1"},
		{"$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", `unknown parameter "x"`},
		{"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "above the limit"},
		{"$argon2id$v=19$m=64,t=1,p=1$c2Fs$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "salt is 3 bytes"},
		{"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$eXo", "hash is 2 bytes"},
		{"$argon2id$v=19$m=64,t=1,p=1$!!$yzQhz93VvBnr5cMg31MjsUqcIY1nHM8v0sPujlX/bfI", "salt is not base64"},
		{"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ", "wrong number"},
	} {
		_, err := parseHash(tt.hash)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseHash(%q) = %v, want error containing %q", tt.hash, err, tt.want)
		}
		if err != nil && len(tt.hash) > 12 && strings.Contains(err.Error(), tt.hash[len(tt.hash)-8:]) {
			t.Errorf("error %q quotes the hash", err)
		}
	}
}

func TestLoadPasswordFileErrors(t *testing.T) {
	dir := t.TempDir()
	bc := mustHash(t, "pw", HashOptions{Cost: 4})
	for _, tt := range []struct{ text, want string }{
		{"# ok\n\nalice:" + bc + "\nbob:$1$x$y\n", `passwd.txt:4: unknown hash format "$1$..." (use bcrypt, argon2id or Mosquitto's $7$ or $6$; see tern passwd)`},
		{"alice:" + bc + "\nsecretpassword\n", "passwd.txt:2: missing ':' (want username:hash"},
		{":" + bc + "\n", "passwd.txt:1: empty username"},
		{"alice:\n", `passwd.txt:1: user "alice" has no password hash`},
		{"alice:" + bc + "\r\n#x\r\nalice:" + bc + "\r\n", `passwd.txt:3: duplicate user "alice" (also on line 1)`},
	} {
		p := writeFile(t, dir, "passwd.txt", tt.text)
		_, err := LoadPasswordFile(p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadPasswordFile(%q) = %v, want error containing %q", tt.text, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpassword") {
			t.Errorf("error %q quotes a line that may be a password", err)
		}
	}
	if _, err := LoadPasswordFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	dir := t.TempDir()
	text := "# users\n" +
		"alice:" + htpasswdAlice + "\n" +
		"  carol:" + argon2refCarol + "  \r\n" +
		"dave:" + mustHash(t, "dave pw", HashOptions{Cost: 4}) + "\n" +
		"erin:" + mustHash(t, "erin pw", fastArgon2) + "\n"
	pf, err := LoadPasswordFile(writeFile(t, dir, "passwd", text))
	if err != nil {
		t.Fatal(err)
	}
	if pf.Len() != 4 {
		t.Fatalf("Len = %d", pf.Len())
	}
	req := func(user, pw string) *broker.AuthRequest {
		return &broker.AuthRequest{ClientInfo: broker.ClientInfo{ClientID: "c1", Username: user}, Password: []byte(pw)}
	}
	tests := []struct {
		name      string
		anonymous bool
		req       *broker.AuthRequest
		want      error
	}{
		{"bcrypt htpasswd", false, req("alice", "hunter2"), nil},
		{"bcrypt wrong", false, req("alice", "hunter3"), broker.ErrBadCredentials},
		{"bcrypt empty password", false, req("alice", ""), broker.ErrBadCredentials},
		{"argon2id reference", false, req("carol", "correct horse"), nil},
		{"argon2id wrong", false, req("carol", "correct horse "), broker.ErrBadCredentials},
		{"bcrypt own", false, req("dave", "dave pw"), nil},
		{"argon2id own", false, req("erin", "erin pw"), nil},
		{"unknown user", false, req("mallory", "hunter2"), broker.ErrBadCredentials},
		{"unknown user with anonymous", true, req("mallory", "hunter2"), broker.ErrBadCredentials},
		{"case matters", false, req("Alice", "hunter2"), broker.ErrBadCredentials},
		{"anonymous off", false, req("", ""), errAnonymous},
		{"anonymous off, password only", false, req("", "hunter2"), errAnonymous},
		{"anonymous on", true, req("", ""), nil},
		{"anonymous on, password only", true, req("", "whatever"), nil},
		{"inline", false, &broker.AuthRequest{ClientInfo: broker.ClientInfo{Inline: true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf.AllowAnonymous = tt.anonymous
			if err := pf.Authenticate(context.Background(), tt.req); err != tt.want {
				t.Errorf("Authenticate = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAuthenticateContext(t *testing.T) {
	dir := t.TempDir()
	pf, err := LoadPasswordFile(writeFile(t, dir, "p", "a:"+mustHash(t, "pw", HashOptions{Cost: 4})+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	pf.MaxConcurrent = 1
	ctx, cancel := context.WithCancel(context.Background())
	req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "a"}, Password: []byte("pw")}
	if err := pf.Authenticate(ctx, req); err != nil {
		t.Fatal(err)
	}
	pf.sem <- struct{}{} // the only slot is busy
	cancel()
	if err := pf.Authenticate(ctx, req); err != context.Canceled {
		t.Errorf("Authenticate with a cancelled context while busy = %v", err)
	}
	<-pf.sem
}

// testCerts makes a CA and a client certificate with the given common name,
// and returns the connection state a TLS listener verifying it would see.
func testCerts(t *testing.T, cn string) *tls.ConnectionState {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Tern test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Tern"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: chains}
}

func TestUseCertCN(t *testing.T) {
	dir := t.TempDir()
	pf, err := LoadPasswordFile(writeFile(t, dir, "p", "alice:"+htpasswdAlice+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	verified := testCerts(t, "sensor-7")
	unverified := &tls.ConnectionState{PeerCertificates: verified.PeerCertificates}
	noCN := testCerts(t, "")
	tests := []struct {
		name      string
		useCN     bool
		tls       *tls.ConnectionState
		user, pw  string
		want      error
		wantUser  string
		anonymous bool
	}{
		{"cert alone", true, verified, "", "", nil, "sensor-7", false},
		{"cert overrides the username", true, verified, "alice", "wrong", nil, "sensor-7", false},
		{"option off: password checked", false, verified, "alice", "wrong", broker.ErrBadCredentials, "alice", false},
		{"option off, anonymous", false, verified, "", "", errAnonymous, "", false},
		{"unverified cert: password checked", true, unverified, "alice", "wrong", broker.ErrBadCredentials, "alice", false},
		{"unverified cert, right password", true, unverified, "alice", "hunter2", nil, "alice", false},
		{"no TLS: password checked", true, nil, "alice", "hunter2", nil, "alice", false},
		{"verified cert without CN", true, noCN, "alice", "hunter2", errNoCommonName, "alice", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf.UseCertCN, pf.AllowAnonymous = tt.useCN, tt.anonymous
			req := &broker.AuthRequest{
				ClientInfo: broker.ClientInfo{ClientID: "c", Username: tt.user, TLS: tt.tls},
				Password:   []byte(tt.pw),
			}
			if err := pf.Authenticate(context.Background(), req); err != tt.want {
				t.Errorf("Authenticate = %v, want %v", err, tt.want)
			}
			if req.Username != tt.wantUser {
				t.Errorf("Username = %q, want %q", req.Username, tt.wantUser)
			}
		})
	}
}

func TestPasswordFileReload(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "p", "alice:"+htpasswdAlice+"\n")
	pf, err := LoadPasswordFile(p)
	if err != nil {
		t.Fatal(err)
	}
	auth := func(user, pw string) error {
		return pf.Authenticate(context.Background(), &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: user}, Password: []byte(pw)})
	}
	if err := auth("alice", "hunter2"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "p", "carol:"+argon2refCarol+"\n")
	if err := auth("carol", "correct horse"); err == nil {
		t.Fatal("carol accepted before Reload")
	}
	if err := pf.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := auth("carol", "correct horse"); err != nil {
		t.Errorf("carol after Reload: %v", err)
	}
	if err := auth("alice", "hunter2"); err == nil {
		t.Error("alice still accepted after Reload removed her")
	}
	// A broken file is refused and the old users are kept.
	writeFile(t, dir, "p", "carol:"+argon2refCarol+"\nbroken\n")
	if err := pf.Reload(); err == nil || !strings.Contains(err.Error(), "p:2:") {
		t.Errorf("Reload of a broken file = %v", err)
	}
	if err := auth("carol", "correct horse"); err != nil {
		t.Errorf("carol after a failed Reload: %v", err)
	}
	// An empty file refuses everyone (but anonymous clients if allowed).
	writeFile(t, dir, "p", "# nobody\n")
	if err := pf.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := auth("carol", "correct horse"); err != broker.ErrBadCredentials {
		t.Errorf("empty file: %v", err)
	}
	var zero PasswordFile
	if err := zero.Reload(); err == nil {
		t.Error("Reload of a PasswordFile without a path succeeded")
	}
	if err := zero.Authenticate(context.Background(), &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "x"}}); err != broker.ErrBadCredentials {
		t.Errorf("zero PasswordFile: %v", err)
	}
}

func TestReloadConcurrent(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "p", "erin:"+mustHash(t, "pw", fastArgon2)+"\n")
	pf, err := LoadPasswordFile(p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if err := pf.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "erin"}, Password: []byte("pw")}
		if err := pf.Authenticate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
