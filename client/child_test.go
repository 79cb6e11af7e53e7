package client_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store/disk"
)

const childEnv = "TERN_CLIENT_TEST_CHILD"

// runChild is the child process of TestKillMidFlight: it publishes
// messages 0 to N-1 with a durable store and prints "acked i" as each
// publish is acknowledged, until it is killed.
func runChild() int {
	url, dir := os.Getenv("CHILD_URL"), os.Getenv("CHILD_STORE")
	qos, _ := strconv.Atoi(os.Getenv("CHILD_QOS"))
	n, _ := strconv.Atoi(os.Getenv("CHILD_N"))
	st, err := disk.Open(dir, disk.Options{Logger: quiet()})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	c, err := client.New(client.Config{Servers: []string{url}, ClientID: "killed", SessionExpiry: 300, Store: st, Logger: quiet()})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := c.Connect(context.Background()); err != nil {
		fmt.Println("error", err)
		return 1
	}
	toks := make(chan *client.Token, 100)
	go func() {
		for i := range n {
			toks <- c.PublishAsync(&message.Message{Topic: "kill", Payload: []byte(strconv.Itoa(i)), QoS: byte(qos)})
		}
		close(toks)
	}()
	i := 0
	for tok := range toks {
		if _, err := tok.Wait(context.Background()); err != nil {
			fmt.Println("error", err)
			return 1
		}
		fmt.Println("acked", i)
		i++
	}
	select {} // wait to be killed
}

// TestKillMidFlight runs a publisher in a child process with a store/disk
// session, kills it with SIGKILL while messages are in flight, and
// restarts the session in this process: every publish the child saw
// acknowledged arrives exactly once at QoS 2 and at least once at QoS 1,
// in order, and so do those it had accepted but not seen acknowledged.
func TestKillMidFlight(t *testing.T) {
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprint("qos", qos), func(t *testing.T) {
			_, url := startTern(t, nil)
			var mu sync.Mutex
			counts := map[int]int{}
			next, highest := 0, -1
			var bad error
			sub := connect(t, client.Config{Servers: []string{url}})
			if _, err := sub.Subscribe(ctx(t), "kill", 2, func(m *client.Message) {
				i, _ := strconv.Atoi(string(m.Payload))
				mu.Lock()
				defer mu.Unlock()
				counts[i]++
				if counts[i] == 1 && i >= 0 {
					if i != next && bad == nil {
						bad = fmt.Errorf("message %d first seen after %d", i, next-1)
					}
					next = i + 1
				}
				highest = max(highest, i)
			}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_URL="+url, "CHILD_STORE="+dir,
				"CHILD_QOS="+strconv.Itoa(qos), "CHILD_N=100000")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			acked := -1
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, "error") {
					t.Fatal("child:", line)
				}
				acked, _ = strconv.Atoi(strings.TrimPrefix(line, "acked "))
				if acked >= 500 {
					break
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			t.Logf("child killed after %d acknowledged publishes", acked+1)

			st, err := disk.Open(dir, disk.Options{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			outs, _ := st.Outgoing()
			t.Logf("store after the kill: %d messages not completed", len(outs))
			lastAccepted := acked
			for _, o := range outs {
				i, _ := strconv.Atoi(string(o.Msg.Payload))
				lastAccepted = max(lastAccepted, i)
			}
			c := connect(t, client.Config{Servers: []string{url}, ClientID: "killed", SessionExpiry: 300, Store: st})
			if _, err := c.Publish(ctx(t), &message.Message{Topic: "kill", Payload: []byte("-1"), QoS: byte(qos)}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				mu.Lock()
				done := counts[-1] > 0
				mu.Unlock()
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the restarted client's marker never arrived")
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			for i := 0; i <= lastAccepted; i++ {
				switch {
				case counts[i] == 0 && i <= acked:
					t.Errorf("acknowledged message %d lost", i)
				case counts[i] == 0:
					t.Errorf("accepted message %d (in the store) lost", i)
				case qos == 2 && counts[i] > 1:
					t.Errorf("QoS 2 message %d arrived %d times", i, counts[i])
				}
			}
			if bad != nil {
				t.Error(bad)
			}
			dups := 0
			for i, n := range counts {
				if i >= 0 {
					dups += n - 1
				}
			}
			t.Logf("received %d messages (up to %d), %d duplicates", len(counts)-1, highest, dups)
		})
	}
}
