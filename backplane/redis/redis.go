// Package redis is a back plane on Redis (github.com/redis/go-redis/v9): a
// single Redis server or a Redis Cluster.
//
// # How it uses Redis
//
// Every node keeps, in memory, the interest of every node (a topic trie),
// loaded from Redis when it joins and kept current by an events channel. A
// message published on a node is added (XADD, MAXLEN ~ QueueLen) to the
// stream of each node whose interest matches, and of one member node per
// matching shared group; a node without matching interest gets nothing.
// Each node reads its own stream through a consumer group and acknowledges
// (XACK, and XDEL to free them) entries once its handlers returned. The stream and the node's
// control channel (takeover notices, sharded pub/sub) live on the cluster
// shard of the node's hash tag.
//
// Keys, for the default Prefix "tern" (P) and a node N; the part in braces
// is the hash tag that places keys on one shard where they must meet:
//
//	P:{P}:members           SET of live node ids
//	P:{P}:events            channel: interest changes, node resets and deaths
//	P:{P:n:N}:alive         the node's lease (PX Lease, renewed every Lease/3)
//	P:{P:n:N}:interest      SET of the node's filters
//	P:{P:n:N}:wills         HASH client id → will (a wire frame)
//	P:{P:n:N}:owned         SET of the client ids the node claimed (for OnNodeGone)
//	P:{P:n:N}:in            the node's channel for takeover notices (SPUBLISH)
//	P:{P:n:N}:q             STREAM: messages forwarded to the node, group "g"
//	P:{P:n:N}:gone          when the node was found dead (ms, server time)
//	P:{P:r:K}:retained      HASH topic → message, K = FNV-1a(first level) mod 64
//	P:owner:CLIENTID        STRING: the node that owns the client id
//
// A node whose lease lapses is dead: the first node to notice takes its
// wills with one script on the node's shard (so exactly one node gets them)
// and publishes them. Its interest and stream stay for Config.Keep, so that
// messages for it keep going to its stream; a node that joins again under
// the same ID (after its lease lapsed) reads them. After Keep it is
// forgotten. A node that finds it is no longer a member (Redis restarted
// empty) announces its interest and wills again, and reloads everyone's.
//
// # Guarantees
//
// Forward returns once Redis has added the message to the stream of every
// node with matching interest (as that node was known to the publishing
// node), for every QoS: the message is then as durable as Redis's own
// persistence makes it (appendonly with appendfsync always survives a
// Redis crash; the default, everysec, may lose the last second; without
// persistence a Redis restart loses the streams).
//
// A receiving node acknowledges an entry (XACK) only after OnMessage
// returned for it. If the node dies or is cut off before that, the entry
// stays pending and is delivered again when the node, or its next
// incarnation under the same ID, reads its stream again: at least once,
// with the same Delivery.Mark (the entry id), so a broker that stores
// marks delivers exactly once. A node that is down or partitioned gets,
// when it comes back within Keep, what was forwarded to it meanwhile, in
// order per publishing node. Limits: a stream keeps the last QueueLen
// entries (about; a node away longer loses the oldest); interest announced
// on one node reaches the others asynchronously (a message published
// before a new subscription was known there is not forwarded for it);
// after a clean Close the node's stream is deleted.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/internal/delay"
	"github.com/ternmq/tern/backplane/internal/route"
	"github.com/ternmq/tern/backplane/internal/wire"
	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/topic"
)

// retainedShards is how many hashes hold the retained messages.
const retainedShards = 64

// inboxSize bounds the queue between the node's channel and its handlers.
const inboxSize = 4096

// publishTimeout bounds the publication of a dead node's delayed will.
const publishTimeout = 5 * time.Second

// Config configures Join.
type Config struct {
	backplane.Config
	// Prefix starts every key and channel; nodes with the same Prefix on
	// the same Redis form one cluster. Default "tern". No braces, spaces or
	// control characters.
	Prefix string
	// QueueLen bounds each node's stream (XADD MAXLEN ~): a node that
	// stays away longer than it takes to forward QueueLen messages to it
	// loses the oldest. Default DefaultQueueLen.
	QueueLen int64
}

// Node is a member of a Redis back plane. It implements backplane.Node.
type Node struct {
	rdb    goredis.UniversalClient
	cfg    backplane.Config
	log    *slog.Logger
	p      string // prefix
	inc    uint64
	seq    atomic.Uint64
	local  route.Local
	table  route.Table
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	inbox  chan func(context.Context)
	qlen   int64

	joinedAt time.Time
	settled  atomic.Bool // the interest found at the join was replaced

	in, events *goredis.PubSub

	syncMu     sync.Mutex // serializes event application and reloads
	interestMu sync.Mutex // serializes Subscribe and Unsubscribe
	needResync atomic.Bool
	down       atomic.Bool
	closed     atomic.Bool
	later      delay.Queue // dead nodes' wills waiting for their Will Delay

	mu    sync.Mutex
	wills map[string]*message.Message // this node's wills, to register again
	owned map[string]struct{}         // client ids claimed and not released
}

var _ backplane.Node = (*Node)(nil)

func (n *Node) kMembers() string          { return n.p + ":{" + n.p + "}:members" }
func (n *Node) kEvents() string           { return n.p + ":{" + n.p + "}:events" }
func (n *Node) kNode(id, s string) string { return n.p + ":{" + n.p + ":n:" + id + "}:" + s }
func (n *Node) kOwner(cid string) string  { return n.p + ":owner:" + cid }
func (n *Node) kRetained(name string) string {
	first, _, _ := strings.Cut(name, "/")
	h := fnv.New32a()
	h.Write([]byte(first))
	return n.kShard(int(h.Sum32() % retainedShards))
}
func (n *Node) kShard(k int) string { return fmt.Sprintf("%s:{%s:r:%d}:retained", n.p, n.p, k) }

// Join makes a node of the cluster on rdb (a *goredis.Client or a
// *goredis.ClusterClient), which the caller keeps and closes after the node.
func Join(ctx context.Context, rdb goredis.UniversalClient, cfg Config) (*Node, error) {
	if rdb == nil {
		return nil, errors.New("backplane/redis: Join needs a Redis client: pass goredis.NewClient(...) or NewClusterClient(...)")
	}
	bc, err := cfg.Config.WithDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "tern"
	}
	if strings.ContainsFunc(cfg.Prefix, func(r rune) bool { return r <= ' ' || r == '{' || r == '}' }) {
		return nil, fmt.Errorf("backplane/redis: Config.Prefix %q: use no braces, spaces or control characters", cfg.Prefix)
	}
	if cfg.QueueLen < 0 {
		return nil, fmt.Errorf("backplane/redis: Config.QueueLen %d is negative: use 0 for the default %d", cfg.QueueLen, DefaultQueueLen)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{rdb: rdb, cfg: bc, log: bc.Logger.With("backplane", "redis", "node", bc.ID), p: cfg.Prefix,
		inc: binary.LittleEndian.Uint64(b[:]), inbox: make(chan func(context.Context), inboxSize), qlen: cfg.QueueLen,
		wills: make(map[string]*message.Message), owned: make(map[string]struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	// A node that restarts under its ID after a crash waits for the lease
	// of its previous incarnation to lapse (at most Lease), as long as ctx
	// allows; a node whose ID is in use keeps it renewed, and is refused
	// once the wait passed a lease and a half.
	for giveUp := time.Now().Add(bc.Lease * 3 / 2); ; {
		alive, err := rdb.Exists(ctx, n.kNode(bc.ID, "alive")).Result()
		if err != nil {
			n.cancel()
			return nil, backplane.Unreachable("join", err)
		}
		if alive == 0 {
			break
		}
		wait := time.NewTimer(bc.Lease / 10)
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
		if ctx.Err() != nil || time.Now().After(giveUp) {
			n.cancel()
			return nil, fmt.Errorf("backplane/redis: node ID %q is live in cluster %q: give each node its own ID", bc.ID, cfg.Prefix)
		}
	}
	// Subscribe before loading, so that no change falls between the two.
	n.events = rdb.SSubscribe(ctx, n.kEvents())
	n.in = rdb.SSubscribe(ctx, n.kNode(bc.ID, "in"))
	for _, ps := range []*goredis.PubSub{n.events, n.in} {
		if _, err := ps.Receive(ctx); err != nil {
			n.closePubSubs()
			n.cancel()
			return nil, backplane.Unreachable("join: subscribe", err)
		}
	}
	if err := n.ensureGroup(ctx); err != nil {
		n.closePubSubs()
		n.cancel()
		return nil, backplane.Unreachable("join: create the queue", err)
	}
	// The interest the node had when it died stays until the broker has
	// announced its own again (one lease), so that nothing published
	// meanwhile for its restored sessions misses its queue.
	if err := n.resync(ctx, true); err != nil {
		n.closePubSubs()
		n.cancel()
		return nil, err
	}
	n.joinedAt = time.Now()
	n.wg.Add(5)
	go n.readQueue()
	go n.readIn()
	go n.readEvents()
	go n.handle()
	go n.heartbeat()
	return n, nil
}

func (n *Node) closePubSubs() {
	_ = n.events.Close()
	_ = n.in.Close()
}

// ID returns the node's name.
func (n *Node) ID() string { return n.cfg.ID }

func (n *Node) check(op string) error {
	if n.closed.Load() {
		return fmt.Errorf("%s: %w", op, backplane.ErrClosed)
	}
	return nil
}

func (n *Node) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if n.closed.Load() {
		return fmt.Errorf("%s: %w", op, backplane.ErrClosed)
	}
	n.needResync.Store(true)
	return backplane.Unreachable(op, err)
}

// resync registers the node (lease, membership, interest, wills), tells the
// others to reload its interest, and reloads everyone's. With merge the
// interest stored already is kept and added to (at the join), else it is
// replaced by the node's.
func (n *Node) resync(ctx context.Context, merge bool) error {
	n.interestMu.Lock() // lock order: interestMu, then syncMu
	defer n.interestMu.Unlock()
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	id := n.cfg.ID
	filters := n.local.Filters()
	n.mu.Lock()
	wills := make(map[string]any, len(n.wills))
	for cid, m := range n.wills {
		f, err := frame(&wire.Header{Node: id, Will: true}, m)
		if err != nil {
			n.mu.Unlock()
			return err
		}
		wills[cid] = f
	}
	owned := make([]string, 0, len(n.owned))
	for cid := range n.owned {
		owned = append(owned, cid)
	}
	n.mu.Unlock()
	_, err := n.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, n.kNode(id, "alive"), "1", n.cfg.Lease)
		p.Del(ctx, n.kNode(id, "gone"), n.kNode(id, "wills"))
		if !merge {
			p.Del(ctx, n.kNode(id, "interest"))
		}
		if len(filters) > 0 {
			p.SAdd(ctx, n.kNode(id, "interest"), toAny(filters)...)
		}
		if len(wills) > 0 {
			p.HSet(ctx, n.kNode(id, "wills"), wills)
		}
		if len(owned) > 0 {
			p.SAdd(ctx, n.kNode(id, "owned"), toAny(owned)...)
		}
		return nil
	})
	if err != nil {
		return backplane.Unreachable("announce interest", err)
	}
	if err := n.rdb.SAdd(ctx, n.kMembers(), id).Err(); err != nil {
		return backplane.Unreachable("join members", err)
	}
	if err := n.rdb.SPublish(ctx, n.kEvents(), "r"+id).Err(); err != nil {
		return backplane.Unreachable("announce reset", err)
	}
	members, err := n.rdb.SMembers(ctx, n.kMembers()).Result()
	if err != nil {
		return backplane.Unreachable("load members", err)
	}
	cmds, err := n.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, m := range members {
			p.SMembers(ctx, n.kNode(m, "interest"))
		}
		return nil
	})
	if err != nil {
		return backplane.Unreachable("load interest", err)
	}
	live := make(map[string]bool, len(members))
	for i, m := range members {
		live[m] = true
		n.table.Set(m, cmds[i].(*goredis.StringSliceCmd).Val())
	}
	for _, m := range n.table.Nodes() {
		if !live[m] {
			n.table.Drop(m)
		}
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (n *Node) readEvents() {
	defer n.wg.Done()
	for {
		msg, ok := n.receiveFrom(n.events)
		if !ok {
			return
		}
		if msg != nil {
			n.apply(msg.Payload)
		}
	}
}

// receiveFrom returns the next message of ps, or nil after an error or a
// (re)subscription, which may mean messages were missed: the node then
// resyncs at its next heartbeat. ok is false once the node stops.
func (n *Node) receiveFrom(ps *goredis.PubSub) (msg *goredis.Message, ok bool) {
	v, err := ps.Receive(n.ctx)
	if n.ctx.Err() != nil {
		return nil, false
	}
	switch v := v.(type) {
	case *goredis.Message:
		return v, true
	case *goredis.Subscription:
		n.needResync.Store(true)
	}
	if err != nil {
		n.needResync.Store(true)
		n.pause()
	}
	return nil, true
}

func (n *Node) pause() {
	select {
	case <-n.ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// apply applies one event: "+N\x00filter", "-N\x00filter", "rN" (reload
// N's interest), "xN" (N is gone).
func (n *Node) apply(ev string) {
	if ev == "" {
		return
	}
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	body := ev[1:]
	switch ev[0] {
	case '+', '-':
		id, filter, ok := strings.Cut(body, "\x00")
		if !ok {
			return
		}
		if ev[0] == '+' {
			n.table.Add(id, filter)
		} else {
			n.table.Remove(id, filter)
		}
	case 'r':
		fs, err := n.rdb.SMembers(n.ctx, n.kNode(body, "interest")).Result()
		if err != nil {
			n.needResync.Store(true)
			return
		}
		n.table.Set(body, fs)
	case 'x':
		n.table.Drop(body)
	}
}

func (n *Node) readIn() {
	defer n.wg.Done()
	for {
		msg, ok := n.receiveFrom(n.in)
		if !ok {
			return
		}
		if msg != nil {
			n.receive([]byte(msg.Payload))
		}
	}
}

// receive decodes one frame from the node's channel and queues its handler.
func (n *Node) receive(b []byte) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case 'M':
		h, m, err := wire.Decode(b[1:])
		if err != nil {
			n.log.Warn("undecodable message from the back plane", "err", err)
			return
		}
		n.post(n.delivery(h, m))
	case 'T':
		cid, by, ok := strings.Cut(string(b[1:]), "\x00")
		if !ok {
			return
		}
		tk := backplane.Takeover{ClientID: cid, By: by}
		n.post(func(ctx context.Context) { n.cfg.OnTakeover(ctx, tk) })
	}
}

func (n *Node) delivery(h *wire.Header, m *message.Message) func(context.Context) {
	d := backplane.Delivery{Message: m, Node: h.Node, Plain: h.Plain, Groups: h.Groups, Will: h.Will}
	return func(ctx context.Context) { n.cfg.OnMessage(ctx, d) }
}

func (n *Node) post(f func(context.Context)) {
	select {
	case n.inbox <- f:
	case <-n.ctx.Done():
	}
}

func (n *Node) handle() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case f := <-n.inbox:
			f(n.ctx)
		}
	}
}

func (n *Node) heartbeat() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.beat()
	}
}

// beat renews the lease, resyncs when needed and looks for dead nodes.
func (n *Node) beat() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Lease/3)
	defer cancel()
	id := n.cfg.ID
	var member *goredis.BoolCmd
	var gone *goredis.IntCmd
	_, err := n.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, n.kNode(id, "alive"), "1", n.cfg.Lease)
		member = p.SIsMember(ctx, n.kMembers(), id)
		gone = p.Exists(ctx, n.kNode(id, "gone"))
		return nil
	})
	if err != nil {
		if !n.down.Swap(true) && n.ctx.Err() == nil {
			n.log.Warn("back plane unreachable: refusing what cannot be forwarded", "err", err)
		}
		n.needResync.Store(true)
		return
	}
	if !n.settled.Load() && time.Since(n.joinedAt) >= n.cfg.Lease {
		n.settled.Store(true)
		n.needResync.Store(true) // the interest found at the join goes
	}
	takenForDead := !member.Val() || gone.Val() > 0
	if takenForDead || n.needResync.Load() || n.down.Load() {
		if takenForDead {
			// Another node found this one dead (its lease lapsed: the
			// "gone" mark; its queue and interest stay for Keep) and took
			// its wills and client ids, or Redis restarted empty: what the
			// node owned may be another's now. Its handler is told first.
			if h := n.cfg.OnNodeGone; h != nil {
				g := backplane.NodeGone{Node: id}
				n.post(func(ctx context.Context) { h(ctx, g) })
			}
			n.mu.Lock()
			clear(n.owned)
			n.mu.Unlock()
		}
		n.needResync.Store(false)
		if err := n.resync(ctx, false); err != nil {
			n.needResync.Store(true)
			n.log.Warn("back plane resync failed", "err", err)
			return
		}
		if n.down.Swap(false) {
			n.log.Info("back plane reachable again: interest and wills announced")
		}
	}
	n.reap(ctx)
}

// takeWills is run on a node's shard: if its lease is gone and it was not
// found dead before, it marks the death (KEYS[3], the server's time in ms)
// and takes (returns and deletes) its wills, atomically, so exactly one
// caller gets them with the client ids it owned (KEYS[6], for
// OnNodeGone): {"w", {client id, will, ...}, {owned id, ...}}. Its
// interest and queue stay for its return. If it was found dead more than ARGV[1] ms ago, it
// deletes its interest and queue and returns {"x"}: the node is forgotten.
var takeWills = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('GET', KEYS[3])
if not gone then
	redis.call('SET', KEYS[3], now)
	local w = redis.call('HGETALL', KEYS[2])
	local o = redis.call('SMEMBERS', KEYS[6])
	redis.call('DEL', KEYS[2], KEYS[6])
	return {'w', w, o}
end
if now - tonumber(gone) >= tonumber(ARGV[1]) then
	redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
	return {'x'}
end
return false
`)

// reap publishes the wills of members whose lease lapsed, and forgets
// those dead for longer than Keep.
func (n *Node) reap(ctx context.Context) {
	members, err := n.rdb.SMembers(ctx, n.kMembers()).Result()
	if err != nil {
		return
	}
	for _, m := range members {
		if m == n.cfg.ID {
			continue
		}
		r, err := takeWills.Run(ctx, n.rdb, []string{n.kNode(m, "alive"), n.kNode(m, "wills"),
			n.kNode(m, "gone"), n.kNode(m, "interest"), n.kNode(m, "q"), n.kNode(m, "owned")}, n.cfg.Keep.Milliseconds()).Result()
		if errors.Is(err, goredis.Nil) || err != nil {
			continue // alive, dead already, or an error to retry at the next beat
		}
		res, _ := r.([]any)
		if len(res) == 0 {
			continue
		}
		if kind, _ := res[0].(string); kind == "x" {
			_ = n.rdb.SRem(ctx, n.kMembers(), m).Err()
			_ = n.rdb.SPublish(ctx, n.kEvents(), "x"+m).Err()
			n.syncMu.Lock()
			n.table.Drop(m)
			n.syncMu.Unlock()
			n.log.Info("node dead for longer than Keep: forgotten", "dead", m, "keep", n.cfg.Keep)
			continue
		}
		var kv []any
		var owned []string
		if len(res) == 3 {
			kv, _ = res[1].([]any)
			os, _ := res[2].([]any)
			for _, o := range os {
				if cid, ok := o.(string); ok {
					owned = append(owned, cid)
				}
			}
		}
		if h := n.cfg.OnNodeGone; h != nil {
			sort.Strings(owned)
			g := backplane.NodeGone{Node: m, ClientIDs: owned}
			n.post(func(ctx context.Context) { h(ctx, g) })
		}
		var cids []string
		frames := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			cid, _ := kv[i].(string)
			f, _ := kv[i+1].(string)
			cids = append(cids, cid)
			frames[cid] = f
		}
		sort.Strings(cids)
		for _, cid := range cids {
			_, will, err := wire.Decode([]byte(strings.TrimPrefix(frames[cid], "M")))
			if err != nil {
				n.log.Warn("undecodable will", "node", m, "client", cid, "err", err)
				continue
			}
			if d, will := delay.Of(will); d > 0 {
				// No earlier than the death plus the Will Delay Interval
				// [v5 MQTT-3.1.2-8], held by this node meanwhile.
				dead, cid := m, cid
				n.later.After(d, func() {
					ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
					defer cancel()
					if err := n.publishWill(ctx, dead, will); err != nil {
						n.log.Warn("publishing a dead node's delayed will", "node", dead, "client", cid, "err", err)
					}
				})
				continue
			}
			if err := n.publishWill(ctx, m, will); err != nil {
				n.log.Warn("publishing a dead node's will", "node", m, "client", cid, "err", err)
			}
		}
		n.log.Info("node dead: its wills published, its queue kept for its return", "dead", m, "wills", len(cids))
	}
}

func (n *Node) publishWill(ctx context.Context, dead string, m *message.Message) error {
	if m.Retain {
		if err := n.SetRetained(ctx, m); err != nil {
			return err
		}
	}
	return n.send(ctx, m, dead, true)
}

// frame is the bytes a message travels as: 'M' and a wire frame.
func frame(h *wire.Header, m *message.Message) (string, error) {
	b, err := wire.Append([]byte{'M'}, h, m)
	if err != nil {
		return "", fmt.Errorf("backplane/redis: encoding %q: %w", m.Topic, err)
	}
	return string(b), nil
}

// send routes m, published on node from, to the nodes with matching
// interest. A will (from a dead node) also goes to this node's own plain
// subscribers; deliveries to this node skip Redis.
func (n *Node) send(ctx context.Context, m *message.Message, from string, will bool) error {
	self := n.cfg.ID
	routes := n.table.Route(m.Topic, from)
	if will {
		if routes == nil {
			routes = make(map[string]*route.Target)
		}
		if _, ok := routes[self]; !ok && n.hasPlain(m.Topic) {
			routes[self] = &route.Target{}
		}
		if tg := routes[self]; tg != nil {
			tg.Plain = n.hasPlain(m.Topic)
		}
	}
	if len(routes) == 0 {
		return nil
	}
	ids := make([]string, 0, len(routes))
	for id := range routes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var local func(context.Context)
	_, err := n.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, id := range ids {
			tg := routes[id]
			h := &wire.Header{Node: from, Incarnation: n.inc, Seq: n.seq.Add(1), Plain: tg.Plain, Will: will, Groups: tg.Groups}
			if id == self {
				local = n.delivery(h, m)
				continue
			}
			f, err := frame(h, m)
			if err != nil {
				return err
			}
			p.XAdd(ctx, &goredis.XAddArgs{Stream: n.kNode(id, "q"), MaxLen: n.qlen, Approx: true,
				Values: []any{queueField, f}})
		}
		return nil
	})
	if err != nil {
		return n.fail("forward", err)
	}
	if local != nil {
		n.post(local)
	}
	return nil
}

// hasPlain reports whether this node has a non-shared filter matching name.
func (n *Node) hasPlain(name string) bool {
	for _, f := range n.local.Filters() {
		if !topic.IsShared(f) && topic.Match(f, name) {
			return true
		}
	}
	return false
}

// Forward sends m to the nodes with matching interest.
func (n *Node) Forward(ctx context.Context, m *message.Message) error {
	if err := n.check("forward"); err != nil {
		return err
	}
	if n.down.Load() {
		return backplane.Unreachable("forward", errors.New("lease not renewed"))
	}
	return n.send(ctx, m, n.cfg.ID, false)
}

// ForwardBatch forwards ms in one pipeline (one round trip): the XADDs
// of every message to every node, in the order of ms, on one connection,
// so that each node's stream has them in that order. A message whose
// XADDs failed gets its error; the others were taken.
func (n *Node) ForwardBatch(ctx context.Context, ms []*message.Message) []error {
	all := func(err error) []error {
		errs := make([]error, len(ms))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if err := n.check("forward"); err != nil {
		return all(err)
	}
	if n.down.Load() {
		return all(backplane.Unreachable("forward", errors.New("lease not renewed")))
	}
	if len(ms) == 0 {
		return nil
	}
	self := n.cfg.ID
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(ms))
		}
		if errs[i] == nil {
			errs[i] = err
		}
	}
	cmds := make([][]goredis.Cmder, len(ms)) // per message: its XADDs
	locals := make([]func(context.Context), len(ms))
	// A failure is also set on each command it hit: read there, per message.
	_, _ = n.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, m := range ms {
			routes := n.table.Route(m.Topic, self)
			ids := make([]string, 0, len(routes))
			for id := range routes {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				tg := routes[id]
				h := &wire.Header{Node: self, Incarnation: n.inc, Seq: n.seq.Add(1), Plain: tg.Plain, Groups: tg.Groups}
				if id == self {
					locals[i] = n.delivery(h, m)
					continue
				}
				f, err := frame(h, m)
				if err != nil {
					fail(i, err)
					continue
				}
				cmds[i] = append(cmds[i], p.XAdd(ctx, &goredis.XAddArgs{Stream: n.kNode(id, "q"), MaxLen: n.qlen, Approx: true,
					Values: []any{queueField, f}}))
			}
		}
		return nil
	})
	for i := range ms {
		for _, c := range cmds[i] {
			if err := c.Err(); err != nil {
				fail(i, n.fail("forward", err))
				break
			}
		}
		if locals[i] != nil && (errs == nil || errs[i] == nil) {
			n.post(locals[i])
		}
	}
	return errs
}

// Subscribe announces interest in filter. A count taken while Redis is out
// of reach is kept (the error wraps ErrUnreachable) and announced when it
// comes back.
func (n *Node) Subscribe(ctx context.Context, filter string) error {
	if _, _, err := backplane.ParseFilter(filter); err != nil {
		return err
	}
	if err := n.check("subscribe"); err != nil {
		return err
	}
	// Count and announcement together, so that a concurrent Unsubscribe of
	// the same filter cannot announce out of order.
	n.interestMu.Lock()
	defer n.interestMu.Unlock()
	if !n.local.Inc(filter) {
		return nil
	}
	return n.announce(ctx, '+', filter)
}

// Unsubscribe withdraws one count of interest in filter.
func (n *Node) Unsubscribe(ctx context.Context, filter string) error {
	if err := n.check("unsubscribe"); err != nil {
		return err
	}
	n.interestMu.Lock()
	defer n.interestMu.Unlock()
	last, ok := n.local.Dec(filter)
	if !ok {
		return fmt.Errorf("unsubscribe %q: %w", filter, backplane.ErrNotSubscribed)
	}
	if !last {
		return nil
	}
	return n.announce(ctx, '-', filter)
}

func (n *Node) announce(ctx context.Context, op byte, filter string) error {
	id := n.cfg.ID
	_, err := n.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if op == '+' {
			p.SAdd(ctx, n.kNode(id, "interest"), filter)
		} else {
			p.SRem(ctx, n.kNode(id, "interest"), filter)
		}
		p.SPublish(ctx, n.kEvents(), string(op)+id+"\x00"+filter)
		return nil
	})
	return n.fail("announce interest", err)
}

// SetRetained stores or, for an empty payload, deletes the retained message.
func (n *Node) SetRetained(ctx context.Context, m *message.Message) error {
	if len(m.Payload) == 0 { // [v5 MQTT-3.3.1-6] [v5 MQTT-3.3.1-7] [v3 MQTT-3.3.1-10] [v3 MQTT-3.3.1-11]
		return n.DeleteRetained(ctx, m.Topic)
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("backplane/redis: retained message: %w", err)
	}
	if err := n.check("set retained"); err != nil {
		return err
	}
	f, err := frame(&wire.Header{}, m)
	if err != nil {
		return err
	}
	return n.fail("set retained", n.rdb.HSet(ctx, n.kRetained(m.Topic), m.Topic, f).Err()) // [v5 MQTT-3.3.1-5]
}

// DeleteRetained deletes the retained message of name.
func (n *Node) DeleteRetained(ctx context.Context, name string) error {
	if err := n.check("delete retained"); err != nil {
		return err
	}
	return n.fail("delete retained", n.rdb.HDel(ctx, n.kRetained(name), name).Err())
}

// MatchRetained returns the live retained messages matching filter, sorted by
// topic. A filter whose first level is literal reads one hash; one that
// starts with a wildcard reads all 64.
func (n *Node) MatchRetained(ctx context.Context, filter string) ([]*message.Message, error) {
	g, _, err := backplane.ParseFilter(filter)
	if err != nil {
		return nil, err
	}
	if err := n.check("match retained"); err != nil {
		return nil, err
	}
	var keys []string
	if first, _, _ := strings.Cut(g.Filter, "/"); first == "+" || first == "#" {
		for k := range retainedShards {
			keys = append(keys, n.kShard(k))
		}
	} else {
		keys = []string{n.kRetained(g.Filter)}
	}
	now := time.Now()
	var out []*message.Message
	for _, k := range keys {
		var cursor uint64
		for {
			kv, next, err := n.rdb.HScan(ctx, k, cursor, "", 1000).Result()
			if err != nil {
				return nil, n.fail("match retained", err)
			}
			for i := 0; i+1 < len(kv); i += 2 {
				if !topic.Match(g.Filter, kv[i]) {
					continue
				}
				_, m, err := wire.Decode([]byte(strings.TrimPrefix(kv[i+1], "M")))
				if err != nil {
					n.log.Warn("undecodable retained message", "topic", kv[i], "err", err)
					continue
				}
				if !m.Expired(now) { // [v5 MQTT-3.3.2-5]
					out = append(out, m)
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// Claim makes n the owner of clientID (SET ... GET) and tells the previous
// owner on its channel.
func (n *Node) Claim(ctx context.Context, clientID string) (string, error) {
	if err := n.check("claim"); err != nil {
		return "", err
	}
	prev, err := n.rdb.SetArgs(ctx, n.kOwner(clientID), n.cfg.ID, goredis.SetArgs{Get: true}).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return "", n.fail("claim", err)
	}
	n.mu.Lock()
	n.owned[clientID] = struct{}{}
	n.mu.Unlock()
	if err := n.rdb.SAdd(ctx, n.kNode(n.cfg.ID, "owned"), clientID).Err(); err != nil {
		return prev, n.fail("claim", err)
	}
	if prev != "" && prev != n.cfg.ID {
		if err := n.rdb.SPublish(ctx, n.kNode(prev, "in"), "T"+clientID+"\x00"+n.cfg.ID).Err(); err != nil {
			return prev, n.fail("takeover notice", err)
		}
	}
	return prev, nil
}

var release = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Release gives up clientID if n owns it.
func (n *Node) Release(ctx context.Context, clientID string) error {
	if err := n.check("release"); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.owned, clientID)
	n.mu.Unlock()
	if err := n.rdb.SRem(ctx, n.kNode(n.cfg.ID, "owned"), clientID).Err(); err != nil {
		return n.fail("release", err)
	}
	return n.fail("release", release.Run(ctx, n.rdb, []string{n.kOwner(clientID)}, n.cfg.ID).Err())
}

var claimFrom = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`)

var _ backplane.Adopter = (*Node)(nil)

// ClaimFrom implements backplane.Adopter: n owns clientID afterwards if
// from owned it, or nobody did.
func (n *Node) ClaimFrom(ctx context.Context, clientID, from string) (bool, error) {
	if err := n.check("claim"); err != nil {
		return false, err
	}
	won, err := claimFrom.Run(ctx, n.rdb, []string{n.kOwner(clientID)}, from, n.cfg.ID).Int()
	if err != nil {
		return false, n.fail("claim", err)
	}
	if won == 0 {
		return false, nil
	}
	n.mu.Lock()
	n.owned[clientID] = struct{}{}
	n.mu.Unlock()
	return true, n.fail("claim", n.rdb.SAdd(ctx, n.kNode(n.cfg.ID, "owned"), clientID).Err())
}

// SetWill registers the will of clientID. It is kept by the node too, to be
// registered again after Redis comes back.
func (n *Node) SetWill(ctx context.Context, clientID string, m *message.Message) error {
	if err := topic.ValidateName(m.Topic); err != nil {
		return fmt.Errorf("backplane/redis: will of %q: %w", clientID, err)
	}
	if err := n.check("set will"); err != nil {
		return err
	}
	f, err := frame(&wire.Header{Node: n.cfg.ID, Will: true}, m)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.wills[clientID] = m
	n.mu.Unlock()
	return n.fail("set will", n.rdb.HSet(ctx, n.kNode(n.cfg.ID, "wills"), clientID, f).Err())
}

// ClearWill removes the will of clientID.
func (n *Node) ClearWill(ctx context.Context, clientID string) error {
	if err := n.check("clear will"); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.wills, clientID)
	n.mu.Unlock()
	return n.fail("clear will", n.rdb.HDel(ctx, n.kNode(n.cfg.ID, "wills"), clientID).Err())
}

// Close leaves the cluster: interest, wills (not published) and ownership
// are removed from Redis, the goroutines end. It does not close the Redis
// client.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.Load() {
		// The delayed wills of dead nodes this node holds are published
		// now, early rather than never.
		for _, f := range n.later.Close() {
			f()
		}
	}
	if n.closed.Swap(true) {
		return nil
	}
	id := n.cfg.ID
	n.mu.Lock()
	owned := make([]string, 0, len(n.owned))
	for cid := range n.owned {
		owned = append(owned, cid)
	}
	n.mu.Unlock()
	var errs []error
	_, err := n.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, n.kNode(id, "alive"), n.kNode(id, "interest"), n.kNode(id, "wills"), n.kNode(id, "owned"), n.kNode(id, "gone"), n.kNode(id, "q"))
		return nil
	})
	errs = append(errs, err)
	errs = append(errs, n.rdb.SRem(ctx, n.kMembers(), id).Err())
	errs = append(errs, n.rdb.SPublish(ctx, n.kEvents(), "x"+id).Err())
	for _, cid := range owned {
		errs = append(errs, release.Run(ctx, n.rdb, []string{n.kOwner(cid)}, id).Err())
	}
	n.closePubSubs()
	n.cancel()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	if err := errors.Join(errs...); err != nil {
		return backplane.Unreachable("close", err)
	}
	return nil
}

// abandon stops the node as if its process died: no goodbye to Redis. For
// tests.
func (n *Node) abandon() {
	n.later.Close() // dropped: they die with the node
	n.closed.Store(true)
	n.closePubSubs()
	n.cancel()
	n.wg.Wait()
}
