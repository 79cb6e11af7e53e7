package topic

import "testing"

func FuzzMatch(f *testing.F) {
	for _, tt := range matchTests {
		f.Add(tt.filter, tt.name)
	}
	f.Add("$share/g/#", "a")
	f.Add("a/#/b", "a/x/b")
	f.Add("+a", "\x00")
	f.Fuzz(func(t *testing.T, filter, name string) {
		// Never panic, whatever the input.
		got := Match(filter, name)
		tr := NewTrie[int, int]()
		tr.Add(filter, 1, 1)
		trieGot := false
		tr.Match(name, func(string, int, int) bool { trieGot = true; return true })
		_, _, _, _ = ParseShare(filter)
		_ = ValidateName(name)

		if ValidateFilter(filter) != nil || ValidateName(name) != nil {
			if !tr.Remove(filter, 1) || tr.Len() != 0 {
				t.Fatalf("Remove(%q) failed", filter)
			}
			return
		}
		want := naiveMatch(filter, name)
		if got != want || trieGot != want {
			t.Fatalf("filter %q name %q: Match=%v Trie=%v naive=%v", filter, name, got, trieGot, want)
		}
		if !tr.Remove(filter, 1) || tr.Len() != 0 || tr.nodes != 0 {
			t.Fatalf("Remove(%q) left %d nodes", filter, tr.nodes)
		}
	})
}
