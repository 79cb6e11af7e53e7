package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/ternmq/tern/backplane"
	bpnats "github.com/ternmq/tern/backplane/nats"
	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/mqtttest"
	storejs "github.com/ternmq/tern/store/jetstream"
)

// The broker numbers a node's message ids and queue sequences from the
// block a shared store's MsgIDBase of this shape reserves; without it two
// nodes reuse each other's queue sequences (the takeover tests fail).
var _ interface {
	MsgIDBase(context.Context) (uint64, error)
} = (*storejs.Store)(nil)

// sharedNATS is an embedded NATS server (or cluster of them) that three
// Tern nodes use as back plane (backplane/nats) and session store
// (store/jetstream).
type sharedNATS struct {
	urls     []string // node i connects to urls[i%len(urls)]
	replicas int
}

func startSharedNATS(t *testing.T, cluster bool) sharedNATS {
	if !cluster {
		return sharedNATS{urls: []string{mqtttest.StartEmbeddedNATS(t).ClientURL()}, replicas: 1}
	}
	if testing.Short() {
		t.Skip("a JetStream cluster takes seconds to form")
	}
	var sn sharedNATS
	for _, s := range mqtttest.StartEmbeddedNATSCluster(t, 3) {
		sn.urls = append(sn.urls, s.ClientURL())
	}
	sn.replicas = 3
	return sn
}

// node starts a Tern node whose back plane and store share one NATS
// connection, as `tern broker --session-store jetstream` does.
func (sn sharedNATS) node(t *testing.T, i int, name, prefix string) *mqtttest.Broker {
	nc, err := natsgo.Connect(sn.urls[i%len(sn.urls)], natsgo.MaxReconnects(-1), natsgo.ReconnectBufSize(-1),
		natsgo.ReconnectWait(50*time.Millisecond), natsgo.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close) // after the broker and the store
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := storejs.Open(ctx, nc, storejs.Config{Name: prefix, Replicas: sn.replicas})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := strings.ReplaceAll(nodeName(t, name), ".", "")
	return mqtttest.StartBroker(t, mqtttest.BrokerConfig{Server: &broker.Server{
		Backplane: func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
			cfg.ID = id
			return bpnats.Join(ctx, nc, bpnats.Config{Config: cfg, Prefix: prefix, Replicas: sn.replicas})
		},
		Store:       st,
		SysInterval: -1,
	}})
}

// three starts three nodes on streams and buckets of the test's own.
func (sn sharedNATS) three(t *testing.T) [3]*mqtttest.Broker {
	p := fmt.Sprintf("t%d", time.Now().UnixNano())
	return [3]*mqtttest.Broker{sn.node(t, 0, "a", p), sn.node(t, 1, "b", p), sn.node(t, 2, "c", p)}
}
