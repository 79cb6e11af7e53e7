package topic

import "strings"

// Match reports whether the topic filter matches the topic name, following
// MQTT 3.1.1 and 5.0 section 4.7:
//
//   - levels are separated by '/' and compared byte for byte, with no
//     normalisation [MQTT-4.7.3-4];
//   - '+' matches exactly one level, which may be empty: "sport/+" matches
//     "sport/" but not "sport";
//   - '#' matches any number of levels including none, so "sport/#" also
//     matches "sport", and "#" matches every name;
//   - a filter beginning with '+' or '#' never matches a name beginning with
//     '$' [MQTT-4.7.2-1], while "$SYS/#" matches "$SYS/broker/uptime".
//
// Match does not validate its arguments (see [ValidateFilter] and
// [ValidateName]); for invalid input it returns some result without
// panicking. It treats "$share/..." filters literally: match a shared
// subscription with the inner filter returned by [ParseShare]. Match does
// not allocate.
func Match(filter, name string) bool {
	// [v5 MQTT-4.7.2-1] [v3 MQTT-4.7.2-1] wildcard-first filters never match
	// '$' names.
	if len(name) > 0 && name[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		// Current filter level is filter[:fe], name level is name[:ne].
		fe := strings.IndexByte(filter, '/')
		flevel := filter
		if fe >= 0 {
			flevel = filter[:fe]
		}
		if flevel == "#" {
			// '#' matches this level and everything below it.
			return true
		}
		ne := strings.IndexByte(name, '/')
		nlevel := name
		if ne >= 0 {
			nlevel = name[:ne]
		}
		// [v5 MQTT-4.7.3-4] [v3 MQTT-4.7.3-4] levels compare verbatim.
		if flevel != "+" && flevel != nlevel {
			return false
		}
		switch {
		case fe < 0 && ne < 0:
			return true
		case ne < 0:
			// The name is used up; only a trailing "/#" can still match
			// ("sport/#" matches "sport").
			return filter[fe+1:] == "#"
		case fe < 0:
			return false
		}
		filter = filter[fe+1:]
		name = name[ne+1:]
	}
}
