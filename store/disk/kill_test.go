package disk

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/storetest"
)

// TestKill9 runs a child process (this test binary, re-executed) that
// changes a session as fast as it can from several goroutines and
// reports each change on stdout as its call returns, and kills it with
// SIGKILL at a random point: every change the child reported is in the
// reopened session, with the right state, and nothing is corrupt. The
// only change of a goroutine that may or may not be there is the one it
// had in flight. The child compacts often, so some kills land inside a
// compaction.
func TestKill9(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("needs SIGKILL")
	}
	seed := uint64(os.Getpid())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 9))
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		doSync := round%2 == 1
		kill := 50 + r.IntN(2500) // acknowledgements to read before the kill
		t.Run(fmt.Sprintf("round%d-sync=%v-after=%d", round, doSync, kill), func(t *testing.T) {
			killRound(t, doSync, kill)
		})
	}
}

const (
	childEnv      = "TERN_DISK_KILL_CHILD" // the directory; set in the child only
	childSyncEnv  = "TERN_DISK_KILL_SYNC"
	killWorkers   = 4
	killPerWorker = 15000 // seqs per worker; the child is killed long before
	idsPerWorker  = 16000 // incoming packet ids owned by each worker
	childCompact  = 8 << 10
)

func killRound(t *testing.T, sync bool, kill int) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childSyncEnv+"="+strconv.FormatBool(sync))
	cmd.Stderr = &testWriter{t: t}
	stdin, err := cmd.StdinPipe() // the child exits when it closes
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child did not start: %q %v", sc.Text(), sc.Err())
	}
	// The directory is locked against this process while the child has it.
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "open elsewhere") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("Open of a directory another process has open: %v", err)
	}
	acked := make([]int, killWorkers) // ops of each worker acknowledged
	read := 0
	note := func(line string) {
		var w, k int
		if _, err := fmt.Sscanf(line, "%d %d", &w, &k); err != nil || w < 0 || w >= killWorkers || k != acked[w] {
			t.Errorf("bad line from the child: %q (worker acknowledged %v)", line, acked)
			return
		}
		acked[w]++
		read++
	}
	for read < kill && sc.Scan() {
		note(sc.Text())
	}
	if read < kill {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child stopped after %d acknowledgements: %v", read, sc.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // what it acknowledged before it died is still in the pipe
		note(sc.Text())
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v", err)
	}
	t.Logf("killed after %d acknowledgements (%v by worker)", read, acked)

	for pass := range 2 { // the first open may cut a torn tail; the second sees the result
		s := open(t, dir, Options{})
		out, err := s.Outgoing()
		if err != nil {
			t.Fatalf("pass %d: Outgoing: %v", pass, err)
		}
		in, err := s.Incoming()
		if err != nil {
			t.Fatal(err)
		}
		checkKilled(t, out, in, acked)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkKilled checks each worker's part of the session: it must be the
// state after the changes the worker acknowledged, or after one more.
func checkKilled(t *testing.T, out []store.Outgoing, in []uint16, acked []int) {
	t.Helper()
	gotOut := make([]map[uint64]store.Outgoing, killWorkers)
	gotIn := make([]map[uint16]bool, killWorkers)
	for w := range killWorkers {
		gotOut[w], gotIn[w] = map[uint64]store.Outgoing{}, map[uint16]bool{}
	}
	for _, o := range out {
		gotOut[(o.Seq-1)%killWorkers][o.Seq] = o
	}
	for _, id := range in {
		gotIn[(int(id)-1)/idsPerWorker][id] = true
	}
	for w := range killWorkers {
		ops := workerOps(w)
		var why []string
		for _, n := range []int{acked[w], acked[w] + 1} {
			wantOut, wantIn := replayOps(ops[:min(n, len(ops))])
			d := diffKilled(gotOut[w], gotIn[w], wantOut, wantIn)
			if d == "" {
				why = nil
				break
			}
			why = append(why, fmt.Sprintf("after %d changes: %s", n, d))
		}
		if why != nil {
			t.Errorf("worker %d acknowledged %d changes, but the session holds neither their state nor the next:\n%s", w, acked[w], strings.Join(why, "\n"))
		}
	}
}

func diffKilled(gotOut map[uint64]store.Outgoing, gotIn map[uint16]bool, wantOut map[uint64]store.Outgoing, wantIn map[uint16]bool) string {
	if len(gotOut) != len(wantOut) {
		return fmt.Sprintf("%d messages, want %d", len(gotOut), len(wantOut))
	}
	for seq, w := range wantOut {
		g, ok := gotOut[seq]
		if !ok {
			return fmt.Sprintf("seq %d is missing", seq)
		}
		if d := storetest.DiffOutgoing(g, w); d != "" {
			return fmt.Sprintf("seq %d: %s", seq, d)
		}
	}
	if len(gotIn) != len(wantIn) {
		return fmt.Sprintf("%d incoming ids, want %d", len(gotIn), len(wantIn))
	}
	for id := range wantIn {
		if !gotIn[id] {
			return fmt.Sprintf("incoming id %d is missing", id)
		}
	}
	return ""
}

// kop is one change of a kill-test worker: A add, S sent, R released,
// D delete, I add incoming, J delete incoming.
type kop struct {
	kind byte
	seq  uint64
	id   uint16
}

// workerOps is the fixed sequence of changes worker w makes: its own
// messages (seq ≡ w+1 mod killWorkers) and incoming ids, so that
// workers are independent and each has one change in flight at most.
func workerOps(w int) []kop {
	var ops []kop
	for i := range killPerWorker {
		seq := uint64(i*killWorkers + w + 1)
		ops = append(ops, kop{'A', seq, 0}, kop{'S', seq, uint16(seq%65535 + 1)})
		if seq%2 == 0 {
			ops = append(ops, kop{'R', seq, 0})
		}
		if seq%5 != 0 { // one in five is never acknowledged and stays
			ops = append(ops, kop{'D', seq, 0})
		}
		id := uint16(w*idsPerWorker + 1 + i%idsPerWorker)
		ops = append(ops, kop{'I', 0, id})
		if i%2 == 0 {
			ops = append(ops, kop{'J', 0, id})
		}
	}
	return ops
}

func replayOps(ops []kop) (map[uint64]store.Outgoing, map[uint16]bool) {
	out, in := map[uint64]store.Outgoing{}, map[uint16]bool{}
	for _, op := range ops {
		o := out[op.seq]
		switch op.kind {
		case 'A':
			out[op.seq] = store.Outgoing{Seq: op.seq, Msg: storetest.FullMessage(op.seq)}
		case 'S':
			o.PacketID = uint16(op.seq%65535 + 1)
			out[op.seq] = o
		case 'R':
			o.Released = true
			out[op.seq] = o
		case 'D':
			delete(out, op.seq)
		case 'I':
			in[op.id] = true
		case 'J':
			delete(in, op.id)
		}
	}
	return out, in
}

func (op kop) do(s *Session) error {
	switch op.kind {
	case 'A':
		return s.AddOutgoing(store.Outgoing{Seq: op.seq, Msg: storetest.FullMessage(op.seq)})
	case 'S':
		return s.MarkSent(op.seq, uint16(op.seq%65535+1))
	case 'R':
		return s.MarkReleased(op.seq)
	case 'D':
		return s.DeleteOutgoing(op.seq)
	case 'I':
		return s.AddIncoming(op.id)
	default:
		return s.DeleteIncoming(op.id)
	}
}

// killChild is the child process of TestKill9: it opens the session in
// $TERN_DISK_KILL_CHILD, says "ready", and has killWorkers goroutines
// make their changes, printing "worker index" as each call returns
// (one write(2) per line), until it is killed or its stdin closes.
func killChild() int {
	s, err := Open(os.Getenv(childEnv), Options{Sync: os.Getenv(childSyncEnv) == "true", CompactBytes: childCompact})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { // the parent is gone: stop
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	fmt.Println("ready")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range killWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, op := range workerOps(w) {
				if err := op.do(s); err != nil {
					fmt.Fprintf(os.Stderr, "worker %d change %d (%c): %v\n", w, k, op.kind, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%d %d\n", w, k)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	select {} // wait to be killed
}

// testWriter passes a child's stderr to the test log.
type testWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("child: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}
