package conformance

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// root is the module root, seen from this package's directory.
const root = "../.."

func loadSpecs(t *testing.T) *Specs {
	t.Helper()
	ss, err := LoadSpecs()
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// TestTags fails on every spec tag in the module that does not hold up: an
// id that does not exist in the version the tag cites, a malformed id, an
// id without a version that means different rules in 3.1.1 and 5.0, or a
// misspelt noid tag.
func TestTags(t *testing.T) {
	ss := loadSpecs(t)
	hits, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) < 100 {
		t.Fatalf("found only %d spec tags in the module: is the scanner broken?", len(hits))
	}
	for _, p := range ss.Check(hits) {
		t.Errorf("%s: %s", p.Hit.Pos(), p.Msg)
	}
	for _, h := range hits {
		if h.Version == Unversioned && !h.IsNoID() {
			if cl, p := ss.Resolve(h); p == nil {
				var vs []string
				for _, c := range cl {
					vs = append(vs, c.Version.String())
				}
				t.Logf("%s: %s has no version; counted for %s", h.Pos(), h.ID, strings.Join(vs, " and "))
			}
		}
	}
}

var update = flag.Bool("update", false, "rewrite CONFORMANCE.md at the module root from the spec tags in the code")

// TestMatrix regenerates CONFORMANCE.md and compares it with the checked-in
// file; with -update it writes the file instead. Generation parses every Go
// file of the module once and takes well under a second.
func TestMatrix(t *testing.T) {
	start := time.Now()
	got, problems, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated the matrix in %v", time.Since(start))
	path := filepath.Join(root, "CONFORMANCE.md")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(problems) > 0 {
			t.Logf("wrote CONFORMANCE.md with %d tag problems listed in it; TestTags fails until they are fixed", len(problems))
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; create it from the repository root with: %s", err, GenerateCommand)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	line := 0
	for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
		line++
	}
	var g, w string
	if line < len(gl) {
		g = gl[line]
	}
	if line < len(wl) {
		w = wl[line]
	}
	t.Errorf("CONFORMANCE.md is out of date with the spec tags in the code (first difference at line %d:\n  file:      %.200s\n  generated: %.200s)\nRegenerate it from the repository root with:\n  %s",
		line+1, w, g, GenerateCommand)
}

// TestGenerateDeterministic: two generations give the same bytes.
func TestGenerateDeterministic(t *testing.T) {
	a, _, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two generations of the matrix differ")
	}
}

func TestSpecs(t *testing.T) {
	ss := loadSpecs(t)
	for _, spec := range []*Spec{ss.V311, ss.V5} {
		prev := []int(nil)
		for _, st := range spec.Statements {
			n := idNumbers(st.ID)
			if prev != nil && !less(prev, n) {
				t.Errorf("%s: %s is not after the previous id in numeric order", spec.File, st.ID)
			}
			prev = n
			if st.Summary == "" || st.Section == "" {
				t.Errorf("%s: %s has an empty field", spec.File, st.ID)
			}
		}
	}
	// The vendored copies must match the shared spec notes where those
	// exist (next to the repository; absent on a clean CI checkout).
	for _, name := range []string{"mqtt-3.1.1-normative.tsv", "mqtt-5.0-normative.tsv"} {
		shared, err := os.ReadFile(filepath.Join(root, "..", "shared", "spec", name))
		if err != nil {
			continue
		}
		vendored, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(shared, vendored) {
			t.Errorf("testdata/%s differs from ../shared/spec/%s: copy the new version in and regenerate the matrix (%s)", name, name, GenerateCommand)
		}
	}
}

func idNumbers(id string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(strings.TrimPrefix(id, "MQTT-"), func(r rune) bool { return r == '.' || r == '-' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

func less(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// TestVersionedSignature keeps versionedArgs in step with package packet:
// versioned's second parameter is the 5.0 id and its third the 3.1.1 id.
func TestVersionedSignature(t *testing.T) {
	fset := token.NewFileSet()
	var decl *ast.FuncDecl
	files, err := filepath.Glob(filepath.Join(root, "packet", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == versionedFunc {
				decl = fd
			}
		}
	}
	if decl == nil {
		t.Fatalf("no func %s in packet/: update versionedFunc and versionedArgs in scan.go", versionedFunc)
	}
	var names []string
	for _, field := range decl.Type.Params.List {
		for _, n := range field.Names {
			names = append(names, n.Name)
		}
	}
	if strings.Join(names, ",") != "v,v5id,v3id" {
		t.Fatalf("packet.%s has parameters %v, want (v, v5id, v3id): update versionedArgs in scan.go", versionedFunc, names)
	}
	for i, v := range versionedArgs {
		if !strings.Contains(names[i], v.Tag()) {
			t.Errorf("versionedArgs[%d] = %s, but the parameter is %s", i, v, names[i])
		}
	}
}

// scanSrc scans one synthetic file.
func scanSrc(t *testing.T, name, src string) []Hit {
	t.Helper()
	hits, err := ScanFile(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

type want struct {
	line int
	v    Version
	id   string
}

func checkHits(t *testing.T, hits []Hit, wants []want) {
	t.Helper()
	got := map[want]bool{}
	for _, h := range hits {
		got[want{h.Line, h.Version, h.ID}] = true
	}
	for _, w := range wants {
		if !got[w] {
			t.Errorf("missing hit %d %s %s", w.line, w.v.Tag(), w.id)
		}
		delete(got, w)
	}
	for w := range got {
		t.Errorf("unexpected hit %d %s %q", w.line, w.v.Tag(), w.id)
	}
}

func TestScanForms(t *testing.T) {
	src := `package p

// [v5 MQTT-3.1.2-22] keep alive; [v3 MQTT-3.1.2-24] the same.
// [v5 MQTT-3.8.3-3] [v3 MQTT-3.8.4-6] two brackets.
// [v5 MQTT-3.2.2-19 MQTT-3.2.2-20] one bracket, two ids.
// A tag broken over lines [v5
// MQTT-3.1.3-7] counts on the id's line.
// [v5 MQTT-4.3.3-1..3] a range, [v3 MQTT-2.3.1-6 .. -7] another.
// [v5 MQTT-4.3.3-?] is malformed. [MQTT-4.7.2-1] has no version.
// An example in quotes, "[v5 MQTT-3.3.1-4]", is not a tag; nor is [v5 MQTT-x.y.z-n].
// rule v5 MQTT-3.3.1-4 outside brackets; (noid:dup-prop) and [v5 noid:sub-qos3].
// mqttv3.1 MQTT-3.3.1-2 has no version mark.
func f(d struct{ v int }) {
	_ = &ProtocolError{Spec: "v5 MQTT-3.3.2-9"}
	_ = versioned(d.v, "MQTT-3.3.2-2", "MQTT-4.7.1-1")
	_ = versioned(d.v, "noid:empty-topic-no-alias", "MQTT-4.7.3-1")
	_ = "topic: bad [MQTT-4.7.1-1]"
	_ = ` + "`raw\n[v3 MQTT-3.1.2-22]`" + `
}
`
	hits := scanSrc(t, "p/p.go", src)
	checkHits(t, hits, []want{
		{3, V5, "MQTT-3.1.2-22"}, {3, V311, "MQTT-3.1.2-24"},
		{4, V5, "MQTT-3.8.3-3"}, {4, V311, "MQTT-3.8.4-6"},
		{5, V5, "MQTT-3.2.2-19"}, {5, V5, "MQTT-3.2.2-20"},
		{7, V5, "MQTT-3.1.3-7"},
		{8, V5, "MQTT-4.3.3-1"}, {8, V5, "MQTT-4.3.3-2"}, {8, V5, "MQTT-4.3.3-3"},
		{8, V311, "MQTT-2.3.1-6"}, {8, V311, "MQTT-2.3.1-7"},
		{9, V5, "MQTT-4.3.3-?"}, {9, Unversioned, "MQTT-4.7.2-1"},
		{11, V5, "MQTT-3.3.1-4"}, {11, Unversioned, "noid:dup-prop"}, {11, V5, "noid:sub-qos3"},
		{12, Unversioned, "MQTT-3.3.1-2"},
		{14, V5, "MQTT-3.3.2-9"},
		{15, V5, "MQTT-3.3.2-2"}, {15, V311, "MQTT-4.7.1-1"},
		{16, V5, "noid:empty-topic-no-alias"}, {16, V311, "MQTT-4.7.3-1"},
		{17, Unversioned, "MQTT-4.7.1-1"},
		{19, V311, "MQTT-3.1.2-22"},
	})
	for _, h := range hits {
		if h.ID == "MQTT-4.3.3-?" && !h.Malformed {
			t.Errorf("%s: MQTT-4.3.3-? not marked malformed", h.Pos())
		}
		if h.Test {
			t.Errorf("%s: a hit in p/p.go marked as tested", h.Pos())
		}
	}
	for _, h := range scanSrc(t, "p/p_test.go", "package p\n\n// [v5 MQTT-3.1.2-22]\n") {
		if !h.Test {
			t.Errorf("%s: a hit in a _test.go file not marked as tested", h.Pos())
		}
	}
}

func TestCheckCatches(t *testing.T) {
	ss := loadSpecs(t)
	hit := func(v Version, id, text string) Hit {
		h := Hit{File: "broker/x.go", Line: 7, Version: v, ID: id, Raw: id, Text: text}
		h.Malformed = !wellFormedID.MatchString(id) && !strings.HasPrefix(id, "noid:")
		return h
	}
	bad := []struct {
		h    Hit
		want string // in the message
	}{
		{hit(V5, "MQTT-4.3.3-?", ""), "malformed"},
		{hit(V5, "MQTT-1.5.3-1", ""), "[v3 MQTT-1.5.3-1]"},     // a 3.1.1-only id tagged v5
		{hit(V311, "MQTT-4.12.0-1", ""), "[v5 MQTT-4.12.0-1]"}, // a 5.0-only id tagged v3
		{hit(V5, "MQTT-3.1.2-33", ""), "pre-standard"},         // draft numbering
		{hit(V5, "MQTT-9.9.9-9", ""), "does not exist in 5.0"},
		{hit(Unversioned, "MQTT-3.1.2-24", ""), "different rules"},
		{hit(Unversioned, "MQTT-9.9.9-9", ""), "neither"},
		{hit(V5, "MQTT-3.1.2-24", "// [v5 MQTT-3.1.2-24] 1.5 x keep alive"), "MQTT-3.1.2-22"},
		{hit(V5, "MQTT-4.2-1", ""), "[v5 MQTT-4.2.0-1]"},
		{Hit{File: "broker/x.go", Line: 7, ID: "noid:", Raw: "noid: some words", BadNoID: true}, "noid:<name>"},
	}
	for _, b := range bad {
		_, p := ss.Resolve(b.h)
		if p == nil {
			t.Errorf("%s %s: no problem reported", b.h.Version.Tag(), b.h.ID)
			continue
		}
		if !strings.Contains(p.Msg, b.want) || !strings.HasPrefix(p.String(), "broker/x.go:7: ") {
			t.Errorf("%s %s: problem %q, want it to name broker/x.go:7 and contain %q", b.h.Version.Tag(), b.h.ID, p, b.want)
		}
	}

	good := []struct {
		h    Hit
		want []Claim
	}{
		{hit(V5, "MQTT-3.1.2-22", "// [v5 MQTT-3.1.2-22] keep alive"), []Claim{{V5, "MQTT-3.1.2-22"}}},
		{hit(V311, "MQTT-3.1.2-24", "// [v3 MQTT-3.1.2-24] keep alive"), []Claim{{V311, "MQTT-3.1.2-24"}}},
		{hit(V5, "MQTT-3.1.2-24", "// [v5 MQTT-3.1.2-24] maximum packet size"), []Claim{{V5, "MQTT-3.1.2-24"}}},
		{hit(Unversioned, "MQTT-4.7.2-1", ""), []Claim{{V311, "MQTT-4.7.2-1"}, {V5, "MQTT-4.7.2-1"}}},
		{hit(Unversioned, "MQTT-1.5.3-3", ""), []Claim{{V311, "MQTT-1.5.3-3"}}},
		{hit(Unversioned, "MQTT-4.12.0-1", ""), []Claim{{V5, "MQTT-4.12.0-1"}}},
		{hit(V5, "noid:dup-prop", ""), nil},
	}
	for _, g := range good {
		cl, p := ss.Resolve(g.h)
		if p != nil {
			t.Errorf("%s %s: unexpected problem %s", g.h.Version.Tag(), g.h.ID, p)
		}
		if !equalClaims(cl, g.want) {
			t.Errorf("%s %s: claims %v, want %v", g.h.Version.Tag(), g.h.ID, cl, g.want)
		}
	}

	// Unversioned ids in topic/ are 5.0 ids.
	h := hit(Unversioned, "MQTT-4.7.1-1", "")
	h.File = "topic/errors.go"
	if cl, p := ss.Resolve(h); p != nil || !equalClaims(cl, []Claim{{V5, "MQTT-4.7.1-1"}}) {
		t.Errorf("topic/ MQTT-4.7.1-1: claims %v, problem %v; want 5.0 only", cl, p)
	}
	h.ID = "MQTT-1.5.3-3"
	if _, p := ss.Resolve(h); p == nil {
		t.Error("topic/ MQTT-1.5.3-3 (a 3.1.1-only id in a 5.0 package): no problem")
	}
}

func equalClaims(a, b []Claim) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSameRuleIDsExist: every sameRule id is in both lists.
func TestSameRuleIDsExist(t *testing.T) {
	ss := loadSpecs(t)
	for id := range sameRule {
		if !ss.V311.Has(id) || !ss.V5.Has(id) {
			t.Errorf("sameRule lists %s, which is not in both statement lists", id)
		}
	}
	for v, m := range aliases {
		for from, to := range m {
			if !ss.For(v).Has(to) || ss.For(v).Has(from) {
				t.Errorf("alias %s %s -> %s: the target must exist and the alias must not", v, from, to)
			}
		}
	}
}

// buildMatrix scans the module and builds its matrix.
func buildMatrix(t *testing.T) *Matrix {
	t.Helper()
	ss := loadSpecs(t)
	hits, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	return Build(ss, hits)
}

// TestNoSilentRows fails on every broker-side statement (who is server,
// codec or both) that is neither enforced and tested (a tag in non-test
// code and a tag in a test) nor listed as not applicable with a reason.
// It reports per version (TestNoSilentRows/3.1.1, TestNoSilentRows/5.0),
// so that each version's progress can be followed on its own.
func TestNoSilentRows(t *testing.T) {
	m := buildMatrix(t)
	for _, v := range []Version{V311, V5} {
		t.Run(v.String(), func(t *testing.T) {
			var lines []string
			for _, r := range m.Rows[v] {
				if !r.Silent() {
					continue
				}
				var state string
				switch {
				case len(r.Enforced) > 0:
					state = "enforced in " + hitFiles(r.Enforced) + ", not tested"
				case len(r.Tested) > 0:
					state = "tested in " + hitFiles(r.Tested) + ", not enforced"
				default:
					state = "no tag"
				}
				lines = append(lines, fmt.Sprintf("  %s (%s, %s): %s", r.ID, r.Who, state, r.Summary))
			}
			if len(lines) > 0 {
				t.Errorf("%d silent MQTT %s statements: tag the code that enforces each ([%s <id>]) and a test that fails if it breaks, or list it with the reason in %s:\n%s",
					len(lines), v, v.Tag(), m.Specs.For(v).NAFile, strings.Join(lines, "\n"))
			}
		})
	}
}

func hitFiles(hits []Hit) string {
	var files []string
	seen := map[string]bool{}
	for _, h := range hits {
		if !seen[h.File] {
			seen[h.File] = true
			files = append(files, h.File)
		}
	}
	return strings.Join(files, ", ")
}

// TestNotApplicable fails on every problem of the not-applicable files:
// a row that does not hold up, or a statement listed there that the
// broker's own code cites.
func TestNotApplicable(t *testing.T) {
	m := buildMatrix(t)
	for _, p := range m.NAProblems {
		t.Error(p)
	}
}

func TestParseNotApplicable(t *testing.T) {
	ss := loadSpecs(t)
	spec := *ss.V311
	spec.NAFile = "x.tsv"
	data := "id\treason\n" +
		"MQTT-7.0.0-1\tTern has no bridge\n" + // 2: good
		"MQTT-9.9.9-9\tno such id\n" + // 3: unknown
		"MQTT-3.14.4-1\tclient only\n" + // 4: who is client
		"MQTT-7.1.1-1\t \n" + // 5: empty reason
		"MQTT-7.0.0-1\tagain\n" + // 6: duplicate
		"MQTT-7.0.0-2\n" + // 7: one field
		"\n" +
		"[MQTT-7.0.0-2]\treason\n" + // 9: brackets
		"MQTT-3.1.4-2\tclient takeover is tested\r\n" // 10: good, CRLF
	na, probs := ParseNotApplicable(data, &spec)
	if len(na) != 2 || na["MQTT-7.0.0-1"].Reason != "Tern has no bridge" || na["MQTT-3.1.4-2"].Line != 10 || na["MQTT-3.1.4-2"].Reason != "client takeover is tested" {
		t.Errorf("rows %v, want MQTT-7.0.0-1 and MQTT-3.1.4-2", na)
	}
	want := map[int]string{3: "not an MQTT 3.1.1 statement id", 4: "binds the client only", 5: "no reason",
		6: "listed twice (first on line 2)", 7: "1 tab-separated fields", 9: "without brackets"}
	for _, p := range probs {
		w, ok := want[p.Line]
		if !ok || !strings.Contains(p.Msg, w) || !strings.HasPrefix(p.String(), fmt.Sprintf("x.tsv:%d: ", p.Line)) {
			t.Errorf("unexpected problem %s", p)
		}
		delete(want, p.Line)
	}
	for line, w := range want {
		t.Errorf("line %d: no problem reported, want one containing %q", line, w)
	}
	if _, probs := ParseNotApplicable("id\twhy\n", &spec); len(probs) != 1 || !strings.Contains(probs[0].Msg, "header") {
		t.Errorf("bad header: problems %v", probs)
	}
}

// TestMatrixNotApplicable: a not-applicable row is counted as such, not as
// silent; shared code may cite it, the broker's own code may not; a
// broker-side row is silent until it is both enforced and tested.
func TestMatrixNotApplicable(t *testing.T) {
	ss := loadSpecs(t)
	v3 := *ss.V311
	v3.NAFile = "na.tsv"
	v3.NA, v3.NAProblems = ParseNotApplicable("id\treason\nMQTT-7.0.0-1\tno bridge\nMQTT-6.0.0-4\tno WebSocket\n", &v3)
	v5 := *ss.V5
	v5.NA, v5.NAProblems = nil, nil
	specs := &Specs{V311: &v3, V5: &v5}
	hit := func(file string, id string) Hit {
		return Hit{File: file, Line: 3, Version: V311, ID: id, Raw: id, Test: strings.HasSuffix(file, "_test.go")}
	}
	hits := []Hit{
		hit("transport/dial.go", "MQTT-6.0.0-4"),             // n/a, cited by shared code: allowed
		hit("broker/x.go", "MQTT-3.1.0-2"),                   // enforced only: silent
		hit("broker/y_test.go", "MQTT-3.12.4-1"),             // tested only: silent
		hit("broker/z.go", "MQTT-3.14.4-3"),                  // enforced
		hit("broker/z_test.go", "MQTT-3.14.4-3"),             // and tested: done
		hit("broker/conformance_v3_test.go", "MQTT-4.1.0-1"), // tested only
	}
	m := Build(specs, hits)
	if len(m.NAProblems) != 0 {
		t.Errorf("problems %v, want none", m.NAProblems)
	}
	c := m.Count(V311)
	if c.NotApplicable != 2 || c.Silent != c.Broker-c.NotApplicable-1 {
		t.Errorf("counts %+v: want 2 not applicable and every broker-side row but one done silent", c)
	}
	silent := strings.Join(m.Silent(V311), " ")
	for _, id := range []string{"MQTT-3.1.0-2", "MQTT-3.12.4-1", "MQTT-4.1.0-1", "MQTT-3.1.4-1"} {
		if !strings.Contains(silent, id+" ") {
			t.Errorf("%s not silent", id)
		}
	}
	for _, id := range []string{"MQTT-3.14.4-3", "MQTT-7.0.0-1", "MQTT-6.0.0-4", "MQTT-3.14.4-1"} {
		if strings.Contains(silent, id+" ") {
			t.Errorf("%s silent: it is done, not applicable or client-only", id)
		}
	}
	var b bytes.Buffer
	m.WriteMarkdown(&b)
	md := b.String()
	for _, want := range []string{"| &nbsp;&nbsp;not applicable (with a reason) | 2 | 0 |",
		"  - [MQTT-7.0.0-1](#v3-MQTT-7.0.0-1) (server): no bridge\n",
		"| n/a: no bridge | n/a |", "| n/a: no WebSocket; cited in [transport/dial.go](transport/dial.go) | n/a |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}

	// The broker's own code cites a not-applicable statement: a problem.
	m = Build(specs, append(hits, hit("broker/ws_test.go", "MQTT-6.0.0-4")))
	if len(m.NAProblems) != 1 || !strings.Contains(m.NAProblems[0].Msg, "broker/ws_test.go:3") || m.NAProblems[0].Line != 3 {
		t.Errorf("problems %v, want one naming broker/ws_test.go:3 on line 3 of na.tsv", m.NAProblems)
	}
	if !strings.Contains(func() string { var b bytes.Buffer; m.WriteMarkdown(&b); return b.String() }(), "## Not-applicable list problems (1)") {
		t.Error("markdown does not list the problem")
	}
}
