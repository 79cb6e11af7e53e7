package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
)

const (
	// MinIterations is the smallest iteration count either side accepts
	// (RFC 7677 section 4: at least 4096).
	MinIterations = 4096

	// DefaultIterations is the iteration count of new credentials.
	DefaultIterations = 4096

	// DefaultMaxIterations is the largest iteration count a [Client]
	// accepts when its MaxIterations is 0.
	DefaultMaxIterations = 1 << 20

	// SaltLen is the length of the salt of credentials made by
	// [Mechanism.NewCredentials].
	SaltLen = 16

	nonceLen      = 18   // random bytes in a nonce: 24 characters of base64
	maxMessageLen = 8192 // bytes of one SCRAM message
)

// Mechanism is one SCRAM hash function: [SHA256] or [SHA512].
type Mechanism struct {
	name    string
	newHash func() hash.Hash
	size    int
}

var (
	// SHA256 is SCRAM-SHA-256 (RFC 7677).
	SHA256 = &Mechanism{name: "SCRAM-SHA-256", newHash: sha256.New, size: sha256.Size}
	// SHA512 is SCRAM-SHA-512.
	SHA512 = &Mechanism{name: "SCRAM-SHA-512", newHash: sha512.New, size: sha512.Size}
)

// Mechanisms returns the supported mechanisms, strongest last.
func Mechanisms() []*Mechanism { return []*Mechanism{SHA256, SHA512} }

// ByName returns the mechanism of the SASL name ("SCRAM-SHA-256",
// "SCRAM-SHA-512"), or nil.
func ByName(name string) *Mechanism {
	for _, m := range Mechanisms() {
		if m.name == name {
			return m
		}
	}
	return nil
}

// Name returns the SASL mechanism name, e.g. "SCRAM-SHA-256", which is
// also the MQTT 5 Authentication Method.
func (m *Mechanism) Name() string { return m.name }

func (m *Mechanism) String() string { return m.name }

// KeyLen returns the length of the mechanism's keys, proofs and
// signatures: the hash function's output size.
func (m *Mechanism) KeyLen() int { return m.size }

// Credentials are what a server stores for one user and one mechanism
// instead of the password.
type Credentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// Credentials derives the stored credentials for password with the given
// salt and iteration count (at least [MinIterations]).
func (m *Mechanism) Credentials(password string, salt []byte, iterations int) (Credentials, error) {
	if password == "" {
		return Credentials{}, errors.New("scram: empty password")
	}
	if len(salt) == 0 {
		return Credentials{}, errors.New("scram: empty salt")
	}
	if iterations < MinIterations {
		return Credentials{}, fmt.Errorf("scram: iteration count %d is below the minimum of %d", iterations, MinIterations)
	}
	salted, err := m.saltedPassword(password, salt, iterations)
	if err != nil {
		return Credentials{}, err
	}
	clientKey := m.hmac(salted, "Client Key")
	return Credentials{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  m.hash(clientKey),
		ServerKey:  m.hmac(salted, "Server Key"),
	}, nil
}

// NewCredentials derives stored credentials for password with a fresh
// random salt of [SaltLen] bytes; iterations 0 means [DefaultIterations].
func (m *Mechanism) NewCredentials(password string, iterations int) (Credentials, error) {
	if iterations == 0 {
		iterations = DefaultIterations
	}
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return Credentials{}, err
	}
	return m.Credentials(password, salt, iterations)
}

// Check reports whether c can be used with m: a salt, an iteration count
// of at least [MinIterations], and keys of [Mechanism.KeyLen] bytes.
func (m *Mechanism) Check(c Credentials) error {
	switch {
	case len(c.Salt) == 0:
		return errors.New("empty salt")
	case c.Iterations < MinIterations:
		return fmt.Errorf("iteration count %d is below the minimum of %d", c.Iterations, MinIterations)
	case len(c.StoredKey) != m.size:
		return fmt.Errorf("StoredKey is %d bytes, %s needs %d", len(c.StoredKey), m.name, m.size)
	case len(c.ServerKey) != m.size:
		return fmt.Errorf("ServerKey is %d bytes, %s needs %d", len(c.ServerKey), m.name, m.size)
	}
	return nil
}

// saltedPassword is Hi(password, salt, i) of RFC 5802: PBKDF2 with HMAC-H
// and one block of output.
func (m *Mechanism) saltedPassword(password string, salt []byte, iterations int) ([]byte, error) {
	k, err := pbkdf2.Key(m.newHash, password, salt, iterations, m.size)
	if err != nil {
		return nil, fmt.Errorf("scram: %w", err)
	}
	return k, nil
}

func (m *Mechanism) hmac(key []byte, msg string) []byte {
	h := hmac.New(m.newHash, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func (m *Mechanism) hash(b []byte) []byte {
	h := m.newHash()
	h.Write(b)
	return h.Sum(nil)
}

// newNonce returns a fresh random nonce of printable characters.
func newNonce() (string, error) {
	var b [nonceLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
