package mqtttest

import (
	"os"
	"path/filepath"
	"testing"
)

// CopyFiles copies the regular files of directory src into a new
// temporary directory of t and returns it: the files as they are now,
// what a process killed at this moment leaves on disk, for crash tests
// of a store. A file that is gone by the time it is read (a store's
// temporary file, renamed or removed meanwhile) is left out, as a crash
// just after its removal would.
func CopyFiles(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("mqtttest.CopyFiles: %v", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatalf("mqtttest.CopyFiles: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatalf("mqtttest.CopyFiles: %v", err)
		}
	}
	return dst
}
