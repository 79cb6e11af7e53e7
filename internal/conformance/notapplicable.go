package conformance

import (
	"bufio"
	"fmt"
	"strings"
)

// NotApplicable is a broker-side statement that cannot apply to Tern's
// broker side, listed with the reason in
// internal/conformance/testdata/not-applicable-<version>.tsv. Statements
// whose who is "client" need no listing: they are not broker-side at all.
type NotApplicable struct {
	ID     string
	Reason string // one line: why the statement cannot apply
	Line   int    // line of the file it was read from
}

// NAProblem is a row of a not-applicable file that does not hold up (an
// unknown or client-only id, a missing reason, a duplicate), or a
// not-applicable statement that the broker's own code cites all the same.
type NAProblem struct {
	File string // relative to the module root
	Line int    // 0 when the problem is not about one line of the file
	Msg  string // what is wrong and how to fix it
}

func (p NAProblem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// naFile returns the name of the not-applicable file of version v.
func naFile(v Version) string {
	return "not-applicable-" + v.String() + ".tsv"
}

// loadNotApplicable reads the not-applicable file of spec's version
// (embedded with the statement lists) into spec.NA; every row that does
// not hold up goes to spec.NAProblems instead.
func loadNotApplicable(spec *Spec) error {
	name := naFile(spec.Version)
	data, err := specFiles.ReadFile("testdata/" + name)
	if err != nil {
		return err
	}
	spec.NAFile = specDir + "/" + name
	spec.NA, spec.NAProblems = ParseNotApplicable(string(data), spec)
	return nil
}

// ParseNotApplicable parses a not-applicable file of spec's version: a
// header line "id<TAB>reason", then one statement id (without brackets)
// and its reason per line. It returns the rows that hold up by id, and
// a problem for each row that does not: an id that is not in spec, a
// client-only id (those are not applicable anyway), an empty reason, a
// duplicate id, a line without exactly two fields.
func ParseNotApplicable(data string, spec *Spec) (map[string]NotApplicable, []NAProblem) {
	file := spec.NAFile
	na := map[string]NotApplicable{}
	var probs []NAProblem
	prob := func(line int, format string, args ...any) {
		probs = append(probs, NAProblem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	sc := bufio.NewScanner(strings.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 {
			if text != "id\treason" {
				prob(line, "header %q, want \"id<TAB>reason\"", text)
				return nil, probs
			}
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 2 {
			prob(line, "%d tab-separated fields, want 2: the statement id and the reason, on one line", len(f))
			continue
		}
		id, reason := strings.TrimSpace(f[0]), strings.TrimSpace(f[1])
		st, ok := spec.Lookup(id)
		switch {
		case !ok:
			hint := ""
			if strings.HasPrefix(id, "[") || strings.Contains(id, " ") {
				hint = " (write the bare id, e.g. MQTT-3.1.2-1, without brackets or version)"
			}
			prob(line, "%q is not an MQTT %s statement id of %s%s", id, spec.Version, spec.File, hint)
			continue
		case st.Who == "client":
			prob(line, "%s binds the client only (who is client in %s): it is not broker-side, so it needs no not-applicable row; remove the line", id, spec.File)
			continue
		case reason == "":
			prob(line, "%s has no reason: say in one line why it cannot apply to Tern's broker side", id)
			continue
		}
		if prev, dup := na[id]; dup {
			prob(line, "%s is listed twice (first on line %d): keep one row", id, prev.Line)
			continue
		}
		na[id] = NotApplicable{ID: id, Reason: reason, Line: line}
	}
	return na, probs
}

// brokerCode reports whether a file is the broker's own code (package
// broker and below, the tern command), as opposed to code that clients
// share (packet, topic, transport). A statement that the broker's own code
// cites, in a test or not, applies to the broker: it cannot be listed as
// not applicable. Shared code may cite one, for its client-side users
// (a dialer offering a WebSocket subprotocol, a decoder of packets only a
// server sends).
func brokerCode(file string) bool {
	return strings.HasPrefix(file, "broker/") || strings.HasPrefix(file, "cmd/")
}

// checkNotApplicable returns a problem for every not-applicable statement
// that the broker's own code cites.
func (m *Matrix) checkNotApplicable() []NAProblem {
	var out []NAProblem
	for _, v := range []Version{V311, V5} {
		spec := m.Specs.For(v)
		for _, r := range m.Rows[v] {
			if r.NA == "" {
				continue
			}
			for _, h := range append(append([]Hit(nil), r.Enforced...), r.Tested...) {
				if brokerCode(h.File) {
					out = append(out, NAProblem{File: spec.NAFile, Line: spec.NA[r.ID].Line,
						Msg: fmt.Sprintf("%s is listed as not applicable, but the broker's code cites it at %s: if the broker enforces it, remove the not-applicable row (and test it); otherwise remove the tag", r.ID, h.Pos())})
				}
			}
		}
	}
	return out
}
