package httpapi_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
)

// TestConsoleMount: Config.Console is served under /console/ behind the
// API's authentication, with the user's name at hand.
func TestConsoleMount(t *testing.T) {
	t.Parallel()
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, httpapi.User(r.Context()).Username+" "+r.URL.Path)
	})
	b := fixture(t, &broker.Server{}, httpapi.Config{Console: console})
	if code, body := call(t, "GET", b.HTTP+"/console/index.html", "alice", nil); code != 200 || string(body) != "alice /console/index.html" {
		t.Errorf("alice: %d %s", code, body)
	}
	if code, _ := call(t, "GET", b.HTTP+"/console/", "", nil); code != 401 {
		t.Errorf("anonymous: %d, want 401", code)
	}
}
