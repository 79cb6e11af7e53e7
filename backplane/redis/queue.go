package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ternmq/tern/backplane"
	"github.com/ternmq/tern/backplane/internal/wire"
)

// The durable queue. Every message forwarded to a node is added (XADD) to
// the node's stream, P:{P:n:N}:q, which the node reads as the one consumer
// of the consumer group "g" and acknowledges (XACK) once its handlers
// returned. A node that restarts under the same ID reads first what it had
// been given and not acknowledged (its pending entries), then the rest.

// DefaultQueueLen is the QueueLen of a zero Config.
const DefaultQueueLen = 100_000

// queueBatch is how many entries the node reads from its stream at once.
const queueBatch = 256

// queueBlock is how long one read waits for new entries; it bounds how long
// Close waits for the reader.
const queueBlock = 200 * time.Millisecond

const (
	queueGroup    = "g"
	queueConsumer = "c"
	queueField    = "f"
)

// ensureGroup creates the node's stream and consumer group if they are
// missing (first join, or Redis restarted empty). The group starts at the
// beginning of the stream: whatever was added before it was meant for the
// node.
func (n *Node) ensureGroup(ctx context.Context) error {
	err := n.rdb.XGroupCreateMkStream(ctx, n.kNode(n.cfg.ID, "q"), queueGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// readQueue reads the node's stream: pending entries first (after a start or
// a lost connection), then new ones, each batch handed to the handlers and
// acknowledged once they returned.
func (n *Node) readQueue() {
	defer n.wg.Done()
	key := n.kNode(n.cfg.ID, "q")
	pending := true
	var last backplane.Mark // the last entry handled by this process
	for n.ctx.Err() == nil {
		id, block := ">", queueBlock
		if pending {
			id, block = "0", -1
		}
		res, err := n.rdb.XReadGroup(n.ctx, &goredis.XReadGroupArgs{Group: queueGroup, Consumer: queueConsumer,
			Streams: []string{key, id}, Count: queueBatch, Block: block}).Result()
		if n.ctx.Err() != nil {
			return
		}
		if errors.Is(err, goredis.Nil) {
			continue // no new entry within the block time
		}
		if err != nil {
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				if err := n.ensureGroup(n.ctx); err == nil {
					pending = true
					continue
				}
			}
			n.needResync.Store(true)
			pending = true // what was read and not acknowledged comes again
			n.pause()
			continue
		}
		var msgs []goredis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if len(msgs) == 0 {
			pending = false
			continue
		}
		ids := make([]string, 0, len(msgs))
		var fs []func(context.Context)
		var batch []backplane.Delivery
		for _, xm := range msgs {
			ids = append(ids, xm.ID)
			mk, err := parseID(xm.ID)
			if err != nil || !mk.After(last) {
				continue // handled already by this process, its XACK lost
			}
			last = mk
			f, _ := xm.Values[queueField].(string)
			if f == "" {
				continue // trimmed away (MAXLEN) while pending
			}
			if d, ok := n.queued(f, mk); ok {
				if n.cfg.OnBatch != nil {
					batch = append(batch, d)
				} else {
					fs = append(fs, func(ctx context.Context) { n.cfg.OnMessage(ctx, d) })
				}
			}
		}
		if len(batch) > 0 {
			fs = append(fs, func(ctx context.Context) { n.cfg.OnBatch(ctx, batch) })
		}
		if len(fs) > 0 {
			done := make(chan struct{})
			n.post(func(ctx context.Context) {
				defer close(done)
				for _, f := range fs {
					f(ctx)
				}
			})
			select {
			case <-done:
			case <-n.ctx.Done():
				return // not acknowledged: delivered again at the next start
			}
		}
		// Acknowledged, and deleted: a stream keeps what it holds until
		// MAXLEN trims it, and a node's queue need not outlive its use.
		_, err = n.rdb.Pipelined(n.ctx, func(p goredis.Pipeliner) error {
			p.XAck(n.ctx, key, queueGroup, ids...)
			p.XDel(n.ctx, key, ids...)
			return nil
		})
		if err != nil && n.ctx.Err() == nil {
			n.needResync.Store(true)
			pending = true
			n.pause()
		}
	}
}

// queued decodes one stream entry.
func (n *Node) queued(f string, mk backplane.Mark) (backplane.Delivery, bool) {
	if f[0] != 'M' {
		return backplane.Delivery{}, false
	}
	h, m, err := wire.Decode([]byte(f[1:]))
	if err != nil {
		n.log.Warn("undecodable message from the back plane", "err", err)
		return backplane.Delivery{}, false
	}
	return backplane.Delivery{Message: m, Node: h.Node, Plain: h.Plain, Groups: h.Groups, Will: h.Will, Mark: mk}, true
}

// parseID parses a stream entry id, "ms-seq".
func parseID(id string) (backplane.Mark, error) {
	a, b, ok := strings.Cut(id, "-")
	if !ok {
		return backplane.Mark{}, fmt.Errorf("backplane/redis: stream id %q", id)
	}
	hi, err1 := strconv.ParseUint(a, 10, 64)
	lo, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return backplane.Mark{}, fmt.Errorf("backplane/redis: stream id %q", id)
	}
	return backplane.Mark{Hi: hi, Lo: lo}, nil
}
