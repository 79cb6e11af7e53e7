package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/scram"
	"github.com/ternmq/tern/packet"
)

// Fields for the RFC 7677 example user ("user", password "pencil", salt
// and keys of the RFC's exchange), written by hand in the file format.
const (
	rfcSCRAM256 = "$scram-sha-256$i=4096$W22ZaJ0SNY7soEsUEjb6gQ$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU"
	// The same with padding, which is accepted.
	rfcSCRAM256Padded = "$scram-sha-256$i=4096$W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=$wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
)

var scramFieldRE = map[string]*regexp.Regexp{
	SCRAMSHA256: regexp.MustCompile(`^\$scram-sha-256\$i=4096\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}\$[A-Za-z0-9+/]{43}$`),
	SCRAMSHA512: regexp.MustCompile(`^\$scram-sha-512\$i=4096\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{86}\$[A-Za-z0-9+/]{86}$`),
}

func mustSCRAM(t testing.TB, mech, pw string) string {
	t.Helper()
	f, err := SCRAMCredential(mech, pw, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSCRAMCredential(t *testing.T) {
	for mech, re := range scramFieldRE {
		f := mustSCRAM(t, mech, "pencil")
		if !re.MatchString(f) {
			t.Errorf("%s field %q does not match %s", mech, f, re)
		}
		m, c, err := parseSCRAMField(f)
		if err != nil || m.Name() != mech {
			t.Fatalf("parse %q: %v %v", f, m, err)
		}
		if formatSCRAM(m, c) != f {
			t.Errorf("round trip: %q became %q", f, formatSCRAM(m, c))
		}
		if f2 := mustSCRAM(t, mech, "pencil"); f2 == f {
			t.Error("two fields for one password are equal: the salt is not random")
		}
	}
	f, err := SCRAMCredential(SCRAMSHA256, "pw", 8192)
	if err != nil || !strings.HasPrefix(f, "$scram-sha-256$i=8192$") {
		t.Errorf("8192 iterations: %q %v", f, err)
	}
	for _, tt := range []struct {
		mech string
		pw   string
		iter int
		want string
	}{
		{"SCRAM-SHA-1", "pw", 0, `unknown SCRAM mechanism "SCRAM-SHA-1"`},
		{SCRAMSHA256, "pw", 4095, "out of range 4096 to 1048576"},
		{SCRAMSHA512, "pw", MaxSCRAMIterations + 1, "out of range"},
		{SCRAMSHA512, "", 0, "empty password"},
	} {
		if _, err := SCRAMCredential(tt.mech, tt.pw, tt.iter); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SCRAMCredential(%q, %q, %d) = %v, want %q", tt.mech, tt.pw, tt.iter, err, tt.want)
		}
	}
	// The RFC's stored key and server key, parsed from the file format.
	for _, f := range []string{rfcSCRAM256, rfcSCRAM256Padded} {
		_, c, err := parseSCRAMField(f)
		if err != nil {
			t.Fatal(err)
		}
		salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
		want, _ := scram.SHA256.Credentials("pencil", salt, 4096)
		if !bytes.Equal(c.StoredKey, want.StoredKey) || !bytes.Equal(c.ServerKey, want.ServerKey) || c.Iterations != 4096 || !bytes.Equal(c.Salt, salt) {
			t.Errorf("%q parsed as %+v, want %+v", f, c, want)
		}
	}
}

// TestSCRAMFileRead: lines with and without SCRAM fields, in every
// accepted spelling.
func TestSCRAMFileRead(t *testing.T) {
	dir := t.TempDir()
	bc := mustHash(t, "pencil", HashOptions{Cost: 4})
	s256 := mustSCRAM(t, SCRAMSHA256, "pencil")
	s512 := mustSCRAM(t, SCRAMSHA512, "pencil")
	for _, tt := range []struct {
		name string
		line string
		want []string // mechanisms with credentials
	}{
		{"hash only", "alice:" + bc, nil},
		{"argon2id hash only", "alice:" + argon2refCarol, nil},
		{"sha-256", "alice:" + bc + ":" + s256, []string{SCRAMSHA256}},
		{"sha-512", "alice:" + bc + ":" + s512, []string{SCRAMSHA512}},
		{"both", "alice:" + bc + ":" + s256 + ":" + s512, []string{SCRAMSHA256, SCRAMSHA512}},
		{"both reversed", "alice:" + bc + ":" + s512 + ":" + s256, []string{SCRAMSHA256, SCRAMSHA512}},
		{"white space and CRLF", "alice:" + bc + " : " + s256 + " \r", []string{SCRAMSHA256}},
		{"padded base64", "alice:" + bc + ":" + rfcSCRAM256Padded, []string{SCRAMSHA256}},
		{"with argon2id", "alice:" + argon2refCarol + ":" + s512, []string{SCRAMSHA512}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, "passwd", "# comment\n"+tt.line+"\n")
			pf, err := LoadPasswordFile(p)
			if err != nil {
				t.Fatal(err)
			}
			set := pf.table.Load().scram["alice"]
			if len(set) != len(tt.want) {
				t.Fatalf("SCRAM credentials %v, want %v", set, tt.want)
			}
			for _, m := range tt.want {
				if _, ok := set[m]; !ok {
					t.Errorf("no %s credentials", m)
				}
			}
			if n := pf.SCRAMLen(); n != min(len(tt.want), 1) {
				t.Errorf("SCRAMLen %d", n)
			}
			// The password still works for a plain CONNECT.
			if !strings.Contains(tt.line, "argon2") {
				req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "alice"}, Password: []byte("pencil")}
				if err := pf.Authenticate(context.Background(), req); err != nil {
					t.Errorf("password login: %v", err)
				}
			}
		})
	}
}

// TestSCRAMFileErrors: each malformed SCRAM field is refused with the
// file, the line, the user, what is wrong and how to fix it.
func TestSCRAMFileErrors(t *testing.T) {
	dir := t.TempDir()
	bc := mustHash(t, "pencil", HashOptions{Cost: 4})
	s256 := mustSCRAM(t, SCRAMSHA256, "pencil")
	s512 := mustSCRAM(t, SCRAMSHA512, "pencil")
	parts := strings.Split(s256, "$") // "", scram-sha-256, i=4096, salt, stored, server
	join := func(p ...string) string { return strings.Join(p, "$") }
	const fix = "set the password again with tern passwd"
	for _, tt := range []struct {
		name  string
		extra string
		want  string
	}{
		{"empty field", ":", `passwd:2: user "alice": empty field after ':' (remove the extra ':', or ` + fix},
		{"empty field between", "::" + s256, "empty field after ':'"},
		{"duplicate", ":" + s256 + ":" + s256, "two SCRAM-SHA-256 credentials: delete one"},
		{"unknown mechanism", ":$scram-sha-1$i=4096$a$b$c", `unknown field "$scram-sha-1$..." after the password hash (want $scram-sha-256$... or $scram-sha-512$...`},
		{"plaintext", ":secretpassword", `unknown field after the password hash: not a "$scram-sha-256$"`},
		{"too few fields", ":" + join(parts[:5]...), `passwd:2: user "alice": malformed SCRAM-SHA-256 credentials "$scram-sha-256$...": wrong number of '$'-separated fields (want $scram-sha-256$i=<iterations>$<salt>$<StoredKey>$<ServerKey> in base64; ` + fix + " to rewrite them)"},
		{"too many fields", ":" + s256 + "$x", "wrong number of '$'-separated fields"},
		{"no i=", ":" + join("", parts[1], "4096", parts[3], parts[4], parts[5]), `the iteration count must be written "i=<number>"`},
		{"i not a number", ":" + join("", parts[1], "i=4k", parts[3], parts[4], parts[5]), `iteration count "4k" is not a number`},
		{"i signed", ":" + join("", parts[1], "i=+4096", parts[3], parts[4], parts[5]), `iteration count "+4096" is not a number`},
		{"i empty", ":" + join("", parts[1], "i=", parts[3], parts[4], parts[5]), `iteration count "" is not a number`},
		{"i too low", ":" + join("", parts[1], "i=1000", parts[3], parts[4], parts[5]), "iteration count 1000 is outside 4096 to 1048576"},
		{"i too high", ":" + join("", parts[1], "i=99999999", parts[3], parts[4], parts[5]), "iteration count 99999999 is outside"},
		{"salt not base64", ":" + join("", parts[1], parts[2], "sa!t", parts[4], parts[5]), "salt is not base64"},
		{"salt short", ":" + join("", parts[1], parts[2], "c2FsdA", parts[4], parts[5]), "salt is 4 bytes, want 8 to 1024"},
		{"stored key not base64", ":" + join("", parts[1], parts[2], parts[3], "~", parts[5]), "StoredKey is not base64"},
		{"server key not base64", ":" + join("", parts[1], parts[2], parts[3], parts[4], "a b"), "ServerKey is not base64"},
		{"key of the wrong hash", ":" + join("", "scram-sha-512", parts[2], parts[3], parts[4], parts[5]), "StoredKey and ServerKey must be 64 bytes each, not 32 and 32"},
		{"short key", ":" + join("", parts[1], parts[2], parts[3], parts[4][:20], parts[5]), "must be 32 bytes each, not 15 and 32"},
		{"upper case", ":" + strings.Replace(s512, "scram-sha-512", "SCRAM-SHA-512", 1), `unknown field "$SCRAM-SHA-512$..."`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, "passwd", "bob:"+bc+"\nalice:"+bc+tt.extra+"\n")
			_, err := LoadPasswordFile(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "passwd:2: user \"alice\": ") {
				t.Fatalf("error %v\nwant it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "tern passwd") && !strings.Contains(err.Error(), "delete") {
				t.Errorf("error %q does not say how to fix it", err)
			}
			if strings.Contains(err.Error(), "secretpassword") || strings.Contains(err.Error(), parts[4]) {
				t.Errorf("error %q quotes secrets", err)
			}
			// For editing, the line is kept with its problem, and Set
			// repairs it.
			ed, err := ReadPasswordFileForEdit(p)
			if err != nil {
				t.Fatal(err)
			}
			if probs := ed.Problems(); len(probs) != 1 || !strings.Contains(probs[0].Error(), tt.want) {
				t.Errorf("Problems() = %v", probs)
			}
			if err := ed.Set("alice", "pencil", HashOptions{Cost: 4}); err != nil {
				t.Fatal(err)
			}
			if err := ed.WriteFile(p); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadPasswordFile(p); err != nil {
				t.Errorf("after Set: %v", err)
			}
		})
	}
}

// TestSCRAMFileWrite: Set writes both fields by default, none with
// NoSCRAM, and the result reads back as written.
func TestSCRAMFileWrite(t *testing.T) {
	ed := NewEditablePasswordFile()
	if err := ed.Set("alice", "pencil", HashOptions{Cost: 4}); err != nil {
		t.Fatal(err)
	}
	if err := ed.Set("bob", "builder", HashOptions{Cost: 4, NoSCRAM: true}); err != nil {
		t.Fatal(err)
	}
	if err := ed.Set("carol", "c pw", HashOptions{Argon2: true, Cost: 1, Argon2Memory: 64, Argon2Threads: 1, SCRAMIterations: 8192}); err != nil {
		t.Fatal(err)
	}
	if err := ed.Set("dave", "d", HashOptions{Cost: 4, NoSCRAM: true, SCRAMIterations: 8192}); err == nil {
		t.Error("NoSCRAM with SCRAMIterations accepted")
	}
	lines := strings.Split(strings.TrimSuffix(string(ed.Bytes()), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines %q", lines)
	}
	alice := strings.Split(lines[0], ":")
	if len(alice) != 4 || alice[0] != "alice" || !strings.HasPrefix(alice[1], "$2a$04$") ||
		!scramFieldRE[SCRAMSHA256].MatchString(alice[2]) || !scramFieldRE[SCRAMSHA512].MatchString(alice[3]) {
		t.Errorf("alice's line %q", lines[0])
	}
	if bob := strings.Split(lines[1], ":"); len(bob) != 2 || bob[0] != "bob" {
		t.Errorf("bob's line with NoSCRAM %q", lines[1])
	}
	if carol := strings.Split(lines[2], ":"); len(carol) != 4 || !strings.HasPrefix(carol[1], "$argon2id$") ||
		!strings.HasPrefix(carol[2], "$scram-sha-256$i=8192$") || !strings.HasPrefix(carol[3], "$scram-sha-512$i=8192$") {
		t.Errorf("carol's line %q", lines[2])
	}

	// Round trip: the written file parses to what Set made.
	parsed, err := parsePasswordLines("passwd", ed.Bytes(), false)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range parsed {
		w := ed.lines[i]
		if l.user != w.user || l.hash != w.hash || len(l.scram) != len(w.scram) {
			t.Fatalf("line %d: read %+v, wrote %+v", i+1, l, w)
		}
		for m, c := range w.scram {
			r := l.scram[m]
			if r.Iterations != c.Iterations || !bytes.Equal(r.Salt, c.Salt) || !bytes.Equal(r.StoredKey, c.StoredKey) || !bytes.Equal(r.ServerKey, c.ServerKey) {
				t.Errorf("line %d %s: read %+v, wrote %+v", i+1, m, r, c)
			}
		}
	}

	// Setting a password with NoSCRAM drops the old SCRAM fields, which
	// would no longer match.
	if err := ed.Set("alice", "new", HashOptions{Cost: 4, NoSCRAM: true}); err != nil {
		t.Fatal(err)
	}
	if l := strings.Split(string(ed.Bytes()), "\n")[0]; strings.Contains(l, "scram") {
		t.Errorf("old SCRAM fields kept: %q", l)
	}
}

func TestPasswdCommandSCRAM(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	run := func(args PasswdArgs) error {
		args.File, args.Batch = file, args.Password != ""
		if args.Cost == 0 && !args.Delete {
			args.Cost = 4
		}
		return PasswdCommand(args, nil, &bytes.Buffer{}, &bytes.Buffer{})
	}
	if err := run(PasswdArgs{Create: true, User: "alice", Password: "pencil"}); err != nil {
		t.Fatal(err)
	}
	if err := run(PasswdArgs{User: "bob", Password: "builder", NoSCRAM: true}); err != nil {
		t.Fatal(err)
	}
	if err := run(PasswdArgs{User: "carol", Password: "c", SCRAMIterations: 10000}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	lines := strings.Split(string(data), "\n")
	if !strings.Contains(lines[0], ":$scram-sha-256$i=4096$") || !strings.Contains(lines[0], ":$scram-sha-512$i=4096$") {
		t.Errorf("alice without SCRAM by default: %q", lines[0])
	}
	if strings.Contains(lines[1], "scram") {
		t.Errorf("bob with SCRAM despite NoSCRAM: %q", lines[1])
	}
	if !strings.Contains(lines[2], "$i=10000$") {
		t.Errorf("carol's iterations: %q", lines[2])
	}
	pf, err := LoadPasswordFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if pf.Len() != 3 || pf.SCRAMLen() != 2 {
		t.Errorf("Len %d SCRAMLen %d", pf.Len(), pf.SCRAMLen())
	}
	for _, tt := range []struct {
		args PasswdArgs
		want string
	}{
		{PasswdArgs{Delete: true, User: "alice", NoSCRAM: true}, "-D takes only"},
		{PasswdArgs{Delete: true, User: "alice", SCRAMIterations: 5000}, "-D takes only"},
		{PasswdArgs{User: "dave", Password: "d", NoSCRAM: true, SCRAMIterations: 5000}, "contradict"},
		{PasswdArgs{User: "dave", Password: "d", SCRAMIterations: 100}, "SCRAM iteration count 100 out of range 4096 to 1048576"},
	} {
		if err := run(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// scramLogin runs a SCRAM exchange against the method m the way the
// broker does, with internal/scram's client. It returns the final error
// and the server-first-message.
func scramLogin(t *testing.T, m broker.AuthMethod, mech *scram.Mechanism, req *broker.AuthRequest, user, pw string) (string, error) {
	t.Helper()
	ctx := context.Background()
	x, err := m.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	c := scram.NewClient(mech, user, pw)
	first, err := c.First()
	if err != nil {
		t.Fatal(err)
	}
	sf, done, err := x.Next(ctx, first)
	if err != nil {
		return "", err
	}
	if done {
		t.Fatal("done after the client-first-message")
	}
	final, err := c.Final(sf)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	sfinal, done, err := x.Next(ctx, final)
	if err != nil {
		return string(sf), err
	}
	if !done {
		t.Fatal("not done after the client-final-message")
	}
	if err := c.Verify(sfinal); err != nil {
		t.Fatalf("client cannot verify the server: %v", err)
	}
	return string(sf), nil
}

func scramFile(t *testing.T) *PasswordFile {
	t.Helper()
	bc := mustHash(t, "pencil", HashOptions{Cost: 4})
	text := "alice:" + bc + ":" + mustSCRAM(t, SCRAMSHA256, "pencil") + ":" + mustSCRAM(t, SCRAMSHA512, "pencil") + "\n" +
		"user:" + bc + ":" + rfcSCRAM256 + "\n" +
		"bob:" + bc + "\n" // no SCRAM credentials
	pf, err := LoadPasswordFile(writeFile(t, t.TempDir(), "passwd", text))
	if err != nil {
		t.Fatal(err)
	}
	return pf
}

func refusalOf(t *testing.T, err error) *broker.Refusal {
	t.Helper()
	var r *broker.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error %v is not a *broker.Refusal", err)
	}
	return r
}

func TestSCRAMMethod(t *testing.T) {
	pf := scramFile(t)
	methods := pf.SCRAMMethods()
	if len(methods) != 2 || methods[SCRAMSHA256] == nil || methods[SCRAMSHA512] == nil {
		t.Fatalf("SCRAMMethods() = %v", methods)
	}
	for _, mech := range scram.Mechanisms() {
		m := methods[mech.Name()]
		t.Run(mech.Name(), func(t *testing.T) {
			req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{ClientID: "c1"}, AuthMethod: mech.Name()}
			if _, err := scramLogin(t, m, mech, req, "alice", "pencil"); err != nil {
				t.Fatalf("alice: %v", err)
			}
			if req.Username != "alice" {
				t.Errorf("Username after SCRAM %q, want alice", req.Username)
			}

			// A CONNECT user name that is the SCRAM one is fine.
			req = &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "alice"}}
			if _, err := scramLogin(t, m, mech, req, "alice", "pencil"); err != nil {
				t.Errorf("with the CONNECT user name: %v", err)
			}

			// Wrong password.
			req = &broker.AuthRequest{}
			sfKnown, err := scramLogin(t, m, mech, req, "alice", "pencil!")
			if r := refusalOf(t, err); r.Code != packet.BadUserNameOrPassword {
				t.Errorf("wrong password: %v", err)
			}
			if req.Username != "" {
				t.Errorf("Username %q set by a failed exchange", req.Username)
			}

			// Unknown user and a user without SCRAM credentials: the
			// same refusal, and a server-first-message of the same shape.
			var errs []string
			for _, user := range []string{"mallory", "bob"} {
				sf, err := scramLogin(t, m, mech, &broker.AuthRequest{}, user, "pencil")
				if r := refusalOf(t, err); r.Code != packet.BadUserNameOrPassword {
					t.Errorf("%s: %v", user, err)
				}
				errs = append(errs, err.Error())
				if shape(sf) != shape(sfKnown) {
					t.Errorf("%s's server-first-message %q does not look like a known user's %q", user, sf, sfKnown)
				}
			}
			if errs[0] != errs[1] || errs[0] != refusalOf(t, err).Error() {
				t.Errorf("unknown user, user without SCRAM and wrong password fail differently: %q", append(errs, err.Error()))
			}

			// A CONNECT user name other than the SCRAM one.
			_, err = scramLogin(t, m, mech, &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "bob"}}, "alice", "pencil")
			if r := refusalOf(t, err); r.Code != packet.NotAuthorized || !strings.Contains(r.Reason, `user name "alice" is not the connection's user name "bob"`) {
				t.Errorf("mismatched user names: %v", err)
			}
			// Re-authenticating as another user.
			_, err = scramLogin(t, m, mech, &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "bob"}, Reauth: true}, "alice", "pencil")
			if r := refusalOf(t, err); r.Code != packet.NotAuthorized {
				t.Errorf("re-authentication as another user: %v", err)
			}
		})
	}

	// The RFC's user, whose credentials were written by hand.
	if _, err := scramLogin(t, methods[SCRAMSHA256], scram.SHA256, &broker.AuthRequest{}, "user", "pencil"); err != nil {
		t.Errorf("RFC user: %v", err)
	}
	// SHA-256 credentials do not work for SHA-512.
	if _, err := scramLogin(t, methods[SCRAMSHA512], scram.SHA512, &broker.AuthRequest{}, "user", "pencil"); err == nil {
		t.Error("SCRAM-SHA-512 accepted a user with SCRAM-SHA-256 credentials only")
	}
	if _, err := NewSCRAM(pf, "SCRAM-SHA-1"); err == nil {
		t.Error("NewSCRAM accepted SCRAM-SHA-1")
	}
	if s, err := NewSCRAM(pf, SCRAMSHA512); err != nil || s.Name() != SCRAMSHA512 {
		t.Errorf("NewSCRAM: %v %v", s, err)
	}
}

// shape replaces a server-first-message's nonce, salt and iteration count
// by their lengths (and the count itself).
func shape(sf string) string {
	fs := strings.Split(sf, ",")
	if len(fs) != 3 {
		return sf
	}
	return strings.Join([]string{"r" + strings.Repeat(".", len(fs[0])), "s" + strings.Repeat(".", len(fs[1])), fs[2]}, ",")
}

func TestSCRAMMalformed(t *testing.T) {
	pf := scramFile(t)
	m := pf.SCRAMMethods()[SCRAMSHA256]
	ctx := context.Background()
	for _, tt := range []struct {
		first string
		want  string
	}{
		{"", "needs the client-first-message"},
		{"n=alice,r=abc", "does not start with a GS2 header"},
		{"p=tls-unique,,n=alice,r=abc", "channel binding"},
		{"n,,n=al=ice,r=abc", `'=' must be sent as "=3D"`},
		{"n,,m=x,n=alice,r=abc", "mandatory extension"},
		{"n,,n=alice,r=ab c", "printable ASCII"},
		{"n,,n=alice,r=abc\xff", "not UTF-8"},
	} {
		x, err := m.Start(ctx, &broker.AuthRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var in []byte
		if tt.first != "" {
			in = []byte(tt.first)
		}
		out, done, err := x.Next(ctx, in)
		if out != nil || done {
			t.Errorf("%q: out %q done %v", tt.first, out, done)
		}
		if r := refusalOf(t, err); r.Code != packet.NotAuthorized || !strings.Contains(r.Reason, tt.want) || !strings.HasPrefix(r.Reason, "SCRAM-SHA-256") {
			t.Errorf("%q: %v, want 0x87 with a reason containing %q", tt.first, err, tt.want)
		}
	}
	// A malformed client-final-message, and one more message after the end.
	x, _ := m.Start(ctx, &broker.AuthRequest{})
	c := scram.NewClient(scram.SHA256, "alice", "pencil")
	first, _ := c.First()
	if _, _, err := x.Next(ctx, first); err != nil {
		t.Fatal(err)
	}
	_, _, err := x.Next(ctx, []byte("c=biws,p=xyz"))
	if r := refusalOf(t, err); r.Code != packet.NotAuthorized || !strings.Contains(r.Reason, "client-final-message") {
		t.Errorf("malformed client-final: %v", err)
	}
	if _, _, err := x.Next(ctx, []byte("more")); err == nil {
		t.Error("Next after a failure succeeded")
	}

	// A PasswordFile that was never loaded has no users.
	empty := (&PasswordFile{}).SCRAMMethods()[SCRAMSHA256]
	if _, err := scramLogin(t, empty, scram.SHA256, &broker.AuthRequest{}, "alice", "pencil"); refusalOf(t, err).Code != packet.BadUserNameOrPassword {
		t.Errorf("empty file: %v", err)
	}
}

// TestSCRAMReload: SCRAM credentials added to the file work after Reload
// (what SIGHUP does), and an exchange keeps the users it started with.
func TestSCRAMReload(t *testing.T) {
	dir := t.TempDir()
	bc := mustHash(t, "pencil", HashOptions{Cost: 4})
	path := writeFile(t, dir, "passwd", "alice:"+bc+"\n")
	pf, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := pf.SCRAMMethods()[SCRAMSHA256]
	if _, err := scramLogin(t, m, scram.SHA256, &broker.AuthRequest{}, "alice", "pencil"); err == nil {
		t.Fatal("SCRAM login without SCRAM credentials")
	}

	// An exchange that starts before the reload...
	ctx := context.Background()
	old, _ := m.Start(ctx, &broker.AuthRequest{})

	if err := PasswdCommand(PasswdArgs{File: path, Batch: true, User: "alice", Password: "pencil", Cost: 4}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := pf.Reload(); err != nil {
		t.Fatal(err)
	}
	req := &broker.AuthRequest{}
	if _, err := scramLogin(t, m, scram.SHA256, req, "alice", "pencil"); err != nil || req.Username != "alice" {
		t.Fatalf("after reload: %v, user %q", err, req.Username)
	}

	// ...finishes with the users it started with.
	c := scram.NewClient(scram.SHA256, "alice", "pencil")
	first, _ := c.First()
	sf, _, err := old.Next(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := c.Final(sf)
	if _, _, err := old.Next(ctx, final); err == nil {
		t.Error("an exchange started before the reload used the new file")
	}

	// A broken file keeps the credentials in force.
	os.WriteFile(path, []byte("alice:"+bc+":$scram-sha-256$i=1$x$y$z\n"), 0o600)
	if err := pf.Reload(); err == nil || !strings.Contains(err.Error(), "passwd:1: user \"alice\": malformed SCRAM-SHA-256") {
		t.Errorf("reload of a broken file: %v", err)
	}
	if _, err := scramLogin(t, m, scram.SHA256, &broker.AuthRequest{}, "alice", "pencil"); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}
}

func TestSCRAMMockIterations(t *testing.T) {
	// Unknown users are told the iteration count most users have.
	bc := mustHash(t, "pencil", HashOptions{Cost: 4})
	var b strings.Builder
	for i, iter := range []int{8192, 8192, 4096} {
		f, err := SCRAMCredential(SCRAMSHA256, "pencil", iter)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(string(rune('a'+i)) + ":" + bc + ":" + f + "\n")
	}
	pf, err := LoadPasswordFile(writeFile(t, t.TempDir(), "passwd", b.String()))
	if err != nil {
		t.Fatal(err)
	}
	sf, _ := scramLogin(t, pf.SCRAMMethods()[SCRAMSHA256], scram.SHA256, &broker.AuthRequest{}, "nobody", "pencil")
	if !strings.HasSuffix(sf, ",i=8192") {
		t.Errorf("unknown user's server-first-message %q, want i=8192", sf)
	}
}

// BenchmarkSCRAMServer measures the server's side of an exchange for a
// known user, an unknown one and one without SCRAM credentials: the
// three should cost about the same.
func BenchmarkSCRAMServer(b *testing.B) {
	bc := mustHash(b, "pencil", HashOptions{Cost: 4})
	path := writeFile(b, b.TempDir(), "passwd", "alice:"+bc+":"+mustSCRAM(b, SCRAMSHA256, "pencil")+"\nbob:"+bc+"\n")
	pf, err := LoadPasswordFile(path)
	if err != nil {
		b.Fatal(err)
	}
	m := pf.SCRAMMethods()[SCRAMSHA256]
	for _, user := range []string{"alice", "mallory", "bob"} {
		b.Run(user, func(b *testing.B) {
			ctx := context.Background()
			// One client exchange, replayed: only the server's work is timed.
			c := scram.NewClient(scram.SHA256, user, "pencil")
			c.Nonce = "clientnonce"
			first, _ := c.First()
			x, _ := m.Start(ctx, &broker.AuthRequest{})
			sf, _, _ := x.Next(ctx, first)
			final, _ := c.Final(sf)
			serverNonce := strings.TrimPrefix(strings.Split(string(sf), ",")[0], "r=clientnonce")
			b.ResetTimer()
			for range b.N {
				x, _ := m.Start(ctx, &broker.AuthRequest{})
				ex := x.(*scramExchange)
				ex.conv.Nonce = serverNonce
				ex.Next(ctx, first)
				ex.Next(ctx, final)
			}
		})
	}
}
