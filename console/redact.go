package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Hidden replaces a secret's value in the configuration the console shows.
const Hidden = "(hidden)"

// secretWords are the words of a key that make its value a secret: a
// key "password_file", "tokens_file", "tls.key_file", "secret" or
// "api-token" is one; "keep_alive" is not ("keep" is not "key").
var secretWords = []string{"password", "passwd", "pass", "passphrase", "secret", "token", "tokens", "key", "keys", "credential", "credentials", "apikey", "private"}

// isSecretKey says whether a configuration key names a secret: one of
// its words (split at anything but a letter or a digit) is a secret word.
func isSecretKey(k string) bool {
	words := strings.FieldsFunc(strings.ToLower(k), func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
	})
	for _, w := range words {
		for _, s := range secretWords {
			if w == s {
				return true
			}
		}
	}
	return false
}

// Redact returns v, a configuration, as JSON values (maps, lists,
// strings, numbers, booleans) with its secrets hidden: the value of
// every key that names a secret (a password, a key, a token, a
// credential: see isSecretKey) becomes Hidden unless it is empty, and
// the password of every URL in a string (redis://user:password@host)
// becomes Hidden too. v must encode to JSON; nil gives nil.
func Redact(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the configuration as JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return redact(out), nil
}

func redact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if isSecretKey(k) && !isEmpty(x) {
				v[k] = Hidden
				continue
			}
			v[k] = redact(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = redact(x)
		}
		return v
	case string:
		return redactURLs(v)
	}
	return v
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// redactURLs hides the password of each URL in s, which may be a list of
// them separated by commas or spaces (nats://u:p@a:4222,b:4222):
// scheme://user:password@host becomes scheme://user:(hidden)@host.
func redactURLs(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, "://") {
		return s
	}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	var b strings.Builder
	rest := s
	for _, f := range fields {
		at := strings.Index(rest, f)
		b.WriteString(rest[:at])
		rest = rest[at+len(f):]
		i, j := strings.Index(f, "://"), strings.LastIndex(f, "@")
		if i < 0 || j < i+3 {
			b.WriteString(f)
			continue
		}
		user, _, hasPass := strings.Cut(f[i+3:j], ":")
		if !hasPass {
			b.WriteString(f)
			continue
		}
		b.WriteString(f[:i+3] + user + ":" + Hidden + f[j:])
	}
	b.WriteString(rest)
	return b.String()
}
