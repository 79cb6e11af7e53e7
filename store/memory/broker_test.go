package memory_test

import (
	"testing"

	"github.com/ternmq/tern/store"
	"github.com/ternmq/tern/store/memory"
	"github.com/ternmq/tern/store/storetest"
)

func TestBrokerConformance(t *testing.T) {
	storetest.RunBroker(t, storetest.BrokerConfig{
		Open: func(t testing.TB, dir string) (store.Broker, error) { return memory.NewBroker(), nil },
	})
}
