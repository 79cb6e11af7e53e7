package topic

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error returned by [ValidateName],
// [ValidateFilter] and [ParseShare] is an *[Error] that wraps exactly one of
// these, so callers can test the kind of failure with errors.Is.
var (
	// ErrEmpty: the name or filter is zero bytes long [MQTT-4.7.3-1].
	ErrEmpty = errors.New("topic: empty topic")
	// ErrTooLong: the name or filter is longer than MaxLen bytes [MQTT-4.7.3-3].
	ErrTooLong = errors.New("topic: topic too long")
	// ErrInvalidUTF8: ill-formed UTF-8 (including encoded surrogates) or
	// U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2] [MQTT-4.7.3-2].
	ErrInvalidUTF8 = errors.New("topic: invalid UTF-8 or U+0000")
	// ErrWildcardInName: '+' or '#' in a topic name [MQTT-4.7.0-1].
	ErrWildcardInName = errors.New("topic: wildcard in topic name")
	// ErrBadWildcard: '+' or '#' that does not occupy a whole level, or
	// '#' that is not the last level [MQTT-4.7.1-1] [MQTT-4.7.1-2].
	ErrBadWildcard = errors.New("topic: misplaced wildcard")
	// ErrBadShare: a "$share/" filter that is not a valid shared
	// subscription [MQTT-4.8.2-1] [MQTT-4.8.2-2].
	ErrBadShare = errors.New("topic: invalid shared subscription")
)

// Error describes an invalid topic name or filter. Its message names the
// rule that failed and the offending topic, for example
//
//	topic: invalid filter "a/b#": '#' must be alone in the last level [MQTT-4.7.1-1]
//
// Rule ids in messages are those of MQTT 5.0 (see the tags in the source for
// the matching MQTT 3.1.1 ids).
type Error struct {
	Topic  string // the offending name or filter, as given
	Filter bool   // true when Topic was validated as a filter, false for a name
	Err    error  // one of the sentinel errors (ErrEmpty, ErrBadWildcard, ...)
	Reason string // what is wrong, in words
	Rule   string // the MQTT 5.0 normative id, e.g. "MQTT-4.7.1-1"
}

// maxQuoted bounds how much of an offending topic an error message quotes.
const maxQuoted = 128

func (e *Error) Error() string {
	kind := "name"
	if e.Filter {
		kind = "filter"
	}
	t := e.Topic
	suffix := ""
	if len(t) > maxQuoted {
		t = t[:maxQuoted]
		suffix = "..."
	}
	b := make([]byte, 0, 48+len(t)+len(e.Reason))
	b = append(b, "topic: invalid "...)
	b = append(b, kind...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, t)
	b = append(b, suffix...)
	b = append(b, ": "...)
	b = append(b, e.Reason...)
	if e.Rule != "" {
		b = append(b, " ["...)
		b = append(b, e.Rule...)
		b = append(b, ']')
	}
	return string(b)
}

// Unwrap returns the sentinel error, so errors.Is(err, ErrBadWildcard)
// works.
func (e *Error) Unwrap() error { return e.Err }

// problem is an internal, allocation-free description of a validation
// failure; it becomes an *Error only when reported.
type problem uint8

const (
	pNone problem = iota
	pEmpty
	pTooLong
	pBadUTF8
	pNull
	pWildcardInName
	pHashPlacement
	pPlusPlacement
	pShareNameEmpty
	pShareNameWildcard
	pShareNoFilter
	pShareEmptyFilter
)

var problems = [...]struct {
	err    error
	reason string
	rule   string
}{
	pEmpty:             {ErrEmpty, "must be at least one byte long", "MQTT-4.7.3-1"},
	pTooLong:           {ErrTooLong, "longer than 65535 bytes", "MQTT-4.7.3-3"},
	pBadUTF8:           {ErrInvalidUTF8, "ill-formed UTF-8", "MQTT-1.5.4-1"},
	pNull:              {ErrInvalidUTF8, "contains U+0000", "MQTT-4.7.3-2"},
	pWildcardInName:    {ErrWildcardInName, "wildcards '+' and '#' are not allowed in topic names", "MQTT-4.7.0-1"},
	pHashPlacement:     {ErrBadWildcard, "'#' must be alone in the last level", "MQTT-4.7.1-1"},
	pPlusPlacement:     {ErrBadWildcard, "'+' must occupy a whole level", "MQTT-4.7.1-2"},
	pShareNameEmpty:    {ErrBadShare, "ShareName must be at least one character", "MQTT-4.8.2-1"},
	pShareNameWildcard: {ErrBadShare, "ShareName must not contain '+' or '#'", "MQTT-4.8.2-2"},
	pShareNoFilter:     {ErrBadShare, "ShareName must be followed by '/' and a topic filter", "MQTT-4.8.2-2"},
	pShareEmptyFilter:  {ErrBadShare, "topic filter after ShareName is empty", "MQTT-4.8.2-2"},
}

func (p problem) error(topic string, filter bool) error {
	d := problems[p]
	return &Error{Topic: topic, Filter: filter, Err: d.err, Reason: d.reason, Rule: d.rule}
}
