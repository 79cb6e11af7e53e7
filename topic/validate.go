package topic

import (
	"strings"
	"unicode/utf8"
)

// MaxLen is the largest length in bytes of a topic name or filter: both are
// UTF-8 strings with a two-byte length prefix on the wire.
const MaxLen = 65535

// SharePrefix starts every shared subscription filter (MQTT 5.0 section
// 4.8.2): "$share/{ShareName}/{filter}".
const SharePrefix = "$share/"

// scan modes.
const (
	modeName      = iota // topic name: no wildcards at all
	modeFilter           // topic filter: wildcards must occupy whole levels
	modeShareName        // ShareName: no wildcards (and no '/', by construction)
)

// scan checks s byte by byte for UTF-8 well-formedness, U+0000 and wildcard
// placement according to mode. It does not allocate.
func scan(s string, mode int) problem {
	n := len(s)
	for i := 0; i < n; {
		c := s[i]
		if c >= utf8.RuneSelf {
			// [v5 MQTT-1.5.4-1] [v3 MQTT-1.5.3-1] well-formed UTF-8, no
			// surrogates (utf8.DecodeRuneInString rejects encoded surrogates,
			// overlong forms and values above U+10FFFF).
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return pBadUTF8
			}
			i += size
			continue
		}
		switch c {
		case 0:
			// [v5 MQTT-4.7.3-2] [v3 MQTT-4.7.3-2] [v5 MQTT-1.5.4-2] [v3 MQTT-1.5.3-2]
			return pNull
		case '+':
			switch mode {
			case modeName:
				// [v5 MQTT-4.7.0-1] [v3 MQTT-4.7.1-1] [v5 MQTT-3.3.2-2] [v3 MQTT-3.3.2-2]
				return pWildcardInName
			case modeShareName:
				// [v5 MQTT-4.8.2-2]
				return pShareNameWildcard
			}
			// [v5 MQTT-4.7.1-2] [v3 MQTT-4.7.1-3] '+' occupies a whole level.
			if (i > 0 && s[i-1] != '/') || (i+1 < n && s[i+1] != '/') {
				return pPlusPlacement
			}
		case '#':
			switch mode {
			case modeName:
				// [v5 MQTT-4.7.0-1] [v3 MQTT-4.7.1-1] [v5 MQTT-3.3.2-2] [v3 MQTT-3.3.2-2]
				return pWildcardInName
			case modeShareName:
				// [v5 MQTT-4.8.2-2]
				return pShareNameWildcard
			}
			// [v5 MQTT-4.7.1-1] [v3 MQTT-4.7.1-2] '#' alone in the last level.
			if (i > 0 && s[i-1] != '/') || i+1 != n {
				return pHashPlacement
			}
		}
		i++
	}
	return pNone
}

// checkLen applies the length rules shared by names and filters.
func checkLen(s string) problem {
	if len(s) == 0 {
		// [v5 MQTT-4.7.3-1] [v3 MQTT-4.7.3-1]
		return pEmpty
	}
	if len(s) > MaxLen {
		// [v5 MQTT-4.7.3-3] [v3 MQTT-4.7.3-3]
		return pTooLong
	}
	return pNone
}

// ValidateName reports whether name is a valid topic name, as carried by a
// PUBLISH packet or a will message: 1 to [MaxLen] bytes of well-formed UTF-8
// without U+0000 and without the wildcard characters '+' and '#'. Empty
// levels ("a//b", "/a", "a/") are valid, and so are names beginning with
// '$'. The error, if any, is an *[Error] wrapping one of ErrEmpty,
// ErrTooLong, ErrInvalidUTF8 or ErrWildcardInName. ValidateName does not
// allocate unless it fails.
func ValidateName(name string) error {
	if p := checkLen(name); p != pNone {
		return p.error(name, false)
	}
	if p := scan(name, modeName); p != pNone {
		return p.error(name, false)
	}
	return nil
}

// ValidateFilter reports whether filter is a valid topic filter, as carried
// by SUBSCRIBE and UNSUBSCRIBE: 1 to [MaxLen] bytes of well-formed UTF-8
// without U+0000, where '+' occupies a whole level and '#' occupies the
// whole last level. A filter beginning with [SharePrefix] ("$share/") must
// also be a valid shared subscription; see [ParseShare].
//
// The error, if any, is an *[Error] wrapping one of ErrEmpty, ErrTooLong,
// ErrInvalidUTF8, ErrBadWildcard or ErrBadShare. ValidateFilter does not
// allocate unless it fails.
func ValidateFilter(filter string) error {
	_, _, _, err := ParseShare(filter)
	return err
}

// IsShared reports whether filter is a shared subscription filter, that is
// whether it begins with "$share/". It does not validate it: use
// [ParseShare] or [ValidateFilter] for that. "$share" alone and
// "$sharefoo/x" are ordinary filters.
func IsShared(filter string) bool {
	// [v5 MQTT-4.8.2-1] the "$share/" prefix identifies a shared subscription.
	return strings.HasPrefix(filter, SharePrefix)
}

// ParseShare validates filter like [ValidateFilter] and splits a shared
// subscription filter "$share/{ShareName}/{inner}" into its ShareName
// (group) and inner topic filter. shared reports whether filter begins with
// "$share/".
//
// For a filter that is not shared, ParseShare returns group "", inner equal
// to filter and shared false, so the result inner is always the filter to
// match topic names against. On error, group and inner are "" and shared
// tells whether the filter was taken as a shared subscription.
//
// The ShareName must be at least one character and contain no '/', '+' or
// '#'; it must be followed by '/' and a non-empty topic filter, which is
// validated as an ordinary (non-shared) filter. So "$share/g/#" is valid
// with inner "#", while "$share/g", "$share/g/", "$share//a" and
// "$share/a+b/x" are not. An inner filter that itself begins with
// "$share/" is not parsed again: "$share/g/$share/h/x" has group "g" and
// inner "$share/h/x", an ordinary filter.
//
// Shared subscriptions are an MQTT 5.0 feature; ParseShare applies the 5.0
// rules whatever the protocol version, as most brokers do. ParseShare does
// not allocate unless it fails.
func ParseShare(filter string) (group, inner string, shared bool, err error) {
	if p := checkLen(filter); p != pNone {
		return "", "", false, p.error(filter, true)
	}
	if !IsShared(filter) {
		if p := scan(filter, modeFilter); p != pNone {
			return "", "", false, p.error(filter, true)
		}
		return "", filter, false, nil
	}
	rest := filter[len(SharePrefix):]
	slash := strings.IndexByte(rest, '/')
	group = rest
	if slash >= 0 {
		group = rest[:slash]
	}
	if group == "" {
		// [v5 MQTT-4.8.2-1] ShareName is at least one character.
		return "", "", true, pShareNameEmpty.error(filter, true)
	}
	// [v5 MQTT-4.8.2-2] ShareName has no '+' or '#' ('/' ends it).
	if p := scan(group, modeShareName); p != pNone {
		return "", "", true, p.error(filter, true)
	}
	if slash < 0 {
		// [v5 MQTT-4.8.2-2] ShareName is followed by '/' and a filter.
		return "", "", true, pShareNoFilter.error(filter, true)
	}
	inner = rest[slash+1:]
	if inner == "" {
		// [v5 MQTT-4.8.2-2] [v5 MQTT-4.7.3-1] the inner filter is not empty.
		return "", "", true, pShareEmptyFilter.error(filter, true)
	}
	if p := scan(inner, modeFilter); p != pNone {
		return "", "", true, p.error(filter, true)
	}
	return group, inner, true, nil
}
