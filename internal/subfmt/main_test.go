package subfmt

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// test server of peer_test.go runs one per mosquitto_sub run).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
