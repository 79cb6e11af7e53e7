package broker

// Interoperability tests: real third-party MQTT clients against a Tern
// broker on a loopback port. The clients are Debian's mosquitto_pub /
// mosquitto_sub 2.0 (package mosquitto-clients) and the Python Eclipse
// Paho client 1.6 (package python3-paho-mqtt, run with /usr/bin/python3
// through testdata/interop/paho_client.py). A test whose client is not
// installed is skipped with the package to install.
//
// Matrix (every cell is a subtest with a broker of its own):
//
//	client(s)                         versions        feature                                   test
//	--------------------------------  --------------  ----------------------------------------  ------------------------------------
//	mosquitto_pub -> mosquitto_sub    3.1 3.1.1 5     QoS 0, 1, 2 (3 messages, in order)         TestInteropMosquitto
//	Server.Publish -> mosquitto_sub   3.1 3.1.1 5     QoS 0, 1, 2                                TestInteropInline/to-mosquitto
//	mosquitto_pub -> Server.Subscribe 3.1 3.1.1 5     QoS 0, 1, 2                                TestInteropInline/from-mosquitto
//	Paho -> mosquitto_sub             3.1 3.1.1 5     QoS 0, 1, 2                                TestInteropPaho/paho-to-mosquitto
//	mosquitto_pub -> Paho             3.1 3.1.1 5     QoS 0, 1, 2                                TestInteropPaho/mosquitto-to-paho
//	Paho -> Paho                      3.1 3.1.1 5     QoS 0, 1, 2                                TestInteropPaho/paho-to-paho
//	mosquitto_pub -r / mosquitto_sub  3.1 3.1.1 5     retained (flag 1), live (flag 0), -r -n    TestInteropRetained/mosquitto
//	Paho retain / Paho                3.1 3.1.1 5     retained (retain 1), live (0), delete      TestInteropRetained/paho
//	Paho will -> mosquitto_sub        3.1 3.1.1 5     will QoS 1, retain 0/1; socket closed      TestInteropWill/*/die
//	                                                  without DISCONNECT, SIGKILL; clean
//	                                                  DISCONNECT sends no will                  TestInteropWill/*/{kill,disconnect}
//	Paho clean_session=0              3.1 3.1.1 5     5 QoS 1 + 5 QoS 2 queued while offline,   TestInteropPersistentSession/paho
//	                                                  session present = 1 on reconnect
//	mosquitto_sub -c -i ID -q 1       3.1 3.1.1 5     the same flow (MQTT 5: -x 300)             TestInteropPersistentSession/mosquitto
//	mosquitto_sub --will-* (SIGKILL)  3.1 3.1.1 5     will QoS 1 -> mosquitto_sub                TestInteropWillMosquitto
//	Paho <-> mosquitto, mosquitto_sub 3.1 3.1.1 5     300 messages QoS 1, 2 (over the in-flight  TestInteropBurst
//	  -c (queued while offline)                       windows), live and queued, in order
//	mosquitto_pub -u -P, Paho         3.1 3.1.1 5     right password accepted, wrong / missing  TestInteropAuth
//	                                                  refused (exit status; Paho: CONNACK 4,
//	                                                  MQTT 5: 0x86)

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// interopVersions are the protocol versions every matrix runs, in the
// spelling of paho_client.py --protocol.
var interopVersions = []string{"3.1", "3.1.1", "5"}

// interopMosqVersion is mosquitto's -V spelling of a version.
var interopMosqVersion = map[string]string{"3.1": "mqttv31", "3.1.1": "mqttv311", "5": "5"}

const (
	interopProcTimeout = 30 * time.Second // a client process is killed after this
	interopWaitTimeout = 15 * time.Second // how long a condition may take to hold
	interopPython      = "/usr/bin/python3"
)

func interopNeedMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip(tool + " not installed: apt-get install mosquitto-clients")
		}
	}
}

var interopPaho = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, interopPython, "-c", "import paho.mqtt.client").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
})

func interopNeedPaho(t *testing.T) {
	t.Helper()
	if err := interopPaho(); err != nil {
		t.Skipf("python3-paho-mqtt not installed: apt-get install python3-paho-mqtt (%s -c 'import paho.mqtt.client': %v)", interopPython, err)
	}
}

// interopBroker starts a broker for one subtest, without $SYS so that the
// retained store and the subscription count hold only what the test did.
func interopBroker(t *testing.T, srv *Server) (host, port string) {
	t.Helper()
	if srv == nil {
		srv = &Server{}
	}
	srv.SysInterval = -1
	addr := startServer(t, srv)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// interopBuf is a bytes.Buffer safe for a process writing and a test reading.
type interopBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *interopBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *interopBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// interopProc is a client process. It is killed, if still running, and
// waited for when the test ends.
type interopProc struct {
	name   string
	cmd    *exec.Cmd
	stdout interopBuf
	stderr interopBuf
	done   chan struct{}
	err    error // from Wait, once done is closed
}

// interopStart starts a client process; stdin, if not empty, is its input.
func interopStart(t *testing.T, stdin string, name string, args ...string) *interopProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopProcTimeout)
	p := &interopProc{name: filepath.Base(name), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, name, args...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		p.cmd.Stdin = strings.NewReader(stdin)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel() // kills the process if it is still running
		<-p.done
	})
	return p
}

func (p *interopProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *interopProc) String() string {
	state := "running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	return fmt.Sprintf("%s %s (%s)\nstdout:\n%s\nstderr:\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), state, p.stdout.String(), p.stderr.String())
}

// wait waits for the process to end (it is killed after interopProcTimeout)
// and returns its error.
func (p *interopProc) wait() error {
	<-p.done
	return p.err
}

// mustSucceed waits for the process and fails the test unless it exited 0.
func (p *interopProc) mustSucceed(t *testing.T) {
	t.Helper()
	if err := p.wait(); err != nil {
		t.Fatalf("%v", p)
	}
}

// lines returns the non-empty lines the process wrote to stdout.
func (p *interopProc) lines() []string {
	var out []string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// interopEvent is one JSON line of paho_client.py.
type interopEvent struct {
	Event          string `json:"event"`
	RC             int    `json:"rc"`
	SessionPresent int    `json:"session_present"`
	Granted        []int  `json:"granted"`
	Topic          string `json:"topic"`
	Payload        string `json:"payload"`
	QoS            int    `json:"qos"`
	Retain         int    `json:"retain"`
	Count          int    `json:"count"`
}

func (p *interopProc) events(t *testing.T) []interopEvent {
	t.Helper()
	var evs []interopEvent
	sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
	for sc.Scan() {
		var e interopEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v\n%v", sc.Text(), err, p)
		}
		evs = append(evs, e)
	}
	return evs
}

func (p *interopProc) event(t *testing.T, kind string) (interopEvent, bool) {
	t.Helper()
	for _, e := range p.events(t) {
		if e.Event == kind {
			return e, true
		}
	}
	return interopEvent{}, false
}

// messages returns the messages a Paho subscriber printed, as
// "qos retain topic payload" lines like mosquitto_sub -F '%q %r %t %p'.
func (p *interopProc) messages(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range p.events(t) {
		if e.Event == "message" {
			out = append(out, fmt.Sprintf("%d %d %s %s", e.QoS, e.Retain, e.Topic, e.Payload))
		}
	}
	return out
}

// interopWaitFor polls cond until it holds, failing the test after
// interopWaitTimeout, or at once when one of procs exited (it can no
// longer make cond true).
func interopWaitFor(t *testing.T, what string, cond func() bool, procs ...*interopProc) {
	t.Helper()
	deadline := time.Now().Add(interopWaitTimeout)
	for !cond() {
		for _, p := range procs {
			if p.exited() && !cond() {
				t.Fatalf("waiting for %s: client exited\n%v", what, p)
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&b, "\n%v", p)
			}
			t.Fatalf("timed out waiting for %s%s", what, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// interopWaitSubs waits until the broker holds n subscriptions.
func interopWaitSubs(t *testing.T, srv *Server, n int64, procs ...*interopProc) {
	t.Helper()
	interopWaitFor(t, fmt.Sprintf("%d subscription(s)", n), func() bool { return srv.Stats().Subscriptions == n }, procs...)
}

// interopWaitClients waits until n clients are connected: a client that
// went away has been torn down, its will (if any) routed.
func interopWaitClients(t *testing.T, srv *Server, n int64) {
	t.Helper()
	interopWaitFor(t, fmt.Sprintf("%d connected client(s)", n), func() bool { return srv.Stats().ClientsConnected == n })
}

// mosquitto runs mosquitto_pub or mosquitto_sub against the broker.
func interopMosquitto(t *testing.T, stdin, tool, host, port, version string, args ...string) *interopProc {
	t.Helper()
	base := []string{"-h", host, "-p", port, "-V", interopMosqVersion[version]}
	return interopStart(t, stdin, tool, append(base, args...)...)
}

// interopMosqSub starts mosquitto_sub printing "qos retain topic payload"
// lines and exiting after count messages.
func interopMosqSub(t *testing.T, host, port, version string, count, qos int, filter string, extra ...string) *interopProc {
	t.Helper()
	args := []string{"-q", fmt.Sprint(qos), "-t", filter, "-F", "%q %r %t %p"}
	if count > 0 {
		args = append(args, "-C", fmt.Sprint(count), "-W", fmt.Sprint(int(interopWaitTimeout/time.Second)))
	}
	return interopMosquitto(t, "", "mosquitto_sub", host, port, version, append(args, extra...)...)
}

// interopPahoClient starts paho_client.py against the broker.
func interopPahoClient(t *testing.T, port, version string, args ...string) *interopProc {
	t.Helper()
	base := []string{filepath.Join("testdata", "interop", "paho_client.py"), "--port", port, "--protocol", version,
		"--timeout", fmt.Sprint(int(interopWaitTimeout / time.Second))}
	return interopStart(t, "", interopPython, append(base, args...)...)
}

// interopPayloads returns "<prefix>0".."<prefix>n-1", one a line, for
// mosquitto_pub -l.
func interopPayloads(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s%d\n", prefix, i)
	}
	return b.String()
}

// interopWant returns the "qos retain topic payload" lines of n messages.
func interopWant(qos, retain int, topicName, prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%d %d %s %s%d", qos, retain, topicName, prefix, i))
	}
	return out
}

func interopCheckLines(t *testing.T, p *interopProc, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got messages\n  %s\nwant\n  %s\n%v", strings.Join(got, "\n  "), strings.Join(want, "\n  "), p)
	}
}

// interopCID makes a client identifier of at most 23 characters (MQTT 3.1).
func interopCID(parts ...string) string {
	id := strings.NewReplacer(".", "", "/", "", "-", "").Replace(strings.Join(parts, ""))
	if len(id) > 23 {
		id = id[:23]
	}
	return id
}

const interopN = 3 // messages per QoS cell

func TestInteropMosquitto(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		for qos := range 3 {
			t.Run(fmt.Sprintf("v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := fmt.Sprintf("interop/mosq/%s/%d", v, qos)
				sub := interopMosqSub(t, host, port, v, interopN, qos, tp)
				interopWaitSubs(t, srv, 1, sub)
				interopMosquitto(t, interopPayloads("m", interopN), "mosquitto_pub", host, port, v,
					"-q", fmt.Sprint(qos), "-t", tp, "-l").mustSucceed(t)
				sub.mustSucceed(t)
				interopCheckLines(t, sub, sub.lines(), interopWant(qos, 0, tp, "m", interopN))
			})
		}
	}
}

func TestInteropInline(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		for qos := range 3 {
			t.Run(fmt.Sprintf("to-mosquitto/v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/inline/out"
				sub := interopMosqSub(t, host, port, v, interopN, 2, tp)
				interopWaitSubs(t, srv, 1, sub)
				for i := range interopN {
					if err := srv.Publish(tp, fmt.Appendf(nil, "m%d", i), byte(qos), false); err != nil {
						t.Fatal(err)
					}
				}
				sub.mustSucceed(t)
				interopCheckLines(t, sub, sub.lines(), interopWant(qos, 0, tp, "m", interopN))
			})
			t.Run(fmt.Sprintf("from-mosquitto/v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/inline/in"
				got := make(chan *Message, 2*interopN)
				unsub, err := srv.Subscribe("interop/inline/+", 2, func(m *Message) { got <- m })
				if err != nil {
					t.Fatal(err)
				}
				defer unsub()
				id := interopCID("pub", v, fmt.Sprint(qos))
				interopMosquitto(t, interopPayloads("m", interopN), "mosquitto_pub", host, port, v,
					"-i", id, "-q", fmt.Sprint(qos), "-t", tp, "-l").mustSucceed(t)
				timeout := time.After(interopWaitTimeout)
				for i := range interopN {
					select {
					case m := <-got:
						if m.Topic != tp || string(m.Payload) != fmt.Sprintf("m%d", i) || int(m.QoS) != qos || m.Retain || m.From != id {
							t.Fatalf("message %d: got topic %q payload %q QoS %d retain %v from %q; want %q m%d QoS %d from %q",
								i, m.Topic, m.Payload, m.QoS, m.Retain, m.From, tp, i, qos, id)
						}
					case <-timeout:
						t.Fatalf("got %d of %d messages", i, interopN)
					}
				}
			})
		}
	}
}

// TestInteropPaho: Eclipse Paho and the Mosquitto clients, conformant
// implementations, work with a broker in its default configuration and
// need nothing beyond the specification [v3 MQTT-7.0.0-2].
func TestInteropPaho(t *testing.T) {
	interopNeedPaho(t)
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		for qos := range 3 {
			q := fmt.Sprint(qos)
			t.Run(fmt.Sprintf("paho-to-mosquitto/v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/paho/out"
				sub := interopMosqSub(t, host, port, v, interopN, qos, tp)
				interopWaitSubs(t, srv, 1, sub)
				pub := interopPahoClient(t, port, v, "--role", "pub", "--id", interopCID("pahopub", v, q),
					"--topic", tp, "--qos", q, "--count", fmt.Sprint(interopN))
				pub.mustSucceed(t)
				if e, ok := pub.event(t, "published"); !ok || e.Count != interopN {
					t.Fatalf("Paho did not publish %d messages\n%v", interopN, pub)
				}
				sub.mustSucceed(t)
				interopCheckLines(t, sub, sub.lines(), interopWant(qos, 0, tp, "m", interopN))
			})
			t.Run(fmt.Sprintf("mosquitto-to-paho/v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/paho/in"
				sub := interopPahoClient(t, port, v, "--role", "sub", "--id", interopCID("pahosub", v, q),
					"--topic", "interop/paho/#", "--qos", q, "--count", fmt.Sprint(interopN))
				interopWaitSubs(t, srv, 1, sub)
				interopMosquitto(t, interopPayloads("m", interopN), "mosquitto_pub", host, port, v,
					"-q", q, "-t", tp, "-l").mustSucceed(t)
				sub.mustSucceed(t)
				if e, _ := sub.event(t, "subscribed"); !slices.Equal(e.Granted, []int{qos}) {
					t.Fatalf("granted %v, want [%d]\n%v", e.Granted, qos, sub)
				}
				interopCheckLines(t, sub, sub.messages(t), interopWant(qos, 0, tp, "m", interopN))
			})
			t.Run(fmt.Sprintf("paho-to-paho/v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				_, port := interopBroker(t, srv)
				tp := "interop/paho/both"
				sub := interopPahoClient(t, port, v, "--role", "sub", "--id", interopCID("pahosub", v, q),
					"--topic", tp, "--qos", q, "--count", fmt.Sprint(interopN))
				interopWaitSubs(t, srv, 1, sub)
				interopPahoClient(t, port, v, "--role", "pub", "--id", interopCID("pahopub", v, q),
					"--topic", tp, "--qos", q, "--count", fmt.Sprint(interopN)).mustSucceed(t)
				sub.mustSucceed(t)
				interopCheckLines(t, sub, sub.messages(t), interopWant(qos, 0, tp, "m", interopN))
			})
		}
	}
}

func TestInteropRetained(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		t.Run("mosquitto/v"+v, func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			host, port := interopBroker(t, srv)
			tp := "interop/retained/mosq"
			pub := func(args ...string) {
				t.Helper()
				interopMosquitto(t, "", "mosquitto_pub", host, port, v, append([]string{"-q", "1", "-t", tp}, args...)...).mustSucceed(t)
			}
			pub("-r", "-m", "kept")
			if n := srv.Stats().Retained; n != 1 {
				t.Fatalf("%d retained messages after mosquitto_pub -r, want 1", n)
			}
			// A new subscriber gets the retained message with the flag set,
			// then a live one without it.
			sub := interopMosqSub(t, host, port, v, 2, 1, "interop/retained/#")
			interopWaitSubs(t, srv, 1, sub)
			pub("-m", "live")
			sub.mustSucceed(t)
			interopCheckLines(t, sub, sub.lines(), []string{"1 1 " + tp + " kept", "1 0 " + tp + " live"})

			// -r -n deletes it: the next subscriber's first message is live.
			pub("-r", "-n")
			if n := srv.Stats().Retained; n != 0 {
				t.Fatalf("%d retained messages after mosquitto_pub -r -n, want 0", n)
			}
			interopWaitSubs(t, srv, 0)
			sub = interopMosqSub(t, host, port, v, 1, 1, tp)
			interopWaitSubs(t, srv, 1, sub)
			pub("-m", "marker")
			sub.mustSucceed(t)
			interopCheckLines(t, sub, sub.lines(), []string{"1 0 " + tp + " marker"})
		})
		t.Run("paho/v"+v, func(t *testing.T) {
			interopNeedPaho(t)
			t.Parallel()
			srv := &Server{}
			_, port := interopBroker(t, srv)
			tp := "interop/retained/paho"
			pub := func(args ...string) {
				t.Helper()
				interopPahoClient(t, port, v, append([]string{"--role", "pub", "--id", interopCID("rpub", v), "--topic", tp, "--qos", "1"}, args...)...).mustSucceed(t)
			}
			pub("--retain", "--prefix", "kept")
			if n := srv.Stats().Retained; n != 1 {
				t.Fatalf("%d retained messages after a retained Paho publish, want 1", n)
			}
			sub := interopPahoClient(t, port, v, "--role", "sub", "--id", interopCID("rsub", v), "--topic", "interop/retained/+", "--qos", "1", "--count", "2")
			interopWaitSubs(t, srv, 1, sub)
			pub("--prefix", "live")
			sub.mustSucceed(t)
			interopCheckLines(t, sub, sub.messages(t), []string{"1 1 " + tp + " kept0", "1 0 " + tp + " live0"})

			pub("--retain", "--empty")
			if n := srv.Stats().Retained; n != 0 {
				t.Fatalf("%d retained messages after an empty retained Paho publish, want 0", n)
			}
			interopWaitSubs(t, srv, 0)
			sub = interopPahoClient(t, port, v, "--role", "sub", "--id", interopCID("rsub2", v), "--topic", tp, "--qos", "1", "--count", "1")
			interopWaitSubs(t, srv, 1, sub)
			pub("--prefix", "marker")
			sub.mustSucceed(t)
			interopCheckLines(t, sub, sub.messages(t), []string{"1 0 " + tp + " marker0"})
		})
	}
}

func TestInteropWill(t *testing.T) {
	interopNeedPaho(t)
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		for _, retain := range []bool{false, true} {
			for _, end := range []string{"die", "kill", "disconnect"} {
				t.Run(fmt.Sprintf("v%s/retain=%v/%s", v, retain, end), func(t *testing.T) {
					t.Parallel()
					srv := &Server{}
					host, port := interopBroker(t, srv)
					tp := "interop/will"
					sub := interopMosqSub(t, host, port, v, 1, 1, tp)
					interopWaitSubs(t, srv, 1, sub)
					interopWaitClients(t, srv, 1)

					then := end
					if end == "kill" {
						then = "wait"
					}
					args := []string{"--role", "hold", "--id", interopCID("will", v, end), "--then", then,
						"--will-topic", tp, "--will-payload", "gone", "--will-qos", "1"}
					if retain {
						args = append(args, "--will-retain")
					}
					holder := interopPahoClient(t, port, v, args...)
					switch end {
					case "die":
						if err := holder.wait(); err == nil {
							t.Fatalf("want exit status 1\n%v", holder)
						}
						if _, ok := holder.event(t, "dying"); !ok {
							t.Fatalf("the Paho client did not connect\n%v", holder)
						}
					case "kill":
						interopWaitFor(t, "the Paho client to connect", func() bool {
							return strings.Contains(holder.stdout.String(), `"waiting"`)
						}, holder)
						if err := holder.cmd.Process.Kill(); err != nil {
							t.Fatal(err)
						}
						holder.wait()
					case "disconnect":
						holder.mustSucceed(t)
					}
					// Once the client is torn down its will, if any, has
					// been routed; a marker then shows what came first.
					// (At most one client left: either the Paho client is
					// gone, or mosquitto_sub is, having received the will.)
					interopWaitFor(t, "the Paho client to be gone", func() bool { return srv.Stats().ClientsConnected <= 1 })
					if err := srv.Publish(tp, []byte("marker"), 1, false); err != nil {
						t.Fatal(err)
					}
					sub.mustSucceed(t)
					if end == "disconnect" {
						interopCheckLines(t, sub, sub.lines(), []string{"1 0 " + tp + " marker"})
						if n := srv.Stats().Retained; n != 0 {
							t.Fatalf("%d retained messages after a clean disconnect, want 0", n)
						}
						return
					}
					// A live subscriber gets the will with RETAIN 0
					// [v3 MQTT-3.3.1-9] [v5 MQTT-3.3.1-12].
					interopCheckLines(t, sub, sub.lines(), []string{"1 0 " + tp + " gone"})
					if !retain {
						if n := srv.Stats().Retained; n != 0 {
							t.Fatalf("%d retained messages, want 0", n)
						}
						return
					}
					late := interopMosqSub(t, host, port, v, 1, 1, tp)
					late.mustSucceed(t)
					interopCheckLines(t, late, late.lines(), []string{"1 1 " + tp + " gone"})
				})
			}
		}
	}
}

func TestInteropPersistentSession(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	// queue publishes 5 QoS 1 and 5 QoS 2 messages with mosquitto_pub
	// while the subscriber is offline.
	queue := func(t *testing.T, srv *Server, host, port, v, tp string) {
		t.Helper()
		interopMosquitto(t, interopPayloads("q1-", 5), "mosquitto_pub", host, port, v, "-q", "1", "-t", tp, "-l").mustSucceed(t)
		interopMosquitto(t, interopPayloads("q2-", 5), "mosquitto_pub", host, port, v, "-q", "2", "-t", tp, "-l").mustSucceed(t)
	}
	want := func(tp string) []string {
		// The subscription's QoS 1 caps the QoS 2 messages.
		return append(interopWant(1, 0, tp, "q1-", 5), interopWant(1, 0, tp, "q2-", 5)...)
	}
	// offline waits until the subscriber is gone and its session kept.
	offline := func(t *testing.T, srv *Server) {
		t.Helper()
		interopWaitClients(t, srv, 0)
		if st := srv.Stats(); st.Sessions != 1 || st.Subscriptions != 1 {
			t.Fatalf("after the persistent client left: %d sessions, %d subscriptions; want 1, 1", st.Sessions, st.Subscriptions)
		}
	}
	for _, v := range interopVersions {
		t.Run("paho/v"+v, func(t *testing.T) {
			interopNeedPaho(t)
			t.Parallel()
			srv := &Server{}
			host, port := interopBroker(t, srv)
			tp := "interop/session/paho"
			id := interopCID("persist", v)
			first := interopPahoClient(t, port, v, "--role", "sub", "--persistent", "--id", id, "--topic", tp, "--qos", "1", "--count", "0")
			first.mustSucceed(t)
			if e, ok := first.event(t, "connected"); !ok || e.SessionPresent != 0 {
				t.Fatalf("first connection: want session present 0\n%v", first)
			}
			offline(t, srv)
			queue(t, srv, host, port, v, tp)
			again := interopPahoClient(t, port, v, "--role", "sub", "--persistent", "--no-subscribe", "--id", id, "--count", "10")
			again.mustSucceed(t)
			switch e, ok := again.event(t, "connected"); {
			case !ok:
				t.Fatalf("reconnection: no CONNACK\n%v", again)
			case v == "3.1":
				// MQTT 3.1 has no Session Present flag: the CONNACK byte is
				// reserved ("Topic Name Compression Response, not used");
				// Mosquitto sends 0 there, Tern the flag. Paho ignores it.
				t.Logf("MQTT 3.1 CONNACK acknowledge byte on resume: %d", e.SessionPresent)
			case e.SessionPresent != 1:
				t.Fatalf("reconnection: want session present 1\n%v", again)
			}
			interopCheckLines(t, again, again.messages(t), want(tp))
		})
		t.Run("mosquitto/v"+v, func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			host, port := interopBroker(t, srv)
			tp := "interop/session/mosq"
			id := interopCID("persistmosq", v)
			persist := []string{"-c", "-i", id}
			if v == "5" {
				persist = append(persist, "-x", "300") // MQTT 5: a session outlives its connection only with an expiry
			}
			interopMosqSub(t, host, port, v, 0, 1, tp, append(persist, "-E")...).mustSucceed(t)
			offline(t, srv)
			queue(t, srv, host, port, v, tp)
			again := interopMosqSub(t, host, port, v, 10, 1, tp, persist...)
			again.mustSucceed(t)
			interopCheckLines(t, again, again.lines(), want(tp))
		})
	}
}

// interopPassword accepts one user name and password.
type interopPassword struct{ user, pass string }

func (a interopPassword) Authenticate(_ context.Context, req *AuthRequest) error {
	if req.Username == a.user && string(req.Password) == a.pass {
		return nil
	}
	return ErrBadCredentials
}

func TestInteropAuth(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		t.Run("mosquitto/v"+v, func(t *testing.T) {
			t.Parallel()
			srv := &Server{Authenticator: interopPassword{"alice", "s3cret"}}
			host, port := interopBroker(t, srv)
			tp := "interop/auth"
			got := make(chan *Message, 4)
			unsub, err := srv.Subscribe(tp, 1, func(m *Message) { got <- m })
			if err != nil {
				t.Fatal(err)
			}
			defer unsub()
			for _, c := range []struct {
				name string
				args []string
			}{
				{"wrong password", []string{"-u", "alice", "-P", "wrong"}},
				{"unknown user", []string{"-u", "mallory", "-P", "s3cret"}},
				{"no credentials", nil},
			} {
				p := interopMosquitto(t, "", "mosquitto_pub", host, port, v, append(c.args, "-q", "1", "-t", tp, "-m", "intruder")...)
				if err := p.wait(); err == nil {
					t.Fatalf("%s: mosquitto_pub exited 0, want a refusal\n%v", c.name, p)
				}
				t.Logf("%s: mosquitto_pub: %v: %s", c.name, p.err, strings.TrimSpace(p.stderr.String()))
			}
			interopMosquitto(t, "", "mosquitto_pub", host, port, v, "-u", "alice", "-P", "s3cret", "-q", "1", "-t", tp, "-m", "welcome").mustSucceed(t)
			select {
			case m := <-got:
				if string(m.Payload) != "welcome" {
					t.Fatalf("got %q, want welcome (a refused client's message got through)", m.Payload)
				}
			case <-time.After(interopWaitTimeout):
				t.Fatal("the authenticated message did not arrive")
			}
		})
		t.Run("paho/v"+v, func(t *testing.T) {
			interopNeedPaho(t)
			t.Parallel()
			srv := &Server{Authenticator: interopPassword{"alice", "s3cret"}}
			_, port := interopBroker(t, srv)
			// CONNACK return code 4 (3.1, 3.1.1) or reason code 0x86 (5):
			// bad user name or password.
			wantRC := 4
			if v == "5" {
				wantRC = 0x86
			}
			bad := interopPahoClient(t, port, v, "--role", "pub", "--id", interopCID("authbad", v), "--username", "alice", "--password", "wrong")
			if err := bad.wait(); err == nil {
				t.Fatalf("refused Paho client exited 0\n%v", bad)
			}
			if e, ok := bad.event(t, "refused"); !ok || e.RC != wantRC {
				t.Fatalf("want a refusal with code %d\n%v", wantRC, bad)
			}
			interopPahoClient(t, port, v, "--role", "pub", "--id", interopCID("authgood", v), "--username", "alice", "--password", "s3cret", "--qos", "1").mustSucceed(t)
		})
	}
}

// TestInteropWillMosquitto: mosquitto_sub's own will (--will-*) is
// published when the process is killed.
func TestInteropWillMosquitto(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	for _, v := range interopVersions {
		t.Run("v"+v, func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			host, port := interopBroker(t, srv)
			tp := "interop/will/mosq"
			sub := interopMosqSub(t, host, port, v, 1, 1, tp)
			interopWaitSubs(t, srv, 1, sub)
			holder := interopMosqSub(t, host, port, v, 0, 0, "interop/idle", "-i", interopCID("mosqwill", v),
				"--will-topic", tp, "--will-payload", "gone", "--will-qos", "1")
			interopWaitSubs(t, srv, 2, holder)
			if err := holder.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			holder.wait()
			sub.mustSucceed(t)
			interopCheckLines(t, sub, sub.lines(), []string{"1 0 " + tp + " gone"})
		})
	}
}

// TestInteropBurst sends more messages than the in-flight windows of the
// broker (20) and of the clients hold, live and queued for an offline
// persistent session, and checks that all arrive in order.
func TestInteropBurst(t *testing.T) {
	interopNeedMosquitto(t)
	t.Parallel()
	const n = 300
	for _, v := range interopVersions {
		for _, qos := range []int{1, 2} {
			q := fmt.Sprint(qos)
			t.Run(fmt.Sprintf("paho-to-mosquitto/v%s/qos%d", v, qos), func(t *testing.T) {
				interopNeedPaho(t)
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/burst"
				sub := interopMosqSub(t, host, port, v, n, qos, tp)
				interopWaitSubs(t, srv, 1, sub)
				interopPahoClient(t, port, v, "--role", "pub", "--id", interopCID("burst", v, q),
					"--topic", tp, "--qos", q, "--count", fmt.Sprint(n)).mustSucceed(t)
				sub.mustSucceed(t)
				interopCheckLines(t, sub, sub.lines(), interopWant(qos, 0, tp, "m", n))
			})
			t.Run(fmt.Sprintf("mosquitto-to-paho/v%s/qos%d", v, qos), func(t *testing.T) {
				interopNeedPaho(t)
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/burst"
				sub := interopPahoClient(t, port, v, "--role", "sub", "--id", interopCID("burst", v, q),
					"--topic", tp, "--qos", q, "--count", fmt.Sprint(n))
				interopWaitSubs(t, srv, 1, sub)
				interopMosquitto(t, interopPayloads("m", n), "mosquitto_pub", host, port, v, "-q", q, "-t", tp, "-l").mustSucceed(t)
				sub.mustSucceed(t)
				interopCheckLines(t, sub, sub.messages(t), interopWant(qos, 0, tp, "m", n))
			})
			t.Run(fmt.Sprintf("queued-mosquitto/v%s/qos%d", v, qos), func(t *testing.T) {
				t.Parallel()
				srv := &Server{}
				host, port := interopBroker(t, srv)
				tp := "interop/burst"
				persist := []string{"-c", "-i", interopCID("burstq", v, q)}
				if v == "5" {
					persist = append(persist, "-x", "300")
				}
				interopMosqSub(t, host, port, v, 0, qos, tp, append(persist, "-E")...).mustSucceed(t)
				interopWaitClients(t, srv, 0)
				interopMosquitto(t, interopPayloads("m", n), "mosquitto_pub", host, port, v, "-q", q, "-t", tp, "-l").mustSucceed(t)
				again := interopMosqSub(t, host, port, v, n, qos, tp, persist...)
				again.mustSucceed(t)
				interopCheckLines(t, again, again.lines(), interopWant(qos, 0, tp, "m", n))
			})
		}
	}
}
