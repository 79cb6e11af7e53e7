package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium.
const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds one browser step, so that a hung page fails the
// test instead of hanging it.
const stepTimeout = 20 * time.Second

// browser is a headless Chromium with one tab, logged in to the console
// as one user: it answers the console's basic-authentication challenges
// with the user's name and password, as a person types them into the
// browser's dialog.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	exceptions []string // uncaught exceptions of the page
	challenges int      // authentication challenges answered
}

// startBrowser starts Chromium with a fresh profile, logging in as user
// with password; it is closed at the end of the test.
func startBrowser(t *testing.T, user, password string) *browser {
	t.Helper()
	path, err := exec.LookPath(chromiumPath)
	if err != nil {
		t.Skipf("headless Chromium (%s) is missing: install Debian's package chromium", chromiumPath)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		wg.Wait()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("starting Chromium: %v", err)
	}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	challenges := chromedp.Events(ctx, fetch.AuthRequired)
	console := chromedp.Console(ctx)
	wg.Go(func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	})
	wg.Go(func() {
		for ev, err := range challenges {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.challenges++
			b.mu.Unlock()
			chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: password}})
		}
	})
	wg.Go(func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.exceptions = append(b.exceptions, m.String())
				b.mu.Unlock()
			}
		}
	})
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)}); err != nil {
		t.Fatalf("Fetch.enable: %v", err)
	}
	return b
}

// do runs steps, each within stepTimeout.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
		_, err := chromedp.Run(ctx, s)
		cancel()
		if err != nil {
			b.t.Fatalf("browser: %v (page exceptions: %q)", err, b.pageExceptions())
		}
	}
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(stepTimeout-time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("browser: waiting for %s (%s): %v (page exceptions: %q)", what, expr, err, b.pageExceptions())
	}
}

// clear empties the input field with this id.
func (b *browser) clear(id string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(document.getElementById(%s).value = "", true)`, jsString(id)))
}

// authChallenges is the number of authentication challenges answered.
func (b *browser) authChallenges() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.challenges
}

func (b *browser) pageExceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.exceptions...)
}

// screenshot saves a PNG of the whole page as name in the test's
// artefacts directory (go test -artifacts keeps it) and, when
// TERN_CONSOLE_SCREENSHOTS=1 and keep, under bench/notes/console/ too.
func (b *browser) screenshot(name string, keep bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{b.t.ArtifactDir()}
	if keep && os.Getenv("TERN_CONSOLE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join("..", "bench", "notes", "console"))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot: %s", p)
	}
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
