package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mosquitto's password hashes, as its broker reads them (Mosquitto 2.0,
// src/security_default.c) and mosquitto_passwd writes them:
//
//	$6$<salt>$<hash>               Mosquitto 1.x: hash = SHA-512(password || salt)
//	$7$<iterations>$<salt>$<hash>  Mosquitto 2.0: hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes)
//
// salt and hash in standard, padded base64 (OpenSSL's), the salt exactly
// 12 bytes and the hash exactly 64: Mosquitto drops a user whose salt or
// hash decodes to any other length, which an unpadded hash does (OpenSSL
// decodes only its complete four-character groups).
const (
	// DefaultPBKDF2Iterations is the iteration count of the "$7$" hashes
	// tern passwd --mosquitto writes. mosquitto_passwd writes 101, so
	// that a guess costs an attacker about 200 SHA-512 computations;
	// 10,000 makes guessing a hundred times dearer, yet costs a login
	// only about 10 ms of CPU. It is not higher (OWASP suggests 210,000)
	// because Mosquitto verifies passwords on its one event-loop thread:
	// every login to a Mosquitto sharing the file stalls all its clients
	// for that long. A file only Tern reads is better served by bcrypt or
	// argon2id.
	DefaultPBKDF2Iterations = 10000

	// MinPBKDF2Iterations and MaxPBKDF2Iterations bound the iteration
	// count of the "$7$" hashes HashPassword makes. Files may hold any
	// count from 1 (Mosquitto's own 101 included) to MaxPBKDF2Iterations,
	// a bound that makes a typo an error rather than a login that takes
	// minutes.
	MinPBKDF2Iterations = 1000
	MaxPBKDF2Iterations = 10_000_000

	mosquittoSaltLen = 12
	mosquittoKeyLen  = 64
)

// parseMosquitto parses a "$6$" or "$7$" hash.
func parseMosquitto(h string) (*credential, error) {
	f := strings.Split(h, "$")
	want := "$6$<salt>$<hash>"
	c := &credential{sha512: true}
	if f[1] == "7" {
		want = "$7$<iterations>$<salt>$<hash>"
		c = &credential{}
	}
	bad := func(why string) error {
		return fmt.Errorf("malformed Mosquitto hash %q: %s (want %s, as mosquitto_passwd writes it; or set the password again with tern passwd)", abbrev(h), why, want)
	}
	if len(f) != strings.Count(want, "$")+1 {
		return nil, bad("wrong number of '$'-separated fields")
	}
	f = f[2:]
	if !c.sha512 {
		// Mosquitto reads the count with atoi, which also takes "+101"
		// or "101abc"; mosquitto_passwd writes plain digits, and anything
		// else is more likely a damaged line than a deliberate count.
		if f[0] == "" || strings.Trim(f[0], "0123456789") != "" {
			return nil, bad(fmt.Sprintf("iteration count %q is not a number", f[0]))
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n > MaxPBKDF2Iterations {
			return nil, bad(fmt.Sprintf("iteration count %s is above the limit of %d", f[0], MaxPBKDF2Iterations))
		}
		if n < 1 {
			return nil, bad("iteration count must be at least 1")
		}
		c.iterations = n
		f = f[1:]
	}
	salt, err := base64.StdEncoding.DecodeString(f[0])
	if err != nil {
		return nil, bad("salt is not padded standard base64")
	}
	if len(salt) != mosquittoSaltLen {
		return nil, bad(fmt.Sprintf("salt is %d bytes, Mosquitto's are %d", len(salt), mosquittoSaltLen))
	}
	key, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return nil, bad("hash is not padded standard base64")
	}
	if len(key) != mosquittoKeyLen {
		return nil, bad(fmt.Sprintf("hash is %d bytes, Mosquitto's are %d", len(key), mosquittoKeyLen))
	}
	c.salt, c.key = salt, key
	return c, nil
}

// hashMosquitto makes a "$7$" hash with a fresh 12-byte salt.
func hashMosquitto(password string, iterations int) (string, error) {
	if iterations == 0 {
		iterations = DefaultPBKDF2Iterations
	}
	if iterations < MinPBKDF2Iterations || iterations > MaxPBKDF2Iterations {
		return "", fmt.Errorf("PBKDF2 iteration count %d out of range %d to %d", iterations, MinPBKDF2Iterations, MaxPBKDF2Iterations)
	}
	if strings.IndexByte(password, 0) >= 0 {
		// Mosquitto compares C strings: it would hash only the part
		// before the NUL, so the password could never match.
		return "", errors.New("password contains a NUL byte, which Mosquitto cannot take: choose another")
	}
	salt := make([]byte, mosquittoSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := pbkdf2.Key(sha512.New, password, salt, iterations, mosquittoKeyLen)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$7$%d$%s$%s", iterations, base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(key)), nil
}

// verifyMosquitto checks password against a "$6$" or "$7$" credential as
// Mosquitto does, comparing in constant time, with one difference:
// Mosquitto hashes the password only up to its first NUL byte (it handles
// it as a C string), so that "pw\x00anything" passes for "pw"; Tern hashes
// every byte the client sent.
func (c *credential) verifyMosquitto(password []byte) bool {
	var sum []byte
	if c.sha512 {
		h := sha512.New()
		h.Write(password)
		h.Write(c.salt)
		sum = h.Sum(nil)
	} else {
		var err error
		sum, err = pbkdf2.Key(sha512.New, string(password), c.salt, c.iterations, len(c.key))
		if err != nil {
			return false
		}
	}
	return subtle.ConstantTimeCompare(sum, c.key) == 1
}

// isMosquitto reports whether c is a hash Mosquitto can read.
func (c *credential) isMosquitto() bool {
	return c != nil && (c.sha512 || c.iterations > 0)
}
