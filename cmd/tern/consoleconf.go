package main

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/ternmq/tern/console"
)

// effective is the configuration in force, for the web console: every
// key with a value, as nested maps and lists by the keys' YAML paths
// (listeners as a list), with its secrets hidden: the files of
// passwords, keys and tokens, and the password of the cluster's URL.
// The console hides again what console.Redact finds.
func (c *brokerConfig) effective() any {
	root := map[string]any{}
	var listeners []any
	for range c.Listeners {
		listeners = append(listeners, map[string]any{})
	}
	if len(listeners) > 0 {
		root["listeners"] = listeners
	}
	for _, k := range keys {
		if k.ptr == nil || k.kind == kSection || k.kind == kList {
			continue
		}
		if rest, ok := strings.CutPrefix(k.path, "listeners[]."); ok {
			for i, l := range c.Listeners {
				if strings.HasPrefix(rest, "tls.") && l.TLS == nil {
					continue
				}
				put(listeners[i].(map[string]any), rest, c.value(k, i))
			}
			continue
		}
		put(root, k.path, c.value(k, 0))
	}
	if c.file != "" {
		root["config_file"] = c.abs
	}
	red, err := console.Redact(root)
	if err != nil { // maps of strings, numbers and booleans always encode
		return map[string]any{"error": err.Error()}
	}
	return red
}

// value is the value of k (of listener i), as the file spells it, with a
// secret hidden.
func (c *brokerConfig) value(k *key, i int) any {
	var v any
	switch p := k.ptr(c, i).(type) {
	case *string:
		v = *p
	case *bool:
		v = *p
	case *int:
		v = *p
	case *uint32:
		v = *p
	case *uint16:
		v = *p
	case *time.Duration:
		v = p.String()
	default:
		v = fmt.Sprint(reflect.ValueOf(p).Elem().Interface()) // a type with a String method: its name
	}
	if s, ok := v.(string); ok && s != "" && secretKey(k.path) {
		return console.Hidden
	}
	return v
}

// secretKey says whether the value of a key is a secret the console must
// not show, even as a file name.
func secretKey(path string) bool {
	switch path {
	case "auth.password_file", "http.tokens_file", "listeners[].tls.key_file":
		return true
	}
	return false
}

// put sets path ("a.b.c") in m, making the maps on the way.
func put(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}
