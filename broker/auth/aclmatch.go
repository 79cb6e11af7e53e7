package auth

import (
	"strings"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/topic"
)

// aclRule is one topic or pattern line, split into levels when loaded so
// that checks need not allocate.
type aclRule struct {
	filter string // as written, %u and %c included
	levels []aclLevel
	access access
	subst  bool // the filter has %u or %c
	line   int
}

type levelKind uint8

const (
	levelWord     levelKind = iota // a literal level
	levelPlus                      // '+'
	levelHash                      // '#'
	levelTemplate                  // a level with %u or %c
)

type aclLevel struct {
	kind  levelKind
	word  string    // levelWord
	parts []aclPart // levelTemplate
}

// aclPart is a piece of a template level: literal text, or a substitution.
type aclPart struct {
	text string
	sub  byte // 0 for text, 'u' for the username, 'c' for the client id
}

func newRule(filter string, acc access, subst bool) *aclRule {
	r := &aclRule{filter: filter, access: acc, subst: subst}
	for _, w := range strings.Split(filter, "/") {
		switch {
		case w == "+":
			r.levels = append(r.levels, aclLevel{kind: levelPlus})
		case w == "#":
			r.levels = append(r.levels, aclLevel{kind: levelHash})
		case subst && (strings.Contains(w, "%u") || strings.Contains(w, "%c")):
			r.levels = append(r.levels, aclLevel{kind: levelTemplate, parts: splitTemplate(w)})
		default:
			r.levels = append(r.levels, aclLevel{kind: levelWord, word: w})
		}
	}
	return r
}

// splitTemplate splits a level such as "dev-%c" into its parts.
func splitTemplate(w string) []aclPart {
	var parts []aclPart
	start := 0
	for i := 0; i+1 < len(w); i++ {
		if w[i] == '%' && (w[i+1] == 'u' || w[i+1] == 'c') {
			if i > start {
				parts = append(parts, aclPart{text: w[start:i]})
			}
			parts = append(parts, aclPart{sub: w[i+1]})
			i++
			start = i + 1
		}
	}
	if start < len(w) {
		parts = append(parts, aclPart{text: w[start:]})
	}
	return parts
}

// matchName reports whether the rule matches a topic name for client c.
func (r *aclRule) matchName(c *broker.ClientInfo, name string) bool {
	if !r.subst {
		return topic.Match(r.filter, name)
	}
	// The same algorithm as topic.Match, over pre-split levels.
	// [v5 MQTT-4.7.2-1] [v3 MQTT-4.7.2-1] no wildcard-first match of '$'.
	if len(name) > 0 && name[0] == '$' && (r.levels[0].kind == levelPlus || r.levels[0].kind == levelHash) {
		return false
	}
	for i := range r.levels {
		l := &r.levels[i]
		if l.kind == levelHash {
			return true
		}
		ne := strings.IndexByte(name, '/')
		nl := name
		if ne >= 0 {
			nl = name[:ne]
		}
		switch l.kind {
		case levelWord:
			if nl != l.word {
				return false
			}
		case levelTemplate:
			if !l.expandsTo(c, nl, i == 0) {
				return false
			}
		}
		last := i == len(r.levels)-1
		if ne < 0 {
			// The name is used up: only a trailing "/#" can still match.
			return last || (i+2 == len(r.levels) && r.levels[i+1].kind == levelHash)
		}
		if last {
			return false
		}
		name = name[ne+1:]
	}
	return false
}

// covers reports whether every topic name that filter matches is matched
// by the rule, for client c: see the ACLFile documentation.
func (r *aclRule) covers(c *broker.ClientInfo, filter string) bool {
	// [v5 MQTT-4.7.2-1] [v3 MQTT-4.7.2-1] a rule beginning with a wildcard
	// matches no '$' name, so it covers no filter that matches only such
	// names. (A filter beginning with a wildcard matches no '$' name
	// either, so it needs no special case.)
	if len(filter) > 0 && filter[0] == '$' && (r.levels[0].kind == levelPlus || r.levels[0].kind == levelHash) {
		return false
	}
	for i := range r.levels {
		l := &r.levels[i]
		if l.kind == levelHash {
			return true // covers the rest of the filter, even nothing
		}
		fe := strings.IndexByte(filter, '/')
		fl := filter
		if fe >= 0 {
			fl = filter[:fe]
		}
		if fl == "#" {
			// Only a rule '#' covers a filter '#', except that a filter
			// "#" equals "+/#", since every name has at least one level.
			return i == 0 && l.kind == levelPlus && len(r.levels) == 2 && r.levels[1].kind == levelHash
		}
		switch l.kind {
		case levelWord:
			if fl != l.word { // a filter '+' is never a rule's word
				return false
			}
		case levelTemplate:
			if fl == "+" || !l.expandsTo(c, fl, i == 0) {
				return false
			}
		}
		last := i == len(r.levels)-1
		if fe < 0 {
			// The filter is used up; a rule "a/#" still covers "a".
			return last || (i+2 == len(r.levels) && r.levels[i+1].kind == levelHash)
		}
		if last {
			return false
		}
		filter = filter[fe+1:]
	}
	return false
}

// expandsTo reports whether the template level, with c's username and
// client id substituted, is exactly s. A substitution that is empty,
// contains '/', '+' or '#', or puts a '$' at the start of the topic
// (first is true for a rule's first level) makes the level match nothing:
// client-chosen strings must not widen a pattern.
func (l *aclLevel) expandsTo(c *broker.ClientInfo, s string, first bool) bool {
	for j, p := range l.parts {
		v := p.text
		if p.sub != 0 {
			if p.sub == 'u' {
				v = c.Username
			} else {
				v = c.ClientID
			}
			if v == "" || strings.ContainsAny(v, "/+#") || (first && j == 0 && v[0] == '$') {
				return false
			}
		}
		if !strings.HasPrefix(s, v) {
			return false
		}
		s = s[len(v):]
	}
	return s == ""
}
