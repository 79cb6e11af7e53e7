package auth

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ternmq/tern/broker"
)

func checkLogin(t *testing.T, path, user, pw string, want error) {
	t.Helper()
	pf, err := LoadPasswordFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req := &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: user}, Password: []byte(pw)}
	if err := pf.Authenticate(context.Background(), req); err != want {
		t.Errorf("login %s/%s = %v, want %v", user, pw, err, want)
	}
}

func TestPasswdCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	run := func(args PasswdArgs, stdin string) (string, error) {
		t.Helper()
		args.File = file
		if args.Cost == 0 && !args.Argon2 && !args.Delete {
			args.Cost = 4
		}
		var out, errOut bytes.Buffer
		err := PasswdCommand(args, strings.NewReader(stdin), &out, &errOut)
		if out.Len() != 0 {
			t.Errorf("stdout: %q", out.String())
		}
		return errOut.String(), err
	}

	// -c prompts twice.
	prompts, err := run(PasswdArgs{Create: true, User: "alice"}, "pass one\npass one\n")
	if err != nil {
		t.Fatal(err)
	}
	if prompts != "Password: Reenter password: " {
		t.Errorf("prompts %q", prompts)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	checkLogin(t, file, "alice", "pass one", nil)

	// -b adds a user; argon2id on request; CRLF input from a prompt.
	if _, err := run(PasswdArgs{Batch: true, User: "bob", Password: "bob pw", Argon2: true, Cost: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := run(PasswdArgs{User: "carol"}, "c pw\r\nc pw\r\n"); err != nil {
		t.Fatal(err)
	}
	checkLogin(t, file, "bob", "bob pw", nil)
	checkLogin(t, file, "carol", "c pw", nil)
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), "bob:$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Errorf("bob's hash is not argon2id with t=1:\n%s", data)
	}

	// Changing a password keeps the order of users and the comments.
	os.WriteFile(file, append([]byte("# managed by hand\n\n"), data...), 0o600)
	if _, err := run(PasswdArgs{Batch: true, User: "alice", Password: "pass two"}, ""); err != nil {
		t.Fatal(err)
	}
	checkLogin(t, file, "alice", "pass two", nil)
	checkLogin(t, file, "alice", "pass one", broker.ErrBadCredentials)
	ed, err := ReadPasswordFileForEdit(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ed.Users(), ","); got != "alice,bob,carol" {
		t.Errorf("users %s", got)
	}
	if data, _ := os.ReadFile(file); !strings.HasPrefix(string(data), "# managed by hand\n\nalice:$2a$04$") {
		t.Errorf("comments or order lost:\n%s", data)
	}

	// -D deletes.
	if _, err := run(PasswdArgs{Delete: true, User: "bob", Cost: -1}, ""); err == nil {
		t.Error("-D with a cost accepted")
	}
	if _, err := run(PasswdArgs{Delete: true, User: "bob"}, ""); err != nil {
		t.Fatal(err)
	}
	checkLogin(t, file, "bob", "bob pw", broker.ErrBadCredentials)
	checkLogin(t, file, "carol", "c pw", nil)
	_, err = run(PasswdArgs{Delete: true, User: "bob"}, "")
	if err == nil || !strings.Contains(err.Error(), `user "bob" is not in`) {
		t.Errorf("deleting a missing user: %v", err)
	}

	// -c overwrites.
	if _, err := run(PasswdArgs{Create: true, Batch: true, User: "dave", Password: "d"}, ""); err != nil {
		t.Fatal(err)
	}
	checkLogin(t, file, "carol", "c pw", broker.ErrBadCredentials)
	checkLogin(t, file, "dave", "d", nil)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestPasswdCommandErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "passwd")
	missing := filepath.Join(dir, "missing")
	os.WriteFile(file, []byte("alice:"+htpasswdAlice+"\n"), 0o600)
	tests := []struct {
		name  string
		args  PasswdArgs
		stdin string
		want  string
	}{
		{"no file", PasswdArgs{User: "a"}, "", "no password file given"},
		{"no user", PasswdArgs{File: file}, "", "no username given"},
		{"missing file", PasswdArgs{File: missing, User: "a", Batch: true, Password: "p"}, "", "does not exist (use -c to create it)"},
		{"-b without password", PasswdArgs{File: file, User: "a", Batch: true}, "", "-b needs a password"},
		{"password without -b", PasswdArgs{File: file, User: "a", Password: "p"}, "", "needs -b"},
		{"-D with -c", PasswdArgs{File: file, User: "a", Delete: true, Create: true}, "", "-D takes only"},
		{"mismatch", PasswdArgs{File: file, User: "a"}, "one\ntwo\n", "passwords do not match"},
		{"empty", PasswdArgs{File: file, User: "a"}, "\n\n", "empty password"},
		{"no input", PasswdArgs{File: file, User: "a"}, "", "no password on standard input"},
		{"one line", PasswdArgs{File: file, User: "a"}, "one\n", "no password on standard input"},
		{"colon", PasswdArgs{File: file, User: "a:b", Batch: true, Password: "p"}, "", "contains ':'"},
		{"comment", PasswdArgs{File: file, User: "#a", Batch: true, Password: "p"}, "", "begins with '#'"},
		{"space", PasswdArgs{File: file, User: " a", Batch: true, Password: "p"}, "", "white space"},
		{"newline", PasswdArgs{File: file, User: "a\nb", Batch: true, Password: "p"}, "", "control character"},
		{"bad cost", PasswdArgs{File: file, User: "a", Batch: true, Password: "p", Cost: 99}, "", "bcrypt cost 99 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := PasswdCommand(tt.args, strings.NewReader(tt.stdin), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a failed command created the file")
	}
	checkLogin(t, file, "alice", "hunter2", nil)
}

func TestPasswdCommandMigrates(t *testing.T) {
	// A file with a hash Tern cannot read (htpasswd's MD5): tern passwd
	// can replace such hashes one by one and warns about the others.
	dir := t.TempDir()
	md5 := "$apr1$hb3BC5Qo$Q0YfTcoj2a7U4s8FqU0aN."
	file := writeFile(t, dir, "passwd", "bob:"+md5+"\nzed:"+md5+"\n")
	if _, err := LoadPasswordFile(file); err == nil || !strings.Contains(err.Error(), "passwd:1: unknown hash format \"$apr1$...\"") {
		t.Fatalf("load: %v", err)
	}
	var out, errOut bytes.Buffer
	err := PasswdCommand(PasswdArgs{File: file, User: "bob", Batch: true, Password: "new", Cost: 4}, nil, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "warning: "+file+":2: unknown hash format") {
		t.Errorf("stderr %q", errOut.String())
	}
	if err := PasswdCommand(PasswdArgs{File: file, User: "zed", Delete: true}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	checkLogin(t, file, "bob", "new", nil)
}

func TestPasswdCommandMosquitto(t *testing.T) {
	// A Mosquitto file loads as it is. tern passwd --mosquitto adds "$7$"
	// lines to it; without --mosquitto it warns that the new hash is one
	// Mosquitto cannot read.
	dir := t.TempDir()
	file := writeFile(t, dir, "passwd", "# from mosquitto_passwd\nbob:"+mosquittoBob+"\n")
	checkLogin(t, file, "bob", "pw", nil)
	run := func(args PasswdArgs) string {
		t.Helper()
		args.File = file
		var out, errOut bytes.Buffer
		if err := PasswdCommand(args, nil, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		if out.Len() != 0 {
			t.Errorf("stdout %q", out.String())
		}
		return errOut.String()
	}
	if msg := run(PasswdArgs{User: "alice", Batch: true, Password: "alice pw", Mosquitto: true}); msg != "" {
		t.Errorf("--mosquitto warned: %q", msg)
	}
	if msg := run(PasswdArgs{User: "carol", Batch: true, Password: "carol pw", Mosquitto: true, Cost: 2000, NoSCRAM: true}); msg != "" {
		t.Errorf("--mosquitto --no-scram warned: %q", msg)
	}
	msg := run(PasswdArgs{User: "dave", Batch: true, Password: "dave pw", Cost: 4})
	if !strings.Contains(msg, `warning: `+file+` has Mosquitto hashes (user "bob", for one), but "dave"'s new hash is one Mosquitto cannot read: add --mosquitto`) {
		t.Errorf("no warning for a bcrypt hash among Mosquitto ones: %q", msg)
	}
	data, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "# from mosquitto_passwd" || lines[1] != "bob:"+mosquittoBob {
		t.Fatalf("file:\n%s", data)
	}
	// alice: "$7$" with the default count, then her SCRAM credentials
	// (which Mosquitto ignores); carol: a bare "$7$" line.
	if f := strings.Split(lines[2], ":"); len(f) != 4 || !strings.HasPrefix(f[1], "$7$10000$") ||
		!strings.HasPrefix(f[2], "$scram-sha-256$") || !strings.HasPrefix(f[3], "$scram-sha-512$") {
		t.Errorf("alice's line %q", lines[2])
	}
	if f := strings.Split(lines[3], ":"); len(f) != 2 || !strings.HasPrefix(f[1], "$7$2000$") {
		t.Errorf("carol's line %q", lines[3])
	}
	checkLogin(t, file, "alice", "alice pw", nil)
	checkLogin(t, file, "carol", "carol pw", nil)
	checkLogin(t, file, "carol", "carol pv", broker.ErrBadCredentials)
	checkLogin(t, file, "dave", "dave pw", nil)

	for _, tt := range []struct {
		args PasswdArgs
		want string
	}{
		{PasswdArgs{User: "x", Batch: true, Password: "p", Mosquitto: true, Argon2: true}, "--argon2 and --mosquitto contradict each other"},
		{PasswdArgs{User: "x", Batch: true, Password: "p", Mosquitto: true, Cost: 101}, "--cost 101 with --mosquitto: the PBKDF2 iteration count must be 1000 to 10000000 (default 10000)"},
		{PasswdArgs{User: "x", Delete: true, Mosquitto: true}, "-D takes only"},
	} {
		tt.args.File = file
		var out bytes.Buffer
		if err := PasswdCommand(tt.args, nil, &out, &out); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestWriteFileSymlink(t *testing.T) {
	dir := t.TempDir()
	real := writeFile(t, dir, "real", "alice:"+htpasswdAlice+"\n")
	link := filepath.Join(dir, "link")
	if err := os.Symlink("real", link); err != nil {
		t.Skip("no symlinks:", err)
	}
	ed, err := ReadPasswordFileForEdit(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := ed.Set("bob", "pw", HashOptions{Cost: 4}); err != nil {
		t.Fatal(err)
	}
	if err := ed.WriteFile(link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	checkLogin(t, real, "bob", "pw", nil)
}

func TestPasswdCommandReadPassword(t *testing.T) {
	// With ReadPassword, the prompts go to it, not to stderr, and stdin
	// is not read.
	file := filepath.Join(t.TempDir(), "passwd")
	var prompts []string
	read := func(prompt string) (string, error) {
		prompts = append(prompts, prompt)
		return "typed pw", nil
	}
	var out, errOut bytes.Buffer
	stdin := strings.NewReader("piped pw\npiped pw\n")
	err := PasswdCommand(PasswdArgs{File: file, Create: true, User: "alice", Cost: 4, ReadPassword: read}, stdin, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(prompts, "|") != "Password: |Reenter password: " || out.Len()+errOut.Len() != 0 || stdin.Len() == 0 {
		t.Errorf("prompts %q, stdout %q, stderr %q, stdin left %d", prompts, out.String(), errOut.String(), stdin.Len())
	}
	checkLogin(t, file, "alice", "typed pw", nil)
}
