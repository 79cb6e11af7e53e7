package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
)

// BrokerReport is what CheckBroker found in a broker data directory.
type BrokerReport struct {
	Path      string // the log
	Size      int64  // its size in bytes
	Valid     int64  // bytes of whole records (the log is cut here at the next open if Torn)
	Torn      string // why the tail after Valid is torn; "" if none
	Batches   int    // records read
	Sessions  int
	Queued    int // messages queued or in flight, over all sessions
	Retained  int
	Subscribe int // subscriptions, over all sessions
}

// CheckBroker reads the broker log in dir without changing anything
// (it does not take the lock, so it can check the files of a running
// broker, seeing what was written so far) and reports what it holds.
// Damage that OpenBroker would refuse is returned as its error; a torn
// tail, which OpenBroker drops, is reported in Torn.
func CheckBroker(dir string) (*BrokerReport, error) {
	path := filepath.Join(dir, BrokerLogName)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store/disk: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store/disk: %w", err)
	}
	rep := &BrokerReport{Path: path, Size: st.Size()}
	index := memory.NewBroker()
	end, torn, err := scanBrokerLog(f, rep.Size, path, func(cs []store.Change) error {
		rep.Batches++
		return index.Apply(context.Background(), cs...)
	})
	if errors.Is(err, errEmptyLog) {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	rep.Valid, rep.Torn = end, torn
	state, err := index.Load(context.Background())
	if err != nil {
		return rep, err
	}
	rep.Sessions, rep.Retained = len(state.Sessions), len(state.Retained)
	for _, s := range state.Sessions {
		rep.Queued += len(s.Queue)
		rep.Subscribe += len(s.Subs)
	}
	return rep, nil
}
