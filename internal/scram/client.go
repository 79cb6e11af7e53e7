package scram

import (
	"crypto/hmac"
	"errors"
	"strings"
	"unicode/utf8"
)

// Client is the client's side of one SCRAM exchange: call First, send its
// message, pass the server's reply to Final, send that, and pass the
// server's last message to Verify. A Client is used once, from one
// goroutine.
type Client struct {
	// Nonce, if set before First, is the client nonce instead of a random
	// one. It is for tests that replay a known exchange; a fixed nonce
	// makes the exchange replayable. After First it holds the nonce sent.
	Nonce string
	// MaxIterations is the largest iteration count the client accepts
	// from the server (0 means [DefaultMaxIterations]).
	MaxIterations int

	mech     *Mechanism
	username string
	password string

	step        int // 0: First next; 1: Final next; 2: Verify next; 3: done or failed
	bare        string
	serverSig   []byte
	authMessage string
}

// NewClient returns a client conversation for username and password.
func NewClient(m *Mechanism, username, password string) *Client {
	return &Client{mech: m, username: username, password: password}
}

// First returns the client-first-message: "n,,n=<user>,r=<nonce>".
func (c *Client) First() ([]byte, error) {
	if c.step != 0 {
		return nil, c.fail(errorf(ErrOutOfOrder, "First called twice"))
	}
	switch {
	case c.username == "" || !utf8.ValidString(c.username) || strings.IndexByte(c.username, 0) >= 0:
		return nil, c.fail(errorf(ErrInvalidUsernameEncoding, "the user name must be non-empty UTF-8 without NUL"))
	case c.password == "":
		return nil, c.fail(errors.New("scram: empty password"))
	}
	nonce := c.Nonce
	if nonce == "" {
		var err error
		if nonce, err = newNonce(); err != nil {
			return nil, c.fail(err)
		}
	} else if err := checkNonce(nonce, "Client.Nonce"); err != nil {
		return nil, c.fail(err)
	}
	c.Nonce = nonce
	c.bare = "n=" + encodeSaslname(c.username) + ",r=" + nonce
	c.step = 1
	return []byte("n,," + c.bare), nil
}

// Final takes the server-first-message and returns the
// client-final-message with the proof that the client knows the
// password. It checks that the server's nonce extends the client's and
// that the iteration count is within [MinIterations] and MaxIterations.
func (c *Client) Final(serverFirst []byte) ([]byte, error) {
	if c.step != 1 {
		return nil, c.fail(errorf(ErrOutOfOrder, "Final called out of turn"))
	}
	sf, err := parseServerFirst(serverFirst)
	if err != nil {
		return nil, c.fail(err)
	}
	// The combined nonce starts with the client's and adds the server's.
	if len(sf.nonce) <= len(c.Nonce) || !strings.HasPrefix(sf.nonce, c.Nonce) {
		return nil, c.fail(errorf(ErrNonceMismatch, "the server's nonce does not extend the client's"))
	}
	maxIter := c.MaxIterations
	if maxIter == 0 {
		maxIter = DefaultMaxIterations
	}
	if sf.iterations < MinIterations || sf.iterations > maxIter {
		return nil, c.fail(errorf(ErrIterationCount, "the server asks for %d iterations, outside the accepted %d to %d", sf.iterations, MinIterations, maxIter))
	}
	salted, err := c.mech.saltedPassword(c.password, sf.salt, sf.iterations)
	if err != nil {
		return nil, c.fail(err)
	}
	clientKey := c.mech.hmac(salted, "Client Key")
	storedKey := c.mech.hash(clientKey)
	withoutProof := "c=" + b64.EncodeToString([]byte("n,,")) + ",r=" + sf.nonce
	c.authMessage = c.bare + "," + string(serverFirst) + "," + withoutProof
	proof := c.mech.hmac(storedKey, c.authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSig = c.mech.hmac(c.mech.hmac(salted, "Server Key"), c.authMessage)
	c.step = 2
	return []byte(withoutProof + ",p=" + b64.EncodeToString(proof)), nil
}

// Verify takes the server-final-message and returns nil if it proves
// that the server knows the user's credentials. A server error ("e=...")
// is an [*Error] whose Value is the server's.
func (c *Client) Verify(serverFinal []byte) error {
	if c.step != 2 {
		return c.fail(errorf(ErrOutOfOrder, "Verify called out of turn"))
	}
	sig, err := parseServerFinal(serverFinal)
	if err != nil {
		return c.fail(err)
	}
	if !hmac.Equal(sig, c.serverSig) {
		return c.fail(errorf(ErrServerSignature, "the server's signature is wrong: it does not know this user's credentials"))
	}
	c.step = 3
	return nil
}

// AuthMessage returns the AuthMessage the proofs sign (after Final), for
// tests and debugging.
func (c *Client) AuthMessage() string { return c.authMessage }

func (c *Client) fail(err error) error {
	c.step = 3
	return err
}
