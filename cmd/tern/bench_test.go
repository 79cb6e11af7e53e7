package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/loadgen"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/transport"
)

// benchBroker starts tern broker on a loopback port, with room for a
// fast publisher's QoS 1 messages, and returns its tcp:// URL.
func benchBroker(t *testing.T) string {
	t.Helper()
	b := startBroker(t, "", "--listen", "tcp://127.0.0.1:0", "--max-queued", "1000000")
	return "tcp://" + b.addr()
}

// TestBenchPlainProgress: with stderr not a terminal, progress comes as
// plain lines (no carriage return, no escape sequence), one per
// --interval; --quiet silences stderr; the connect scenario prints its
// own table.
func TestBenchPlainProgress(t *testing.T) {
	url := benchBroker(t)
	stdout, stderr, code := runTern(t, "", "bench", "latency", "--url", url, "--qos", "1", "--rate", "500",
		"--duration", "2500ms", "--interval", "1s", "--publishers", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.ContainsAny(stderr, "\r\x1b") {
		t.Errorf("escape sequences on a stderr that is not a terminal: %q", stderr)
	}
	progress := regexp.MustCompile(`(?m)^tern bench: latency +\d+s  sent \d+/s \(\d+\)  received \d+/s \(\d+\)  in flight \d+  connections 3$`)
	if n := len(progress.FindAllString(stderr, -1)); n < 2 {
		t.Errorf("%d progress lines, want one a second:\n%s", n, stderr)
	}
	if !strings.Contains(stdout, "delivered") || !strings.Contains(stdout, "latency") {
		t.Errorf("table:\n%s", stdout)
	}

	stdout, stderr, code = runTern(t, "", "bench", "connect", "--url", url, "--connections", "20", "--quiet")
	if code != 0 || stderr != "" {
		t.Fatalf("--quiet: exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "connects/s") || strings.Contains(stdout, "delivered") || strings.Contains(stdout, "loss") {
		t.Errorf("connect table:\n%s", stdout)
	}
}

// TestBenchPubInterrupt: pub runs until Ctrl-C (SIGINT), then prints its
// figures and exits 0.
func TestBenchPubInterrupt(t *testing.T) {
	url := benchBroker(t)
	cmd := exec.Command(ternBinary(t), "bench", "pub", "--url", url, "--topic", "intr/%i", "--clients", "2",
		"--rate", "200", "--qos", "1", "--json")
	var out bytes.Buffer
	cmd.Stdout = &out
	errs := &brokerProc{t: t, more: make(chan struct{}, 1), done: make(chan error, 1)}
	cmd.Stderr = errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { errs.done <- cmd.Wait() }()
	errs.waitLog(`pub +\d+s  sent [1-9]\d*/s`) // publishing, for a second at least
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs.done:
		if err != nil {
			t.Fatalf("pub after SIGINT: %v\n%s", err, errs)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-errs.done
		t.Fatalf("pub did not stop on SIGINT\n%s", errs)
	}
	var res loadgen.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.Scenario != "pub" || res.Sent == 0 || res.Acked != res.Sent || res.Publishers != 2 {
		t.Errorf("pub result: %+v", res)
	}
	if !strings.Contains(errs.String(), "stopping") {
		t.Errorf("no word of stopping on stderr:\n%s", errs)
	}
}

// TestBenchTLSFlags runs tern bench over mqtts:// and wss:// to a broker
// whose TLS listeners require a client certificate, with --cafile, --cert
// and --key, and checks the errors of flags that do not fit.
func TestBenchTLSFlags(t *testing.T) {
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Client("bench"); err != nil {
		t.Fatal(err)
	}
	// testpki writes client-<cn>.pem and client-<cn>.key beside the CA.
	cert, key := filepath.Join(dir, "client-bench.pem"), filepath.Join(dir, "client-bench.key")
	for _, f := range []string{cert, key} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("client certificate files: %v", err)
		}
	}
	requireCert := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequire}
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{Listeners: []broker.Listener{
		{Type: "tls", Addr: "127.0.0.1:0", TLS: requireCert},
		{Type: "wss", Addr: "127.0.0.1:0", TLS: requireCert},
	}}})
	addrs := b.Addrs
	mqtts, wss := "mqtts://localhost:"+port(addrs[0].String()), "wss://localhost:"+port(addrs[1].String())
	for _, url := range []string{mqtts, wss} {
		stdout, stderr, code := runTern(t, "", "bench", "connect", "--url", url, "--cafile", pki.CAFile,
			"--cert", cert, "--key", key, "--connections", "5", "--protocol", "5", "--quiet")
		if code != 0 || !strings.Contains(stdout, "connects/s") {
			t.Errorf("%s: exit %d\n%s%s", url, code, stdout, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", mqtts, "--cafile", pki.CAFile}, "bench connect"},        // no client certificate: refused
		{[]string{"--url", mqtts}, "certificate"},                                  // the CA unknown
		{[]string{"--url", mqtts, "--cert", cert}, "--cert needs --key"},           // half a key pair
		{[]string{"--url", mqtts, "--cafile", key}, "--cafile"},                    // not a certificate
		{[]string{"--url", "tcp://127.0.0.1:1", "--insecure"}, "does not use TLS"}, // TLS flags on a plain URL
		{[]string{"--url", "http://x"}, `scheme "http"`},
	} {
		_, stderr, code := runTern(t, "", append([]string{"bench", "connect", "--connections", "1", "--quiet", "--connect-timeout", "10s"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.args, code, stderr, tc.want)
		}
	}
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// TestBenchTerminal runs tern bench in a real terminal, a tmux pane, and
// reads the screen while it runs: one progress line, updated in place
// (two captures show it with different values on the same row, and
// nothing scrolls), then the final table in its place.
func TestBenchTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed: apt-get install tmux")
	}
	url := benchBroker(t)
	bin := ternBinary(t)
	sock := "ternbench" + strconv.Itoa(os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	shell := bin + " bench latency --url " + url + " --qos 1 --rate 1000 --duration 5s --publishers 2; echo BENCH-EXIT-$?; sleep 600"
	run("new-session", "-d", "-x", "180", "-y", "40", "-s", "bench", shell)
	t.Cleanup(func() { exec.Command(tmux, "-L", sock, "kill-server").Run() })

	progress := regexp.MustCompile(`^latency +(\d+)s  sent \d+/s \(\d+\)  received \d+/s \(\d+\)  in flight \d+  connections 3\s*$`)
	type screen struct {
		lines   []string
		row     int // of the progress line, -1 if none
		count   int // progress lines on screen
		elapsed string
	}
	capture := func() screen {
		s := screen{lines: strings.Split(run("capture-pane", "-p", "-t", "bench"), "\n"), row: -1}
		for i, l := range s.lines {
			if m := progress.FindStringSubmatch(l); m != nil {
				s.row, s.elapsed = i, m[1]
				s.count++
			}
		}
		return s
	}
	waitFor := func(what string, ok func(screen) bool) screen {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			s := capture()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s on the screen in 60s:\n%s", what, strings.Join(s.lines, "\n"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first := waitFor("progress line", func(s screen) bool { return s.count > 0 })
	second := waitFor("progress line with a later time", func(s screen) bool { return s.count > 0 && s.elapsed != first.elapsed })
	for _, s := range []screen{first, second} {
		if s.count != 1 {
			t.Errorf("%d progress lines on the screen, want 1:\n%s", s.count, strings.Join(s.lines, "\n"))
		}
	}
	if first.row != second.row || first.lines[second.row] == second.lines[second.row] {
		t.Errorf("the progress line moved from row %d to %d or did not change:\n%q\n%q", first.row, second.row, first.lines[first.row], second.lines[second.row])
	}
	for i := range first.row { // the log lines above stayed where they were
		if first.lines[i] != second.lines[i] {
			t.Errorf("row %d changed from %q to %q: the screen scrolled", i, first.lines[i], second.lines[i])
		}
	}
	final := waitFor("exit", func(s screen) bool { return strings.Contains(strings.Join(s.lines, "\n"), "BENCH-EXIT-") })
	text := strings.Join(final.lines, "\n")
	if !strings.Contains(text, "BENCH-EXIT-0") {
		t.Fatalf("tern bench failed:\n%s", text)
	}
	if final.count != 0 {
		t.Errorf("the progress line was not cleared at the end:\n%s", text)
	}
	header := regexp.MustCompile(`(?m)^ *scenario +qos +pubs +subs +sent +delivered +msgs/s`)
	row := regexp.MustCompile(`(?m)^ *latency +1 +2 +1 +\d+ +\d+ `)
	if !header.MatchString(text) || !row.MatchString(text) {
		t.Errorf("no final table on the screen:\n%s", text)
	}
}

// chromium returns the path of Debian's chromium, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not installed: apt-get install chromium")
	return ""
}

// headless runs chromium headless on file with extra arguments and returns
// its stdout and the console messages and uncaught exceptions it logged.
func headless(t *testing.T, bin, file string, args ...string) (stdout string, console []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), "file://"+file)...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, e.String())
	}
	for _, l := range strings.Split(e.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			console = append(console, l)
		}
	}
	return o.String(), console
}

// TestBenchHTMLReport runs tern bench with --html and --csv, opens the
// report in headless Chromium, and checks that the page loads without a
// console message or exception, that its SVG plots hold the run's data
// points, and that a screenshot shows them drawn in the groups' colours.
func TestBenchHTMLReport(t *testing.T) {
	bin := chromium(t)
	// The check of console messages must be able to fail: a page with a
	// script error is caught.
	bad := filepath.Join(t.TempDir(), "bad.html")
	os.WriteFile(bad, []byte(`<!DOCTYPE html><p>x</p><script>console.error("boom"); null.x</script>`), 0o600)
	if _, console := headless(t, bin, bad, "--dump-dom"); len(console) < 2 || !strings.Contains(strings.Join(console, "\n"), "boom") {
		t.Fatalf("a page with console.error and an exception: console %q, want both caught", console)
	}

	url := benchBroker(t)
	dir := t.TempDir()
	html, csvFile := filepath.Join(dir, "report.html"), filepath.Join(dir, "series.csv")
	stdout, stderr, code := runTern(t, "", "bench", "latency", "--url", url, "--qos", "1", "--rate", "2000",
		"--duration", "3s", "--publishers", "2", "--json", "--quiet", "--html", html, "--csv", csvFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var res loadgen.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}

	// The CSV: the documented header, a row a second, totals that end at
	// the run's.
	f, err := os.Open(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 4 || strings.Join(rows[0], ",") != strings.Join(loadgen.CSVHeader, ",") {
		t.Fatalf("CSV: %q", rows)
	}
	last := rows[len(rows)-1]
	if last[1] != strconv.FormatInt(res.Sent, 10) || last[3] != strconv.FormatInt(res.Delivered, 10) {
		t.Errorf("CSV ends at sent %s received %s; the run sent %d, delivered %d", last[1], last[3], res.Sent, res.Delivered)
	}

	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"<script", "src=", "href=", "url(", "@import"} {
		if bytes.Contains(page, []byte(ref)) {
			t.Errorf("the report is not self-contained: it has %q", ref)
		}
	}

	dom, console := headless(t, bin, html, "--dump-dom")
	if len(console) > 0 {
		t.Errorf("console messages:\n%s", strings.Join(console, "\n"))
	}
	// Throughput: a line per group with a point per sample.
	samples := strconv.Itoa(len(rows) - 1)
	for _, group := range []string{"publishers", "subscribers"} {
		if !strings.Contains(dom, `<g class="series" data-group="`+group+`" data-points="`+samples+`">`) {
			t.Errorf("no throughput line of the %s with %s points in the DOM", group, samples)
		}
	}
	for _, want := range []string{`<svg class="chart throughput"`, `<svg class="chart histogram"`, `<svg class="chart percentiles"`,
		"Latency of the subscribers: publish to delivery", "Latency of the publishers"} {
		if n := strings.Count(dom, want); n == 0 {
			t.Errorf("the DOM has no %q", want)
		}
	}
	if n := strings.Count(dom, `<svg class="chart histogram"`); n != 2 {
		t.Errorf("%d histograms, want 2 (publishers, subscribers)", n)
	}
	if bars := regexp.MustCompile(`<rect x="[\d.]+" y="[\d.]+" width`).FindAllString(dom, -1); len(bars) < 6 {
		t.Errorf("%d histogram bars", len(bars))
	}

	// The screenshot: not blank, and the plots drawn in the groups'
	// colours.
	shot := filepath.Join(dir, "shot.png")
	headless(t, bin, html, "--window-size=1200,2200", "--screenshot="+shot, "--hide-scrollbars")
	fh, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(fh)
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[3]uint32]int{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}]++
		}
	}
	red, blue := colours[[3]uint32{0xd6, 0x27, 0x28}], colours[[3]uint32{0x1f, 0x77, 0xb4}]
	if len(colours) < 50 || red < 2000 || blue < 2000 {
		t.Errorf("screenshot: %d colours, %d pixels of the subscribers' red, %d of the publishers' blue", len(colours), red, blue)
	}
}

// TestBenchCompletion: the shell completion of tern bench offers every
// scenario, the open-ended ones included.
func TestBenchCompletion(t *testing.T) {
	stdout, stderr, code := runTern(t, "", "__complete", "bench", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := strings.Fields(stdout)
	for _, s := range loadgen.Scenarios {
		if !slices.Contains(got, s) {
			t.Errorf("completion lacks %q: %q", s, stdout)
		}
	}
}
