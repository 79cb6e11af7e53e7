package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	natsgo "github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"
)

// clusterTLSSet reports whether any cluster.tls key is set.
func (c *brokerConfig) clusterTLSSet() bool {
	t := &c.Cluster.TLS
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
}

// clusterAuthSet names a credentials or TLS key that is set, or "".
func (c *brokerConfig) clusterAuthSet() string {
	switch {
	case c.Cluster.User != "":
		return "cluster.user"
	case c.Cluster.Password != "":
		return "cluster.password"
	case c.Cluster.Token != "":
		return "cluster.token"
	case c.Cluster.CredsFile != "":
		return "cluster.creds_file"
	case c.clusterTLSSet():
		return "cluster.tls"
	}
	return ""
}

// clusterTLS builds the TLS configuration of cluster.tls for a server
// named host.
func (c *brokerConfig) clusterTLS(host string) (*tls.Config, error) {
	t := &c.Cluster.TLS
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.where("cluster.tls.ca_file"), err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s %s holds no PEM certificate: give the CA certificate the engine's certificate is signed by", c.where("cluster.tls.ca_file"), t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%s: a client certificate needs both cluster.tls.cert_file (--cluster-cert) and cluster.tls.key_file (--cluster-key)", c.where("cluster.tls"))
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s %s, %s: %w", c.where("cluster.tls.cert_file"), t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// redisAuth applies the credentials and TLS keys to Redis options.
func (c *brokerConfig) redisAuth(opts *goredis.Options, host string) error {
	if c.Cluster.Token != "" || c.Cluster.CredsFile != "" {
		k := "cluster.token"
		if c.Cluster.Token == "" {
			k = "cluster.creds_file"
		}
		return fmt.Errorf("%s is for NATS: Redis logs in with cluster.user and cluster.password", c.where(k))
	}
	if c.Cluster.Replicas != 0 {
		return fmt.Errorf("%s is for NATS: Redis keeps one copy (replicate it with Redis's own replication)", c.where("cluster.replicas"))
	}
	if c.Cluster.User != "" {
		opts.Username = c.Cluster.User
	}
	if c.Cluster.Password != "" {
		opts.Password = c.Cluster.Password
	}
	if c.clusterTLSSet() {
		t, err := c.clusterTLS(host)
		if err != nil {
			return err
		}
		opts.TLSConfig = t
	}
	return nil
}

// natsAuth returns the nats.go options of the credentials and TLS keys.
func (c *brokerConfig) natsAuth(host string, tlsScheme bool) ([]natsgo.Option, error) {
	var o []natsgo.Option
	cl := &c.Cluster
	n := 0
	for _, set := range []bool{cl.User != "" || cl.Password != "", cl.Token != "", cl.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New(c.where("cluster") + ": give NATS one way to log in: cluster.user and cluster.password, or cluster.token, or cluster.creds_file")
	}
	switch {
	case cl.User != "" || cl.Password != "":
		o = append(o, natsgo.UserInfo(cl.User, cl.Password))
	case cl.Token != "":
		o = append(o, natsgo.Token(cl.Token))
	case cl.CredsFile != "":
		if _, err := os.Stat(cl.CredsFile); err != nil {
			return nil, fmt.Errorf("%s: %w", c.where("cluster.creds_file"), err)
		}
		o = append(o, natsgo.UserCredentials(cl.CredsFile))
	}
	if c.clusterTLSSet() {
		t, err := c.clusterTLS(host)
		if err != nil {
			return nil, err
		}
		o = append(o, natsgo.Secure(t))
	} else if tlsScheme {
		o = append(o, natsgo.Secure(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}))
	}
	return o, nil
}
