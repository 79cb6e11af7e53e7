package proxy

import (
	"strings"

	"github.com/ternmq/tern/topic"
)

// Relations between two topic filters, for checking a SUBSCRIBE's filter
// against allow and deny lists. Filters beginning with a wildcard match
// no topic beginning with '$' [v5 MQTT-4.7.2-1] [v3 MQTT-4.7.2-1].

// covers reports whether pattern p matches every topic name that filter
// f matches.
func covers(p, f string) bool {
	pl, fl := strings.Split(p, "/"), strings.Split(f, "/")
	for i, pv := range pl {
		dollar := i == 0 && len(fl) > 0 && strings.HasPrefix(fl[0], "$")
		if pv == "#" {
			return !dollar
		}
		if i >= len(fl) || fl[i] == "#" {
			return false
		}
		switch {
		case pv == "+":
			if dollar {
				return false
			}
		case fl[i] != pv: // f's level is "+" or another name
			return false
		}
	}
	return len(pl) == len(fl)
}

// overlaps reports whether some topic name matches both filters a and b.
func overlaps(a, b string) bool {
	al, bl := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(al) && i < len(bl); i++ {
		x, y := al[i], bl[i]
		wx, wy := x == "+" || x == "#", y == "+" || y == "#"
		if i == 0 && (wx && strings.HasPrefix(y, "$") || wy && strings.HasPrefix(x, "$")) {
			return false
		}
		if x == "#" || y == "#" {
			return true
		}
		if !wx && !wy && x != y {
			return false
		}
	}
	switch {
	case len(al) == len(bl):
		return true
	case len(al) == len(bl)+1:
		return al[len(bl)] == "#" // "a/#" matches "a"
	case len(bl) == len(al)+1:
		return bl[len(al)] == "#"
	}
	return false
}

// innerFilter is the topic filter of a shared subscription's
// "$share/group/filter", or f itself.
func innerFilter(f string) string {
	if _, inner, ok, err := topic.ParseShare(f); ok && err == nil {
		return inner
	}
	return f
}
