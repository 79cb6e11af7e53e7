package session

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

func TestQueueFIFOAndPushFront(t *testing.T) {
	var q Queue[int]
	var model []int
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		switch op := r.IntN(4); {
		case op < 2:
			q.Push(i)
			model = append(model, i)
		case op == 2 && len(model) > 0:
			if got := q.Pop(); got != model[0] {
				t.Fatalf("step %d: Pop %d, want %d", i, got, model[0])
			}
			model = model[1:]
		case op == 3:
			q.PushFront(-i)
			model = append([]int{-i}, model...)
		}
		if q.Len() != len(model) {
			t.Fatalf("step %d: Len %d, want %d", i, q.Len(), len(model))
		}
		if len(model) > 0 && *q.Peek() != model[0] {
			t.Fatalf("step %d: Peek %d, want %d", i, *q.Peek(), model[0])
		}
	}
	odd := q.Extract(func(v *int) bool { return *v%2 != 0 })
	var wantOdd, wantEven []int
	for _, v := range model {
		if v%2 != 0 {
			wantOdd = append(wantOdd, v)
		} else {
			wantEven = append(wantEven, v)
		}
	}
	if !slices.Equal(odd, wantOdd) {
		t.Fatalf("Extract returned %d items out of order", len(odd))
	}
	var rest []int
	for q.Len() > 0 {
		rest = append(rest, q.Pop())
	}
	if !slices.Equal(rest, wantEven) {
		t.Fatal("Extract did not keep the order of the rest")
	}
	if q.Peek() != nil || q.buf != nil {
		t.Fatal("a drained queue keeps its large buffer")
	}
}

func TestOutboundWindowAndIDs(t *testing.T) {
	var o Outbound[string]
	o.SetWindow(2)
	now := time.Now()
	a, ok1 := o.Add("a", 1, now)
	b, ok2 := o.Add("b", 2, now)
	if !ok1 || !ok2 || a == b || a == 0 || b == 0 {
		t.Fatalf("Add: %d %v, %d %v", a, ok1, b, ok2)
	}
	if !o.Full() {
		t.Fatal("window of 2 with 2 in flight is not full")
	}
	if _, ok := o.Add("c", 1, now); ok {
		t.Fatal("Add beyond the window succeeded")
	}
	if _, ok := o.Ack(b); ok {
		t.Fatal("PUBACK completed a QoS 2 flight")
	}
	if _, ok := o.Comp(b); ok {
		t.Fatal("PUBCOMP completed a QoS 2 flight before PUBREC")
	}
	f, ok := o.Ack(a)
	if !ok || f.Item != "a" || o.Len() != 1 || o.Full() {
		t.Fatalf("Ack: %+v %v, Len %d", f, ok, o.Len())
	}
	if _, ok := o.Ack(a); ok {
		t.Fatal("a second PUBACK for the same id completed something")
	}
	if r, _ := o.Rec(b, packet.Success, now); r != RecRelease {
		t.Fatalf("PUBREC 0: %v", r)
	}
	if r, _ := o.Rec(b, packet.Success, now); r != RecRelease {
		t.Fatalf("a retransmitted PUBREC must be answered with PUBREL again: %v", r)
	}
	if r, _ := o.Rec(b, packet.UnspecifiedError, now); r != RecRelease {
		t.Fatalf("a failing PUBREC after the release must not end the flight: %v", r)
	}
	if f, ok := o.Comp(b); !ok || f.Item != "b" || o.Len() != 0 {
		t.Fatalf("Comp: %+v %v", f, ok)
	}
	if r, _ := o.Rec(b, packet.Success, now); r != RecUnknown {
		t.Fatalf("PUBREC for a completed id: %v", r)
	}
}

// [v5 MQTT-4.3.3-4] a PUBREC of 0x80 or above ends the exchange: no
// PUBREL, the id and the window slot are free.
func TestOutboundFailedPubrec(t *testing.T) {
	var o Outbound[string]
	o.SetWindow(1)
	id, _ := o.Add("x", 2, time.Now())
	r, f := o.Rec(id, packet.NotAuthorized, time.Now())
	if r != RecFailed || f.Item != "x" {
		t.Fatalf("Rec 0x87: %v %+v", r, f)
	}
	if o.Len() != 0 || o.Full() || o.ids.InUse(id) {
		t.Fatal("the failed flight still holds its slot or its id")
	}
	if _, ok := o.Add("y", 2, time.Now()); !ok {
		t.Fatal("no room after a failed PUBREC")
	}
}

func TestOutboundResumeInOrderWithinWindow(t *testing.T) {
	var o Outbound[int]
	now := time.Now()
	var ids []uint16
	for i := range 10 {
		id, _ := o.Add(i, 1+byte(i%2), now)
		ids = append(ids, id)
	}
	// Free a few ids and reuse them, so that id order differs from send order.
	for _, i := range []int{0, 2, 4} {
		o.Ack(ids[i])
	}
	for i := 10; i < 13; i++ {
		o.Add(i, 1, now)
	}
	o.Rec(ids[1], 0, now) // released: resent as PUBREL
	o.Resume()
	o.SetWindow(4) // the peer came back with a smaller Receive Maximum
	var got []int
	for {
		id, f, ok := o.NextResend(now)
		if !ok {
			break
		}
		if o.Get(id) != f {
			t.Fatal("NextResend returned a flight under another id")
		}
		got = append(got, f.Item)
	}
	if !slices.Equal(got, []int{1, 3, 5, 6}) {
		t.Fatalf("first resends %v, want [1 3 5 6] (send order, window 4)", got)
	}
	if !o.Resending() {
		t.Fatal("resends left but Resending is false")
	}
	// Completing two opens the window for two more.
	if _, ok := o.Ack(ids[6]); !ok { // item 6, QoS 1
		t.Fatal("Ack of a resent QoS 1 flight")
	}
	if _, ok := o.Comp(ids[1]); !ok { // item 1, QoS 2, released
		t.Fatal("Comp of a resent released flight")
	}
	got = got[:0]
	for {
		_, f, ok := o.NextResend(now)
		if !ok {
			break
		}
		got = append(got, f.Item)
	}
	if !slices.Equal(got, []int{7, 8}) {
		t.Fatalf("then %v, want [7 8]", got)
	}
}

func TestOutboundRestoreAndOverdue(t *testing.T) {
	var o Outbound[string]
	t0 := time.Now()
	if !o.Restore(7, Flight[string]{Item: "old", QoS: 2, Seq: 40, Sent: t0, Released: true}) {
		t.Fatal("Restore failed")
	}
	if o.Restore(7, Flight[string]{Item: "dup", QoS: 1, Seq: 41}) {
		t.Fatal("Restore reused an id in use")
	}
	id, _ := o.Add("new", 1, t0.Add(time.Minute))
	if id == 7 {
		t.Fatal("Add handed out a restored id")
	}
	if o.Get(id).Seq <= 40 {
		t.Fatal("a new flight is ordered before a restored one")
	}
	if !o.Overdue(t0.Add(time.Second)) || o.Overdue(t0) {
		t.Fatal("Overdue")
	}
	if f, ok := o.Comp(7); !ok || f.Item != "old" {
		t.Fatal("a restored released flight does not complete at PUBCOMP")
	}
	o.Clear()
	if o.Len() != 0 || o.Window() != 65535 {
		t.Fatal("Clear")
	}
}

func TestInboundExactlyOnce(t *testing.T) {
	in := Inbound{Max: 2}
	if first, err := in.Receive(1); !first || err != nil {
		t.Fatal("first PUBLISH 1")
	}
	// [v5 MQTT-4.3.3-10] a retransmission before PUBREL is not passed on again.
	if first, err := in.Receive(1); first || err != nil {
		t.Fatal("duplicate PUBLISH 1 passed on")
	}
	in.Receive(2)
	_, err := in.Receive(3)
	var pe *packet.ProtocolError
	if !errors.As(err, &pe) || pe.Code != packet.ReceiveMaximumExceeded {
		t.Fatalf("third unacknowledged QoS 2: %v", err)
	}
	if in.Pending(3) {
		t.Fatal("a refused PUBLISH was recorded")
	}
	if !in.Release(1) || in.Release(1) {
		t.Fatal("Release must succeed once")
	}
	// After PUBREL the id is new again.
	if first, _ := in.Receive(1); !first {
		t.Fatal("id 1 after PUBREL is not a new message")
	}
	if !slices.Equal(in.IDs(), []uint16{1, 2}) {
		t.Fatalf("IDs %v", in.IDs())
	}
}

// TestInboundNewConnection: the send quota is not preserved across
// connections (section 4.9): ids pending from an earlier connection are
// still duplicates and still released, but a new connection may have Max
// new ones unacknowledged besides them. The PUBREL of an old one frees a
// unit, as the peer counts its PUBCOMP.
func TestInboundNewConnection(t *testing.T) {
	in := Inbound{Max: 2}
	in.Receive(1)
	in.Receive(2)
	if _, err := in.Receive(3); !errors.Is(err, ErrReceiveMaximum) {
		t.Fatalf("third: %v", err)
	}
	in.NewConnection()
	if first, err := in.Receive(1); first || err != nil {
		t.Fatal("a PUBLISH pending from the last connection is new again")
	}
	for _, id := range []uint16{3, 4} {
		if first, err := in.Receive(id); !first || err != nil {
			t.Fatalf("new connection, PUBLISH %d: %v %v", id, first, err)
		}
	}
	if _, err := in.Receive(5); !errors.Is(err, ErrReceiveMaximum) {
		t.Fatalf("Max new ones on the new connection, then one more: %v", err)
	}
	if !in.Release(1) || in.Len() != 3 {
		t.Fatal("Release of an old id")
	}
	if first, err := in.Receive(5); !first || err != nil {
		t.Fatalf("after the PUBREL of an old id: %v %v", first, err)
	}
	if _, err := in.Receive(6); !errors.Is(err, ErrReceiveMaximum) {
		t.Fatalf("one more: %v", err)
	}
	if !slices.Equal(in.IDs(), []uint16{2, 3, 4, 5}) {
		t.Fatalf("IDs %v", in.IDs())
	}
	// Releasing the old ones with nothing counted does not go below 0.
	in.NewConnection()
	for _, id := range []uint16{2, 3, 4, 5} {
		in.Release(id)
	}
	in.Receive(7)
	in.Receive(8)
	if _, err := in.Receive(9); !errors.Is(err, ErrReceiveMaximum) {
		t.Fatalf("the count went below 0: %v", err)
	}
	in.Clear()
	in.Restore(7)
	in.Restore(7)
	in.Receive(8)
	if _, err := in.Receive(9); !errors.Is(err, ErrReceiveMaximum) || in.Len() != 2 {
		t.Fatalf("restored ids count until NewConnection: %v, Len %d", err, in.Len())
	}
}

func TestAliases(t *testing.T) {
	var in InboundAliases
	in.Reset(2)
	set := &packet.Publish{Topic: "a/b"}
	set.Properties.TopicAlias = 2
	if err := in.Resolve(set); err != nil {
		t.Fatal(err)
	}
	use := &packet.Publish{}
	use.Properties.TopicAlias = 2
	if err := in.Resolve(use); err != nil || use.Topic != "a/b" {
		t.Fatalf("use alias: %v %q", err, use.Topic)
	}
	var pe *packet.ProtocolError
	unset := &packet.Publish{}
	unset.Properties.TopicAlias = 1
	if err := in.Resolve(unset); !errors.As(err, &pe) || pe.Code != packet.ProtocolErrorCode {
		t.Fatalf("alias never set: %v", err)
	}
	over := &packet.Publish{Topic: "x"}
	over.Properties.TopicAlias = 3
	if err := in.Resolve(over); !errors.As(err, &pe) || pe.Code != packet.TopicAliasInvalid {
		t.Fatalf("alias above the maximum: %v", err)
	}
	in.Reset(2) // a new connection forgets them [v5 MQTT-3.3.2-7]
	if err := in.Resolve(&packet.Publish{Properties: use.Properties}); err == nil {
		t.Fatal("alias survived Reset")
	}

	var out OutboundAliases
	p := &packet.Publish{Topic: "t/1"}
	if out.Apply(p) != 0 || p.Properties.TopicAlias != 0 {
		t.Fatal("aliases sent to a peer with Topic Alias Maximum 0")
	}
	out.Reset(1)
	p = &packet.Publish{Topic: "t/1"}
	a := out.Apply(p)
	if a != 1 || p.Topic != "t/1" {
		t.Fatalf("first use: alias %d topic %q", a, p.Topic)
	}
	p2 := &packet.Publish{Topic: "t/1"}
	if out.Apply(p2) != 1 || p2.Properties.TopicAlias != 1 || p2.Topic != "t/1" {
		t.Fatal("an uncommitted alias was used alone")
	}
	out.Commit("t/1", a)
	p3 := &packet.Publish{Topic: "t/1"}
	if out.Apply(p3) != 0 || p3.Topic != "" || p3.Properties.TopicAlias != 1 {
		t.Fatalf("committed alias: topic %q alias %d", p3.Topic, p3.Properties.TopicAlias)
	}
	p4 := &packet.Publish{Topic: "t/2"}
	if out.Apply(p4) != 0 || p4.Properties.TopicAlias != 0 {
		t.Fatal("alias beyond the peer's maximum")
	}
}

// TestOutboundKeepsItsMap: a steady flow of one flight at a time reuses
// the map; a burst gives it back once drained.
func TestOutboundKeepsItsMap(t *testing.T) {
	var o Outbound[int]
	now := time.Now()
	for i := range 3 {
		id, _ := o.Add(i, 1, now)
		o.Ack(id)
		if o.flights == nil {
			t.Fatal("the map of a small window was given back")
		}
	}
	var ids []uint16
	for i := range bigWindow + 1 {
		id, _ := o.Add(i, 1, now)
		ids = append(ids, id)
	}
	for _, id := range ids {
		o.Ack(id)
	}
	if o.flights != nil || o.peak != 0 {
		t.Fatal("the map of a burst was kept")
	}
	if avg := testing.AllocsPerRun(100, func() {
		id, _ := o.Add(1, 1, now)
		o.Ack(id)
	}); avg > 1 {
		t.Fatalf("%v allocations per flight, want 1 (the flight)", avg)
	}
}
