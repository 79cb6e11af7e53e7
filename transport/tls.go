package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// ClientAuthMode says whether a TLS listener asks clients for a
// certificate. The zero value is ClientAuthNone.
type ClientAuthMode int

const (
	// ClientAuthNone: no client certificate is requested.
	ClientAuthNone ClientAuthMode = iota
	// ClientAuthRequest: a client certificate is requested; a client may
	// connect without one, but a certificate it sends must verify against
	// the client CAs.
	ClientAuthRequest
	// ClientAuthRequire: every client must present a certificate that
	// verifies against the client CAs (require-and-verify).
	ClientAuthRequire
)

var clientAuthNames = [...]string{
	ClientAuthNone:    "none",
	ClientAuthRequest: "request",
	ClientAuthRequire: "require",
}

// String returns "none", "request" or "require".
func (m ClientAuthMode) String() string {
	if m >= 0 && int(m) < len(clientAuthNames) {
		return clientAuthNames[m]
	}
	return fmt.Sprintf("ClientAuthMode(%d)", int(m))
}

// MarshalText returns the mode's name, for configuration files.
func (m ClientAuthMode) MarshalText() ([]byte, error) {
	if m < 0 || int(m) >= len(clientAuthNames) {
		return nil, fmt.Errorf("tls: invalid client_auth %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText accepts "none" (or ""), "request", and "require" (or
// "require-and-verify").
func (m *ClientAuthMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "", "none":
		*m = ClientAuthNone
	case "request":
		*m = ClientAuthRequest
	case "require", "require-and-verify":
		*m = ClientAuthRequire
	default:
		return fmt.Errorf("tls: client_auth %q: want none, request or require", b)
	}
	return nil
}

// TLSConfig is the file-based TLS configuration of a listener, as a
// configuration file spells it. Build turns it into a *tls.Config.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate (chain) and
	// private key. Both are required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the PEM certificates of the CAs that client
	// certificates must chain to. Required unless ClientAuth is none.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth says whether clients must present a certificate.
	ClientAuth ClientAuthMode `yaml:"client_auth"`
	// MinVersion is the lowest TLS version accepted (tls.VersionTLS12,
	// tls.VersionTLS13, ...); 0 means TLS 1.2.
	MinVersion uint16 `yaml:"min_version"`
}

// Validate checks the configuration without building it: required fields
// are set, files are readable, values are in range. Errors name the field
// as a configuration file does, e.g.
//
//	tls: cert_file "x.pem": open x.pem: no such file or directory
func (c *TLSConfig) Validate() error {
	var errs []error
	file := func(name, path string, required bool) {
		if path == "" {
			if required {
				errs = append(errs, fmt.Errorf("tls: %s is required", name))
			}
			return
		}
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls: %s %q: %w", name, path, err))
			return
		}
		f.Close()
	}
	file("cert_file", c.CertFile, true)
	file("key_file", c.KeyFile, true)
	file("client_ca_file", c.ClientCAFile, false)
	switch c.ClientAuth {
	case ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if c.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("tls: client_auth %q needs client_ca_file", c.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("tls: client_auth %d: want none, request or require", int(c.ClientAuth)))
	}
	switch c.MinVersion {
	case 0, tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		errs = append(errs, fmt.Errorf("tls: min_version 0x%04x is not a TLS version", c.MinVersion))
	}
	return errors.Join(errs...)
}

// Build validates c, loads the key pair and the client CAs and returns the
// server configuration for ListenTLS or WSOptions.TLS.
func (c *TLSConfig) Build() (*tls.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: cert_file %q, key_file %q: %w", c.CertFile, c.KeyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   c.MinVersion,
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file %q: %w", c.ClientCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client_ca_file %q: no PEM certificate found", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
	}
	switch c.ClientAuth {
	case ClientAuthRequest:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ListenTLS listens on the TCP address addr and serves TLS with cfg, which
// must hold a certificate (Certificates, GetCertificate or
// GetConfigForClient). The TCP settings are those of ListenTCP. Accepted
// connections are *tls.Conn whose handshake happens on the first Read or
// Write (or on PeerCommonName / ConnectionState), under the connection's
// deadline.
func ListenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	if err := checkServerTLS(cfg); err != nil {
		return nil, err
	}
	l, err := ListenTCP(addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(l, cfg), nil
}

func checkServerTLS(cfg *tls.Config) error {
	if cfg == nil {
		return errors.New("transport: nil TLS config")
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return errors.New("transport: TLS config has no certificate")
	}
	return nil
}

// tlsStater is a connection that carries TLS state without being a
// *tls.Conn: the secure WebSocket connections of this package.
type tlsStater interface {
	ConnectionState() tls.ConnectionState
}

// ConnectionState returns the TLS state of c: of a *tls.Conn (completing
// its handshake first if needed, under c's deadline) or of a connection
// from a secure WebSocket listener or dialer of this package. It returns
// false for other connections and when the handshake fails.
func ConnectionState(c net.Conn) (*tls.ConnectionState, bool) {
	switch c := c.(type) {
	case *tls.Conn:
		if err := c.Handshake(); err != nil {
			return nil, false
		}
		cs := c.ConnectionState()
		return &cs, true
	case tlsStater:
		cs := c.ConnectionState()
		if !cs.HandshakeComplete {
			return nil, false
		}
		return &cs, true
	}
	return nil, false
}

// PeerCommonName returns the subject common name of the verified client
// certificate of c, a TLS or secure WebSocket connection, completing the
// handshake first if needed (under c's deadline). The broker can use it as
// the username of certificate-authenticated clients. It returns false when
// c is not TLS, the handshake fails, the client sent no certificate, the
// certificate was not verified, or its common name is empty.
func PeerCommonName(c net.Conn) (string, bool) {
	cs, ok := ConnectionState(c)
	if !ok || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	cn := cs.VerifiedChains[0][0].Subject.CommonName
	return cn, cn != ""
}
