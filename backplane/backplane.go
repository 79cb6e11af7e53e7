package backplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/topic"
)

var (
	// ErrUnreachable wraps every error caused by the engine being out of
	// reach (a partition, the engine down or restarting). A broker that gets
	// it from Forward must not acknowledge a QoS 1 or 2 message.
	ErrUnreachable = errors.New("backplane: engine unreachable")
	// ErrClosed is returned by the methods of a Node after Close.
	ErrClosed = errors.New("backplane: node closed")
	// ErrNotSubscribed is returned by Unsubscribe for a filter the node has
	// no interest in.
	ErrNotSubscribed = errors.New("backplane: no interest in filter")
)

// Unreachable wraps err (the engine's own error) so that it matches
// ErrUnreachable and still says what went wrong.
func Unreachable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnreachable, op, err)
}

// Group is one shared subscription group: the subscriptions
// "$share/{Name}/{Filter}" of every node. Each matching message goes to one
// member of the group, cluster-wide [v5 MQTT-4.8.2-3].
type Group struct {
	Name   string // the ShareName
	Filter string // the inner topic filter
}

// String returns the group's subscription filter, "$share/Name/Filter".
func (g Group) String() string { return topic.SharePrefix + g.Name + "/" + g.Filter }

// Delivery is a message forwarded to this node.
type Delivery struct {
	// Message is the message as published; it is shared and must not be
	// changed.
	Message *message.Message
	// Node is the node it was published on (for a will: the node that died).
	Node string
	// Plain asks the receiving node to deliver the message to each of its
	// local non-shared subscriptions that match Message.Topic.
	Plain bool
	// Groups are the shared groups this node was picked for: it delivers the
	// message to one local member of each.
	Groups []Group
	// Will is set for a will message published because Node died.
	Will bool
	// Mark is the delivery's place in this node's durable queue on the
	// engine; zero for a delivery that did not come through it. Marks
	// increase in delivery order. The engine acknowledges a delivery once
	// OnMessage returned, and delivers it again (same Mark) if the node
	// died before that: a broker with a durable store keeps the last Mark
	// it stored, in the same write as the message, and skips deliveries
	// at or below it after a restart, which makes forwarding exactly once
	// end to end.
	Mark Mark
}

// Mark is a position in a node's durable queue on the engine: Redis stream
// ids (milliseconds, sequence) or a JetStream stream sequence (0, seq).
type Mark struct{ Hi, Lo uint64 }

// IsZero reports whether m is the zero Mark (no durable queue).
func (m Mark) IsZero() bool { return m == Mark{} }

// After reports whether m comes after o.
func (m Mark) After(o Mark) bool { return m.Hi > o.Hi || m.Hi == o.Hi && m.Lo > o.Lo }

// String returns m as "Hi-Lo".
func (m Mark) String() string { return fmt.Sprintf("%d-%d", m.Hi, m.Lo) }

// ParseMark parses the form String returns.
func ParseMark(s string) (Mark, error) {
	var m Mark
	if _, err := fmt.Sscanf(s, "%d-%d", &m.Hi, &m.Lo); err != nil {
		return Mark{}, fmt.Errorf("backplane: mark %q: want two numbers joined by '-': %w", s, err)
	}
	return m, nil
}

// Takeover tells a node that a client it owned connected elsewhere: the node
// closes its connection to the client (DISCONNECT 0x8E for MQTT 5)
// [v5 MQTT-3.1.4-3].
type Takeover struct {
	ClientID string
	By       string // the node that claimed the client
}

// NodeGone is a node found dead, and the client ids it owned.
type NodeGone struct {
	Node      string
	ClientIDs []string
}

// Adopter is an optional capability of a Node: claiming a client id only
// from a given owner, so that a node adopting the sessions of a dead node
// does not take a client that has reconnected elsewhere meanwhile.
type Adopter interface {
	// ClaimFrom makes this node the owner of clientID if from owns it (or
	// nobody does), and reports whether it did. Nobody is told.
	ClaimFrom(ctx context.Context, clientID, from string) (bool, error)
}

// Interest announces and withdraws the node's interest in topic filters.
// Calls are reference-counted per node: n Subscribe calls for a filter need n
// Unsubscribe calls before the node stops receiving messages for it. A filter
// "$share/{g}/{f}" makes the node a member of group (g, f).
type Interest interface {
	Subscribe(ctx context.Context, filter string) error
	Unsubscribe(ctx context.Context, filter string) error
}

// Forwarder forwards a message published on this node to every other node
// with matching non-shared interest, and to one node per matching shared
// group (which may be this node: that delivery comes back through
// OnMessage). It returns once the engine has taken the message; an error
// wrapping ErrUnreachable means it did not.
type Forwarder interface {
	Forward(ctx context.Context, m *message.Message) error
}

// BatchForwarder is what an engine may add to Forwarder: ForwardBatch
// forwards ms, messages published on this node, as Forward would each
// one, and reaches each node's queue with them in the order of ms (a
// broker hands it the messages of one connection, whose order it must
// keep). It returns one error per message, nil where the engine took the
// message, or a nil slice when it took them all: a failure refuses only
// the messages it names. An engine sends the batch in one round trip
// where it can (Redis: one pipeline; NATS: all the publishes, then all
// the acknowledgements). Safe for concurrent use, as Forward; batches
// of concurrent calls may interleave on the engine, each in its order.
// A Node without it is called with Forward, one message after the other.
type BatchForwarder interface {
	ForwardBatch(ctx context.Context, ms []*message.Message) []error
}

// ForwardAll forwards ms through f in order: with ForwardBatch when f
// has it, else with one Forward after the other. It returns one error
// per message, or nil when every message was taken.
func ForwardAll(ctx context.Context, f Forwarder, ms []*message.Message) []error {
	if bf, ok := f.(BatchForwarder); ok {
		return bf.ForwardBatch(ctx, ms)
	}
	var errs []error
	for i, m := range ms {
		if err := f.Forward(ctx, m); err != nil {
			if errs == nil {
				errs = make([]error, len(ms))
			}
			errs[i] = err
		}
	}
	return errs
}

// Retained holds the retained messages of the whole topic space.
type Retained interface {
	// SetRetained stores m as the retained message of m.Topic, replacing the
	// previous one [v5 MQTT-3.3.1-5]; an empty payload deletes it instead
	// and is never stored [v5 MQTT-3.3.1-6] [v5 MQTT-3.3.1-7].
	SetRetained(ctx context.Context, m *message.Message) error
	// DeleteRetained deletes the retained message of a topic name.
	DeleteRetained(ctx context.Context, name string) error
	// MatchRetained returns the retained messages whose topics match filter,
	// without those that have expired [v5 MQTT-3.3.2-5].
	MatchRetained(ctx context.Context, filter string) ([]*message.Message, error)
}

// Owner tracks which node each client identifier is connected to.
type Owner interface {
	// Claim makes this node the owner of clientID and returns the previous
	// owner ("" if none, this node's own id if it already owned it). A
	// previous owner other than this node also gets a Takeover through its
	// OnTakeover handler.
	Claim(ctx context.Context, clientID string) (previous string, err error)
	// Release gives up clientID if this node still owns it.
	Release(ctx context.Context, clientID string) error
}

// Wills keeps will messages on the engine so that they are published if this
// node dies before the client disconnects [v5 MQTT-3.1.2-8] [v3 MQTT-3.1.2-8].
type Wills interface {
	// SetWill registers (or replaces) the will of clientID. An MQTT 5 Will
	// Delay Interval goes in m.Properties.WillDelay (marked): if the node
	// dies, the engine publishes the will no earlier than the death, as the
	// engine judges it, plus the delay [v5 MQTT-3.1.2-8], and without the
	// Will Delay property. The engine cannot know whether the session ended
	// or resumed on another node meanwhile: it publishes the will once the
	// delay has passed.
	SetWill(ctx context.Context, clientID string, m *message.Message) error
	// ClearWill removes it: the client disconnected normally, or the node
	// published the will itself.
	ClearWill(ctx context.Context, clientID string) error
}

// Node is one broker's membership of a back plane.
type Node interface {
	// ID is the node's name, unique in the cluster.
	ID() string
	Interest
	Forwarder
	Retained
	Owner
	Wills
	// Close leaves the back plane: interest withdrawn, client ids released,
	// wills cleared (a node that closes is not a node that dies).
	Close(ctx context.Context) error
}

// Config configures a Node. The zero value works: a random ID, handlers that
// drop what they get, a 5 second lease.
type Config struct {
	// ID names the node; it must be unique among the live nodes and may hold
	// no '/', whitespace or control characters. Default: "node-" and 8
	// random hex digits.
	ID string
	// OnMessage receives messages forwarded to this node. Handlers are called
	// in arrival order on one goroutine per node; ctx ends when the node
	// closes. They should not block for long.
	OnMessage func(ctx context.Context, d Delivery)
	// OnBatch, if set, receives the deliveries an engine reads from the
	// node's durable queue in batches (in order, on the same goroutine as
	// OnMessage), so that a broker can keep a batch with one durable
	// write; the engine acknowledges them all once it returns. Without
	// it, or for deliveries that do not come from the queue, OnMessage is
	// called for each.
	OnBatch func(ctx context.Context, ds []Delivery)
	// OnTakeover is told when another node claimed a client this node owns.
	OnTakeover func(ctx context.Context, t Takeover)
	// OnNodeGone, if set, is told on one surviving node (the one that
	// found the death, which also publishes its wills) that a node died,
	// with the client ids it owned then, so that this node can adopt their
	// sessions (with ClaimFrom, see Adopter). A node that finds it was
	// itself taken for dead (cut off longer than its Lease) is told too,
	// with its own ID and no client ids: what it owned may be another
	// node's now. Engines that cannot tell never call it.
	OnNodeGone func(ctx context.Context, g NodeGone)
	// Lease is how long the engine waits without a heartbeat from the node
	// before it deems the node dead and publishes its wills. The node
	// heartbeats every Lease/3. Default 5s.
	Lease time.Duration
	// Keep is how long the engine keeps the interest and the durable queue
	// of a node that died (its lease lapsed without Close), so that it gets
	// what was forwarded to it meanwhile when it joins again under the
	// same ID. After Keep it is forgotten, as after Close. Default 1 hour.
	Keep time.Duration
	// Logger receives the node's reports (engine lost, engine back, a dead
	// node's wills published). Default: slog.Default().
	Logger *slog.Logger
}

// DefaultLease is the Lease of a zero Config.
const DefaultLease = 5 * time.Second

// DefaultKeep is the Keep of a zero Config.
const DefaultKeep = time.Hour

// Validate reports what is wrong with c, naming the field.
func (c *Config) Validate() error {
	if c.ID != "" {
		if err := ValidateID(c.ID); err != nil {
			return err
		}
	}
	if c.Lease < 0 {
		return fmt.Errorf("backplane: Config.Lease %v is negative: use 0 for the default %v", c.Lease, DefaultLease)
	}
	if c.Keep < 0 {
		return fmt.Errorf("backplane: Config.Keep %v is negative: use 0 for the default %v", c.Keep, DefaultKeep)
	}
	if c.Lease > 0 && c.Lease < 30*time.Millisecond {
		return fmt.Errorf("backplane: Config.Lease %v is too short: use at least 30ms", c.Lease)
	}
	return nil
}

// ValidateID reports whether id can name a node.
func ValidateID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("backplane: node ID %q: use 1 to 200 characters", id)
	}
	if strings.ContainsFunc(id, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '/' || r == '{' || r == '}' || r == '*' || r == '>' || r == '.'
	}) {
		return fmt.Errorf("backplane: node ID %q: use no spaces, control characters or any of / { } * > .", id)
	}
	return nil
}

// WithDefaults validates c and returns it with its defaults filled in.
func (c Config) WithDefaults() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, err
	}
	if c.ID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.ID = "node-" + hex.EncodeToString(b[:])
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.OnMessage == nil {
		c.OnMessage = func(context.Context, Delivery) {}
	}
	if c.OnTakeover == nil {
		c.OnTakeover = func(context.Context, Takeover) {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// ParseFilter validates a filter given to Subscribe or Unsubscribe and splits
// a shared one into its group.
func ParseFilter(filter string) (g Group, shared bool, err error) {
	name, inner, shared, err := topic.ParseShare(filter)
	if err != nil {
		return Group{}, false, fmt.Errorf("backplane: filter: %w", err)
	}
	return Group{Name: name, Filter: inner}, shared, nil
}
