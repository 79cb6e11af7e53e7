package scram

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The example exchange of RFC 7677 section 3: user "user", password
// "pencil".
const (
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcSalt        = "W22ZaJ0SNY7soEsUEjb6gQ=="
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// store is an in-memory CredentialStore.
type store map[string]Credentials

func (s store) LookupCredentials(_ context.Context, user string) (Credentials, error) {
	c, ok := s[user]
	if !ok {
		return Credentials{}, ErrUnknownUser
	}
	return c, nil
}

func mustCreds(t testing.TB, m *Mechanism, pw string, salt []byte, iter int) Credentials {
	t.Helper()
	var c Credentials
	var err error
	if salt == nil {
		c, err = m.NewCredentials(pw, iter)
	} else {
		c, err = m.Credentials(pw, salt, iter)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rfcStore(t testing.TB) store {
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	return store{"user": mustCreds(t, SHA256, "pencil", salt, 4096)}
}

func TestRFC7677Client(t *testing.T) {
	c := NewClient(SHA256, "user", "pencil")
	c.Nonce = rfcClientNonce
	first, err := c.First()
	if err != nil || string(first) != rfcClientFirst {
		t.Fatalf("First = %q, %v\nwant  %q", first, err, rfcClientFirst)
	}
	final, err := c.Final([]byte(rfcServerFirst))
	if err != nil || string(final) != rfcClientFinal {
		t.Fatalf("Final = %q, %v\nwant  %q", final, err, rfcClientFinal)
	}
	if err := c.Verify([]byte(rfcServerFinal)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := c.Verify([]byte(rfcServerFinal)); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("second Verify = %v, want ErrOutOfOrder", err)
	}
}

func TestRFC7677Server(t *testing.T) {
	ctx := context.Background()
	s := NewServer(SHA256, rfcStore(t))
	s.Nonce = rfcServerNonce
	out, done, err := s.Next(ctx, []byte(rfcClientFirst))
	if err != nil || done || string(out) != rfcServerFirst {
		t.Fatalf("Next(client-first) = %q, %v, %v\nwant %q", out, done, err, rfcServerFirst)
	}
	if s.Username() != "user" {
		t.Errorf("Username %q", s.Username())
	}
	out, done, err = s.Next(ctx, []byte(rfcClientFinal))
	if err != nil || !done || string(out) != rfcServerFinal {
		t.Fatalf("Next(client-final) = %q, %v, %v\nwant %q", out, done, err, rfcServerFinal)
	}
	if _, _, err := s.Next(ctx, []byte(rfcClientFinal)); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("Next after done = %v, want ErrOutOfOrder", err)
	}
}

// exchange runs client c against server s and returns the first error.
func exchange(t *testing.T, c *Client, s *Server) error {
	t.Helper()
	ctx := context.Background()
	first, err := c.First()
	if err != nil {
		return err
	}
	sf, done, err := s.Next(ctx, first)
	if err != nil {
		return err
	}
	if done {
		t.Fatal("server done after client-first")
	}
	final, err := c.Final(sf)
	if err != nil {
		return err
	}
	sfinal, done, err := s.Next(ctx, final)
	if err != nil {
		return err
	}
	if !done {
		t.Fatal("server not done after client-final")
	}
	return c.Verify(sfinal)
}

func TestRoundTrip(t *testing.T) {
	for _, m := range Mechanisms() {
		for _, user := range []string{"alice", "a,b=c", "=2C", "ünïcødé"} {
			t.Run(m.Name()+"/"+user, func(t *testing.T) {
				st := store{user: mustCreds(t, m, "correct horse", nil, 0)}
				s := NewServer(m, st)
				c := NewClient(m, user, "correct horse")
				if err := exchange(t, c, s); err != nil {
					t.Fatal(err)
				}
				if s.Username() != user {
					t.Errorf("server Username %q, want %q", s.Username(), user)
				}
				if len(c.Nonce) != 24 {
					t.Errorf("client nonce %q is not 24 characters", c.Nonce)
				}
			})
		}
	}
	if ByName("SCRAM-SHA-512") != SHA512 || ByName("SCRAM-SHA-256") != SHA256 || ByName("scram-sha-256") != nil || ByName("SCRAM-SHA-1") != nil {
		t.Error("ByName")
	}
}

func TestWrongPassword(t *testing.T) {
	for _, m := range Mechanisms() {
		st := store{"alice": mustCreds(t, m, "right", nil, 0)}
		err := exchange(t, NewClient(m, "alice", "wrong"), NewServer(m, st))
		if !errors.Is(err, ErrInvalidProof) {
			t.Errorf("%s: wrong password: %v, want ErrInvalidProof", m, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Value != "invalid-proof" || !strings.Contains(e.Error(), "wrong password") {
			t.Errorf("%s: error %#v", m, err)
		}
		// Credentials of the other mechanism do not work either.
		other := SHA512
		if m == SHA512 {
			other = SHA256
		}
		st2 := store{"alice": mustCreds(t, other, "right", nil, 0)}
		if err := exchange(t, NewClient(m, "alice", "right"), NewServer(m, st2)); err == nil {
			t.Errorf("%s accepted %s credentials", m, other)
		}
	}
}

func TestUnknownUser(t *testing.T) {
	ctx := context.Background()
	st := store{"alice": mustCreds(t, SHA256, "pw", nil, 8192)}
	err := exchange(t, NewClient(SHA256, "mallory", "pw"), NewServer(SHA256, st))
	if !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("unknown user: %v, want ErrInvalidProof like a wrong password", err)
	}
	// The made-up salt is the same each time for one name, different
	// for another, and the iteration count is MockIterations.
	salt := func(user string) string {
		s := NewServer(SHA256, st)
		s.MockIterations = 8192
		out, _, err := s.Next(ctx, []byte("n,,n="+user+",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		sf, err := parseServerFirst(out)
		if err != nil {
			t.Fatal(err)
		}
		if sf.iterations != 8192 || len(sf.salt) != SaltLen {
			t.Errorf("mock i=%d, salt %d bytes", sf.iterations, len(sf.salt))
		}
		return string(sf.salt)
	}
	if salt("mallory") != salt("mallory") {
		t.Error("the made-up salt changes between attempts, which gives the unknown user away")
	}
	if salt("mallory") == salt("trudy") {
		t.Error("two unknown users get one salt")
	}
}

func TestStoreError(t *testing.T) {
	boom := errors.New("database down")
	s := NewServer(SHA256, CredentialStoreFunc(func(context.Context, string) (Credentials, error) { return Credentials{}, boom }))
	if _, _, err := s.Next(context.Background(), []byte("n,,n=a,r=b")); !errors.Is(err, boom) {
		t.Errorf("store error: %v", err)
	}
	bad := NewServer(SHA256, store{"a": {Salt: []byte("s"), Iterations: 4096, StoredKey: make([]byte, 32)}})
	if _, _, err := bad.Next(context.Background(), []byte("n,,n=a,r=b")); err == nil || !strings.Contains(err.Error(), "ServerKey is 0 bytes") {
		t.Errorf("invalid stored credentials: %v", err)
	}
}

func TestTamperedNonce(t *testing.T) {
	ctx := context.Background()
	// Server side: the client-final-message's nonce must be the
	// exchange's.
	for _, final := range []string{
		strings.Replace(rfcClientFinal, "k0,", "k1,", 1),   // server part changed
		strings.Replace(rfcClientFinal, "rOpr", "rOpX", 1), // client part changed
		strings.Replace(rfcClientFinal, "k0,", ",", 1),     // server part cut
	} {
		s := NewServer(SHA256, rfcStore(t))
		s.Nonce = rfcServerNonce
		if _, _, err := s.Next(ctx, []byte(rfcClientFirst)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Next(ctx, []byte(final)); !errors.Is(err, ErrNonceMismatch) {
			t.Errorf("final %q: %v, want ErrNonceMismatch", final, err)
		}
	}
	// Client side: the server's nonce must extend the client's.
	for _, sf := range []string{
		"r=rOprNGfwEbeRWgbNEkqX%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", // client part changed
		"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",     // nothing added
		"r=rOpr,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",                     // cut
	} {
		c := NewClient(SHA256, "user", "pencil")
		c.Nonce = rfcClientNonce
		c.First()
		if _, err := c.Final([]byte(sf)); !errors.Is(err, ErrNonceMismatch) {
			t.Errorf("server-first %q: %v, want ErrNonceMismatch", sf, err)
		}
	}
}

func TestTamperedProofAndSignature(t *testing.T) {
	ctx := context.Background()
	proof := rfcClientFinal[strings.Index(rfcClientFinal, "p=")+2:]
	raw, _ := base64.StdEncoding.DecodeString(proof)
	raw[5] ^= 1
	flipped := strings.Replace(rfcClientFinal, proof, base64.StdEncoding.EncodeToString(raw), 1)
	short := strings.Replace(rfcClientFinal, proof, base64.StdEncoding.EncodeToString(raw[:31]), 1)
	for _, final := range []string{flipped, short} {
		s := NewServer(SHA256, rfcStore(t))
		s.Nonce = rfcServerNonce
		s.Next(ctx, []byte(rfcClientFirst))
		if _, _, err := s.Next(ctx, []byte(final)); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("tampered proof: %v, want ErrInvalidProof", err)
		}
	}
	// A server that does not know the credentials cannot sign.
	c := NewClient(SHA256, "user", "pencil")
	c.Nonce = rfcClientNonce
	c.First()
	c.Final([]byte(rfcServerFirst))
	if err := c.Verify([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=")); err == nil {
		t.Error("non-canonical signature accepted")
	}
	c = NewClient(SHA256, "user", "pencil")
	c.Nonce = rfcClientNonce
	c.First()
	c.Final([]byte(rfcServerFirst))
	if err := c.Verify([]byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))); !errors.Is(err, ErrServerSignature) {
		t.Errorf("wrong server signature: %v, want ErrServerSignature", err)
	}
}

func TestSaslname(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"user", "user"},
		{"a=2Cb", "a,b"},
		{"a=3Db", "a=b"},
		{"=2c=3d", ",="},
		{"=3D2C", "=2C"},
	} {
		got, err := decodeSaslname(tt.in, "test")
		if err != nil || got != tt.want {
			t.Errorf("decodeSaslname(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
		if tt.want != tt.in && !strings.EqualFold(encodeSaslname(tt.want), tt.in) {
			t.Errorf("encodeSaslname(%q) = %q", tt.want, encodeSaslname(tt.want))
		}
	}
	for _, in := range []string{"", "a=b", "a=", "a=2", "=", "==2C", "a=2Db", "a=3"} {
		if _, err := decodeSaslname(in, "test"); !errors.Is(err, ErrInvalidUsernameEncoding) {
			t.Errorf("decodeSaslname(%q) = %v, want ErrInvalidUsernameEncoding", in, err)
		}
	}
}

// TestServerMalformed feeds the server bad messages: each must fail with
// the right kind of error and a message that says what is wrong.
func TestServerMalformed(t *testing.T) {
	ctx := context.Background()
	long := "n,,n=user,r=" + strings.Repeat("x", maxMessageLen)
	firsts := []struct {
		msg  string
		kind *Error
		want string
	}{
		{"", ErrInvalidEncoding, "empty client-first-message"},
		{long, ErrInvalidEncoding, "more than the limit"},
		{"n,,n=user,r=abc\xff", ErrInvalidEncoding, "not UTF-8"},
		{"n,,n=us\x00er,r=abc", ErrInvalidEncoding, "NUL"},
		{"n=user,r=abc", ErrInvalidEncoding, "does not start with a GS2 header"},
		{"n=user,r=abc,x=y", ErrInvalidEncoding, "GS2 header must start with"},
		{"n,n=user,r=abc", ErrInvalidEncoding, "GS2 header's second field"},
		{"nn,,n=user,r=abc", ErrInvalidEncoding, "GS2 header must start with"},
		{"x", ErrInvalidEncoding, "does not start with a GS2 header"},
		{"n,", ErrInvalidEncoding, "does not start with a GS2 header"},
		{"n,,", ErrInvalidEncoding, "want \"n=<user>,r=<nonce>\""},
		{"p=tls-unique,,n=user,r=abc", ErrChannelBindingNotSupported, "channel binding"},
		{"p=tls-server-end-point,a=user,n=user,r=abc", ErrChannelBindingNotSupported, "GS2 header \"n,,\""},
		{"n,,m=ext,n=user,r=abc", ErrExtensionsNotSupported, "mandatory extension"},
		{"n,,n=user,r=abc,m=ext", ErrExtensionsNotSupported, "mandatory extension"},
		{"n,,r=abc,n=user", ErrInvalidEncoding, "want attribute \"n=\""},
		{"n,,n=user", ErrInvalidEncoding, "want \"n=<user>,r=<nonce>\""},
		{"n,,n=user,x=abc", ErrInvalidEncoding, "want attribute \"r=\""},
		{"n,,n=user,r=", ErrInvalidEncoding, "empty nonce"},
		{"n,,n=user,r=ab c", ErrInvalidEncoding, "printable ASCII"},
		{"n,,n=user,r=abé", ErrInvalidEncoding, "printable ASCII"},
		{"n,,n=,r=abc", ErrInvalidUsernameEncoding, "empty user name"},
		{"n,,n=us=er,r=abc", ErrInvalidUsernameEncoding, "'=' must be sent as \"=3D\""},
		{"n,a=x=y,n=user,r=abc", ErrInvalidUsernameEncoding, "'=' must be sent"},
		{"n,a=bob,n=user,r=abc", ErrInvalidEncoding, "acting as another user"},
		{"n,,n=user,r=abc,", ErrInvalidEncoding, "is not an attribute"},
		{"n,,n=user,r=abc,xy", ErrInvalidEncoding, "is not an attribute"},
		{"n,,n=user,r=abc,1=x", ErrInvalidEncoding, "is not an attribute"},
		{"n,,n=user,r=abc,x=", ErrInvalidEncoding, "is not an attribute"},
		{"n,,n=user,r=abc,r=def", ErrInvalidEncoding, "out of place"},
	}
	for _, tt := range firsts {
		s := NewServer(SHA256, rfcStore(t))
		out, done, err := s.Next(ctx, []byte(tt.msg))
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) || out != nil || done {
			t.Errorf("client-first %s: %q, %v, %v; want %s containing %q", quote(tt.msg), out, done, err, tt.kind.Value, tt.want)
		}
		if _, _, err := s.Next(ctx, []byte(rfcClientFinal)); !errors.Is(err, ErrOutOfOrder) {
			t.Errorf("after a failed client-first: %v, want ErrOutOfOrder", err)
		}
	}

	const n = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	const p = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	finals := []struct {
		msg  string
		kind *Error
		want string
	}{
		{"", ErrInvalidEncoding, "empty client-final-message"},
		{"c=biws," + n, ErrInvalidEncoding, "want \"c=<binding>,r=<nonce>,p=<proof>\""},
		{n + ",c=biws," + p, ErrInvalidEncoding, "want attribute \"c=\""},
		{"c=biws," + n + ",x=1", ErrInvalidEncoding, "last attribute must be the proof"},
		{"c=biws," + n + "," + p + "," + p, ErrInvalidEncoding, "attribute \"p=\" is out of place"},
		{"c=biws," + p + "," + n, ErrInvalidEncoding, "want attribute \"r=\""},
		{"c=biws," + n + "," + p + ",x=1", ErrInvalidEncoding, "out of place"},
		{"c=bi ws," + n + "," + p, ErrInvalidEncoding, "not base64"},
		{"c=biw\nsA," + n + "," + p, ErrInvalidEncoding, "not base64"},
		{"c=biws," + n + ",p=!!", ErrInvalidEncoding, "proof is not base64"},
		{"c=biws," + n + ",p=", ErrInvalidProof, "proof is 0 bytes"},
		{"c=eSws," + n + "," + p, ErrChannelBindingsDontMatch, "GS2 header"},
		{"c=," + n + "," + p, ErrChannelBindingsDontMatch, "GS2 header"},
		{"c=biws," + n + ",m=x," + p, ErrExtensionsNotSupported, "mandatory extension"},
		{"c=biws," + n + ",s=x," + p, ErrInvalidEncoding, "out of place"},
		{"m=x,c=biws," + n + "," + p, ErrExtensionsNotSupported, "mandatory extension"},
		{"c=biws,r=," + p, ErrInvalidEncoding, "empty nonce"},
	}
	for _, tt := range finals {
		s := NewServer(SHA256, rfcStore(t))
		s.Nonce = rfcServerNonce
		if _, _, err := s.Next(ctx, []byte(rfcClientFirst)); err != nil {
			t.Fatal(err)
		}
		out, done, err := s.Next(ctx, []byte(tt.msg))
		if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) || out != nil || done {
			t.Errorf("client-final %s: %q, %v, %v; want %s containing %q", quote(tt.msg), out, done, err, tt.kind.Value, tt.want)
		}
	}

	// Unknown extensions in their places are allowed and ignored.
	s := NewServer(SHA256, rfcStore(t))
	s.Nonce = rfcServerNonce
	if _, _, err := s.Next(ctx, []byte(rfcClientFirst+",x=ext")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Next(ctx, []byte(rfcClientFinal)); !errors.Is(err, ErrInvalidProof) {
		// The proof signs the bare message, which now has the extension.
		t.Errorf("with an extension: %v", err)
	}
}

func TestGS2HeaderY(t *testing.T) {
	// "y,,": the client could bind but thinks the server cannot; the
	// server accepts it, and "c=" must then be base64("y,,") = "eSws".
	ctx := context.Background()
	st := store{"user": mustCreds(t, SHA256, "pencil", nil, 0)}
	s := NewServer(SHA256, st)
	sf, _, err := s.Next(ctx, []byte("y,,n=user,r=abc"))
	if err != nil {
		t.Fatal(err)
	}
	// Build the client-final by hand, since Client only sends "n,,".
	c := NewClient(SHA256, "user", "pencil")
	c.Nonce = "abc"
	c.First()
	final, err := c.Final(sf)
	if err != nil {
		t.Fatal(err)
	}
	// Re-sign with the y header: recompute as a client would.
	parsed, _ := parseServerFirst(sf)
	salted, _ := SHA256.saltedPassword("pencil", parsed.salt, parsed.iterations)
	ck := SHA256.hmac(salted, "Client Key")
	without := "c=eSws,r=" + parsed.nonce
	am := "n=user,r=abc," + string(sf) + "," + without
	proof := SHA256.hmac(SHA256.hash(ck), am)
	for i := range proof {
		proof[i] ^= ck[i]
	}
	out, done, err := s.Next(ctx, []byte(without+",p="+base64.StdEncoding.EncodeToString(proof)))
	if err != nil || !done || !bytes.HasPrefix(out, []byte("v=")) {
		t.Fatalf("y,, exchange: %q %v %v", out, done, err)
	}
	// The same server with "c=biws" (the "n,," header) is a mismatch.
	s = NewServer(SHA256, st)
	s.Next(ctx, []byte("y,,n=user,r=abc"))
	if _, _, err := s.Next(ctx, final); !errors.Is(err, ErrChannelBindingsDontMatch) {
		t.Errorf("y,, then c=biws: %v", err)
	}
}

func TestAuthzid(t *testing.T) {
	ctx := context.Background()
	s := NewServer(SHA256, rfcStore(t))
	if _, _, err := s.Next(ctx, []byte("n,a=user,n=user,r=abc")); err != nil {
		t.Errorf("authzid equal to the user name: %v", err)
	}
	if s.cf.gs2Header != "n,a=user," {
		t.Errorf("gs2 header %q", s.cf.gs2Header)
	}
}

func TestClientErrors(t *testing.T) {
	client := func() *Client {
		c := NewClient(SHA256, "user", "pencil")
		c.Nonce = "abc"
		if _, err := c.First(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tt := range []struct {
		sf   string
		kind *Error
		want string
	}{
		{"r=abcd,s=c2FsdA==,i=4095", ErrIterationCount, "4095 iterations"},
		{"r=abcd,s=c2FsdA==,i=1048577", ErrIterationCount, "1048577 iterations"},
		{"r=abcd,s=c2FsdA==,i=04096", ErrInvalidEncoding, "not a positive decimal"},
		{"r=abcd,s=c2FsdA==,i=-4096", ErrInvalidEncoding, "not a positive decimal"},
		{"r=abcd,s=c2FsdA==,i=99999999999", ErrInvalidEncoding, "not a positive decimal"},
		{"r=abcd,s=c2FsdA==,i=", ErrInvalidEncoding, "not a positive decimal"},
		{"r=abcd,s=,i=4096", ErrInvalidEncoding, "salt is not non-empty base64"},
		{"r=abcd,s=c2FsdA,i=4096", ErrInvalidEncoding, "salt is not non-empty base64"},
		{"r=abcd,i=4096,s=c2FsdA==", ErrInvalidEncoding, "want attribute \"s=\""},
		{"m=x,r=abcd,s=c2FsdA==,i=4096", ErrExtensionsNotSupported, "mandatory"},
		{"r=abcd,s=c2FsdA==", ErrInvalidEncoding, "want \"r=<nonce>,s=<salt>,i=<iterations>\""},
		{"e=other-error", ErrInvalidEncoding, "want \"r=<nonce>,s=<salt>,i=<iterations>\""},
		{"e=other-error,s=c2FsdA==,i=4096", ErrInvalidEncoding, "want attribute \"r=\""},
	} {
		if _, err := client().Final([]byte(tt.sf)); !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("server-first %q: %v, want %s containing %q", tt.sf, err, tt.kind.Value, tt.want)
		}
	}
	c := client()
	c.MaxIterations = 1 << 22
	if _, err := c.Final([]byte("r=abcd,s=c2FsdA==,i=1048577")); err != nil {
		t.Errorf("MaxIterations raised: %v", err)
	}

	// The server's error in the server-final-message.
	c = client()
	c.Final([]byte("r=abcd,s=c2FsdA==,i=4096"))
	err := c.Verify([]byte("e=invalid-proof"))
	var e *Error
	if !errors.Is(err, ErrServerRefused) || !errors.As(err, &e) || e.Value != "invalid-proof" {
		t.Errorf("e=invalid-proof: %v", err)
	}
	for _, bad := range []string{"", "x=1", "v=!!", "v=AAAA,m=1"} {
		c = client()
		c.Final([]byte("r=abcd,s=c2FsdA==,i=4096"))
		if err := c.Verify([]byte(bad)); err == nil {
			t.Errorf("server-final %q accepted", bad)
		}
	}

	// Out of order and bad arguments.
	if _, err := NewClient(SHA256, "u", "p").Final([]byte("r=abcd,s=c2FsdA==,i=4096")); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("Final before First: %v", err)
	}
	if err := client().Verify([]byte("v=AAAA")); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("Verify before Final: %v", err)
	}
	for _, c := range []*Client{NewClient(SHA256, "", "p"), NewClient(SHA256, "u\x00", "p"), NewClient(SHA256, "u", "")} {
		if _, err := c.First(); err == nil {
			t.Errorf("First with user %q password %q accepted", c.username, c.password)
		}
	}
	c = NewClient(SHA256, "u", "p")
	c.Nonce = "a,b"
	if _, err := c.First(); err == nil {
		t.Error("nonce with ',' accepted")
	}
}

func TestCredentials(t *testing.T) {
	if _, err := SHA256.Credentials("pw", []byte("salt"), 4095); err == nil || !strings.Contains(err.Error(), "below the minimum of 4096") {
		t.Errorf("4095 iterations: %v", err)
	}
	if _, err := SHA256.Credentials("", []byte("salt"), 4096); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := SHA256.Credentials("pw", nil, 4096); err == nil {
		t.Error("empty salt accepted")
	}
	c := mustCreds(t, SHA512, "pw", nil, 0)
	if c.Iterations != DefaultIterations || len(c.Salt) != SaltLen || len(c.StoredKey) != 64 || len(c.ServerKey) != 64 {
		t.Errorf("NewCredentials: %+v", c)
	}
	if err := SHA512.Check(c); err != nil {
		t.Error(err)
	}
	if err := SHA256.Check(c); err == nil {
		t.Error("SHA-512 keys pass the SHA-256 check")
	}
	c2 := mustCreds(t, SHA512, "pw", nil, 0)
	if bytes.Equal(c.Salt, c2.Salt) || bytes.Equal(c.StoredKey, c2.StoredKey) {
		t.Error("two NewCredentials share a salt")
	}
	// The RFC's stored key, from the exchange's values.
	salt, _ := base64.StdEncoding.DecodeString(rfcSalt)
	r := mustCreds(t, SHA256, "pencil", salt, 4096)
	if got := base64.StdEncoding.EncodeToString(r.StoredKey); got != "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" {
		t.Errorf("StoredKey %s", got)
	}
	if got := base64.StdEncoding.EncodeToString(r.ServerKey); got != "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=" {
		t.Errorf("ServerKey %s", got)
	}
}
