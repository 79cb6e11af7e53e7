package broker

// Shared subscriptions ("$share/{group}/{filter}", MQTT 5 section 4.8.2,
// offered to MQTT 3.1.1 clients too), black-box over loopback sockets:
// one member of each group gets each message, the strategies that choose
// it, and what happens to a member's messages when its connection ends.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// ---- helpers (prefixed v5sh) ----

// v5shMark is the topic of the markers: every member subscribes to it
// with an ordinary (non-shared) subscription.
const v5shMark = "v5sh/mark"

// v5shMember connects a client (persistent when !clean; MQTT 5 with a
// Session Expiry Interval of an hour) and subscribes it to filter with
// qos and to the marker topic.
func v5shMember(t *testing.T, addr string, v packet.Version, id string, clean bool, filter string, qos byte) *rawClient {
	t.Helper()
	c, _ := ptConnect(t, addr, v, id, clean)
	v5shSubscribe(t, c, packet.Subscription{Filter: filter, QoS: qos}, packet.Subscription{Filter: v5shMark})
	return c
}

var v5shPid atomic.Uint32 // SUBSCRIBE packet ids, distinct across the tests

// v5shSubscribe subscribes c and checks that every filter is granted the
// QoS it asked for.
func v5shSubscribe(t *testing.T, c *rawClient, subs ...packet.Subscription) {
	t.Helper()
	pid := uint16(1000 + v5shPid.Add(1)%60000)
	c.send(&packet.Subscribe{PacketID: pid, Subscriptions: subs})
	p := c.recv()
	ack, ok := p.(*packet.Suback)
	if !ok || ack.PacketID != pid || len(ack.ReasonCodes) != len(subs) {
		t.Fatalf("want SUBACK %d, got %v", pid, p)
	}
	for i, s := range subs {
		if ack.ReasonCodes[i] != packet.ReasonCode(s.QoS) {
			t.Fatalf("%s: SUBACK code 0x%02x, want 0x%02x", s.Filter, byte(ack.ReasonCodes[i]), s.QoS)
		}
	}
}

// v5shRead reads one message from c, completing its QoS flow.
func v5shRead(t *testing.T, c *rawClient) *packet.Publish {
	t.Helper()
	for {
		switch p := c.recv().(type) {
		case *packet.Publish:
			switch p.QoS {
			case 1:
				c.send(&packet.Puback{PacketID: p.PacketID})
			case 2:
				c.send(&packet.Pubrec{PacketID: p.PacketID})
			}
			return p
		case *packet.Pubrel:
			c.send(&packet.Pubcomp{PacketID: p.PacketID})
		default:
			t.Fatalf("unexpected %v", p)
		}
	}
}

// v5shCollect publishes one QoS 0 marker and returns, for each client,
// the messages it received before the marker (acknowledged). Messages
// routed before the marker are queued ahead of it.
func v5shCollect(t *testing.T, srv *Server, cs ...*rawClient) [][]*packet.Publish {
	t.Helper()
	if err := srv.Publish(v5shMark, []byte("marker"), 0, false); err != nil {
		t.Fatal(err)
	}
	out := make([][]*packet.Publish, len(cs))
	for i, c := range cs {
		for {
			p := v5shRead(t, c)
			if p.Topic == v5shMark {
				break
			}
			out[i] = append(out[i], p)
		}
	}
	return out
}

// v5shCheckOnce checks that the messages of a group's members are
// exactly want, each once, and returns how many each member got.
func v5shCheckOnce(t *testing.T, group string, got [][]*packet.Publish, want []string) []int {
	t.Helper()
	var all []string
	counts := make([]int, len(got))
	for i, ps := range got {
		counts[i] = len(ps)
		all = append(all, ptPayloads(ps)...)
	}
	slices.Sort(all)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(all, w) {
		t.Fatalf("group %s: members got %q together, want each of %q exactly once", group, all, w)
	}
	return counts
}

func v5shPayloads(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return s
}

// ---- delivery ----

// TestV5SharedEachMessageOnce: each message published to a shared
// subscription goes to exactly one member of the group, MQTT 5 and 3.1.1
// members alike; two groups on the same filter each get every message;
// an ordinary subscriber on the filter gets every message too, in order
// (section 4.8.2) [v5 MQTT-4.8.2-1] [v5 MQTT-4.8.2-2] [v5 MQTT-4.6.0-6].
func TestV5SharedEachMessageOnce(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	g := []*rawClient{
		v5shMember(t, addr, packet.V5, "v5sh-g1", true, "$share/g/v5sh/t/#", 1),
		v5shMember(t, addr, packet.V311, "v5sh-g2", true, "$share/g/v5sh/t/#", 1),
		v5shMember(t, addr, packet.V5, "v5sh-g3", true, "$share/g/v5sh/t/#", 1),
	}
	h := []*rawClient{
		v5shMember(t, addr, packet.V311, "v5sh-h1", true, "$share/h/v5sh/t/#", 1),
		v5shMember(t, addr, packet.V5, "v5sh-h2", true, "$share/h/v5sh/t/#", 1),
	}
	plain := v5shMember(t, addr, packet.V5, "v5sh-plain", true, "v5sh/t/#", 1)
	pub, _ := ptConnect(t, addr, packet.V5, "v5sh-pub", true)
	want := v5shPayloads("m", 30)
	for i, p := range want {
		ptPublish(t, pub, &packet.Publish{Topic: fmt.Sprintf("v5sh/t/%d", i%4), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(p)})
	}
	got := v5shCollect(t, srv, append(append(slices.Clone(g), h...), plain)...)
	for i, n := range v5shCheckOnce(t, "g", got[:3], want) {
		if n == 0 {
			t.Errorf("group g: member %d got nothing", i+1)
		}
	}
	v5shCheckOnce(t, "h", got[3:5], want)
	if p := ptPayloads(got[5]); !slices.Equal(p, want) {
		t.Fatalf("ordinary subscriber got %q, want %q in order", p, want)
	}
}

// TestV5SharedRetained: no retained messages are sent to a shared
// subscription when it is made (section 4.8.2), for MQTT 5 and 3.1.1
// members, while an ordinary subscription gets them; retained messages
// published later are delivered to one member, with RETAIN as Retain As
// Published says [v5 MQTT-3.3.1-12] [v5 MQTT-3.3.1-13].
func TestV5SharedRetained(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	if err := srv.Publish("v5sh/r/old", []byte("old"), 1, true); err != nil {
		t.Fatal(err)
	}
	m5, _ := ptConnect(t, addr, packet.V5, "v5sh-r5", true)
	v5shSubscribe(t, m5, packet.Subscription{Filter: "$share/r1/v5sh/r/#", QoS: 1, RetainAsPublished: true}, packet.Subscription{Filter: v5shMark})
	m3 := v5shMember(t, addr, packet.V311, "v5sh-r3", true, "$share/r0/v5sh/r/#", 1)
	got := v5shCollect(t, srv, m5, m3)
	for i, ps := range got {
		if len(ps) != 0 {
			t.Fatalf("shared member %d got %v on subscribe: no retained messages for shared subscriptions (section 4.8.2)", i, ps)
		}
	}
	plain, _ := ptConnect(t, addr, packet.V5, "v5sh-rplain", true)
	v5shSubscribe(t, plain, packet.Subscription{Filter: "v5sh/r/#", QoS: 1})
	if p := plain.expectPublish(); string(p.Payload) != "old" || !p.Retain {
		t.Fatalf("ordinary subscriber got %v, want the retained message", p)
	}

	pub, _ := ptConnect(t, addr, packet.V5, "v5sh-rpub", true)
	ptPublish(t, pub, &packet.Publish{Topic: "v5sh/r/new", QoS: 1, PacketID: 1, Retain: true, Payload: []byte("new")})
	got = v5shCollect(t, srv, m5, m3)
	for i, wantRetain := range []bool{true, false} {
		if len(got[i]) != 1 || string(got[i][0].Payload) != "new" {
			t.Fatalf("shared member %d got %v, want the live retained message", i, got[i])
		}
		if got[i][0].Retain != wantRetain {
			t.Errorf("shared member %d: RETAIN %v, want %v", i, got[i][0].Retain, wantRetain)
		}
	}
}

// TestV5SharedGrantedQoS: a message goes to a member at the QoS granted
// to that member's subscription, at most the published one
// [v5 MQTT-4.8.2-3] [v5 MQTT-3.8.4-8].
func TestV5SharedGrantedQoS(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	ms := []*rawClient{
		v5shMember(t, addr, packet.V5, "v5sh-q0", true, "$share/g/v5sh/q/#", 0),
		v5shMember(t, addr, packet.V5, "v5sh-q1", true, "$share/g/v5sh/q/#", 1),
		v5shMember(t, addr, packet.V311, "v5sh-q2", true, "$share/g/v5sh/q/#", 2),
	}
	for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
		for i := range 6 {
			if err := srv.Publish("v5sh/q/x", []byte(fmt.Sprintf("qos%d-%d", pubQoS, i)), pubQoS, false); err != nil {
				t.Fatal(err)
			}
		}
		got := v5shCollect(t, srv, ms...)
		v5shCheckOnce(t, "g", got, v5shPayloads(fmt.Sprintf("qos%d", pubQoS), 6))
		for i, ps := range got {
			for _, p := range ps {
				if want := min(pubQoS, byte(i)); p.QoS != want {
					t.Errorf("member granted QoS %d got a QoS %d message at QoS %d, want %d [v5 MQTT-4.8.2-3]", i, pubQoS, p.QoS, want)
				}
			}
		}
	}
}

// ---- strategies ----

// v5shGroup makes three MQTT 5 members of $share/g/{filter}.
func v5shGroup(t *testing.T, addr, name, filter string) []*rawClient {
	t.Helper()
	var ms []*rawClient
	for i := range 3 {
		ms = append(ms, v5shMember(t, addr, packet.V5, fmt.Sprintf("%s-%d", name, i), true, "$share/g/"+filter, 1))
	}
	return ms
}

// TestV5SharedRoundRobin: SharedRoundRobin (the default) spreads 30
// messages over 3 members evenly (section 4.8.2, noid:shared-round-robin).
func TestV5SharedRoundRobin(t *testing.T) {
	t.Parallel()
	srv := &Server{SharedStrategy: SharedRoundRobin}
	addr := ptNewServer(t, srv)
	ms := v5shGroup(t, addr, "v5sh-rr", "v5sh/rr/#")
	want := v5shPayloads("rr", 30)
	for _, p := range want {
		srv.Publish("v5sh/rr/x", []byte(p), 1, false)
	}
	for i, n := range v5shCheckOnce(t, "g", v5shCollect(t, srv, ms...), want) {
		if n < 9 || n > 11 {
			t.Errorf("member %d got %d of 30 messages, want 10 ± 1", i, n)
		}
	}
}

// TestV5SharedRandom: SharedRandom gives each of 3 members some of 300
// messages (the chance that one gets none is below 1e-50) and each
// message to one member (noid:shared-random).
func TestV5SharedRandom(t *testing.T) {
	t.Parallel()
	srv := &Server{SharedStrategy: SharedRandom}
	addr := ptNewServer(t, srv)
	ms := v5shGroup(t, addr, "v5sh-rnd", "v5sh/rnd/#")
	want := v5shPayloads("rnd", 300)
	for _, p := range want {
		srv.Publish("v5sh/rnd/x", []byte(p), 1, false)
	}
	counts := v5shCheckOnce(t, "g", v5shCollect(t, srv, ms...), want)
	for i, n := range counts {
		if n == 0 {
			t.Errorf("member %d got none of 300 messages: %v", i, counts)
		}
	}
	t.Logf("random: %v", counts)
}

// TestV5SharedStickyClient: SharedStickyClient sends all the messages of
// one publisher to the same member; 15 publishers do not all land on one
// member (chance 3^-14) (noid:shared-sticky-client).
func TestV5SharedStickyClient(t *testing.T) {
	t.Parallel()
	srv := &Server{SharedStrategy: SharedStickyClient}
	addr := ptNewServer(t, srv)
	ms := v5shGroup(t, addr, "v5sh-sticky", "v5sh/st/#")
	var want []string
	for k := range 15 {
		v := packet.V311
		if k%2 == 0 {
			v = packet.V5
		}
		pub, _ := ptConnect(t, addr, v, fmt.Sprintf("v5sh-stpub-%d", k), true)
		for i := range 4 {
			p := fmt.Sprintf("pub%d-%d", k, i)
			want = append(want, p)
			ptPublish(t, pub, &packet.Publish{Topic: fmt.Sprintf("v5sh/st/%d", i), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(p)})
		}
	}
	got := v5shCollect(t, srv, ms...)
	v5shCheckOnce(t, "g", got, want)
	where := map[string]int{} // publisher -> member
	used := map[int]bool{}
	for i, ps := range got {
		for _, p := range ps {
			from, _, _ := strings.Cut(string(p.Payload), "-")
			if m, ok := where[from]; ok && m != i {
				t.Errorf("messages of %s went to members %d and %d, want one", from, m, i)
			}
			where[from] = i
			used[i] = true
		}
	}
	if len(used) < 2 {
		t.Errorf("15 publishers all landed on one member")
	}
}

// TestV5SharedHashTopic: SharedHashTopic sends all the messages of one
// topic to the same member; 20 topics do not all land on one member
// (chance 3^-19) (noid:shared-hash-topic).
func TestV5SharedHashTopic(t *testing.T) {
	t.Parallel()
	srv := &Server{SharedStrategy: SharedHashTopic}
	addr := ptNewServer(t, srv)
	ms := v5shGroup(t, addr, "v5sh-hash", "v5sh/ht/#")
	var want []string
	for i := range 3 {
		for k := range 20 {
			p := fmt.Sprintf("%d-%d", k, i)
			want = append(want, p)
			srv.Publish(fmt.Sprintf("v5sh/ht/topic%d", k), []byte(p), 1, false)
		}
	}
	got := v5shCollect(t, srv, ms...)
	v5shCheckOnce(t, "g", got, want)
	where := map[string]int{}
	used := map[int]bool{}
	for i, ps := range got {
		for _, p := range ps {
			if m, ok := where[p.Topic]; ok && m != i {
				t.Errorf("messages on %s went to members %d and %d, want one", p.Topic, m, i)
			}
			where[p.Topic] = i
			used[i] = true
		}
	}
	if len(used) < 2 {
		t.Errorf("20 topics all landed on one member")
	}
}

// ---- members that leave ----

// TestV5SharedHandoverQoS1: member A (MQTT 5 with a persistent session
// and Receive Maximum 65535, so the broker's in-flight window of 20
// applies; or MQTT 3.1.1 with a clean session) is sent 20 QoS 1 messages
// it does not acknowledge, and 5 more wait in its queue; when its
// connection drops, all 25 go to member B, each once (section 4.8.2); A,
// reconnecting, gets none of them again.
func TestV5SharedHandoverQoS1(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			const filter = "$share/g/v5sh/ho/#"
			persistent := v == packet.V5
			a := dialRaw(t, addr, v)
			cp := &packet.Connect{ClientID: "v5sh-ho-a", CleanStart: !persistent}
			if v == packet.V5 {
				cp.Properties.SessionExpiry = 3600
				cp.Properties.ReceiveMaximum = 65535
			}
			a.connect(cp)
			v5shSubscribe(t, a, packet.Subscription{Filter: filter, QoS: 1}, packet.Subscription{Filter: v5shMark})
			want := v5shPayloads("ho", 25)
			for _, p := range want {
				srv.Publish("v5sh/ho/x", []byte(p), 1, false)
			}
			for i := range DefaultMaxInflight {
				if p := a.expectPublish(); string(p.Payload) != want[i] || p.QoS != 1 {
					t.Fatalf("A got %v, want %s at QoS 1", p, want[i])
				}
			}
			b := v5shMember(t, addr, packet.V5, "v5sh-ho-b", true, filter, 1)
			ptWaitConnected(t, srv, 2)
			a.nc.Close() // no DISCONNECT, no acknowledgements
			ptWaitConnected(t, srv, 1)
			var got []*packet.Publish
			for len(got) < len(want) {
				got = append(got, v5shRead(t, b))
			}
			rest := v5shCollect(t, srv, b)[0]
			v5shCheckOnce(t, "g (at B)", [][]*packet.Publish{got, rest}, want)

			a2 := dialRaw(t, addr, v)
			cp = &packet.Connect{ClientID: "v5sh-ho-a", CleanStart: !persistent}
			if v == packet.V5 {
				cp.Properties.SessionExpiry = 3600
			}
			if ack := a2.connect(cp); ack.SessionPresent != persistent {
				t.Fatalf("A reconnected with Session Present %v", ack.SessionPresent)
			}
			if !persistent {
				v5shSubscribe(t, a2, packet.Subscription{Filter: v5shMark})
			}
			if got := v5shCollect(t, srv, a2, b); len(got[0]) != 0 || len(got[1]) != 0 {
				t.Fatalf("after A reconnected: A got %q, B got %q, want nothing: the messages went to B once", ptPayloads(got[0]), ptPayloads(got[1]))
			}
		})
	}
}

// v5shHandoverQoS2 sets up member A (persistent) with two QoS 2 messages
// sent and not completed (q2-a unanswered, q2-b PUBREC'd) and a QoS 1
// message unacknowledged, adds member B, drops A's connection and checks
// that B gets the QoS 1 message only. It returns B and the packet ids A
// was sent.
func v5shHandoverQoS2(t *testing.T, srv *Server, addr, name string) (b *rawClient, idA, idB uint16) {
	t.Helper()
	filter := "$share/g/" + name + "/#"
	a := v5shMember(t, addr, packet.V5, name+"-a", false, filter, 2)
	srv.Publish(name+"/x", []byte("q2-a"), 2, false)
	srv.Publish(name+"/x", []byte("q2-b"), 2, false)
	srv.Publish(name+"/x", []byte("q1"), 1, false)
	for _, want := range []string{"q2-a", "q2-b", "q1"} {
		p := a.expectPublish()
		if string(p.Payload) != want {
			t.Fatalf("A got %v, want %s", p, want)
		}
		switch want {
		case "q2-a":
			idA = p.PacketID
		case "q2-b":
			idB = p.PacketID
		}
	}
	a.send(&packet.Pubrec{PacketID: idB})
	if rel, ok := a.recv().(*packet.Pubrel); !ok || rel.PacketID != idB {
		t.Fatalf("want PUBREL %d, got %v", idB, rel)
	}
	b = v5shMember(t, addr, packet.V5, name+"-b", true, filter, 2)
	ptWaitConnected(t, srv, 2)
	a.nc.Close()
	ptWaitConnected(t, srv, 1) // the hand-over is done before the count drops
	got := v5shCollect(t, srv, b)[0]
	if p := ptPayloads(got); !slices.Equal(p, []string{"q1"}) {
		t.Fatalf("B got %q, want only the unacknowledged QoS 1 message: QoS 2 messages stay with A [v5 MQTT-4.8.2-4]", p)
	}
	return b, idA, idB
}

// TestV5SharedHandoverQoS2: QoS 2 messages a member was sent but had not
// completed when its connection dropped are not given to another member
// and are completed with it when it reconnects with Clean Start 0: the
// PUBLISH again with DUP, the PUBREL again [v5 MQTT-4.8.2-4]
// [v5 MQTT-4.4.0-1].
func TestV5SharedHandoverQoS2(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	b, idA, idB := v5shHandoverQoS2(t, srv, addr, "v5sh-q2")
	a := dialRaw(t, addr, packet.V5)
	cp := &packet.Connect{ClientID: "v5sh-q2-a"}
	cp.Properties.SessionExpiry = 3600
	if ack := a.connect(cp); !ack.SessionPresent {
		t.Fatal("A's session is gone")
	}
	p := a.expectPublish()
	if string(p.Payload) != "q2-a" || !p.Dup || p.QoS != 2 || p.PacketID != idA {
		t.Fatalf("A got %v, want q2-a again: QoS 2, DUP, packet id %d [v5 MQTT-4.8.2-4]", p, idA)
	}
	if rel, ok := a.recv().(*packet.Pubrel); !ok || rel.PacketID != idB {
		t.Fatalf("want PUBREL %d again, got %v", idB, rel)
	}
	a.send(&packet.Pubcomp{PacketID: idB})
	ptAck(t, a, p)
	if got := v5shCollect(t, srv, a, b); len(got[0]) != 0 || len(got[1]) != 0 {
		t.Fatalf("then A got %q and B got %q, want nothing", ptPayloads(got[0]), ptPayloads(got[1]))
	}
}

// TestV5SharedHandoverQoS2SessionEnds: if the member's session ends
// before it reconnects (here: it reconnects with Clean Start 1), its
// QoS 2 messages are not sent to another member [v5 MQTT-4.8.2-5].
func TestV5SharedHandoverQoS2SessionEnds(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	b, _, _ := v5shHandoverQoS2(t, srv, addr, "v5sh-q2e")
	a, ack := ptConnect(t, addr, packet.V5, "v5sh-q2e-a", true)
	if ack.SessionPresent {
		t.Fatal("Clean Start 1 resumed the session")
	}
	v5shSubscribe(t, a, packet.Subscription{Filter: v5shMark})
	if got := v5shCollect(t, srv, a, b); len(got[0]) != 0 || len(got[1]) != 0 {
		t.Fatalf("A got %q and B got %q after A's session ended, want nothing [v5 MQTT-4.8.2-5]", ptPayloads(got[0]), ptPayloads(got[1]))
	}
}

// TestV5SharedNegativeAck: a shared message a member answers with PUBACK
// 0x80 is discarded, not offered to another member, even when that
// member leaves [v5 MQTT-4.8.2-6].
func TestV5SharedNegativeAck(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	a := v5shMember(t, addr, packet.V5, "v5sh-na-a", false, "$share/g/v5sh/na/#", 1)
	srv.Publish("v5sh/na/x", []byte("refused"), 1, false)
	p := a.expectPublish()
	a.send(&packet.Puback{PacketID: p.PacketID, ReasonCode: packet.UnspecifiedError})
	b := v5shMember(t, addr, packet.V5, "v5sh-na-b", true, "$share/g/v5sh/na/#", 1)
	if got := v5shCollect(t, srv, a, b); len(got[0]) != 0 || len(got[1]) != 0 {
		t.Fatalf("A got %q and B got %q, want nothing", ptPayloads(got[0]), ptPayloads(got[1]))
	}
	a.nc.Close()
	ptWaitConnected(t, srv, 1)
	if got := v5shCollect(t, srv, b)[0]; len(got) != 0 {
		t.Fatalf("B got %q after A left, want nothing [v5 MQTT-4.8.2-6]", ptPayloads(got))
	}
}

// TestV5SharedOfflineMembers: an offline member (persistent session) is
// skipped while an online member exists; a group whose only member is
// offline queues the messages for it (section 4.8.2).
func TestV5SharedOfflineMembers(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			reconnect := func(id string) *rawClient {
				t.Helper()
				c, ack := ptConnect(t, addr, v, id, false)
				if !ack.SessionPresent {
					t.Fatalf("%s: session gone", id)
				}
				return c
			}

			// A alone and offline: its messages wait for it.
			a := v5shMember(t, addr, v, "v5sh-off-a", false, "$share/g/v5sh/off/#", 1)
			a.send(&packet.Disconnect{})
			a.expectClosed()
			ptWaitConnected(t, srv, 0)
			queued := v5shPayloads("queued", 3)
			for _, p := range queued {
				srv.Publish("v5sh/off/x", []byte(p), 1, false)
			}
			a = reconnect("v5sh-off-a")
			if got := v5shCollect(t, srv, a)[0]; !slices.Equal(ptPayloads(got), queued) {
				t.Fatalf("single offline member got %q on reconnect, want %q", ptPayloads(got), queued)
			}

			// A offline, B online: B gets everything, A nothing.
			b := v5shMember(t, addr, v, "v5sh-off-b", true, "$share/g/v5sh/off/#", 1)
			a.send(&packet.Disconnect{})
			a.expectClosed()
			ptWaitConnected(t, srv, 1)
			live := v5shPayloads("live", 6)
			for _, p := range live {
				srv.Publish("v5sh/off/x", []byte(p), 1, false)
			}
			if got := v5shCollect(t, srv, b)[0]; !slices.Equal(ptPayloads(got), live) {
				t.Fatalf("online member got %q, want %q: the offline member is skipped", ptPayloads(got), live)
			}
			a = reconnect("v5sh-off-a")
			if got := v5shCollect(t, srv, a)[0]; len(got) != 0 {
				t.Fatalf("offline member got %q on reconnect, want nothing", ptPayloads(got))
			}
		})
	}
}

// TestV5SharedUnsubscribe: UNSUBSCRIBE from $share/g/f takes the member
// out of the group; the inline client can join the group
// (Server.Subscribe("$share/g/f")) and leave it.
func TestV5SharedUnsubscribe(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	a := v5shMember(t, addr, packet.V5, "v5sh-un-a", true, "$share/g/v5sh/un/#", 1)
	b := v5shMember(t, addr, packet.V311, "v5sh-un-b", true, "$share/g/v5sh/un/#", 1)
	first := v5shPayloads("both", 4)
	for _, p := range first {
		srv.Publish("v5sh/un/x", []byte(p), 1, false)
	}
	for i, n := range v5shCheckOnce(t, "g", v5shCollect(t, srv, a, b), first) {
		if n != 2 {
			t.Errorf("member %d got %d of 4 messages, want 2 (round robin)", i, n)
		}
	}
	a.send(&packet.Unsubscribe{PacketID: 50, Filters: []string{"$share/g/v5sh/un/#"}})
	if ua, ok := a.recv().(*packet.Unsuback); !ok || ua.PacketID != 50 || !slices.Equal(ua.ReasonCodes, []packet.ReasonCode{packet.Success}) {
		t.Fatalf("want UNSUBACK 50 [0x00], got %v", ua)
	}
	second := v5shPayloads("b-only", 4)
	for _, p := range second {
		srv.Publish("v5sh/un/x", []byte(p), 1, false)
	}
	got := v5shCollect(t, srv, a, b)
	if len(got[0]) != 0 || !slices.Equal(ptPayloads(got[1]), second) {
		t.Fatalf("after A unsubscribed: A got %q, B got %q; want nothing and %q", ptPayloads(got[0]), ptPayloads(got[1]), second)
	}

	// The inline client joins the group: it and B share the messages.
	var mu sync.Mutex
	var inline []string
	unsub, err := srv.Subscribe("$share/g/v5sh/un/#", 1, func(m *Message) {
		mu.Lock()
		inline = append(inline, string(m.Payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	third := v5shPayloads("with-inline", 6)
	for _, p := range third {
		srv.Publish("v5sh/un/x", []byte(p), 1, false)
	}
	atB := v5shCollect(t, srv, b)[0]
	ptEventually(t, 5*time.Second, "the inline member's messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(inline)+len(atB) >= len(third)
	})
	mu.Lock()
	fromInline := slices.Clone(inline)
	mu.Unlock()
	all := append(ptPayloads(atB), fromInline...)
	slices.Sort(all)
	w := slices.Clone(third)
	slices.Sort(w)
	if !slices.Equal(all, w) || len(fromInline) != 3 {
		t.Fatalf("B got %q, the inline member %q; want %q shared 3 and 3 (round robin)", ptPayloads(atB), fromInline, third)
	}
	unsub()
	fourth := v5shPayloads("inline-left", 3)
	for _, p := range fourth {
		srv.Publish("v5sh/un/x", []byte(p), 1, false)
	}
	if got := v5shCollect(t, srv, b)[0]; !slices.Equal(ptPayloads(got), fourth) {
		t.Fatalf("after the inline member left B got %q, want %q", ptPayloads(got), fourth)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(inline) != 3 {
		t.Fatalf("inline member got %q after leaving", inline[3:])
	}
}

// TestV5SharedSingleMemberResend: when the only member of a group loses
// its connection with QoS 1 messages unacknowledged, no other member can
// take them, so they stay in its session; reconnecting with Clean Start 0
// it must get them again as any session would: resent with DUP 1 and
// their original packet identifiers [v5 MQTT-4.4.0-1] [v3 MQTT-4.4.0-1] (section 4.8.2:
// a message no other member can take stays with the member).
func TestV5SharedSingleMemberResend(t *testing.T) {
	t.Parallel()
	for _, v := range []packet.Version{packet.V5, packet.V311} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			srv := &Server{}
			addr := ptNewServer(t, srv)
			a := v5shMember(t, addr, v, "v5sh-single", false, "$share/g/v5sh/single/#", 1)
			want := v5shPayloads("unacked", 3)
			for _, p := range want {
				srv.Publish("v5sh/single/x", []byte(p), 1, false)
			}
			var ids []uint16
			for _, w := range want {
				p := a.expectPublish()
				if string(p.Payload) != w {
					t.Fatalf("got %v, want %s", p, w)
				}
				ids = append(ids, p.PacketID)
			}
			a.nc.Close()
			ptWaitConnected(t, srv, 0)
			a, ack := ptConnect(t, addr, v, "v5sh-single", false)
			if !ack.SessionPresent {
				t.Fatal("session gone")
			}
			got := v5shCollect(t, srv, a)[0]
			var desc, wantDesc []string
			for _, p := range got {
				desc = append(desc, fmt.Sprintf("%s id=%d dup=%v", p.Payload, p.PacketID, p.Dup))
			}
			for i, w := range want {
				wantDesc = append(wantDesc, fmt.Sprintf("%s id=%d dup=true", w, ids[i]))
			}
			if !slices.Equal(desc, wantDesc) {
				t.Fatalf("on reconnect got %q, want %q [v5 MQTT-4.4.0-1]", desc, wantDesc)
			}
		})
	}
}

// TestV5SharedSubscriptionID: a shared subscription's Subscription
// Identifier goes with the messages it delivers [v5 MQTT-3.3.4-3]; a
// client with a shared and an ordinary subscription matching a message
// gets it through each, each copy with its own identifier (section 4.8.2:
// the shared subscription is separate).
func TestV5SharedSubscriptionID(t *testing.T) {
	t.Parallel()
	srv := &Server{}
	addr := ptNewServer(t, srv)
	c, _ := ptConnect(t, addr, packet.V5, "v5sh-subid", true)
	for _, s := range []struct {
		filter string
		id     uint32
	}{{"$share/g/v5sh/id/#", 7}, {"v5sh/id/+", 8}, {v5shMark, 0}} {
		sub := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: s.filter, QoS: 1}}}
		if s.id != 0 {
			sub.Properties.SubscriptionIDs = []uint32{s.id}
		}
		c.send(sub)
		if sa, ok := c.recv().(*packet.Suback); !ok || sa.ReasonCodes[0] != packet.GrantedQoS1 {
			t.Fatalf("SUBACK %v", sa)
		}
	}
	srv.Publish("v5sh/id/x", []byte("m"), 1, false)
	got := v5shCollect(t, srv, c)[0]
	var ids []string
	for _, p := range got {
		ids = append(ids, fmt.Sprint(p.Properties.SubscriptionIDs))
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"[7]", "[8]"}) {
		t.Fatalf("copies with Subscription Identifiers %q, want [7] (shared) and [8] (ordinary)", ids)
	}
}
