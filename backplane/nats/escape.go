package nats

import (
	"errors"
	"fmt"
	"strings"
)

// MQTT topic names and filters become NATS subjects under a prefix P:
//
//	P.t.L1.L2...   for a name whose first level does not start with '$'
//	P.d.L1.L2...   for one whose first level does (MQTT "$SYS/...")
//
// so that a filter starting with a wildcard ("#", "+/x") is subscribed under
// P.t only and never matches a '$' name [v5 MQTT-4.7.2-1], while "$SYS/#"
// is subscribed under P.d. Each level becomes one token, escaped with '~':
// the bytes NATS reserves or forbids ('.', '*', '>', whitespace and control
// characters, DEL) and '~' itself become "~" and two upper-case hex digits,
// and an empty level, which NATS does not allow, becomes a lone "~". A '+'
// level of a filter becomes '*', and a trailing '#' becomes '>' together
// with the subject of the filter without it ("a/#" matches "a" too).

const escapeChar = '~'

func mustEscape(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == escapeChar
}

const hexDigits = "0123456789ABCDEF"

// appendLevel appends the token for one topic level.
func appendLevel(dst []byte, level string) []byte {
	if level == "" {
		return append(dst, escapeChar)
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if mustEscape(c) {
			dst = append(dst, escapeChar, hexDigits[c>>4], hexDigits[c&15])
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

func root(prefix, first string) string {
	if strings.HasPrefix(first, "$") {
		return prefix + ".d"
	}
	return prefix + ".t"
}

// NameSubject returns the subject a message on topic name is published to.
func NameSubject(prefix, name string) string {
	first, _, _ := strings.Cut(name, "/")
	b := make([]byte, 0, len(prefix)+3+len(name)+8)
	b = append(b, root(prefix, first)...)
	for level := range strings.SplitSeq(name, "/") {
		b = append(b, '.')
		b = appendLevel(b, level)
	}
	return string(b)
}

// FilterSubjects returns the subjects to subscribe to for a (valid,
// non-shared) topic filter: one, or two for a filter ending in "/#".
func FilterSubjects(prefix, filter string) []string {
	levels := strings.Split(filter, "/")
	r := prefix + ".t"
	if l0 := levels[0]; l0 != "+" && l0 != "#" {
		r = root(prefix, l0)
	}
	b := []byte(r)
	var out []string
	for i, level := range levels {
		switch level {
		case "+":
			b = append(b, ".*"...)
		case "#":
			if i > 0 {
				out = append(out, string(b)) // "a/#" matches "a" [v5 MQTT-4.7.1-2]
			}
			b = append(b, ".>"...)
		default:
			b = append(b, '.')
			b = appendLevel(b, level)
		}
	}
	return append(out, string(b))
}

var errBadSubject = errors.New("backplane/nats: not a topic subject")

// SubjectTopic reverses NameSubject and FilterSubjects ('*' and '>' tokens
// read back as '+' and '#').
func SubjectTopic(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok || len(rest) < 3 || (rest[0] != 't' && rest[0] != 'd') || rest[1] != '.' {
		return "", fmt.Errorf("%w: %q", errBadSubject, subject)
	}
	var b strings.Builder
	for i, tok := range strings.Split(rest[2:], ".") {
		if i > 0 {
			b.WriteByte('/')
		}
		switch tok {
		case "*":
			b.WriteByte('+')
			continue
		case ">":
			b.WriteByte('#')
			continue
		case string(escapeChar):
			continue // empty level
		case "":
			return "", fmt.Errorf("%w: empty token in %q", errBadSubject, subject)
		}
		for j := 0; j < len(tok); j++ {
			c := tok[j]
			if c != escapeChar {
				b.WriteByte(c)
				continue
			}
			if j+2 >= len(tok) {
				return "", fmt.Errorf("%w: short escape in %q", errBadSubject, subject)
			}
			hi, lo := unhex(tok[j+1]), unhex(tok[j+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("%w: bad escape in %q", errBadSubject, subject)
			}
			b.WriteByte(byte(hi<<4 | lo))
			j += 2
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// KV keys allow only [-/_=.a-zA-Z0-9]. A client id or topic level becomes a
// key token keeping letters, digits and '-', writing every other byte as '_'
// and two hex digits, and an empty level as '='.

// kvToken escapes s into one KV key token.
func kvToken(s string) string {
	if s == "" {
		return "="
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

// kvName returns the retained-bucket key of topic name: its root ("t" or
// "d", as for subjects) and one token per level.
func kvName(name string) string {
	first, _, _ := strings.Cut(name, "/")
	r := "t"
	if strings.HasPrefix(first, "$") {
		r = "d"
	}
	var b strings.Builder
	b.WriteString(r)
	for level := range strings.SplitSeq(name, "/") {
		b.WriteByte('.')
		b.WriteString(kvToken(level))
	}
	return b.String()
}

// kvFilters returns the key filters that cover a topic filter in the
// retained bucket (a superset: results are checked with topic.Match).
func kvFilters(filter string) []string {
	levels := strings.Split(filter, "/")
	var roots []string
	switch l0 := levels[0]; {
	case l0 == "+" || l0 == "#":
		roots = []string{"t"}
	case strings.HasPrefix(l0, "$"):
		roots = []string{"d"}
	default:
		roots = []string{"t"}
	}
	b := roots[0]
	var out []string
	for i, level := range levels {
		switch level {
		case "+":
			b += ".*"
		case "#":
			if i > 0 {
				out = append(out, b)
			}
			b += ".>"
		default:
			b += "." + kvToken(level)
		}
	}
	return append(out, b)
}
