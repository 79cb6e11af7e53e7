// Package disk is Tern's durable store: one append-only log engine,
// broker.log in a directory, that keeps a broker's whole state
// ([OpenBroker], a [store.Broker]) or a client's session ([Open], a
// [store.Session] that is one stored session of that same log: see
// [store.BrokerSession]). One record format, one group commit, one
// torn-tail, corruption, disk-full and lock code path serve both ends,
// and storetest's suites (RunBroker for the engine, Run for the client
// session over it) check them.
//
//	b, err := disk.OpenBroker("/var/lib/tern", disk.BrokerOptions{})       // a broker's state
//	s, err := disk.Open("/var/lib/myapp/session", disk.Options{Sync: true}) // a client's session
//
// # Durability
//
// Apply (and each call of a client Session) returns once its change has
// been written to the operating system with write(2) and, with SyncAlways
// (a broker's default; Options.Sync for a client session), fsync(2).
// What a process killed with SIGKILL had acknowledged is kept either
// way: the kernel has the bytes. Without fsync, a power loss or an OS
// crash can lose what the kernel had not written back yet (on Linux, up
// to about 30 seconds of changes by default); what survives is always a
// prefix of the batches in the order they were made, never a mix. Close
// always fsyncs.
//
// An fsync is shared, not paid per call (group commit): one caller at a
// time writes every batch queued so far with one write(2) and one fsync
// while the others queue theirs for the next one. BrokerOptions.
// CommitWindow makes the writer wait a little for more.
//
// A disk that is full (ENOSPC, EDQUOT) refuses the batch with an error
// wrapping store.ErrFull and cuts off its partial write; later batches
// are tried again. Any other failed write or fsync makes every call
// return that error until the store is reopened: nothing is acknowledged
// that may not be kept.
//
// # Files
//
// The directory holds broker.log; broker.lock, which the store holds
// locked with flock(2) while it is open, so that a second open, in this
// process or another, fails (the kernel drops the lock when the process
// dies, so a crash leaves no stale lock); and, for a moment during a
// compaction, broker.log.compact. On systems without flock(2) (Windows,
// Plan 9) there is no lock: open a directory from one process only.
//
// Before this engine served both ends, a client session was kept in its
// own format, session.log ("TERNSESS"). Open refuses a directory that
// holds one, naming the file: there were no users of that format to
// migrate, so move the file away (its unsent messages are lost) or run
// the Tern that wrote it to send them first.
//
// # Format
//
// broker.log starts with a 16-byte header: "TERNBRKR", the format
// version (uint32, now 1) and four zero bytes. Records follow, each
//
//	length  uint32  bytes of type and body
//	crc     uint32  CRC-32C (Castagnoli) of type and body
//	type    byte    1: a batch
//	body    length-1 bytes
//
// with integers little-endian. A record is one Apply call's batch, kept
// whole or not at all; its body is the batch's changes, each the
// store.Op byte and its fields (strings and numbers as uvarints, a
// message as its QoS, times, origin and an MQTT 5 PUBLISH of QoS 0 by
// package packet: topic, retain flag, every property, payload). A
// message that enters many queues in one batch is written once. A
// client session is the stored session "client": its messages are
// that session's queue (message id = Seq), its packet ids OpSent, its
// QoS 2 ids received the session's incoming ids, Clear an
// OpDeleteSession.
//
// Open replays the log into memory (a store/memory Broker), which the
// first Load hands over (see Memory). A record
// cut short or failing its checksum at the end is a write a crash tore:
// it is cut off the file (reported to the Logger with the offset and
// the bytes dropped), and the log goes on from the last whole record.
// The same damage before the last record, a record whose checksum holds
// but which does not parse, a file that is not a Tern log, or a newer
// format version is refused with an error naming the file and what to
// do. [CheckBroker] reports on a log without opening it.
//
// # Compaction
//
// Changes that later ones made moot (a message queued, sent and
// completed) stay in the log as dead bytes. Once the log has grown to
// twice its size after the last compaction plus CompactBytes (4 MiB by
// default), it is rewritten with the live state alone, beside the
// writes, which go on: a goroutine takes the state where the log ended
// (a replay of the log up to there, or, while the store holds the state
// in memory and it is small, a copy of it), writes it to broker.log.compact, copies after it the
// batches written meanwhile, and holds the writes only to copy the last
// MiB or less, fsync, rename the new log over broker.log and fsync the
// directory (see compact.go). A crash before the rename leaves the old
// log, complete, and a leftover that the next open removes; after it,
// the new log. While a compaction runs the log may grow by CompactBytes;
// beyond that Apply waits for it, so the log stays within about twice
// the live state plus four times CompactBytes. [Broker.Compact] runs
// one now; `tern store compact` runs one on a stopped broker's
// directory (a running broker holds the lock and compacts by itself).
//
// ApplyLazy writes a batch whose loss to a power failure is harmless
// (the broker's dequeues of completed deliveries) without an fsync of
// its own: the next Apply's fsync, or Close, covers it.
//
// # Memory
//
// The state an open replays is held in memory (messages by pointer,
// shared with the broker or client that stored them) until the first
// Load, which returns it. A broker loads once and then keeps its own
// maps of everything, so the store's copy would be a second one: if the
// state is large (a log over 8 MiB after its last compaction or at open,
// or over 32 MiB now), the first Load drops it, and so does the first
// compaction after the state has grown that large. The store then keeps
// none of the state: Apply only appends, a later Load replays the log
// from disk as an open does, and a compaction replays the log into a
// transient state of its own (as it did for a large state anyway). A
// small state's copy is kept: it costs little memory and lets each
// compaction copy the state rather than replay a log of mostly dead
// records. A compaction that replays a state that has shrunk back to
// small keeps what it replayed as the copy again, once it has caught up
// with the writes. BrokerOptions.KeepState keeps the copy for the life
// of the store, whatever its size, so that every Load reads no file; a
// client's session store (Open) does so, since it loads at every
// reconnection (Outgoing).
package disk
