package route

import (
	"testing"

	"github.com/ternmq/tern/backplane"
)

func TestRoute(t *testing.T) {
	var tb Table
	tb.Add("a", "x/+")
	tb.Add("b", "x/#")
	tb.Add("b", "$share/g/x/+")
	tb.Add("c", "$share/g/x/+")
	tb.Add("c", "#")
	tb.Add("c", "bad/#/filter") // ignored
	r := tb.Route("x/1", "a")
	if r["a"] != nil {
		t.Errorf("the publishing node a is routed its own plain message: %+v", r["a"])
	}
	if !r["b"].Plain || !r["c"].Plain {
		t.Errorf("b and c have matching plain filters: %+v %+v", r["b"], r["c"])
	}
	picks := map[string]int{}
	for range 10 {
		for id, tg := range tb.Route("x/1", "a") {
			for _, g := range tg.Groups {
				if g != (backplane.Group{Name: "g", Filter: "x/+"}) {
					t.Fatalf("group %v", g)
				}
				picks[id]++
			}
		}
	}
	if picks["b"] != 5 || picks["c"] != 5 {
		t.Errorf("round robin over b and c gave %v, want 5 each", picks)
	}
	if r := tb.Route("$SYS/x", "a"); len(r) != 0 {
		t.Errorf("'#' matched a '$' topic: %v", r)
	}
	tb.Drop("c")
	if r := tb.Route("y", "a"); len(r) != 0 {
		t.Errorf("after Drop(c): %v", r)
	}
	if got := tb.Nodes(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Nodes() = %v, want [a b]", got)
	}
	tb.Set("b", []string{"z"})
	if r := tb.Route("x/1", "a"); len(r) != 0 {
		t.Errorf("after Set(b, [z]): %v", r)
	}
}

func TestLocal(t *testing.T) {
	var l Local
	if !l.Inc("f") || l.Inc("f") {
		t.Fatal("Inc: first should be reported once")
	}
	if last, ok := l.Dec("f"); last || !ok {
		t.Fatal("Dec: not the last yet")
	}
	if last, ok := l.Dec("f"); !last || !ok {
		t.Fatal("Dec: the last")
	}
	if _, ok := l.Dec("f"); ok {
		t.Fatal("Dec below zero")
	}
}
