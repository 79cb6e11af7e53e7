package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/packet"
)

// checkPassword loads a password file as the broker does and checks that
// user logs in with pw and not with a wrong one.
func checkPassword(t *testing.T, file, user, pw string) {
	t.Helper()
	pf, err := auth.LoadPasswordFile(file)
	if err != nil {
		t.Fatal(err)
	}
	login := func(pw string) error {
		return pf.Authenticate(context.Background(), &broker.AuthRequest{ClientInfo: broker.ClientInfo{Username: user}, Password: []byte(pw)})
	}
	if err := login(pw); err != nil {
		t.Errorf("%s with the password set: %v", user, err)
	}
	if err := login(pw + "x"); err == nil {
		t.Errorf("%s with a wrong password: accepted", user)
	}
}

// tmuxSession runs a shell script in a detached tmux session on a server
// of its own, whose pane is a real pseudo-terminal, until the test ends.
type tmuxSession struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T, script string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: apt-get install tmux")
	}
	dir := t.TempDir()
	s := &tmuxSession{t: t, sock: filepath.Join(dir, "tmux.sock")}
	sh := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(sh, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Ends the session, the script and its sleep.
		exec.Command("tmux", "-S", s.sock, "kill-server").Run()
	})
	s.run("new-session", "-d", "-x", "150", "-y", "40", "sh "+sh)
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen returns what the pane shows.
func (s *tmuxSession) screen() string {
	s.t.Helper()
	return s.run("capture-pane", "-p")
}

// waitFor waits until the screen shows want and returns the screen.
func (s *tmuxSession) waitFor(want string) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scr := s.screen()
		if strings.Contains(scr, want) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal does not show %q:\n%s", want, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// typeKeys types text literally, then the named keys (such as Enter).
func (s *tmuxSession) typeKeys(text string, keys ...string) {
	s.t.Helper()
	if text != "" {
		s.run("send-keys", "-l", text)
	}
	if len(keys) > 0 {
		s.run(append([]string{"send-keys"}, keys...)...)
	}
}

// sttyEcho matches the flags of "stty -a" that say the terminal is back
// to echoing, line by line.
var sttyEcho = regexp.MustCompile(`(?s)(^|\s)icanon\s.*(^|\s)echo(\s|$)`)

// passwdScript runs tern passwd with args in a pseudo-terminal, then
// reports its exit status and the terminal's modes, and says "end of
// test".
func passwdScript(bin string, args ...string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	cmd := q(bin) + " passwd"
	for _, a := range args {
		cmd += " " + q(a)
	}
	return cmd + "\necho \"exit status $?\"\nstty -a\necho \"end of test\"\nexec sleep 600\n"
}

// TestPasswdTerminal types passwords into tern passwd on a real
// pseudo-terminal (a tmux pane) and checks that the prompts appear, the
// password never does, line editing works, the file verifies the
// password, and the terminal echoes again afterwards, also after Ctrl-C.
func TestPasswdTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := ternBinary(t)
	dir := t.TempDir()

	t.Run("typed", func(t *testing.T) {
		file := filepath.Join(dir, "typed")
		s := newTmux(t, passwdScript(bin, "-c", "--cost", "4", file, "alice"))
		s.waitFor("Password:")
		// "secret1" and a character taken back with Backspace.
		s.typeKeys("secret1x", "BSpace", "Enter")
		s.waitFor("Reenter password:")
		s.typeKeys("secret1", "Enter")
		scr := s.waitFor("end of test")
		if !strings.Contains(scr, "exit status 0") {
			t.Fatalf("tern passwd failed:\n%s", scr)
		}
		if strings.Contains(scr, "secret") {
			t.Errorf("the password appears on the terminal:\n%s", scr)
		}
		if !sttyEcho.MatchString(scr) {
			t.Errorf("the terminal does not echo after tern passwd:\n%s", scr)
		}
		checkPassword(t, file, "alice", "secret1")
	})

	t.Run("Mosquitto hash, typed ahead", func(t *testing.T) {
		file := filepath.Join(dir, "ahead")
		s := newTmux(t, passwdScript(bin, "-c", "--mosquitto", "--cost", "1000", file, "bob"))
		s.waitFor("Password:")
		// Both lines at once: the second must not be lost or shown.
		s.typeKeys("pw of bob", "Enter")
		s.typeKeys("pw of bob", "Enter")
		scr := s.waitFor("end of test")
		if !strings.Contains(scr, "exit status 0") || !strings.Contains(scr, "Reenter password:") {
			t.Fatalf("tern passwd failed:\n%s", scr)
		}
		if strings.Contains(scr, "pw of bob") {
			t.Errorf("the password appears on the terminal:\n%s", scr)
		}
		checkPassword(t, file, "bob", "pw of bob")
	})

	t.Run("mismatch", func(t *testing.T) {
		file := filepath.Join(dir, "mismatch")
		s := newTmux(t, passwdScript(bin, "-c", "--cost", "4", file, "carol"))
		s.waitFor("Password:")
		s.typeKeys("first try", "Enter")
		s.waitFor("Reenter password:")
		s.typeKeys("second try", "Enter")
		scr := s.waitFor("end of test")
		if !strings.Contains(scr, "passwords do not match") || !strings.Contains(scr, "exit status 2") {
			t.Errorf("a mismatch is not an error:\n%s", scr)
		}
		if strings.Contains(scr, "try") {
			t.Errorf("a password appears on the terminal:\n%s", scr)
		}
		if _, err := os.Stat(file); err == nil {
			t.Error("the file was created")
		}
	})

	t.Run("Ctrl-C", func(t *testing.T) {
		file := filepath.Join(dir, "interrupted")
		s := newTmux(t, passwdScript(bin, "-c", "--cost", "4", file, "dave"))
		s.waitFor("Password:")
		s.typeKeys("half", "C-c")
		scr := s.waitFor("end of test")
		if !strings.Contains(scr, "interrupted") || !strings.Contains(scr, "exit status 2") {
			t.Errorf("Ctrl-C does not stop tern passwd with an error:\n%s", scr)
		}
		if strings.Contains(scr, "half") {
			t.Errorf("the password appears on the terminal:\n%s", scr)
		}
		if !sttyEcho.MatchString(scr) {
			t.Errorf("the terminal does not echo after Ctrl-C:\n%s", scr)
		}
		if _, err := os.Stat(file); err == nil {
			t.Error("the file was created")
		}
	})
}

// TestPasswdNotTerminal runs tern passwd with the password piped into
// standard input and with -b.
func TestPasswdNotTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := ternBinary(t)
	file := filepath.Join(t.TempDir(), "passwd")
	run := func(stdin string, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"passwd"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("tern passwd %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	out, prompts := run("piped pw\npiped pw\n", "-c", "--cost", "4", file, "alice")
	if out != "" || prompts != "Password: Reenter password: " {
		t.Errorf("stdout %q, stderr %q", out, prompts)
	}
	checkPassword(t, file, "alice", "piped pw")
	if _, msg := run("", "-b", "--cost", "4", file, "bob", "batch pw"); msg != "" {
		t.Errorf("stderr %q", msg)
	}
	if _, msg := run("", "-b", "--mosquitto", file, "carol", "carol pw"); msg != "" {
		t.Errorf("stderr %q", msg)
	}
	checkPassword(t, file, "alice", "piped pw")
	checkPassword(t, file, "bob", "batch pw")
	checkPassword(t, file, "carol", "carol pw")
	data, _ := os.ReadFile(file)
	if !strings.Contains(string(data), "\ncarol:$7$10000$") {
		t.Errorf("carol's hash is not $7$ with 10000 iterations:\n%s", data)
	}
}

// mosquittoBroker runs Debian's mosquitto in the foreground with
// password_file set to file and anonymous clients refused, on a free
// loopback port, until the test ends, and returns its address.
func mosquittoBroker(t *testing.T, file string) string {
	t.Helper()
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto not installed: apt-get install mosquitto")
		}
		path = "/usr/sbin/mosquitto"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\npersistence false\nlog_type all\n", port, file)
	if os.Geteuid() == 0 {
		// Started as root, mosquitto would switch to the mosquitto user,
		// who cannot read the test's 0600 file.
		conf += "user root\n"
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(path, "-c", confPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto's log:\n%s", logs.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("mosquitto does not listen on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect sends a CONNECT to addr and returns the CONNACK's code.
func connect(t *testing.T, addr string, v packet.Version, user, pw string) packet.ReasonCode {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	w, r := packet.NewWriter(nc), packet.NewReader(bufio.NewReader(nc))
	w.Version, r.Version = v, v
	cp := &packet.Connect{Version: v, ClientID: "tern-passwd-test", CleanStart: true, Username: user, Password: []byte(pw)}
	if err := w.WritePacket(cp); err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPacket()
	if err != nil && err != io.EOF {
		t.Fatalf("reading the CONNACK: %v", err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		t.Fatalf("got %v, want a CONNACK", p)
	}
	return ack.ReasonCode
}

// TestPasswdMosquittoReadsIt writes a password file with tern passwd
// --mosquitto and checks that Debian's mosquitto accepts its users with
// the right password and refuses the wrong one, with and without the
// SCRAM fields; and that the bcrypt line tern passwd writes by default is
// one Mosquitto does not read.
func TestPasswdMosquittoReadsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := ternBinary(t)
	file := filepath.Join(t.TempDir(), "passwd")
	for _, args := range [][]string{
		{"-c", "-b", "--mosquitto", file, "alice", "alice pw"},                       // with SCRAM fields
		{"-b", "--mosquitto", "--no-scram", "--cost", "1000", file, "bob", "bob pw"}, // bare
		{"-b", "--cost", "4", "--no-scram", file, "carol", "carol pw"},               // bcrypt
	} {
		if out, err := exec.Command(bin, append([]string{"passwd"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("tern passwd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(file)
	t.Logf("tern passwd wrote:\n%s", data)
	addr := mosquittoBroker(t, file)
	for _, tt := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "alice pw", true},
		{"alice", "alice pv", false},
		{"bob", "bob pw", true},
		{"bob", "", false},
		{"carol", "carol pw", false}, // Mosquitto 2.0 drops bcrypt lines
		{"nobody", "alice pw", false},
	} {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			code := connect(t, addr, v, tt.user, tt.pw)
			if ok := code == packet.Success; ok != tt.ok {
				t.Errorf("mosquitto, MQTT %v, %s/%q: CONNACK code 0x%02x, want accepted=%v", v, tt.user, tt.pw, byte(code), tt.ok)
			}
		}
	}
	// The same file in Tern: everyone logs in, alice with SCRAM too.
	pf, err := auth.LoadPasswordFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if pf.Len() != 3 || pf.SCRAMLen() != 1 {
		t.Errorf("Len %d, SCRAMLen %d; want 3 and 1", pf.Len(), pf.SCRAMLen())
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		checkPassword(t, file, u, u+" pw")
	}
}
