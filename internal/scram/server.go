package scram

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// CredentialStore finds a user's stored credentials for a [Server].
type CredentialStore interface {
	// LookupCredentials returns the credentials of username for the
	// server's mechanism, or an error wrapping [ErrUnknownUser] when it
	// has none (the user does not exist, or has no credentials for this
	// mechanism). Any other error ends the exchange with that error.
	LookupCredentials(ctx context.Context, username string) (Credentials, error)
}

// CredentialStoreFunc adapts a function to [CredentialStore].
type CredentialStoreFunc func(ctx context.Context, username string) (Credentials, error)

// LookupCredentials calls f.
func (f CredentialStoreFunc) LookupCredentials(ctx context.Context, username string) (Credentials, error) {
	return f(ctx, username)
}

// ErrUnknownUser is what a [CredentialStore] returns for a user it has no
// credentials for. The [Server] does not return it: it carries on with
// made-up credentials and fails with [ErrInvalidProof], as for a wrong
// password.
var ErrUnknownUser = errors.New("scram: unknown user")

// Server is the server's side of one SCRAM exchange. Pass each client
// message to Next: the client-first-message gives the
// server-first-message (done false), the client-final-message gives the
// server-final-message (done true). A Server is used once, from one
// goroutine; an error ends it.
type Server struct {
	// Nonce, if set before the first Next, is the server's part of the
	// nonce instead of a random one. It is for tests that replay a known
	// exchange.
	Nonce string
	// MockIterations is the iteration count told to a client whose user
	// is unknown (0 means [DefaultIterations]). Set it to the count most
	// of the store's users have, so that unknown users look like them.
	MockIterations int

	mech  *Mechanism
	store CredentialStore

	step        int // 0: client-first next; 1: client-final next; 2: done or failed
	cf          clientFirst
	nonce       string // client nonce + server nonce
	cred        Credentials
	known       bool
	serverFirst string
}

// NewServer returns a server conversation that looks users up in store.
func NewServer(m *Mechanism, store CredentialStore) *Server {
	return &Server{mech: m, store: store}
}

// Mechanism returns the server's mechanism.
func (s *Server) Mechanism() *Mechanism { return s.mech }

// Username returns the user name the client gave in its
// client-first-message (unescaped), or "" before it. It is proved only
// when Next has returned done true without an error.
func (s *Server) Username() string { return s.cf.username }

// Next takes the client's next message and returns the server's reply.
// done is true with the server-final-message, when the client has proved
// it knows the password. Errors are [*Error]s (ErrInvalidProof for a
// wrong password or an unknown user), or the store's error.
func (s *Server) Next(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	switch s.step {
	case 0:
		out, err = s.first(ctx, in)
	case 1:
		out, err = s.final(in)
		done = err == nil
	default:
		err = errorf(ErrOutOfOrder, "the exchange is over")
	}
	if err != nil || done {
		s.step = 2
	} else {
		s.step++
	}
	return out, done, err
}

func (s *Server) first(ctx context.Context, in []byte) ([]byte, error) {
	cf, err := parseClientFirst(in)
	if err != nil {
		return nil, err
	}
	if cf.authzid != "" && cf.authzid != cf.username {
		// Acting for another identity is not supported.
		return nil, errorf(ErrInvalidEncoding, "authorization identity %s differs from the user name: acting as another user is not supported", quote(cf.authzid))
	}
	s.cf = cf
	cred, err := s.store.LookupCredentials(ctx, cf.username)
	switch {
	case err == nil:
		if err := s.mech.Check(cred); err != nil {
			return nil, fmt.Errorf("scram: stored %s credentials of user %q are invalid: %v", s.mech.name, cf.username, err)
		}
		s.cred, s.known = cred, true
	case errors.Is(err, ErrUnknownUser):
		s.cred = s.mock(cf.username)
	default:
		return nil, err
	}
	snonce := s.Nonce
	if snonce == "" {
		if snonce, err = newNonce(); err != nil {
			return nil, err
		}
	} else if err := checkNonce(snonce, "Server.Nonce"); err != nil {
		return nil, err
	}
	s.nonce = cf.nonce + snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + b64.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

func (s *Server) final(in []byte) ([]byte, error) {
	cf, err := parseClientFinal(in)
	if err != nil {
		return nil, err
	}
	// "c=" is the GS2 header of the client-first-message (no channel
	// binding data follows it, since none is supported).
	if string(cf.binding) != s.cf.gs2Header {
		return nil, errorf(ErrChannelBindingsDontMatch, "the channel binding \"c=\" is not the GS2 header of the client-first-message")
	}
	if cf.nonce != s.nonce {
		return nil, errorf(ErrNonceMismatch, "the client-final-message's nonce is not the nonce of this exchange")
	}
	if len(cf.proof) != s.mech.size {
		return nil, errorf(ErrInvalidProof, "the proof is %d bytes, %s proofs are %d", len(cf.proof), s.mech.name, s.mech.size)
	}
	authMessage := s.cf.bare + "," + s.serverFirst + "," + cf.withoutProof
	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the
	// client knows the password if H(ClientKey) is StoredKey.
	clientKey := s.mech.hmac(s.cred.StoredKey, authMessage)
	for i := range clientKey {
		clientKey[i] ^= cf.proof[i]
	}
	ok := subtle.ConstantTimeCompare(s.mech.hash(clientKey), s.cred.StoredKey) == 1
	// Computed either way, so that failing takes as long as succeeding.
	sig := s.mech.hmac(s.cred.ServerKey, authMessage)
	if !ok || !s.known {
		return nil, errorf(ErrInvalidProof, "wrong password for user %q (or no such user)", s.cf.username)
	}
	return []byte("v=" + b64.EncodeToString(sig)), nil
}

// mockKey makes the made-up salts of unknown users: random per process.
var mockKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
})

// mock returns made-up credentials for an unknown user: a salt that is
// the same each time the user name is tried (a fresh one each time would
// give the user away) and random keys no password matches.
func (s *Server) mock(username string) Credentials {
	h := hmac.New(sha256.New, mockKey())
	h.Write([]byte(s.mech.name))
	h.Write([]byte{0})
	h.Write([]byte(username))
	iter := s.MockIterations
	if iter < MinIterations {
		iter = DefaultIterations
	}
	c := Credentials{
		Salt:       h.Sum(nil)[:SaltLen],
		Iterations: iter,
		StoredKey:  make([]byte, s.mech.size),
		ServerKey:  make([]byte, s.mech.size),
	}
	_, _ = rand.Read(c.StoredKey)
	_, _ = rand.Read(c.ServerKey)
	return c
}
