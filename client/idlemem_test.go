package client_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/ternmq/tern/broker"
)

// idleBrokerEnv makes the test binary a broker for TestIdleMemory (see
// TestIdleMemoryBrokerProcess).
const idleBrokerEnv = "TERN_IDLEMEM_BROKER"

// idleProfileEnv names a directory where TestIdleMemory writes a heap
// profile (go tool pprof -sample_index=inuse_space) of each library's
// idle clients, taken while they are connected.
const idleProfileEnv = "TERN_IDLEMEM_PROFILE_DIR"

// idleClients is how many idle clients TestIdleMemory connects per
// library.
const idleClients = 1000

// TestIdleMemory measures the memory of an idle connected client, for
// Tern's client, paho.mqtt.golang and paho.golang: it connects
// idleClients clients of one library and logs, per client, the growth
// of the heap in use plus goroutine stacks (runtime.MemStats HeapInuse +
// StackInuse after a GC), of the live heap (HeapAlloc) and of the
// goroutine count. The broker runs in a child process (this test binary,
// see TestIdleMemoryBrokerProcess) so that its own per-connection memory
// is not counted. It logs figures and asserts none.
//
//	go test -run TestIdleMemory -v ./client/
//	TERN_IDLEMEM_PROFILE_DIR=/tmp go test -run TestIdleMemory -v ./client/  # and heap profiles
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("connects 1,000 clients per library")
	}
	if os.Getenv(idleProfileEnv) != "" {
		old := runtime.MemProfileRate
		runtime.MemProfileRate = 64 // every allocation of the clients, near enough
		defer func() { runtime.MemProfileRate = old }()
	}
	addr := startIdleBroker(t)
	libs := append(benchLibs(), benchLib{"pahogolang-rm20", connectPahoGolangRM(20)})
	for _, lib := range libs {
		t.Run(lib.name, func(t *testing.T) {
			settle := func() runtime.MemStats {
				var ms runtime.MemStats
				for range 3 {
					runtime.GC()
				}
				runtime.ReadMemStats(&ms)
				return ms
			}
			before := settle()
			g0 := runtime.NumGoroutine()
			conns := make([]benchConn, 0, idleClients)
			defer func() {
				for _, c := range conns {
					c.close()
				}
			}()
			for i := range idleClients {
				conns = append(conns, lib.connect(t, "mqtt://"+addr, fmt.Sprintf("idle-%s-%d", lib.name, i), nil))
			}
			// Let every client reach its idle state (goroutines parked,
			// first timers armed) before measuring.
			time.Sleep(time.Second)
			after := settle()
			g1 := runtime.NumGoroutine()
			if dir := os.Getenv(idleProfileEnv); dir != "" {
				writeHeapProfile(t, filepath.Join(dir, "idle-"+lib.name+".heap"))
			}
			runtime.KeepAlive(conns)
			per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / idleClients }
			t.Logf("%s: per idle client: %.0f B heap in use + stacks (heap in use %.0f B, stacks %.0f B), %.0f B live heap, %.2f goroutines",
				lib.name,
				per(after.HeapInuse+after.StackInuse, before.HeapInuse+before.StackInuse),
				per(after.HeapInuse, before.HeapInuse), per(after.StackInuse, before.StackInuse),
				per(after.HeapAlloc, before.HeapAlloc),
				float64(g1-g0)/idleClients)
		})
	}
}

// connectPahoGolangRM is connectPahoGolang with the CONNECT's Receive
// Maximum set to rm: paho.golang sizes a channel of incoming PUBLISHes
// by it (65535 entries, 512 KiB, when it is left out).
func connectPahoGolangRM(rm uint16) func(testing.TB, string, string, func()) benchConn {
	return func(tb testing.TB, url, id string, onMessage func()) benchConn {
		return dialPahoGolang(tb, url, id, onMessage, &paho.ConnectProperties{ReceiveMaximum: &rm})
	}
}

func writeHeapProfile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("%s: %v", idleProfileEnv, err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile: %s", path)
}

// startIdleBroker runs a Tern broker in a child process (this test
// binary running TestIdleMemoryBrokerProcess) and returns its address;
// the broker stops when the test ends.
func startIdleBroker(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleMemoryBrokerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), idleBrokerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
				lines <- a
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close() // the child shuts its broker down and exits
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("broker process: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("broker process did not exit within 30 s of its stdin closing; killed")
		}
	})
	select {
	case a := <-lines:
		return a
	case err := <-exited:
		exited <- err
		t.Fatalf("broker process exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("broker process did not report its address within 30 s")
	}
	return ""
}

// TestIdleMemoryBrokerProcess is the broker process of TestIdleMemory:
// run with TERN_IDLEMEM_BROKER=1, it serves a Tern broker on a free
// loopback port, prints "addr HOST:PORT" and shuts down when its
// standard input ends. Otherwise it is skipped.
func TestIdleMemoryBrokerProcess(t *testing.T) {
	if os.Getenv(idleBrokerEnv) != "1" {
		t.Skip("the broker process of TestIdleMemory; runs only with " + idleBrokerEnv + "=1")
	}
	srv := &broker.Server{Listeners: []broker.Listener{{Addr: "127.0.0.1:0"}}, Logger: quiet(), SysInterval: -1}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if addrs == nil {
		t.Fatal(<-served)
	}
	fmt.Printf("addr %s\n", addrs[0].(*net.TCPAddr))
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	<-served
}
