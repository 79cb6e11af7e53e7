// Package jetstream is a store.Shared on NATS JetStream: the broker state
// (persistent sessions with their subscriptions, wills, queues and
// in-flight messages, and the retained messages) that the nodes of a
// cluster share, so that a persistent session resumes on whichever node
// its client reconnects to.
//
// # Layout
//
// The state is a log: a JetStream stream named Name+"_store" with one
// subject, Name+".store.log". Each Apply call is one record of it, the
// encoded batch of changes (every message body once per batch, as an
// MQTT 5 PUBLISH that keeps every property). A second stream,
// Name+"_store_snap", holds snapshots of the whole state; a third,
// Name+"_store_nodes", only numbers the opens of the store.
//
// Every open Store loads the latest snapshot, then reads the log from the
// record after it with an ordered consumer and applies each record, in
// stream order, to a view in memory (a memory.Broker per session and the
// retained messages). Load and LoadSession first ask the stream for its
// last sequence number and wait until the view has read that far, so they
// see every Apply that returned before they were called, on any node; then
// they answer from memory (LoadSession costs the size of one session).
//
// # Compaction
//
// A node that has read Config.CompactAfter records (default 10000) past
// the last snapshot writes its view as a new one: chunks in consecutive
// sequences of the snapshot stream, each publish expecting the stream's
// last sequence, so that two nodes' snapshots never interleave (the loser
// gives up), and only a snapshot of a later log position than the last one
// is written. Once the snapshot is whole the node purges the log before it
// and the older snapshots. A node whose reader was behind finds records
// missing (or its reader stalls) and starts again from the snapshot.
//
// # What holds
//
//   - A batch is all or nothing: one record is one JetStream message,
//     stored whole or not at all. A batch larger than the server's maximum
//     payload (1 MB by default) goes as parts in consecutive records and
//     takes effect at its last part; readers drop the parts of a batch
//     whose Apply failed before its last part was stored.
//   - Apply returns once JetStream acknowledged the record: in a cluster,
//     once a quorum of the stream's Replicas stored it. With file storage
//     the servers write it at once and sync their files every two minutes
//     by default (the nats-server sync_interval; set sync_always for a
//     sync per message): a record is lost only if a quorum of servers loses
//     power before the sync.
//   - Order: the stream's order is the order batches take effect, the same
//     on every node, and every node applies them in that order. A Load
//     after a crash sees exactly the records JetStream acknowledged, a
//     prefix of that order (with the records whose Apply failed
//     afterwards, since an error can come after the store kept the
//     record; the broker then did not acknowledge what they carried).
//   - Message ids: each Open takes a number n from the nodes stream, unique
//     among the opens of Name, and Load returns MaxMsgID at least n<<40: a
//     broker that numbers its messages from MaxMsgID (or from MsgIDBase,
//     if it does not call Load) uses ids no other node uses, as store.Shared
//     demands, as long as one open numbers fewer than 2^40 messages and the
//     store is opened fewer than 2^24 times.
//
// # Limits
//
// Every node holds the whole state in memory, and a compaction writes all
// of it. Set stream limits (MaxBytes, with DiscardNew) on the log stream
// to bound it: a batch beyond the limits fails with store.ErrFull.
//
// The caller makes the *nats.Conn (TLS, credentials, reconnects) and
// closes it after the Store.
package jetstream
