package session

import (
	"math/rand/v2"
	"testing"
)

func TestIDsExhaustAndReuse(t *testing.T) {
	var a IDs
	seen := map[uint16]bool{}
	for i := 0; i < 65535; i++ {
		id, ok := a.Alloc()
		if !ok || id == 0 || seen[id] {
			t.Fatalf("alloc %d: id %d ok %v (seen %v)", i, id, ok, seen[id])
		}
		seen[id] = true
	}
	if _, ok := a.Alloc(); ok {
		t.Fatal("allocated a 65536th id")
	}
	if !a.Free(4711) || a.Free(4711) {
		t.Fatal("free of a used id must succeed exactly once")
	}
	if id, ok := a.Alloc(); !ok || id != 4711 {
		t.Fatalf("after freeing 4711 got %d %v", id, ok)
	}
	if a.Len() != 65535 {
		t.Fatalf("Len %d", a.Len())
	}
}

func TestIDsRandomAgainstMap(t *testing.T) {
	var a IDs
	ref := map[uint16]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		switch r.IntN(3) {
		case 0, 1:
			id, ok := a.Alloc()
			if !ok {
				t.Fatal("ran out of ids")
			}
			if ref[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			ref[id] = true
		case 2:
			id := uint16(r.IntN(65536))
			if a.Free(id) != ref[id] {
				t.Fatalf("Free(%d) disagrees with reference", id)
			}
			delete(ref, id)
		}
		if len(ref) > 60000 { // keep room so Alloc never runs out
			for id := range ref {
				a.Free(id)
				delete(ref, id)
				if len(ref) < 1000 {
					break
				}
			}
		}
	}
	if a.Len() != len(ref) {
		t.Fatalf("Len %d, reference %d", a.Len(), len(ref))
	}
}

func TestIDsUse(t *testing.T) {
	var a IDs
	if !a.Use(10) || a.Use(10) || a.Use(0) {
		t.Fatal("Use: want true once for 10, false for a repeat and for 0")
	}
	got := map[uint16]bool{}
	for i := 0; i < 20; i++ {
		id, _ := a.Alloc()
		got[id] = true
	}
	if got[10] {
		t.Fatal("Alloc returned an id taken with Use")
	}
	for id := uint16(1); id <= 21; id++ {
		if !got[id] && id != 10 {
			t.Fatalf("id %d skipped: %v", id, got)
		}
	}
}

func BenchmarkIDsAllocFree(b *testing.B) {
	var a IDs
	window := make([]uint16, 0, 64)
	for i := 0; i < b.N; i++ {
		if len(window) == cap(window) {
			a.Free(window[0])
			window = window[1:]
		}
		id, _ := a.Alloc()
		window = append(window, id)
		if cap(window)-len(window) == 0 && len(window) < 64 {
			window = append(make([]uint16, 0, 64), window...)
		}
	}
}
