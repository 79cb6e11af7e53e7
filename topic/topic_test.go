package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		want error
	}{
		{"a", nil},
		{"sport/tennis/player1", nil},
		{"/finance", nil},
		{"finance/", nil},
		{"/", nil},
		{"a//b", nil},
		{"//", nil},
		{" ", nil},
		{"$SYS/broker/uptime", nil},
		{"$share/g/x", nil},
		{"ŝport/ténnis/日本", nil},
		{"\uFEFFbom", nil}, // [MQTT-1.5.4-3] kept, valid
		{"\uFFFD", nil},    // a real U+FFFD is fine
		{strings.Repeat("x", MaxLen), nil},
		{"", ErrEmpty},
		{strings.Repeat("x", MaxLen+1), ErrTooLong},
		{"a\x00b", ErrInvalidUTF8},
		{"\x00", ErrInvalidUTF8},
		{"a\xffb", ErrInvalidUTF8},
		{"\xed\xa0\x80", ErrInvalidUTF8}, // encoded surrogate U+D800
		{"\xc0\xaf", ErrInvalidUTF8},     // overlong '/'
		{"a\xe6\x97", ErrInvalidUTF8},    // truncated
		{"+", ErrWildcardInName},
		{"#", ErrWildcardInName},
		{"sport/+", ErrWildcardInName},
		{"sport/#", ErrWildcardInName},
		{"sport+", ErrWildcardInName},
		{"a#b", ErrWildcardInName},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("ValidateName(%.40q) = %v, want %v", tt.name, err, tt.want)
		}
		var te *Error
		if err != nil && (!errors.As(err, &te) || te.Filter || te.Topic != tt.name || te.Rule == "") {
			t.Errorf("ValidateName(%.40q): bad *Error %#v", tt.name, te)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   error
	}{
		// Valid, from the specs' section 4.7 and around.
		{"sport/tennis/player1/#", nil},
		{"sport/#", nil},
		{"#", nil},
		{"+", nil},
		{"+/tennis/#", nil},
		{"sport/+/player1", nil},
		{"sport/tennis/+", nil},
		{"+/+", nil},
		{"/+", nil},
		{"+/", nil},
		{"/#", nil},
		{"//#", nil},
		{"+/+/+", nil},
		{"a//b", nil},
		{"/", nil},
		{"$SYS/#", nil},
		{"$SYS/monitor/+", nil},
		{"$share", nil},      // not a shared subscription
		{"$sharefoo/x", nil}, // not a shared subscription
		{"$SHARE/g/x", nil},  // prefix is case sensitive: ordinary filter
		{"$SHARE/a+b/x", ErrBadWildcard},
		{"$share/g/#", nil},
		{"$share/g/+/x", nil},
		{"$share/group/sport/tennis/#", nil},
		{"$share/g/$share/h/x", nil},
		{"$share/g//", nil},
		{"$share/日本/a", nil},
		{strings.Repeat("x", MaxLen), nil},
		// Invalid.
		{"", ErrEmpty},
		{strings.Repeat("x", MaxLen+1), ErrTooLong},
		{"$share/g/" + strings.Repeat("x", MaxLen), ErrTooLong},
		{"a\x00", ErrInvalidUTF8},
		{"a/\xff", ErrInvalidUTF8},
		{"sport/tennis#", ErrBadWildcard},
		{"sport/tennis/#/ranking", ErrBadWildcard},
		{"sport+", ErrBadWildcard},
		{"a/b#", ErrBadWildcard},
		{"#/", ErrBadWildcard},
		{"##", ErrBadWildcard},
		{"#a", ErrBadWildcard},
		{"#/#", ErrBadWildcard},
		{"++", ErrBadWildcard},
		{"+a", ErrBadWildcard},
		{"a+/b", ErrBadWildcard},
		{"a/+b", ErrBadWildcard},
		{"a/b+", ErrBadWildcard},
		{"$share/", ErrBadShare},
		{"$share//a", ErrBadShare},
		{"$share/group", ErrBadShare},
		{"$share/group/", ErrBadShare},
		{"$share/a+b/x", ErrBadShare},
		{"$share/+/x", ErrBadShare},
		{"$share/#/x", ErrBadShare},
		{"$share/#", ErrBadShare},
		{"$share/g/a#", ErrBadWildcard},
		{"$share/g/a/#/b", ErrBadWildcard},
		{"$share/g/x\x00", ErrInvalidUTF8},
		{"$share/g\xff/x", ErrInvalidUTF8},
	}
	for _, tt := range tests {
		err := ValidateFilter(tt.filter)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("ValidateFilter(%.40q) = %v, want %v", tt.filter, err, tt.want)
		}
		var te *Error
		if err != nil && (!errors.As(err, &te) || !te.Filter || te.Topic != tt.filter || te.Rule == "") {
			t.Errorf("ValidateFilter(%.40q): bad *Error %#v", tt.filter, te)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ValidateFilter("a/b#"), `topic: invalid filter "a/b#": '#' must be alone in the last level [MQTT-4.7.1-1]`},
		{ValidateFilter("sport+"), `topic: invalid filter "sport+": '+' must occupy a whole level [MQTT-4.7.1-2]`},
		{ValidateName("a/+"), `topic: invalid name "a/+": wildcards '+' and '#' are not allowed in topic names [MQTT-4.7.0-1]`},
		{ValidateName(""), `topic: invalid name "": must be at least one byte long [MQTT-4.7.3-1]`},
		{ValidateFilter("$share//a"), `topic: invalid filter "$share//a": ShareName must be at least one character [MQTT-4.8.2-1]`},
		{ValidateFilter("$share/g"), `topic: invalid filter "$share/g": ShareName must be followed by '/' and a topic filter [MQTT-4.8.2-2]`},
	}
	for _, tt := range tests {
		if tt.err == nil || tt.err.Error() != tt.want {
			t.Errorf("got %v\nwant %s", tt.err, tt.want)
		}
	}
	long := ValidateName(strings.Repeat("y", MaxLen+1)).Error()
	if len(long) > 300 || !strings.Contains(long, `..."`) && !strings.Contains(long, `"...`) {
		t.Errorf("long topic not truncated in message: %d bytes", len(long))
	}
}

func TestParseShare(t *testing.T) {
	tests := []struct {
		filter, group, inner string
		shared               bool
		err                  error
	}{
		{"$share/g/#", "g", "#", true, nil},
		{"$share/consumer1/sport/tennis/+", "consumer1", "sport/tennis/+", true, nil},
		{"$share/consumer1/finance", "consumer1", "finance", true, nil},
		{"$share/g//", "g", "/", true, nil},
		{"$share/g/$share/h/x", "g", "$share/h/x", true, nil},
		{"$share/g/$SYS/#", "g", "$SYS/#", true, nil},
		{"sport/#", "", "sport/#", false, nil},
		{"$share", "", "$share", false, nil},
		{"$sharefoo/x", "", "$sharefoo/x", false, nil},
		{"sport+", "", "", false, ErrBadWildcard},
		{"", "", "", false, ErrEmpty},
		{"$share/", "", "", true, ErrBadShare},
		{"$share//a", "", "", true, ErrBadShare},
		{"$share/group", "", "", true, ErrBadShare},
		{"$share/group/", "", "", true, ErrBadShare},
		{"$share/a+b/x", "", "", true, ErrBadShare},
		{"$share/a#/x", "", "", true, ErrBadShare},
		{"$share/g/a+", "", "", true, ErrBadWildcard},
	}
	for _, tt := range tests {
		group, inner, shared, err := ParseShare(tt.filter)
		if group != tt.group || inner != tt.inner || shared != tt.shared || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("ParseShare(%q) = %q, %q, %v, %v; want %q, %q, %v, %v",
				tt.filter, group, inner, shared, err, tt.group, tt.inner, tt.shared, tt.err)
		}
		if IsShared(tt.filter) != tt.shared {
			t.Errorf("IsShared(%q) = %v", tt.filter, !tt.shared)
		}
	}
}

// matchTests are the examples of MQTT 3.1.1 and 5.0 section 4.7, and more.
var matchTests = []struct {
	filter, name string
	want         bool
}{
	// 4.7.1.2 multi-level wildcard.
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/#", "sport/tennis", false},
	{"sport/#", "sport", true},
	{"sport/#", "sport/", true},
	{"sport/#", "sports", false},
	{"#", "sport", true},
	{"#", "/", true},
	{"#", "/finance", true},
	{"#", "a/b/c/d", true},
	// 4.7.1.3 single-level wildcard.
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/tennis/+", "sport/tennis", false},
	{"sport/tennis/+", "sport/tennis/", true},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+/tennis/#", "sport/tennis", true},
	{"+/tennis/#", "sport/tennis/x/y", true},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"sport/+/player1", "sport//player1", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+", "finance", true},
	{"+", "", true},
	{"+/+", "a", false},
	{"+/+", "a/b/c", false},
	{"+/#", "a", true},
	{"+/#", "/", true},
	// 4.7.2 topics beginning with $.
	{"#", "$SYS", false},
	{"#", "$SYS/broker/uptime", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"+", "$SYS", false},
	{"+/#", "$SYS/x", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS/broker/uptime", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/+", "$SYS/broker/uptime", false},
	{"a/#", "a/$b", true},
	{"a/+", "a/$b", true},
	// Exact and empty levels.
	{"/finance", "/finance", true},
	{"/finance", "finance", false},
	{"finance/", "finance", false},
	{"a//b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/+/b", "a//b", true},
	{"a", "a/", false},
	{"a/", "a", false},
	{"a/b", "a", false},
	{"a", "a/b", false},
	{"/", "/", true},
	{"+/+", "/", true},
	{"#", "", true},
	// No normalisation [MQTT-4.7.3-4].
	{"Sport", "sport", false},
	{"caf\u00e9", "cafe\u0301", false},
	// Shared filters are literal for Match.
	{"$share/g/a", "a", false},
	{"$share/g/a", "$share/g/a", true},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		if got := Match(tt.filter, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.name, got, tt.want)
		}
		if got := naiveMatch(tt.filter, tt.name); got != tt.want {
			t.Errorf("naiveMatch(%q, %q) = %v, want %v (test bug)", tt.filter, tt.name, got, tt.want)
		}
		tr := NewTrie[int, int]()
		tr.Add(tt.filter, 1, 2)
		got := false
		tr.Match(tt.name, func(f string, k, v int) bool {
			if f != tt.filter || k != 1 || v != 2 {
				t.Errorf("Trie.Match(%q) reported %q, %d, %d", tt.name, f, k, v)
			}
			got = true
			return true
		})
		if got != tt.want {
			t.Errorf("Trie with %q: Match(%q) = %v, want %v", tt.filter, tt.name, got, tt.want)
		}
	}
}

func TestAllocs(t *testing.T) {
	tr := NewTrie[string, int]()
	for _, f := range []string{"a/b/c", "a/+/c", "a/#", "#", "+/b/+", "a/b/c/d"} {
		tr.Add(f, "k1", 1)
		tr.Add(f, "k2", 2)
	}
	n := 0
	fn := func(string, string, int) bool { n++; return true }
	cases := map[string]func(){
		"Trie.Match":     func() { tr.Match("a/b/c", fn) },
		"Match":          func() { Match("a/+/c/#", "a/b/c/d") },
		"ValidateFilter": func() { _ = ValidateFilter("$share/g/a/+/c/#") },
		"ValidateName":   func() { _ = ValidateName("a/b/c/d/ü") },
		"ParseShare":     func() { _, _, _, _ = ParseShare("$share/g/a/+/c/#") },
		"Get":            func() { tr.Get("a/+/c", "k2") },
		"Remove(miss)":   func() { tr.Remove("a/+/c", "k3") },
	}
	for name, f := range cases {
		if a := testing.AllocsPerRun(100, f); a != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, a)
		}
	}
	if n == 0 {
		t.Fatal("no matches")
	}
}
