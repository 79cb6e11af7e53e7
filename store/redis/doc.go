// Package redis is a broker store (store.Shared) kept in Redis
// (github.com/redis/go-redis/v9), on a single Redis server or a Redis
// Cluster: the broker nodes of a cluster share it, so a persistent
// session resumes on whichever node its client reconnects to
// (LoadSession), with its subscriptions, queue, messages in flight and
// QoS 2 state.
//
// # Keys
//
// For the default Prefix "tern" (P) and a session of client id ID; the
// part in braces is the hash tag, which keeps one session's keys in one
// slot of a Redis Cluster:
//
//	P:{P:sess:ID}:i          HASH: i the session's own state, t the last write (ms)
//	P:{P:sess:ID}:s          HASH filter → subscription
//	P:{P:sess:ID}:q          HASH seq → queued message (its own fields and the message)
//	P:{P:sess:ID}:f          HASH seq → "packet id:released" of messages in flight
//	P:{P:sess:ID}:p          HASH packet id → seq
//	P:{P:sess:ID}:n          SET of QoS 2 packet ids received and not released
//	P:{P:kept:K}:retained    HASH topic → retained message, K = FNV-1a(first level) mod 64
//	P:{P}:maxmsgid           the largest message id enqueued
//	P:{P}:msgidblocks        blocks of message ids reserved by MsgIDBase
//
// A message that enters many queues is stored in each (the queues of a
// Redis Cluster are on many shards); within one batch it travels to
// Redis once per shard.
//
// # Atomicity
//
// Apply runs one Lua script per call on a single Redis: the batch is
// applied whole, alone, and in order (a script that fails half-way, which
// only a bug or a Redis out of memory can cause, keeps a prefix). On a
// Redis Cluster a batch is split by slot: the changes of one session are
// one script, applied whole and in order; the scripts of different
// sessions run at once on their shards. A batch that fails there may
// have been applied for some sessions and not for others; so that such
// a failure can cause duplicates but never a loss, the changes that
// record a QoS 2 packet id received (AddIncoming) and those that dequeue
// are applied in a second round, only once every other part of the batch
// is kept. The broker does not acknowledge a batch that failed: the
// publisher sends it again and sessions that kept it the first time get
// it twice (a QoS 2 message too, in that case only). LoadSession reads a
// session in one transaction; Load reads sessions one by one.
//
// # Durability
//
// Apply returns once Redis has run the batch: it is in the memory of the
// master that owns its keys, and as durable as that Redis is configured
// to make it. For "acknowledged means kept" across a crash of Redis
// itself, run Redis with the append-only file and fsync before every
// reply:
//
//	appendonly yes
//	appendfsync always
//
// (Redis writes and fsyncs the file before it answers a write). With
// appendfsync everysec (Redis's default when appendonly is on) a crash of
// the Redis host may lose the last second of acknowledged messages; with
// persistence off (Redis's default) a Redis restart loses everything.
// Replication to replicas is asynchronous: a failover may lose what the
// old master had not sent. Messages are not lost to a broker node's
// crash in any of these modes: they are in Redis before the node
// acknowledges them.
//
// # Message ids
//
// The store keeps message ids (store.Queued.MsgID) as given and does not
// depend on their uniqueness; a broker node that shares the store numbers
// its messages from a block of its own (MsgIDBase), as store.Shared asks.
package redis
