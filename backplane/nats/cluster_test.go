package nats

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/mqtttest"
)

// TestJoinTogether: three nodes join at once, each through another server
// of a 3-server JetStream cluster, with R3 buckets: all of them join (each
// creates the buckets; a create request now and then gets no answer from
// the cluster, and openBucket tries again).
func TestJoinTogether(t *testing.T) {
	ss := mqtttest.StartEmbeddedNATSCluster(t, 3)
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nc := connect(t, ss[i].ClientURL())
				defer nc.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				n, err := Join(ctx, nc, Config{Config: backplane.Config{ID: fmt.Sprint("n", i)}, Prefix: fmt.Sprint("r", round), Replicas: 3})
				if err != nil {
					errs <- fmt.Errorf("node %d: %w", i, err)
					return
				}
				errs <- n.Close(ctx)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
