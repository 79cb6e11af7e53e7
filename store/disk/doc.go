// Package disk is the durable [store.Session]: one MQTT session kept in
// one directory, in an append-only log that survives the process being
// killed and, with [Options.Sync], a power loss.
//
//	s, err := disk.Open("/var/lib/myapp/session", disk.Options{Sync: true})
//
// # Durability
//
// Every call returns once its change has been written to the operating
// system with write(2). What a process killed with SIGKILL (or by a
// panic, or by the OOM killer) had acknowledged is therefore kept: the
// kernel has the bytes and writes them back on its own.
//
// A power loss or an OS crash can lose what the kernel had not written
// back yet (on Linux, up to about 30 seconds of changes by default).
// What survives is always a prefix of the changes in the order they
// were made, never a mix: replay stops at the first record that is
// incomplete or fails its checksum. With Options.Sync every call returns
// only after fsync(2) too, so a power loss keeps every acknowledged
// change (on a disk that honours flushes). Close always fsyncs, so a
// session closed in an orderly way survives a power loss either way.
//
// Sync costs an fsync, but not one per call: concurrent callers share
// them (group commit). One caller at a time writes every change queued
// so far with one write(2) and one fsync while the others queue theirs
// for the next batch; 8 goroutines publishing at once take about 0.7
// fsyncs per message cycle (add, sent, delete) instead of 3.
//
// After a write or fsync fails, every call returns that error until the
// session is closed and reopened: nothing is acknowledged that may not
// be kept, and the reopened session has every change acknowledged before.
//
// # Files
//
// The directory holds session.log, the log; LOCK, which the session
// holds locked with flock(2) while it is open, so that a second Open, in
// this process or another, fails (the kernel drops the lock when the
// process dies, so a crash leaves no stale lock); and, for a moment
// during a compaction, session.log.compact. On systems without flock(2)
// (Windows, Plan 9) there is no lock: open a directory from one process
// only, and know that the directory fsync after a compaction's rename is
// not done there.
//
// # Format
//
// session.log starts with a 16-byte header: "TERNSESS", the format
// version (uint32, now 1) and four zero bytes. Records follow, each
//
//	length  uint32  bytes of type and body
//	crc     uint32  CRC-32C (Castagnoli) of type and body
//	type    byte
//	body    length-1 bytes
//
// with integers little-endian. The types are
//
//	1 add outgoing  seq uint64, packet id uint16, flags byte (1 released,
//	                2 Created set, 4 Expires set), QoS byte, Created and
//	                Expires (int64 Unix seconds, uint32 nanoseconds each),
//	                From (uint16 length, bytes), and the message encoded
//	                as an MQTT 5 PUBLISH of QoS 0 by package packet: topic,
//	                retain flag, every property, payload
//	2 sent          seq uint64, packet id uint16
//	3 released      seq uint64
//	4 delete        seq uint64
//	5 add incoming  packet id uint16
//	6 del incoming  packet id uint16
//	7 clear         (empty)
//
// Properties a PUBLISH cannot carry (a message has none) are not kept.
// Open replays the log into an index in memory. A record cut short or
// failing its checksum is a write a crash tore: it and everything after
// it are cut off the file (reported to Options.Logger with the offset
// and the bytes dropped), and the log goes on from the last whole
// record. A record whose checksum holds but which does not parse (an
// unknown type, say) is not a torn write: Open refuses the log rather
// than drop what follows it.
//
// # Compaction
//
// Changes that later ones made moot (a message added, sent and
// deleted) stay in the log as dead bytes. Once there are
// Options.CompactBytes of them (4 MiB by default) and at least as many
// as live ones, the writer rewrites the live state into
// session.log.compact (one add record per message, with its current
// packet id and release flag, and one record per pending incoming id),
// fsyncs it, renames it over session.log and fsyncs the directory. A
// crash before the rename leaves the old log, complete, and a leftover
// that Open removes; after it, the new log. So the log stays within
// about twice the live state plus CompactBytes, and its cost is
// amortized over the bytes written since the last one. Calls wait while
// it runs; Outgoing holds it off while it reads.
//
// # Memory
//
// The index keeps about 35 bytes per message (sequence number, offset
// and size of its add record, packet id, release flag), not the
// message: Outgoing reads the messages back from the log, in file order
// with 1 MiB reads, and decodes them. The memory store keeps about 500
// bytes for a message with a 64-byte payload, so a long offline queue
// costs this store about a fourteenth of that, and a client, which holds
// the messages it is sending anyway, does not hold them twice. Reading
// back is done at a restart and after a reconnect; at about 1 µs per
// message (100,000 messages in about 0.1 s on a small VM), it is not
// worth a copy in memory. Opening a session of 100,000 messages takes
// about 30 ms.
//
// The log is meant to be extended (for the broker's sessions,
// subscriptions and retained messages) and measured against embedded
// engines such as bbolt or Pebble: new record types fit beside these,
// and the header's format version guards incompatible changes.
package disk
