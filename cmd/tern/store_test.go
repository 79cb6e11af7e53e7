package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// fillData runs a broker on dir and leaves in it a persistent session
// with a subscription and queued messages, and retained messages.
func fillData(t *testing.T, dir string, n int) {
	t.Helper()
	port := freePort(t)
	b := startBroker(t, "", "-p", port, "--data-dir", dir, "--sys-interval", "0s")
	addr := "127.0.0.1:" + port
	sub := &k9sub{t: t, addr: addr, id: "keeper", v: packet.V311}
	sub.connectOnce()
	c, _, err := dialK9(context.Background(), addr, "filler", packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for i := 1; i <= n; i++ {
		topic := "k9/x"
		if i%2 == 0 {
			topic = fmt.Sprintf("ret/%d", i)
		}
		if err := c.w.WritePacket(&packet.Publish{Topic: topic, QoS: 1, PacketID: uint16(i), Retain: i%2 == 0, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.r.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
	c.nc.Close()
	b.stop()
}

func TestStoreCheckAndCompact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	fillData(t, dir, 40)
	out, stderr, code := runTern(t, "", "store", "check", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "sessions: 2, subscriptions: 1, queued or in flight: 20, retained: 20") || !strings.Contains(out, "ok") {
		t.Fatalf("store check: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = runTern(t, "", "store", "compact", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "compacted") {
		t.Fatalf("store compact: exit %d\n%s%s", code, out, stderr)
	}
	t.Log(strings.TrimSpace(out))
	out, _, code = runTern(t, "", "store", "check", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "queued or in flight: 20, retained: 20") {
		t.Fatalf("store check after compact: exit %d\n%s", code, out)
	}
	// compact refuses a directory a broker has open.
	port := freePort(t)
	b := startBroker(t, "", "-p", port, "--data-dir", dir)
	_, stderr, code = runTern(t, "", "store", "compact", "--data-dir", dir)
	if code == 0 || !strings.Contains(stderr, "broker.lock") || !strings.Contains(stderr, "running broker holds the lock on "+dir) || !strings.Contains(stderr, "stop the broker to compact now") {
		t.Fatalf("store compact on an open store: exit %d\n%s", code, stderr)
	}
	b.stop()
}

// TestStoreCorruption: each kind of damage gives the expected message,
// naming the file, from tern store check and from tern broker.
func TestStoreCorruption(t *testing.T) {
	base := filepath.Join(t.TempDir(), "data")
	fillData(t, base, 40)
	orig, err := os.ReadFile(filepath.Join(base, "broker.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		harm    func(b []byte) []byte
		check   string // in tern store check's output (exit 0) or error (exit 1)
		ok      bool   // check exits 0 and the broker starts
		brokerL string // in the broker's log or error
	}{
		{"torn tail", func(b []byte) []byte { return b[:len(b)-7] }, "torn tail", true, "dropping the torn tail"},
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }, "fails its checksum", false, "fails its checksum"},
		{"foreign file", func(b []byte) []byte { return []byte("SQLite format 3\x00 and more bytes") }, "is not a Tern broker log", false, "is not a Tern broker log"},
		{"newer version", func(b []byte) []byte { b[8] = 2; return b }, "format version 2", false, "format version 2"},
		{"deleted", nil, "holds no broker store", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(dir, "broker.log")
			if c.harm != nil {
				if err := os.WriteFile(log, c.harm(append([]byte(nil), orig...)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, stderr, code := runTern(t, "", "store", "check", "--data-dir", dir)
			text := out + stderr
			if (code == 0) != c.ok || !strings.Contains(text, c.check) {
				t.Fatalf("store check: exit %d, want ok=%v and %q:\n%s", code, c.ok, c.check, text)
			}
			if c.harm != nil && !strings.Contains(text, log) {
				t.Errorf("store check does not name %s:\n%s", log, text)
			}
			t.Logf("store check: %s", strings.TrimSpace(text))
			if c.brokerL == "" {
				return // a deleted log: the broker starts afresh, as on a new directory
			}
			cmd := exec.Command(ternBinary(t), "broker", "-p", freePort(t), "--data-dir", dir)
			if c.ok {
				b := startBroker(t, "", "-p", freePort(t), "--data-dir", dir)
				if !strings.Contains(b.String(), c.brokerL) || !strings.Contains(b.String(), log) {
					t.Errorf("broker log lacks %q naming %s:\n%s", c.brokerL, log, b)
				}
				b.stop()
				return
			}
			outB, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(outB), c.brokerL) || !strings.Contains(string(outB), log) {
				t.Fatalf("broker on damaged data: %v, want an error with %q naming %s:\n%s", err, c.brokerL, log, outB)
			}
		})
	}
}

// TestBrokerDiskFull runs the broker on a small tmpfs and publishes
// until it is full: MQTT 5 publishers get PUBACK 0x97 Quota exceeded,
// never a success for what was not kept; 3.1.1 ones are disconnected
// without a PUBACK. Needs the right to mount (root); skips otherwise.
func TestBrokerDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	port := freePort(t)
	b := startBroker(t, "", "-p", port, "--data-dir", filepath.Join(mnt, "data"), "--sys-interval", "0s", "--max-queued", "1000000")
	addr := "127.0.0.1:" + port
	sub := &k9sub{t: t, addr: addr, id: "keeper", v: packet.V311}
	sub.connectOnce() // a persistent session the messages are queued for
	c, _, err := dialK9(context.Background(), addr, "filler", packet.V5)
	if err != nil {
		t.Fatal(err)
	}
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	payload := make([]byte, 1000)
	ok, refused := 0, packet.ReasonCode(0)
	for i := 1; i < 5000 && refused == 0; i++ {
		c.w.WritePacket(&packet.Publish{Topic: "k9/x", QoS: 1, PacketID: uint16(i), Payload: payload})
		p, err := c.r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		ack := p.(*packet.Puback)
		if ack.ReasonCode.IsError() {
			refused = ack.ReasonCode
		} else {
			ok++
		}
	}
	if refused != packet.QuotaExceeded {
		t.Fatalf("after %d messages kept: refused with %v, want 0x97 Quota exceeded", ok, refused)
	}
	t.Logf("%d messages kept, then PUBACK 0x97", ok)
	c.nc.Close()
	// A 3.1.1 publisher cannot be told: no PUBACK, the connection closes.
	c3, _, err := dialK9(context.Background(), addr, "filler3", packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	c3.nc.SetDeadline(time.Now().Add(10 * time.Second))
	c3.w.WritePacket(&packet.Publish{Topic: "k9/x", QoS: 1, PacketID: 1, Payload: payload})
	if p, err := c3.r.ReadPacket(); err == nil {
		t.Fatalf("3.1.1 publisher got %v, want the connection closed", p)
	}
	c3.nc.Close()
	if !strings.Contains(b.String(), "disk is full") {
		t.Errorf("the broker did not log the full disk:\n%s", b)
	}
	b.stop()
}

// TestBrokerDataLine: the first log line says where the data lives: the
// default data directory under XDG_STATE_HOME, --data-dir, or in memory.
func TestBrokerDataLine(t *testing.T) {
	first := func(b *brokerProc) string {
		line, _, _ := strings.Cut(b.String(), "\n")
		return line
	}
	b := startBroker(t, "", "-p", freePort(t))
	if l := first(b); !strings.Contains(l, "starting Tern broker") || !strings.Contains(l, `/tern (durable, sync always)"`) {
		t.Errorf("default: first line %q does not say where data lives", l)
	}
	b.stop()
	dir := filepath.Join(t.TempDir(), "d")
	b = startBroker(t, "", "-p", freePort(t), "--data-dir", dir, "--store-sync", "none")
	if l := first(b); !strings.Contains(l, `data="`+dir+` (durable, sync none)"`) {
		t.Errorf("--data-dir: first line %q", l)
	}
	b.stop()
	b = startBroker(t, "", "-p", freePort(t), "--in-memory")
	if l := first(b); !strings.Contains(l, "in memory only") {
		t.Errorf("--in-memory: first line %q", l)
	}
	b.stop()
	_, stderr, code := runTern(t, "", "broker", "--in-memory", "--data-dir", dir)
	if code == 0 || !strings.Contains(stderr, "contradict") {
		t.Errorf("--in-memory with --data-dir: exit %d, %s", code, stderr)
	}
}
