package proxy

import "testing"

func TestCoversOverlaps(t *testing.T) {
	cases := []struct {
		p, f           string
		cover, overlap bool
	}{
		{"#", "a/b", true, true},
		{"#", "$SYS/x", false, false},
		{"$SYS/#", "$SYS/x", true, true},
		{"a/#", "a", true, true},
		{"a/#", "a/+/c", true, true},
		{"a/+", "a/b", true, true},
		{"a/+", "a/#", false, true},
		{"a/b", "a/+", false, true},
		{"a/b", "a/c", false, false},
		{"a/+/c", "a/b/#", false, true},
		{"+", "$SYS", false, false},
		{"secret/#", "#", false, true},
		{"a", "a/b", false, false},
		{"a/b", "a", false, false},
		{"a/b/c", "a/b/c", true, true},
	}
	for _, c := range cases {
		if got := covers(c.p, c.f); got != c.cover {
			t.Errorf("covers(%q, %q) = %v, want %v", c.p, c.f, got, c.cover)
		}
		if got := overlaps(c.p, c.f); got != c.overlap {
			t.Errorf("overlaps(%q, %q) = %v, want %v", c.p, c.f, got, c.overlap)
		}
		if got := overlaps(c.f, c.p); got != c.overlap {
			t.Errorf("overlaps(%q, %q) = %v, want %v (swapped)", c.f, c.p, got, c.overlap)
		}
	}
}
