package broker

import (
	"context"
	"testing"
)

// plainAuthz allows everything but does not say it is NonBlocking, so
// the broker calls it on a goroutine with a deadline.
type plainAuthz struct{}

func (plainAuthz) Authorize(context.Context, *ClientInfo, Action, string) bool { return true }

// BenchmarkAuthorize measures what one Authorizer call costs the broker:
// called directly (NonBlocking, e.g. AllowAll or the ACL file) or on its
// own goroutine under HookTimeout (any other hook).
//
//	go test -run '^$' -bench Authorize -benchmem ./broker/
func BenchmarkAuthorize(b *testing.B) {
	for _, tc := range []struct {
		name  string
		authz Authorizer
	}{{"non-blocking", AllowAll{}}, {"with-deadline", plainAuthz{}}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := &Server{SysInterval: -1, Authorizer: tc.authz, Logger: testLogger(b)}
			if err := srv.init(); err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			info := &ClientInfo{ClientID: "c"}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if !srv.authorize(info, ActionPublish, "a/b") {
					b.Fatal("refused")
				}
			}
		})
	}
}
