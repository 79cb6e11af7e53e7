// Package backplanetest is the conformance suite every back plane
// implementation passes: forwarding to interested nodes only, exact MQTT
// matching ('+', '#' and the '$' rule), reference-counted interest, retained
// messages, client ownership with takeover, one delivery per shared group
// cluster-wide, wills of dead nodes (after their Will Delay Interval), and
// partitions that fail calls with ErrUnreachable and heal with the interest
// recovered, and durable forwarding: a node that dies (or is cut off) and
// comes back under the same ID gets what was forwarded to it while away,
// once each, in order per publishing node.
//
// An implementation's test supplies a Cluster, a fresh and isolated one per
// call (its own key prefix, its own server...):
//
//	func TestConformance(t *testing.T) {
//		backplanetest.Run(t, func(t *testing.T) backplanetest.Cluster { ... })
//	}
//
// Engines propagate interest asynchronously, so the suite never sleeps to
// wait for it: each node subscribes to a private "$sync/..." filter after the
// filters under test and waits until every other node can reach it, and it
// proves that a node got nothing by sending it a "$fence/..." message after
// the messages under test (an engine keeps the order of one node's messages
// to another).
package backplanetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
)

// Cluster is one isolated back plane under test.
type Cluster interface {
	// Join starts a node with cfg (the suite sets ID, the handlers and a
	// short Lease) and stops it when the test ends.
	Join(t *testing.T, cfg backplane.Config) backplane.Node
	// Partition cuts node id off the engine; Heal reconnects it. A Cluster
	// that cannot do this returns false from Partition, and the partition
	// tests are skipped.
	Partition(t *testing.T, id string) bool
	Heal(t *testing.T, id string)
	// Kill makes node id die without Close: it stops heartbeating and its
	// connection to the engine drops.
	Kill(t *testing.T, id string)
}

// Timeout bounds every wait in the suite.
var timeout = 20 * time.Second

// Lease is the lease the suite gives its nodes.
const Lease = 600 * time.Millisecond

// Run runs the suite, calling newCluster once per test.
func Run(t *testing.T, newCluster func(t *testing.T) Cluster) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"ForwardOnlyToInterested", testForwardOnlyToInterested},
		{"ExactMatching", testExactMatching},
		{"RefCount", testRefCount},
		{"ConcurrentInterest", testConcurrentInterest},
		{"Fidelity", testFidelity},
		{"Order", testOrder},
		{"BatchOrder", testBatchOrder},
		{"Retained", testRetained},
		{"Ownership", testOwnership},
		{"SharedGroups", testSharedGroups},
		{"WillOnDeath", testWillOnDeath},
		{"WillDelay", testWillDelay},
		{"CloseIsNotDeath", testCloseIsNotDeath},
		{"PartitionAndHeal", testPartitionAndHeal},
		{"DurableAcrossDeath", testDurableAcrossDeath},
		{"DurableAcrossPartition", testDurableAcrossPartition},
		{"ForgottenAfterKeep", testForgottenAfterKeep},
		{"BadInput", testBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{t: t, c: newCluster(t), nodes: map[string]*Rec{}}
			tt.fn(t, e)
		})
	}
}

type env struct {
	t     *testing.T
	c     Cluster
	nodes map[string]*Rec
	order []string
	seq   int
}

// Rec is a joined node and what it received.
type Rec struct {
	backplane.Node
	mu        sync.Mutex
	got       []backplane.Delivery
	takeovers []backplane.Takeover
	fences    map[string]bool
	at        map[string]time.Time // topic → first arrival
	changed   chan struct{}
}

func (r *Rec) onMessage(_ context.Context, d backplane.Delivery) {
	r.mu.Lock()
	if strings.HasPrefix(d.Message.Topic, "$fence/") || strings.HasPrefix(d.Message.Topic, "$sync/") {
		r.fences[string(d.Message.Payload)] = true
	} else {
		r.got = append(r.got, d)
		if _, ok := r.at[d.Message.Topic]; !ok {
			r.at[d.Message.Topic] = time.Now()
		}
	}
	r.mu.Unlock()
	r.poke()
}

func (r *Rec) onTakeover(_ context.Context, tk backplane.Takeover) {
	r.mu.Lock()
	r.takeovers = append(r.takeovers, tk)
	r.mu.Unlock()
	r.poke()
}

func (r *Rec) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// wait polls cond (under r.mu) until it holds or the timeout passes; poll
// runs before each check (it may send messages) when not nil.
func (r *Rec) wait(t *testing.T, what string, poll func(), cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if poll != nil {
			poll()
		}
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out after %v waiting for %s", r.ID(), timeout, what)
		}
		select {
		case <-r.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// take returns and clears what r received.
func (r *Rec) take() []backplane.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func (e *env) join(id string) *Rec { return e.joinKeep(id, 0) }

// joinKeep is join with Config.Keep set to keep (0: the default).
func (e *env) joinKeep(id string, keep time.Duration) *Rec {
	e.t.Helper()
	r := &Rec{fences: map[string]bool{}, at: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	cfg := backplane.Config{ID: id, Lease: Lease, Keep: keep, OnMessage: r.onMessage, OnTakeover: r.onTakeover}
	if len(e.order)%2 == 1 {
		// Every other node takes its queue in batches.
		cfg.OnBatch = func(ctx context.Context, ds []backplane.Delivery) {
			for _, d := range ds {
				r.onMessage(ctx, d)
			}
		}
	}
	r.Node = e.c.Join(e.t, cfg)
	if r.ID() != id {
		e.t.Fatalf("Join(ID %q): node says ID %q", id, r.ID())
	}
	e.nodes[id] = r
	e.order = append(e.order, id)
	// The fence is a shared group of one, so that a node can fence itself:
	// a shared delivery to the publishing node comes back through OnMessage.
	if err := r.Subscribe(ctx(e.t), "$share/fence/$fence/"+id); err != nil {
		e.t.Fatalf("%s: Subscribe fence: %v", id, err)
	}
	return r
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return c
}

func (e *env) token() string {
	e.seq++
	return fmt.Sprintf("%s-%d", e.t.Name(), e.seq)
}

// sync waits until every other node's view of r's interest includes what r
// announced before the call (and excludes what it withdrew).
func (e *env) sync(r *Rec) {
	e.t.Helper()
	filter := "$sync/" + r.ID() + "/" + fmt.Sprint(e.seq+1)
	tok := e.token()
	if err := r.Subscribe(ctx(e.t), filter); err != nil {
		e.t.Fatalf("%s: Subscribe %q: %v", r.ID(), filter, err)
	}
	for _, id := range e.order {
		from := e.nodes[id]
		if from == r || from == nil {
			continue
		}
		r.wait(e.t, "sync from "+id, func() {
			_ = from.Forward(ctx(e.t), &message.Message{Topic: filter, Payload: []byte(tok)})
		}, func() bool { return r.fences[tok] })
	}
	if err := r.Unsubscribe(ctx(e.t), filter); err != nil {
		e.t.Fatalf("%s: Unsubscribe %q: %v", r.ID(), filter, err)
	}
}

// fence sends a fence from `from` to r and waits for it: whatever from
// forwarded before has reached r by then.
func (e *env) fence(from, r *Rec) {
	e.t.Helper()
	tok := e.token()
	if err := from.Forward(ctx(e.t), &message.Message{Topic: "$fence/" + r.ID(), Payload: []byte(tok)}); err != nil {
		e.t.Fatalf("%s: Forward fence: %v", from.ID(), err)
	}
	r.wait(e.t, "fence from "+from.ID(), nil, func() bool { return r.fences[tok] })
}

func (e *env) sub(r *Rec, filters ...string) {
	e.t.Helper()
	for _, f := range filters {
		if err := r.Subscribe(ctx(e.t), f); err != nil {
			e.t.Fatalf("%s: Subscribe(%q): %v", r.ID(), f, err)
		}
	}
}

func (e *env) unsub(r *Rec, filters ...string) {
	e.t.Helper()
	for _, f := range filters {
		if err := r.Unsubscribe(ctx(e.t), f); err != nil {
			e.t.Fatalf("%s: Unsubscribe(%q): %v", r.ID(), f, err)
		}
	}
}

func (e *env) fwd(from *Rec, name string, payload string) *message.Message {
	e.t.Helper()
	m := &message.Message{Topic: name, Payload: []byte(payload), From: "client-" + from.ID(), Created: time.Now()}
	if err := from.Forward(ctx(e.t), m); err != nil {
		e.t.Fatalf("%s: Forward(%q): %v", from.ID(), name, err)
	}
	return m
}

func topics(ds []backplane.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Message.Topic)
	}
	return out
}

func testForwardOnlyToInterested(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	e.sub(b, "a/+/c")
	e.sub(c, "x/#")
	e.sync(b)
	e.sync(c)
	e.fwd(a, "a/b/c", "1")
	e.fwd(a, "a/b/x/c", "2") // '+' never crosses levels
	e.fwd(a, "x", "3")
	for _, r := range []*Rec{a, b, c} {
		e.fence(a, r)
	}
	if got := topics(b.take()); !slices.Equal(got, []string{"a/b/c"}) {
		t.Errorf("b (a/+/c) got %q, want [a/b/c]", got)
	}
	if got := topics(c.take()); !slices.Equal(got, []string{"x"}) {
		t.Errorf("c (x/#) got %q, want [x]", got)
	}
	if got := a.take(); len(got) != 0 {
		t.Errorf("the publishing node a got its own message back: %q", topics(got))
	}
	// A message nobody wants reaches nobody.
	e.fwd(b, "nobody/here", "4")
	for _, r := range []*Rec{a, c} {
		e.fence(b, r)
		if got := r.take(); len(got) != 0 {
			t.Errorf("%s got %q for a topic it has no interest in", r.ID(), topics(got))
		}
	}
	d := func() backplane.Delivery {
		e.fwd(a, "a/q/c", "5")
		e.fence(a, b)
		got := b.take()
		if len(got) != 1 {
			t.Fatalf("b got %d deliveries, want 1", len(got))
		}
		return got[0]
	}()
	if !d.Plain || d.Node != "a" || len(d.Groups) != 0 || d.Will {
		t.Errorf("delivery = {Plain %v Node %q Groups %v Will %v}, want {true a [] false}", d.Plain, d.Node, d.Groups, d.Will)
	}
}

// matchCases: filter, name, whether it matches. They include the characters
// engines reserve (NATS: . * > and spaces; Redis globs: * ? [ ]) and the
// escape sequences an implementation might use.
var matchCases = []struct {
	filter, name string
	match        bool
}{
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a/b/x/c", false},
	{"a/+/c", "a//c", true},
	{"a/+/c", "a/c", false},
	{"sport/#", "sport", true},
	{"sport/#", "sport/x/y", true},
	{"sport/#", "sports", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"#", "$SYS/x", false},   // [v5 MQTT-4.7.2-1]
	{"+/x", "$SYS/x", false}, // [v5 MQTT-4.7.2-1]
	{"$SYS/#", "$SYS/x", true},
	{"$SYS/+", "$SYS/x", true},
	{"#", "a$/x", true},
	{"+", "/", false},
	{"+/+", "/", true},
	{"/#", "/x", true},
	{"#", "/", true},
	{"a/*", "a/b", false},
	{"a/*", "a/*", true},
	{"a/>", "a/b/c", false},
	{"a/>", "a/>", true},
	{"a.b/c", "a.b/c", true},
	{"a.b/c", "a/b/c", false},
	{"a.b/c", "axb/c", false},
	{"a b/+", "a b/c", true},
	{"a b/+", "a/c", false},
	{"a?/[b]", "a?/[b]", true},
	{"a?/[b]", "ax/b", false},
	{"a/b*", "a/bcd", false},
	{"~/x", "~/x", true},
	{"a~2Eb/+", "a.b/c", false},
	{"a~2Eb/+", "a~2Eb/c", true},
	{"%2E/+", "./c", false},
	{"ü/+", "ü/a", true},
	{"{x}/+", "{x}/y", true},
	{"a/\t/b", "a/\t/b", true},
}

func testExactMatching(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	for _, tc := range matchCases {
		e.sub(b, tc.filter)
		e.sync(b)
		e.fwd(a, tc.name, "x")
		e.fence(a, b)
		got := b.take()
		if tc.match != (len(got) == 1) || len(got) > 1 {
			t.Errorf("filter %q, name %q: %d deliveries, want match=%v", tc.filter, tc.name, len(got), tc.match)
		}
		if len(got) == 1 && got[0].Message.Topic != tc.name {
			t.Errorf("filter %q: delivered topic %q, want %q", tc.filter, got[0].Message.Topic, tc.name)
		}
		e.unsub(b, tc.filter)
	}
	// Overlapping filters on one node: one delivery, the node matches locally.
	e.sub(b, "o/+", "o/#", "#")
	e.sync(b)
	e.fwd(a, "o/1", "x")
	e.fence(a, b)
	if got := b.take(); len(got) != 1 {
		t.Errorf("three overlapping filters on b: %d deliveries, want 1", len(got))
	}
}

func testRefCount(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	e.sub(b, "r/1", "r/1")
	e.unsub(b, "r/1")
	e.sync(b)
	e.fwd(a, "r/1", "still")
	e.fence(a, b)
	if got := b.take(); len(got) != 1 {
		t.Fatalf("after 2 Subscribe and 1 Unsubscribe: %d deliveries, want 1", len(got))
	}
	e.unsub(b, "r/1")
	e.sync(b)
	e.fwd(a, "r/1", "gone")
	e.fence(a, b)
	if got := b.take(); len(got) != 0 {
		t.Fatalf("after the last Unsubscribe: %d deliveries, want 0", len(got))
	}
	if err := b.Unsubscribe(ctx(t), "r/1"); !errors.Is(err, backplane.ErrNotSubscribed) {
		t.Errorf("one Unsubscribe too many: %v, want ErrNotSubscribed", err)
	}
}

// testConcurrentInterest churns one filter from many goroutines: whatever
// the interleaving, the engine ends with the interest the count says.
func testConcurrentInterest(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if err := b.Subscribe(ctx(t), "cc/+"); err != nil {
					errs <- err
					return
				}
				if err := b.Unsubscribe(ctx(t), "cc/+"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.sync(b)
	e.fwd(a, "cc/1", "none")
	e.fence(a, b)
	if got := b.take(); len(got) != 0 {
		t.Fatalf("after the churn, count 0: %d deliveries, want 0", len(got))
	}
	e.sub(b, "cc/+")
	e.sync(b)
	e.fwd(a, "cc/1", "one")
	e.fence(a, b)
	if got := b.take(); len(got) != 1 {
		t.Fatalf("after the churn and one Subscribe: %d deliveries, want 1", len(got))
	}
}

func sameMessage(t *testing.T, what string, got, want *message.Message) {
	t.Helper()
	if got.Topic != want.Topic || !bytes.Equal(got.Payload, want.Payload) || got.QoS != want.QoS ||
		got.Retain != want.Retain || got.From != want.From || !got.Created.Equal(want.Created) ||
		!got.Expires.Equal(want.Expires) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
	gp, wp := got.Properties, want.Properties
	if gp.ContentType != wp.ContentType || gp.ResponseTopic != wp.ResponseTopic ||
		!bytes.Equal(gp.CorrelationData, wp.CorrelationData) || gp.PayloadFormat != wp.PayloadFormat ||
		gp.MessageExpiry != wp.MessageExpiry || !slices.Equal(gp.User, wp.User) {
		t.Errorf("%s: properties %v, want %v", what, &gp, &wp)
	}
}

func fullMessage(name string) *message.Message {
	now := time.Now()
	m := &message.Message{Topic: name, Payload: []byte("payload \x00\xff"), QoS: 2, Retain: true,
		From: "publisher-1", Created: now}
	m.Properties.ContentType = "text/plain"
	m.Properties.ResponseTopic = "reply/to"
	m.Properties.CorrelationData = []byte{1, 2, 3}
	m.Properties.PayloadFormat = 1
	m.Properties.MessageExpiry = 3600
	m.Properties.User = []packet.UserProperty{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}
	m.SetExpiry(now)
	return m
}

func testFidelity(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	e.sub(b, "f/#")
	e.sync(b)
	want := fullMessage("f/1")
	if err := a.Forward(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	e.fence(a, b)
	got := b.take()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	sameMessage(t, "forwarded", got[0].Message, want)
}

func testOrder(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	e.sub(b, "o/t")
	e.sync(b)
	const n = 300
	for i := range n {
		e.fwd(a, "o/t", fmt.Sprint(i))
	}
	e.fence(a, b)
	got := b.take()
	if len(got) != n {
		t.Fatalf("%d deliveries, want %d", len(got), n)
	}
	for i, d := range got {
		if string(d.Message.Payload) != fmt.Sprint(i) {
			t.Fatalf("delivery %d carries %q: order per publisher per topic lost", i, d.Message.Payload)
		}
	}
}

// testBatchOrder: batches forwarded with backplane.ForwardAll (an
// engine's ForwardBatch where it has one), from two goroutines at once,
// reach each node with every batch in its order, each message once.
func testBatchOrder(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	e.sub(b, "ob/#")
	e.sub(c, "ob/+/x")
	e.sync(b)
	e.sync(c)
	const batches, size = 20, 25
	var wg sync.WaitGroup
	errc := make(chan error, 2*batches)
	for _, pub := range []string{"p", "q"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				ms := make([]*message.Message, size)
				for j := range ms {
					ms[j] = &message.Message{Topic: "ob/" + pub + "/x", QoS: 1, Payload: []byte(fmt.Sprint(i*size + j)), Created: time.Now()}
				}
				for _, err := range backplane.ForwardAll(ctx(t), a, ms) {
					if err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("ForwardAll: %v", err)
	}
	e.fence(a, b)
	e.fence(a, c)
	for _, r := range []*Rec{b, c} {
		next := map[string]int{}
		n := 0
		for _, d := range r.take() {
			if !strings.HasPrefix(d.Message.Topic, "ob/") {
				continue
			}
			n++
			if want := fmt.Sprint(next[d.Message.Topic]); string(d.Message.Payload) != want {
				t.Fatalf("%s: %s carries %q, want %s: a batch's order lost", r.ID(), d.Message.Topic, d.Message.Payload, want)
			}
			next[d.Message.Topic]++
		}
		if n != 2*batches*size {
			t.Fatalf("%s: %d deliveries, want %d", r.ID(), n, 2*batches*size)
		}
	}
}

func retainedTopics(t *testing.T, r *Rec, filter string) []string {
	t.Helper()
	ms, err := r.MatchRetained(ctx(t), filter)
	if err != nil {
		t.Fatalf("%s: MatchRetained(%q): %v", r.ID(), filter, err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	slices.Sort(out)
	return out
}

func testRetained(t *testing.T, e *env) {
	a, c := e.join("a"), e.join("c")
	set := func(name, payload string) {
		t.Helper()
		m := &message.Message{Topic: name, Payload: []byte(payload), Retain: true, QoS: 1, Created: time.Now()}
		if err := a.SetRetained(ctx(t), m); err != nil {
			t.Fatalf("SetRetained(%q): %v", name, err)
		}
	}
	for _, n := range []string{"s/1", "s/2", "s/2/x", "$SYS/up", "a.b/c", "a/b/c", "a//c", "u/ü"} {
		set(n, "v-"+n)
	}
	cases := []struct {
		filter string
		want   []string
	}{
		{"s/+", []string{"s/1", "s/2"}},
		{"s/#", []string{"s/1", "s/2", "s/2/x"}},
		{"#", []string{"a.b/c", "a//c", "a/b/c", "s/1", "s/2", "s/2/x", "u/ü"}},
		{"$SYS/#", []string{"$SYS/up"}},
		{"+/up", nil},
		{"a/+/c", []string{"a//c", "a/b/c"}},
		{"a.b/+", []string{"a.b/c"}},
		{"u/+", []string{"u/ü"}},
		{"$share/g/s/+", []string{"s/1", "s/2"}},
	}
	for _, tc := range cases {
		if got := retainedTopics(t, c, tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("MatchRetained(%q) = %q, want %q", tc.filter, got, tc.want)
		}
	}
	// Replace, then delete with an empty payload [v5 MQTT-3.3.1-6].
	set("s/1", "new")
	ms, err := c.MatchRetained(ctx(t), "s/1")
	if err != nil || len(ms) != 1 || string(ms[0].Payload) != "new" {
		t.Fatalf("after replacing s/1: %v %v", ms, err)
	}
	set("s/1", "")
	if got := retainedTopics(t, c, "s/1"); len(got) != 0 {
		t.Errorf("an empty retained payload did not delete: %q", got)
	}
	if err := c.DeleteRetained(ctx(t), "s/2"); err != nil {
		t.Fatal(err)
	}
	if got := retainedTopics(t, a, "s/+"); len(got) != 0 {
		t.Errorf("after DeleteRetained(s/2): %q", got)
	}
	// Expired messages are not returned [v5 MQTT-3.3.2-5]; the rest is kept
	// whole.
	old := &message.Message{Topic: "e/old", Payload: []byte("x"), Retain: true, Created: time.Now().Add(-time.Hour)}
	old.Properties.MessageExpiry = 1
	old.SetExpiry(old.Created)
	if err := a.SetRetained(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	full := fullMessage("e/full")
	if err := a.SetRetained(ctx(t), full); err != nil {
		t.Fatal(err)
	}
	ms, err = c.MatchRetained(ctx(t), "e/#")
	if err != nil || len(ms) != 1 {
		t.Fatalf("MatchRetained(e/#) = %d messages, %v; want only e/full", len(ms), err)
	}
	sameMessage(t, "retained", ms[0], full)
}

func testOwnership(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	claim := func(r *Rec, id, want string) {
		t.Helper()
		prev, err := r.Claim(ctx(t), id)
		if err != nil || prev != want {
			t.Fatalf("%s: Claim(%q) = %q, %v; want previous %q", r.ID(), id, prev, err, want)
		}
	}
	claim(a, "c1", "")
	claim(a, "c1", "a")
	claim(b, "c1", "a")
	a.wait(t, "takeover notice", nil, func() bool { return len(a.takeovers) == 1 })
	if tk := a.takeovers[0]; tk != (backplane.Takeover{ClientID: "c1", By: "b"}) {
		t.Errorf("takeover = %+v, want {c1 b}", tk)
	}
	claim(a, "c1", "b")
	b.wait(t, "takeover notice", nil, func() bool { return len(b.takeovers) == 1 })
	// Release by a non-owner changes nothing; by the owner frees the id.
	if err := b.Release(ctx(t), "c1"); err != nil {
		t.Fatal(err)
	}
	claim(c, "c1", "a")
	if err := c.Release(ctx(t), "c1"); err != nil {
		t.Fatal(err)
	}
	claim(b, "c1", "")
	claim(a, "other client/with.odd*chars>", "")
	claim(c, "other client/with.odd*chars>", "a")
	// Notices may travel apart from the fence's messages (NATS sends them
	// on a subject of their own): wait for the three, then fence so that
	// an extra one would have arrived too.
	a.wait(t, "three takeover notices", nil, func() bool { return len(a.takeovers) >= 3 })
	for _, r := range []*Rec{a, b, c} {
		e.fence(a, r)
	}
	a.mu.Lock()
	n := len(a.takeovers)
	a.mu.Unlock()
	if n != 3 {
		t.Errorf("a got %d takeover notices, want 3 (c1 to b, c1 to c, odd id to c)", n)
	}
}

func testSharedGroups(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	e.sub(b, "$share/g/s/+", "$share/h/s/#", "s/#")
	e.sub(c, "$share/g/s/+", "$share/h/s/#")
	e.sub(a, "$share/h/s/#")
	for _, r := range []*Rec{a, b, c} {
		e.sync(r)
	}
	const n = 40
	for i := range n {
		e.fwd(a, "s/1", fmt.Sprint(i))
	}
	e.fwd(a, "$share/g/s/1", "literal") // a topic name, never a group
	for _, r := range []*Rec{a, b, c} {
		e.fence(a, r)
	}
	per := map[backplane.Group]map[string]int{}
	plain := 0
	for _, r := range []*Rec{a, b, c} {
		for _, d := range r.take() {
			if d.Message.Topic != "s/1" {
				t.Errorf("%s got %q", r.ID(), d.Message.Topic)
				continue
			}
			if d.Plain {
				if r != b {
					t.Errorf("%s got a plain delivery; only b has a plain filter", r.ID())
				}
				plain++
			}
			for _, g := range d.Groups {
				if per[g] == nil {
					per[g] = map[string]int{}
				}
				per[g][string(d.Message.Payload)]++
				if g.Name == "g" && r == a {
					t.Errorf("a got a delivery for group g it is not a member of")
				}
			}
		}
	}
	if plain != n {
		t.Errorf("b got %d plain deliveries, want %d", plain, n)
	}
	for _, g := range []backplane.Group{{Name: "g", Filter: "s/+"}, {Name: "h", Filter: "s/#"}} {
		if len(per[g]) != n {
			t.Errorf("group %v: %d distinct messages delivered, want %d", g, len(per[g]), n)
		}
		for p, k := range per[g] {
			if k != 1 {
				t.Errorf("group %v: message %s delivered %d times, want once", g, p, k)
			}
		}
	}
	if len(per) != 2 {
		t.Errorf("deliveries for groups %v, want g and h only", per)
	}
}

func will(name string) *message.Message {
	return &message.Message{Topic: name, Payload: []byte("gone"), QoS: 1, Retain: true, From: "w", Created: time.Now()}
}

func testWillOnDeath(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	_ = a
	e.sub(c, "will/#")
	e.sync(c)
	if err := b.SetWill(ctx(t), "w1", will("will/w1")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetWill(ctx(t), "w2", will("will/w2")); err != nil {
		t.Fatal(err)
	}
	if err := b.ClearWill(ctx(t), "w2"); err != nil {
		t.Fatal(err)
	}
	e.c.Kill(t, "b")
	c.wait(t, "b's will", nil, func() bool { return len(c.got) > 0 })
	e.fence(a, c)
	time.Sleep(2 * Lease) // a second publication would come within a lease
	e.fence(a, c)
	got := c.take()
	if len(got) != 1 || got[0].Message.Topic != "will/w1" || !got[0].Will || got[0].Node != "b" || !got[0].Plain {
		t.Fatalf("c got %d deliveries %v, want one will from b on will/w1", len(got), topics(got))
	}
	if ts := retainedTopics(t, a, "will/#"); !slices.Equal(ts, []string{"will/w1"}) {
		t.Errorf("retained after a retained will: %q, want [will/w1]", ts)
	}
}

// WillDelay is the delay the will-delay test gives its will.
const WillDelay = 1 * time.Second

// testWillDelay: a will with a Will Delay Interval is published no earlier
// than the node's death plus the delay [v5 MQTT-3.1.2-8], without the Will
// Delay property; one without is published at the death. The death is
// judged by the engine, never before Kill, so Kill's start + delay is a
// lower bound that holds whatever the engine's lease.
func testWillDelay(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	e.sub(c, "will/#")
	e.sync(c)
	later := will("will/later")
	later.Properties.WillDelay = uint32(WillDelay / time.Second)
	later.Properties.Mark(packet.PropWillDelay)
	if err := b.SetWill(ctx(t), "late", later); err != nil {
		t.Fatal(err)
	}
	if err := b.SetWill(ctx(t), "now", will("will/now")); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	e.c.Kill(t, "b")
	c.wait(t, "b's delayed will", nil, func() bool { return len(c.got) >= 2 })
	c.mu.Lock()
	now, late := c.at["will/now"], c.at["will/later"]
	c.mu.Unlock()
	if late.IsZero() || now.IsZero() {
		t.Fatalf("c got %v, want will/now and will/later", topics(c.take()))
	}
	if early := late.Sub(killed); early < WillDelay {
		t.Errorf("the delayed will arrived %v after the kill, before its delay %v", early, WillDelay)
	}
	if !now.Before(late) {
		t.Errorf("the will without delay arrived at %v, not before the delayed one at %v", now, late)
	}
	e.fence(a, c)
	got := c.take()
	if len(got) != 2 {
		t.Fatalf("c got %d deliveries %v, want two wills", len(got), topics(got))
	}
	for _, d := range got {
		if !d.Will || d.Node != "b" || !d.Plain {
			t.Errorf("%s: delivery {Will %v Node %q Plain %v}, want {true b true}", d.Message.Topic, d.Will, d.Node, d.Plain)
		}
		if p := d.Message.Properties; p.WillDelay != 0 || p.Has(packet.PropWillDelay) {
			t.Errorf("%s: published with a Will Delay property %d", d.Message.Topic, p.WillDelay)
		}
	}
	if ts := retainedTopics(t, a, "will/#"); !slices.Equal(ts, []string{"will/later", "will/now"}) {
		t.Errorf("retained after two retained wills: %q, want [will/later will/now]", ts)
	}
}

func testCloseIsNotDeath(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	e.sub(a, "will/#")
	e.sync(a)
	if err := b.SetWill(ctx(t), "w", will("will/w")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	delete(e.nodes, "b")
	time.Sleep(3 * Lease)
	c := e.join("c")
	e.fence(c, a)
	if got := a.take(); len(got) != 0 {
		t.Errorf("a closed node's will was published: %v", topics(got))
	}
	if err := b.Forward(ctx(t), will("x")); !errors.Is(err, backplane.ErrClosed) {
		t.Errorf("Forward after Close: %v, want ErrClosed", err)
	}
}

func testPartitionAndHeal(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	e.sub(b, "p/+")
	e.sync(b)
	if !e.c.Partition(t, "b") {
		t.Skip("this Cluster cannot partition a node")
	}
	var err error
	deadline := time.Now().Add(timeout)
	for {
		err = b.Forward(ctx(t), will("p/x"))
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !errors.Is(err, backplane.ErrUnreachable) {
		t.Fatalf("Forward from a partitioned node: %v, want ErrUnreachable", err)
	}
	if _, err := b.Claim(ctx(t), "c"); !errors.Is(err, backplane.ErrUnreachable) {
		t.Errorf("Claim on a partitioned node: %v, want ErrUnreachable", err)
	}
	if _, err := b.MatchRetained(ctx(t), "#"); !errors.Is(err, backplane.ErrUnreachable) {
		t.Errorf("MatchRetained on a partitioned node: %v, want ErrUnreachable", err)
	}
	// Interest announced while cut off is kept and announced at the heal.
	if err := b.Subscribe(ctx(t), "q/+"); err != nil && !errors.Is(err, backplane.ErrUnreachable) {
		t.Errorf("Subscribe on a partitioned node: %v, want nil or ErrUnreachable", err)
	}
	// a must not fail to forward to it meanwhile (the engine keeps them
	// for b: see testDurableAcrossPartition).
	if err := a.Forward(ctx(t), will("p/y")); err != nil {
		t.Errorf("Forward from a to a partitioned b: %v", err)
	}
	e.c.Heal(t, "b")
	deadline = time.Now().Add(timeout)
	for b.Forward(ctx(t), &message.Message{Topic: "nobody"}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("b still unreachable after Heal")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.sync(b)
	b.take()
	e.fwd(a, "p/1", "after")
	e.fwd(a, "q/1", "after")
	e.fence(a, b)
	if got := topics(b.take()); !slices.Equal(got, []string{"p/1", "q/1"}) {
		t.Errorf("after the heal b got %q, want [p/1 q/1]: interest not recovered", got)
	}
}

func testBadInput(t *testing.T, e *env) {
	a := e.join("a")
	for _, f := range []string{"", "a/#/b", "a+/b", "$share/g", "$share//x"} {
		if err := a.Subscribe(ctx(t), f); err == nil {
			t.Errorf("Subscribe(%q) accepted a bad filter", f)
		}
	}
	if _, err := a.MatchRetained(ctx(t), "a/#/b"); err == nil {
		t.Errorf("MatchRetained accepted a bad filter")
	}
	if err := a.SetRetained(ctx(t), &message.Message{Topic: "a/+", Payload: []byte("x")}); err == nil {
		t.Errorf("SetRetained accepted a wildcard topic")
	}
}

// durableQoS1 is a QoS 1 message numbered i from a publisher.
func durableQoS1(from *Rec, name string, i int) *message.Message {
	return &message.Message{Topic: name, Payload: []byte(fmt.Sprint(i)), QoS: 1, From: "client-" + from.ID(), Created: time.Now()}
}

// checkOncePerPublisher checks that ds holds, for each topic in want, the
// payloads 0..want[topic]-1 once each and in order.
func checkOncePerPublisher(t *testing.T, ds []backplane.Delivery, want map[string]int) {
	t.Helper()
	next := map[string]int{}
	for _, d := range ds {
		name, p := d.Message.Topic, string(d.Message.Payload)
		if p != fmt.Sprint(next[name]) {
			t.Fatalf("%s: got payload %s, want %d (duplicate, loss or reorder)", name, p, next[name])
		}
		next[name]++
	}
	for name, n := range want {
		if next[name] != n {
			t.Errorf("%s: got %d messages, want %d", name, next[name], n)
		}
	}
}

// testDurableAcrossDeath: messages forwarded to a node that died (no Close)
// wait for it on the engine; when it joins again under the same ID it gets
// each of them once, in order per publisher, after those it got before.
func testDurableAcrossDeath(t *testing.T, e *env) {
	a, b, c := e.join("a"), e.join("b"), e.join("c")
	e.sub(c, "d/#")
	e.sync(c)
	const before, away, dead = 5, 10, 10
	for i := range before {
		e.fwdMsg(a, durableQoS1(a, "d/a", i))
		e.fwdMsg(b, durableQoS1(b, "d/b", i))
	}
	e.fence(a, c)
	e.fence(b, c)
	checkOncePerPublisher(t, c.take(), map[string]int{"d/a": before, "d/b": before})
	e.c.Kill(t, "c")
	e.forget("c")
	for i := before; i < before+away; i++ {
		e.fwdMsg(a, durableQoS1(a, "d/a", i))
		e.fwdMsg(b, durableQoS1(b, "d/b", i))
	}
	// Long enough for its lease to lapse: the engine deems it dead, and a
	// node may join again under its ID.
	time.Sleep(3 * Lease)
	for i := before + away; i < before+away+dead; i++ {
		e.fwdMsg(a, durableQoS1(a, "d/a", i))
		e.fwdMsg(b, durableQoS1(b, "d/b", i))
	}
	c = e.join("c")
	const total = away + dead
	c.wait(t, "what c missed", nil, func() bool { return len(c.got) >= 2*total })
	e.fence(a, c)
	e.fence(b, c)
	got := c.take()
	for i, d := range got {
		if d.Mark.IsZero() {
			t.Fatalf("delivery %d (%s %s) has no Mark", i, d.Message.Topic, d.Message.Payload)
		}
		if i > 0 && !d.Mark.After(got[i-1].Mark) {
			t.Fatalf("delivery %d: Mark %v not after %v", i, d.Mark, got[i-1].Mark)
		}
		if !d.Plain || d.Message.QoS != 1 {
			t.Fatalf("delivery %d: Plain %v QoS %d, want true 1", i, d.Plain, d.Message.QoS)
		}
	}
	// Renumber: c got payloads before..before+total-1 of each.
	next := map[string]int{"d/a": before, "d/b": before}
	for _, d := range got {
		name := d.Message.Topic
		if p := string(d.Message.Payload); p != fmt.Sprint(next[name]) {
			t.Fatalf("%s: got payload %s, want %d (duplicate, loss or reorder)", name, p, next[name])
		}
		next[name]++
	}
	if next["d/a"] != before+total || next["d/b"] != before+total {
		t.Errorf("after its return c got up to %v, want %d of each", next, before+total)
	}
	// It still has its interest (the one it had at its death).
	e.fwdMsg(a, durableQoS1(a, "d/a", 0))
	e.fence(a, c)
	if got := c.take(); len(got) != 1 {
		t.Errorf("after its return, a new message: c got %d, want 1", len(got))
	}
}

// testDurableAcrossPartition: messages forwarded to a node while it is cut
// off from the engine reach it after the heal, once each, in order.
func testDurableAcrossPartition(t *testing.T, e *env) {
	a, b := e.join("a"), e.join("b")
	e.sub(b, "p/+")
	e.sync(b)
	if !e.c.Partition(t, "b") {
		t.Skip("this Cluster cannot partition a node")
	}
	const n = 20
	for i := range n {
		e.fwdMsg(a, durableQoS1(a, "p/a", i))
	}
	e.c.Heal(t, "b")
	b.wait(t, "what b missed", nil, func() bool { return len(b.got) >= n })
	e.fence(a, b)
	checkOncePerPublisher(t, b.take(), map[string]int{"p/a": n})
}

// fwdMsg forwards m from `from`, failing the test on an error.
func (e *env) fwdMsg(from *Rec, m *message.Message) {
	e.t.Helper()
	if err := from.Forward(ctx(e.t), m); err != nil {
		e.t.Fatalf("%s: Forward(%q): %v", from.ID(), m.Topic, err)
	}
}

// forget drops a killed node from the suite's nodes.
func (e *env) forget(id string) {
	delete(e.nodes, id)
	e.order = slices.DeleteFunc(e.order, func(s string) bool { return s == id })
}

// Keep is the Keep the forgetting test gives its nodes.
const Keep = time.Second

// testForgottenAfterKeep: a node dead for longer than Keep is forgotten:
// nothing is forwarded to it any more, and when it joins again it gets
// nothing of what was published after that.
func testForgottenAfterKeep(t *testing.T, e *env) {
	a, b := e.joinKeep("a", Keep), e.joinKeep("b", Keep)
	e.sub(b, "k/#")
	e.sync(b)
	e.c.Kill(t, "b")
	e.forget("b")
	// Its lease lapses, Keep passes, and a beat or two of the survivors
	// forget it.
	time.Sleep(Keep + 4*Lease)
	e.fwdMsg(a, durableQoS1(a, "k/1", 0))
	b = e.joinKeep("b", Keep)
	e.sync(b) // its interest, forgotten, is new to a
	e.fence(a, b)
	if got := b.take(); len(got) != 0 {
		t.Errorf("a node forgotten after Keep got %v when it came back", topics(got))
	}
}
