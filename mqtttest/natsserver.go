package mqtttest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSServerOptions configures StartNATSServer.
type NATSServerOptions struct {
	// Config is more of nats-server's configuration file, appended to what
	// StartNATSServer writes (server_name, listen, jetstream, and for a
	// cluster member the cluster block): a tls block, authorization, ...
	Config string
	// ConnectOptions are the nats.go options the readiness check connects
	// with (TLS, credentials), when Config requires them.
	ConnectOptions []nats.Option
	// StartTimeout bounds the wait for the server (and, in a cluster, for
	// JetStream to answer). Default 30s.
	StartTimeout time.Duration
}

// NATSServer is a running nats-server started by StartNATSServer or
// StartNATSCluster.
type NATSServer struct {
	// Name is its server_name; Addr "127.0.0.1:port" its client address,
	// URL "nats://" + Addr; ClusterAddr its routes' address ("" alone).
	Name, Addr, URL, ClusterAddr string
	// Dir holds its configuration file and JetStream's store.
	Dir string

	t    testing.TB
	path string
	opts NATSServerOptions
	mu   sync.Mutex
	proc *natsProc
	logs []*logBuffer
}

type natsProc struct {
	cmd    *exec.Cmd
	out    *logBuffer
	exited chan struct{}
	err    error
}

// StartNATSServer runs Debian's nats-server (/usr/sbin/nats-server) with
// JetStream on a free 127.0.0.1 port, its store in a t.TempDir, and
// returns once JetStream answers. It stops the server when the test ends,
// printing its log if the test failed. It skips the test if nats-server is
// not installed (Debian package nats-server).
func StartNATSServer(t testing.TB, opts NATSServerOptions) *NATSServer {
	t.Helper()
	s := newNATSServer(t, opts, "n1")
	s.writeConfig("")
	if err := s.start(true); err != nil {
		t.Fatalf("mqtttest: StartNATSServer: %v\nnats-server's log:\n%s", err, s.Log())
	}
	return s
}

func newNATSServer(t testing.TB, opts NATSServerOptions, name string) *NATSServer {
	t.Helper()
	path := NeedBinary(t, "nats-server", "nats-server")
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	s := &NATSServer{Name: name, t: t, path: path, opts: opts, Dir: t.TempDir()}
	s.Addr = FreeAddr(t)
	s.URL = "nats://" + s.Addr
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("mqtttest: nats-server %s's log:\n%s", s.Name, s.Log())
		}
	})
	return s
}

func (s *NATSServer) writeConfig(cluster string) {
	s.t.Helper()
	conf := fmt.Sprintf("server_name: %s\nlisten: %q\njetstream {\n  store_dir: %q\n}\n%s\n%s\n",
		s.Name, s.Addr, filepath.Join(s.Dir, "js"), cluster, s.opts.Config)
	if err := os.WriteFile(filepath.Join(s.Dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// start runs the server and waits for its client port; with js, also
// until JetStream answers a request.
func (s *NATSServer) start(js bool) error {
	p := &natsProc{out: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(s.path, "-c", filepath.Join(s.Dir, "nats.conf"))
	p.cmd.Dir = s.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.proc = p
	s.logs = append(s.logs, p.out)
	s.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StartTimeout)
	defer cancel()
	for {
		err := s.ready(ctx, js)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("nats-server %s exited before it was ready on %s: %v", s.Name, s.Addr, p.err)
		case <-ctx.Done():
			return fmt.Errorf("nats-server %s not ready on %s after %v: %v", s.Name, s.Addr, s.opts.StartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *NATSServer) ready(ctx context.Context, js bool) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	c.Close()
	if !js {
		return nil
	}
	nc, err := nats.Connect(s.URL, append([]nats.Option{nats.Timeout(time.Second), nats.MaxReconnects(0)}, s.opts.ConnectOptions...)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	j, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = j.AccountInfo(actx)
	return err
}

// Kill stops the server now (SIGKILL) and waits for it to end. It does
// nothing if the server is not running.
func (s *NATSServer) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Restart kills the server and starts it again with the same
// configuration and store, waiting for its client port.
func (s *NATSServer) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(false); err != nil {
		s.t.Fatalf("mqtttest: NATSServer.Restart: %v\n%s", err, s.Log())
	}
}

// Log returns what every run of the server printed.
func (s *NATSServer) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, l := range s.logs {
		b.WriteString(l.String())
	}
	return b.String()
}

// NATSCluster is a NATS cluster made by StartNATSCluster.
type NATSCluster struct {
	Servers []*NATSServer
}

// URL returns the client URLs of every server, comma-separated, as
// nats.Connect takes them.
func (c *NATSCluster) URL() string {
	var us []string
	for _, s := range c.Servers {
		us = append(us, s.URL)
	}
	return strings.Join(us, ",")
}

// StartNATSCluster runs n (n >= 3) of Debian's nats-server with JetStream,
// on free 127.0.0.1 ports, joined by routes into one cluster, and returns
// once JetStream answers on every one of them (a meta leader is elected),
// so that streams of 3 replicas can be made. The servers do not advertise
// each other to clients: a client stays on the server it connected to. The
// servers stop when the test ends. It skips the test if nats-server is not installed (Debian
// package nats-server).
func StartNATSCluster(t testing.TB, n int, opts NATSServerOptions) *NATSCluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("mqtttest: StartNATSCluster(%d): a JetStream cluster needs at least 3 servers", n)
	}
	c := &NATSCluster{}
	var routes []string
	used := map[string]bool{}
	fresh := func() string { // FreeAddr twice may give one port
		for {
			if a := FreeAddr(t); !used[a] {
				used[a] = true
				return a
			}
		}
	}
	for i := range n {
		s := newNATSServer(t, opts, "n"+strconv.Itoa(i+1))
		if used[s.Addr] {
			s.Addr = fresh()
			s.URL = "nats://" + s.Addr
		}
		used[s.Addr] = true
		s.ClusterAddr = fresh()
		routes = append(routes, fmt.Sprintf("%q", "nats://"+s.ClusterAddr))
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		// no_advertise: a client cut off from its server (through a cut
		// proxy) must not fail over to another one it was told about.
		s.writeConfig(fmt.Sprintf("cluster {\n  name: tern-test\n  listen: %q\n  no_advertise: true\n  routes: [%s]\n}", s.ClusterAddr, strings.Join(routes, ", ")))
		if err := s.start(false); err != nil {
			t.Fatalf("mqtttest: StartNATSCluster: %v\n%s", err, s.Log())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout+30*time.Second)
	defer cancel()
	for _, s := range c.Servers {
		for {
			err := s.ready(ctx, true)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("mqtttest: StartNATSCluster: JetStream does not answer on %s: %v\n%s", s.Name, err, s.Log())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	// JetStream answers before its leader knows every server: wait until
	// a stream of min(n, 3) replicas can be placed.
	for {
		err := placeStream(ctx, c.Servers[0].URL, min(n, 3), opts.ConnectOptions)
		if err == nil {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("mqtttest: StartNATSCluster: no stream of %d replicas can be made: %v\n%s", min(n, 3), err, c.Servers[0].Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// placeStream makes a stream of the given replicas through the server at
// url and deletes it.
func placeStream(ctx context.Context, url string, replicas int, opts []nats.Option) error {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(time.Second), nats.MaxReconnects(0)}, opts...)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	j, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := j.CreateStream(actx, jetstream.StreamConfig{Name: "mqtttest_ready", Subjects: []string{"mqtttest.ready"},
		Storage: jetstream.MemoryStorage, Replicas: replicas}); err != nil {
		return err
	}
	return j.DeleteStream(actx, "mqtttest_ready")
}
