package mqtttest

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// WaitAllOK waits until every node of the cluster reports
// cluster_state:ok: StartRedisCluster returns once the first does, and
// the others may answer CLUSTERDOWN for a moment longer. It fails the
// test after 30s.
func (rc *RedisCluster) WaitAllOK(t testing.TB) {
	t.Helper()
	cli := NeedBinary(t, "redis-cli", "redis-tools")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, addr := range rc.Addrs {
		host, port, _ := net.SplitHostPort(addr)
		for {
			out, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "cluster", "info").CombinedOutput()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("mqtttest: Redis Cluster node %s is not ok after 30s: %v\n%s", addr, err, out)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
