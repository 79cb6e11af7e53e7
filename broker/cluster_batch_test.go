package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// batchNode wraps a node: it counts the batches the broker forwards and
// refuses the messages whose topic bad names (ErrUnreachable), as an
// engine refusing one message of a batch would.
type batchNode struct {
	backplane.Node
	bad     func(topic string) bool
	batches atomic.Int64 // ForwardBatch calls with more than one message
}

func (n *batchNode) refused(m *message.Message) error {
	if n.bad != nil && n.bad(m.Topic) {
		return backplane.Unreachable("forward", errors.New("refused by the test"))
	}
	return nil
}

func (n *batchNode) Forward(ctx context.Context, m *message.Message) error {
	if err := n.refused(m); err != nil {
		return err
	}
	return n.Node.Forward(ctx, m)
}

func (n *batchNode) ForwardBatch(ctx context.Context, ms []*message.Message) []error {
	if len(ms) > 1 {
		n.batches.Add(1)
	}
	errs := make([]error, len(ms))
	var ok []*message.Message
	var at []int
	for i, m := range ms {
		if errs[i] = n.refused(m); errs[i] == nil {
			ok, at = append(ok, m), append(at, i)
		}
	}
	if ferrs := backplane.ForwardAll(ctx, n.Node, ok); ferrs != nil {
		for j, i := range at {
			errs[i] = ferrs[j]
		}
	}
	return errs
}

// wrapJoin makes join's nodes batchNodes, the last one made in *last.
func wrapJoin(join broker.BackplaneJoin, bad func(string) bool, last **batchNode) broker.BackplaneJoin {
	return func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
		n, err := join(ctx, cfg)
		if err != nil {
			return nil, err
		}
		bn := &batchNode{Node: n, bad: bad}
		*last = bn
		return bn, nil
	}
}

// publishBurst writes n QoS 1 PUBLISHes (ids 1..n, payload "i", topic
// topicOf(i)) to c in one write, so that the broker reads them as one
// batch (or a few).
func publishBurst(t *testing.T, c *mqtttest.RawClient, n int, topicOf func(i int) string) {
	t.Helper()
	var buf bytes.Buffer
	w := packet.NewWriter(&buf)
	w.Version = c.Version()
	for i := 1; i <= n; i++ {
		if err := w.WritePacket(&packet.Publish{Topic: topicOf(i), QoS: 1, PacketID: uint16(i), Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SendBytes(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// TestClusterBatchOrder: a burst of QoS 1 PUBLISHes from one connection
// on node A, forwarded in batches, is acknowledged in order and reaches
// the subscriber on node B in publish order, on every engine.
func TestClusterBatchOrder(t *testing.T) {
	const n = 300
	for _, en := range engines {
		t.Run(en.name, func(t *testing.T) {
			e := en.start(t)
			var na, nb *batchNode
			a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
				Backplane: wrapJoin(e.join(t, nodeName(t, "a")), nil, &na), SysInterval: -1}})
			b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
				Backplane: wrapJoin(e.join(t, nodeName(t, "b")), nil, &nb), SysInterval: -1}})
			sub := connect5(t, b, "sub")
			subscribe5(t, sub, 1, 0, packet.Subscription{Filter: "o/#", QoS: 1})
			settle(t, a, b)
			pub := connect5(t, a, "pub")
			publishBurst(t, pub, n, func(int) string { return "o/x" })
			for i := 1; i <= n; i++ {
				ack := mqtttest.Expect[*packet.Puback](pub)
				if ack.PacketID != uint16(i) || ack.ReasonCode != packet.Success {
					t.Fatalf("PUBACK %d: id %d code %v", i, ack.PacketID, ack.ReasonCode)
				}
			}
			for i := 1; i <= n; i++ {
				got := sub.ExpectPublish()
				if string(got.Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d on B: payload %q: out of order", i, got.Payload)
				}
				sub.Send(&packet.Puback{PacketID: got.PacketID})
			}
			if na.batches.Load() == 0 {
				t.Errorf("node A forwarded no batch of more than one message")
			}
		})
	}
}

// TestClusterBatchRefusesOne: in a batch, a message the engine does not
// take is refused to its MQTT 5 publisher (0x80), and only it: the others
// are acknowledged and reach node B, in order.
func TestClusterBatchRefusesOne(t *testing.T) {
	const n = 20
	e := memoryEngine()
	var na, nb *batchNode
	bad := func(topic string) bool { return strings.HasSuffix(topic, "/bad") }
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		Backplane: wrapJoin(e.join(t, nodeName(t, "a")), bad, &na), SysInterval: -1}})
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		Backplane: wrapJoin(e.join(t, nodeName(t, "b")), nil, &nb), SysInterval: -1}})
	sub := connect5(t, b, "sub")
	subscribe5(t, sub, 1, 0, packet.Subscription{Filter: "o/#", QoS: 1})
	settle(t, a, b)
	pub := connect5(t, a, "pub")
	topicOf := func(i int) string {
		if i == 7 {
			return "o/bad"
		}
		return "o/x"
	}
	publishBurst(t, pub, n, topicOf)
	for i := 1; i <= n; i++ {
		ack := mqtttest.Expect[*packet.Puback](pub)
		want := packet.Success
		if i == 7 {
			want = packet.UnspecifiedError
		}
		if ack.PacketID != uint16(i) || ack.ReasonCode != want {
			t.Fatalf("PUBACK %d: id %d code %v, want %v", i, ack.PacketID, ack.ReasonCode, want)
		}
	}
	for i := 1; i <= n; i++ {
		if i == 7 {
			continue
		}
		got := sub.ExpectPublish()
		if string(got.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d on B: payload %q", i, got.Payload)
		}
		sub.Send(&packet.Puback{PacketID: got.PacketID})
	}
	sub.NoPacket(100 * time.Millisecond)
	if na.batches.Load() == 0 {
		t.Errorf("node A forwarded no batch of more than one message")
	}
}

// TestClusterBatchRefusesOne311: a 3.1.1 publisher, which cannot be told
// of a refusal, gets the PUBACKs of the messages before the one the
// engine refused, and then its connection closes without that one's
// PUBACK or any later one, so that it sends them again.
func TestClusterBatchRefusesOne311(t *testing.T) {
	const n, badAt = 20, 7
	e := memoryEngine()
	var na, nb *batchNode
	bad := func(topic string) bool { return strings.HasSuffix(topic, "/bad") }
	a := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		Backplane: wrapJoin(e.join(t, nodeName(t, "a")), bad, &na), SysInterval: -1}})
	b := mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		Backplane: wrapJoin(e.join(t, nodeName(t, "b")), nil, &nb), SysInterval: -1}})
	sub := connect5(t, b, "sub")
	subscribe5(t, sub, 1, 0, packet.Subscription{Filter: "o/#", QoS: 1})
	settle(t, a, b)
	pub := mqtttest.DialRaw(t, a.Addr, packet.V311)
	pub.Connect(&packet.Connect{ClientID: "pub311", CleanStart: true, KeepAlive: 60})
	publishBurst(t, pub, n, func(i int) string {
		if i == badAt {
			return "o/bad"
		}
		return "o/x"
	})
	got := pub.ExpectClosed()
	var acked []uint16
	for _, p := range got {
		if ack, ok := p.(*packet.Puback); ok {
			acked = append(acked, ack.PacketID)
		}
	}
	for i, id := range acked {
		if id != uint16(i+1) || id >= badAt {
			t.Fatalf("PUBACKs %v: want ids in order, all below %d", acked, badAt)
		}
	}
}
