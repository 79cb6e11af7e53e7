package loadgen

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ternmq/tern/packet"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50
	// ticks (fields 14 and 15).
	line := "4242 (tern (x) y) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 3 0 123456 1000000 500 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Errorf("parseStatCPU = %v, want %v (300 ticks at USER_HZ 100)", got, want)
	}
	for _, bad := range []string{"", "4242 tern S 1", "4242 (tern) S 1 2 3", "4242 (t) S 1 2 3 4 5 6 7 8 9 10 x 50 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestReadCPUSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("no /proc (Linux only): %v", err)
	}
	if _, err := parseStatCPU(b); err != nil {
		t.Fatalf("this process's /proc/self/stat: %v", err)
	}
	before, err := readCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel has counted a tick more (bounded).
	deadline := time.Now().Add(20 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		after, err := readCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after < before {
			t.Fatalf("CPU time went back: %v then %v", before, after)
		}
		if after > before {
			return
		}
	}
	t.Fatalf("CPU time did not grow (%d)", x)
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\ttern\nVmPeak:\t  900 kB\nVmHWM:\t   54321 kB\nVmRSS:\t   12345 kB\n"
	for key, want := range map[string]int64{"VmRSS": 12345, "VmHWM": 54321} {
		got, err := parseStatusKiB([]byte(status), key)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if _, err := parseStatusKiB([]byte(status), "VmSwap"); err == nil {
		t.Error("VmSwap: no error for a missing key")
	}
	if _, err := readStatusKiB(os.Getpid(), "VmHWM"); err != nil {
		t.Skipf("no /proc (Linux only): %v", err)
	}
}

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestWritePerPublish queues n PUBLISHes before the writer starts and
// counts the writes on the client's socket: coalesced, they go out in
// one; with writeEach, in n. The peer decodes all n.
func TestWritePerPublish(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const n = 20
	for _, each := range []bool{false, true} {
		t.Run(map[bool]string{false: "coalesced", true: "per-publish"}[each], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got, seen := make(chan int, 1), make(chan struct{})
			go func() { got <- peer(ln, n, seen) }()

			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			nc := &countingConn{Conn: raw}
			c, err := handshake(nc, connOptions{
				version: packet.V311, clientID: "wpp", bufSize: 16 << 10,
				queue: n + 1, payloadSize: 64, writeEach: each,
			})
			if err != nil {
				nc.Close()
				t.Fatal(err)
			}
			for i := range n {
				c.out <- item{kind: kPublish, topic: "bench/wpp", seq: uint64(i)}
			}
			w0 := nc.writes.Load() // the CONNECT
			c.start(ctx)
			select {
			case <-seen: // every PUBLISH written has been read
			case <-ctx.Done():
				t.Fatal("the peer did not read the PUBLISHes")
			}
			writes := nc.writes.Load() - w0
			c.disconnect(ctx)
			want := int64(1)
			if each {
				want = n
			}
			if writes != want {
				t.Errorf("%d PUBLISHes went out in %d writes, want %d", n, writes, want)
			}
			select {
			case pubs := <-got:
				if pubs != n {
					t.Errorf("the peer read %d PUBLISHes, want %d", pubs, n)
				}
			case <-ctx.Done():
				t.Fatal("the peer did not finish")
			}
		})
	}
}

// peer accepts one connection, answers its CONNECT and counts the
// PUBLISHes until DISCONNECT or EOF; it closes seen at the n-th.
func peer(ln net.Listener, n int, seen chan struct{}) int {
	nc, err := ln.Accept()
	if err != nil {
		return -1
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	rd := packet.NewReader(bufio.NewReader(nc))
	if _, err := rd.ReadPacket(); err != nil {
		return -1
	}
	bw := bufio.NewWriter(nc)
	if err := packet.NewWriter(bw).WritePacket(&packet.Connack{}); err != nil || bw.Flush() != nil {
		return -1
	}
	pubs := 0
	for {
		p, err := rd.ReadPacket()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return pubs
			}
			return -1
		}
		switch p.(type) {
		case *packet.Publish:
			if pubs++; pubs == n {
				close(seen)
			}
		case *packet.Disconnect:
			return pubs
		}
	}
}
