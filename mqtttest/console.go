package mqtttest

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/httpapi"
)

// StartConsoleBroker is StartHTTPBroker with the web console of package
// console mounted at /console/ (cfg.Console is replaced).
func StartConsoleBroker(t testing.TB, srv *broker.Server, cfg httpapi.Config, ccfg console.Config) *HTTPBroker {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{}
	}
	c, err := console.New(srv, ccfg)
	if err != nil {
		t.Fatalf("mqtttest: StartConsoleBroker: %v", err)
	}
	cfg.Console = c
	return StartHTTPBroker(t, srv, cfg)
}

// WithPasswords gives srv an Authenticator from a password file of users
// (name to password, hashed at the lowest cost) and, when acl is not
// empty, an Authorizer from an ACL file of that text (Mosquitto's
// format). The files live in a directory of the test's.
func WithPasswords(t testing.TB, srv *broker.Server, users map[string]string, acl string) {
	t.Helper()
	dir := t.TempDir()
	var pw strings.Builder
	for _, u := range slices.Sorted(maps.Keys(users)) {
		h, err := auth.HashPassword(users[u], auth.HashOptions{Cost: 4})
		if err != nil {
			t.Fatalf("mqtttest: WithPasswords: %v", err)
		}
		pw.WriteString(u + ":" + h + "\n")
	}
	pwPath := filepath.Join(dir, "passwd")
	if err := os.WriteFile(pwPath, []byte(pw.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	pf, err := auth.LoadPasswordFile(pwPath)
	if err != nil {
		t.Fatalf("mqtttest: WithPasswords: %v", err)
	}
	srv.Authenticator = pf
	if acl == "" {
		return
	}
	aclPath := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclPath, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.LoadACLFile(aclPath)
	if err != nil {
		t.Fatalf("mqtttest: WithPasswords: %v", err)
	}
	srv.Authorizer = a
}
