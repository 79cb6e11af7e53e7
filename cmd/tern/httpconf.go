package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/ternmq/tern/console"
	"github.com/ternmq/tern/httpapi"
)

// minTokenLen is the shortest bearer token a tokens file may hold.
const minTokenLen = 16

// setHTTP gives the server its HTTP API when a listener of type http or
// https is configured; the http section without one is harmless.
func (st *brokerSetup) setHTTP() error {
	c, srv := st.cfg, st.srv
	any := false
	for _, l := range srv.Listeners {
		if l.Type == "http" || l.Type == "https" {
			any = true
		}
	}
	if !any {
		return nil
	}
	cfg := httpapi.Config{ProtectMetrics: c.HTTP.ProtectMetrics, MaxBody: int64(c.HTTP.MaxBody), Logger: srv.Logger}
	for _, a := range strings.Split(c.HTTP.Admins, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Admins = append(cfg.Admins, a)
		}
	}
	if c.HTTP.TokensFile != "" {
		toks, err := loadTokens(c.HTTP.TokensFile)
		if err != nil {
			return fmt.Errorf("%s: %w", c.where("http.tokens_file"), err)
		}
		cfg.Tokens = toks
	}
	if c.HTTP.Console {
		con, err := console.New(srv, console.Config{Settings: c.effective(), Logger: srv.Logger}) // consoleconf.go
		if err != nil {
			return err
		}
		cfg.Console = con
	}
	h, err := httpapi.New(srv, cfg)
	if err != nil {
		return err
	}
	srv.HTTPHandler = h
	return nil
}

// loadTokens reads a tokens file: "user:token" per line, '#' comments
// and blank lines allowed. Errors name the line.
func loadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	toks := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, tok, ok := strings.Cut(line, ":")
		user, tok = strings.TrimSpace(user), strings.TrimSpace(tok)
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("%s:%d: want user:token", path, n)
		case len(tok) < minTokenLen:
			return nil, fmt.Errorf("%s:%d: the token of %q is shorter than %d characters; make a longer one (e.g. openssl rand -hex 24)", path, n, user, minTokenLen)
		case toks[tok] != "":
			return nil, fmt.Errorf("%s:%d: this token is also %q's; give each user a token of their own", path, n, toks[tok])
		}
		toks[tok] = user
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return toks, nil
}
