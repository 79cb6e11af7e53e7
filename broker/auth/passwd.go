package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
)

// PasswordFile is a [broker.Authenticator] backed by a password file: one
// "username:hash" per line, with '#' comment lines and blank lines
// allowed. Hashes are bcrypt ("$2a$", "$2b$" or "$2y$", as "htpasswd -B"
// writes them), argon2id in the PHC string format
// ("$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>"), or Mosquitto's own:
// "$7$<iterations>$<salt>$<hash>" (PBKDF2-HMAC-SHA512, what
// mosquitto_passwd 2.0 writes) and "$6$<salt>$<hash>" (one salted
// SHA-512, Mosquitto 1.x and mosquitto_passwd -H sha512), read and
// verified as Mosquitto does: padded standard base64, a 12-byte salt, a
// 64-byte hash, a constant-time comparison. So a Mosquitto password file
// works as it is. (One difference: Mosquitto hashes a client's password
// only up to its first NUL byte, Tern hashes all of it.) "$6$" is fast
// to guess: set those passwords again. [HashPassword] and
// [PasswdCommand] make bcrypt, argon2id and "$7$" hashes; Mosquitto 2.0
// reads only "$7$" and "$6$" lines, and drops the others with an error
// in its log.
//
// A line may also carry the user's SCRAM credentials, for MQTT 5
// enhanced authentication with SCRAM-SHA-256 and SCRAM-SHA-512 (see
// [SCRAM] and [PasswordFile.SCRAMMethods]), as further ':'-separated
// fields after the hash, at most one per mechanism, in any order:
//
//	alice:$2a$12$...:$scram-sha-256$i=4096$<salt>$<StoredKey>$<ServerKey>:$scram-sha-512$i=4096$<salt>$<StoredKey>$<ServerKey>
//
// with the salt and keys in standard base64 (written unpadded; padding is
// accepted), the iteration count between 4096 and [MaxSCRAMIterations],
// a salt of 8 to 1024 bytes and keys of the hash's size (32 bytes for
// SHA-256, 64 for SHA-512). SCRAM cannot use a password hash of any kind,
// so tern passwd writes these fields whenever it sets a password (see
// [HashOptions].NoSCRAM). Files without them load as before; their users
// can log in with a password but not with SCRAM. Versions of Tern before
// SCRAM do not read lines with SCRAM fields; Mosquitto 2.0 reads a line
// only up to the ':' after the hash, so it ignores them, and
// mosquitto_passwd rewrites a line whole when it changes a password, so
// it drops them rather than leave them stale.
//
// Refusals follow what the client offered. A client without a username,
// when AllowAnonymous is off, gets "not authorized" (MQTT 3.1 and 3.1.1
// CONNACK return code 5, MQTT 5 reason code 0x87), as from Mosquitto
// 2.0: it offered no credentials that could be wrong. A username that is
// not in the file, a wrong password or none gets "bad user name or
// password" (4, 0x86). A client refused by policy whatever its password, such as
// one whose verified certificate has no common name under UseCertCN,
// gets "not authorized" (5, 0x87). (Mosquitto 2.0 answers 5 / 0x87 to a
// wrong password too.)
//
// Set the option fields before the broker starts; do not change them
// while it runs. Authenticate and Reload are safe for concurrent use.
type PasswordFile struct {
	// AllowAnonymous lets clients that send no username connect without
	// a password check (Mosquitto's allow_anonymous). A client that does
	// send a username must always be in the file.
	AllowAnonymous bool

	// UseCertCN authenticates a client that presents a TLS certificate
	// which the listener verified (its chain is in
	// tls.ConnectionState.VerifiedChains) by that certificate alone: the
	// certificate's subject common name becomes the username, and the
	// password file is not consulted (Mosquitto's
	// use_identity_as_username). A verified certificate without a common
	// name is refused. A client without a verified certificate is checked
	// against the password file as usual.
	UseCertCN bool

	// MaxConcurrent bounds how many password hashes are verified at once
	// (0 means runtime.GOMAXPROCS). A hash check is deliberately slow, and
	// an argon2id check takes its memory cost (64 MiB by default) for its
	// duration, so a flood of connections must queue rather than exhaust
	// the machine. A waiting Authenticate gives up when its context ends.
	MaxConcurrent int

	path    string
	table   atomic.Pointer[userTable]
	semOnce sync.Once
	sem     chan struct{}
}

// userTable is one immutable snapshot of the file.
type userTable struct {
	creds map[string]*credential
	// dummy is verified for unknown users, so that they take as long as
	// known ones. It has the cost of the file's most common hash kind; nil
	// when the file has no users.
	dummy *credential
	// scram holds the SCRAM credentials of the users that have them, by
	// user and mechanism name; scramIter is, per mechanism, the most
	// common iteration count, which unknown users are told.
	scram     map[string]scramSet
	scramIter map[string]int
}

// LoadPasswordFile reads and checks a password file. The error names the
// file and line of the first problem: a line without ':', an empty
// username or hash, a duplicate user, a hash that is not bcrypt,
// argon2id, "$7$" or "$6$", a malformed hash, or a malformed or repeated
// SCRAM field.
func LoadPasswordFile(path string) (*PasswordFile, error) {
	p := &PasswordFile{path: path}
	if err := p.Reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Reload reads the file again and, if it is valid, replaces the users
// atomically: Authenticate calls in progress finish with the old set, later
// ones use the new. If the file is invalid, Reload returns the error and
// keeps the users it had. A SIGHUP handler can call it.
func (p *PasswordFile) Reload() error {
	if p.path == "" {
		return errors.New("auth: PasswordFile has no file: create it with LoadPasswordFile")
	}
	data, err := os.ReadFile(p.path)
	if err != nil {
		return err
	}
	lines, err := parsePasswordLines(p.path, data, false)
	if err != nil {
		return err
	}
	t := &userTable{creds: make(map[string]*credential, len(lines)), scram: map[string]scramSet{}, scramIter: map[string]int{}}
	count := map[string]int{}
	iterCount := map[string]map[int]int{} // mechanism -> iterations -> users
	var common *credential
	for _, l := range lines {
		if l.user == "" {
			continue
		}
		t.creds[l.user] = l.cred
		if len(l.scram) > 0 {
			t.scram[l.user] = l.scram
			for mech, c := range l.scram {
				if iterCount[mech] == nil {
					iterCount[mech] = map[int]int{}
				}
				iterCount[mech][c.Iterations]++
			}
		}
		k := l.cred.kind()
		count[k]++
		if common == nil || count[k] > count[common.kind()] {
			common = l.cred
		}
	}
	if common != nil {
		t.dummy = dummyCredential(common)
	}
	for mech, counts := range iterCount {
		best := 0
		for iter, n := range counts {
			if n > counts[best] || n == counts[best] && iter < best {
				best = iter
			}
		}
		t.scramIter[mech] = best
	}
	p.table.Store(t)
	return nil
}

// Path returns the file's path.
func (p *PasswordFile) Path() string { return p.path }

// SCRAMLen returns the number of users with SCRAM credentials (for
// either mechanism).
func (p *PasswordFile) SCRAMLen() int {
	if t := p.table.Load(); t != nil {
		return len(t.scram)
	}
	return 0
}

// Len returns the number of users.
func (p *PasswordFile) Len() int {
	if t := p.table.Load(); t != nil {
		return len(t.creds)
	}
	return 0
}

// Authenticate implements [broker.Authenticator]. It accepts the broker's
// own inline client, a client with a verified certificate when UseCertCN
// is set, a client without a username when AllowAnonymous is set, and a
// client whose username is in the file with the right password. It
// refuses a client without a username (AllowAnonymous off) and a
// certificate without a common name with a [*broker.Refusal] of code
// [packet.NotAuthorized], and an unknown user or a wrong password with
// [broker.ErrBadCredentials] (see [PasswordFile]); an unknown user costs
// as much time as a wrong password. A client whose context ends while it
// waits for its turn (see MaxConcurrent) gets the context's error.
func (p *PasswordFile) Authenticate(ctx context.Context, req *broker.AuthRequest) error {
	if req.Inline {
		return nil
	}
	if p.UseCertCN && req.TLS != nil && len(req.TLS.VerifiedChains) > 0 && len(req.TLS.PeerCertificates) > 0 {
		cn := req.TLS.PeerCertificates[0].Subject.CommonName
		if cn == "" {
			return errNoCommonName
		}
		req.Username = cn
		return nil
	}
	if req.Username == "" {
		if p.AllowAnonymous {
			return nil
		}
		// No credentials to be wrong: not authorized, as Mosquitto says.
		return errAnonymous
	}
	if req.Connect != nil && !req.Connect.HasPassword() {
		// A username alone proves nothing, even for a user whose password
		// is empty (mosquitto_passwd -b can make one): Mosquitto, too,
		// refuses a user with a hash who sends no password.
		return broker.ErrBadCredentials
	}
	t := p.table.Load()
	if t == nil || t.dummy == nil {
		return broker.ErrBadCredentials // no users at all
	}
	c, known := t.creds[req.Username]
	if !known {
		c = t.dummy
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	ok := c.verify(req.Password)
	<-p.sem
	if !ok || !known {
		return broker.ErrBadCredentials
	}
	return nil
}

// The policy refusals of Authenticate; the reason is sent to MQTT 5
// clients and logged.
var (
	errAnonymous    error = &broker.Refusal{Code: packet.NotAuthorized, Reason: "anonymous clients are not allowed: connect with a username and password"}
	errNoCommonName error = &broker.Refusal{Code: packet.NotAuthorized, Reason: "the verified client certificate has no common name to use as the username"}
)

func (p *PasswordFile) acquire(ctx context.Context) error {
	p.semOnce.Do(func() {
		n := p.MaxConcurrent
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		p.sem = make(chan struct{}, n)
	})
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pwLine is one line of a password file. user is "" for a comment or
// blank line.
type pwLine struct {
	text    string // the line as read (without its newline), or as written by Set
	user    string
	hash    string
	cred    *credential
	scram   scramSet // nil when the line has no SCRAM fields
	problem error    // lenient parsing: what is wrong with hash or the SCRAM fields
}

// parsePasswordLines parses a password file. Strictly, every hash must be
// valid; leniently (for editing), a line whose hash is unknown or
// malformed is kept with its problem, so that tern passwd can replace it.
// Syntax errors and duplicates are errors either way.
func parsePasswordLines(path string, data []byte, lenient bool) ([]pwLine, error) {
	text := string(data)
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return nil, nil
	}
	raw := strings.Split(text, "\n")
	lines := make([]pwLine, 0, len(raw))
	first := map[string]int{}
	for i, r := range raw {
		n := i + 1
		l := pwLine{text: strings.TrimSuffix(r, "\r")}
		t := strings.TrimSpace(r)
		if t == "" || t[0] == '#' {
			lines = append(lines, l)
			continue
		}
		user, rest, ok := strings.Cut(t, ":")
		switch {
		case !ok:
			// Do not quote the line: it may be a password.
			return nil, fmt.Errorf("%s:%d: missing ':' (want username:hash, as tern passwd writes)", path, n)
		case user == "":
			return nil, fmt.Errorf("%s:%d: empty username before ':'", path, n)
		}
		fields := strings.Split(rest, ":")
		hash := strings.TrimSpace(fields[0])
		if hash == "" {
			return nil, fmt.Errorf("%s:%d: user %q has no password hash after ':' (set one with tern passwd)", path, n, user)
		}
		if prev, dup := first[user]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate user %q (also on line %d): delete one of the lines", path, n, user, prev)
		}
		first[user] = n
		l.user, l.hash = user, hash
		cred, err := parseHash(hash)
		if err != nil {
			err = fmt.Errorf("%s:%d: %v", path, n, err)
			if !lenient {
				return nil, err
			}
			l.problem = err
		}
		l.cred = cred
		set, err := parseSCRAMFields(fields[1:])
		if err != nil {
			err = fmt.Errorf("%s:%d: user %q: %v", path, n, user, err)
			if !lenient {
				return nil, err
			}
			if l.problem == nil {
				l.problem = err
			}
		}
		l.scram = set
		lines = append(lines, l)
	}
	return lines, nil
}

// parseSCRAMFields parses the SCRAM fields after a line's hash.
func parseSCRAMFields(fields []string) (scramSet, error) {
	if len(fields) == 0 {
		return nil, nil
	}
	set := make(scramSet, len(fields))
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, errors.New("empty field after ':' (remove the extra ':', or set the password again with tern passwd)")
		}
		m, c, err := parseSCRAMField(f)
		if err != nil {
			return nil, err
		}
		if _, dup := set[m.Name()]; dup {
			return nil, fmt.Errorf("two %s credentials: delete one (or set the password again with tern passwd)", m.Name())
		}
		set[m.Name()] = c
	}
	return set, nil
}
