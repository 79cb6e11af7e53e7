package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/backplane"
	bpnats "github.com/ternmq/tern/backplane/nats"
	bpredis "github.com/ternmq/tern/backplane/redis"
	storejs "github.com/ternmq/tern/store/jetstream"
	storeredis "github.com/ternmq/tern/store/redis"
)

// setCluster wires the back plane of cluster.url (--cluster) into the
// server: the engine's client is made here, the server joins when it
// starts and leaves at shutdown; the returned function closes the client
// after that. Without cluster.url it does nothing.
func (st *brokerSetup) setCluster() (closeClient func(), err error) {
	c := st.cfg
	closeClient = func() {}
	if c.Cluster.Node != "" {
		if err := backplane.ValidateID(c.Cluster.Node); err != nil {
			return closeClient, fmt.Errorf("%s: %w", c.where("cluster.node"), err)
		}
	}
	if c.Cluster.SessionStore == "redis" && (c.Cluster.URL == "" || c.embedded()) {
		return closeClient, fmt.Errorf("%s redis keeps sessions on the cluster's Redis, but the cluster has no Redis: give it with cluster.url (--cluster redis://host:port), or drop the session store", c.where("cluster.session_store"))
	}
	if c.Cluster.SessionStore == "jetstream" && c.Cluster.URL == "" && !c.embedded() {
		return closeClient, fmt.Errorf("%s jetstream keeps sessions in the cluster's JetStream, but there is no cluster: give it with cluster.url (--cluster nats://host:port) or the embedded NATS server (--cluster-listen host:port --cluster-peers nats://host:port,...), or drop the session store", c.where("cluster.session_store"))
	}
	if c.embedded() {
		if k := c.clusterAuthSet(); k != "" {
			return closeClient, fmt.Errorf("%s is for an external engine (cluster.url): the embedded NATS server's routes take no TLS or credentials yet; drop it", c.where(k))
		}
		return st.setEmbedded() // embedded.go
	}
	if c.Cluster.URL == "" {
		if k := c.clusterAuthSet(); k != "" {
			return closeClient, fmt.Errorf("%s is set but no cluster: give the engine with cluster.url (--cluster redis://host:port or nats://host:port), or drop it", c.where(k))
		}
		if c.Cluster.Node != "" {
			return closeClient, fmt.Errorf("%s names a node but no cluster: give the engine with cluster.url (--cluster redis://host:port or nats://host:port), or drop the node name", c.where("cluster.node"))
		}
		return closeClient, nil
	}
	u, err := url.Parse(c.Cluster.URL)
	if err != nil || u.Host == "" {
		return closeClient, fmt.Errorf("%s %q is not a URL: use redis://host:port or nats://host:port", c.where("cluster.url"), c.Cluster.URL)
	}
	node := c.Cluster.Node
	where := fmt.Sprintf("%s %s", c.where("cluster.url"), redact(u))
	switch u.Scheme {
	case "redis", "rediss":
		if c.Cluster.SessionStore == "jetstream" {
			return closeClient, fmt.Errorf("%s jetstream needs a NATS cluster.url, not %s: use --cluster nats://host:port or the embedded NATS server, or session_store redis", c.where("cluster.session_store"), where)
		}
		opts, err := goredis.ParseURL(c.Cluster.URL)
		if err != nil {
			return closeClient, fmt.Errorf("%s: %w: use redis://[user:password@]host:port[/db]", c.where("cluster.url"), err)
		}
		if err := c.redisAuth(opts, u.Hostname()); err != nil { // clusterauth.go
			return closeClient, err
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		opts.MaxRetries = 1
		rdb := goredis.NewClient(opts)
		closeRedis := func() { rdb.Close() }
		if c.Cluster.SessionStore == "redis" {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ss, err := storeredis.Open(ctx, rdb, storeredis.Config{})
			cancel()
			if err != nil {
				rdb.Close()
				return closeClient, fmt.Errorf("%s (%s; is Redis running there?): %w", where, c.where("cluster.session_store"), err)
			}
			st.srv.Store = ss
			st.data = fmt.Sprintf("on Redis at %s (%s redis): shared by the cluster's nodes, as durable as that Redis's appendfsync", u.Host, c.where("cluster.session_store"))
			closeRedis = func() {
				ss.Close()
				rdb.Close()
			}
		}
		st.srv.Backplane = func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
			cfg.ID = node
			n, err := bpredis.Join(ctx, rdb, bpredis.Config{Config: cfg})
			if err != nil {
				return nil, fmt.Errorf("%s (is Redis running there?): %w", where, err)
			}
			return n, nil
		}
		st.cluster = "redis " + u.Host
		return closeRedis, nil
	case "nats", "tls":
		if c.Cluster.SessionStore == "redis" {
			return closeClient, fmt.Errorf("%s redis needs a Redis cluster.url, not %s: use --cluster redis://host:port, or session_store local", c.where("cluster.session_store"), where)
		}
		var nc *natsgo.Conn
		servers := c.Cluster.URL
		auth, err := c.natsAuth(u.Hostname(), u.Scheme == "tls") // clusterauth.go
		replicas := c.Cluster.Replicas
		if err != nil {
			return closeClient, err
		}
		connect := func() (*natsgo.Conn, error) {
			// Always reconnect; a publish while disconnected fails
			// (Forward says unreachable) rather than waiting in a buffer.
			return natsgo.Connect(servers, append([]natsgo.Option{natsgo.MaxReconnects(-1), natsgo.ReconnectBufSize(-1),
				natsgo.Timeout(2 * time.Second), natsgo.Name("tern broker")}, auth...)...)
		}
		var ss *storejs.Store
		if c.Cluster.SessionStore == "jetstream" {
			// The store must be open before the server starts: the
			// connection is made now, and the back plane joins on it.
			if nc, err = connect(); err != nil {
				return closeClient, fmt.Errorf("%s (is a NATS server with JetStream running there?): %w", where, err)
			}
			if ss, err = st.openJetStreamStore(nc, replicas, where); err != nil {
				nc.Close()
				return closeClient, err
			}
		}
		st.srv.Backplane = func(ctx context.Context, cfg backplane.Config) (backplane.Node, error) {
			shared := ss != nil
			if !shared {
				var err error
				if nc, err = connect(); err != nil {
					return nil, fmt.Errorf("%s (is a NATS server with JetStream running there?): %w", where, backplane.Unreachable("connect", err))
				}
			}
			cfg.ID = node
			n, err := bpnats.Join(ctx, nc, bpnats.Config{Config: cfg, Replicas: replicas})
			if err != nil {
				if !shared { // the store's connection stays, for the store
					nc.Close()
					nc = nil
				}
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			return n, nil
		}
		st.cluster = "nats " + u.Host
		return func() {
			if ss != nil {
				ss.Close()
			}
			if nc != nil {
				nc.Close()
			}
		}, nil
	}
	return closeClient, fmt.Errorf("%s %q: unknown engine %q: use redis://host:port or nats://host:port", c.where("cluster.url"), redact(u), u.Scheme)
}

// redact is u without its password, for messages.
func redact(u *url.URL) string { return u.Redacted() }

// sharedStore reports whether the nodes share a session store
// (cluster.session_store redis or jetstream).
func (c *brokerConfig) sharedStore() bool {
	return c.Cluster.SessionStore == "redis" || c.Cluster.SessionStore == "jetstream"
}

// checkSharedStore refuses a configuration that keeps sessions on Redis
// or JetStream and names a local store too. The embedded NATS server may
// keep its JetStream data in store.data_dir.
func (st *brokerSetup) checkSharedStore() error {
	c := st.cfg
	keys := []string{"store.data_dir", "store.in_memory"}
	if c.Cluster.SessionStore == "jetstream" && c.embedded() {
		keys = nil
	}
	for _, k := range keys {
		if _, ok := c.set[k]; ok {
			return fmt.Errorf("%s and %s %s contradict each other: sessions are kept on %s, drop %s", c.where(k), c.where("cluster.session_store"),
				c.Cluster.SessionStore, c.Cluster.SessionStore, c.where(k))
		}
	}
	return nil
}

// openJetStreamStore opens the JetStream session store on nc, the
// connection the back plane joins with, and makes it the server's store.
func (st *brokerSetup) openJetStreamStore(nc *natsgo.Conn, replicas int, where string) (*storejs.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ss, err := storejs.Open(ctx, nc, storejs.Config{Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("%s (%s jetstream; is JetStream enabled there, with as many servers as cluster.replicas?): %w", where, st.cfg.where("cluster.session_store"), err)
	}
	st.srv.Store = ss
	st.data = fmt.Sprintf("in JetStream on %s (%s jetstream, %d replicas): shared by the cluster's nodes, as durable as the NATS servers' sync_interval", where, st.cfg.where("cluster.session_store"), max(replicas, 1))
	return ss, nil
}
