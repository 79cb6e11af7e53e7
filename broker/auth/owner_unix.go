//go:build unix

package auth

import (
	"os"
	"syscall"
)

// keepOwner gives f the owner and group of the file old describes, if the
// process may: a root user editing a file owned by the broker's account
// must not leave it unreadable by the broker.
func keepOwner(f *os.File, old os.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(st.Uid), int(st.Gid)) // best effort
	}
}
