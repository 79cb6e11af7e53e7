package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// proc is a running command whose output the test reads.
type proc struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	mu       sync.Mutex
	out, err bytes.Buffer
	done     chan struct{}
	code     int
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startProc starts bin with args; the test's cleanup kills it if it is
// still running.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startProcIn(t, nil, bin, args...)
}

// startProcIn is startProc with stdin (nil: none).
func startProcIn(t *testing.T, stdin io.Reader, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: bin, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdin = stdin
	p.cmd.Stdout = lockedWriter{&p.mu, &p.out}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.err}
	p.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "TZ=UTC")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to 30 seconds for the process to exit and returns its
// exit status, stdout and stderr.
func (p *proc) wait() (int, string, string) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%s %q did not exit in 30s\nstdout:\n%s\nstderr:\n%s", p.name, p.cmd.Args[1:], p.out.String(), p.err.String())
	}
	return p.code, p.out.String(), p.err.String()
}

// runProc runs bin to its end.
func runProc(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	return startProc(t, bin, args...).wait()
}

// waitSubscriptions waits until the broker holds n subscriptions.
func waitSubscriptions(t *testing.T, b *mqtttest.Broker, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for b.Server.Stats().Subscriptions < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions after 20s, want %d", b.Server.Stats().Subscriptions, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publisher connects a client to url for the test.
func publisher(t *testing.T, url string, v packet.Version) *client.Client {
	t.Helper()
	return mqtttest.Connect(t, client.Config{Servers: []string{url}, Version: v, Proxy: "direct"})
}

// comparisonMessages are published to both subscribers: text with every
// PUBLISH property, empty, binary, JSON, several lines, QoS 0 and 2.
func comparisonMessages() []*message.Message {
	props := packet.Properties{ContentType: "text/plain; charset=utf-8", ResponseTopic: "cmp/reply",
		CorrelationData: []byte("\x00\x01corr"), PayloadFormat: 1, MessageExpiry: 3600,
		User: []packet.UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "two words"}, {Key: "a", Value: "3"}}}
	props.Mark(packet.PropPayloadFormat)
	return []*message.Message{
		{Topic: "cmp/text", Payload: []byte("hello, world"), QoS: 1, Properties: props},
		{Topic: "cmp/empty", Payload: nil, QoS: 1},
		{Topic: "cmp/bin", Payload: []byte("\xff\xfe\x00abc\x7f"), QoS: 1, Properties: packet.Properties{ContentType: "application/octet-stream"}},
		{Topic: "cmp/json", Payload: []byte(`{"a":[1,2.5,{"b":null}],"c":"x\"y","d":true}`), QoS: 1,
			Properties: packet.Properties{ContentType: "application/json", User: []packet.UserProperty{{Key: "k", Value: "v"}}}},
		{Topic: "cmp/qos0", Payload: []byte("42"), QoS: 0},
		// Last: libmosquitto hands a QoS 2 message over at PUBREL, Tern's
		// client at PUBLISH, so what follows it could come first.
		{Topic: "cmp/lines/deep/topic", Payload: []byte("line one\nline two\ttab"), QoS: 2},
	}
}

// tst normalises the receive time in %j and %J, which two processes
// cannot share, and mid the packet identifier, which the broker picks
// for each subscriber's session depending on when it acknowledged the
// message before (internal/subfmt compares %m against mosquitto_sub with
// a server of its own).
var (
	tst = regexp.MustCompile(`"tst":\s*"[^"]*"`)
	mid = regexp.MustCompile(`"mid":(\s*)\d+`)
)

// TestSubMatchesMosquittoSub runs tern sub and mosquitto_sub side by side
// on one Tern broker with the same options, publishes the same messages
// (MQTT 3.1.1, and MQTT 5 with every PUBLISH property) and compares their
// output byte for byte.
func TestSubMatchesMosquittoSub(t *testing.T) {
	mosq := mqtttest.NeedBinary(t, "mosquitto_sub", "mosquitto-clients")
	tern := ternBinary(t)
	msgs := comparisonMessages()
	cases := []struct {
		name string
		args []string
		v5   bool // MQTT 5 only
	}{
		{"plain", nil, false},
		{"-v", []string{"-v"}, false},
		{"-N", []string{"-N"}, false},
		{"-v -N", []string{"-v", "-N"}, false},
		{"fields", []string{"-F", `%t|%l|%q|%r|%x|%X|%p|%10t|%-8l|%05q|%.3p|%6x|%-4p|%%\t\\`}, false},
		{"properties", []string{"-F", "%A|%C|%D|%E|%F|%P|%R|%S|%-12C|%5F|%03E|%.4R"}, false},
		{"%j", []string{"-F", "%j"}, false},
		{"%j --pretty", []string{"-F", "%j", "--pretty"}, false},
		{"%J", []string{"-F", "%J"}, false},
		{"%J --pretty", []string{"-F", "%J", "--pretty"}, false},
		{"-F ''", []string{"-F", ""}, false},
		{"subscription id", []string{"-D", "subscribe", "subscription-identifier", "7", "-F", "%S|%t|%j"}, true},
		{"-R", []string{"-R", "-v"}, false},
		{"retain-as-published", []string{"--retain-as-published", "-F", "%r %t"}, true},
	}
	for _, version := range []string{"31", "311", "5"} {
		for _, c := range cases {
			if c.v5 && version != "5" {
				continue
			}
			t.Run(version+"/"+c.name, func(t *testing.T) {
				b := mqtttest.StartBroker(t)
				args := append([]string{"-h", b.Host, "-p", b.Port, "-t", "cmp/#", "-q", "2", "-V", version,
					"-C", fmt.Sprint(len(msgs))}, c.args...)
				want := startProc(t, mosq, args...)
				got := startProc(t, tern, append([]string{"sub"}, args...)...)
				waitSubscriptions(t, b, 2)
				v := map[string]packet.Version{"31": packet.V31, "311": packet.V311, "5": packet.V5}[version]
				pub := publisher(t, b.URL, v)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for _, m := range msgs {
					if v != packet.V5 {
						m = &message.Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS}
					}
					if _, err := pub.Publish(ctx, m); err != nil {
						t.Fatal(err)
					}
				}
				wcode, wout, werr := want.wait()
				gcode, gout, gerr := got.wait()
				if wcode != gcode {
					t.Errorf("exit status: tern sub %d, mosquitto_sub %d", gcode, wcode)
				}
				norm := func(s string) string {
					return mid.ReplaceAllString(tst.ReplaceAllString(s, `"tst":"T"`), `"mid":${1}M`)
				}
				wout, gout = norm(wout), norm(gout)
				if gout != wout {
					t.Errorf("tern sub %q printed\n%q\nmosquitto_sub printed\n%q", args, gout, wout)
				}
				// %J of a payload that is not JSON: the same complaints.
				if we, ge := strings.Count(werr, "Error:"), strings.Count(gerr, "Error:"); we != ge {
					t.Errorf("stderr: %d errors from tern sub, %d from mosquitto_sub\n%s\n%s", ge, we, gerr, werr)
				}
			})
		}
	}
}

// TestExitCodesMatchMosquitto compares the exit statuses of tern pub,
// sub and rr with mosquitto_pub, mosquitto_sub and mosquitto_rr: a
// refused connection (MQTT 3.1.1 return codes, MQTT 5 reason codes), a
// -W timeout, bad options, nothing listening.
func TestExitCodesMatchMosquitto(t *testing.T) {
	mpub := mqtttest.NeedBinary(t, "mosquitto_pub", "mosquitto-clients")
	msub := mqtttest.NeedBinary(t, "mosquitto_sub", "mosquitto-clients")
	mrr := mqtttest.NeedBinary(t, "mosquitto_rr", "mosquitto-clients")
	tern := ternBinary(t)
	compare := func(t *testing.T, mosq, tool string, args ...string) int {
		t.Helper()
		wcode, _, werr := runProc(t, mosq, args...)
		gcode, _, gerr := runProc(t, tern, append([]string{tool}, args...)...)
		if wcode != gcode {
			t.Errorf("%s %q: exit %d, %s exits %d\ntern: %s\nmosquitto: %s", tool, args, gcode, mosq, wcode, gerr, werr)
		}
		return gcode
	}
	for _, c := range []struct {
		v      string
		code   packet.ReasonCode
		v3Code packet.ReasonCode
	}{
		{"311", 0x87, 5}, {"311", 0x86, 4}, {"311", 0x88, 3}, {"311", 0x85, 2}, {"311", 0x84, 1},
		{"5", 0x87, 0}, {"5", 0x86, 0}, {"5", 0x88, 0}, {"5", 0x8A, 0}, {"5", 0x80, 0}, {"5", 0x9F, 0},
	} {
		t.Run(fmt.Sprintf("refused/%s/%#x", c.v, uint8(c.code)), func(t *testing.T) {
			r := mqtttest.StartRefuser(t, mqtttest.RefuserConfig{Code: c.code, V3Code: c.v3Code})
			host, port, _ := strings.Cut(r.Addr, ":")
			want := int(c.code)
			if c.v != "5" {
				want = int(c.v3Code)
			}
			if got := compare(t, mpub, "pub", "-h", host, "-p", port, "-V", c.v, "-t", "a", "-m", "b"); got != want {
				t.Errorf("pub exit %d, want the reason code %d", got, want)
			}
			compare(t, msub, "sub", "-h", host, "-p", port, "-V", c.v, "-t", "a")
		})
	}
	b := mqtttest.StartBroker(t)
	t.Run("timeout", func(t *testing.T) {
		if got := compare(t, msub, "sub", "-h", b.Host, "-p", b.Port, "-t", "none", "-W", "1"); got != exitTimeout {
			t.Errorf("sub -W: exit %d, want 27", got)
		}
		compare(t, msub, "sub", "-h", b.Host, "-p", b.Port, "-t", "none", "-W", "1", "-V", "5")
		compare(t, mrr, "rr", "-h", b.Host, "-p", b.Port, "-t", "req", "-e", "resp", "-m", "x", "-W", "1")
	})
	t.Run("options", func(t *testing.T) {
		for _, args := range [][]string{
			{"-t", "a", "-m", "b", "-f", "x"}, {"-m", "b"}, {"-t", "a/#", "-m", "b"}, {"-t", "a", "-m", "b", "-q", "3"},
			{"-t", "a", "-m", "b", "-k", "4"}, {"-t", "a", "-m", "b", "--bogus"}, {"-t", "a", "-m", "b", "-c"},
			{"-t", "a", "-m", "b", "-D", "publish", "foo", "x"}, {"-t", "a", "-m", "b", "-D", "connect", "content-type", "x"},
			{"-t", "a", "-m", "b", "--will-payload", "x"}, {"-L", "http://x/a", "-m", "b"}, {"-t", "a", "-m", "b", "-P", "pw"},
		} {
			compare(t, mpub, "pub", args...)
		}
		for _, args := range [][]string{{"-p", "1"}, {"-t", "a/#/b"}, {"-t", "a", "-C", "0"}, {"-t", "a", "-F", "%z"}, {"-t", "a", "-m", "x"}} {
			compare(t, msub, "sub", args...)
		}
		compare(t, mrr, "rr", "-t", "a", "-m", "b")
	})
	t.Run("publish refused", func(t *testing.T) {
		// mosquitto_pub warns and exits 0 when a PUBACK or PUBREC refuses.
		mqtttest.NeedBinary(t, "mosquitto", "mosquitto")
		acl := writeFile(t, "acl", "topic read #\n")
		m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Config: []string{"acl_file " + acl}})
		for _, q := range []string{"1", "2"} {
			compare(t, mpub, "pub", "-h", m.Host, "-p", m.Port, "-t", "a", "-m", "b", "-q", q, "-V", "5")
			compare(t, mpub, "pub", "-h", m.Host, "-p", m.Port, "-t", "a", "-m", "b", "-q", q)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		r := mqtttest.StartRefuser(t, mqtttest.RefuserConfig{Code: 0x87})
		host, port, _ := strings.Cut(r.Addr, ":")
		code, _, e := runProc(t, tern, "pub", "-h", host, "-p", port, "-V", "5", "-t", "a", "-m", "b", "--quiet")
		if code != 0x87 || e != "" {
			t.Errorf("--quiet: exit %d, stderr %q", code, e)
		}
	})
	t.Run("no broker", func(t *testing.T) {
		port := fmt.Sprint(mqtttest.FreePort(t))
		compare(t, mpub, "pub", "-h", "127.0.0.1", "-p", port, "-t", "a", "-m", "b")
	})
}

// TestPubSubBrokers runs tern pub and tern sub against Tern and against
// Debian's mosquitto broker, in MQTT 3.1, 3.1.1 and 5, at each QoS, with
// -f, -s, -n, --repeat, -r and will options.
func TestPubSubBrokers(t *testing.T) {
	tern := ternBinary(t)
	brokers := map[string]func(t *testing.T) (host, port string){
		"tern": func(t *testing.T) (string, string) {
			b := mqtttest.StartBroker(t)
			return b.Host, b.Port
		},
		"mosquitto": func(t *testing.T) (string, string) {
			mqtttest.NeedBinary(t, "mosquitto", "mosquitto")
			m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
			return m.Host, m.Port
		},
	}
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			host, port := start(t)
			file := writeFile(t, "payload", "from a file\n")
			for _, v := range []string{"31", "311", "5"} {
				for _, q := range []string{"0", "1", "2"} {
					tp := "ps/" + v + "/" + q
					// A retained message first: sub then gets it at once.
					if code, _, e := runProc(t, tern, "pub", "-h", host, "-p", port, "-V", v, "-q", q, "-t", tp, "-r", "-m", "kept"); code != 0 {
						t.Fatalf("pub -r: exit %d: %s", code, e)
					}
					sub := startProc(t, tern, "sub", "-h", host, "-p", port, "-V", v, "-q", q, "-t", tp, "-C", "5", "-F", "%r %q %p", "-W", "20")
					// Wait for the retained message: the subscription is made.
					deadline := time.Now().Add(20 * time.Second)
					for {
						sub.mu.Lock()
						ready := strings.Contains(sub.out.String(), "kept")
						sub.mu.Unlock()
						if ready || time.Now().After(deadline) {
							break
						}
						time.Sleep(10 * time.Millisecond)
					}
					for _, args := range [][]string{{"-m", "one"}, {"-f", file}, {"-n", "--repeat", "2"}} {
						base := []string{"pub", "-h", host, "-p", port, "-V", v, "-q", q, "-t", tp, "--will-topic", "w", "--will-payload", "x"}
						if code, _, e := runProc(t, tern, append(base, args...)...); code != 0 {
							t.Fatalf("pub %q: exit %d: %s", args, code, e)
						}
					}
					code, out, e := sub.wait()
					wantQ := q
					want := fmt.Sprintf("1 %s kept\n0 %s one\n0 %s from a file\n\n0 %s \n0 %s \n", wantQ, wantQ, wantQ, wantQ, wantQ)
					if code != 0 || out != want {
						t.Errorf("-V %s -q %s: exit %d, got\n%q\nwant\n%q\n%s", v, q, code, out, want, e)
					}
					runProc(t, tern, "pub", "-h", host, "-p", port, "-t", tp, "-r", "-n") // clear it
				}
			}
			// -s: all of stdin as one message (retained, so that the
			// subscriber finds it whenever it subscribes).
			cmd := exec.Command(tern, "pub", "-h", host, "-p", port, "-t", "ps/stdin", "-s", "-r", "-q", "1")
			cmd.Stdin = strings.NewReader("all\nof it")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pub -s: %v %s", err, out)
			}
			if code, out, e := runProc(t, tern, "sub", "-h", host, "-p", port, "-t", "ps/stdin", "-C", "1", "-W", "20"); code != 0 || out != "all\nof it\n" {
				t.Errorf("pub -s: exit %d, %q %s", code, out, e)
			}
			runProc(t, tern, "pub", "-h", host, "-p", port, "-t", "ps/stdin", "-r", "-n")
		})
	}
}

// TestRRAndTest runs tern rr against a responder and tern test against
// Tern and mosquitto.
func TestRRAndTest(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	// The responder: answers each request on its response topic.
	resp := publisher(t, b.URL, packet.V5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := resp.Subscribe(ctx, "svc/echo", 1, func(m *client.Message) {
		resp.Publish(ctx, &message.Message{Topic: m.Properties.ResponseTopic, Payload: append([]byte("echo: "), m.Payload...), QoS: 1,
			Properties: packet.Properties{ContentType: m.Properties.ContentType}})
	}); err != nil {
		t.Fatal(err)
	}
	code, out, e := runProc(t, tern, "rr", "-h", b.Host, "-p", b.Port, "-t", "svc/echo", "-e", "reply/me", "-m", "hi",
		"-D", "publish", "content-type", "text/x", "-F", "%t %C %p", "-W", "10", "-q", "1")
	if code != 0 || out != "reply/me text/x echo: hi\n" {
		t.Errorf("rr: exit %d, %q, %s", code, out, e)
	}

	for _, q := range []string{"0", "1", "2"} {
		code, out, e := runProc(t, tern, "test", "-h", b.Host, "-p", b.Port, "-q", q, "--rate", "200", "-C", "20", "-W", "20")
		if code != 0 || !strings.Contains(out, "20 sent, 20 received, 0 lost (0.0%), 0 duplicated, 0 out of order") ||
			!regexp.MustCompile(`(?m)^seq=20 qos=`+q+` time=\d+\.\d{3} ms$`).MatchString(out) ||
			!strings.Contains(out, "round trip min/avg/p50/p99/max = ") {
			t.Errorf("test -q %s: exit %d\n%s\n%s", q, code, out, e)
		}
	}
	// Back to back.
	if code, out, e := runProc(t, tern, "test", "-h", b.Host, "-p", b.Port, "--rate", "0", "-C", "50", "-q", "1"); code != 0 || !strings.Contains(out, "50 sent, 50 received, 0 lost") {
		t.Errorf("test --rate 0: exit %d\n%s\n%s", code, out, e)
	}
	// A broker that drops the messages: loss, exit 2. The ACL of a
	// mosquitto that forbids reading the test topic does that.
	if _, err := exec.LookPath("mosquitto"); err == nil {
		acl := writeFile(t, "acl", "topic write tern/#\n")
		m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{Config: []string{"acl_file " + acl}})
		code, out, _ := runProc(t, tern, "test", "-h", m.Host, "-p", m.Port, "--rate", "50", "-C", "5", "--drain", "500ms")
		if code != exitLoss || !strings.Contains(out, "5 sent, 0 received, 5 lost (100.0%)") {
			t.Errorf("test with every message dropped: exit %d\n%s", code, out)
		}
		// mosquitto as the broker, everything back.
		m2 := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
		if code, out, e := runProc(t, tern, "test", "-h", m2.Host, "-p", m2.Port, "-V", "5", "-q", "2", "--rate", "100", "-C", "10"); code != 0 {
			t.Errorf("test against mosquitto: exit %d\n%s\n%s", code, out, e)
		}
	}
	// -W shorter than -C needs: exit 27.
	if code, out, _ := runProc(t, tern, "test", "-h", b.Host, "-p", b.Port, "--rate", "2", "-C", "100", "-W", "1"); code != exitTimeout {
		t.Errorf("test -W 1 -C 100 at 2/s: exit %d, want 27\n%s", code, out)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestPubLinesTerminal types lines into tern pub -l in a real terminal
// (tmux) and checks that each is published as soon as Enter is pressed,
// before the next is typed; Ctrl-D ends it with status 0.
func TestPubLinesTerminal(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	sub := startProc(t, tern, "sub", "-h", b.Host, "-p", b.Port, "-t", "typed", "-q", "1", "-v", "-C", "3", "-W", "60")
	waitSubscriptions(t, b, 1)
	tm := newTmux(t, fmt.Sprintf("%s pub -h %s -p %s -t typed -q 1 -l; echo PUB-EXIT-$?; sleep 600\n",
		shellQuote(tern), b.Host, b.Port))
	printed := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			sub.mu.Lock()
			out := sub.out.String()
			sub.mu.Unlock()
			if out == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("tern sub printed %q, want %q\nscreen:\n%s", out, want, tm.screen())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tm.typeKeys("first line", "Enter")
	printed("typed first line\n")
	tm.typeKeys("second", "Enter")
	printed("typed first line\ntyped second\n")
	tm.typeKeys("", "Enter") // an empty line: an empty message
	printed("typed first line\ntyped second\ntyped (null)\n")
	tm.typeKeys("", "C-d")
	tm.waitFor("PUB-EXIT-0")
	if code, _, e := sub.wait(); code != 0 {
		t.Errorf("sub: exit %d %s", code, e)
	}
}

// TestTestTerminal runs tern test in a real terminal (tmux) until Ctrl-C:
// a line per round trip as it comes back, then the summary, status 0.
func TestTestTerminal(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	// The shell traps SIGINT (its children still get the default) so
	// that Ctrl-C ends tern test and not the script.
	tm := newTmux(t, fmt.Sprintf("trap : INT\n%s test -h %s -p %s -q 1 --rate 20; echo TEST-EXIT-$?; exec sleep 600\n", shellQuote(tern), b.Host, b.Port))
	tm.waitFor("seq=5 qos=1 time=")
	tm.typeKeys("", "C-c")
	scr := tm.waitFor("TEST-EXIT-")
	if !strings.Contains(scr, "TEST-EXIT-0") || !regexp.MustCompile(`\d+ sent, \d+ received, 0 lost \(0\.0%\), 0 duplicated, 0 out of order`).MatchString(scr) ||
		!strings.Contains(scr, "round trip min/avg/p50/p99/max = ") {
		t.Errorf("after Ctrl-C:\n%s", scr)
	}
	if !regexp.MustCompile(`(?m)^TEST mqtt://127\.0\.0\.1:\d+ topic tern/test/[0-9a-f]{8} qos 1`).MatchString(scr) {
		t.Errorf("no TEST header line:\n%s", scr)
	}
}

// TestMQTTCompletion: bash, zsh and fish completion scripts are
// generated, and the completion of pub, sub and rr offers the flags,
// -D's commands and properties, and -V's versions.
func TestMQTTCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, e, code := runTern(t, "", "completion", sh)
		if code != 0 || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: exit %d, %s\n%.200s", sh, code, e, out)
		}
	}
	complete := func(args ...string) []string {
		t.Helper()
		out, e, code := runTern(t, "", append([]string{"__complete"}, args...)...)
		if code != 0 {
			t.Fatalf("__complete %q: exit %d %s", args, code, e)
		}
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, strings.SplitN(l, "\t", 2)[0])
			}
		}
		return got
	}
	has := func(got []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("completion %q lacks %q", got, w)
			}
		}
	}
	has(complete(""), "pub", "sub", "rr", "test")
	has(complete("pub", "--"), "--topic", "--message", "--stdin-line", "--property", "--will-topic", "--save", "--load", "--protocol-version", "--url")
	has(complete("sub", "-"), "-t", "-v", "-F", "-C", "-W", "-T", "-U", "-R", "-E", "-N")
	has(complete("sub", "--"), "--pretty", "--retained-only", "--remove-retained", "--retain-as-published", "--no-local", "--retain-handling", "--sub-id")
	has(complete("rr", "-"), "-e", "-t", "-m", "-W")
	has(complete("pub", "-t", "a", "-D", ""), "connect", "publish", "will", "disconnect")
	has(complete("sub", "-D", ""), "subscribe", "unsubscribe")
	has(complete("pub", "-D", "publish", ""), "content-type", "user-property", "message-expiry-interval", "topic-alias")
	has(complete("pub", "-D", "connect", ""), "receive-maximum", "session-expiry-interval", "authentication-method")
	has(complete("sub", "-V", ""), "5", "311", "31")
	if got := complete("pub", "-D", "publish", ""); slices.Contains(got, "subscription-identifier") {
		t.Errorf("publish offers subscription-identifier: %q", got)
	}
}

// TestMQTTHelp: the help of pub, sub, rr and test lists every flag with
// its usage and has examples; Mosquitto's -h is the host, not help.
func TestMQTTHelp(t *testing.T) {
	for _, tool := range []mqttTool{toolPub, toolSub, toolRR, toolTest} {
		out, e, code := runTern(t, "", string(tool), "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d %s", tool, code, e)
		}
		newMQTTOptions(tool).flagSet().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(out, "--"+f.Name) || (f.Shorthand != "" && !strings.Contains(out, "-"+f.Shorthand+", --"+f.Name)) {
				t.Errorf("tern %s --help lacks %s", tool, f.Name)
			}
		})
		if !strings.Contains(out, "Examples:\n  tern "+string(tool)) {
			t.Errorf("tern %s --help has no examples:\n%s", tool, out)
		}
		if !strings.Contains(out, "-h, --host") {
			t.Errorf("tern %s: -h is not the host", tool)
		}
	}
}

// TestSubOptions runs sub's behaviour flags against a Tern broker:
// --retained-only with --remove-retained, -T, -E, -U with -c, -R, the
// MQTT 5 options, properties set with -D shown by -F, a will published
// when tern sub is killed, and --save / --load.
func TestSubOptions(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	conn := []string{"-h", b.Host, "-p", b.Port}
	pub := func(args ...string) {
		t.Helper()
		if code, _, e := runProc(t, tern, append(append([]string{"pub"}, conn...), args...)...); code != 0 {
			t.Fatalf("pub %q: exit %d %s", args, code, e)
		}
	}
	sub := func(args ...string) (int, string) {
		t.Helper()
		code, out, _ := runProc(t, tern, append(append([]string{"sub"}, conn...), args...)...)
		return code, out
	}
	for _, tp := range []string{"ret/a", "ret/b", "ret/c/x"} {
		pub("-t", tp, "-r", "-q", "1", "-m", "v-"+tp)
	}
	// -T hides ret/c/#; --retained-only exits at the first live message,
	// here the -W has to end it: all retained ones are printed.
	if code, out := sub("-t", "ret/#", "-T", "ret/c/#", "--retained-only", "-v", "-W", "2"); code != exitTimeout ||
		!strings.Contains(out, "ret/a v-ret/a\n") || !strings.Contains(out, "ret/b v-ret/b\n") || strings.Contains(out, "ret/c") {
		t.Errorf("--retained-only -T: exit %d\n%s", code, out)
	}
	// -R: retained messages are not printed.
	if code, out := sub("-t", "ret/#", "-R", "-W", "1"); code != exitTimeout || out != "" {
		t.Errorf("-R: exit %d %q", code, out)
	}
	// --remove-retained clears what it receives (but not what -T hides).
	sub("-t", "ret/#", "-T", "ret/c/#", "--remove-retained", "-W", "2")
	if code, out := sub("-t", "ret/#", "-v", "-W", "1"); code != exitTimeout || out != "ret/c/x v-ret/c/x\n" {
		t.Errorf("after --remove-retained: exit %d %q", code, out)
	}
	// -E: exit once subscribed, with a session kept (-c -i) that -U ends.
	if code, out := sub("-t", "sess/#", "-c", "-i", "keeper", "-q", "1", "-E"); code != 0 || out != "" {
		t.Fatalf("-E: exit %d %q", code, out)
	}
	pub("-t", "sess/x", "-q", "1", "-m", "while away")
	if code, out := sub("-t", "other", "-c", "-i", "keeper", "-q", "1", "-C", "1", "-v"); code != 0 || out != "sess/x while away\n" {
		t.Errorf("-c session: exit %d %q", code, out)
	}
	if code, _ := sub("-t", "other", "-c", "-i", "keeper", "-U", "sess/#", "-E"); code != 0 {
		t.Errorf("-U: exit %d", code)
	}
	pub("-t", "sess/x", "-q", "1", "-m", "after -U")
	if code, out := sub("-t", "other", "-c", "-i", "keeper", "-W", "1", "-v"); code != exitTimeout || out != "" {
		t.Errorf("-U did not unsubscribe: exit %d %q", code, out)
	}

	// The session "keeper" still holds its subscription to "other": wait
	// for the subscriptions counted from here.
	base := b.Server.Stats().Subscriptions

	// -D publish properties, shown by -F's MQTT 5 directives.
	s := startProc(t, tern, append(append([]string{"sub"}, conn...), "-V", "5", "-t", "props", "-C", "1",
		"-F", "%C|%R|%D|%E|%F|%P|%S", "--sub-id", "9", "--no-local", "--retain-handling", "2")...)
	waitSubscriptions(t, b, base+1)
	pub("-V", "5", "-t", "props", "-m", "x", "-D", "publish", "content-type", "text/x", "-D", "publish", "response-topic", "r/t",
		"-D", "publish", "correlation-data", "cd", "-D", "publish", "message-expiry-interval", "60",
		"-D", "publish", "payload-format-indicator", "1", "-D", "publish", "user-property", "k", "v", "-D", "publish", "user-property", "k2", "v2")
	if code, out, e := s.wait(); code != 0 || out != "text/x|r/t|cd|60|1|k:v k2:v2|9\n" {
		t.Errorf("-D publish: exit %d %q %s", code, out, e)
	}

	// A will, published when tern sub is killed.
	w := startProc(t, tern, append(append([]string{"sub"}, conn...), "-t", "will/watch", "-C", "1", "-v")...)
	waitSubscriptions(t, b, base+1)
	victim := startProc(t, tern, append(append([]string{"sub"}, conn...), "-t", "nothing", "--will-topic", "will/watch",
		"--will-payload", "gone", "--will-qos", "1", "-k", "5")...)
	waitSubscriptions(t, b, base+2)
	victim.cmd.Process.Kill()
	if code, out, e := w.wait(); code != 0 || out != "will/watch gone\n" {
		t.Errorf("will: exit %d %q %s", code, out, e)
	}

	// --save, then --load in another run (the same XDG_CONFIG_HOME).
	cfgHome := t.TempDir()
	save := exec.Command(tern, append([]string{"pub", "--save", "here"}, append(conn, "-t", "saved", "-r", "-m", "kept")...)...)
	save.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome)
	if out, err := save.CombinedOutput(); err != nil || !strings.Contains(string(out), "connection options saved as here") {
		t.Fatalf("--save: %v %s", err, out)
	}
	load := exec.Command(tern, "sub", "--load", "here", "-t", "saved", "-C", "1", "-W", "10")
	load.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cfgHome)
	if out, err := load.Output(); err != nil || string(out) != "kept\n" {
		t.Errorf("--load: %v %q", err, out)
	}
}

// TestConnectionLost: tern test (like pub and rr) ends with status 1
// when the broker goes away, rather than wait for it to come back.
func TestConnectionLost(t *testing.T) {
	tern := ternBinary(t)
	mqtttest.NeedBinary(t, "mosquitto", "mosquitto")
	m := mqtttest.StartMosquitto(t, mqtttest.MosquittoOptions{})
	p := startProc(t, tern, "test", "-h", m.Host, "-p", m.Port, "-q", "1", "--rate", "20")
	deadline := time.Now().Add(20 * time.Second)
	for {
		p.mu.Lock()
		started := strings.Contains(p.out.String(), "seq=3 ")
		p.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tern test did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Kill()
	code, out, e := p.wait()
	if code != exitError || !strings.Contains(e, "connection lost") || !strings.Contains(out, " sent, ") {
		t.Errorf("broker killed: exit %d\n%s\n%s", code, out, e)
	}
}

// TestDebugLines: -d prints Mosquitto-style lines for the packets.
func TestDebugLines(t *testing.T) {
	tern := ternBinary(t)
	b := mqtttest.StartBroker(t)
	code, _, e := runProc(t, tern, "pub", "-h", b.Host, "-p", b.Port, "-d", "-V", "5", "-t", "dbg", "-m", "x", "-q", "1")
	for _, want := range []string{"sending CONNECT\n", "received CONNACK (0)\n", "sending PUBLISH (d0, q1, r0, m1, 'dbg', ... (1 bytes))\n",
		"received PUBACK (Mid: 1, RC:16)\n", "sending DISCONNECT\n"} {
		if code != 0 || !strings.Contains(e, want) {
			t.Errorf("pub -d: exit %d, stderr lacks %q:\n%s", code, want, e)
		}
	}
	code, _, e = runProc(t, tern, "sub", "-h", b.Host, "-p", b.Port, "-d", "-t", "dbg", "-E")
	for _, want := range []string{"Client (null) sending CONNECT\n", "sending SUBSCRIBE (Topic: dbg, QoS: 0, Options: 0x00)\n", "received SUBACK: 0\n"} {
		if code != 0 || !strings.Contains(e, want) {
			t.Errorf("sub -d: exit %d, stderr lacks %q:\n%s", code, want, e)
		}
	}
}
