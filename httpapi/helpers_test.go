package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/broker/auth"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/mqtttest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

// The users of the fixture: alice (password "alice-pw", an
// administrator) may use public/# and read feeds/#; bob (password
// "bob-pw", or the token "bob-token") only bob/#.
const aclText = `user alice
topic readwrite public/#
topic read feeds/#

user bob
topic readwrite bob/#
`

// withAuth gives srv a password file and an ACL file for alice and bob.
func withAuth(t *testing.T, srv *broker.Server) {
	t.Helper()
	dir := t.TempDir()
	var pw bytes.Buffer
	for _, u := range []string{"alice", "bob"} {
		h, err := auth.HashPassword(u+"-pw", auth.HashOptions{Cost: 4})
		if err != nil {
			t.Fatal(err)
		}
		pw.WriteString(u + ":" + h + "\n")
	}
	pwPath, aclPath := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	if err := os.WriteFile(pwPath, pw.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aclPath, []byte(aclText), 0o600); err != nil {
		t.Fatal(err)
	}
	pf, err := auth.LoadPasswordFile(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := auth.LoadACLFile(aclPath)
	if err != nil {
		t.Fatal(err)
	}
	srv.Authenticator, srv.Authorizer = pf, acl
	if srv.SysInterval == 0 {
		srv.SysInterval = -1
	}
}

// fixture starts a broker with a password file and an ACL file, and its
// HTTP API with a token for bob and alice as the administrator.
func fixture(t *testing.T, srv *broker.Server, cfg httpapi.Config) *mqtttest.HTTPBroker {
	t.Helper()
	if srv == nil {
		srv = &broker.Server{}
	}
	withAuth(t, srv)
	if cfg.Tokens == nil {
		cfg.Tokens = map[string]string{"bob-token": "bob"}
	}
	if cfg.Admins == nil {
		cfg.Admins = []string{"alice"}
	}
	return mqtttest.StartHTTPBroker(t, srv, cfg)
}

// call makes one request; user "" sends no credentials, "token:T" a
// bearer token, else basic authentication with user's password.
func call(t *testing.T, method, url, user string, body any) (int, []byte) {
	t.Helper()
	resp := do(t, method, url, user, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func do(t *testing.T, method, url, user string, body any) *http.Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	setAuth(req.Header, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func setAuth(h http.Header, user string) {
	switch {
	case user == "":
	case strings.HasPrefix(user, "token:"):
		h.Set("Authorization", "Bearer "+strings.TrimPrefix(user, "token:"))
	default:
		r := &http.Request{Header: h}
		r.SetBasicAuth(user, user+"-pw")
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string
	data string
}

// readEvents parses a Server-Sent Events stream onto a channel, closed
// at its end.
func readEvents(r io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(mqtttest.DefaultTimeout):
		t.Fatal("no event in time")
	}
	return sseEvent{}
}
