package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Saved connections (--save NAME, --load NAME) are options files like the
// defaults file, one option per line, stored as
// $XDG_CONFIG_HOME/tern/connections/NAME (else ~/.config/tern/connections/NAME),
// with mode 0600 (they may hold a password) in a directory of mode 0700.

// checkSaveName accepts the names of saved connections: letters, digits,
// '.', '-' and '_', not starting with '.'.
func checkSaveName(name string) error {
	if name == "" {
		return errors.New("give a name of letters, digits, '.', '-' and '_'")
	}
	if name[0] == '.' {
		return errors.New("the name must not start with '.'")
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return fmt.Errorf("%q is not allowed in a name; use letters, digits, '.', '-' and '_'", r)
		}
	}
	return nil
}

// savedPath is the file of the connection saved as name.
func savedPath(dir, name string) string {
	return filepath.Join(dir, "connections", name)
}

// savedLines returns the options file lines of the connection options
// among toks: every flag marked as a connection flag, and the -D
// properties of connect, will and disconnect.
func savedLines(toks []argTok) []string {
	var lines []string
	for _, t := range toks {
		switch {
		case t.prop != nil:
			if len(t.prop) > 0 && (t.prop[0] == "connect" || t.prop[0] == "will" || t.prop[0] == "disconnect") {
				lines = append(lines, "-D "+strings.Join(t.prop, " "))
			}
		case t.flag != nil && t.flag.Annotations[annConn] != nil:
			if t.flag.NoOptDefVal != "" {
				lines = append(lines, "--"+t.flag.Name)
			} else {
				lines = append(lines, "--"+t.flag.Name+" "+t.value)
			}
		}
	}
	return lines
}

// saveConnection writes the connection options of toks as name.
func saveConnection(getenv func(string) string, name string, toks []argTok) (string, error) {
	dir, err := configDir(getenv)
	if err != nil {
		return "", fmt.Errorf("--save %s: %v", name, err)
	}
	lines := savedLines(toks)
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r") {
			return "", fmt.Errorf("--save %s: the option %q holds a line break, which an options file cannot", name, strings.SplitN(l, " ", 2)[0])
		}
	}
	p := savedPath(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("--save %s: %v", name, err)
	}
	text := "# tern connection " + name + ", written by --save; tern pub|sub|rr|test --load " + name + " reads it\n" +
		strings.Join(lines, "\n") + "\n"
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+name+".*")
	if err != nil {
		return "", fmt.Errorf("--save %s: %v", name, err)
	}
	_, err = tmp.WriteString(text)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("--save %s: %v", name, err)
	}
	return p, nil
}

// cipherSuites reads --ciphers: colon-separated TLS 1.2 cipher suite
// names as Go (and IANA) spell them.
func cipherSuites(list string) ([]uint16, error) {
	known := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		known[s.Name] = s.ID
	}
	for _, s := range tls.InsecureCipherSuites() {
		known[s.Name] = s.ID
	}
	var ids []uint16
	for _, name := range strings.Split(list, ":") {
		id, ok := known[name]
		if !ok {
			var names []string
			for _, s := range tls.CipherSuites() {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("--ciphers: unknown cipher suite %q (OpenSSL names are not read); use Go's names: %s", name, strings.Join(names, ":"))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// tlsConfig returns the TLS configuration of the options, nil without TLS.
func (o *mqttOptions) tlsConfig() (*tls.Config, error) {
	if !o.tlsOn() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch o.tlsVersion {
	case "tlsv1.3":
		tc.MinVersion = tls.VersionTLS13
	case "tlsv1.1":
		tc.MinVersion = tls.VersionTLS11
	}
	// --insecure is the user's explicit choice, as in Mosquitto.
	tc.InsecureSkipVerify = o.insecure
	if o.alpn != "" {
		tc.NextProtos = []string{o.alpn}
	}
	if o.ciphers != "" {
		ids, err := cipherSuites(o.ciphers)
		if err != nil {
			return nil, err
		}
		tc.CipherSuites = ids
	}
	if o.cafile != "" || o.capath != "" {
		pool := x509.NewCertPool()
		if o.useOSCerts {
			if sys, err := x509.SystemCertPool(); err == nil {
				pool = sys
			}
		}
		if o.cafile != "" {
			pem, err := os.ReadFile(o.cafile)
			if err != nil {
				return nil, fmt.Errorf("--cafile: %w", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--cafile %s: no PEM certificate in it", o.cafile)
			}
		}
		if o.capath != "" {
			entries, err := os.ReadDir(o.capath)
			if err != nil {
				return nil, fmt.Errorf("--capath: %w", err)
			}
			// Every file of the directory (not its subdirectories)
			// that holds PEM certificates, under any name: OpenSSL's
			// hashed names (c_rehash) are not needed, and their
			// symbolic links are followed like any file.
			found := false
			for _, e := range entries {
				if e.IsDir() {
					continue
				}
				if pem, err := os.ReadFile(filepath.Join(o.capath, e.Name())); err == nil && pool.AppendCertsFromPEM(pem) {
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("--capath %s: no file in it holds a PEM certificate; put the CA certificates there (any file names) or use --cafile", o.capath)
			}
		}
		tc.RootCAs = pool
	}
	if o.certFile != "" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %w", o.certFile, o.keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
