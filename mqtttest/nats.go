package mqtttest

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbeddedNATS runs a NATS server with JetStream, from the
// nats-server Go module, on a free 127.0.0.1 port, its store in a
// t.TempDir, until the test ends. Its client URL is s.ClientURL().
func StartEmbeddedNATS(t testing.TB) *server.Server {
	t.Helper()
	return startEmbeddedNATS(t, &server.Options{ServerName: "n1", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
}

func startEmbeddedNATS(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("mqtttest: embedded NATS server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("mqtttest: embedded NATS server not ready after 10s")
	}
	return s
}

// StartEmbeddedNATSCluster runs n embedded NATS servers with JetStream
// (as StartEmbeddedNATS) joined by routes into one cluster, and returns
// once JetStream has a meta leader, so that streams of n replicas can be
// made. The servers do not advertise each other to clients: a client
// stays on the server it connected to. The servers stop when the test ends.
func StartEmbeddedNATSCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = FreePort(t)
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	ss := make([]*server.Server, n)
	for i := range ss {
		ss[i] = startEmbeddedNATS(t, &server.Options{ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1",
			Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "tern-test", Host: "127.0.0.1", Port: ports[i], NoAdvertise: true}, Routes: routes})
	}
	WaitJetStreamCluster(t, ss)
	return ss
}

// WaitJetStreamCluster waits (up to 30s) until one of ss is the
// JetStream meta leader and every server sees all the others as peers.
func WaitJetStreamCluster(t testing.TB, ss []*server.Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		leader, ready := false, true
		for _, s := range ss {
			leader = leader || s.JetStreamIsLeader()
			ready = ready && s.NumRoutes() >= len(ss)-1 && s.JetStreamIsCurrent()
		}
		if leader && ready && placeStream(context.Background(), ss[0].ClientURL(), min(len(ss), 3), nil) == nil {
			return // and the leader knows enough servers to place replicas
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mqtttest: the %d embedded NATS servers formed no JetStream cluster in 30s", len(ss))
}
