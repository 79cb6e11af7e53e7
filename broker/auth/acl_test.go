package auth

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/topic"
)

const testACL = `# rules before any "user" line apply to anonymous clients (no username)
topic read $SYS/broker/uptime
topic read public/#
topic write anon/+/in

user alice
topic readwrite alice/#
topic write sensors/+/alice
topic deny alice/secret/#          # deny rules win over allow rules
topic read weather/+/temp

user bob
topic #
topic deny bob/private

user admin
topic read $SYS/#
topic read #

user team lead
topic read teams/+

user alice
topic read shared/alice-too

pattern read users/%u/#      # patterns apply to every client; %u = username, %c = client id
pattern write devices/%c/#
pattern readwrite dev-%c/x%u/+
pattern deny users/%u/blocked
`

func loadACL(t testing.TB, text string) *ACLFile {
	t.Helper()
	a, err := LoadACLFile(writeFile(t, t.TempDir(), "acl.txt", text))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type aclCase struct {
	user, client string
	act          broker.Action
	topic        string
	want         bool
}

const (
	pub = broker.ActionPublish
	sub = broker.ActionSubscribe
	rcv = broker.ActionReceive
)

func runACL(t *testing.T, a *ACLFile, cases []aclCase) {
	t.Helper()
	for _, c := range cases {
		client := c.client
		if client == "" {
			client = "cid"
		}
		ci := &broker.ClientInfo{Username: c.user, ClientID: client}
		got := a.Authorize(context.Background(), ci, c.act, c.topic)
		if c.act == rcv {
			if r := a.AuthorizeReceive(ci, c.topic); r != got {
				t.Errorf("AuthorizeReceive and Authorize(receive) differ for %+v", c)
			}
		}
		if got != c.want {
			t.Errorf("user %q client %q %v %q = %v, want %v", c.user, client, c.act, c.topic, got, c.want)
		}
	}
}

func TestACLAnonymous(t *testing.T) {
	runACL(t, loadACL(t, testACL), []aclCase{
		{"", "", rcv, "$SYS/broker/uptime", true},
		{"", "", sub, "$SYS/broker/uptime", true},
		{"", "", sub, "$SYS/broker/+", false},
		{"", "", pub, "$SYS/broker/uptime", false},
		{"", "", rcv, "public/a/b", true},
		{"", "", rcv, "public", true},
		{"", "", sub, "public/#", true},
		{"", "", sub, "public/+/x", true},
		{"", "", sub, "public", true},
		{"", "", sub, "#", false},
		{"", "", pub, "public/a", false},
		{"", "", pub, "anon/1/in", true},
		{"", "", pub, "anon/1/in/x", false},
		{"", "", rcv, "anon/1/in", false},
		{"", "", sub, "anon/1/in", false},
		// Anonymous clients do not get alice's rules.
		{"", "", rcv, "alice/x", false},
		// Patterns with %u do not apply to anonymous clients; %c does.
		{"", "", rcv, "users//x", false},
		{"", "dev1", pub, "devices/dev1/x", true},
	})
}

func TestACLUsers(t *testing.T) {
	runACL(t, loadACL(t, testACL), []aclCase{
		{"alice", "", pub, "alice/x", true},
		{"alice", "", rcv, "alice/x", true},
		{"alice", "", pub, "alice", true},
		{"alice", "", pub, "sensors/7/alice", true},
		{"alice", "", rcv, "sensors/7/alice", false},
		{"alice", "", sub, "sensors/7/alice", false},
		{"alice", "", pub, "sensors/7/bob", false},
		{"alice", "", pub, "bob/x", false},
		{"alice", "", rcv, "public/x", false}, // anonymous rules are not everyone's
		{"alice", "", rcv, "shared/alice-too", true},
		// Deny wins.
		{"alice", "", pub, "alice/secret", false},
		{"alice", "", pub, "alice/secret/x", false},
		{"alice", "", rcv, "alice/secret/x", false},
		{"alice", "", sub, "alice/secret/#", false},
		{"alice", "", sub, "alice/secret/+", false},
		{"alice", "", sub, "alice/secret", false},
		{"alice", "", sub, "alice/#", true}, // overlaps the deny: receive filters
		{"bob", "", pub, "anything/at/all", true},
		{"bob", "", pub, "bob/private", false},
		{"bob", "", rcv, "bob/private", false},
		{"bob", "", sub, "bob/private", false},
		{"bob", "", sub, "bob/+", true},
		{"bob", "", sub, "#", true},
		{"bob", "", pub, "$SYS/x", false},
		{"bob", "", rcv, "$SYS/x", false},
		{"bob", "", sub, "$SYS/#", false},
		{"admin", "", rcv, "$SYS/broker/clients", true},
		{"admin", "", sub, "$SYS/#", true},
		{"admin", "", sub, "#", true},
		{"admin", "", pub, "x", false},
		{"team lead", "", rcv, "teams/blue", true},
		{"team", "", rcv, "teams/blue", false},
		// A username without a section gets the patterns only.
		{"zoe", "", rcv, "users/zoe/inbox", true},
		{"zoe", "", rcv, "alice/x", false},
		{"zoe", "", pub, "users/zoe/inbox", false},
	})
}

func TestACLPatterns(t *testing.T) {
	runACL(t, loadACL(t, testACL), []aclCase{
		{"alice", "c1", rcv, "users/alice/inbox", true},
		{"alice", "c1", rcv, "users/alice", true},
		{"alice", "c1", sub, "users/alice/#", true},
		{"alice", "c1", sub, "users/+/#", false},
		{"alice", "c1", sub, "users/#", false},
		{"alice", "c1", rcv, "users/bob/inbox", false},
		{"alice", "c1", rcv, "users/alice/blocked", false}, // pattern deny
		{"alice", "c1", sub, "users/alice/blocked", false},
		{"alice", "c1", pub, "devices/c1/state", true},
		{"alice", "c1", pub, "devices/c2/state", false},
		{"alice", "c1", pub, "devices/c1", true},
		{"alice", "c1", pub, "dev-c1/xalice/3", true},
		{"alice", "c1", rcv, "dev-c1/xalice/3", true},
		{"alice", "c1", sub, "dev-c1/xalice/+", true},
		{"alice", "c1", sub, "dev-c1/xalice/#", false},
		{"alice", "c1", sub, "dev-+/xalice/+", false},
		{"alice", "c1", sub, "+/xalice/3", false},
		{"alice", "c1", pub, "dev-c1/alice/3", false},
		{"alice", "c1", pub, "dev-c1x/xalice/3", false},
		{"alice", "c1", pub, "dev-c/xalice/3", false},
		{"alice", "c1", pub, "dev-c1/xalice", false},
		{"alice", "c1", pub, "dev-c1/xalice/3/4", false},
	})
}

func TestACLInjection(t *testing.T) {
	a := loadACL(t, `pattern readwrite users/%u/#
pattern readwrite %c/#
pattern readwrite box/%u
pattern read %u-feed
`)
	runACL(t, a, []aclCase{
		// Usernames with wildcards or separators must not widen access.
		{"a/#", "c", sub, "users/a/#", false},
		{"a/#", "c", sub, "users/#", false},
		{"a/#", "c", rcv, "users/a/#/x", false},
		{"+", "c", sub, "users/+/#", false},
		{"+", "c", rcv, "users/+/x", false},
		{"+", "c", sub, "box/+", false},
		{"#", "c", sub, "box/#", false},
		{"a/b", "c", rcv, "users/a/b/x", false},
		{"a/b", "c", rcv, "box/a/b", false},
		// Client ids likewise, and a leading '$' cannot reach $SYS.
		{"u", "#", sub, "#", false},
		{"u", "+", sub, "+/#", false},
		{"u", "$SYS", rcv, "$SYS/broker/load", false},
		{"u", "$SYS", sub, "$SYS/#", false},
		{"$SYS", "c", rcv, "$SYS-feed", false},
		// ... but a '$' inside a level is just a character.
		{"$x", "c", rcv, "users/$x/inbox", true},
		{"u$", "c", rcv, "u$-feed", true},
		// An empty client id substitutes nothing.
		{"u", "", rcv, "/x", false},
		// Normal names still work.
		{"bob", "c", rcv, "users/bob/x", true},
		{"bob", "dev", pub, "dev/x", true},
		{"bob", "dev", sub, "dev/#", true},
	})
	// Empty client id: runACL would default it, so check directly.
	if a.Authorize(context.Background(), &broker.ClientInfo{Username: "u"}, rcv, "/x") {
		t.Errorf("empty client id matched pattern %s", "%c/#")
	}
}

func TestACLSubscribeCoverage(t *testing.T) {
	// One read rule per user, named after the rule.
	rules := []string{"alice/#", "alice/+/temp", "#", "+", "+/#", "a/+/#", "a", "$SYS/#", "+/b", "a//b", "/#"}
	var text strings.Builder
	for _, r := range rules {
		text.WriteString("user " + r + "\ntopic read " + r + "\n")
	}
	a := loadACL(t, text.String())
	cases := []struct {
		rule, filter string
		want         bool
	}{
		{"alice/#", "alice/x/+", true},
		{"alice/#", "alice/#", true},
		{"alice/#", "alice", true},
		{"alice/#", "alice/+", true},
		{"alice/#", "#", false},
		{"alice/#", "+/x", false},
		{"alice/#", "alicex/#", false},
		{"alice/+/temp", "alice/1/temp", true},
		{"alice/+/temp", "alice/+/temp", true},
		{"alice/+/temp", "alice/#", false},
		{"alice/+/temp", "alice/1/#", false},
		{"alice/+/temp", "alice/+/+", false},
		{"alice/+/temp", "alice/1/temp/x", false},
		{"alice/+/temp", "alice/1", false},
		{"#", "#", true},
		{"#", "a/+/#", true},
		{"#", "+", true},
		{"#", "$SYS/#", false}, // [MQTT-4.7.2-1]
		{"#", "$SYS/x", false},
		{"+", "x", true},
		{"+", "+", true},
		{"+", "", false},
		{"+", "#", false},
		{"+/#", "#", true}, // "#" and "+/#" match the same names
		{"+", "x/y", false},
		{"+", "$SYS", false},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a/b/#", true},
		{"a/+/#", "a/+/#", true},
		{"a/+/#", "a/#", false}, // "a/#" matches "a", which the rule does not
		{"a/+/#", "a", false},
		{"a", "a", true},
		{"a", "a/#", false},
		{"a", "+", false},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS/#", "$SYS/broker/+", true},
		{"$SYS/#", "#", false},
		{"$SYS/#", "+/broker", false},
		{"+/b", "x/b", true},
		{"+/b", "+/b", true},
		{"+/b", "$SYS/b", false},
		{"a//b", "a//b", true},
		{"a//b", "a/+/b", false},
		{"/#", "/x", true},
		{"/#", "+/x", false},
		// Shared subscriptions are checked by their inner filter.
		{"alice/#", "$share/g/alice/x", true},
		{"alice/#", "$share/g/#", false},
		{"#", "$share/g/#", true},
		{"#", "$share/g", false}, // invalid
		{"#", "a/#/b", false},    // invalid
	}
	for _, c := range cases {
		ci := &broker.ClientInfo{Username: c.rule, ClientID: "c"}
		if got := a.Authorize(context.Background(), ci, sub, c.filter); got != c.want {
			t.Errorf("rule %q, subscribe %q = %v, want %v", c.rule, c.filter, got, c.want)
		}
	}
}

// TestCoversIsContainment checks covers against its definition on random
// rules and filters: a rule covers a filter exactly when every name the
// filter matches is matched by the rule. Names are drawn from a small
// alphabet so that the sample set exercises every level combination.
func TestCoversIsContainment(t *testing.T) {
	words := []string{"a", "b", "", "$s"}
	var names []string
	var gen func(prefix string, depth int)
	gen = func(prefix string, depth int) {
		for _, w := range words {
			n := w
			if depth > 0 {
				n = prefix + "/" + w
			} else if w == "$s" {
				n = "$s"
			}
			names = append(names, n)
			if depth < 3 {
				gen(n, depth+1)
			}
		}
	}
	gen("", 0)
	r := rand.New(rand.NewPCG(1, 2))
	randFilter := func() string {
		n := 1 + r.IntN(4)
		lv := make([]string, n)
		for i := range lv {
			switch x := r.IntN(6); {
			case x == 0:
				lv[i] = "+"
			case x == 1 && i == n-1:
				lv[i] = "#"
			default:
				lv[i] = words[r.IntN(len(words))]
				if lv[i] == "$s" && i > 0 {
					lv[i] = "a"
				}
			}
		}
		return strings.Join(lv, "/")
	}
	ci := &broker.ClientInfo{Username: "u", ClientID: "c"}
	for range 20000 {
		rf, f := randFilter(), randFilter()
		if topic.ValidateFilter(rf) != nil || topic.ValidateFilter(f) != nil {
			continue
		}
		want := true
		some := false
		for _, n := range names {
			if topic.Match(f, n) {
				some = true
				if !topic.Match(rf, n) {
					want = false
					break
				}
			}
		}
		if !some {
			continue // the sample has no name for f; containment is vacuous
		}
		rule := newRule(rf, accRead, false)
		if got := rule.covers(ci, f); got != want {
			t.Fatalf("covers(rule %q, filter %q) = %v, want %v", rf, f, got, want)
		}
		// The template matcher agrees with topic.Match.
		rule.subst = true
		for _, n := range names[:200] {
			if rule.matchName(ci, n) != topic.Match(rf, n) {
				t.Fatalf("matchName(%q, %q) disagrees with topic.Match", rf, n)
			}
		}
	}
}

func TestACLErrors(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"topic read a\nuser\n", `acl.txt:2: "user" needs a username`},
		{"user alice # the boss\n", `acl.txt:1: username "alice # the boss" contains " #"`},
		{"topic rw a/b\n", `acl.txt:1: unknown access "rw" (use read, write, readwrite or deny`},
		{"\n\ntopic read\n", `acl.txt:3: missing topic filter after "read"`},
		{"topic\n", "acl.txt:1: missing topic filter"},
		{"topic read a/b#\n", `acl.txt:1: invalid topic filter "a/b#"`},
		{"topic read a/#/b\n", `acl.txt:1: invalid topic filter`},
		{"topics read a\n", `acl.txt:1: unknown keyword "topics" (a line is "user NAME"`},
		{"Topic read a\n", `unknown keyword "Topic"`},
		{"topic read users/%u/#\n", `acl.txt:1: %u and %c are substituted only in pattern lines: write "pattern read users/%u/#"`},
		{"pattern read a/%u+/#\n", `acl.txt:1: invalid topic filter "a/%u+/#"`},
		{"topic read $share/g/a\n", "is a shared subscription"},
	} {
		a, err := LoadACLFile(writeFile(t, t.TempDir(), "acl.txt", tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadACLFile(%q) = %v, %v; want error containing %q", tt.text, a, err, tt.want)
		}
	}
}

func TestACLSyntax(t *testing.T) {
	a := loadACL(t, "  # indented comment\r\n"+
		"topic a/b # comment\r\n"+
		"topic read # # everything, as a comment\n"+
		"topic write with space/x\n"+
		"\ttopic\tdeny\tx/y\t\n"+
		"user u\n"+
		"topic write %notsub/x\n")
	runACL(t, a, []aclCase{
		{"", "", pub, "a/b", true},
		{"", "", rcv, "a/b", true},
		{"", "", rcv, "anything", true},
		{"", "", pub, "anything", false},
		{"", "", pub, "with space/x", true},
		{"", "", rcv, "x/y", false},
		{"u", "", pub, "%notsub/x", true},
	})
}

func TestACLReload(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "acl", "user alice\ntopic alice/#\n")
	a, err := LoadACLFile(p)
	if err != nil {
		t.Fatal(err)
	}
	alice := &broker.ClientInfo{Username: "alice", ClientID: "c"}
	if !a.Authorize(context.Background(), alice, pub, "alice/x") {
		t.Fatal("alice refused")
	}
	writeFile(t, dir, "acl", "user alice\ntopic read alice/#\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if a.Authorize(context.Background(), alice, pub, "alice/x") || !a.Authorize(context.Background(), alice, rcv, "alice/x") {
		t.Error("Reload did not apply the new rules")
	}
	writeFile(t, dir, "acl", "user alice\ntopic bad alice/#\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "acl:2:") {
		t.Errorf("Reload of a broken file = %v", err)
	}
	if !a.Authorize(context.Background(), alice, rcv, "alice/x") {
		t.Error("a failed Reload lost the rules")
	}
	var zero ACLFile
	if zero.Authorize(context.Background(), alice, rcv, "alice/x") || zero.Reload() == nil {
		t.Error("zero ACLFile allows or reloads")
	}
	if a.Authorize(context.Background(), nil, rcv, "alice/x") {
		t.Error("nil client allowed")
	}
	if !a.Authorize(context.Background(), &broker.ClientInfo{Inline: true}, pub, "$SYS/x") {
		t.Error("inline client refused")
	}
	if a.Authorize(context.Background(), alice, broker.Action(99), "alice/x") {
		t.Error("unknown action allowed")
	}
}

var (
	_ broker.Authenticator     = (*PasswordFile)(nil)
	_ broker.ReceiveAuthorizer = (*ACLFile)(nil)
)

func TestACLAllocs(t *testing.T) {
	a := loadACL(t, testACL)
	ctx := context.Background()
	alice := &broker.ClientInfo{Username: "alice", ClientID: "c1"}
	for _, c := range []aclCase{
		{"alice", "c1", pub, "sensors/7/alice", true},
		{"alice", "c1", pub, "dev-c1/xalice/3", true},
		{"alice", "c1", rcv, "users/alice/inbox", true},
		{"alice", "c1", sub, "alice/x/+", true},
		{"alice", "c1", sub, "$share/g/users/alice/#", true},
		{"alice", "c1", sub, "#", false},
	} {
		n := testing.AllocsPerRun(100, func() {
			if a.Authorize(ctx, alice, c.act, c.topic) != c.want {
				t.Fatal("wrong answer")
			}
		})
		if n != 0 {
			t.Errorf("%v %q: %v allocations", c.act, c.topic, n)
		}
	}
}

func BenchmarkAuthorizePublish(b *testing.B) {
	a := loadACL(b, testACL)
	ctx := context.Background()
	alice := &broker.ClientInfo{Username: "alice", ClientID: "c1"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Authorize(ctx, alice, broker.ActionPublish, "sensors/42/alice") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkAuthorizePublishPattern(b *testing.B) {
	a := loadACL(b, testACL)
	ctx := context.Background()
	alice := &broker.ClientInfo{Username: "alice", ClientID: "c1"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Authorize(ctx, alice, broker.ActionPublish, "devices/c1/state/temp") {
			b.Fatal("refused")
		}
	}
}

func BenchmarkAuthorizeSubscribe(b *testing.B) {
	a := loadACL(b, testACL)
	ctx := context.Background()
	alice := &broker.ClientInfo{Username: "alice", ClientID: "c1"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Authorize(ctx, alice, broker.ActionSubscribe, "alice/kitchen/+") {
			b.Fatal("refused")
		}
	}
}
