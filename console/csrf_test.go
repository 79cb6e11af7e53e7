package console_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/mqtttest"
)

// TestConsoleCrossSiteRequest: a page of another site, opened in the
// browser of a user logged in to the console, tries to publish as that
// user with the browser's cached credentials: with a no-cors fetch of a
// body without a Content-Type, and with a form of enctype text/plain.
// Neither gets through: Chromium does not send the cached basic
// credentials with the cross-site fetch (the API answers 401), and the
// API refuses the form's text/plain body (415).
func TestConsoleCrossSiteRequest(t *testing.T) {
	b := fixture(t, console.Config{})
	got := make(chan *client.Message, 4)
	listener := mqtttest.Connect(t, client.Config{Servers: []string{b.Addrs[0].String()}, ClientID: "listener-1", Username: "alice", Password: []byte("alice-pw")})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.DefaultTimeout)
	defer cancel()
	if _, err := listener.Subscribe(ctx, "public/#", 0, func(m *client.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	br := startBrowser(t, "alice", "alice-pw")
	br.do(chromedp.Navigate(b.HTTP + "/console/"))
	br.waitFor("the login", `document.querySelector("#whoami").textContent === "alice (administrator)"`)

	// The evil site: localhost is another site than 127.0.0.1.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(b.HTTP, "http://"))
	target := "http://127.0.0.1:" + port + "/api/v1/publish"
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><script>
fetch(%q, {method: "POST", mode: "no-cors", credentials: "include", body: new Blob(['{"topic":"public/evil-blob","payload":"x"}'])}).finally(() => { document.title = "sent1"; });
</script>
<form id="f" method="POST" action=%q enctype="text/plain"><input name='{"topic":"public/evil-form","payload":"' value='"}'></form>`, target, target)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go evil.Serve(ln)
	defer evil.Close()
	_, eport, _ := net.SplitHostPort(ln.Addr().String())
	br.do(chromedp.Navigate("http://localhost:" + eport + "/"))
	br.waitFor("the fetch", `document.title === "sent1"`)
	// A form posted across sites navigates to the API's answer.
	br.do(chromedp.Submit(chromedp.ID("f")))
	br.waitFor("the form's answer", `location.href.endsWith("/api/v1/publish") && document.body.innerText.includes("error")`)
	t.Logf("the API's answer to the cross-site form: %s", eval[string](br, `document.body.innerText`))
	select {
	case m := <-got:
		t.Errorf("a page of another site published %s as the console's user", m.Topic)
	case <-time.After(time.Second):
	}
}
