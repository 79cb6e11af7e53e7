package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ternmq/tern/bridge"
	"github.com/ternmq/tern/packet"
)

// The bridges: section of tern broker's configuration file: a list of
// bridges (package bridge), each with a list of topic mappings. It is
// decoded here rather than by the key table of config.go, whose lists are
// one level deep (listeners[]); the errors read the same: file, line and
// the key's path, unknown keys with the key meant.
//
//	bridges:
//	  - name: cloud
//	    remote: mqtts://cloud.example:8883
//	    topics:
//	      - topic: sensors/#
//	        direction: out
//	        qos: 1

// bridgeKey is one key of a bridge or of a topic mapping.
type bridgeKey struct {
	key
	field string // the bridge.Config field its FieldErrors name: "Remote", "Topics[].QoS"
	set   func(b *bridge.Config, m *bridge.Mapping, v any)
}

var bridgeKeys = []*bridgeKey{
	{key: key{path: "name", kind: kString, doc: "the bridge's name, in $SYS/broker/bridges/<name>/ and its client ids (required)"}, field: "Name",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.Name = v.(string) }},
	{key: key{path: "remote", kind: kString, doc: "the remote broker: mqtt://, mqtts://, ws://, wss://, unix:///path (required)"}, field: "Remote",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.Remote = v.(string) }},
	{key: key{path: "client_id", kind: kString, doc: "client id on the remote (default tern-bridge-<name>-<host name>)"}, field: "ClientID",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.ClientID = v.(string) }},
	{key: key{path: "username", kind: kString}, field: "Username",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.Username = v.(string) }},
	{key: key{path: "password", kind: kString}, field: "Password",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.Password = v.(string) }},
	{key: key{path: "protocol_version", kind: kString, choices: []string{"5", "3.1.1", "3.1"}, hidden: []string{"5.0", "4", "3", "311", "31"}}, field: "Version",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) {
			b.Version = map[string]packet.Version{"5": packet.V5, "5.0": packet.V5, "3.1.1": packet.V311, "4": packet.V311, "311": packet.V311, "3.1": packet.V31, "3": packet.V31, "31": packet.V31}[v.(string)]
		}},
	{key: key{path: "clean_session", kind: kBool}, field: "CleanSession",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.CleanSession = v.(bool) }},
	{key: key{path: "session_expiry", kind: kDuration, ranged: true, min: 0, max: int64(0xFFFFFFFE * time.Second)}, field: "SessionExpiry",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.SessionExpiry = v.(time.Duration) }},
	{key: key{path: "keep_alive", kind: kDuration, ranged: true, min: 0, max: int64(65535 * time.Second)}, field: "KeepAlive",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.KeepAlive = v.(time.Duration) }},
	{key: key{path: "backoff_min", kind: kDuration, ranged: true, min: 0, max: int64(24 * time.Hour)}, field: "BackoffMin",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.BackoffMin = v.(time.Duration) }},
	{key: key{path: "backoff_max", kind: kDuration, ranged: true, min: 0, max: int64(24 * time.Hour)}, field: "BackoffMax",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.BackoffMax = v.(time.Duration) }},
	{key: key{path: "max_queued", kind: kInt, ranged: true, min: 0, max: 1 << 30}, field: "MaxQueued",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.MaxQueued = int(v.(int64)) }},
	{key: key{path: "local_username", kind: kString}, field: "LocalUsername",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.LocalUsername = v.(string) }},
	{key: key{path: "local_password", kind: kString}, field: "LocalPassword",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.LocalPassword = v.(string) }},
	{key: key{path: "tls", kind: kSection}, field: "TLS"},
	{key: key{path: "tls.ca_file", kind: kPath}, field: "TLS.CAFile",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.TLS.CAFile = v.(string) }},
	{key: key{path: "tls.cert_file", kind: kPath}, field: "TLS.CertFile",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.TLS.CertFile = v.(string) }},
	{key: key{path: "tls.key_file", kind: kPath}, field: "TLS.KeyFile",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.TLS.KeyFile = v.(string) }},
	{key: key{path: "tls.server_name", kind: kString}, field: "TLS.ServerName",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.TLS.ServerName = v.(string) }},
	{key: key{path: "tls.insecure", kind: kBool}, field: "TLS.Insecure",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.TLS.Insecure = v.(bool) }},
	{key: key{path: "tls.insecure_password", kind: kBool}, field: "TLS.InsecurePassword",
		set: func(b *bridge.Config, _ *bridge.Mapping, v any) { b.TLS.InsecurePassword = v.(bool) }},
	{key: key{path: "topics", kind: kList}, field: "Topics"},
	{key: key{path: "topics[].topic", kind: kString}, field: "Topics[].Topic",
		set: func(_ *bridge.Config, m *bridge.Mapping, v any) { m.Topic = v.(string) }},
	{key: key{path: "topics[].direction", kind: kString, choices: []string{"out", "in", "both"}}, field: "Topics[].Direction",
		set: func(_ *bridge.Config, m *bridge.Mapping, v any) { m.Direction = bridge.Direction(v.(string)) }},
	{key: key{path: "topics[].qos", kind: kInt, ranged: true, min: 0, max: 2}, field: "Topics[].QoS",
		set: func(_ *bridge.Config, m *bridge.Mapping, v any) { m.QoS = byte(v.(int64)) }},
	{key: key{path: "topics[].local_prefix", kind: kString}, field: "Topics[].LocalPrefix",
		set: func(_ *bridge.Config, m *bridge.Mapping, v any) { m.LocalPrefix = v.(string) }},
	{key: key{path: "topics[].remote_prefix", kind: kString}, field: "Topics[].RemotePrefix",
		set: func(_ *bridge.Config, m *bridge.Mapping, v any) { m.RemotePrefix = v.(string) }},
}

var (
	bridgeKeyIndex = map[string]*bridgeKey{} // by path within a bridge
	bridgeFieldKey = map[string]*bridgeKey{} // by bridge.Config field
)

func init() {
	for _, k := range bridgeKeys {
		bridgeKeyIndex[k.path] = k
		bridgeFieldKey[k.field] = k
	}
}

// decodeBridges decodes the bridges: list at n.
func (c *brokerConfig) decodeBridges(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: bridges must be a list (lines starting with \"- \"), not %s", c.file, n.Line, nodeKind(n))
	}
	c.Bridges, c.bridgeLines = nil, nil
	names := map[string]int{}
	for i, item := range n.Content {
		item = deref(item)
		at := fmt.Sprintf("bridges[%d]", i)
		if item.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: %s must be a mapping of keys (name, remote, topics, ...), not %s", c.file, item.Line, at, nodeKind(item))
		}
		var b bridge.Config
		lines := map[string]int{"": item.Line}
		if err := c.decodeBridgeMapping(item, &b, nil, "", at, "", lines); err != nil {
			return err
		}
		if first, dup := names[b.Name]; dup && b.Name != "" {
			return fmt.Errorf("%s:%d: %s.name: %q is the name of bridges[%d] already: give each bridge its own name", c.file, lines["name"], at, b.Name, first)
		}
		names[b.Name] = i
		if err := b.Validate(); err != nil {
			return c.bridgeError(i, lines, err)
		}
		c.Bridges = append(c.Bridges, b)
		c.bridgeLines = append(c.bridgeLines, lines)
	}
	return nil
}

// decodeBridgeMapping decodes the keys of one section of a bridge
// (prefix "", "tls" or "topics[]"); m is the mapping being decoded for
// topics[]. at is the concrete path for errors ("bridges[0].topics[2]"),
// within the same inside the bridge ("topics[2]"); lines records the line
// of each key, by its concrete path within the bridge.
func (c *brokerConfig) decodeBridgeMapping(n *yaml.Node, b *bridge.Config, m *bridge.Mapping, prefix, at, within string, lines map[string]int) error {
	seen := map[string]int{}
	for j := 0; j+1 < len(n.Content); j += 2 {
		kn, vn := n.Content[j], deref(n.Content[j+1])
		full := kn.Value
		if prefix != "" {
			full = prefix + "." + kn.Value
		}
		path := at + "." + kn.Value
		k := bridgeKeyIndex[full]
		if k == nil {
			return c.unknownBridgeKey(kn, prefix, at)
		}
		if first, dup := seen[kn.Value]; dup {
			return fmt.Errorf("%s:%d: %s is set twice (first on line %d)", c.file, kn.Line, path, first)
		}
		seen[kn.Value] = kn.Line
		rel := kn.Value
		if within != "" {
			rel = within + "." + kn.Value
		}
		lines[rel] = kn.Line
		if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
			continue
		}
		switch k.kind {
		case kSection:
			if vn.Kind != yaml.MappingNode {
				return fmt.Errorf("%s:%d: %s must be a mapping of keys (key: value), not %s", c.file, vn.Line, path, nodeKind(vn))
			}
			b.TLS = &bridge.TLS{}
			if err := c.decodeBridgeMapping(vn, b, m, full, path, rel, lines); err != nil {
				return err
			}
		case kList:
			if vn.Kind != yaml.SequenceNode {
				return fmt.Errorf("%s:%d: %s must be a list (lines starting with \"- \"), not %s", c.file, vn.Line, path, nodeKind(vn))
			}
			b.Topics = nil
			for ti, item := range vn.Content {
				item = deref(item)
				ip := fmt.Sprintf("%s[%d]", path, ti)
				if item.Kind != yaml.MappingNode {
					return fmt.Errorf("%s:%d: %s must be a mapping of keys (topic, direction, qos, local_prefix, remote_prefix), not %s", c.file, item.Line, ip, nodeKind(item))
				}
				tp := fmt.Sprintf("topics[%d]", ti)
				lines[tp] = item.Line
				var mp bridge.Mapping
				if err := c.decodeBridgeMapping(item, b, &mp, "topics[]", ip, tp, lines); err != nil {
					return err
				}
				b.Topics = append(b.Topics, mp)
			}
		default:
			if vn.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s:%d: %s must be a single value, not %s", c.file, vn.Line, path, nodeKind(vn))
			}
			v, err := k.parse(vn.Value)
			if err != nil {
				return fmt.Errorf("%s:%d: %s: %v", c.file, vn.Line, path, err)
			}
			if s, ok := v.(string); ok && k.kind == kPath && s != "" && !filepath.IsAbs(s) {
				v = filepath.Join(c.dir, s)
			}
			k.set(b, m, v)
		}
	}
	return nil
}

// unknownBridgeKey explains an unknown key of a bridge, with the key
// meant when it can guess it.
func (c *brokerConfig) unknownBridgeKey(kn *yaml.Node, prefix, at string) error {
	guess, best := "", 3
	for _, k := range bridgeKeys {
		if parent(k.path) != prefix {
			continue
		}
		name := strings.TrimPrefix(k.path[len(prefix):], ".")
		if d := editDistance(kn.Value, name); d < best && d < len(name)/2+1 {
			best, guess = d, name
		}
	}
	msg := fmt.Sprintf("%s:%d: unknown key %q in %s", c.file, kn.Line, kn.Value, at)
	if guess != "" {
		msg += fmt.Sprintf(" (did you mean %s.%s?)", at, guess)
	}
	return errors.New(msg + "; README.md, section Bridges, lists the keys")
}

var topicIndex = regexp.MustCompile(`^Topics\[(\d+)\]`)

// bridgeError turns a bridge.FieldError of bridges[i] into the key the
// user wrote and its line.
func (c *brokerConfig) bridgeError(i int, lines map[string]int, err error) error {
	var fe *bridge.FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("%s: bridges[%d]: %w", c.file, i, err)
	}
	field := fe.Field
	ti := -1
	if m := topicIndex.FindStringSubmatch(field); m != nil {
		ti, _ = strconv.Atoi(m[1])
		field = topicIndex.ReplaceAllString(field, "Topics[]")
	}
	rel := strings.ToLower(field)
	if k := bridgeFieldKey[field]; k != nil {
		rel = k.path
	}
	if ti >= 0 {
		rel = strings.Replace(rel, "topics[]", fmt.Sprintf("topics[%d]", ti), 1)
	}
	line := 0
	for p := rel; line == 0 && p != ""; p = parent(p) {
		line = lines[p]
	}
	if line == 0 {
		line = lines[""]
	}
	return fmt.Errorf("%s:%d: bridges[%d].%s: %v", c.file, line, i, rel, fe.Err)
}

// startBridges starts the configured bridges on the running srv. With a
// durable store (dataDir set) each keeps its client sessions in
// dataDir/bridges/<name>. On an error the bridges started are closed.
func (st *brokerSetup) startBridges(ctx context.Context, dataDir string) ([]*bridge.Bridge, error) {
	var started []*bridge.Bridge
	for i, cfg := range st.cfg.Bridges {
		cfg.Logger = st.srv.Logger
		if st.srv.SysInterval < 0 {
			cfg.SysInterval = -1
		} else {
			cfg.SysInterval = st.srv.SysInterval
		}
		if dataDir != "" {
			cfg.Dir = filepath.Join(dataDir, "bridges", cfg.Name)
			cfg.Sync = st.cfg.Store.Sync == "always"
		}
		b, err := bridge.Start(ctx, st.srv, cfg)
		if err != nil {
			closeBridges(started)
			var fe *bridge.FieldError
			if errors.As(err, &fe) {
				return nil, st.cfg.bridgeError(i, st.cfg.bridgeLines[i], err)
			}
			return nil, fmt.Errorf("bridges[%d] (%s): %w", i, cfg.Name, err)
		}
		st.srv.Logger.Info("bridge started", "bridge", cfg.Name, "remote", cfg.Remote, "topics", len(cfg.Topics), "dir", cfg.Dir)
		started = append(started, b)
	}
	return started, nil
}

// closeBridges stops the bridges, each within 10 seconds.
func closeBridges(bs []*bridge.Bridge) {
	for _, b := range bs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b.Close(ctx)
		cancel()
	}
}
