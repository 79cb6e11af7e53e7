package scram

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is a failed SCRAM exchange. errors.Is matches it against the
// sentinel of its kind (ErrInvalidProof, ErrInvalidEncoding, ...).
type Error struct {
	// Value is the RFC 5802 server-error-value that classifies the
	// failure: "invalid-proof", "invalid-encoding",
	// "extensions-not-supported", "channel-binding-not-supported",
	// "channel-bindings-dont-match", "invalid-username-encoding" or
	// "other-error". For a [Client] refused by the server it is the value
	// the server sent.
	Value string
	// Msg says what is wrong; empty for the sentinels.
	Msg  string
	kind *Error
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "scram: " + e.Value
	}
	return "scram: " + e.Msg
}

// Is reports whether target is the sentinel of e's kind.
func (e *Error) Is(target error) bool { return e.kind != nil && target == error(e.kind) }

// The kinds of [Error].
var (
	// ErrInvalidProof: the client's proof is wrong, which is what a wrong
	// password (or an unknown user) looks like to the server.
	ErrInvalidProof = &Error{Value: "invalid-proof"}
	// ErrInvalidEncoding: a message does not follow the RFC 5802 syntax.
	ErrInvalidEncoding = &Error{Value: "invalid-encoding"}
	// ErrInvalidUsernameEncoding: a user name is empty, or has an '='
	// that is not part of "=2C" or "=3D".
	ErrInvalidUsernameEncoding = &Error{Value: "invalid-username-encoding"}
	// ErrExtensionsNotSupported: a message has the mandatory extension
	// attribute "m=", which this version of SCRAM must refuse.
	ErrExtensionsNotSupported = &Error{Value: "extensions-not-supported"}
	// ErrChannelBindingNotSupported: the client asks for channel binding
	// (GS2 header "p=..."), which this implementation does not offer.
	ErrChannelBindingNotSupported = &Error{Value: "channel-binding-not-supported"}
	// ErrChannelBindingsDontMatch: the client-final-message's "c=" is not
	// the GS2 header of the client-first-message.
	ErrChannelBindingsDontMatch = &Error{Value: "channel-bindings-dont-match"}
	// ErrNonceMismatch: a message's nonce is not the one of the exchange.
	ErrNonceMismatch = &Error{Value: "other-error"}
	// ErrIterationCount: the server asked a client for an iteration count
	// outside [MinIterations, MaxIterations].
	ErrIterationCount = &Error{Value: "other-error"}
	// ErrServerSignature: the server-final-message does not prove that
	// the server knows the user's credentials.
	ErrServerSignature = &Error{Value: "other-error"}
	// ErrServerRefused: the server ended the exchange with "e=...".
	ErrServerRefused = &Error{Value: "other-error"}
	// ErrOutOfOrder: a conversation method was called out of turn, or
	// after the exchange ended.
	ErrOutOfOrder = &Error{Value: "other-error"}
)

func errorf(kind *Error, format string, args ...any) *Error {
	return &Error{Value: kind.Value, Msg: fmt.Sprintf(format, args...), kind: kind}
}

// b64 is the base64 of SCRAM messages: standard alphabet, padded.
var b64 = base64.StdEncoding

// decodeB64 decodes canonical padded base64 only: no line breaks, no
// stray bits, so that one value has one spelling.
func decodeB64(s string) ([]byte, bool) {
	b, err := b64.Strict().DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// checkMessage applies the rules common to every message: not empty, not
// too long, UTF-8 (value-char is UTF8-char), no NUL.
func checkMessage(msg []byte, what string) (string, error) {
	switch {
	case len(msg) == 0:
		return "", errorf(ErrInvalidEncoding, "empty %s", what)
	case len(msg) > maxMessageLen:
		return "", errorf(ErrInvalidEncoding, "%s is %d bytes long, more than the limit of %d", what, len(msg), maxMessageLen)
	case !utf8.Valid(msg):
		return "", errorf(ErrInvalidEncoding, "%s is not UTF-8", what)
	case strings.IndexByte(string(msg), 0) >= 0:
		return "", errorf(ErrInvalidEncoding, "%s contains a NUL byte", what)
	}
	return string(msg), nil
}

// attr returns the value of field f if it is attribute k ("k=value").
func attr(f string, k byte) (string, bool) {
	if len(f) >= 2 && f[0] == k && f[1] == '=' {
		return f[2:], true
	}
	return "", false
}

// quote shows a client-supplied value in an error, shortened.
func quote(s string) string {
	if len(s) > 40 {
		i := 40
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "..."
	}
	return strconv.Quote(s)
}

// needAttr returns the value of field f, which must be attribute k.
func needAttr(f string, k byte, what string) (string, error) {
	if strings.HasPrefix(f, "m=") {
		return "", errorf(ErrExtensionsNotSupported, "%s has the mandatory extension \"m=\", which is not supported", what)
	}
	v, ok := attr(f, k)
	if !ok {
		return "", errorf(ErrInvalidEncoding, "%s: want attribute \"%c=\", got %s", what, k, quote(f))
	}
	return v, nil
}

// known are the attribute names RFC 5802 defines; they may not appear as
// extensions.
const known = "acdeimnprsv"

// checkExtensions checks optional extension attributes, which are
// otherwise ignored: each must be a letter, '=' and a non-empty value, and
// not one of the attributes the RFC defines.
func checkExtensions(fs []string, what string) error {
	for _, f := range fs {
		if len(f) < 3 || f[1] != '=' || !('a' <= f[0] && f[0] <= 'z' || 'A' <= f[0] && f[0] <= 'Z') {
			return errorf(ErrInvalidEncoding, "%s: %s is not an attribute (want a letter, '=' and a value)", what, quote(f))
		}
		if f[0] == 'm' {
			return errorf(ErrExtensionsNotSupported, "%s has the mandatory extension \"m=\", which is not supported", what)
		}
		if strings.IndexByte(known, f[0]) >= 0 {
			return errorf(ErrInvalidEncoding, "%s: attribute \"%c=\" is out of place", what, f[0])
		}
	}
	return nil
}

// checkNonce checks a nonce: one or more printable ASCII characters
// other than ','.
func checkNonce(n, what string) error {
	if n == "" {
		return errorf(ErrInvalidEncoding, "%s has an empty nonce", what)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7E || c == ',' {
			return errorf(ErrInvalidEncoding, "%s: the nonce has a character outside printable ASCII (or a ',') at byte %d", what, i)
		}
	}
	return nil
}

// decodeSaslname unescapes a user name: "=2C" is ',' and "=3D" is '='
// (either case of the hex digits); any other '=' is an error.
func decodeSaslname(s, what string) (string, error) {
	if s == "" {
		return "", errorf(ErrInvalidUsernameEncoding, "%s: empty user name", what)
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch esc := strings.ToUpper(s[i+1 : min(i+3, len(s))]); esc {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", errorf(ErrInvalidUsernameEncoding, "%s: the user name has '=' followed by %s; '=' must be sent as \"=3D\" and ',' as \"=2C\"", what, quote(esc))
		}
		i += 2
	}
	return b.String(), nil
}

// encodeSaslname escapes a user name for a message.
func encodeSaslname(s string) string {
	if strings.IndexAny(s, "=,") < 0 {
		return s
	}
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// parseIterations parses a positive decimal without leading zeros that
// fits in 31 bits.
func parseIterations(s, what string) (int, error) {
	bad := errorf(ErrInvalidEncoding, "%s: iteration count %s is not a positive decimal number", what, quote(s))
	if s == "" || s[0] == '0' || len(s) > 10 {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, bad
	}
	return int(n), nil
}

// clientFirst is a parsed client-first-message.
type clientFirst struct {
	gs2Header string // "n,," or "y,,", with the authzid between the commas if any
	authzid   string
	username  string
	nonce     string
	bare      string // client-first-message-bare, for the AuthMessage
}

const whatCF = "client-first-message"

func parseClientFirst(msg []byte) (clientFirst, error) {
	var cf clientFirst
	s, err := checkMessage(msg, whatCF)
	if err != nil {
		return cf, err
	}
	flag, rest, ok1 := strings.Cut(s, ",")
	authz, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return cf, errorf(ErrInvalidEncoding, "%s does not start with a GS2 header (want \"n,,n=<user>,r=<nonce>\")", whatCF)
	}
	switch {
	case flag == "n", flag == "y":
		// "y": the client supports channel binding but thinks the server
		// does not; right, since no -PLUS mechanism is offered.
	case strings.HasPrefix(flag, "p="):
		return cf, errorf(ErrChannelBindingNotSupported, "the client asks for channel binding (GS2 header %s), which is not supported: use SCRAM-SHA-256 or SCRAM-SHA-512 without channel binding (GS2 header \"n,,\")", quote(flag+","))
	default:
		return cf, errorf(ErrInvalidEncoding, "%s: the GS2 header must start with \"n\", \"y\" or \"p=\", not %s", whatCF, quote(flag))
	}
	if authz != "" {
		v, ok := attr(authz, 'a')
		if !ok {
			return cf, errorf(ErrInvalidEncoding, "%s: the GS2 header's second field must be empty or \"a=<authzid>\", not %s", whatCF, quote(authz))
		}
		if cf.authzid, err = decodeSaslname(v, whatCF+" authzid"); err != nil {
			return cf, err
		}
	}
	cf.gs2Header = s[:len(s)-len(bare)]
	cf.bare = bare
	fs := strings.Split(bare, ",")
	if len(fs) < 2 {
		return cf, errorf(ErrInvalidEncoding, "%s: want \"n=<user>,r=<nonce>\" after the GS2 header", whatCF)
	}
	v, err := needAttr(fs[0], 'n', whatCF)
	if err != nil {
		return cf, err
	}
	if cf.username, err = decodeSaslname(v, whatCF); err != nil {
		return cf, err
	}
	if cf.nonce, err = needAttr(fs[1], 'r', whatCF); err != nil {
		return cf, err
	}
	if err := checkNonce(cf.nonce, whatCF); err != nil {
		return cf, err
	}
	return cf, checkExtensions(fs[2:], whatCF)
}

// serverFirst is a parsed server-first-message.
type serverFirst struct {
	nonce      string
	salt       []byte
	iterations int
}

const whatSF = "server-first-message"

func parseServerFirst(msg []byte) (serverFirst, error) {
	var sf serverFirst
	s, err := checkMessage(msg, whatSF)
	if err != nil {
		return sf, err
	}
	fs := strings.Split(s, ",")
	if len(fs) < 3 {
		return sf, errorf(ErrInvalidEncoding, "%s: want \"r=<nonce>,s=<salt>,i=<iterations>\"", whatSF)
	}
	if sf.nonce, err = needAttr(fs[0], 'r', whatSF); err != nil {
		return sf, err
	}
	if err := checkNonce(sf.nonce, whatSF); err != nil {
		return sf, err
	}
	v, err := needAttr(fs[1], 's', whatSF)
	if err != nil {
		return sf, err
	}
	var ok bool
	if sf.salt, ok = decodeB64(v); !ok || len(sf.salt) == 0 {
		return sf, errorf(ErrInvalidEncoding, "%s: the salt is not non-empty base64", whatSF)
	}
	if v, err = needAttr(fs[2], 'i', whatSF); err != nil {
		return sf, err
	}
	if sf.iterations, err = parseIterations(v, whatSF); err != nil {
		return sf, err
	}
	return sf, checkExtensions(fs[3:], whatSF)
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	binding      []byte // the decoded "c=": GS2 header and channel binding data
	nonce        string
	proof        []byte
	withoutProof string // client-final-message-without-proof, for the AuthMessage
}

const whatCFinal = "client-final-message"

func parseClientFinal(msg []byte) (clientFinal, error) {
	var cf clientFinal
	s, err := checkMessage(msg, whatCFinal)
	if err != nil {
		return cf, err
	}
	fs := strings.Split(s, ",")
	if len(fs) < 3 {
		return cf, errorf(ErrInvalidEncoding, "%s: want \"c=<binding>,r=<nonce>,p=<proof>\"", whatCFinal)
	}
	v, err := needAttr(fs[0], 'c', whatCFinal)
	if err != nil {
		return cf, err
	}
	var ok bool
	if cf.binding, ok = decodeB64(v); !ok {
		return cf, errorf(ErrInvalidEncoding, "%s: the channel binding \"c=\" is not base64", whatCFinal)
	}
	if cf.nonce, err = needAttr(fs[1], 'r', whatCFinal); err != nil {
		return cf, err
	}
	if err := checkNonce(cf.nonce, whatCFinal); err != nil {
		return cf, err
	}
	last := fs[len(fs)-1]
	if err := checkExtensions(fs[2:len(fs)-1], whatCFinal); err != nil {
		return cf, err
	}
	if v, ok = attr(last, 'p'); !ok {
		return cf, errorf(ErrInvalidEncoding, "%s: the last attribute must be the proof \"p=\", not %s", whatCFinal, quote(last))
	}
	if cf.proof, ok = decodeB64(v); !ok {
		return cf, errorf(ErrInvalidEncoding, "%s: the proof is not base64", whatCFinal)
	}
	cf.withoutProof = s[:len(s)-len(last)-1]
	return cf, nil
}

const whatSFinal = "server-final-message"

// parseServerFinal returns the server signature of a server-final-message,
// or the server's error.
func parseServerFinal(msg []byte) ([]byte, error) {
	s, err := checkMessage(msg, whatSFinal)
	if err != nil {
		return nil, err
	}
	fs := strings.Split(s, ",")
	if v, ok := attr(fs[0], 'e'); ok {
		if v == "" {
			v = "other-error"
		}
		e := errorf(ErrServerRefused, "the server refused the authentication: %s", quote(v))
		e.Value = v
		return nil, e
	}
	v, err := needAttr(fs[0], 'v', whatSFinal)
	if err != nil {
		return nil, err
	}
	sig, ok := decodeB64(v)
	if !ok {
		return nil, errorf(ErrInvalidEncoding, "%s: the server signature is not base64", whatSFinal)
	}
	return sig, checkExtensions(fs[1:], whatSFinal)
}
