package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/topic"
)

// ACLFile is a [broker.Authorizer] and [broker.ReceiveAuthorizer] backed by
// an access control file in Mosquitto's acl_file format:
//
//	# rules before any "user" line apply to anonymous clients (no username)
//	topic read $SYS/#
//	user alice
//	topic readwrite alice/#
//	topic write sensors/+/alice
//	topic deny secret/#          # deny rules win over allow rules
//	pattern read users/%u/#      # patterns apply to every client
//	pattern write devices/%c/#
//
// A line is "user NAME", "topic [ACCESS] FILTER" or "pattern [ACCESS]
// FILTER"; ACCESS is read, write, readwrite (the default) or deny. Lines
// starting with '#' are comments, and on topic and pattern lines a '#'
// after white space starts a comment too (a '#' wildcard is always
// preceded by '/' or begins the filter). A filter may contain spaces when
// the access word is given.
//
// topic lines belong to the user named by the preceding user line, or to
// anonymous clients (those without a username) before the first user
// line; a user may have several sections. pattern lines apply to every
// client, anonymous or not, wherever they are in the file; in them, %u
// stands for the client's username and %c for its client identifier. A
// substitution that is empty, contains '/', '+' or '#', or would put a '$'
// at the start of the filter makes that pattern match nothing for that
// client, so a username like "a/#" cannot widen its access. A client with
// a username that has no section gets the patterns only. Anything no rule
// allows is refused; the broker's inline client is allowed everything.
//
// The checks, for the rules of the client (its section, plus patterns):
//
//   - publish to a topic name: refused if any deny rule matches the name,
//     otherwise allowed if a write or readwrite rule matches it;
//   - receive a message (ActionReceive, [ACLFile.AuthorizeReceive]): the
//     same with read or readwrite rules;
//   - subscribe to a topic filter: refused if a deny rule covers the
//     filter, otherwise allowed if a read or readwrite rule covers it. A
//     rule covers a filter when every topic name the filter matches is also
//     matched by the rule, i.e. the filter is the same as the rule or more
//     specific, level by level: a rule level '#' covers the rest of the
//     filter (including nothing: "a/#" covers "a"); a rule level '+' covers
//     a filter level that is a word or '+' (not '#'); a word covers only the
//     same word. So "alice/#" covers "alice/x/+" and "alice/#"; "alice/+/temp"
//     covers "alice/1/temp" and "alice/+/temp" but not "alice/#"; and "#"
//     covers "#" and "a/+" but not "$SYS/#" [MQTT-4.7.2-1]. Rules are
//     checked one at a time, as Mosquitto does: two rules that together
//     span a filter do not make it allowed. A filter that a deny rule only
//     overlaps (subscribe "#" with "deny secret/#") is allowed, and the
//     receive check then keeps the denied messages from the client. For
//     a shared subscription "$share/group/filter" the inner filter is
//     checked.
//
// [MQTT-4.7.2-1] applies throughout: rules beginning with a wildcard match
// no topic beginning with '$', so "topic read #" does not grant $SYS.
//
// Checks do not allocate and do no I/O: each user's rules are gathered
// when the file is loaded. Authorize and Reload are safe for concurrent
// use.
type ACLFile struct {
	path  string
	table atomic.Pointer[aclTable]
}

// access is what a rule grants, or deny.
type access uint8

const (
	accRead access = 1 << iota
	accWrite
	accDeny
	accReadWrite = accRead | accWrite
)

func (a access) String() string {
	switch a {
	case accRead:
		return "read"
	case accWrite:
		return "write"
	case accReadWrite:
		return "readwrite"
	case accDeny:
		return "deny"
	}
	return "access?"
}

// aclTable is one immutable snapshot of the file.
type aclTable struct {
	users  map[string]*ruleSet // the user's rules, then the patterns
	anon   *ruleSet            // anonymous rules, then the patterns
	others *ruleSet            // the patterns only
}

// ruleSet is the rules that apply to one kind of client, deny rules apart.
type ruleSet struct {
	deny  []*aclRule
	allow []*aclRule
}

// LoadACLFile reads and checks an ACL file. The error names the file and
// line of the first problem and how to fix it.
func LoadACLFile(path string) (*ACLFile, error) {
	a := &ACLFile{path: path}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the file again and, if it is valid, replaces the rules
// atomically; if it is invalid, Reload returns the error and keeps the
// rules it had. A SIGHUP handler can call it.
func (a *ACLFile) Reload() error {
	if a.path == "" {
		return errors.New("auth: ACLFile has no file: create it with LoadACLFile")
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		return err
	}
	t, err := parseACL(a.path, string(data))
	if err != nil {
		return err
	}
	a.table.Store(t)
	return nil
}

// Path returns the file's path.
func (a *ACLFile) Path() string { return a.path }

// Len returns the number of rules ("topic" and "pattern" lines) of the
// file as last loaded.
func (a *ACLFile) Len() int {
	t := a.table.Load()
	if t == nil {
		return 0
	}
	// Every rule set holds the patterns after its own rules.
	patterns := len(t.others.deny) + len(t.others.allow)
	n := len(t.anon.deny) + len(t.anon.allow)
	for _, rs := range t.users {
		n += len(rs.deny) + len(rs.allow) - patterns
	}
	return n
}

// Authorize implements [broker.Authorizer] (and, with ActionReceive, the
// check of [broker.ReceiveAuthorizer]); see [ACLFile] for the rules.
func (a *ACLFile) Authorize(_ context.Context, c *broker.ClientInfo, act broker.Action, t string) bool {
	if c == nil {
		return false
	}
	if c.Inline {
		return true
	}
	rs := a.rulesFor(c)
	if rs == nil {
		return false
	}
	switch act {
	case broker.ActionPublish:
		return rs.allowName(c, t, accWrite)
	case broker.ActionReceive:
		return rs.allowName(c, t, accRead)
	case broker.ActionSubscribe:
		_, inner, _, err := topic.ParseShare(t)
		if err != nil {
			return false
		}
		return rs.allowFilter(c, inner)
	}
	return false
}

// AuthorizeReceive implements [broker.ReceiveAuthorizer]: whether c may
// read a message published to the topic name t.
func (a *ACLFile) AuthorizeReceive(c *broker.ClientInfo, t string) bool {
	return a.Authorize(context.Background(), c, broker.ActionReceive, t)
}

func (a *ACLFile) rulesFor(c *broker.ClientInfo) *ruleSet {
	t := a.table.Load()
	if t == nil {
		return nil
	}
	if c.Username == "" {
		return t.anon
	}
	if rs, ok := t.users[c.Username]; ok {
		return rs
	}
	return t.others
}

func (rs *ruleSet) allowName(c *broker.ClientInfo, name string, want access) bool {
	for _, r := range rs.deny {
		if r.matchName(c, name) {
			return false
		}
	}
	for _, r := range rs.allow {
		if r.access&want != 0 && r.matchName(c, name) {
			return true
		}
	}
	return false
}

func (rs *ruleSet) allowFilter(c *broker.ClientInfo, filter string) bool {
	for _, r := range rs.deny {
		if r.covers(c, filter) {
			return false
		}
	}
	for _, r := range rs.allow {
		if r.access&accRead != 0 && r.covers(c, filter) {
			return true
		}
	}
	return false
}

// parseACL parses an ACL file's text; path is for messages.
func parseACL(path, text string) (*aclTable, error) {
	var anon, patterns []*aclRule
	users := map[string][]*aclRule{}
	cur, inUser := "", false
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		kw, rest := cutSpace(line)
		switch kw {
		case "user":
			if rest == "" {
				return nil, fmt.Errorf(`%s:%d: "user" needs a username`, path, n)
			}
			if hasComment(rest) {
				return nil, fmt.Errorf(`%s:%d: username %q contains " #": put comments on their own line`, path, n, rest)
			}
			cur, inUser = rest, true
			if users[cur] == nil {
				users[cur] = []*aclRule{}
			}
		case "topic", "pattern":
			r, err := parseRule(kw == "pattern", rest)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", path, n, err)
			}
			r.line = n
			switch {
			case kw == "pattern":
				patterns = append(patterns, r)
			case inUser:
				users[cur] = append(users[cur], r)
			default:
				anon = append(anon, r)
			}
		default:
			return nil, fmt.Errorf(`%s:%d: unknown keyword %q (a line is "user NAME", "topic [ACCESS] FILTER" or "pattern [ACCESS] FILTER")`, path, n, kw)
		}
	}
	t := &aclTable{
		users:  make(map[string]*ruleSet, len(users)),
		anon:   newRuleSet(anon, patterns),
		others: newRuleSet(nil, patterns),
	}
	for u, rules := range users {
		t.users[u] = newRuleSet(rules, patterns)
	}
	return t, nil
}

func newRuleSet(lists ...[]*aclRule) *ruleSet {
	rs := &ruleSet{}
	for _, l := range lists {
		for _, r := range l {
			if r.access == accDeny {
				rs.deny = append(rs.deny, r)
			} else {
				rs.allow = append(rs.allow, r)
			}
		}
	}
	return rs
}

// parseRule parses what follows "topic" or "pattern".
func parseRule(pattern bool, rest string) (*aclRule, error) {
	if rest == "" {
		return nil, errors.New("missing topic filter (want [read|write|readwrite|deny] FILTER)")
	}
	acc := accReadWrite
	var filter string
	if word, after := cutSpace(rest); isAccessWord(word) {
		switch word {
		case "read":
			acc = accRead
		case "write":
			acc = accWrite
		case "deny":
			acc = accDeny
		}
		if after == "" {
			return nil, fmt.Errorf("missing topic filter after %q", word)
		}
		filter = stripComment(after)
	} else {
		filter = stripComment(rest)
		if strings.ContainsAny(filter, " \t") {
			return nil, fmt.Errorf("unknown access %q (use read, write, readwrite or deny; a filter containing spaces needs the access word first)", word)
		}
	}
	if strings.HasPrefix(filter, topic.SharePrefix) {
		return nil, fmt.Errorf("filter %q is a shared subscription: write the filter inside it; shared subscriptions are checked by their inner filter", filter)
	}
	hasSubst := strings.Contains(filter, "%u") || strings.Contains(filter, "%c")
	if hasSubst && !pattern {
		return nil, fmt.Errorf(`%%u and %%c are substituted only in pattern lines: write "pattern %s %s"`, acc, filter)
	}
	check := filter
	if hasSubst {
		check = strings.NewReplacer("%u", "x", "%c", "x").Replace(filter)
	}
	if err := topic.ValidateFilter(check); err != nil {
		return nil, fmt.Errorf("invalid topic filter %q: %v", filter, err)
	}
	return newRule(filter, acc, hasSubst), nil
}

func isAccessWord(s string) bool {
	return s == "read" || s == "write" || s == "readwrite" || s == "deny"
}

// cutSpace splits s at its first run of spaces or tabs.
func cutSpace(s string) (first, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// stripComment removes a comment, which starts at a '#' after white
// space, and the white space before it.
func stripComment(s string) string {
	for i := 1; i < len(s); i++ {
		if s[i] == '#' && (s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimRight(s[:i], " \t")
		}
	}
	return s
}

func hasComment(s string) bool { return stripComment(s) != s }
