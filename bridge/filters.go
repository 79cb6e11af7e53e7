package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// filterFile remembers, in Config.Dir, the filters the bridge subscribed
// to on each side, so that a later Start with other mappings unsubscribes
// those no longer wanted. The sessions are persistent: without it a
// mapping removed from the configuration would leave its subscription in
// the bridge's session, bringing messages the bridge can only drop.
type filterFile struct {
	path string
	mu   sync.Mutex
	// Local and Remote are the filters subscribed to on each side.
	state struct {
		Local, Remote []string
	}
}

// openFilterFile reads dir's filters file; none (or dir "") is empty.
func openFilterFile(dir string) (*filterFile, error) {
	f := &filterFile{}
	if dir == "" {
		return f, nil
	}
	f.path = filepath.Join(dir, "filters.json")
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &f.state); err != nil {
		return nil, errors.New(f.path + ": " + err.Error() + " (delete the file: the bridge then keeps the subscriptions of mappings removed since)")
	}
	return f, nil
}

// replace unsubscribes (with unsub) the filters of a side that are not in
// now, and records now for that side.
func (f *filterFile) replace(ctx context.Context, remote bool, now []string, unsub func(ctx context.Context, filters ...string) error) error {
	if f.path == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := &f.state.Local
	if remote {
		old = &f.state.Remote
	}
	var stale []string
	for _, o := range *old {
		if !slices.Contains(now, o) {
			stale = append(stale, o)
		}
	}
	if len(stale) > 0 {
		if err := unsub(ctx, stale...); err != nil {
			return err
		}
	}
	*old = append([]string(nil), now...)
	data, err := json.Marshal(f.state)
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.path)
}
