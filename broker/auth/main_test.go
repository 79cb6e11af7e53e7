package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind (the
// end-to-end tests start a broker).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
