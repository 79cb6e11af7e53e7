package conformance

import (
	"bufio"
	"embed"
	"fmt"
	"strings"
)

// Version is the MQTT version a spec tag cites.
type Version int

const (
	// Unversioned: the tag names no version ("[MQTT-4.7.1-1]").
	Unversioned Version = iota
	V311                // "[v3 ...]": MQTT 3.1.1
	V5                  // "[v5 ...]": MQTT 5.0
)

// String returns "3.1.1", "5.0" or "unversioned".
func (v Version) String() string {
	switch v {
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "unversioned"
}

// Tag returns the version mark used in tags, "v3" or "v5" ("" for
// Unversioned).
func (v Version) Tag() string {
	switch v {
	case V311:
		return "v3"
	case V5:
		return "v5"
	}
	return ""
}

// Other returns the other version (V5 for V311 and the reverse).
func (v Version) Other() Version {
	if v == V5 {
		return V311
	}
	return V5
}

// Statement is one numbered normative statement of a spec.
type Statement struct {
	ID      string // "MQTT-3.1.2-24"
	Section string // "3.1.2.10"
	Who     string // "codec", "server", "client" or "both"
	Summary string // our one-line paraphrase
}

// Spec is the list of the normative statements of one MQTT version, in
// spec order.
type Spec struct {
	Version    Version
	File       string // the file it was read from, relative to the module root
	Statements []Statement
	byID       map[string]int

	// NA are the broker-side statements listed as not applicable to
	// Tern's broker side, by id, read from NAFile; NAProblems are the
	// rows of that file that do not hold up.
	NA         map[string]NotApplicable
	NAFile     string
	NAProblems []NAProblem
}

// Lookup returns the statement with the given id.
func (s *Spec) Lookup(id string) (Statement, bool) {
	i, ok := s.byID[id]
	if !ok {
		return Statement{}, false
	}
	return s.Statements[i], true
}

// Has reports whether id is one of the spec's statements.
func (s *Spec) Has(id string) bool {
	_, ok := s.byID[id]
	return ok
}

// Specs holds the statement lists of both versions.
type Specs struct {
	V311, V5 *Spec
}

// For returns the list of version v (nil for Unversioned).
func (ss *Specs) For(v Version) *Spec {
	switch v {
	case V311:
		return ss.V311
	case V5:
		return ss.V5
	}
	return nil
}

//go:embed testdata/mqtt-3.1.1-normative.tsv testdata/mqtt-5.0-normative.tsv
//go:embed testdata/not-applicable-3.1.1.tsv testdata/not-applicable-5.0.tsv
var specFiles embed.FS

const specDir = "internal/conformance/testdata"

// LoadSpecs returns the statement lists vendored in
// internal/conformance/testdata (embedded in the package), each with its
// not-applicable list (not-applicable-3.1.1.tsv, not-applicable-5.0.tsv).
func LoadSpecs() (*Specs, error) {
	v3, err := loadSpec("mqtt-3.1.1-normative.tsv", V311, 141)
	if err != nil {
		return nil, err
	}
	v5, err := loadSpec("mqtt-5.0-normative.tsv", V5, 251)
	if err != nil {
		return nil, err
	}
	return &Specs{V311: v3, V5: v5}, nil
}

func loadSpec(name string, v Version, rows int) (*Spec, error) {
	data, err := specFiles.ReadFile("testdata/" + name)
	if err != nil {
		return nil, err
	}
	s, err := ParseSpec(string(data), v)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", specDir, name, err)
	}
	s.File = specDir + "/" + name
	if len(s.Statements) != rows {
		return nil, fmt.Errorf("%s: %d statements, want %d", s.File, len(s.Statements), rows)
	}
	if err := loadNotApplicable(s); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseSpec parses a statement list: tab-separated id, section, who and
// summary, with a header line.
func ParseSpec(data string, v Version) (*Spec, error) {
	s := &Spec{Version: v, byID: map[string]int{}}
	sc := bufio.NewScanner(strings.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 {
			if text != "id\tsection\twho\tsummary" {
				return nil, fmt.Errorf("line 1: header %q, want id, section, who, summary", text)
			}
			continue
		}
		if text == "" {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: %d fields, want 4", line, len(f))
		}
		st := Statement{ID: f[0], Section: f[1], Who: f[2], Summary: f[3]}
		if !wellFormedID.MatchString(st.ID) {
			return nil, fmt.Errorf("line %d: malformed id %q", line, st.ID)
		}
		switch st.Who {
		case "codec", "server", "client", "both":
		default:
			return nil, fmt.Errorf("line %d: who %q, want codec, server, client or both", line, st.Who)
		}
		if _, dup := s.byID[st.ID]; dup {
			return nil, fmt.Errorf("line %d: duplicate id %s", line, st.ID)
		}
		s.byID[st.ID] = len(s.Statements)
		s.Statements = append(s.Statements, st)
	}
	return s, sc.Err()
}
