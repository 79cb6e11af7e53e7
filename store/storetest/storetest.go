// Package storetest is the conformance suite every implementation of
// [store.Session] passes. An implementation's test calls [Run] with a
// [Config] that says how to open a session stored in a directory and
// which promises the store makes:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			Open: func(t testing.TB, dir string) (store.Session, error) {
//				return disk.Open(dir, disk.Options{})
//			},
//			Durable: true, CrashSafe: true, AppendOnly: true,
//		})
//	}
//
// Every store is checked for round trips of every field of
// [store.Outgoing] (every MQTT 5 property of the message included),
// ordering, the semantics of each method and its errors, Clear, Close,
// isolation of what Outgoing returns, and concurrent use (run the suite
// with -race). A Durable store is also reopened after Close; a CrashSafe
// one is "killed": the suite copies its directory while it is open, as
// a process killed at that moment would leave it, and opens the copy;
// an AppendOnly one has its files torn mid-record, as a write cut short
// by a crash leaves them, and must open with every complete change kept
// and the torn one dropped, then go on working.
//
// [BenchmarkCycle] measures one message's way through a store.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// Config describes the store under test.
type Config struct {
	// Open opens the session stored in dir, an empty directory the first
	// time. A store that keeps nothing on disk may ignore dir. The suite
	// closes every session it opens.
	Open func(t testing.TB, dir string) (store.Session, error)
	// Durable: what a session held when it was closed is there when dir
	// is opened again.
	Durable bool
	// CrashSafe: every change is in dir's files by the time its call
	// returns, so that a copy of dir taken while the session is open
	// opens to the state of the calls that returned (the state a process
	// killed at that moment leaves behind).
	CrashSafe bool
	// AppendOnly: the store writes a change by appending it to a file of
	// dir, so that truncating that file anywhere inside the last change
	// is a torn write, which the store must detect and drop.
	AppendOnly bool
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, c Config) {
	if c.Open == nil {
		t.Fatal("storetest.Config.Open is nil: set it to a function that opens the store in a directory")
	}
	if (c.CrashSafe || c.AppendOnly) && !c.Durable {
		t.Fatal("storetest.Config: CrashSafe and AppendOnly need Durable")
	}
	h := &harness{Config: c}
	t.Run("Empty", h.testEmpty)
	t.Run("RoundTrip", h.testRoundTrip)
	t.Run("Order", h.testOrder)
	t.Run("Marks", h.testMarks)
	t.Run("Exists", h.testExists)
	t.Run("Incoming", h.testIncoming)
	t.Run("Clear", h.testClear)
	t.Run("Closed", h.testClosed)
	t.Run("Isolation", h.testIsolation)
	t.Run("Concurrent", h.testConcurrent)
	t.Run("Model", h.testModel)
	if c.Durable {
		t.Run("Reopen", h.testReopen)
	}
	if c.CrashSafe {
		t.Run("Crash", h.testCrash)
	}
	if c.AppendOnly {
		t.Run("TornWrite", h.testTorn)
	}
}

type harness struct{ Config }

// open opens the session in dir and closes it when the test ends.
func (h *harness) open(t testing.TB, dir string) store.Session {
	t.Helper()
	s, err := h.Open(t, dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen closes s and opens dir again.
func (h *harness) reopen(t testing.TB, s store.Session, dir string) store.Session {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return h.open(t, dir)
}

func (h *harness) testEmpty(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	expect(t, s, state{})
	if h.Durable {
		expect(t, h.reopen(t, s, dir), state{})
	}
}

// FullMessage returns a message that sets every field of
// [message.Message] and every property a PUBLISH carries for an
// application message, varied by n: what a store must keep, bit for bit.
func FullMessage(n uint64) *message.Message {
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC).Add(time.Duration(n) * time.Second)
	payload := make([]byte, 64+int(n%7))
	for i := range payload {
		payload[i] = byte(int(n) + i*37) // every byte value shows up, 0x00 and 0xff among them
	}
	m := &message.Message{
		Topic:   fmt.Sprintf("tern/ünïcode/%d", n),
		Payload: payload,
		QoS:     byte(1 + n%2),
		Retain:  n%3 == 0,
		From:    fmt.Sprintf("client-%d-ü", n),
		Created: created,
		Expires: created.Add(time.Hour + time.Duration(n)*time.Millisecond),
		Properties: packet.Properties{
			PayloadFormat:   1,
			MessageExpiry:   3600 + uint32(n),
			ContentType:     "application/json; charset=utf-8",
			ResponseTopic:   fmt.Sprintf("reply/%d", n),
			CorrelationData: []byte{0x00, 0x01, byte(n), 0xff},
			User: []packet.UserProperty{
				{Key: "k", Value: "v"},
				{Key: "k", Value: "v again"}, // names repeat, order matters
				{Key: "", Value: ""},
				{Key: "ünï", Value: fmt.Sprintf("🙂 %d", n)},
			},
		},
	}
	return m
}

// roundTripCases are messages at the edges of what a store keeps.
func roundTripCases() []store.Outgoing {
	bare := &message.Message{Topic: "t", QoS: 1} // no payload, properties, times or origin
	marked := &message.Message{Topic: "a/b", QoS: 2, Payload: []byte{}, Created: time.Unix(0, 0)}
	marked.Properties.Mark(packet.PropPayloadFormat) // present with the value 0
	marked.Properties.Mark(packet.PropMessageExpiry)
	big := FullMessage(7)
	big.Payload = bytes.Repeat([]byte("0123456789abcdef\x00"), 300_000/17)
	local := FullMessage(8)
	local.Created = time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", 3600))
	local.Expires = time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC) // beyond int64 nanoseconds since 1970
	return []store.Outgoing{
		{Seq: 1, Msg: FullMessage(1)},
		{Seq: 2, Msg: FullMessage(2), PacketID: 1},
		{Seq: 3, Msg: FullMessage(4), PacketID: 65535, Released: true},
		{Seq: 1 << 40, Msg: bare},
		{Seq: 1<<40 + 1, Msg: marked, PacketID: 9},
		{Seq: 1<<40 + 2, Msg: big, PacketID: 10},
		{Seq: 1<<64 - 1, Msg: local, PacketID: 11},
	}
}

func (h *harness) testRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	want := roundTripCases()
	for _, o := range want {
		if err := s.AddOutgoing(o); err != nil {
			t.Fatalf("AddOutgoing(seq %d): %v", o.Seq, err)
		}
	}
	expect(t, s, state{out: want})
	if h.Durable {
		expect(t, h.reopen(t, s, dir), state{out: want})
	}
}

func (h *harness) testOrder(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	// Out of order, with gaps, with deletes in between, and a deleted
	// Seq coming back.
	for _, seq := range []uint64{50, 10, 40, 20, 1 << 63, 30, 5, 60} {
		m.add(t, s, store.Outgoing{Seq: seq, Msg: FullMessage(seq)})
	}
	m.del(t, s, 20)
	m.del(t, s, 5)
	m.add(t, s, store.Outgoing{Seq: 5, Msg: FullMessage(500)})
	m.add(t, s, store.Outgoing{Seq: 25, Msg: FullMessage(25)})
	m.del(t, s, 1<<63)
	m.add(t, s, store.Outgoing{Seq: 1, Msg: FullMessage(1)})
	m.check(t, s)
	if h.Durable {
		m.check(t, h.reopen(t, s, dir))
	}
}

func (h *harness) testMarks(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	for seq := uint64(1); seq <= 4; seq++ {
		m.add(t, s, store.Outgoing{Seq: seq, Msg: FullMessage(seq)})
	}
	m.sent(t, s, 1, 100)
	m.sent(t, s, 2, 200)
	m.sent(t, s, 2, 201) // sent again under another id: the last one counts
	m.released(t, s, 2)
	m.released(t, s, 2) // a second PUBREC
	m.sent(t, s, 3, 300)
	m.released(t, s, 3)
	m.sent(t, s, 3, 301) // the id can change after the release too
	m.check(t, s)
	if o, _ := s.Outgoing(); len(o) != 4 || o[1].PacketID != 201 || !o[1].Released || o[0].Released {
		t.Fatalf("after the marks: %+v", o)
	}

	// Unknown sequence numbers.
	for _, seq := range []uint64{0, 5, 1 << 50} {
		if err := s.MarkSent(seq, 1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MarkSent(%d) of an unknown seq: %v, want ErrNotFound", seq, err)
		}
		if err := s.MarkReleased(seq); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MarkReleased(%d) of an unknown seq: %v, want ErrNotFound", seq, err)
		}
		if err := s.DeleteOutgoing(seq); err != nil {
			t.Errorf("DeleteOutgoing(%d) of an unknown seq: %v, want nil", seq, err)
		}
	}
	m.del(t, s, 2)
	m.del(t, s, 2) // twice
	if err := s.MarkSent(2, 7); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkSent of a deleted seq: %v, want ErrNotFound", err)
	}
	if err := s.MarkReleased(2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkReleased of a deleted seq: %v, want ErrNotFound", err)
	}
	m.check(t, s)
	if h.Durable {
		m.check(t, h.reopen(t, s, dir))
	}
}

func (h *harness) testExists(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	m.add(t, s, store.Outgoing{Seq: 7, Msg: FullMessage(7), PacketID: 3})
	if err := s.AddOutgoing(store.Outgoing{Seq: 7, Msg: FullMessage(8)}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("AddOutgoing of a Seq in use: %v, want ErrExists", err)
	}
	m.check(t, s) // the first message is kept, unchanged
	m.del(t, s, 7)
	m.add(t, s, store.Outgoing{Seq: 7, Msg: FullMessage(9)}) // free again once deleted
	m.check(t, s)
	if h.Durable {
		m.check(t, h.reopen(t, s, dir))
	}
}

func (h *harness) testIncoming(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	for _, id := range []uint16{9, 65535, 1, 300, 2, 9} { // 9 twice: not an error
		m.addIn(t, s, id)
	}
	m.delIn(t, s, 300)
	m.delIn(t, s, 300) // twice
	m.delIn(t, s, 4)   // never added
	m.addIn(t, s, 300) // back again
	m.delIn(t, s, 1)
	m.check(t, s)
	if h.Durable {
		s = h.reopen(t, s, dir)
		m.check(t, s)
	}
	// Outgoing and incoming are independent: the same numbers in both.
	m.add(t, s, store.Outgoing{Seq: 9, Msg: FullMessage(9), PacketID: 9})
	m.delIn(t, s, 9)
	m.check(t, s)
}

func (h *harness) testClear(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	m := newModel()
	for seq := uint64(1); seq <= 20; seq++ {
		m.add(t, s, store.Outgoing{Seq: seq, Msg: FullMessage(seq), PacketID: uint16(seq)})
		m.addIn(t, s, uint16(seq*3))
	}
	m.released(t, s, 4)
	m.clear(t, s)
	m.check(t, s)
	if h.Durable {
		s = h.reopen(t, s, dir)
		m.check(t, s)
	}
	// A cleared session is a working one; old numbers may come back.
	m.add(t, s, store.Outgoing{Seq: 3, Msg: FullMessage(33)})
	m.sent(t, s, 3, 4)
	m.addIn(t, s, 6)
	m.check(t, s)
	if err := s.MarkSent(4, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkSent of a cleared seq: %v, want ErrNotFound", err)
	}
	m.clear(t, s)
	m.clear(t, s) // clearing an empty session
	m.check(t, s)
	if h.Durable {
		m.check(t, h.reopen(t, s, dir))
	}
}

func (h *harness) testClosed(t *testing.T) {
	dir := t.TempDir()
	s := h.open(t, dir)
	if err := s.AddOutgoing(store.Outgoing{Seq: 1, Msg: FullMessage(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddIncoming(5); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]func() error{
		"AddOutgoing":    func() error { return s.AddOutgoing(store.Outgoing{Seq: 2, Msg: FullMessage(2)}) },
		"MarkSent":       func() error { return s.MarkSent(1, 1) },
		"MarkReleased":   func() error { return s.MarkReleased(1) },
		"DeleteOutgoing": func() error { return s.DeleteOutgoing(1) },
		"Outgoing":       func() error { _, err := s.Outgoing(); return err },
		"AddIncoming":    func() error { return s.AddIncoming(6) },
		"DeleteIncoming": func() error { return s.DeleteIncoming(5) },
		"Incoming":       func() error { _, err := s.Incoming(); return err },
		"Clear":          s.Clear,
		"Close":          s.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if h.Durable { // nothing the closed session refused made it in
		expect(t, h.open(t, dir), state{out: []store.Outgoing{{Seq: 1, Msg: FullMessage(1)}}, in: []uint16{5}})
	}
}

func (h *harness) testIsolation(t *testing.T) {
	s := h.open(t, t.TempDir())
	m := newModel()
	m.add(t, s, store.Outgoing{Seq: 1, Msg: FullMessage(1), PacketID: 1})
	m.add(t, s, store.Outgoing{Seq: 2, Msg: FullMessage(2)})
	m.addIn(t, s, 1)
	m.addIn(t, s, 2)
	out, err := s.Outgoing()
	if err != nil {
		t.Fatal(err)
	}
	out[0].PacketID, out[0].Released, out[0].Seq = 99, true, 77
	out[1] = store.Outgoing{}
	_ = append(out[:1], store.Outgoing{Seq: 3})
	in, err := s.Incoming()
	if err != nil {
		t.Fatal(err)
	}
	in[0] = 1000
	_ = append(in[:1], 3)
	m.check(t, s) // what the caller did to the slices changed nothing
}

// expect fails t unless s holds exactly want.
func expect(t testing.TB, s store.Session, want state) {
	t.Helper()
	out, err := s.Outgoing()
	if err != nil {
		t.Fatalf("Outgoing: %v", err)
	}
	in, err := s.Incoming()
	if err != nil {
		t.Fatalf("Incoming: %v", err)
	}
	if d := diff(state{out: out, in: in}, want); d != "" {
		t.Fatalf("the store holds what it should not:\n%s", d)
	}
}

// state is everything a session holds.
type state struct {
	out []store.Outgoing
	in  []uint16
}

// diff describes how got differs from want, or returns "".
func diff(got, want state) string {
	var b bytes.Buffer
	if len(got.out) != len(want.out) {
		fmt.Fprintf(&b, "Outgoing: %d messages, want %d: seqs %v, want %v\n", len(got.out), len(want.out), seqs(got.out), seqs(want.out))
	} else {
		for i := range got.out {
			if d := DiffOutgoing(got.out[i], want.out[i]); d != "" {
				fmt.Fprintf(&b, "Outgoing[%d] (seq %d): %s\n", i, want.out[i].Seq, d)
			}
		}
	}
	if !slices.Equal(got.in, want.in) && (len(got.in) > 0 || len(want.in) > 0) {
		fmt.Fprintf(&b, "Incoming: %v, want %v\n", got.in, want.in)
	}
	return b.String()
}

func seqs(out []store.Outgoing) []uint64 {
	s := make([]uint64, len(out))
	for i, o := range out {
		s[i] = o.Seq
	}
	return s
}

// DiffOutgoing describes the first way got differs from want, comparing
// every field, the message's included (its times as instants, its
// properties field by field and by presence), or returns "".
func DiffOutgoing(got, want store.Outgoing) string {
	switch {
	case got.Seq != want.Seq:
		return fmt.Sprintf("Seq %d, want %d", got.Seq, want.Seq)
	case got.PacketID != want.PacketID:
		return fmt.Sprintf("PacketID %d, want %d", got.PacketID, want.PacketID)
	case got.Released != want.Released:
		return fmt.Sprintf("Released %v, want %v", got.Released, want.Released)
	case got.Msg == nil || want.Msg == nil:
		if got.Msg != want.Msg {
			return fmt.Sprintf("Msg %v, want %v", got.Msg, want.Msg)
		}
		return ""
	}
	return diffMessage(got.Msg, want.Msg)
}

func diffMessage(g, w *message.Message) string {
	switch {
	case g.Topic != w.Topic:
		return fmt.Sprintf("Topic %q, want %q", g.Topic, w.Topic)
	case !bytes.Equal(g.Payload, w.Payload):
		return fmt.Sprintf("Payload of %d bytes, want %d bytes %q", len(g.Payload), len(w.Payload), trunc(w.Payload))
	case g.QoS != w.QoS:
		return fmt.Sprintf("QoS %d, want %d", g.QoS, w.QoS)
	case g.Retain != w.Retain:
		return fmt.Sprintf("Retain %v, want %v", g.Retain, w.Retain)
	case g.From != w.From:
		return fmt.Sprintf("From %q, want %q", g.From, w.From)
	case !g.Created.Equal(w.Created) || g.Created.IsZero() != w.Created.IsZero():
		return fmt.Sprintf("Created %v, want %v", g.Created, w.Created)
	case !g.Expires.Equal(w.Expires) || g.Expires.IsZero() != w.Expires.IsZero():
		return fmt.Sprintf("Expires %v, want %v", g.Expires, w.Expires)
	}
	return diffProperties(&g.Properties, &w.Properties)
}

// diffProperties compares every exported field (an empty slice equals a
// nil one) and which properties are present, so that a property marked
// present with a zero value is not lost either.
func diffProperties(g, w *packet.Properties) string {
	for id := packet.PropertyID(1); id <= packet.PropSharedSubAvailable; id++ {
		if id.AllowedIn(packet.PUBLISH) && g.Has(id) != w.Has(id) {
			return fmt.Sprintf("property %v present: %v, want %v", id, g.Has(id), w.Has(id))
		}
	}
	gv, wv := reflect.ValueOf(g).Elem(), reflect.ValueOf(w).Elem()
	for i := 0; i < gv.NumField(); i++ {
		f := gv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		a, b := gv.Field(i), wv.Field(i)
		if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
			continue
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("Properties.%s %v, want %v", f.Name, a.Interface(), b.Interface())
		}
	}
	return ""
}

func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

// CopyDir copies the regular files under src to dst, as they are at this
// moment: what a process killed now leaves on disk. A file that is gone
// by the time it is read (a store's temporary file) is left out, as a
// crash just after its removal would.
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) && p != src {
			return nil // gone meanwhile (a store's temporary file): as a crash after its removal
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if os.IsNotExist(err) {
			return nil // gone meanwhile, as above
		}
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}
