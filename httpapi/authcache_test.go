package httpapi_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
)

type countingAuth struct{ calls atomic.Int64 }

func (a *countingAuth) Authenticate(_ context.Context, r *broker.AuthRequest) error {
	a.calls.Add(1)
	if r.Username == "u" && string(r.Password) == "p" {
		return nil
	}
	return broker.ErrBadCredentials
}

// TestAuthCache: accepted credentials are asked of the Authenticator
// once per AuthCacheTTL, refused ones every time; a negative TTL asks
// every time.
func TestAuthCache(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ttl  int // -1: off
		want int64
	}{{0, 1}, {-1, 3}} {
		a := &countingAuth{}
		srv := &broker.Server{Authenticator: a, SysInterval: -1}
		cfg := httpapi.Config{}
		if c.ttl < 0 {
			cfg.AuthCacheTTL = -1
		}
		h, err := httpapi.New(srv, cfg)
		if err != nil {
			t.Fatal(err)
		}
		get := func(user, pass string) int {
			r := httptest.NewRequest("GET", "/api/v1/retained?filter=a", nil)
			r.SetBasicAuth(user, pass)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		for range 3 {
			if code := get("u", "p"); code != 200 {
				t.Fatalf("good credentials: %d", code)
			}
		}
		if n := a.calls.Load(); n != c.want {
			t.Errorf("TTL %d: %d Authenticate calls for 3 requests, want %d", c.ttl, n, c.want)
		}
		before := a.calls.Load()
		for range 2 {
			if code := get("u", "wrong"); code != 401 {
				t.Fatalf("bad password: %d", code)
			}
		}
		if n := a.calls.Load() - before; n != 2 {
			t.Errorf("a refused password was cached: %d calls for 2 requests", n)
		}
		srv.Close()
	}
}
