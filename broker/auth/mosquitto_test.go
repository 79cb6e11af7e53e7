package auth

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// Mosquitto hashes made outside Tern, with their passwords.
const (
	// mosquitto_passwd -c -b f alice 'secret one' (Debian's Mosquitto 2.0.11)
	mosquittoAlice7 = "$7$101$Fr4SxsNDZVbTWy3C$wc5lveYzs4IbOVDGExhXiUcFRCiCD1lvWNAS/fS6zFr+pJBTsAeB6QW10m9Qylmr9/ZPXfoc2bsQgB/EmxgPNw=="
	// mosquitto_passwd -H sha512 -c -b f bob 'pw six' (the same)
	mosquittoBob6 = "$6$wbIF4tp5ZRvfcTiQ$QALCKBv7wQE/slTrCJQkaXuD0X7ek8Y8biOGrKGxv9WMDMRc2enIDU3TYuhK1iFDzEfEe7ifwbSz3MWaVSnmPA=="
	// Python's hashlib, salt b"0123456789ab", password "known vector":
	// base64(sha512(password + salt)) and
	// base64(pbkdf2_hmac("sha512", password, salt, 1000)).
	pythonVector6 = "$6$MDEyMzQ1Njc4OWFi$q5c6jV7ol3CzNtfQRYpp8zQLyRR++pTgw1PeDZGPC9ehpqQRFrcRZ+lkUqGEcXY/dgv7TX7xr0FCUF9ym85JBg=="
	pythonVector7 = "$7$1000$MDEyMzQ1Njc4OWFi$YGA9lsBbVBqRnxV6qKIX1faIw9jTR3opBX/j99mtL+k9K6uasjTkcCgcQalqL5Bz8jVtO0jIrhzuRgC9j9qVqA=="
	// The same with "päss wörd" (UTF-8) and 2 iterations.
	pythonVector7UTF8 = "$7$2$MDEyMzQ1Njc4OWFi$nW/QgOd4SyBbdCPkAFMQhN+J8y349qa6RZTquZCB/L1AXlCuEIaTqqbHrQGuic5CQ6UWT1HuEu1ymEMVMSlr1Q=="
)

func TestMosquittoHashes(t *testing.T) {
	for _, tt := range []struct{ hash, pw string }{
		{mosquittoAlice7, "secret one"},
		{mosquittoBob6, "pw six"},
		{mosquittoBob, "pw"},
		{pythonVector6, "known vector"},
		{pythonVector7, "known vector"},
		{pythonVector7UTF8, "päss wörd"},
	} {
		c, err := parseHash(tt.hash)
		if err != nil {
			t.Fatalf("%s: %v", tt.hash, err)
		}
		if !c.verify([]byte(tt.pw)) {
			t.Errorf("%s: right password refused", tt.hash)
		}
		for _, wrong := range []string{tt.pw + " ", tt.pw[:len(tt.pw)-1], "", strings.ToUpper(tt.pw)} {
			if c.verify([]byte(wrong)) {
				t.Errorf("%s: wrong password %q accepted", tt.hash, wrong)
			}
		}
		// Mosquitto stops at a NUL (a C string); Tern hashes every byte.
		if c.verify([]byte(tt.pw + "\x00tail")) {
			t.Errorf("%s: password with a NUL and a tail accepted", tt.hash)
		}
	}
}

func TestMosquittoHashErrors(t *testing.T) {
	salt := "MDEyMzQ1Njc4OWFi" // 12 bytes
	key := strings.Split(pythonVector7, "$")[4]
	for _, tt := range []struct{ hash, want string }{
		{"$7$101$" + salt + "$" + strings.TrimRight(key, "="), "hash is not padded standard base64"},
		{"$7$101$" + salt + "$" + strings.NewReplacer("+", "-", "/", "_").Replace(key), "hash is not padded standard base64"},
		{"$7$101$" + salt + "$" + key[:84], "hash is 63 bytes, Mosquitto's are 64"},
		{"$7$101$" + base64.StdEncoding.EncodeToString([]byte("0123456789")) + "$" + key, "salt is 10 bytes, Mosquitto's are 12"},
		{"$7$101$" + salt + "!$" + key, "salt is not padded standard base64"},
		{"$7$101abc$" + salt + "$" + key, `iteration count "101abc" is not a number`},
		{"$7$+101$" + salt + "$" + key, `iteration count "+101" is not a number`},
		{"$7$$" + salt + "$" + key, `iteration count "" is not a number`},
		{"$7$0$" + salt + "$" + key, "iteration count must be at least 1"},
		{"$7$10000001$" + salt + "$" + key, "above the limit of 10000000"},
		{"$7$99999999999999999999$" + salt + "$" + key, "above the limit"},
		{"$7$" + salt + "$" + key, "wrong number of '$'-separated fields (want $7$<iterations>$<salt>$<hash>"},
		{"$7$101$" + salt + "$" + key + "$", "wrong number"},
		{"$6$101$" + salt + "$" + key, "wrong number of '$'-separated fields (want $6$<salt>$<hash>"},
		{"$6$" + salt, "wrong number"},
	} {
		_, err := parseHash(tt.hash)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseHash(%q) = %v, want error containing %q", tt.hash, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), key[10:30]) {
			t.Errorf("error %q quotes the hash", err)
		}
	}
}

func TestHashPasswordPBKDF2(t *testing.T) {
	h := mustHash(t, "s3cret pass", HashOptions{PBKDF2: true})
	f := strings.Split(h, "$")
	if len(f) != 5 || f[1] != "7" || f[2] != "10000" {
		t.Fatalf("hash %q, want $7$10000$<salt>$<hash>", h)
	}
	// Recompute it from the formula, as Mosquitto would.
	salt, err := base64.StdEncoding.DecodeString(f[3])
	if err != nil || len(salt) != 12 {
		t.Fatalf("salt %q: %v", f[3], err)
	}
	want, _ := pbkdf2.Key(sha512.New, "s3cret pass", salt, 10000, 64)
	if f[4] != base64.StdEncoding.EncodeToString(want) {
		t.Errorf("hash %q is not PBKDF2-HMAC-SHA512(password, salt, 10000, 64) in padded base64", f[4])
	}
	if h := mustHash(t, "x", HashOptions{PBKDF2: true, Cost: 1000}); !strings.HasPrefix(h, "$7$1000$") {
		t.Errorf("Cost 1000: %q", h)
	}
	if h2 := mustHash(t, "s3cret pass", HashOptions{PBKDF2: true}); h2 == h {
		t.Error("two hashes of one password are equal: no salt?")
	}
	for _, tt := range []struct {
		pw   string
		opts HashOptions
		want string
	}{
		{"x", HashOptions{PBKDF2: true, Cost: 999}, "PBKDF2 iteration count 999 out of range 1000 to 10000000"},
		{"x", HashOptions{PBKDF2: true, Cost: -1}, "out of range"},
		{"x", HashOptions{PBKDF2: true, Cost: 10_000_001}, "out of range"},
		{"x", HashOptions{PBKDF2: true, Argon2: true}, "choose one"},
		{"a\x00b", HashOptions{PBKDF2: true}, "NUL byte"},
		{"", HashOptions{PBKDF2: true}, "empty password"},
	} {
		if _, err := HashPassword(tt.pw, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("HashPassword(%q, %+v) = %v, want error containing %q", tt.pw, tt.opts, err, tt.want)
		}
	}
}

// TestMosquittoPasswordFileAuth loads a file of Mosquitto hashes, Tern's
// and Mosquitto's SCRAM-less lines mixed, and checks Authenticate and the
// dummy hash of unknown users.
func TestMosquittoPasswordFileAuth(t *testing.T) {
	dir := t.TempDir()
	text := "alice:" + mosquittoAlice7 + "\n" +
		"bob: " + mosquittoBob6 + " \n" +
		"carol:" + mustHash(t, "carol pw", HashOptions{PBKDF2: true, Cost: 1000}) + ":" + mustSCRAM(t, SCRAMSHA256, "carol pw") + "\n" +
		"dave:" + mosquittoBob + "\n"
	pf, err := LoadPasswordFile(writeFile(t, dir, "passwd", text))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user, pw string
		want     error
	}{
		{"alice", "secret one", nil},
		{"alice", "secret two", broker.ErrBadCredentials},
		{"bob", "pw six", nil},
		{"bob", "pw seven", broker.ErrBadCredentials},
		{"carol", "carol pw", nil},
		{"dave", "pw", nil},
		{"mallory", "pw", broker.ErrBadCredentials},
	} {
		req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: tt.user}, Password: []byte(tt.pw)}
		if err := pf.Authenticate(context.Background(), req); err != tt.want {
			t.Errorf("%s/%s: %v, want %v", tt.user, tt.pw, err, tt.want)
		}
	}
	// Two of the four users have "$7$101$": unknown users are checked
	// against a dummy of that kind.
	if k := pf.table.Load().dummy.kind(); k != "pbkdf2-sha512 101" {
		t.Errorf("dummy kind %q, want pbkdf2-sha512 101", k)
	}
	// A username without a password is refused, even for a user whose
	// password is empty (which mosquitto_passwd -b can make).
	salt := []byte("0123456789ab")
	key, _ := pbkdf2.Key(sha512.New, "", salt, 101, 64)
	empty := fmt.Sprintf("$7$101$%s$%s", base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key))
	pf, err = LoadPasswordFile(writeFile(t, dir, "empty", "erin:"+empty+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	noPassword := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "erin"}, Connect: &packet.Connect{Username: "erin"}}
	if err := pf.Authenticate(context.Background(), noPassword); err != broker.ErrBadCredentials {
		t.Errorf("user without a password: %v", err)
	}
	emptyPassword := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: "erin"}, Password: []byte{},
		Connect: &packet.Connect{Username: "erin", PasswordFlag: true}}
	if err := pf.Authenticate(context.Background(), emptyPassword); err != nil {
		t.Errorf("user with an empty password, as Mosquitto accepts it: %v", err)
	}
}

// mosquittoPasswd returns the path of Debian's mosquitto_passwd, or skips.
func mosquittoPasswd(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd not installed: apt-get install mosquitto")
	}
	return path
}

// TestMosquittoPasswdFiles makes password files with the real
// mosquitto_passwd, in each of its modes, and logs in with them through a
// Tern broker over TCP.
func TestMosquittoPasswdFiles(t *testing.T) {
	mp := mosquittoPasswd(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	run := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(mp, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("", "-c", "-b", file, "alice", "alice pw")                     // -c -b: "$7$", the default
	run("", "-b", "-H", "sha512", file, "bob", "bob pw")               // "$6$", Mosquitto 1.x's
	run("", "-b", "-H", "sha512-pbkdf2", file, "carol", "carol: pw ü") // explicit, with a ':' and UTF-8
	run("dave pw\ndave pw\n", file, "dave")                            // prompted, from a pipe
	run("", "-b", file, "erin", "erin pw")                             // added, then
	run("", "-D", file, "erin")                                        // deleted
	run("", "-b", "-H", "sha512", file, "sensor 7", "s7 pw")           // a space in the name
	run("", "-b", file, "alice", "alice new")                          // changed
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mosquitto_passwd wrote:\n%s", data)
	for _, prefix := range []string{"alice:$7$101$", "bob:$6$", "carol:$7$101$", "dave:$7$101$", "sensor 7:$6$"} {
		if !strings.Contains(string(data), "\n"+prefix) && !strings.HasPrefix(string(data), prefix) {
			t.Errorf("the file lacks a line starting %q", prefix)
		}
	}

	pf, err := LoadPasswordFile(file)
	if err != nil {
		t.Fatalf("LoadPasswordFile of mosquitto_passwd's file: %v", err)
	}
	if pf.Len() != 5 {
		t.Errorf("Len = %d, want 5", pf.Len())
	}
	addr := startBroker(t, &broker.Server{Authenticator: pf})
	for _, tt := range []struct {
		user, pw string
		want     packet.ReasonCode
	}{
		{"alice", "alice new", packet.V3Accepted},
		{"alice", "alice pw", packet.V3BadUsernameOrPassword},
		{"bob", "bob pw", packet.V3Accepted},
		{"bob", "bob p", packet.V3BadUsernameOrPassword},
		{"carol", "carol: pw ü", packet.V3Accepted},
		{"carol", "carol", packet.V3BadUsernameOrPassword},
		{"dave", "dave pw", packet.V3Accepted},
		{"sensor 7", "s7 pw", packet.V3Accepted},
		{"erin", "erin pw", packet.V3BadUsernameOrPassword},
	} {
		cp := &packet.Connect{ClientID: "m-" + strings.ReplaceAll(tt.user, " ", "-"), CleanStart: true, Username: tt.user, Password: []byte(tt.pw)}
		if code := connackCode(t, addr, nil, packet.V311, cp); code != tt.want {
			t.Errorf("%s/%q: CONNACK return code %d, want %d", tt.user, tt.pw, code, tt.want)
		}
	}

	// tern passwd edits the file in place: bob's "$6$" is replaced by a
	// "$7$" hash, the others are kept as they are.
	var errOut strings.Builder
	if err := PasswdCommand(PasswdArgs{File: file, User: "bob", Batch: true, Password: "bob new", Mosquitto: true, Cost: 1000}, nil, &errOut, &errOut); err != nil {
		t.Fatal(err)
	}
	if errOut.Len() != 0 {
		t.Errorf("tern passwd --mosquitto wrote %q", errOut.String())
	}
	after, _ := os.ReadFile(file)
	for _, line := range strings.Split(string(data), "\n") {
		if line != "" && !strings.HasPrefix(line, "bob:") && !strings.Contains(string(after), line+"\n") {
			t.Errorf("line %q changed", line)
		}
	}
	if !strings.Contains(string(after), "\nbob:$7$1000$") {
		t.Errorf("bob's line is not $7$:\n%s", after)
	}
	// mosquitto_passwd can edit the file again, SCRAM fields and all.
	run("", "-b", file, "frank", "frank pw")
	pf2, err := LoadPasswordFile(file)
	if err != nil {
		t.Fatalf("after mosquitto_passwd edited tern passwd's file: %v", err)
	}
	checkAuth := func(user, pw string, want error) {
		t.Helper()
		req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: user}, Password: []byte(pw)}
		if err := pf2.Authenticate(context.Background(), req); err != want {
			t.Errorf("%s/%s: %v, want %v", user, pw, err, want)
		}
	}
	checkAuth("bob", "bob new", nil)
	checkAuth("frank", "frank pw", nil)
	if pf2.SCRAMLen() != 1 {
		t.Errorf("SCRAMLen = %d, want 1 (bob)", pf2.SCRAMLen())
	}
}
