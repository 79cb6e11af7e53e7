package disk

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ternmq/tern/store"
)

// DefaultCompactBytes is the default of Options.CompactBytes and
// BrokerOptions.CompactBytes.
const DefaultCompactBytes = 4 << 20

// oldSessionLog is the file of the client session store of Tern before
// it ran on the broker log (format "TERNSESS" version 1). Open refuses a
// directory that holds one rather than start an empty session beside it.
const oldSessionLog = "session.log"

// sessionKey is the client id under which a client's session is kept in
// its broker log: the directory holds that one session.
const sessionKey = "client"

// Options tunes a session store. The zero value keeps every change
// through a kill -9 of the process, not through a power loss.
type Options struct {
	// Sync makes every call return only once its change is on stable
	// storage (fsync), so that it survives a power loss or an OS crash.
	// Concurrent calls share one fsync (group commit). It is
	// BrokerOptions.Sync's SyncAlways; without it, SyncNone.
	Sync bool
	// CompactBytes is how much the log may grow beyond twice its size at
	// the last compaction (or open) before it is rewritten with the live
	// state alone. 0 means DefaultCompactBytes.
	CompactBytes int64
	// Logger receives what the store reports of itself (a torn tail
	// dropped at open, a failed write or compaction). nil means
	// slog.Default().
	Logger *slog.Logger
}

// Session is a client's session stored in a directory: a
// [store.BrokerSession] over the [Broker] log of that directory, which
// it owns. It is safe for concurrent use.
type Session struct {
	*store.BrokerSession
	b *Broker
}

var _ store.Session = (*Session)(nil)

// Open opens the session stored in dir, creating dir and an empty
// session if there is none. It replays the log into memory, drops a torn
// tail a crash left (reported to Options.Logger) and locks dir against
// other processes until Close. A directory written by the earlier,
// separate session format (a session.log file) is refused with an error
// that names the file.
func Open(dir string, opts Options) (*Session, error) {
	if opts.CompactBytes < 0 {
		return nil, fmt.Errorf("store/disk: Options.CompactBytes is %d: set a positive number of bytes, or 0 for the default (%d)", opts.CompactBytes, DefaultCompactBytes)
	}
	old := filepath.Join(dir, oldSessionLog)
	if _, err := os.Stat(old); err == nil {
		return nil, fmt.Errorf("store/disk: %s is a client session log of the format Tern used before its sessions were kept in the broker log (%s); this Tern does not read it: move it away (or delete the directory) to start the session afresh, or run the Tern that wrote it to send what it holds", old, BrokerLogName)
	}
	// The session loads at every reconnection (Outgoing): keep its state,
	// which is small, in memory rather than replay the log each time.
	bopts := BrokerOptions{CompactBytes: opts.CompactBytes, Logger: opts.Logger, KeepState: true}
	if !opts.Sync {
		bopts.Sync = SyncNone
	}
	b, err := OpenBroker(dir, bopts)
	if err != nil {
		return nil, err
	}
	bs, err := store.NewBrokerSession(context.Background(), b, sessionKey, true)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &Session{BrokerSession: bs, b: b}, nil
}

// Broker returns the log the session is kept in (for its Size, Syncs
// and Compact).
func (s *Session) Broker() *Broker { return s.b }
