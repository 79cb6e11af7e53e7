package broker

import (
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestIdleMemory reports the memory an idle, connected MQTT client costs
// the broker (heap and goroutine stacks, after a GC). It only reports:
// memory is measured, not asserted. Run with -v to see the figures.
func TestIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many connections")
	}
	const n = 2000
	srv := &Server{SysInterval: -1}
	addr := startServer(t, srv)
	measure := func() runtime.MemStats {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms
	}
	before := measure()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect, _ := packet.Encode(&packet.Connect{Version: packet.V311, ClientID: "", CleanStart: true, KeepAlive: 60}, packet.V311)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(connect)
		var ack [4]byte
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(ack[:]); err != nil {
			t.Fatal(err)
		}
	}
	after := measure()
	// The client ends of the connections live in this process too: a
	// net.Conn costs a few hundred bytes of heap, counted here as well.
	heap := float64(after.HeapInuse-before.HeapInuse) / n
	stack := float64(after.StackInuse-before.StackInuse) / n
	t.Logf("per idle connection (client side included): heap %.0f B, stacks %.0f B, total %.2f KiB", heap, stack, (heap+stack)/1024)
	if f := os.Getenv("TERN_HEAP_PROFILE"); f != "" {
		out, _ := os.Create(f)
		pprof.WriteHeapProfile(out)
		out.Close()
	}
}
