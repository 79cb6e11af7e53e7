package conformance

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// GenerateCommand regenerates CONFORMANCE.md; run it from the module root.
// (A test flag rather than a command: the package stays a single one, and
// TestMatrix, which checks the file is up to date, is the generator.)
const GenerateCommand = "go test ./internal/conformance -run TestMatrix -update"

// Row is one normative statement with the tags that cite it.
type Row struct {
	Statement
	Enforced []Hit  // tags in non-test files
	Tested   []Hit  // tags in _test.go files
	NA       string // the reason the statement is not applicable to the broker side, "" if it is
}

// Broker reports whether the statement binds the broker side: the server,
// the codec, or both sides.
func (r Row) Broker() bool { return r.Who != "client" }

// Gap reports whether the statement binds the broker side, is not listed
// as not applicable and no tag cites it.
func (r Row) Gap() bool {
	return r.Broker() && r.NA == "" && len(r.Enforced) == 0 && len(r.Tested) == 0
}

// Done reports whether a broker-side statement is enforced and tested:
// cited by a tag in non-test code and by one in a test.
func (r Row) Done() bool { return len(r.Enforced) > 0 && len(r.Tested) > 0 }

// Silent reports whether the statement binds the broker side and is
// neither enforced and tested nor listed as not applicable: the matrix
// says nothing about whether the broker keeps it. TestNoSilentRows fails
// on every one.
func (r Row) Silent() bool { return r.Broker() && r.NA == "" && !r.Done() }

// NoIDRow is one rule without a normative id and the tags that name it.
type NoIDRow struct {
	ID       string // "noid:dup-prop"
	Versions []Version
	Enforced []Hit
	Tested   []Hit
}

// Untagged is a hit without a version mark and what it was counted as.
type Untagged struct {
	Hit    Hit
	Claims []Claim
}

// Matrix is the conformance matrix of the module: for each version, every
// statement with the tags citing it.
type Matrix struct {
	Specs    *Specs
	Rows     map[Version][]Row
	NoIDs    []NoIDRow
	Untagged []Untagged
	Problems []Problem
	// NAProblems are the problems of the not-applicable files: their own
	// rows' (Spec.NAProblems) and statements listed as not applicable
	// that the broker's code cites.
	NAProblems []NAProblem
}

// Build resolves the hits against the statement lists.
func Build(ss *Specs, hits []Hit) *Matrix {
	m := &Matrix{Specs: ss, Rows: map[Version][]Row{}}
	index := map[Claim]*Row{}
	for _, v := range []Version{V311, V5} {
		spec := ss.For(v)
		rows := make([]Row, len(spec.Statements))
		for i, st := range spec.Statements {
			rows[i].Statement = st
			rows[i].NA = spec.NA[st.ID].Reason
		}
		m.Rows[v] = rows
		for i := range rows {
			index[Claim{v, rows[i].ID}] = &rows[i]
		}
	}
	noids := map[string]*NoIDRow{}
	for _, h := range hits {
		claims, p := ss.Resolve(h)
		if p != nil {
			m.Problems = append(m.Problems, *p)
		}
		if h.IsNoID() {
			if h.BadNoID {
				continue
			}
			r := noids[h.ID]
			if r == nil {
				r = &NoIDRow{ID: h.ID}
				noids[h.ID] = r
			}
			if h.Version != Unversioned && !containsVersion(r.Versions, h.Version) {
				r.Versions = append(r.Versions, h.Version)
			}
			if h.Test {
				r.Tested = append(r.Tested, h)
			} else {
				r.Enforced = append(r.Enforced, h)
			}
			continue
		}
		if h.Version == Unversioned {
			m.Untagged = append(m.Untagged, Untagged{h, claims})
		}
		for _, c := range claims {
			r := index[c]
			if r == nil {
				continue
			}
			if h.Test {
				r.Tested = append(r.Tested, h)
			} else {
				r.Enforced = append(r.Enforced, h)
			}
		}
	}
	for _, r := range noids {
		sort.Slice(r.Versions, func(i, j int) bool { return r.Versions[i] < r.Versions[j] })
		m.NoIDs = append(m.NoIDs, *r)
	}
	sort.Slice(m.NoIDs, func(i, j int) bool { return m.NoIDs[i].ID < m.NoIDs[j].ID })
	m.NAProblems = append(append(m.NAProblems, ss.V311.NAProblems...), ss.V5.NAProblems...)
	m.NAProblems = append(m.NAProblems, m.checkNotApplicable()...)
	return m
}

// Silent returns the ids of the silent rows of version v (see
// Row.Silent), in spec order.
func (m *Matrix) Silent(v Version) []string {
	var ids []string
	for _, r := range m.Rows[v] {
		if r.Silent() {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func containsVersion(vs []Version, v Version) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// Counts summarises the rows of one version.
type Counts struct {
	Statements, Broker, Client int
	// Of the broker-side statements: NotApplicable are listed as not
	// applicable; the others are counted by their tags (Enforced, Tested,
	// Both, EnforcedOnly, TestedOnly, Gaps). Silent = EnforcedOnly +
	// TestedOnly + Gaps.
	NotApplicable, Silent                  int
	Enforced, Tested, Both, Gaps           int
	EnforcedOnly, TestedOnly, ClientTagged int
}

// Count returns the summary numbers of version v.
func (m *Matrix) Count(v Version) Counts {
	var c Counts
	for _, r := range m.Rows[v] {
		c.Statements++
		if !r.Broker() {
			c.Client++
			if len(r.Enforced)+len(r.Tested) > 0 {
				c.ClientTagged++
			}
			continue
		}
		c.Broker++
		if r.NA != "" {
			c.NotApplicable++
			continue
		}
		if r.Silent() {
			c.Silent++
		}
		e, t := len(r.Enforced) > 0, len(r.Tested) > 0
		switch {
		case e && t:
			c.Enforced++
			c.Tested++
			c.Both++
		case e:
			c.Enforced++
			c.EnforcedOnly++
		case t:
			c.Tested++
			c.TestedOnly++
		default:
			c.Gaps++
		}
	}
	return c
}

// Generate scans the module rooted at root and returns CONFORMANCE.md and
// the tag problems found on the way.
func Generate(root string) ([]byte, []Problem, error) {
	ss, err := LoadSpecs()
	if err != nil {
		return nil, nil, err
	}
	hits, err := Scan(root)
	if err != nil {
		return nil, nil, err
	}
	m := Build(ss, hits)
	var b bytes.Buffer
	m.WriteMarkdown(&b)
	return b.Bytes(), m.Problems, nil
}

// sectionTitles names the sections used to group ids (the x.y of
// MQTT-x.y.z-n) where both versions agree on the title.
var sectionTitles = map[string]string{
	"1.5":  "Data representation",
	"3.1":  "CONNECT",
	"3.2":  "CONNACK",
	"3.3":  "PUBLISH",
	"3.4":  "PUBACK",
	"3.5":  "PUBREC",
	"3.6":  "PUBREL",
	"3.7":  "PUBCOMP",
	"3.8":  "SUBSCRIBE",
	"3.9":  "SUBACK",
	"3.10": "UNSUBSCRIBE",
	"3.11": "UNSUBACK",
	"3.12": "PINGREQ",
	"3.13": "PINGRESP",
	"3.14": "DISCONNECT",
	"3.15": "AUTH",
	"4.2":  "Network connections",
	"4.3":  "Quality of Service levels and protocol flows",
	"4.4":  "Message delivery retry",
	"4.5":  "Message receipt",
	"4.6":  "Message ordering",
	"4.7":  "Topic Names and Topic Filters",
	"6":    "Using WebSocket as a network transport",
	"7":    "Conformance",
}

// versionTitles are the titles that differ between the versions.
var versionTitles = map[Version]map[string]string{
	V311: {
		"2.2": "Fixed header",
		"2.3": "Variable header (Packet Identifier)",
		"4.1": "Storing state",
		"4.8": "Handling errors",
		"7.1": "Conformance Targets",
	},
	V5: {
		"2.1":  "Structure of an MQTT Control Packet",
		"2.2":  "Variable Header (Packet Identifier, Properties)",
		"4.1":  "Session State",
		"4.8":  "Subscriptions",
		"4.9":  "Flow Control",
		"4.12": "Enhanced authentication",
		"4.13": "Handling errors",
	},
}

// group returns the x.y part of an id ("3.1" for MQTT-3.1.2-4; "6" for
// MQTT-6.0.0-1) and its title.
func group(v Version, id string) (string, string) {
	s := strings.TrimPrefix(id, "MQTT-")
	s = s[:strings.LastIndexByte(s, '-')]
	parts := strings.Split(s, ".")
	key := parts[0]
	if len(parts) > 1 && parts[1] != "0" {
		key += "." + parts[1]
	}
	if t, ok := versionTitles[v][key]; ok {
		return key, t
	}
	return key, sectionTitles[key]
}

// WriteMarkdown writes the matrix as CONFORMANCE.md.
func (m *Matrix) WriteMarkdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	versions := []Version{V311, V5}
	c := map[Version]Counts{V311: m.Count(V311), V5: m.Count(V5)}

	p("# MQTT conformance matrix\n\n")
	p("<!-- Generated from the spec tags in the code; do not edit. Regenerate from the repository root with:\n")
	p("     %s\n", GenerateCommand)
	p("     TestMatrix in internal/conformance fails when this file is out of date. -->\n\n")
	p("Generated by `%s` from the spec tags in the code; do not edit by hand.\n\n", GenerateCommand)
	p("Every numbered normative statement of MQTT 3.1.1 and 5.0, from `%s` and `%s`\n", m.Specs.V311.File, m.Specs.V5.File)
	p("(our one-line paraphrases; read the standard for the exact text), with the places in the code that cite it\n")
	p("with a spec tag such as `[v5 MQTT-3.1.2-22]`, `[v3 MQTT-3.1.2-24]` or a Spec string `\"v5 MQTT-3.3.2-9\"`.\n")
	p("**Enforced in** lists tags in non-test files, **tested in** tags in `_test.go` files. A tag is its author's\n")
	p("claim that the code there handles the statement; `go test ./internal/conformance` checks that every tag names\n")
	p("an id that exists in the version it cites, not that the code is right. **who** says whom the statement binds:\n")
	p("`codec` (a wire-format rule checked on one packet), `server`, `client`, or `both` sides.\n\n")

	p("## Summary\n\n")
	p("Broker-side statements are those whose **who** is `server`, `codec` or `both`. Client-only statements are not\n")
	p("applicable yet: the client library does not exist. A broker-side statement that cannot apply to Tern's broker\n")
	p("side is listed, with the reason, in `%s` or `%s`. Every other broker-side statement\n", m.Specs.V311.NAFile, m.Specs.V5.NAFile)
	p("must be enforced and tested (a tag in non-test code and one in a test); one that is not is **silent**, and\n")
	p("`TestNoSilentRows` in internal/conformance fails on it.\n\n")
	p("| | MQTT 3.1.1 | MQTT 5.0 |\n| --- | ---: | ---: |\n")
	row := func(label string, f func(Counts) int) {
		p("| %s | %d | %d |\n", label, f(c[V311]), f(c[V5]))
	}
	row("normative statements", func(c Counts) int { return c.Statements })
	row("broker-side (server, codec, both)", func(c Counts) int { return c.Broker })
	row("&nbsp;&nbsp;not applicable (with a reason)", func(c Counts) int { return c.NotApplicable })
	row("&nbsp;&nbsp;**silent** (neither enforced and tested nor not applicable)", func(c Counts) int { return c.Silent })
	row("&nbsp;&nbsp;enforced (tag in non-test code)", func(c Counts) int { return c.Enforced })
	row("&nbsp;&nbsp;tested (tag in a test)", func(c Counts) int { return c.Tested })
	row("&nbsp;&nbsp;enforced and tested", func(c Counts) int { return c.Both })
	row("&nbsp;&nbsp;enforced, not tested", func(c Counts) int { return c.EnforcedOnly })
	row("&nbsp;&nbsp;tested, not enforced", func(c Counts) int { return c.TestedOnly })
	row("&nbsp;&nbsp;**no tag at all (gaps)**", func(c Counts) int { return c.Gaps })
	row("client-only (not applicable yet)", func(c Counts) int { return c.Client })
	row("&nbsp;&nbsp;client-only but tagged (checked by the broker or the transport)", func(c Counts) int { return c.ClientTagged })
	p("\n")

	p("By whom the statement binds (enforced / tested / no tag / not applicable, of all):\n\n")
	p("| who | MQTT 3.1.1 | MQTT 5.0 |\n| --- | --- | --- |\n")
	for _, who := range []string{"codec", "server", "both", "client"} {
		p("| %s |", who)
		for _, v := range versions {
			var n, e, t, g, na int
			for _, r := range m.Rows[v] {
				if r.Who != who {
					continue
				}
				n++
				switch {
				case r.NA != "":
					na++
				case len(r.Enforced)+len(r.Tested) == 0:
					g++
				}
				if len(r.Enforced) > 0 {
					e++
				}
				if len(r.Tested) > 0 {
					t++
				}
			}
			p(" %d / %d / %d / %d of %d |", e, t, g, na, n)
		}
		p("\n")
	}
	p("\n")

	for _, v := range versions {
		p("### Gaps in MQTT %s: broker-side statements with no tag (%d)\n\n", v, c[v].Gaps)
		m.writeGroups(w, v, func(r Row) bool { return r.Gap() }, true)
	}
	for _, v := range versions {
		p("### MQTT %s: enforced, not tested (%d)\n\n", v, c[v].EnforcedOnly)
		m.writeGroups(w, v, func(r Row) bool { return r.Silent() && len(r.Enforced) > 0 && len(r.Tested) == 0 }, false)
		p("### MQTT %s: tested, not enforced (%d)\n\n", v, c[v].TestedOnly)
		m.writeGroups(w, v, func(r Row) bool { return r.Silent() && len(r.Enforced) == 0 && len(r.Tested) > 0 }, false)
	}
	for _, v := range versions {
		p("### MQTT %s: not applicable to the broker side (%d)\n\n", v, c[v].NotApplicable)
		p("From `%s`.\n\n", m.Specs.For(v).NAFile)
		m.writeNA(w, v)
	}
	for _, v := range versions {
		p("### MQTT %s: client-only, not applicable to the broker yet (%d)\n\n", v, c[v].Client)
		m.writeGroups(w, v, func(r Row) bool { return !r.Broker() }, false)
	}

	if len(m.NAProblems) > 0 {
		p("## Not-applicable list problems (%d)\n\n", len(m.NAProblems))
		p("`go test ./internal/conformance` fails until these are fixed.\n\n")
		for _, pr := range m.NAProblems {
			p("- %s\n", escape(pr.String()))
		}
		p("\n")
	}

	if len(m.Problems) > 0 {
		p("## Tag problems (%d)\n\n", len(m.Problems))
		p("`go test ./internal/conformance` fails until these are fixed.\n\n")
		for _, pr := range m.Problems {
			p("- %s: %s\n", link(pr.Hit.File), escape(pr.Msg))
		}
		p("\n")
	}

	p("## Tags without a version (%d)\n\n", len(m.Untagged))
	p("Ids tagged without `v3`/`v5`. They count for the version they exist in, for both where the id names the same\n")
	p("rule in 3.1.1 and 5.0 (`sameRule` in internal/conformance/check.go), or for the version of the package's\n")
	p("convention (`packageVersion` there: topic's messages quote MQTT 5.0 ids).\n\n")
	if len(m.Untagged) > 0 {
		p("| where | id | counted for |\n| --- | --- | --- |\n")
		for _, u := range m.Untagged {
			var cl []string
			for _, c := range u.Claims {
				cl = append(cl, c.Version.String())
			}
			counted := strings.Join(cl, ", ")
			if counted == "" {
				counted = "nothing (a tag problem)"
			}
			p("| %s | %s | %s |\n", link(u.Hit.File), u.Hit.Raw, counted)
		}
		p("\n")
	}

	p("## Rules without a normative id (%d)\n\n", len(m.NoIDs))
	p("MUST-level rules the standards state without a numbered id, tagged `noid:<name>` (e.g. `[v5 noid:dup-prop]`,\n")
	p("or a Spec string `\"v5 noid:sub-qos3\"`).\n\n")
	p("| tag | versions | enforced in | tested in |\n| --- | --- | --- | --- |\n")
	for _, r := range m.NoIDs {
		var vs []string
		for _, v := range r.Versions {
			vs = append(vs, v.String())
		}
		ver := strings.Join(vs, ", ")
		if ver == "" {
			ver = "unversioned"
		}
		p("| `%s` | %s | %s | %s |\n", r.ID, ver, cell(r.Enforced, "—"), cell(r.Tested, "—"))
	}
	p("\n")

	for _, v := range versions {
		spec := m.Specs.For(v)
		p("## MQTT %s (%d statements)\n\n", v, len(spec.Statements))
		p("| id | section | who | summary | enforced in | tested in |\n| --- | --- | --- | --- | --- | --- |\n")
		for _, r := range m.Rows[v] {
			none := "**none**"
			if !r.Broker() {
				none = "n/a (client)"
			}
			enf, tst := cell(r.Enforced, none), cell(r.Tested, none)
			switch {
			case r.NA != "":
				// Shared code (packet, topic, transport) may cite it for
				// its client-side users; the broker's own code may not.
				enf, tst = "n/a: "+escape(r.NA), cell(r.Tested, "n/a")
				if len(r.Enforced) > 0 {
					enf += "; cited in " + cell(r.Enforced, "")
				}
			case !r.Gap() && r.Broker():
				if len(r.Enforced) == 0 {
					enf = "—"
				}
				if len(r.Tested) == 0 {
					tst = "—"
				}
			}
			p("| <a id=\"%s-%s\"></a>%s | %s | %s | %s | %s | %s |\n",
				v.Tag(), r.ID, r.ID, r.Section, r.Who, escape(r.Summary), enf, tst)
		}
		p("\n")
	}
}

// writeNA writes the not-applicable statements of version v, grouped by
// section, each with its reason.
func (m *Matrix) writeNA(w io.Writer, v Version) {
	var last string
	any := false
	for _, r := range m.Rows[v] {
		if r.NA == "" {
			continue
		}
		any = true
		g, t := group(v, r.ID)
		if g != last {
			head := g
			if t != "" {
				head += " " + t
			}
			fmt.Fprintf(w, "- **%s**\n", head)
			last = g
		}
		fmt.Fprintf(w, "  - [%s](#%s-%s) (%s): %s\n", r.ID, v.Tag(), r.ID, r.Who, escape(r.NA))
	}
	if !any {
		fmt.Fprintf(w, "None.\n")
	}
	fmt.Fprintf(w, "\n")
}

// writeGroups writes the rows of version v that keep selects, grouped by
// section: with summaries as a list, or as one line of ids per section.
func (m *Matrix) writeGroups(w io.Writer, v Version, keep func(Row) bool, long bool) {
	var order []string
	byGroup := map[string][]Row{}
	titles := map[string]string{}
	for _, r := range m.Rows[v] {
		if !keep(r) {
			continue
		}
		g, t := group(v, r.ID)
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
			titles[g] = t
		}
		byGroup[g] = append(byGroup[g], r)
	}
	if len(order) == 0 {
		fmt.Fprintf(w, "None.\n\n")
		return
	}
	for _, g := range order {
		head := g
		if t := titles[g]; t != "" {
			head += " " + t
		}
		rows := byGroup[g]
		if long {
			fmt.Fprintf(w, "- **%s** (%d)\n", head, len(rows))
			for _, r := range rows {
				fmt.Fprintf(w, "  - [%s](#%s-%s) (%s): %s\n", r.ID, v.Tag(), r.ID, r.Who, escape(r.Summary))
			}
			continue
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, fmt.Sprintf("[%s](#%s-%s)", strings.TrimPrefix(r.ID, "MQTT-"), v.Tag(), r.ID))
		}
		fmt.Fprintf(w, "- **%s** (%d): %s\n", head, len(rows), strings.Join(ids, ", "))
	}
	fmt.Fprintf(w, "\n")
}

// cell lists the files of hits, each once, as Markdown links relative to
// the module root, with the number of tags when there are several:
// "[broker/conn.go](broker/conn.go) (3)". Line numbers are left out on
// purpose, so that the file changes only when tags are added, removed or
// moved to another file, not whenever a tagged line moves.
func cell(hits []Hit, none string) string {
	if len(hits) == 0 {
		return none
	}
	var files []string
	count := map[string]int{}
	for _, h := range hits {
		if count[h.File] == 0 {
			files = append(files, h.File)
		}
		count[h.File]++
	}
	parts := make([]string, 0, len(files))
	for _, f := range files {
		part := link(f)
		if n := count[f]; n > 1 {
			part += " (" + strconv.Itoa(n) + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// link returns a Markdown link to a file relative to the module root;
// without a line number (see cell).
func link(file string) string {
	return "[" + file + "](" + file + ")"
}

// escape makes text safe inside a Markdown table cell.
func escape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
