package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/ternmq/tern/backplane"
	bpnats "github.com/ternmq/tern/backplane/nats"
	storejs "github.com/ternmq/tern/store/jetstream"
)

// embeddedURL is the cluster.url that names the embedded NATS server.
const embeddedURL = "nats-embedded"

// embeddedWait bounds the wait at start for the other nodes' NATS
// servers: JetStream needs a quorum of them.
const embeddedWait = 2 * time.Minute

// embeddedName is the NATS cluster name of the embedded servers.
const embeddedName = "tern"

// embedded reports whether the configuration runs an embedded NATS server.
func (c *brokerConfig) embedded() bool {
	e := &c.Cluster.Embedded
	return c.Cluster.URL == embeddedURL || e.Listen != "" || e.Routes != "" || e.ClientListen != "" || e.JetStreamDir != ""
}

// hostPort checks a host:port value of key.
func (c *brokerConfig) hostPort(key, v string) (string, int, error) {
	host, p, err := net.SplitHostPort(v)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%s %q is not host:port: write one such as 0.0.0.0:6222 (port 0: any free one)", c.where(key), v)
	}
	return host, port, nil
}

// embeddedOptions checks cluster.embedded and returns the NATS server's
// options and the replicas of its JetStream data.
func (c *brokerConfig) embeddedOptions(node string) (*server.Options, int, error) {
	e := &c.Cluster.Embedded
	if c.Cluster.URL != "" && c.Cluster.URL != embeddedURL {
		return nil, 0, fmt.Errorf("%s %q and %s: an embedded NATS server is the engine then: drop cluster.url or set it to %s",
			c.where("cluster.url"), c.Cluster.URL, c.where("cluster.embedded"), embeddedURL)
	}
	if e.Listen == "" {
		return nil, 0, fmt.Errorf("%s: the embedded NATS server needs the address its routes listen on for the other nodes: set cluster.embedded.listen (--cluster-listen host:port, e.g. 0.0.0.0:6222)", c.where("cluster.embedded.listen"))
	}
	host, port, err := c.hostPort("cluster.embedded.listen", e.Listen)
	if err != nil {
		return nil, 0, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := node
	if name == "" {
		h, _ := os.Hostname()
		name = fmt.Sprintf("tern-%s-%d", h, port)
	}
	// Without cluster.embedded.client_listen the server still listens for
	// clients, on a free loopback port: with DontListen it makes no routes.
	o := &server.Options{ServerName: name, NoSigs: true, JetStream: true, Host: "127.0.0.1", Port: server.RANDOM_PORT,
		Cluster: server.ClusterOpts{Name: embeddedName, Host: host, Port: port}}
	if e.ClientListen != "" {
		if o.Host, o.Port, err = c.hostPort("cluster.embedded.client_listen", e.ClientListen); err != nil {
			return nil, 0, err
		}
		if o.Port == 0 {
			o.Port = server.RANDOM_PORT
		}
	}
	for r := range strings.SplitSeq(e.Routes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-route") || u.Port() == "" || u.Hostname() == "" {
			return nil, 0, fmt.Errorf("%s: %q is not a route: write nats://host:port, the other node's cluster.embedded.listen (comma-separated for several)", c.where("cluster.embedded.routes"), r)
		}
		o.Routes = append(o.Routes, u)
	}
	if len(o.Routes) == 0 {
		// nats-server runs no clustered JetStream without routes.
		return nil, 0, fmt.Errorf("%s is empty: the embedded NATS server forms a cluster with the other nodes' servers: set cluster.embedded.routes (--cluster-peers nats://host:port,...) to their cluster.embedded.listen addresses", c.where("cluster.embedded.routes"))
	}
	replicas := c.Cluster.Replicas
	if replicas == 0 {
		replicas = 3
	}
	o.StoreDir = e.JetStreamDir
	return o, replicas, nil
}

// slogNATS passes the embedded NATS server's log to the broker's: its
// notices at debug level (there are many at start), warnings and errors
// as such.
type slogNATS struct{ l *slog.Logger }

func (s slogNATS) Noticef(f string, v ...any) { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s slogNATS) Warnf(f string, v ...any)   { s.l.Warn(fmt.Sprintf(f, v...)) }
func (s slogNATS) Fatalf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s slogNATS) Errorf(f string, v ...any) {
	m := fmt.Sprintf(f, v...)
	if strings.HasPrefix(m, "Error trying to connect to route") { // a peer not up yet; waitJetStream says so
		s.l.Debug(m)
		return
	}
	s.l.Error(m)
}
func (s slogNATS) Debugf(f string, v ...any) {}
func (s slogNATS) Tracef(f string, v ...any) {}

// setEmbedded starts the embedded NATS server of cluster.embedded, waits
// until its JetStream cluster has a leader and as many servers as the
// replicas, and wires the back plane onto it, connected in process. The
// returned function closes the connection and stops the server.
func (st *brokerSetup) setEmbedded() (closeAll func(), err error) {
	c := st.cfg
	closeAll = func() {}
	o, replicas, err := c.embeddedOptions(c.Cluster.Node)
	if err != nil {
		return closeAll, err
	}
	var tmp string
	if o.StoreDir == "" {
		if c.Store.InMemory {
			if tmp, err = os.MkdirTemp("", "tern-nats-"); err != nil {
				return closeAll, fmt.Errorf("%s: a temporary JetStream directory: %w; set cluster.embedded.jetstream_dir (--cluster-dir)", c.where("cluster.embedded.jetstream_dir"), err)
			}
			o.StoreDir = tmp
		} else {
			dir, err := c.dataDir()
			if err != nil {
				return closeAll, err
			}
			o.StoreDir = filepath.Join(dir, "nats")
		}
	}
	log := st.srv.Logger.With("component", "nats")
	s, err := server.NewServer(o)
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return closeAll, fmt.Errorf("%s: the embedded NATS server: %w", c.where("cluster.embedded"), err)
	}
	s.SetLoggerV2(slogNATS{log}, false, false, false)
	stop := func() {
		s.Shutdown()
		s.WaitForShutdown()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		stop()
		return closeAll, fmt.Errorf("%s %s: the embedded NATS server did not start in 10s (its log above says why: is the port in use?)", c.where("cluster.embedded.listen"), c.Cluster.Embedded.Listen)
	}
	log.Info("embedded NATS server started", "name", o.ServerName, "routes_listen", s.ClusterAddr(), "routes", len(o.Routes),
		"client_listen", c.Cluster.Embedded.ClientListen, "jetstream_dir", o.StoreDir, "replicas", replicas)
	if err := waitJetStream(s, replicas, log); err != nil {
		stop()
		return closeAll, fmt.Errorf("%s %s: %w", c.where("cluster.embedded.routes"), c.Cluster.Embedded.Routes, err)
	}
	var nc *natsgo.Conn
	node := c.Cluster.Node
	connect := func() (*natsgo.Conn, error) {
		return natsgo.Connect("", natsgo.InProcessServer(s), natsgo.MaxReconnects(-1), natsgo.ReconnectBufSize(-1),
			natsgo.Timeout(2*time.Second), natsgo.Name("tern broker"))
	}
	var ss *storejs.Store
	if c.Cluster.SessionStore == "jetstream" {
		// The store must be open before the server starts: the connection
		// is made now, and the back plane joins on it.
		if nc, err = connect(); err != nil {
			stop()
			return closeAll, fmt.Errorf("the embedded NATS server: %w", err)
		}
		if ss, err = st.openJetStreamStore(nc, replicas, "the embedded NATS server"); err != nil {
			nc.Close()
			stop()
			return closeAll, err
		}
	}
	st.srv.Backplane = func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
		shared := ss != nil
		if !shared {
			var err error
			if nc, err = connect(); err != nil {
				return nil, fmt.Errorf("the embedded NATS server: %w", backplane.Unreachable("connect", err))
			}
		}
		cfg.ID = node
		n, err := bpnats.Join(ctx, nc, bpnats.Config{Config: cfg, Replicas: replicas})
		if err != nil {
			if !shared { // the store's connection stays, for the store
				nc.Close()
				nc = nil
			}
			return nil, fmt.Errorf("the embedded NATS server: %w", err)
		}
		return n, nil
	}
	st.cluster = "nats embedded " + s.ClusterAddr().String()
	return func() {
		if ss != nil {
			ss.Close()
		}
		if nc != nil {
			nc.Close()
		}
		stop()
	}, nil
}

// waitJetStream waits until s's JetStream cluster has a leader and at
// least replicas servers (a server alone: until JetStream is up).
func waitJetStream(s *server.Server, replicas int, log *slog.Logger) error {
	deadline := time.Now().Add(embeddedWait)
	next := time.Now().Add(5 * time.Second)
	for {
		clustered := s.JetStreamIsClustered()
		peers, leader := 0, ""
		if jsz, err := s.Jsz(&server.JSzOptions{}); err == nil && jsz.Meta != nil {
			leader = jsz.Meta.Leader
			peers = 1 // this server
			for _, p := range jsz.Meta.Replicas {
				if !p.Offline {
					peers++
				}
			}
		}
		if s.JetStreamEnabled() && (!clustered || (leader != "" && peers >= replicas)) {
			log.Info("JetStream ready", "clustered", clustered, "servers", peers, "leader", leader)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the embedded NATS server saw %d of the %d JetStream servers it needs after %v: start the other nodes, check that their cluster.embedded.listen addresses are reachable from here, or lower cluster.replicas (--cluster-replicas)", peers, replicas, embeddedWait)
		}
		if time.Now().After(next) {
			log.Info("waiting for the other nodes' NATS servers (JetStream needs them)", "servers", peers, "need", replicas, "routes", s.NumRoutes())
			next = time.Now().Add(5 * time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
