package storetest

import (
	"bytes"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ternmq/tern/store"
)

// testReopen: a closed session opens again to the same state, as many
// times as it is reopened, and goes on from there.
func (h *harness) testReopen(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	for _, o := range roundTripCases() {
		m.add(t, s, o)
	}
	m.sent(t, s, 1, 17)
	m.released(t, s, 1)
	m.del(t, s, 2)
	m.addIn(t, s, 1)
	m.addIn(t, s, 65535)
	for range 3 {
		s = h.reopen(t, s, dir)
		m.check(t, s)
	}
	m.add(t, s, store.Outgoing{Seq: 4, Msg: FullMessage(4)})
	m.sent(t, s, 4, 2)
	m.delIn(t, s, 1)
	m.check(t, h.reopen(t, s, dir))
}

// testCrash copies the directory of an open session at many points, as
// a process killed there would leave it, and opens each copy: it must
// hold every change whose call returned, and work on from there.
func (h *harness) testCrash(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	r := rand.New(rand.NewPCG(5, 8))
	var next uint64
	steps := 1500
	if testing.Short() {
		steps = 400
	}
	crashes := 0
	for i := 1; i <= steps; i++ {
		m.step(t, s, r, &next)
		if r.IntN(100) != 0 {
			continue
		}
		crashes++
		snap := filepath.Join(t.TempDir(), "crashed")
		CopyDir(t, dir, snap)
		c := h.open(t, snap)
		m.check(t, c)
		// The survivor works: it takes changes and keeps them.
		cm := m.clone()
		cnext := next
		for range 20 {
			cm.step(t, c, r, &cnext)
		}
		cm.check(t, h.reopen(t, c, snap))
	}
	if crashes == 0 {
		t.Fatal("the test crashed nothing: change its seed")
	}
	m.check(t, s)
}

// testTorn cuts the file a change was appended to inside that change, at
// several points, as a crash in the middle of write(2) or a power loss
// leaves it: the store opens with every change before it, drops the
// torn one, and appends after what it kept (not after the torn bytes).
func (h *harness) testTorn(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	m.add(t, s, store.Outgoing{Seq: 1, Msg: FullMessage(1), PacketID: 4})
	m.addIn(t, s, 8)
	m.add(t, s, store.Outgoing{Seq: 2, Msg: FullMessage(2)})
	m.sent(t, s, 2, 5)

	// The change to tear: the store might rewrite its files on some
	// change (a compaction); try a few changes until one is appended.
	var before, after string
	var grown []string
	torn := m.clone()
	for try := 0; len(grown) == 0; try++ {
		if try == 5 {
			t.Fatal("five changes in a row appended to no file: is the store AppendOnly?")
		}
		before = filepath.Join(t.TempDir(), "before")
		CopyDir(t, dir, before)
		m = torn.clone()
		big := FullMessage(uint64(100 + try))
		big.Payload = bytes.Repeat([]byte{0xA5}, 4000)
		torn.add(t, s, store.Outgoing{Seq: uint64(100 + try), Msg: big, PacketID: 6})
		after = filepath.Join(t.TempDir(), "after")
		CopyDir(t, dir, after)
		grown = grownFiles(t, before, after)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range grown {
		a, _ := os.Stat(filepath.Join(before, name))
		b, _ := os.Stat(filepath.Join(after, name))
		var from int64
		if a != nil {
			from = a.Size()
		}
		to := b.Size()
		for _, cut := range []int64{from + 1, from + 4, from + 9, (from + to) / 2, to - 1} {
			if cut <= from || cut >= to {
				continue
			}
			// A write cut short: the file ends inside the change.
			h.checkTorn(t, m, after, name, func(p string) error { return os.Truncate(p, cut) })
			// The file has its full length but the end of the change
			// never reached the disk: zeros (a file system that grew the
			// file first) or other bytes there.
			h.checkTorn(t, m, after, name, func(p string) error { return overwrite(p, cut, to, 0) })
			h.checkTorn(t, m, after, name, func(p string) error { return overwrite(p, cut, cut+1, 0x5A) })
		}
	}
}

// checkTorn copies dir, damages file name in the copy with tear, and
// opens it: it must hold m, take changes after the tear and keep them.
func (h *harness) checkTorn(t *testing.T, m *model, dir, name string, tear func(string) error) {
	t.Helper()
	d := filepath.Join(t.TempDir(), "torn")
	CopyDir(t, dir, d)
	if err := tear(filepath.Join(d, name)); err != nil {
		t.Fatal(err)
	}
	c := h.open(t, d)
	m.check(t, c) // the torn change is gone, the rest is there
	cm := m.clone()
	cm.add(t, c, store.Outgoing{Seq: 200, Msg: FullMessage(200)})
	cm.addIn(t, c, 9)
	cm.del(t, c, 1)
	c = h.reopen(t, c, d)
	cm.check(t, c) // and what came after the tear was kept
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// overwrite sets bytes [from, to) of the file at p to b, or flips them
// if they are b already.
func overwrite(p string, from, to int64, b byte) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	for i := from; i < to; i++ {
		if data[i] == b {
			data[i] = ^b
		} else {
			data[i] = b
		}
	}
	return os.WriteFile(p, data, 0o600)
}

// grownFiles lists the files (relative names) that are longer in after
// than in before with before's (not empty) bytes as their prefix: the
// files a change was appended to.
func grownFiles(t testing.TB, before, after string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(after, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(after, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		a, err := os.ReadFile(filepath.Join(before, rel))
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		// A file created meanwhile (a compaction's new log, written in
		// the background, say) is not one the change was appended to.
		if len(a) > 0 && len(b) > len(a) && bytes.HasPrefix(b, a) {
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
