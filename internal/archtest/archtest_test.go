package archtest

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/ternmq/tern"

// layers lists, for every package of the module, the module's packages it
// may import (directly or not). A package missing from this table fails
// the test: adding a package means deciding where it sits. "*" allows
// everything but cmd/...; a trailing "/..." allows a subtree.
var layers = map[string][]string{
	"packet":            {},
	"message":           {"packet"},
	"store":             {"packet", "topic", "message"},
	"session":           {"packet", "topic", "message", "store"},
	"store/memory":      {"packet", "message", "store"},
	"store/disk":        {"packet", "message", "store", "store/memory"}, // memory.Broker is the broker store's index
	"store/storetest":   {"packet", "message", "store", "store/memory"}, // memory.Broker is the broker suite's reference
	"store/redis":       {"packet", "message", "store"},
	"store/jetstream":   {"packet", "message", "store", "store/memory"}, // memory.Broker per session is its view of the log
	"broker":            {"packet", "topic", "transport", "message", "session", "store", "backplane"},
	"client":            {"packet", "topic", "transport", "message", "session", "store", "store/memory", "internal/scram"},
	"proxy":             {"packet", "topic", "transport", "message", "session", "store"},                                                                                  // layer 3: the session package brings message and store
	"broker/auth":       {"broker", "packet", "topic", "transport", "message", "session", "store", "backplane", "internal/scram"},                                         // backplane through broker
	"bridge":            {"broker", "client", "packet", "topic", "transport", "message", "session", "store", "store/memory", "store/disk", "backplane", "internal/scram"}, // layer 3½: a broker's client of another broker
	"cmd/tern":          {"*"},
	"mqtttest":          {"*"},                                                                                             // layer 4, the test harness: anything but cmd
	"httpapi":           {"broker", "packet", "topic", "transport", "message", "session", "store", "backplane"},            // layer 4, the broker's HTTP face
	"console":           {"httpapi", "broker", "packet", "topic", "transport", "message", "session", "store", "backplane"}, // layer 4, beside httpapi: the web console it mounts
	"topic":             {},
	"transport":         {},
	"internal/archtest": {},
	"internal/testpki":  {},
	"internal/loadgen":  {"packet", "topic", "transport"},
	"internal/scram":    {},
	"internal/subfmt":   {"packet", "message"},

	"internal/conformance": {},

	"backplane":                {"packet", "topic", "message"},
	"backplane/internal/route": {"backplane", "packet", "topic", "message"},
	"backplane/internal/delay": {"packet", "message"},
	"backplane/internal/wire":  {"backplane", "packet", "topic", "message"},
	"backplane/memory":         {"backplane", "backplane/internal/route", "backplane/internal/delay", "packet", "topic", "message"},
	"backplane/redis":          {"backplane", "backplane/internal/...", "packet", "topic", "message"},
	"backplane/nats":           {"backplane", "backplane/internal/...", "packet", "topic", "message"},
	"backplane/backplanetest":  {"backplane", "packet", "topic", "message"},
}

func TestImportDirection(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{.ImportPath}} {{join .Deps " "}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	touchSources(t)
	std := stdPackages(t)
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], module) {
			continue // a third-party package
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		seen++
		allowed, ok := layers[pkg]
		if !ok && !strings.HasPrefix(pkg, "cmd/") {
			t.Errorf("package %q is not in the layer table of %s: add it with the packages it may import", pkg, "internal/archtest")
			continue
		}
		for _, dep := range fields[1:] {
			if !strings.HasPrefix(dep, module) {
				// [DESIGN] packet and topic import only the standard library.
				if (pkg == "packet" || pkg == "topic") && !std[dep] {
					t.Errorf("%s imports %s: packet and topic may import only the standard library", pkg, dep)
				}
				continue
			}
			d := strings.TrimPrefix(strings.TrimPrefix(dep, module), "/")
			if strings.HasPrefix(d, "cmd/") {
				t.Errorf("%s imports %s: nothing may import cmd/...", pkg, d)
				continue
			}
			if strings.HasPrefix(pkg, "cmd/") || permitted(allowed, d) {
				continue
			}
			t.Errorf("%s imports %s, which its layer does not allow (see DESIGN.md and the table in this test)", pkg, d)
		}
	}
	if seen < 2 {
		t.Fatalf("go list saw only %d of the module's packages", seen)
	}
}

func permitted(allowed []string, dep string) bool {
	for _, a := range allowed {
		if a == "*" || a == dep {
			return true
		}
		if base, ok := strings.CutSuffix(a, "/..."); ok && (dep == base || strings.HasPrefix(dep, base+"/")) {
			return true
		}
		if m, _ := path.Match(a, dep); m {
			return true
		}
	}
	return false
}

func stdPackages(t *testing.T) map[string]bool {
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	m := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m[p] = true
	}
	return m
}

// touchSources stats every Go file and go.mod of the module. go test
// caches a passing result keyed on the files a test opens or stats; the
// go list subprocess is invisible to it, so without this a cached pass
// would hide a new bad import.
func touchSources(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") || d.Name() == "go.mod") {
			_, err = os.Stat(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
