package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

var levelAlphabet = []string{"", "a", "b", "c", "ab", "$x"}

// randFilter returns a valid random filter of 1 to 5 levels.
func randFilter(r *rand.Rand) string {
	n := 1 + r.IntN(5)
	levels := make([]string, n)
	for i := range levels {
		switch x := r.IntN(10); {
		case i == 0 && x == 0:
			levels[i] = "$SYS"
		case x < 3:
			levels[i] = "+"
		case x == 3 && i == n-1:
			levels[i] = "#"
		default:
			levels[i] = levelAlphabet[r.IntN(len(levelAlphabet))]
		}
	}
	if f := strings.Join(levels, "/"); f != "" {
		return f
	}
	return randFilter(r)
}

// randName returns a valid random name of 1 to 6 levels.
func randName(r *rand.Rand) string {
	n := 1 + r.IntN(6)
	levels := make([]string, n)
	for i := range levels {
		if i == 0 && r.IntN(8) == 0 {
			levels[i] = "$SYS"
		} else {
			levels[i] = levelAlphabet[r.IntN(len(levelAlphabet))]
		}
	}
	if name := strings.Join(levels, "/"); name != "" {
		return name
	}
	return randName(r)
}

type fk struct {
	filter string
	key    int
}

// model is the reference: a plain map from (filter, key) to value.
type model map[fk]int

// checkTrie compares tr against m for every name.
func checkTrie(t *testing.T, tr *Trie[int, int], m model, names []string) {
	t.Helper()
	if tr.Len() != len(m) {
		t.Fatalf("Len = %d, want %d", tr.Len(), len(m))
	}
	type split struct {
		fk
		levels []string
		value  int
	}
	entries := make([]split, 0, len(m))
	for k, v := range m {
		entries = append(entries, split{k, strings.Split(k.filter, "/"), v})
	}
	got := map[fk]int{}
	for _, name := range names {
		nl := strings.Split(name, "/")
		clear(got)
		tr.Match(name, func(f string, k, v int) bool {
			if _, dup := got[fk{f, k}]; dup {
				t.Errorf("Match(%q): (%q, %d) reported twice", name, f, k)
			}
			got[fk{f, k}] = v
			return true
		})
		want := 0
		for _, e := range entries {
			if !naiveMatchLevels(e.levels, nl) {
				continue
			}
			want++
			if v, ok := got[e.fk]; !ok || v != e.value {
				t.Fatalf("Match(%q): missing or wrong (%q, %d): got %d, %v; want %d", name, e.filter, e.key, v, ok, e.value)
			}
		}
		if len(got) != want {
			for f := range got {
				if !naiveMatch(f.filter, name) {
					t.Errorf("Match(%q): unexpected (%q, %d)", name, f.filter, f.key)
				}
			}
			t.Fatalf("Match(%q): %d results, want %d", name, len(got), want)
		}
	}
	n := 0
	tr.Walk(func(f string, k, v int) bool {
		if w, ok := m[fk{f, k}]; !ok || w != v {
			t.Fatalf("Walk: unexpected (%q, %d, %d)", f, k, v)
		}
		n++
		return true
	})
	if n != len(m) {
		t.Fatalf("Walk visited %d entries, want %d", n, len(m))
	}
}

func TestTrieRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tr := NewTrie[int, int]()
	m := model{}
	for i := 0; i < 4000; i++ {
		f := randFilter(r)
		if err := ValidateFilter(f); err != nil {
			t.Fatalf("randFilter made an invalid filter: %v", err)
		}
		k := r.IntN(3)
		_, existed := m[fk{f, k}]
		m[fk{f, k}] = i
		if replaced := tr.Add(f, k, i); replaced != existed {
			t.Fatalf("Add(%q, %d) replaced = %v, want %v", f, k, replaced, existed)
		}
		if v, ok := tr.Get(f, k); !ok || v != i {
			t.Fatalf("Get(%q, %d) = %d, %v", f, k, v, ok)
		}
	}
	names := make([]string, 3000)
	for i := range names {
		names[i] = randName(r)
		if err := ValidateName(names[i]); err != nil {
			t.Fatalf("randName made an invalid name: %v", err)
		}
	}
	checkTrie(t, tr, m, names)

	// Match must agree with the naive matcher on every pair we can afford.
	for i, name := range names[:300] {
		for k := range m {
			if got, want := Match(k.filter, name), naiveMatch(k.filter, name); got != want {
				t.Fatalf("%d: Match(%q, %q) = %v, want %v", i, k.filter, name, got, want)
			}
		}
	}
}

func TestTrieChurn(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tr := new(Trie[int, int]) // the zero value is usable
	m := model{}
	// A small filter space so that removals hit.
	filters := make([]string, 300)
	for i := range filters {
		filters[i] = randFilter(r)
	}
	names := make([]string, 1000)
	for i := range names {
		names[i] = randName(r)
	}
	for round := 0; round < 5; round++ {
		for i := 0; i < 20000; i++ {
			f, k := filters[r.IntN(len(filters))], r.IntN(40) // > indexMax keys per node
			if r.IntN(2) == 0 {
				_, existed := m[fk{f, k}]
				if tr.Add(f, k, i) != existed {
					t.Fatalf("Add(%q, %d): wrong replaced", f, k)
				}
				m[fk{f, k}] = i
			} else {
				_, existed := m[fk{f, k}]
				if tr.Remove(f, k) != existed {
					t.Fatalf("Remove(%q, %d) != %v", f, k, existed)
				}
				delete(m, fk{f, k})
				if _, ok := tr.Get(f, k); ok {
					t.Fatalf("Get(%q, %d) after Remove", f, k)
				}
			}
		}
		checkTrie(t, tr, m, names)
	}
	// Removing everything leaves an empty root.
	for k := range m {
		if !tr.Remove(k.filter, k.key) {
			t.Fatalf("Remove(%q, %d) = false", k.filter, k.key)
		}
	}
	if tr.Remove("a", 1) || tr.Remove("never/added/#", 0) {
		t.Fatal("Remove of a missing entry returned true")
	}
	if tr.Len() != 0 || tr.nodes != 0 || !tr.root.unused() {
		t.Fatalf("after removing all: Len=%d nodes=%d root=%+v", tr.Len(), tr.nodes, tr.root)
	}
}

func TestTriePrunes(t *testing.T) {
	tr := NewTrie[string, struct{}]()
	tr.Add("a/b/c/d", "x", struct{}{})
	tr.Add("a/+/#", "x", struct{}{})
	tr.Add("a", "x", struct{}{})
	if tr.nodes != 6 { // a b c d + #
		t.Fatalf("nodes = %d, want 6", tr.nodes)
	}
	tr.Remove("a/b/c/d", "x")
	if tr.nodes != 3 {
		t.Fatalf("nodes = %d, want 3", tr.nodes)
	}
	tr.Remove("a/+/#", "x")
	if tr.nodes != 1 {
		t.Fatalf("nodes = %d, want 1", tr.nodes)
	}
	tr.Remove("a", "x")
	if tr.nodes != 0 || tr.root.children != nil {
		t.Fatalf("nodes = %d, children = %v", tr.nodes, tr.root.children)
	}
}

func TestTrieStopEarly(t *testing.T) {
	tr := NewTrie[int, int]()
	for i := 0; i < 10; i++ {
		tr.Add("#", i, i)
		tr.Add("a/+", i, i)
		tr.Add("a/b", i, i)
		tr.Add("a/#", i, i)
	}
	for stop := 1; stop <= 40; stop++ {
		n := 0
		tr.Match("a/b", func(string, int, int) bool { n++; return n < stop })
		if n != stop {
			t.Fatalf("Match stopped after %d calls, want %d", n, stop)
		}
		n = 0
		tr.Walk(func(string, int, int) bool { n++; return n < stop })
		if n != stop {
			t.Fatalf("Walk stopped after %d calls, want %d", n, stop)
		}
	}
}

func TestTrieStoredFilter(t *testing.T) {
	tr := NewTrie[string, int]()
	buf := []byte("xx/sport/tennis/+yy")
	f := string(buf[3:17])
	tr.Add(f, "c", 1)
	var got []string
	tr.Match("sport/tennis/player1", func(f string, _ string, _ int) bool {
		got = append(got, f)
		return true
	})
	if !slices.Equal(got, []string{"sport/tennis/+"}) {
		t.Fatalf("got %q", got)
	}
}

// TestTrieConcurrent runs matchers against writers; run it with -race. A
// set of stable entries is present throughout and must always be matched.
func TestTrieConcurrent(t *testing.T) {
	tr := NewTrie[string, int]()
	stable := []string{"dev/+/temp", "dev/#", "#", "dev/1/temp"}
	for _, f := range stable {
		tr.Add(f, "stable", 1)
	}
	const writers, readers, ops = 4, 4, 3000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			key := fmt.Sprintf("w%d", w)
			var mine []string
			for i := 0; i < ops; i++ {
				if len(mine) > 0 && r.IntN(2) == 0 {
					j := r.IntN(len(mine))
					if !tr.Remove(mine[j], key) {
						t.Errorf("Remove(%q, %q) = false", mine[j], key)
					}
					mine = slices.Delete(mine, j, j+1)
					continue
				}
				f := fmt.Sprintf("dev/%d/%s", r.IntN(50), []string{"temp", "+", "#", "hum"}[r.IntN(4)])
				if !tr.Add(f, key, i) {
					mine = append(mine, f)
				}
			}
			for _, f := range mine {
				tr.Remove(f, key)
			}
		}(w)
	}
	for rd := 0; rd < readers; rd++ {
		wg.Add(1)
		go func(rd int) {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				seen := 0
				tr.Match("dev/1/temp", func(f string, k string, v int) bool {
					if k == "stable" {
						seen++
					} else if !Match(f, "dev/1/temp") {
						t.Errorf("Match reported non-matching %q", f)
					}
					return true
				})
				if seen != len(stable) {
					t.Errorf("saw %d stable entries, want %d", seen, len(stable))
					return
				}
				if tr.Len() < len(stable) {
					t.Errorf("Len = %d", tr.Len())
				}
			}
		}(rd)
	}
	wg.Wait()
	if tr.Len() != len(stable) {
		t.Fatalf("Len = %d after writers cleaned up, want %d", tr.Len(), len(stable))
	}
}
