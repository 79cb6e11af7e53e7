package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestVersion: tern --version and tern version print the same line,
// built from the binary's build information as go version -m reads it.
func TestVersion(t *testing.T) {
	bin := ternBinary(t)
	flag, _, code := runTern(t, "", "--version")
	if code != 0 {
		t.Fatalf("tern --version: exit %d", code)
	}
	cmd, _, code := runTern(t, "", "version")
	if code != 0 || cmd != flag {
		t.Fatalf("tern version: exit %d, %q; tern --version %q", code, cmd, flag)
	}
	line := regexp.MustCompile(`^tern (\S+)( \(([^)]*)\))? (go\S+) (\w+/\w+)\n$`)
	m := line.FindStringSubmatch(flag)
	if m == nil {
		t.Fatalf("tern --version printed %q", flag)
	}
	// What the Go tool reads from the same binary.
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	info := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "build" && strings.Contains(f[1], "="):
			k, v, _ := strings.Cut(f[1], "=")
			info[k] = v
		case len(f) >= 3 && f[0] == "mod":
			info["mod"] = f[2]
		case len(f) >= 2 && strings.HasSuffix(f[0], ":"):
			info["go"] = f[1]
		}
	}
	wantVersion := info["mod"]
	if wantVersion == "(devel)" || wantVersion == "" {
		wantVersion = "dev"
	}
	if m[1] != wantVersion || m[4] != info["go"] || m[5] != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("tern --version %q; go version -m says module %s, %s", flag, info["mod"], info["go"])
	}
	var want []string
	if rev := info["vcs.revision"]; rev != "" {
		want = append(want, "rev "+rev[:12])
	}
	if at := info["vcs.time"]; at != "" {
		want = append(want, at)
	}
	if info["vcs.modified"] == "true" {
		want = append(want, "modified")
	}
	if m[3] != strings.Join(want, ", ") {
		t.Errorf("tern --version details %q, want %q (go version -m:\n%s)", m[3], strings.Join(want, ", "), out)
	}

	// -ldflags -X main.version replaces the module version.
	ld := filepath.Join(t.TempDir(), "tern")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-test", "-o", ld, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(ld, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "tern v9.8.7-test ") {
		t.Errorf("with -X main.version=v9.8.7-test: %q, %v", out, err)
	}
}

// TestDescribeBuild checks the version line for build information with
// and without version control details.
func TestDescribeBuild(t *testing.T) {
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH
	bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-12-07T05:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		v    string
		bi   *debug.BuildInfo
		want string
	}{
		{"", bi, "tern v0.4.0 (rev 0123456789ab, 2026-12-07T05:00:00Z, modified) go1.99.1"},
		{"v1.0.0", bi, "tern v1.0.0 (rev 0123456789ab, 2026-12-07T05:00:00Z, modified) go1.99.1"},
		{"", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}}, "tern dev go1.99.1"},
		{"", nil, "tern dev " + runtime.Version()},
	} {
		if got := describeBuild(tc.v, tc.bi); got != tc.want+platform {
			t.Errorf("describeBuild(%q, ...) = %q, want %q", tc.v, got, tc.want+platform)
		}
	}
}

// TestSysVersion: $SYS/broker/version carries the version line.
func TestSysVersion(t *testing.T) {
	want, _, _ := runTern(t, "", "version")
	b := startBroker(t, "", "-p", "0")
	nc, err := net.Dial("tcp", b.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	w, r := packet.NewWriter(nc), packet.NewReader(nc)
	r.Version = packet.V311
	w.WritePacket(&packet.Connect{Version: packet.V311, ClientID: "sys", CleanStart: true})
	w.WritePacket(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "$SYS/broker/version"}}})
	for {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("no $SYS/broker/version: %v\n%s", err, b)
		}
		if pub, ok := p.(*packet.Publish); ok {
			if string(pub.Payload)+"\n" != want {
				t.Errorf("$SYS/broker/version %q, tern version %q", pub.Payload, want)
			}
			return
		}
	}
}
