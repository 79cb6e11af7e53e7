package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/httpapi"
	"github.com/ternmq/tern/mqtttest"
)

func TestMain(m *testing.M) { mqtttest.VerifyTestMain(m) }

// The users of the fixture: alice (an administrator) may use public/#;
// bob only bob/#.
var users = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}

const aclText = `user alice
topic readwrite public/#

user bob
topic readwrite bob/#
`

// fixture starts a broker with passwords and an ACL, its HTTP API with
// alice as the administrator, and the console of ccfg.
func fixture(t *testing.T, ccfg console.Config) *mqtttest.HTTPBroker {
	t.Helper()
	srv := &broker.Server{SysInterval: -1}
	mqtttest.WithPasswords(t, srv, users, aclText)
	return mqtttest.StartConsoleBroker(t, srv, httpapi.Config{Admins: []string{"alice"}}, ccfg)
}

// get makes a GET as user ("" for no credentials) and returns the
// status, the headers and the body.
func get(t *testing.T, url, user string) (int, http.Header, []byte) {
	t.Helper()
	resp := open(t, url, user)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func open(t *testing.T, url, user string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, users[user])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func getJSON[T any](t *testing.T, url, user string) T {
	t.Helper()
	status, _, body := get(t, url, user)
	if status != http.StatusOK {
		t.Fatalf("GET %s as %q: %d %s", url, user, status, body)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	return v
}

// samples parses a stream of "sample" events onto a channel, closed at
// its end.
func samples(r io.Reader) <-chan console.Sample {
	ch := make(chan console.Sample, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var s console.Sample
			if json.Unmarshal([]byte(data), &s) == nil {
				ch <- s
			}
		}
	}()
	return ch
}
