//go:build unix

package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive flock(2) on the lock file at path, without
// waiting: a second process, or a second Open in this one, is refused
// while the first holds it. The kernel releases it when the process
// ends, however it ends, so a crash leaves no stale lock.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store/disk: opening the lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store/disk: the store in %s is open elsewhere (%s is locked by this or another process): close it there first, or give this one another directory: %w", filepath.Dir(path), path, ErrLocked)
		}
		return nil, fmt.Errorf("store/disk: locking %s: %w", path, err)
	}
	return f, nil
}

// syncDir fsyncs directory dir, so that names created or renamed in it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
