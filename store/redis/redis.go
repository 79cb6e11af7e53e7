package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/store"
)

// retainedShards is how many hashes hold the retained messages.
const retainedShards = 64

// Config configures Open. The zero value works.
type Config struct {
	// Prefix starts every key; brokers that share sessions use the same
	// Prefix on the same Redis. Default "tern". No braces, spaces, control
	// characters or glob characters (* ? [ ] \).
	Prefix string
}

// Store is a [store.Shared] on Redis. It is safe for concurrent use.
type Store struct {
	rdb     goredis.UniversalClient
	cluster bool
	p       string
	closed  atomic.Bool
	// maxKept is the largest message id known to be below the stored
	// maxmsgid: batches under it need not raise it.
	maxKept atomic.Uint64
}

// maxIDStep rounds the stored largest message id up, so that one write
// of it covers the next maxIDStep ids (BrokerState.MaxMsgID may exceed
// the largest id stored, never fall short).
const maxIDStep = 1024

var _ store.Shared = (*Store)(nil)

// Open returns the store kept in the Redis (or Redis Cluster) that rdb
// reaches. rdb is a *goredis.Client or a *goredis.ClusterClient, which
// the caller keeps and closes after the store. Open checks that Redis
// answers.
func Open(ctx context.Context, rdb goredis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("store/redis: Open needs a Redis client: pass goredis.NewClient(...) or goredis.NewClusterClient(...)")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "tern"
	}
	if strings.ContainsFunc(cfg.Prefix, func(r rune) bool { return r <= ' ' || strings.ContainsRune("{}*?[]\\", r) }) {
		return nil, fmt.Errorf("store/redis: Config.Prefix %q: use no braces, spaces, control characters or glob characters (* ? [ ] \\)", cfg.Prefix)
	}
	_, cluster := rdb.(*goredis.ClusterClient)
	s := &Store{rdb: rdb, cluster: cluster, p: cfg.Prefix}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("store/redis: Redis does not answer: %w", err)
	}
	return s, nil
}

// key is the key s of session id: P:{P:sess:ID}:s. The braces hold the
// hash tag, so that every key of one session is in one slot of a Redis
// Cluster, where one script changes them together.
func (s *Store) key(id, suffix string) string {
	return s.p + ":{" + s.p + ":sess:" + id + "}:" + suffix
}

// tag is the hash tag of session id's keys as Redis Cluster reads it (up
// to the first closing brace): sessions whose tags are equal share a
// slot.
func (s *Store) tag(id string) string {
	t := s.p + ":sess:" + id
	if i := strings.IndexByte(t, '}'); i >= 0 {
		t = t[:i]
	}
	return t
}

// retainedKey is the hash that holds the retained message of topic name:
// one of retainedShards, by the topic's first level, so that retained
// messages spread over a Redis Cluster.
func (s *Store) retainedKey(name string) string {
	first, _, _ := strings.Cut(name, "/")
	h := fnv.New32a()
	h.Write([]byte(first))
	return s.shardKey(int(h.Sum32() % retainedShards))
}

// maxIDKey holds the largest message id ever enqueued (BrokerState.MaxMsgID).
func (s *Store) maxIDKey() string { return s.p + ":{" + s.p + "}:maxmsgid" }

// blocksKey counts the blocks of message ids handed out by MsgIDBase.
func (s *Store) blocksKey() string { return s.p + ":{" + s.p + "}:msgidblocks" }

// MsgIDBlock is the size of the block of message ids MsgIDBase reserves.
const MsgIDBlock = 1 << 40

// MsgIDBase reserves a block of MsgIDBlock message ids for one broker
// node and returns the number before its first: the node numbers its
// messages base+1, base+2, ... and no other node that shares the store
// uses those numbers (store.Shared asks message ids to be unique across
// nodes). Every call reserves a new block; the first starts at
// MsgIDBlock.
func (s *Store) MsgIDBase(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	n, err := s.rdb.Incr(ctx, s.blocksKey()).Result()
	if err != nil {
		return 0, s.fail("reserve message ids", err)
	}
	return uint64(n) * MsgIDBlock, nil
}

// marksKey is the hash of the feeds' marks (store.OpMark): feed → position.
func (s *Store) marksKey() string { return fmt.Sprintf("%s:{%s:marks}", s.p, s.p) }

func (s *Store) shardKey(k int) string { return fmt.Sprintf("%s:{%s:kept:%d}:retained", s.p, s.p, k) }

// group is the part of a batch whose keys share a slot: one script call.
type group struct {
	key   string // a key of the slot, KEYS[1]
	args  []any
	msgs  map[*message.Message]int // message → its index in ARGV (1-based)
	phase int                      // 1: applied after every phase-0 group succeeded
}

func (g *group) add(a ...any) { g.args = append(g.args, a...) }

// msg returns the ARGV index of m in g, adding it if needed.
func (g *group) msg(m *message.Message, enc map[*message.Message]string) (int, error) {
	if i, ok := g.msgs[m]; ok {
		return i, nil
	}
	b, ok := enc[m]
	if !ok {
		var err error
		if b, err = encodeMsg(m); err != nil {
			return 0, err
		}
		enc[m] = b
	}
	g.add("", b)
	i := len(g.args) + 2 // ARGV[1] and [2] are the prefix and the time
	if g.msgs == nil {
		g.msgs = map[*message.Message]int{}
	}
	g.msgs[m] = i
	return i, nil
}

// batch splits changes into groups: one for the whole batch on a single
// Redis, one per session and per retained hash on Redis Cluster.
type batch struct {
	s      *Store
	groups []*group
	by     map[string]*group
	enc    map[*message.Message]string
	maxID  uint64 // the largest message id enqueued
}

func (b *batch) group(tag, key string) *group {
	if !b.s.cluster {
		tag = ""
	}
	if g := b.by[tag]; g != nil {
		return g
	}
	g := &group{key: key}
	b.by[tag] = g
	b.groups = append(b.groups, g)
	return g
}

func (b *batch) sess(id string) *group { return b.group(b.s.tag(id), b.s.key(id, "i")) }

func (b *batch) enqueue(id string, q *store.Queued, m *message.Message) error {
	if m == nil {
		return fmt.Errorf("store/redis: Enqueue(%q, seq %d): Msg is nil", id, q.Seq)
	}
	b.maxID = max(b.maxID, q.MsgID)
	g := b.sess(id)
	i, err := g.msg(m, b.enc)
	if err != nil {
		return err
	}
	rel := "0"
	if q.Released {
		rel = "1"
	}
	g.add("E", id, strconv.FormatUint(q.Seq, 10), encodeHead(q.MsgID, q.QoS, q.Retain, q.SubIDs), i, strconv.Itoa(int(q.PacketID)), rel)
	return nil
}

func (b *batch) add(c *store.Change) error {
	seq := func() string { return strconv.FormatUint(c.Queued.Seq, 10) }
	switch c.Op {
	case store.OpSession:
		info, err := encodeInfo(&c.Session)
		if err != nil {
			return err
		}
		b.sess(c.ClientID).add("S", c.ClientID, info)
	case store.OpDeleteSession:
		b.sess(c.ClientID).add("D", c.ClientID)
	case store.OpSubscribe:
		b.sess(c.ClientID).add("B", c.ClientID, c.Filter, encodeSub(c.Sub))
	case store.OpUnsubscribe:
		b.sess(c.ClientID).add("U", c.ClientID, c.Filter)
	case store.OpEnqueue:
		return b.enqueue(c.ClientID, &c.Queued, c.Queued.Msg)
	case store.OpEnqueueAll:
		for i := range c.Targets {
			t := &c.Targets[i]
			q := store.Queued{Seq: t.Seq, MsgID: c.Queued.MsgID, QoS: t.QoS, Retain: t.Retain, SubIDs: t.SubIDs}
			if err := b.enqueue(t.ClientID, &q, c.Queued.Msg); err != nil {
				return err
			}
		}
	case store.OpSent:
		b.sess(c.ClientID).add("T", c.ClientID, seq(), strconv.Itoa(int(c.Queued.PacketID)))
	case store.OpReleased:
		b.sess(c.ClientID).add("R", c.ClientID, seq())
	case store.OpDequeue:
		g := b.sess(c.ClientID)
		g.add("Q", c.ClientID, seq())
		g.phase = 1
	case store.OpDequeueAll:
		for i := range c.Targets {
			t := &c.Targets[i]
			g := b.sess(t.ClientID)
			g.add("Q", t.ClientID, strconv.FormatUint(t.Seq, 10))
			g.phase = 1
		}
	case store.OpAddIncoming:
		g := b.sess(c.ClientID)
		g.add("A", c.ClientID, strconv.Itoa(int(c.PacketID)))
		g.phase = 1
	case store.OpDeleteIncoming:
		b.sess(c.ClientID).add("a", c.ClientID, strconv.Itoa(int(c.PacketID)))
	case store.OpMark:
		k := b.s.marksKey()
		g := b.group(k, k)
		if c.Filter == "" {
			g.add("m", k, c.Topic)
		} else {
			g.add("M", k, c.Topic, c.Filter)
		}
	case store.OpRetain:
		k := b.s.retainedKey(c.Topic)
		g := b.group(k, k)
		if c.Msg == nil {
			g.add("m", k, c.Topic)
			return nil
		}
		m, err := encodeRetained(c.Msg)
		if err != nil {
			return err
		}
		g.add("M", k, c.Topic, m)
	default:
		return fmt.Errorf("store/redis: unknown change kind %d", c.Op)
	}
	return nil
}

// Apply implements [store.Broker]. It returns once Redis has run the
// batch (see the package doc for what that makes durable).
func (s *Store) Apply(ctx context.Context, changes ...store.Change) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	b := batch{s: s, by: map[string]*group{}, enc: map[*message.Message]string{}}
	for i := range changes {
		if err := b.add(&changes[i]); err != nil {
			return err
		}
	}
	var raised uint64
	if b.maxID > s.maxKept.Load() {
		raised = (b.maxID/maxIDStep + 1) * maxIDStep
		k := s.maxIDKey()
		b.group(k, k).add("X", k, strconv.FormatUint(raised, 10))
	}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if !s.cluster {
		if len(b.groups) == 0 {
			return nil
		}
		g := b.groups[0]
		if err := s.fail("apply", applyScript.Run(ctx, s.rdb, []string{g.key}, append([]any{s.p, now}, g.args...)...).Err()); err != nil {
			return err
		}
		s.kept(raised)
		return nil
	}
	// Redis Cluster: the groups of one phase run at once, on their
	// shards; the groups that record received QoS 2 ids and dequeue
	// messages run only once every other group is kept.
	for phase := 0; phase <= 1; phase++ {
		var gs []*group
		for _, g := range b.groups {
			if g.phase == phase {
				gs = append(gs, g)
			}
		}
		if err := s.run(ctx, now, gs); err != nil {
			return err
		}
	}
	s.kept(raised)
	return nil
}

// kept records that the stored largest message id is at least v.
func (s *Store) kept(v uint64) {
	for {
		cur := s.maxKept.Load()
		if v <= cur || s.maxKept.CompareAndSwap(cur, v) {
			return
		}
	}
}

// run runs the script for each group, pipelined (the cluster client
// sends each shard its part at once).
func (s *Store) run(ctx context.Context, now string, gs []*group) error {
	switch len(gs) {
	case 0:
		return nil
	case 1:
		return s.fail("apply", applyScript.Run(ctx, s.rdb, []string{gs[0].key}, append([]any{s.p, now}, gs[0].args...)...).Err())
	}
	for attempt := 0; ; attempt++ {
		cmds, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, g := range gs {
				args := append([]any{s.p, now}, g.args...)
				if attempt == 0 {
					applyScript.EvalSha(ctx, p, []string{g.key}, args...)
				} else {
					applyScript.Eval(ctx, p, []string{g.key}, args...)
				}
			}
			return nil
		})
		if err == nil {
			return nil
		}
		// A shard that lost its scripts (restarted) ran nothing of its
		// groups: they run again with the script's text.
		var again []*group
		for i, c := range cmds {
			if cerr := c.Err(); cerr != nil {
				if !strings.HasPrefix(cerr.Error(), "NOSCRIPT") || attempt > 0 {
					return s.fail("apply", cerr)
				}
				again = append(again, gs[i])
			}
		}
		if len(again) == 0 {
			return s.fail("apply", err)
		}
		gs = again
	}
}

// fail wraps an error of Redis.
func (s *Store) fail(op string, err error) error {
	switch {
	case err == nil || errors.Is(err, goredis.Nil):
		return nil
	case s.closed.Load():
		return store.ErrClosed
	case strings.HasPrefix(err.Error(), "OOM"):
		return fmt.Errorf("store/redis: %s: %w: %w", op, store.ErrFull, err)
	}
	return fmt.Errorf("store/redis: %s: %w", op, err)
}

// LoadSession implements [store.Shared]: it reads the session's keys in
// one transaction, so it sees every Apply before it whole or not at all.
func (s *Store) LoadSession(ctx context.Context, clientID string) (store.StoredSession, bool, error) {
	if s.closed.Load() {
		return store.StoredSession{}, false, store.ErrClosed
	}
	ss, _, ok, err := s.loadSession(ctx, clientID, map[string]*message.Message{})
	return ss, ok, err
}

func (s *Store) loadSession(ctx context.Context, id string, msgs map[string]*message.Message) (ss store.StoredSession, saved time.Time, ok bool, err error) {
	var info, subs, q, f *goredis.MapStringStringCmd
	var in *goredis.StringSliceCmd
	_, err = s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		info = p.HGetAll(ctx, s.key(id, "i"))
		subs = p.HGetAll(ctx, s.key(id, "s"))
		q = p.HGetAll(ctx, s.key(id, "q"))
		f = p.HGetAll(ctx, s.key(id, "f"))
		in = p.SMembers(ctx, s.key(id, "n"))
		return nil
	})
	if err != nil {
		return ss, saved, false, s.fail("load session "+strconv.Quote(id), err)
	}
	im := info.Val()
	rec, ok := im["i"]
	if !ok {
		return ss, saved, false, nil
	}
	bad := func(what string, err error) error {
		return fmt.Errorf("store/redis: session %q: %s: %w", id, what, err)
	}
	ss.ClientID = id
	if ss.Info, err = decodeInfo(rec); err != nil {
		return ss, saved, false, bad("info", err)
	}
	if ms, err := strconv.ParseInt(im["t"], 10, 64); err == nil {
		saved = time.UnixMilli(ms)
	}
	ss.Subs = make(map[string]store.Subscription, len(subs.Val()))
	for filter, rec := range subs.Val() {
		if ss.Subs[filter], err = decodeSub(rec); err != nil {
			return ss, saved, false, bad("subscription "+strconv.Quote(filter), err)
		}
	}
	fl := f.Val()
	for k, rec := range q.Val() {
		seq, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return ss, saved, false, bad("queue", fmt.Errorf("%w: seq %q", errMalformed, k))
		}
		qd, err := decodeQueued(rec, msgs)
		if err != nil {
			return ss, saved, false, bad(fmt.Sprint("queued message ", seq), err)
		}
		qd.Seq = seq
		if v, ok := fl[k]; ok {
			pid, rel, _ := strings.Cut(v, ":")
			n, err := strconv.ParseUint(pid, 10, 16)
			if err != nil {
				return ss, saved, false, bad(fmt.Sprint("flight of ", seq), fmt.Errorf("%w: %q", errMalformed, v))
			}
			qd.PacketID, qd.Released = uint16(n), rel == "1"
		}
		ss.Queue = append(ss.Queue, qd)
	}
	slices.SortFunc(ss.Queue, func(a, b store.Queued) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for _, v := range in.Val() {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return ss, saved, false, bad("incoming", fmt.Errorf("%w: packet id %q", errMalformed, v))
		}
		ss.Incoming = append(ss.Incoming, uint16(n))
	}
	slices.Sort(ss.Incoming)
	return ss, saved, true, nil
}

// Load implements [store.Broker]: every session (found with SCAN on
// every master) and every retained message. It reads each session in a
// transaction of its own, not the whole store at one instant: a store
// that other nodes change meanwhile loads as a mix of moments.
func (s *Store) Load(ctx context.Context) (*store.BrokerState, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	ids, err := s.sessionIDs(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	st := &store.BrokerState{}
	msgs := map[string]*message.Message{}
	for _, id := range ids {
		ss, saved, ok, err := s.loadSession(ctx, id, msgs)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // deleted since the scan
		}
		if saved.After(st.Saved) {
			st.Saved = saved
		}
		for _, q := range ss.Queue {
			st.MaxMsgID = max(st.MaxMsgID, q.MsgID)
		}
		st.Sessions = append(st.Sessions, ss)
	}
	top, err := s.rdb.Get(ctx, s.maxIDKey()).Uint64()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail("load the largest message id", err)
	}
	st.MaxMsgID = max(st.MaxMsgID, top)
	marks, err := s.rdb.HGetAll(ctx, s.marksKey()).Result()
	if err != nil {
		return nil, s.fail("load the marks", err)
	}
	for name, pos := range marks {
		if name == "\x00t" {
			continue
		}
		if st.Marks == nil {
			st.Marks = map[string]string{}
		}
		st.Marks[name] = pos
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for k := range retainedShards {
			p.HGetAll(ctx, s.shardKey(k))
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("load retained messages", err)
	}
	for _, c := range cmds {
		for topic, rec := range c.(*goredis.MapStringStringCmd).Val() {
			if topic == "\x00t" {
				if ms, err := strconv.ParseInt(rec, 10, 64); err == nil && time.UnixMilli(ms).After(st.Saved) {
					st.Saved = time.UnixMilli(ms)
				}
				continue
			}
			m, err := decodeRetained(rec)
			if err != nil {
				return nil, fmt.Errorf("store/redis: retained message of %q: %w", topic, err)
			}
			st.Retained = append(st.Retained, m)
		}
	}
	return st, nil
}

// sessionIDs lists the stored sessions: the keys P:{P:sess:ID}:i.
func (s *Store) sessionIDs(ctx context.Context) ([]string, error) {
	head, tail := s.p+":{"+s.p+":sess:", "}:i"
	var mu sync.Mutex
	var ids []string
	scan := func(ctx context.Context, c *goredis.Client) error {
		it := c.Scan(ctx, 0, head+"*"+tail, 1000).Iterator()
		var found []string
		for it.Next(ctx) {
			k := it.Val()
			if strings.HasPrefix(k, head) && strings.HasSuffix(k, tail) && len(k) >= len(head)+len(tail) {
				found = append(found, k[len(head):len(k)-len(tail)])
			}
		}
		mu.Lock()
		ids = append(ids, found...)
		mu.Unlock()
		return it.Err()
	}
	var err error
	switch c := s.rdb.(type) {
	case *goredis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *goredis.Client:
		err = scan(ctx, c)
	default:
		return nil, fmt.Errorf("store/redis: Load: a %T cannot list the sessions: use a *goredis.Client or *goredis.ClusterClient", s.rdb)
	}
	if err != nil {
		return nil, s.fail("list sessions", err)
	}
	return ids, nil
}

// Close implements [store.Broker]. Every Apply that returned is in Redis
// already; Close does not close the Redis client, which is the caller's.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	return nil
}
