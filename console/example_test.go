package console_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/httpapi"
)

// The console is mounted on the HTTP API's handler, which authenticates
// its users; the broker serves both on its http listeners.
func ExampleNew() {
	srv := &broker.Server{
		Listeners: []broker.Listener{{Type: "tcp", Addr: "127.0.0.1:1883"}, {Type: "http", Addr: "127.0.0.1:8080"}},
	}
	con, err := console.New(srv, console.Config{
		Settings: map[string]any{"auth": map[string]any{"password_file": "/etc/tern/passwd"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	api, err := httpapi.New(srv, httpapi.Config{Admins: []string{"admin"}, Console: con})
	if err != nil {
		log.Fatal(err)
	}
	srv.HTTPHandler = api // then srv.ListenAndServe(ctx)
	defer srv.Close()

	// Without an Authenticator everybody gets in, anonymously.
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/api/whoami", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 200 {"user":"","admin":false}
}
