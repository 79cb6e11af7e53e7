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
	bin := buildTern(t)
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
