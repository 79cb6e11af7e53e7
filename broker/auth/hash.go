package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Defaults for new password hashes.
const (
	// DefaultBcryptCost is the bcrypt cost of new hashes: 2^12 rounds,
	// about a quarter of a second on a current server core.
	DefaultBcryptCost = 12

	// DefaultArgon2Memory, DefaultArgon2Time and DefaultArgon2Threads are
	// the argon2id parameters of new argon2id hashes: 64 MiB, 3 passes,
	// 2 lanes.
	DefaultArgon2Memory  = 64 * 1024 // KiB
	DefaultArgon2Time    = 3
	DefaultArgon2Threads = 2

	argon2SaltLen = 16
	argon2KeyLen  = 32

	// Bounds on argon2id parameters read from a file: enough for every
	// sensible hash, and a clear error for a typo that would make every
	// login allocate gigabytes.
	maxArgon2Memory = 4 * 1024 * 1024 // KiB: 4 GiB
	minArgon2Salt   = 8
	minArgon2Key    = 16
	maxArgon2Len    = 1024
)

// HashOptions chooses how [HashPassword] hashes a password. The zero value
// makes a bcrypt hash of cost [DefaultBcryptCost].
type HashOptions struct {
	// Argon2 makes an argon2id hash instead of a bcrypt one.
	Argon2 bool
	// PBKDF2 makes Mosquitto 2.0's "$7$" hash (PBKDF2-HMAC-SHA512, as
	// mosquitto_passwd writes it) instead of a bcrypt one, so that
	// Mosquitto can read the line too.
	PBKDF2 bool
	// Cost is the bcrypt cost (4 to 31; 0 means DefaultBcryptCost);
	// with Argon2, the number of argon2id passes (0 means
	// DefaultArgon2Time); with PBKDF2, the iteration count
	// ([MinPBKDF2Iterations] to [MaxPBKDF2Iterations]; 0 means
	// [DefaultPBKDF2Iterations]).
	Cost int
	// Argon2Memory is the argon2id memory in KiB (0 means
	// DefaultArgon2Memory) and Argon2Threads its parallelism (0 means
	// DefaultArgon2Threads). Both are ignored for bcrypt.
	Argon2Memory  uint32
	Argon2Threads uint8

	// NoSCRAM leaves out the SCRAM-SHA-256 and SCRAM-SHA-512 credentials
	// that [EditablePasswordFile.Set] writes after the hash by default
	// (see [PasswordFile] for the format), so that the user can log in
	// with a password only. (Mosquitto 2.0 ignores these fields, so a
	// PBKDF2 line stays readable by it either way; it reads no bcrypt or
	// argon2id line, with or without them.) SCRAMIterations is their iteration count (0 means
	// [DefaultSCRAMIterations]). HashPassword ignores both.
	NoSCRAM         bool
	SCRAMIterations int
}

// HashPassword hashes password for a password file: a bcrypt hash
// ("$2a$12$...", the form "htpasswd -B" writes); with opts.Argon2, an
// argon2id hash in the PHC string format
// ("$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>"); with opts.PBKDF2,
// Mosquitto 2.0's "$7$<iterations>$<salt>$<hash>"; each with a fresh
// random salt. bcrypt uses at most 72 bytes of a password, so HashPassword
// refuses a longer one for bcrypt rather than silently ignoring its tail.
func HashPassword(password string, opts HashOptions) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	if opts.Argon2 && opts.PBKDF2 {
		return "", errors.New("argon2id and PBKDF2 at once: choose one")
	}
	if opts.PBKDF2 {
		if opts.Cost < 0 {
			return "", fmt.Errorf("PBKDF2 iteration count %d out of range %d to %d", opts.Cost, MinPBKDF2Iterations, MaxPBKDF2Iterations)
		}
		return hashMosquitto(password, opts.Cost)
	}
	if !opts.Argon2 {
		cost := opts.Cost
		if cost == 0 {
			cost = DefaultBcryptCost
		}
		if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
			return "", fmt.Errorf("bcrypt cost %d out of range %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
		}
		if len(password) > 72 {
			return "", fmt.Errorf("password is %d bytes long and bcrypt uses only the first 72: choose a shorter one or use argon2id", len(password))
		}
		h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
		if err != nil {
			return "", err
		}
		return string(h), nil
	}
	p := argon2Params{
		memory:  opts.Argon2Memory,
		time:    uint32(opts.Cost),
		threads: opts.Argon2Threads,
	}
	if opts.Cost < 0 {
		return "", fmt.Errorf("argon2id time cost %d must be at least 1", opts.Cost)
	}
	if p.memory == 0 {
		p.memory = DefaultArgon2Memory
	}
	if p.time == 0 {
		p.time = DefaultArgon2Time
	}
	if p.threads == 0 {
		p.threads = DefaultArgon2Threads
	}
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, argon2KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

type argon2Params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

func (p argon2Params) check() error {
	switch {
	case p.time < 1:
		return errors.New("argon2id time cost t must be at least 1")
	case p.threads < 1:
		return errors.New("argon2id parallelism p must be 1 to 255")
	case p.memory < 8*uint32(p.threads):
		return fmt.Errorf("argon2id memory m=%d KiB is below 8*p=%d", p.memory, 8*uint32(p.threads))
	case p.memory > maxArgon2Memory:
		return fmt.Errorf("argon2id memory m=%d KiB is above the limit of %d (4 GiB)", p.memory, maxArgon2Memory)
	}
	return nil
}

// credential is a parsed password hash: bcrypt, argon2id, or one of
// Mosquitto's (see mosquitto.go).
type credential struct {
	bcrypt     []byte // a bcrypt hash, or nil for the others
	argon2     argon2Params
	sha512     bool // Mosquitto's "$6$": SHA-512(password || salt)
	iterations int  // Mosquitto's "$7$": PBKDF2-HMAC-SHA512 with this count
	salt       []byte
	key        []byte
}

// kind identifies hashes of equal verification cost, to pick the dummy
// hash that unknown users are verified against.
func (c *credential) kind() string {
	switch {
	case c.bcrypt != nil:
		cost, _ := bcrypt.Cost(c.bcrypt)
		return "bcrypt " + strconv.Itoa(cost)
	case c.sha512:
		return "sha512"
	case c.iterations > 0:
		return "pbkdf2-sha512 " + strconv.Itoa(c.iterations)
	}
	return fmt.Sprintf("argon2id %d %d %d %d", c.argon2.memory, c.argon2.time, c.argon2.threads, len(c.key))
}

// verify reports whether password matches, in time independent of where
// the first difference lies.
func (c *credential) verify(password []byte) bool {
	if c.bcrypt != nil {
		return bcrypt.CompareHashAndPassword(c.bcrypt, password) == nil
	}
	if c.isMosquitto() {
		return c.verifyMosquitto(password)
	}
	key := argon2.IDKey(password, c.salt, c.argon2.time, c.argon2.memory, c.argon2.threads, uint32(len(c.key)))
	return subtle.ConstantTimeCompare(key, c.key) == 1
}

// parseHash parses the hash of one password file line. The error says
// what is wrong and how to fix it, without the file and line.
func parseHash(h string) (*credential, error) {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return nil, fmt.Errorf("malformed bcrypt hash %q: %v", abbrev(h), trimPrefix(err))
		}
		if len(h) != 60 {
			return nil, fmt.Errorf("malformed bcrypt hash %q: %d characters instead of 60", abbrev(h), len(h))
		}
		return &credential{bcrypt: []byte(h)}, nil
	case strings.HasPrefix(h, "$argon2id$"):
		return parseArgon2id(h)
	case strings.HasPrefix(h, "$argon2i$"), strings.HasPrefix(h, "$argon2d$"):
		return nil, fmt.Errorf("unsupported hash %q: only the argon2id variant of argon2 is supported (see tern passwd)", abbrev(h))
	case strings.HasPrefix(h, "$6$"), strings.HasPrefix(h, "$7$"):
		return parseMosquitto(h)
	}
	if !strings.HasPrefix(h, "$") {
		// Perhaps a plaintext password: do not repeat it in the error.
		return nil, errors.New(`unknown hash format: not a "$"-prefixed hash (a plaintext password? use bcrypt, argon2id or Mosquitto's $7$; see tern passwd)`)
	}
	return nil, fmt.Errorf("unknown hash format %q (use bcrypt, argon2id or Mosquitto's $7$ or $6$; see tern passwd)", abbrev(h))
}

// parseArgon2id parses "$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>",
// salt and hash in unpadded standard base64 (padding is tolerated).
func parseArgon2id(h string) (*credential, error) {
	bad := func(why string) error {
		return fmt.Errorf("malformed argon2id hash %q: %s (want $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>)", abbrev(h), why)
	}
	f := strings.Split(h, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(f) != 6 {
		return nil, bad("wrong number of '$'-separated fields")
	}
	if f[2] != "v=19" {
		return nil, bad("version must be v=19")
	}
	var p argon2Params
	var seen [3]bool
	for _, kv := range strings.Split(f[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, bad(fmt.Sprintf("parameter %q is not key=value", kv))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, bad(fmt.Sprintf("parameter %s=%q is not a number", k, v))
		}
		switch k {
		case "m":
			p.memory, seen[0] = uint32(n), true
		case "t":
			p.time, seen[1] = uint32(n), true
		case "p":
			if n > 255 {
				return nil, bad("p is above 255")
			}
			p.threads, seen[2] = uint8(n), true
		default:
			return nil, bad(fmt.Sprintf("unknown parameter %q", k))
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, bad("m, t and p are all required")
	}
	if err := p.check(); err != nil {
		return nil, bad(err.Error())
	}
	salt, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[4], "="))
	if err != nil {
		return nil, bad("salt is not base64")
	}
	key, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[5], "="))
	if err != nil {
		return nil, bad("hash is not base64")
	}
	if len(salt) < minArgon2Salt || len(salt) > maxArgon2Len {
		return nil, bad(fmt.Sprintf("salt is %d bytes, want %d to %d", len(salt), minArgon2Salt, maxArgon2Len))
	}
	if len(key) < minArgon2Key || len(key) > maxArgon2Len {
		return nil, bad(fmt.Sprintf("hash is %d bytes, want %d to %d", len(key), minArgon2Key, maxArgon2Len))
	}
	return &credential{argon2: p, salt: salt, key: key}, nil
}

// dummyCredential makes a credential of the same kind and cost as c, for
// a password nobody knows, so that unknown users take as long as known
// ones.
func dummyCredential(c *credential) *credential {
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	if c.bcrypt != nil {
		cost, _ := bcrypt.Cost(c.bcrypt)
		h, err := bcrypt.GenerateFromPassword(pw[:], cost)
		if err != nil {
			return c // cannot happen for a cost Cost accepted
		}
		return &credential{bcrypt: h}
	}
	salt := make([]byte, len(c.salt))
	_, _ = rand.Read(salt)
	key := make([]byte, len(c.key))
	_, _ = rand.Read(key) // no password derives to a random key in practice
	return &credential{argon2: c.argon2, sha512: c.sha512, iterations: c.iterations, salt: salt, key: key}
}

// abbrev shortens a hash for an error message to its scheme ("$1$..."):
// enough to recognise the format, not enough to leak it into logs.
func abbrev(h string) string {
	if i := strings.IndexByte(h[1:], '$'); i >= 0 {
		return h[:i+2] + "..."
	}
	return h + "..."
}

func trimPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "crypto/bcrypt: ")
}
