package main

import (
	"bytes"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestStartupAuthLines: the start-up lines say which authentication and
// authorization are in force, and a listener on every interface without
// authentication gets a warning, naming the listener and the fix.
func TestStartupAuthLines(t *testing.T) {
	pw := writePasswordFile(t) // alice with SCRAM credentials, bob without
	acl := writeFile(t, "acl", "topic read $SYS/#\nuser alice\ntopic readwrite alice/#\ntopic deny alice/secret\npattern write devices/%c/#\n")
	warning := `level=WARN msg="listener on a non-loopback address without authentication: anyone who can reach it can connect" listener="tcp 0.0.0.0:0" fix=`

	t.Run("nothing, on every interface", func(t *testing.T) {
		b := startBroker(t, "", "--listen", "tcp://0.0.0.0:0")
		b.waitLog(`level=INFO msg="authentication: none; every client may connect \(set auth.password_file or --password-file\)"`)
		b.waitLog(`level=INFO msg="authorization: none; every client may publish and subscribe to every topic`)
		b.waitLog(regexp.QuoteMeta(warning))
	})
	t.Run("nothing, loopback only", func(t *testing.T) {
		b := startBroker(t, "", "-p", "0")
		b.waitLog(`msg="authentication: none`)
		b.stop()
		if strings.Contains(b.String(), "level=WARN") {
			t.Errorf("a warning for a loopback listener:\n%s", b)
		}
	})
	t.Run("password and ACL files, on every interface", func(t *testing.T) {
		b := startBroker(t, "", "--listen", "tcp://0.0.0.0:0", "--password-file", pw, "--acl-file", acl)
		b.waitLog(`level=INFO msg="authentication: password file" file=` + regexp.QuoteMeta(pw) +
			` users=2 allow_anonymous=false scram=true scram_users=1`)
		b.waitLog(`level=INFO msg="authorization: ACL file" file=` + regexp.QuoteMeta(acl) + ` rules=4`)
		b.stop()
		if strings.Contains(b.String(), "level=WARN") {
			t.Errorf("a warning with authentication:\n%s", b)
		}
	})
	t.Run("anonymous allowed, SCRAM off", func(t *testing.T) {
		b := startBroker(t, "", "-p", "0", "--password-file", pw, "--allow-anonymous", "--scram=false")
		b.waitLog(`msg="authentication: password file" file=\S+ users=2 allow_anonymous=true scram=false scram_users=1`)
	})
}

// TestListenReplacesFileListeners: --listen or -p over a file with
// listeners replaces them, and says so.
func TestListenReplacesFileListeners(t *testing.T) {
	dir := t.TempDir()
	writeIn(t, dir, "tern.yaml", `
listeners:
  - addr: 127.0.0.1:0
  - type: ws
    addr: 127.0.0.1:0
  - type: unix
    addr: tern.sock
  - name: four
    addr: 127.0.0.1:0
`)
	b := startBroker(t, dir, "-c", "tern.yaml", "--listen", "tcp://127.0.0.1:0")
	b.waitLog(`level=INFO msg="--listen replaces the 4 listeners of tern.yaml"`)
	b.stop()
	if n := strings.Count(b.String(), "msg=listening"); n != 1 {
		t.Errorf("%d listeners, want the one of --listen:\n%s", n, b)
	}
	b = startBroker(t, dir, "-c", "tern.yaml", "-p", "0", "-l", "tcp://localhost:0")
	b.waitLog(`msg="--listen and -p replace the 4 listeners of tern.yaml"`)
}

// TestPortFlag: -p PORT listens on the loopback interface only, as
// mosquitto -p does since Mosquitto 2.0, and is repeatable.
func TestPortFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	b := startBroker(t, "", "-p", "0", "-p", port)
	b.waitLog(`msg="starting Tern broker" .* listeners="tcp 127.0.0.1:0, tcp 127.0.0.1:` + port + `"`)
	first := b.addr()
	b.waitLog(`msg=listening listener="tcp 127.0.0.1:` + port + `" addr=127.0.0.1:` + port)
	if !strings.HasPrefix(first, "127.0.0.1:") {
		t.Errorf("-p 0 listens on %s, want 127.0.0.1", first)
	}
	for _, a := range []string{first, "127.0.0.1:" + port} {
		nc, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		w, r := packet.NewWriter(nc), packet.NewReader(nc)
		r.Version = packet.V311
		w.WritePacket(&packet.Connect{Version: packet.V311, ClientID: "p", CleanStart: true})
		if p, err := r.ReadPacket(); err != nil || p.Type() != packet.CONNACK {
			t.Errorf("%s: %v %v", a, p, err)
		}
		nc.Close()
	}
}

// TestSIGHUP: SIGHUP reloads the password and ACL files and says what
// they now hold; an invalid file is kept as it was; without files, SIGHUP
// says there is nothing to reload.
func TestSIGHUP(t *testing.T) {
	dir := t.TempDir()
	pw := writeIn(t, dir, "passwd", passwordLine(t, "alice", "wonderland", true))
	acl := writeIn(t, dir, "acl", "topic read $SYS/#\n")
	b := startBroker(t, "", "-p", "0", "--password-file", pw, "--acl-file", acl)

	writeIn(t, dir, "passwd", passwordLine(t, "alice", "wonderland", true)+passwordLine(t, "bob", "builder", false))
	writeIn(t, dir, "acl", "topic read $SYS/#\nuser alice\ntopic readwrite alice/#\npattern read users/%u/#\n")
	b.signal(syscall.SIGHUP)
	b.waitLog(`level=INFO msg="reloaded the password file" file=` + regexp.QuoteMeta(pw) + ` users=2 scram_users=1`)
	b.waitLog(`level=INFO msg="reloaded the ACL file" file=` + regexp.QuoteMeta(acl) + ` rules=3`)
	if strings.Contains(b.String(), "&{") {
		t.Errorf("a Go value in the logs:\n%s", b)
	}

	writeIn(t, dir, "passwd", "no colon here\n")
	b.signal(syscall.SIGHUP)
	b.waitLog(`level=ERROR msg="reload failed; keeping the previous password file" file=` + regexp.QuoteMeta(pw) + ` err=`)
	b.waitLog(`(?s)reload failed.*msg="reloaded the ACL file" file=\S+ rules=3`)

	nothing := startBroker(t, "", "-p", "0")
	nothing.signal(syscall.SIGHUP)
	nothing.waitLog(`level=INFO msg="SIGHUP: nothing to reload; SIGHUP reloads the password file and the ACL file, and neither is configured"`)
}

// TestDefaultPacketSizeMosquittoClients: with the defaults, Mosquitto's
// clients move messages of 1 MiB and 8 MiB through tern broker. The
// message is retained, so that the subscriber started after the
// publisher gets it without a race.
func TestDefaultPacketSizeMosquittoClients(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian package mosquitto-clients)", tool)
		}
	}
	b := startBroker(t, "")
	_, port, _ := net.SplitHostPort(b.addr())
	for _, size := range []int{1 << 20, 8 << 20} {
		payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
		copy(payload[size-4:], "end!")
		topic := "big/" + strconv.Itoa(size)
		file := writeFile(t, "payload", string(payload))
		if out, err := exec.Command("mosquitto_pub", "-p", port, "-t", topic, "-q", "1", "-r", "-f", file).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub -f of %d bytes: %v\n%s\n%s", size, err, out, b)
		}
		var got, errs bytes.Buffer
		sub := exec.Command("mosquitto_sub", "-p", port, "-t", topic, "-q", "1", "-C", "1", "-N", "-W", "60")
		sub.Stdout, sub.Stderr = &got, &errs
		if err := sub.Run(); err != nil || !bytes.Equal(got.Bytes(), payload) {
			t.Fatalf("%d bytes: mosquitto_sub %v, got %d bytes %s\n%s", size, err, got.Len(), errs.String(), b)
		}
	}
}
