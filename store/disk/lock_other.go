//go:build !unix

package disk

import (
	"fmt"
	"os"
)

// lockDir opens the lock file but takes no lock: this system has no
// flock(2). Do not open one session directory from two processes here.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store/disk: opening the lock file: %w", err)
	}
	return f, nil
}

// syncDir does nothing: directories cannot be fsynced here. A rename
// then becomes durable when the file system commits its metadata, which
// NTFS does by itself soon after, without a promise of when.
func syncDir(string) error { return nil }
