package mqtttest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configures StartRedis. The zero value is a plain Redis with
// persistence off.
type RedisOptions struct {
	// Args are extra redis-server arguments, as "--name value" pairs:
	// {"--maxmemory", "64mb"}.
	Args []string
	// StartTimeout bounds the wait for Redis to answer PING. Default 15s.
	StartTimeout time.Duration
}

// Redis is a running redis-server started by StartRedis.
type Redis struct {
	// Addr is "127.0.0.1:port"; URL is "redis://" + Addr.
	Addr, URL string
	// Dir is its working directory (a t.TempDir).
	Dir string

	t    testing.TB
	path string
	args []string
	opts RedisOptions
	mu   sync.Mutex
	proc *redisProc
	logs []*logBuffer
}

type redisProc struct {
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{}
	err    error
}

// StartRedis runs Debian's redis-server on a free 127.0.0.1 port, in the
// foreground, with persistence off and its working directory in a
// t.TempDir. It returns once Redis answers PING and stops it when the test
// ends, printing its log if the test failed. It skips the test if
// redis-server is not installed (Debian package redis-server).
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	path := NeedBinary(t, "redis-server", "redis-server")
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Second
	}
	r := &Redis{t: t, path: path, opts: opts, Dir: t.TempDir()}
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			t.Logf("mqtttest: redis-server's log:\n%s", r.Log())
		}
	})
	for attempt := 1; ; attempt++ {
		r.setPort(FreePort(t))
		out, err := r.start()
		if err == nil {
			return r
		}
		if attempt < 3 && strings.Contains(out.String(), "Address already in use") {
			continue
		}
		t.Fatalf("mqtttest: StartRedis: %v\nredis-server's log:\n%s", err, out.String())
	}
}

func (r *Redis) setPort(port int) {
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r.URL = "redis://" + r.Addr
	r.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.Dir, "--protected-mode", "no",
		"--logfile", ""}, r.opts.Args...)
}

func (r *Redis) start() (*logBuffer, error) {
	p := &redisProc{out: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(r.path, r.args...)
	p.cmd.Dir = r.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return p.out, fmt.Errorf("starting %s: %w", r.path, err)
	}
	r.mu.Lock()
	r.proc = p
	r.logs = append(r.logs, p.out)
	r.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.StartTimeout)
	defer cancel()
	for {
		err := RedisPing(ctx, r.Addr)
		if err == nil {
			return p.out, nil
		}
		select {
		case <-p.exited:
			return p.out, fmt.Errorf("redis-server exited before answering on %s: %v", r.Addr, p.err)
		case <-ctx.Done():
			r.Kill()
			return p.out, fmt.Errorf("redis-server does not answer PING on %s after %v: %v", r.Addr, r.opts.StartTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RedisPing sends PING to the Redis at addr and checks the answer, without
// a client library.
func RedisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Kill stops Redis now (SIGKILL: no shutdown save, connections drop) and
// waits for it to end. It does nothing if Redis is not running.
func (r *Redis) Kill() {
	r.mu.Lock()
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Restart kills Redis and starts it again on the same port (empty, since
// persistence is off). It fails the test if Redis does not come back.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Kill()
	if _, err := r.start(); err != nil {
		r.t.Fatalf("mqtttest: Redis.Restart: %v\n%s", err, r.Log())
	}
}

// Log returns what every run of redis-server printed.
func (r *Redis) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.logs {
		b.WriteString(l.String())
	}
	return b.String()
}

// RedisCluster is a Redis Cluster of masters made by StartRedisCluster.
type RedisCluster struct {
	// Nodes are its servers; Addrs their addresses.
	Nodes []*Redis
	Addrs []string
}

// StartRedisCluster starts n redis-server processes (n >= 3) with cluster
// mode on and joins them into one cluster of n masters and no replicas with
// "redis-cli --cluster create", then waits until the cluster reports
// cluster_state:ok. It skips the test if redis-server or redis-cli (Debian
// packages redis-server, redis-tools) is not installed.
func StartRedisCluster(t testing.TB, n int) *RedisCluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("mqtttest: StartRedisCluster(%d): Redis Cluster needs at least 3 masters", n)
	}
	cli := NeedBinary(t, "redis-cli", "redis-tools")
	rc := &RedisCluster{}
	for range n {
		dir := t.TempDir()
		// The cluster bus port is given, not left at port+10000, which may
		// be taken or above 65535.
		r := StartRedis(t, RedisOptions{Args: []string{"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(FreePort(t))}})
		rc.Nodes = append(rc.Nodes, r)
		rc.Addrs = append(rc.Addrs, r.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, rc.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mqtttest: redis-cli --cluster create: %v\n%s", err, out)
	}
	host, port, _ := net.SplitHostPort(rc.Addrs[0])
	for {
		out, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "cluster", "info").CombinedOutput()
		if err == nil && strings.Contains(string(out), "cluster_state:ok") {
			return rc
		}
		select {
		case <-ctx.Done():
			t.Fatalf("mqtttest: the Redis Cluster at %v is not ok after 60s: %v\n%s", rc.Addrs, err, out)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
