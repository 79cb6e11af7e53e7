package topic

import "strings"

// naiveMatch is the reference matcher: split both on '/' and compare level
// by level.
func naiveMatch(filter, name string) bool {
	return naiveMatchLevels(strings.Split(filter, "/"), strings.Split(name, "/"))
}

func naiveMatchLevels(f, n []string) bool {
	if strings.HasPrefix(n[0], "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(n) {
			return false
		}
		if fl != "+" && fl != n[i] {
			return false
		}
	}
	return len(f) == len(n)
}
