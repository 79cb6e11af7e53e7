package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
	"github.com/ternmq/tern/store/storetest"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(testing.TB, string) (store.Session, error) { return memory.New(), nil },
	})
}

func BenchmarkCycle(b *testing.B) {
	for _, g := range []struct {
		name string
		n    int
	}{{"1", 1}, {"8", 8}} {
		b.Run("goroutines="+g.name, func(b *testing.B) {
			s := memory.New()
			defer s.Close()
			storetest.BenchmarkCycle(b, s, g.n)
		})
	}
}
