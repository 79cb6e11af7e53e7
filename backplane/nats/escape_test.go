package nats

import (
	"slices"
	"strings"
	"testing"

	"github.com/ternmq/tern/topic"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ name, subject string }{
		{"a/b", "P.t.a.b"},
		{"$SYS/x", "P.d.$SYS.x"},
		{"a.b/*/>", "P.t.a~2Eb.~2A.~3E"},
		{"/", "P.t.~.~"},
		{"a b/~", "P.t.a~20b.~7E"},
		{"ü", "P.t.ü"},
	} {
		if got := NameSubject("P", tc.name); got != tc.subject {
			t.Errorf("NameSubject(%q) = %q, want %q", tc.name, got, tc.subject)
		}
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"#", []string{"P.t.>"}},
		{"a/#", []string{"P.t.a", "P.t.a.>"}},
		{"+/x", []string{"P.t.*.x"}},
		{"$SYS/#", []string{"P.d.$SYS", "P.d.$SYS.>"}},
		{"a/+/c", []string{"P.t.a.*.c"}},
	} {
		if got := FilterSubjects("P", tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("FilterSubjects(%q) = %q, want %q", tc.filter, got, tc.want)
		}
	}
}

func checkSubject(t *testing.T, s string) {
	t.Helper()
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			t.Fatalf("subject %q has an empty token", s)
		}
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		t.Fatalf("subject %q has whitespace or control characters", s)
	}
}

// FuzzEscape checks that the subject of every valid topic name decodes back
// to that name (so no two names share a subject), that it is a valid
// literal subject, and that a filter's subjects decode to the filter.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"a/b", "$SYS/x", "a.b/*/>", "/", "a b/~", "~2E", "", "a//b", "#", "a/+/#", "ü/\t", "~", "~~/~7E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if topic.ValidateName(s) == nil {
			subj := NameSubject("tern", s)
			checkSubject(t, subj)
			if strings.ContainsAny(strings.ReplaceAll(strings.ReplaceAll(subj, ".*", ""), ".>", ""), "*>") {
				t.Fatalf("name %q: subject %q has a wildcard character", s, subj)
			}
			for tok := range strings.SplitSeq(subj, ".") {
				if tok == "*" || tok == ">" {
					t.Fatalf("name %q: subject %q has a wildcard token", s, subj)
				}
			}
			back, err := SubjectTopic("tern", subj)
			if err != nil || back != s {
				t.Fatalf("name %q → %q → %q, %v", s, subj, back, err)
			}
			if k := kvName(s); strings.Trim(k, "-/_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" {
				t.Fatalf("name %q: KV key %q has characters KV keys do not allow", s, k)
			}
		}
		if topic.ValidateFilter(s) == nil && !topic.IsShared(s) {
			subs := FilterSubjects("tern", s)
			last, err := SubjectTopic("tern", subs[len(subs)-1])
			if err != nil || last != s {
				t.Fatalf("filter %q → %q → %q, %v", s, subs, last, err)
			}
			for _, sub := range subs {
				checkSubject(t, sub)
			}
			if len(subs) == 2 {
				short, err := SubjectTopic("tern", subs[0])
				if err != nil || short != strings.TrimSuffix(s, "/#") {
					t.Fatalf("filter %q → %q → %q, %v", s, subs[0], short, err)
				}
			}
		}
	})
}
