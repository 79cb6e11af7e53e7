package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/scram"
	"github.com/ternmq/tern/packet"
)

// The SCRAM mechanisms a [PasswordFile] serves, under their MQTT 5
// Authentication Method names.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
)

const (
	// DefaultSCRAMIterations is the iteration count of the SCRAM
	// credentials tern passwd writes: 4096, the minimum of RFC 7677 and
	// what PostgreSQL and Kafka use. A client computes that many
	// iterations of HMAC at every connect, so it is modest; the bcrypt or
	// argon2id hash on the same line is slower to brute force, which
	// makes the SCRAM credentials the weaker part of a stolen file.
	DefaultSCRAMIterations = scram.DefaultIterations

	// MinSCRAMIterations and MaxSCRAMIterations bound the iteration
	// counts accepted in a password file: RFC 7677's minimum, and the
	// most Tern's own client agrees to compute.
	MinSCRAMIterations = scram.MinIterations
	MaxSCRAMIterations = scram.DefaultMaxIterations

	minSCRAMSalt = 8
	maxSCRAMSalt = 1024
)

// scramSet holds one user's SCRAM credentials by mechanism name.
type scramSet map[string]scram.Credentials

// scramPrefix returns the field prefix of a mechanism: "$scram-sha-256$".
func scramPrefix(m *scram.Mechanism) string {
	return "$" + strings.ToLower(m.Name()) + "$"
}

// SCRAMCredential derives the SCRAM credentials of password for
// mechanism ([SCRAMSHA256] or [SCRAMSHA512]) with a fresh random salt and
// returns them as a password file field:
//
//	$scram-sha-256$i=<iterations>$<salt>$<StoredKey>$<ServerKey>
//
// salt and keys in unpadded standard base64. iterations 0 means
// [DefaultSCRAMIterations]. Append it to a user's line after the
// password hash, separated by ':'.
func SCRAMCredential(mechanism, password string, iterations int) (string, error) {
	m := scram.ByName(mechanism)
	if m == nil {
		return "", fmt.Errorf("unknown SCRAM mechanism %q (want %s or %s)", mechanism, SCRAMSHA256, SCRAMSHA512)
	}
	if iterations == 0 {
		iterations = DefaultSCRAMIterations
	}
	if iterations < MinSCRAMIterations || iterations > MaxSCRAMIterations {
		return "", fmt.Errorf("SCRAM iteration count %d out of range %d to %d", iterations, MinSCRAMIterations, MaxSCRAMIterations)
	}
	c, err := m.NewCredentials(password, iterations)
	if err != nil {
		return "", err
	}
	return formatSCRAM(m, c), nil
}

func formatSCRAM(m *scram.Mechanism, c scram.Credentials) string {
	e := base64.RawStdEncoding
	return scramPrefix(m) + "i=" + strconv.Itoa(c.Iterations) + "$" +
		e.EncodeToString(c.Salt) + "$" + e.EncodeToString(c.StoredKey) + "$" + e.EncodeToString(c.ServerKey)
}

// parseSCRAMField parses one SCRAM field of a password file line. The
// error says what is wrong and how to fix it, without the file and line.
func parseSCRAMField(f string) (*scram.Mechanism, scram.Credentials, error) {
	var m *scram.Mechanism
	for _, mm := range scram.Mechanisms() {
		if strings.HasPrefix(f, scramPrefix(mm)) {
			m = mm
		}
	}
	if m == nil {
		if strings.HasPrefix(f, "$") {
			return nil, scram.Credentials{}, fmt.Errorf("unknown field %q after the password hash (want $scram-sha-256$... or $scram-sha-512$...; remove the field, or set the password again with tern passwd)", abbrev(f))
		}
		// Do not quote it: it may be a password.
		return nil, scram.Credentials{}, errors.New(`unknown field after the password hash: not a "$scram-sha-256$" or "$scram-sha-512$" credential (remove it, or set the password again with tern passwd)`)
	}
	bad := func(why string) error {
		return fmt.Errorf("malformed %s credentials %q: %s (want %si=<iterations>$<salt>$<StoredKey>$<ServerKey> in base64; set the password again with tern passwd to rewrite them)",
			m.Name(), abbrev(f), why, scramPrefix(m))
	}
	p := strings.Split(f, "$")
	// "", "scram-sha-256", "i=4096", salt, StoredKey, ServerKey
	if len(p) != 6 {
		return nil, scram.Credentials{}, bad("wrong number of '$'-separated fields")
	}
	v, ok := strings.CutPrefix(p[2], "i=")
	if !ok {
		return nil, scram.Credentials{}, bad(`the iteration count must be written "i=<number>"`)
	}
	n, err := strconv.Atoi(v)
	if err != nil || v[0] == '+' || v[0] == '-' {
		return nil, scram.Credentials{}, bad(fmt.Sprintf("iteration count %q is not a number", v))
	}
	if n < MinSCRAMIterations || n > MaxSCRAMIterations {
		return nil, scram.Credentials{}, bad(fmt.Sprintf("iteration count %d is outside %d to %d", n, MinSCRAMIterations, MaxSCRAMIterations))
	}
	c := scram.Credentials{Iterations: n}
	for i, dst := range []*[]byte{&c.Salt, &c.StoredKey, &c.ServerKey} {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(p[3+i], "="))
		if err != nil {
			return nil, scram.Credentials{}, bad([]string{"salt", "StoredKey", "ServerKey"}[i] + " is not base64")
		}
		*dst = b
	}
	if len(c.Salt) < minSCRAMSalt || len(c.Salt) > maxSCRAMSalt {
		return nil, scram.Credentials{}, bad(fmt.Sprintf("salt is %d bytes, want %d to %d", len(c.Salt), minSCRAMSalt, maxSCRAMSalt))
	}
	if len(c.StoredKey) != m.KeyLen() || len(c.ServerKey) != m.KeyLen() {
		return nil, scram.Credentials{}, bad(fmt.Sprintf("StoredKey and ServerKey must be %d bytes each, not %d and %d", m.KeyLen(), len(c.StoredKey), len(c.ServerKey)))
	}
	return m, c, nil
}

// SCRAM is a [broker.AuthMethod] for MQTT 5 enhanced authentication with
// SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, RFC 7677), backed by the
// SCRAM credentials of a [PasswordFile]. Make one with [NewSCRAM] or
// [PasswordFile.SCRAMMethods].
//
// The client puts the mechanism's name in the CONNECT's Authentication
// Method and its client-first-message ("n,,n=alice,r=<nonce>") in the
// Authentication Data; the broker answers with the server-first-message
// in an AUTH 0x18, the client sends its proof in an AUTH 0x18, and the
// CONNACK carries the server-final-message, which proves to the client
// that the broker knows its credentials. The user name the exchange
// proves becomes the connection's user name, for the ACLs.
//
// A wrong password is refused with 0x86 Bad user name or password. So is
// a user who is not in the file or has no credentials for the mechanism,
// after the same exchange with a made-up salt, so that neither case can
// be told from a wrong password. A malformed SCRAM message, channel
// binding, or a CONNECT user name that is not the SCRAM user name is
// refused with 0x87 Not authorized and a reason saying why. When the
// client re-authenticates, it must prove the same user name.
//
// Each exchange uses the users as they were at its start; a Reload
// applies to the exchanges that start after it.
type SCRAM struct {
	pf   *PasswordFile
	mech *scram.Mechanism
}

// NewSCRAM returns the [SCRAM] method of mechanism ([SCRAMSHA256] or
// [SCRAMSHA512]) for pf.
func NewSCRAM(pf *PasswordFile, mechanism string) (*SCRAM, error) {
	m := scram.ByName(mechanism)
	if m == nil {
		return nil, fmt.Errorf("unknown SCRAM mechanism %q (want %s or %s)", mechanism, SCRAMSHA256, SCRAMSHA512)
	}
	if pf == nil {
		return nil, errors.New("auth: NewSCRAM needs a PasswordFile")
	}
	return &SCRAM{pf: pf, mech: m}, nil
}

// SCRAMMethods returns the SCRAM-SHA-256 and SCRAM-SHA-512 methods of the
// file, by name, for [broker.Server].AuthMethods:
//
//	srv.Authenticator = pf
//	srv.AuthMethods = pf.SCRAMMethods()
func (p *PasswordFile) SCRAMMethods() map[string]broker.AuthMethod {
	ms := make(map[string]broker.AuthMethod, 2)
	for _, name := range []string{SCRAMSHA256, SCRAMSHA512} {
		s, _ := NewSCRAM(p, name)
		ms[name] = s
	}
	return ms
}

// Name returns the mechanism's name, e.g. "SCRAM-SHA-256".
func (s *SCRAM) Name() string { return s.mech.Name() }

// Start implements [broker.AuthMethod].
func (s *SCRAM) Start(_ context.Context, req *broker.AuthRequest) (broker.AuthExchange, error) {
	t := s.pf.table.Load()
	conv := scram.NewServer(s.mech, tableStore{t: t, mech: s.mech.Name()})
	if t != nil {
		conv.MockIterations = t.scramIter[s.mech.Name()]
	}
	return &scramExchange{req: req, conv: conv}, nil
}

// tableStore finds SCRAM credentials in one snapshot of the file.
type tableStore struct {
	t    *userTable
	mech string
}

func (ts tableStore) LookupCredentials(_ context.Context, user string) (scram.Credentials, error) {
	if ts.t != nil {
		if c, ok := ts.t.scram[user][ts.mech]; ok {
			return c, nil
		}
	}
	// Unknown, or known without credentials for this mechanism: the
	// same answer, and the scram server carries on with made-up
	// credentials either way.
	return scram.Credentials{}, scram.ErrUnknownUser
}

// scramExchange is one SCRAM conversation with one client.
type scramExchange struct {
	req     *broker.AuthRequest
	conv    *scram.Server
	started bool
}

// Next implements [broker.AuthExchange].
func (x *scramExchange) Next(ctx context.Context, in []byte) ([]byte, bool, error) {
	name := x.conv.Mechanism().Name()
	if !x.started && len(in) == 0 {
		// [v5 MQTT-4.12.0-4] the server may refuse at any step.
		return nil, false, &broker.Refusal{Code: packet.NotAuthorized,
			Reason: name + " needs the client-first-message (\"n,,n=<user>,r=<nonce>\") as the Authentication Data"}
	}
	first := !x.started
	x.started = true
	out, done, err := x.conv.Next(ctx, in)
	if err != nil {
		return nil, false, scramRefusal(name, err)
	}
	user := x.conv.Username()
	if first && x.req.Username != "" && x.req.Username != user {
		// The CONNECT's user name, or when re-authenticating the
		// connection's, must be the one SCRAM proves.
		return nil, false, &broker.Refusal{Code: packet.NotAuthorized,
			Reason: fmt.Sprintf("the %s user name %q is not the connection's user name %q", name, user, x.req.Username)}
	}
	if done {
		x.req.Username = user
	}
	return out, done, nil
}

// scramRefusal maps a SCRAM failure to the CONNACK (or DISCONNECT) reason.
// [v5 MQTT-4.12.0-4]
func scramRefusal(name string, err error) error {
	var se *scram.Error
	switch {
	case errors.Is(err, scram.ErrInvalidProof):
		return &broker.Refusal{Code: packet.BadUserNameOrPassword, Reason: name + ": bad user name or password"}
	case errors.As(err, &se):
		return &broker.Refusal{Code: packet.NotAuthorized, Reason: name + ": " + strings.TrimPrefix(se.Error(), "scram: ")}
	}
	return err // a store problem: 0x87, logged, not sent
}
