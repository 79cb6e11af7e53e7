package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"regexp"
	"strings"

	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
	"github.com/ternmq/tern/transport"
)

// Rules are allow and deny lists of topic filters ("+" and "#" allowed).
// A topic is allowed when it matches no Deny filter and, if Allow is not
// empty, matches an Allow filter.
type Rules struct {
	Allow []string
	Deny  []string
}

// Validate checks every filter's syntax.
func (r Rules) Validate() error {
	for _, l := range []struct {
		name string
		fs   []string
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		for i, f := range l.fs {
			if err := topic.ValidateFilter(f); err != nil {
				return fmt.Errorf("%s[%d] %q: %v", l.name, i, f, err)
			}
		}
	}
	return nil
}

// Allows reports whether the rules allow the topic name t.
func (r Rules) Allows(t string) bool {
	for _, d := range r.Deny {
		if topic.Match(d, t) {
			return false
		}
	}
	if len(r.Allow) == 0 {
		return true
	}
	for _, a := range r.Allow {
		if topic.Match(a, t) {
			return true
		}
	}
	return false
}

// allowsFilter reports whether a subscription to filter f may be made:
// not when a Deny filter covers every topic f matches, nor when Allow is
// set and no topic f matches is allowed. A filter that is allowed but
// also matches denied topics is made: the messages on those topics are
// then dropped one by one on their way down.
func (r Rules) allowsFilter(f string) bool {
	f = innerFilter(f)
	for _, d := range r.Deny {
		if covers(d, f) {
			return false
		}
	}
	if len(r.Allow) == 0 {
		return true
	}
	for _, a := range r.Allow {
		if overlaps(a, f) {
			return true
		}
	}
	return false
}

// TopicFilter is the allow and deny lists of topics, per direction.
//
// A PUBLISH from the client on a topic Up does not allow is dropped: QoS
// 1 and 2 ones are answered by the proxy with Code (MQTT 5; a 3.1.1
// client just gets its PUBACK or PUBREC, as from a broker that drops the
// message), so the client's session stays right.
//
// A SUBSCRIBE filter that Down does not allow at all is refused by the
// proxy: the client's SUBACK has Code there (0x80 Failure in 3.1.1) and
// the filter is not forwarded, while the SUBSCRIBE's other filters are.
// A PUBLISH from the upstream on a topic Down does not allow (a
// wildcard subscription reaching into a denied subtree) is not delivered;
// the proxy acknowledges it upstream, as a client would.
type TopicFilter struct {
	Up   Rules
	Down Rules
	// Code is the MQTT 5 reason code of a refusal; default 0x87 Not
	// authorized.
	Code packet.ReasonCode
}

// Validate checks both lists.
func (f *TopicFilter) Validate() error {
	if err := f.Up.Validate(); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if err := f.Down.Validate(); err != nil {
		return fmt.Errorf("down: %w", err)
	}
	return nil
}

func (f *TopicFilter) code() packet.ReasonCode {
	if f.Code == 0 {
		return packet.NotAuthorized
	}
	return f.Code
}

// Filter implements Filter.
func (f *TopicFilter) Filter(_ context.Context, _ *Conn, d Direction, p packet.Packet) Verdict {
	switch p := p.(type) {
	case *packet.Publish:
		rules := f.Up
		if d == Down {
			rules = f.Down
		}
		if !rules.Allows(p.Topic) {
			if d == Down {
				return DropWith(packet.Success, "topic "+p.Topic+" not allowed down")
			}
			return DropWith(f.code(), "topic "+p.Topic+" not allowed up")
		}
	case *packet.Subscribe:
		var refused []packet.ReasonCode
		for i, s := range p.Subscriptions {
			if !f.Down.allowsFilter(s.Filter) {
				if refused == nil {
					refused = make([]packet.ReasonCode, len(p.Subscriptions))
				}
				refused[i] = f.code()
			}
		}
		if refused != nil {
			return Verdict{Refused: refused, Reason: "topic filter not allowed"}
		}
	}
	return Forward()
}

// Rewrite rewrites the client identifier and the user name of every
// CONNECT from templates, in which {client_id}, {username}, {cert_cn}
// (the common name of a verified TLS client certificate) and {remote_ip}
// stand for the client's own. An empty template keeps the value. An
// empty client identifier is kept empty, so that the broker assigns one.
type Rewrite struct {
	ClientID string
	Username string
}

var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

var placeholders = map[string]bool{"{client_id}": true, "{username}": true, "{cert_cn}": true, "{remote_ip}": true}

// Validate checks the templates' placeholders.
func (r *Rewrite) Validate() error {
	for _, t := range []struct{ name, tmpl string }{{"client_id", r.ClientID}, {"username", r.Username}} {
		for _, ph := range placeholder.FindAllString(t.tmpl, -1) {
			if !placeholders[ph] {
				return fmt.Errorf("%s template %q: unknown placeholder %s: use {client_id}, {username}, {cert_cn} or {remote_ip}", t.name, t.tmpl, ph)
			}
		}
		if strings.Count(t.tmpl, "{") != strings.Count(t.tmpl, "}") {
			return fmt.Errorf("%s template %q: unbalanced braces", t.name, t.tmpl)
		}
	}
	return nil
}

// Filter implements Filter.
func (r *Rewrite) Filter(_ context.Context, c *Conn, d Direction, p packet.Packet) Verdict {
	cp, ok := p.(*packet.Connect)
	if !ok || d != Up {
		return Forward()
	}
	cn, _ := transport.PeerCommonName(c.NetConn())
	ip := ""
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP.String()
	} else if h, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		ip = h
	}
	rep := strings.NewReplacer("{client_id}", cp.ClientID, "{username}", cp.Username, "{cert_cn}", cn, "{remote_ip}", ip)
	if r.ClientID != "" && cp.ClientID != "" {
		cp.ClientID = rep.Replace(r.ClientID)
	}
	if r.Username != "" {
		u := rep.Replace(r.Username)
		cp.Username = u
		// A password needs a user name in 3.1.1 [v3 MQTT-3.1.2-22].
		cp.UsernameFlag = u != "" || cp.HasPassword()
	}
	return Forward()
}

// Policy is what RateLimit does with a client over its limit.
type Policy uint8

const (
	// Delay holds the client's PUBLISH back until it is within the limit:
	// the proxy stops reading the client meanwhile (backpressure).
	Delay Policy = iota
	// Disconnect closes the connection with 0x96 Message rate too high.
	Disconnect
)

// RateLimit bounds the PUBLISHes each client sends, with token buckets
// per connection: Messages per second and Bytes (topic and payload) per
// second, each allowing bursts of one second's worth (at least one
// message). Zero turns a limit off.
type RateLimit struct {
	Messages float64
	Bytes    float64
	Policy   Policy

	// For tests: the clock and the wait (nil: time.Now and a timer).
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool
}

type buckets struct {
	msgs, bytes float64 // tokens; may be negative (debt) under Delay
	last        time.Time
}

// Validate checks the rates.
func (r *RateLimit) Validate() error {
	if r.Messages < 0 || math.IsNaN(r.Messages) || math.IsInf(r.Messages, 0) {
		return fmt.Errorf("messages per second %v: give a positive number, or 0 for no limit", r.Messages)
	}
	if r.Bytes < 0 || math.IsNaN(r.Bytes) || math.IsInf(r.Bytes, 0) {
		return fmt.Errorf("bytes per second %v: give a positive number, or 0 for no limit", r.Bytes)
	}
	return nil
}

// Filter implements Filter.
func (r *RateLimit) Filter(ctx context.Context, c *Conn, d Direction, p packet.Packet) Verdict {
	pub, ok := p.(*packet.Publish)
	if !ok || d != Up || (r.Messages <= 0 && r.Bytes <= 0) {
		return Forward()
	}
	clock := r.now
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	v, _ := c.Load(r)
	b, _ := v.(*buckets)
	if b == nil {
		b = &buckets{msgs: max(r.Messages, 1), bytes: r.Bytes, last: now}
		c.Store(r, b)
	}
	el := now.Sub(b.last).Seconds()
	b.last = now
	size := float64(len(pub.Topic) + len(pub.Payload))
	var wait float64
	if r.Messages > 0 {
		b.msgs = min(b.msgs+el*r.Messages, max(r.Messages, 1))
		if b.msgs < 1 {
			wait = (1 - b.msgs) / r.Messages
		}
	}
	if r.Bytes > 0 {
		b.bytes = min(b.bytes+el*r.Bytes, r.Bytes)
		if b.bytes < size && b.bytes < r.Bytes { // a message larger than a second's worth waits for a full bucket
			wait = max(wait, (min(size, r.Bytes)-b.bytes)/r.Bytes)
		}
	}
	if wait > 0 && r.Policy == Disconnect {
		return CloseWith(packet.MessageRateTooHigh, fmt.Sprintf("over the rate limit (%g msg/s, %g B/s)", r.Messages, r.Bytes))
	}
	if r.Messages > 0 {
		b.msgs--
	}
	if r.Bytes > 0 {
		b.bytes -= size
	}
	if wait > 0 {
		c.Flush(Up) // what came before is not held back
		sleep := r.sleep
		if sleep == nil {
			sleep = sleepCtx
		}
		if !sleep(ctx, time.Duration(wait*float64(time.Second))) {
			return Verdict{Action: Drop, Reason: "connection ended while delayed"}
		}
		b.last = clock()
		// the tokens earned while waiting paid the debt
		if r.Messages > 0 {
			b.msgs = max(b.msgs+wait*r.Messages, 0)
		}
		if r.Bytes > 0 {
			b.bytes = max(b.bytes+wait*r.Bytes, 0)
		}
	}
	return Forward()
}

// sleepCtx waits for d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// PacketLog logs every packet that crosses the proxy, with its direction,
// at Level (default Info) on Logger (default the connection's logger,
// which names the connection, the client's address and its identifier).
// Payloads are not logged, only their size.
type PacketLog struct {
	Logger *slog.Logger
	Level  slog.Level
}

// Filter implements Filter.
func (l *PacketLog) Filter(ctx context.Context, c *Conn, d Direction, p packet.Packet) Verdict {
	log := l.Logger
	if log == nil {
		log = c.Logger()
	} else {
		log = log.With("conn", c.ID())
	}
	if !log.Enabled(ctx, l.Level) {
		return Forward()
	}
	log.Log(ctx, l.Level, "packet", "dir", d.String(), "packet", describe(p))
	return Forward()
}

// describe renders p for the packet log, without payloads or passwords.
func describe(p packet.Packet) string {
	switch p := p.(type) {
	case *packet.Publish:
		return fmt.Sprintf("PUBLISH topic=%q qos=%d retain=%v dup=%v id=%d payload=%dB", p.Topic, p.QoS, p.Retain, p.Dup, p.PacketID, len(p.Payload))
	case *packet.Connect:
		return fmt.Sprintf("CONNECT version=%s client_id=%q username=%q clean=%v keepalive=%d will=%v", p.Version, p.ClientID, p.Username, p.CleanStart, p.KeepAlive, p.Will != nil)
	}
	return p.String()
}

var (
	_ Filter = (*TopicFilter)(nil)
	_ Filter = (*Rewrite)(nil)
	_ Filter = (*RateLimit)(nil)
	_ Filter = (*PacketLog)(nil)
)
