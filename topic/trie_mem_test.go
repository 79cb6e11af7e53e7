package topic

import (
	"runtime"
	"strconv"
	"testing"
)

// heapInUse returns the bytes of live heap objects after a full GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestTrieReleasesMemory checks that churn does not leave memory behind:
// 100,000 entries under one filter (a node with a key index), removed
// down to a few, and 100,000 distinct filters added and removed. Each
// entry costs at least 16 bytes in the entries slice and about as much
// again in the index map, so a leak of either is over 1.5 MiB, far above
// the 256 KiB allowed for runtime noise.
func TestTrieReleasesMemory(t *testing.T) {
	const n = 100_000
	const slack = 256 << 10
	tr := NewTrie[int, int]()
	filters := make([]string, n)
	for i := range filters {
		filters[i] = "g/" + strconv.Itoa(i) + "/x"
	}
	before := heapInUse()

	for i := 0; i < n; i++ {
		tr.Add("a/b", i, i)
	}
	for i := 0; i < n-indexMax; i++ {
		if !tr.Remove("a/b", i) {
			t.Fatalf("Remove(a/b, %d) = false", i)
		}
	}
	if got := tr.Len(); got != indexMax {
		t.Fatalf("Len = %d, want %d", got, indexMax)
	}
	for i := n - indexMax; i < n; i++ {
		if v, ok := tr.Get("a/b", i); !ok || v != i {
			t.Fatalf("Get(a/b, %d) = %d, %v", i, v, ok)
		}
	}
	if after := heapInUse(); after > before+slack {
		t.Errorf("a node shrunk from %d to %d entries still holds %d KiB", n, indexMax, (after-before)>>10)
	}
	for i := n - indexMax; i < n; i++ {
		tr.Remove("a/b", i)
	}

	for i, f := range filters {
		tr.Add(f, i, i)
	}
	for i, f := range filters {
		if !tr.Remove(f, i) {
			t.Fatalf("Remove(%q) = false", f)
		}
	}
	if tr.Len() != 0 || tr.nodes != 0 || !tr.root.unused() {
		t.Fatalf("after removing all: Len=%d nodes=%d", tr.Len(), tr.nodes)
	}
	if after := heapInUse(); after > before+slack {
		t.Errorf("%d filters added and removed left %d KiB", n, (after-before)>>10)
	}
	runtime.KeepAlive(filters)
}
