package main

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/transport"
)

// logStartup logs what the broker is about to serve: its listeners, the
// authentication and authorization in force, and a warning for each
// listener that anyone on the network can use without authenticating.
func (st *brokerSetup) logStartup() {
	srv, c, log := st.srv, st.cfg, st.srv.Logger
	names := make([]string, 0, len(srv.Listeners))
	for _, l := range srv.Listeners {
		names = append(names, l.Type+" "+l.Addr)
	}
	if st.defaultListener {
		log.Info("starting Tern broker in local-only mode: listening on "+broker.DefaultAddr+
			"; only clients on this machine can connect (use --listen, -p or a config file to open it up)",
			"version", broker.Version, "data", st.data)
	} else {
		log.Info("starting Tern broker", "version", broker.Version, "listeners", strings.Join(names, ", "), "data", st.data)
	}
	if c.file != "" {
		log.Info("configuration file", "file", c.abs)
	}

	if st.pw != nil {
		log.Info("authentication: password file", "file", st.pw.Path(), "users", st.pw.Len(),
			"allow_anonymous", c.Auth.AllowAnonymous, "scram", srv.AuthMethods != nil, "scram_users", st.pw.SCRAMLen())
	} else {
		log.Info("authentication: none; every client may connect (set auth.password_file or --password-file)")
	}
	for _, l := range srv.Listeners {
		if l.UseCertCommonName {
			log.Info("authentication: verified client certificates log in as their common name", "listener", l.Type+" "+l.Addr)
		}
	}
	if st.acl != nil {
		log.Info("authorization: ACL file", "file", st.acl.Path(), "rules", st.acl.Len())
	} else {
		log.Info("authorization: none; every client may publish and subscribe to every topic (set auth.acl_file or --acl-file)")
	}
	for _, l := range srv.Listeners {
		certs := l.TLS != nil && l.TLS.ClientAuth == transport.ClientAuthRequire
		if st.pw == nil && !certs && exposed(l) {
			log.Warn("listener on a non-loopback address without authentication: anyone who can reach it can connect",
				"listener", l.Type+" "+l.Addr,
				"fix", "set auth.password_file (--password-file), require client certificates (tls.client_auth: require) or listen on 127.0.0.1")
		}
	}
}

// exposed says whether a listener may be reachable from other machines:
// it listens on every interface or on an address that is not loopback.
func exposed(l broker.Listener) bool {
	if l.Type == "unix" {
		return false
	}
	host, _, err := net.SplitHostPort(l.Addr)
	if err != nil {
		host = l.Addr
	}
	host, _, _ = strings.Cut(host, "%") // a zone
	if host == "" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return !ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return true
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return true
		}
	}
	return false
}

// reload reloads the password and ACL files on SIGHUP; a file that is
// now invalid is kept as it was.
func (st *brokerSetup) reload() {
	log := st.srv.Logger
	if st.pw == nil && st.acl == nil {
		log.Info("SIGHUP: nothing to reload; SIGHUP reloads the password file and the ACL file, and neither is configured")
		return
	}
	if p := st.pw; p != nil {
		if err := p.Reload(); err != nil {
			log.Error("reload failed; keeping the previous password file", "file", p.Path(), "err", err)
		} else {
			log.Info("reloaded the password file", "file", p.Path(), "users", p.Len(), "scram_users", p.SCRAMLen())
		}
	}
	if a := st.acl; a != nil {
		if err := a.Reload(); err != nil {
			log.Error("reload failed; keeping the previous ACL file", "file", a.Path(), "err", err)
		} else {
			log.Info("reloaded the ACL file", "file", a.Path(), "rules", a.Len())
		}
	}
}
