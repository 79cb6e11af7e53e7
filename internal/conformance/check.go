package conformance

import (
	"fmt"
	"regexp"
	"strings"
)

// Claim is what a hit claims once resolved: the statement ID of Version.
type Claim struct {
	Version Version
	ID      string
}

// Problem is a spec tag that does not hold up: an id that does not exist in
// the version it cites, a malformed id, or an id without a version where
// the two versions differ.
type Problem struct {
	Hit Hit
	Msg string // what is wrong and how to fix it
}

func (p Problem) String() string { return p.Hit.Pos() + ": " + p.Msg }

// sameRule lists the ids that exist in both lists and name the same rule
// in 3.1.1 and 5.0, judged from the two summaries (strictly: where one
// version adds to the rule or splits it differently, the id is left out).
// An unversioned tag citing one of these counts for both versions; an
// unversioned tag citing any other id of both lists is ambiguous and fails
// TestTags.
var sameRule = map[string]bool{
	"MQTT-3.1.0-1":  true, // the client's first packet is CONNECT
	"MQTT-3.1.0-2":  true, // a second CONNECT is a protocol violation
	"MQTT-3.1.2-3":  true, // the reserved CONNECT flag is 0
	"MQTT-3.1.3-1":  true, // CONNECT payload order
	"MQTT-3.1.3-2":  true, // session state is keyed by ClientId
	"MQTT-3.1.3-3":  true, // the ClientId is present, first in the payload
	"MQTT-3.1.3-4":  true, // the ClientId is a UTF-8 string
	"MQTT-3.1.3-5":  true, // 1-23 byte [0-9a-zA-Z] ClientIds are accepted
	"MQTT-3.3.1-1":  true, // a re-delivered PUBLISH has DUP=1
	"MQTT-3.3.1-2":  true, // DUP=0 on QoS 0
	"MQTT-3.3.1-3":  true, // outgoing DUP is not copied from the inbound one
	"MQTT-3.3.1-4":  true, // no QoS 3
	"MQTT-3.3.2-1":  true, // Topic Name first, a UTF-8 string
	"MQTT-3.3.2-2":  true, // no wildcards in a PUBLISH Topic Name
	"MQTT-3.3.2-3":  true, // the Topic Name sent matches the subscription's filter
	"MQTT-3.3.4-1":  true, // the PUBLISH receiver answers as its QoS requires
	"MQTT-3.6.1-1":  true, // PUBREL flags 0010
	"MQTT-3.8.1-1":  true, // SUBSCRIBE flags 0010
	"MQTT-3.8.3-1":  true, // SUBSCRIBE filters are UTF-8 strings
	"MQTT-3.8.4-1":  true, // every SUBSCRIBE gets a SUBACK
	"MQTT-3.8.4-2":  true, // the SUBACK carries the SUBSCRIBE's id
	"MQTT-3.9.3-1":  true, // SUBACK codes in filter order
	"MQTT-3.10.1-1": true, // UNSUBSCRIBE flags 0010
	"MQTT-3.10.3-1": true, // UNSUBSCRIBE filters are UTF-8 strings
	"MQTT-3.10.3-2": true, // an UNSUBSCRIBE has at least one filter
	"MQTT-3.10.4-1": true, // UNSUBSCRIBE filters compare character by character
	"MQTT-3.10.4-2": true, // no new messages for removed subscriptions
	"MQTT-3.10.4-3": true, // started QoS 1/2 deliveries are completed
	"MQTT-3.10.4-6": true, // several filters: one UNSUBACK
	"MQTT-3.12.4-1": true, // every PINGREQ gets a PINGRESP
	"MQTT-3.14.1-1": true, // DISCONNECT reserved flags are 0
	"MQTT-4.3.1-1":  true, // QoS 0 sender: QoS 0, DUP 0
	"MQTT-4.5.0-1":  true, // an owned message goes to every matching session
	"MQTT-4.5.0-2":  true, // the client acknowledges every PUBLISH
	"MQTT-4.6.0-1":  true, // resends in original order
	"MQTT-4.6.0-2":  true, // PUBACKs in receive order
	"MQTT-4.6.0-3":  true, // PUBRECs in receive order
	"MQTT-4.6.0-4":  true, // PUBRELs in PUBREC order
	"MQTT-4.7.2-1":  true, // filters starting with a wildcard do not match '$' topics
	"MQTT-4.7.3-1":  true, // names and filters are at least one character long
	"MQTT-4.7.3-2":  true, // names and filters contain no U+0000
	"MQTT-4.7.3-3":  true, // names and filters are at most 65535 bytes
	"MQTT-4.7.3-4":  true, // matching without normalisation
	"MQTT-6.0.0-1":  true, // WebSocket: binary frames only
	"MQTT-6.0.0-2":  true, // WebSocket: frames and packets need not align
	"MQTT-6.0.0-3":  true, // WebSocket: the client offers "mqtt"
	"MQTT-6.0.0-4":  true, // WebSocket: the server selects "mqtt"
}

// packageVersion gives the version of unversioned ids in the files of one
// package directory ("version-specific code" in the spec notes), where the
// id is part of an API whose text cannot carry a version mark.
var packageVersion = map[string]struct {
	v   Version
	why string
}{
	// topic.Error.Rule holds MQTT 5.0 ids ("MQTT-4.7.1-1") and its
	// messages print them as "[MQTT-4.7.1-1]"; its docs, tests and
	// examples repeat those messages (topic/doc.go: "Error messages quote
	// the MQTT 5.0 id").
	"topic": {V5, "topic's error messages quote MQTT 5.0 ids, see topic/doc.go"},
}

// aliases maps, per version, the malformed or superseded spellings the
// standards themselves print (see testdata/README.md and the spec notes'
// "Id anomalies") to the id of the lists.
var aliases = map[Version]map[string]string{
	V311: {
		"MQTT-3.1.2.7": "MQTT-3.1.2-7", // printed so in the 3.1.1 body
		"MQTT-3-8.3-4": "MQTT-3.8.3-4", // printed so in the 3.1.1 body
		"MQTT-1.4.0-1": "MQTT-1.5.3-1", // 3.1.1 Appendix B numbering
		"MQTT-1.4.0-2": "MQTT-1.5.3-2",
		"MQTT-1.4.0-3": "MQTT-1.5.3-3",
		"MQTT-4.1.0.1": "MQTT-4.1.0-1",
		"MQTT-4.3.1.1": "MQTT-4.3.1-1",
		"MQTT-4.3.2.1": "MQTT-4.3.2-1",
		"MQTT-4.3.2.2": "MQTT-4.3.2-2",
		"MQTT-6.0.0.1": "MQTT-6.0.0-1",
		"MQTT-6.0.0.2": "MQTT-6.0.0-2",
		"MQTT-6.0.0.3": "MQTT-6.0.0-3",
		"MQTT-6.0.0.4": "MQTT-6.0.0-4",
	},
	V5: {
		"MQTT-4.2-1": "MQTT-4.2.0-1", // the 5.0 body's spelling; Appendix B has 4.2.0-1
	},
}

// traps are ids that exist in a version but are known to be cited for a
// rule they do not name there, detected by words on the tagged line.
var traps = []struct {
	v     Version
	id    string
	words *regexp.Regexp
	msg   string
}{
	{V5, "MQTT-3.1.2-24", regexp.MustCompile(`(?i)keep.?alive`),
		"in 5.0, MQTT-3.1.2-24 is the client's Maximum Packet Size; the 1.5 x Keep Alive rule is [v5 MQTT-3.1.2-22] (it is MQTT-3.1.2-24 only in 3.1.1 and in 5.0 drafts)"},
}

// Resolve returns the statements a hit counts for and, if the tag is
// wrong, the problem. A wrong tag can still count for a statement when the
// intended id is certain (an alias); noid tags resolve to nothing.
func (ss *Specs) Resolve(h Hit) ([]Claim, *Problem) {
	prob := func(format string, args ...any) *Problem {
		return &Problem{Hit: h, Msg: fmt.Sprintf(format, args...)}
	}
	if h.IsNoID() {
		if h.BadNoID {
			return nil, prob("%q is not a noid tag: write noid:<name>, lowercase words joined by '-', e.g. [v5 noid:dup-prop]", h.Raw)
		}
		return nil, nil
	}
	if h.Version != Unversioned {
		return ss.resolveVersioned(h, h.Version)
	}

	// No version mark.
	in3, in5 := ss.V311.Has(h.ID), ss.V5.Has(h.ID)
	if in3 && in5 && sameRule[h.ID] {
		return []Claim{{V311, h.ID}, {V5, h.ID}}, nil
	}
	if pv, ok := packageVersion[pkgDir(h.File)]; ok {
		cl, p := ss.resolveVersioned(h, pv.v)
		if p != nil {
			p.Msg = fmt.Sprintf("unversioned ids in %s/ are %s ids (%s): %s", pkgDir(h.File), pv.v, pv.why, p.Msg)
		}
		return cl, p
	}
	switch {
	case in3 && in5:
		s3, _ := ss.V311.Lookup(h.ID)
		s5, _ := ss.V5.Lookup(h.ID)
		return nil, prob("%s has no version and means different rules in 3.1.1 (%q) and 5.0 (%q): tag it [v3 %s] or [v5 %s] (or, if the two rules are in fact the same, add the id to sameRule in internal/conformance/check.go)",
			h.ID, s3.Summary, s5.Summary, h.ID, h.ID)
	case in3:
		return []Claim{{V311, h.ID}}, nil
	case in5:
		return []Claim{{V5, h.ID}}, nil
	}
	for _, v := range []Version{V311, V5} {
		if to, ok := aliases[v][h.ID]; ok {
			return []Claim{{v, to}}, prob("%q is how the %s standard misprints %s: write [%s %s]", h.Raw, v, to, v.Tag(), to)
		}
	}
	if h.Malformed {
		return nil, prob("malformed id %q: write [v5 MQTT-<section>-<n>] or [v3 ...] with an id of %s or %s", h.Raw, ss.V5.File, ss.V311.File)
	}
	return nil, prob("%s is in neither statement list: use the right id (with its version) from %s or %s, a section reference like (MQTT 5 section 3.3.2.3.4), or a noid: tag",
		h.ID, ss.V5.File, ss.V311.File)
}

func (ss *Specs) resolveVersioned(h Hit, v Version) ([]Claim, *Problem) {
	spec, other := ss.For(v), ss.For(v.Other())
	prob := func(format string, args ...any) *Problem {
		return &Problem{Hit: h, Msg: fmt.Sprintf(format, args...)}
	}
	if spec.Has(h.ID) {
		for _, t := range traps {
			if t.v == v && t.id == h.ID && t.words.MatchString(h.Text) {
				return nil, prob("%s", t.msg)
			}
		}
		return []Claim{{v, h.ID}}, nil
	}
	if to, ok := aliases[v][h.ID]; ok {
		return []Claim{{v, to}}, prob("%q is how the %s standard misprints %s: write [%s %s]", h.Raw, v, to, v.Tag(), to)
	}
	if h.Malformed {
		return nil, prob("malformed id %q in a %s tag: use an id of %s, a section reference like (MQTT %s section 4.3.3), or a noid: tag",
			h.Raw, v.Tag(), spec.File, versionWord(v))
	}
	if s, ok := other.Lookup(h.ID); ok {
		return nil, prob("%s is not a %s id; it exists only in %s (%q): if the rule is that one, tag it [%s %s]; otherwise find the %s id in %s",
			h.ID, v, v.Other(), s.Summary, v.Other().Tag(), h.ID, v, spec.File)
	}
	hint := ""
	if v == V5 && strings.HasPrefix(h.ID, "MQTT-3.1.2-") || strings.HasPrefix(h.ID, "MQTT-7.") {
		hint = " (pre-standard 5.0 drafts numbered 3.1.2 up to -33 and had MQTT-7.x ids; the standard's numbering differs)"
	}
	return nil, prob("%s does not exist in %s%s: use the right id from %s, a section reference like (MQTT %s section 3.3.2.3.4), or a noid: tag",
		h.ID, v, hint, spec.File, versionWord(v))
}

func versionWord(v Version) string {
	if v == V311 {
		return "3.1.1"
	}
	return "5"
}

// pkgDir returns the directory of a slash-separated file path.
func pkgDir(file string) string {
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		return file[:i]
	}
	return "."
}

// Check resolves every hit and returns the problems, in hit order.
func (ss *Specs) Check(hits []Hit) []Problem {
	var out []Problem
	for _, h := range hits {
		if _, p := ss.Resolve(h); p != nil {
			out = append(out, *p)
		}
	}
	return out
}
