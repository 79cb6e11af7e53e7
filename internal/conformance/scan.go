package conformance

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Hit is one spec tag found in the code: a normative id ("MQTT-3.1.2-24")
// or a rule without one ("noid:dup-prop"), in a comment or a string.
type Hit struct {
	File    string  // slash-separated path relative to the module root
	Line    int     // 1-based line of the id
	Version Version // the version the tag names; Unversioned if none
	ID      string  // "MQTT-3.1.2-24", "noid:dup-prop"; a range is expanded into one Hit per id
	Raw     string  // the id as written, "MQTT-4.3.3-1..5", "MQTT-3.1.2.7"
	// Malformed: Raw is not of the form MQTT-<section>-<n>; ID is Raw.
	Malformed bool
	// BadNoID: a "noid:" not followed by a name ("noid: some words").
	BadNoID bool
	Test    bool // the file is a _test.go file: the hit counts as "tested in"
	String  bool // the tag is in a string literal, not a comment
	// Versioned: the id is an argument of versioned(v, v5id, v3id) in
	// package packet, which gave it its version.
	Versioned bool
	Text      string // the source line, trimmed, for checks and review
}

// IsNoID reports whether the hit is a "noid:" tag.
func (h Hit) IsNoID() bool { return strings.HasPrefix(h.ID, "noid:") }

// Pos returns "file:line".
func (h Hit) Pos() string { return h.File + ":" + strconv.Itoa(h.Line) }

var (
	// anyID finds everything that looks like an id, well-formed or not.
	anyID = regexp.MustCompile(`MQTT-[0-9][0-9A-Za-z.?\-]*`)
	// wellFormedID is the form every id of the lists has.
	wellFormedID = regexp.MustCompile(`^MQTT-[0-9]+(\.[0-9]+)*-[0-9]+$`)
	// rangeID is "MQTT-4.3.3-1..5" (or "..-5").
	rangeID = regexp.MustCompile(`^(MQTT-[0-9]+(?:\.[0-9]+)*-)([0-9]+)\.\.-?([0-9]+)$`)
	// spacedRange follows an id: "MQTT-2.3.1-6 .. -7".
	spacedRange = regexp.MustCompile(`^\s*\.\.\s*-?([0-9]+)\b`)
	noID        = regexp.MustCompile(`noid:([a-z0-9][a-z0-9.\-]*[a-z0-9])?`)
	versionMark = regexp.MustCompile(`\bv[35]\b`)
)

// versionedFunc is the helper of package packet that picks an id by
// version: versioned(v Version, v5id, v3id string). Argument i of a call
// gets version versionedArgs[i]. TestVersionedSignature keeps this in step
// with packet/connect.go.
const versionedFunc = "versioned"

var versionedArgs = map[int]Version{1: V5, 2: V311}

// selfDir is this package: its sources hold ids as data (aliases, traps,
// messages), not as tags.
const selfDir = "internal/conformance"

// Scan finds every spec tag in the module rooted at root: all .go files,
// test files included, except those under testdata, vendor, node_modules,
// directories beginning with "." or "_", bench/ and any other directory
// holding its own go.mod (a separate module), and this package. Hits are sorted by file and
// line.
func Scan(root string) ([]Hit, error) {
	var hits []Hit
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			name := d.Name()
			if name == "testdata" || name == "vendor" || name == "node_modules" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || rel == "bench" || rel == selfDir {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a separate module
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h, err := ScanFile(rel, src)
		if err != nil {
			return err
		}
		hits = append(hits, h...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortHits(hits)
	return hits, nil
}

// SortHits sorts hits by file, line, version and id, the order of the
// matrix.
func SortHits(hits []Hit) {
	sort.SliceStable(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.ID < b.ID
	})
}

// ScanFile finds the spec tags in one Go source file; rel is its
// slash-separated path relative to the module root.
func ScanFile(rel string, src []byte) ([]Hit, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("conformance: %v", err)
	}
	s := &fileScan{rel: rel, test: strings.HasSuffix(rel, "_test.go"), seen: map[Hit]bool{},
		lines: strings.Split(string(src), "\n")}

	for _, cg := range f.Comments {
		var text strings.Builder
		var segs []segment
		for _, c := range cg.List {
			body := c.Text[2:]
			if strings.HasPrefix(c.Text, "/*") {
				body = strings.TrimSuffix(body, "*/")
			}
			if text.Len() > 0 {
				text.WriteByte('\n')
			}
			segs = append(segs, segment{off: text.Len(), line: fset.Position(c.Pos()).Line})
			text.WriteString(body)
		}
		s.text(text.String(), segs, Unversioned, false, false)
	}

	// The arguments of versioned(v, v5id, v3id) take their version from
	// their position.
	ctx := map[*ast.BasicLit]Version{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 3 {
			return true
		}
		var name string
		switch fn := call.Fun.(type) {
		case *ast.Ident:
			name = fn.Name
		case *ast.SelectorExpr:
			name = fn.Sel.Name
		}
		if name != versionedFunc {
			return true
		}
		for i, v := range versionedArgs {
			if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				ctx[lit] = v
			}
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		val, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		line := fset.Position(lit.Pos()).Line
		if strings.HasPrefix(lit.Value, "`") {
			// A raw string: offsets in val are offsets in the source
			// (but for carriage returns, which Unquote drops), so lines
			// can be counted in val.
			s.text(val, []segment{{0, line}}, Unversioned, true, false)
			return true
		}
		v, isArg := ctx[lit]
		// An interpreted string sits on one line: every offset maps to it.
		s.text(val, []segment{{0, line}}, v, true, isArg)
		return true
	})
	return s.hits, nil
}

// A segment maps text offsets from off on to source lines from line on
// (counting newlines in the text).
type segment struct {
	off, line int
}

type fileScan struct {
	rel   string
	test  bool
	hits  []Hit
	seen  map[Hit]bool
	lines []string
}

func (s *fileScan) add(h Hit) {
	h.File, h.Test = s.rel, s.test
	if h.Line >= 1 && h.Line <= len(s.lines) {
		h.Text = strings.TrimSpace(s.lines[h.Line-1])
	}
	if !s.seen[h] {
		s.seen[h] = true
		s.hits = append(s.hits, h)
	}
}

// text finds the tags in text (a comment group or a string). ctx is the
// version of ids with no version mark of their own.
func (s *fileScan) text(text string, segs []segment, ctx Version, inString, versioned bool) {
	lineAt := func(off int) int {
		i := sort.Search(len(segs), func(i int) bool { return segs[i].off > off }) - 1
		if i < 0 {
			i = 0
		}
		return segs[i].line + strings.Count(text[segs[i].off:off], "\n")
	}
	for _, m := range anyID.FindAllStringIndex(text, -1) {
		if !inString && quoted(text, m[0]) {
			continue
		}
		raw := strings.TrimRight(text[m[0]:m[1]], ".-")
		end := m[0] + len(raw)
		v := versionAt(text, m[0])
		if v == Unversioned {
			v = ctx
		}
		h := Hit{Line: lineAt(m[0]), Version: v, Raw: raw, String: inString, Versioned: versioned}
		switch {
		case wellFormedID.MatchString(raw):
			if r := spacedRange.FindStringSubmatch(text[end:]); r != nil {
				prefix, first := raw[:strings.LastIndexByte(raw, '-')+1], raw[strings.LastIndexByte(raw, '-')+1:]
				h.Raw = raw + strings.TrimRight(r[0], " ")
				s.expand(h, prefix, first, r[1])
				continue
			}
			h.ID = raw
			s.add(h)
		case rangeID.MatchString(raw):
			r := rangeID.FindStringSubmatch(raw)
			s.expand(h, r[1], r[2], r[3])
		default:
			h.ID, h.Malformed = raw, true
			s.add(h)
		}
	}
	for _, m := range noID.FindAllStringSubmatchIndex(text, -1) {
		if !inString && quoted(text, m[0]) {
			continue
		}
		h := Hit{Line: lineAt(m[0]), Version: versionAt(text, m[0]), String: inString, Versioned: versioned}
		if h.Version == Unversioned {
			h.Version = ctx
		}
		if m[2] < 0 && strings.HasPrefix(text[m[1]:], "...") {
			continue // "noid:..." describes the scheme, as in packet.ProtocolError
		}
		if m[2] < 0 {
			h.ID, h.BadNoID = "noid:", true
			end := min(len(text), m[1]+20)
			h.Raw = strings.SplitN(text[m[0]:end], "\n", 2)[0]
		} else {
			h.ID = text[m[0]:m[1]]
			h.Raw = h.ID
		}
		s.add(h)
	}
}

// quoted reports whether offset off of a comment lies between double
// quotes on its line: an example of the tag syntax ("[v5 MQTT-3.3.1-4]",
// e.g. "v5 MQTT-2.1.3-1"), not a tag.
func quoted(text string, off int) bool {
	start := strings.LastIndexByte(text[:off], '\n') + 1
	end := strings.IndexByte(text[off:], '\n')
	if end < 0 {
		end = len(text)
	} else {
		end += off
	}
	return strings.Count(text[start:off], `"`)%2 == 1 && strings.Contains(text[off:end], `"`)
}

// expand adds one hit per id of the range prefix+first .. prefix+last.
// A range that does not count up (or is absurdly long) is malformed.
func (s *fileScan) expand(h Hit, prefix, first, last string) {
	a, _ := strconv.Atoi(first)
	b, _ := strconv.Atoi(last)
	if b <= a || b-a > 30 {
		h.ID, h.Malformed = h.Raw, true
		s.add(h)
		return
	}
	for n := a; n <= b; n++ {
		h.ID = prefix + strconv.Itoa(n)
		s.add(h)
	}
}

// versionAt returns the version that applies to the id at offset off of
// text: inside a bracket run "[...]", the last "v3" or "v5" between the
// opening bracket and the id ("[v5 MQTT-3.8.3-3 MQTT-3.8.3-4]"); outside
// one, a "v3" or "v5" right before the id, with only spaces between
// ("v5 MQTT-3.3.1-4", as in Spec strings).
func versionAt(text string, off int) Version {
	before := text[:off]
	open, closed := strings.LastIndexByte(before, '['), strings.LastIndexByte(before, ']')
	if open > closed && strings.IndexByte(text[off:], ']') >= 0 {
		marks := versionMark.FindAllStringIndex(before[open:], -1)
		for i := len(marks) - 1; i >= 0; i-- {
			m := before[open+marks[i][0] : open+marks[i][1]]
			if end := open + marks[i][1]; end < len(before) && before[end] == '.' {
				continue // "v3.1.1": a version number, not a mark
			}
			return markVersion(m)
		}
		return Unversioned
	}
	t := strings.TrimRight(before, " \t\n")
	if len(t) < 2 || len(t) == len(before) {
		return Unversioned
	}
	m := t[len(t)-2:]
	if m != "v3" && m != "v5" {
		return Unversioned
	}
	if len(t) > 2 {
		if c := t[len(t)-3]; c == '_' || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			return Unversioned
		}
	}
	return markVersion(m)
}

func markVersion(m string) Version {
	if m == "v3" {
		return V311
	}
	return V5
}
