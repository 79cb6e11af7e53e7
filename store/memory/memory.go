// Package memory keeps Tern's stores in memory: [Broker], a broker's
// whole state (the broker's default, and the model the conformance suite
// checks every other store against), and [Session], the default store
// of Tern's client, which is one session of a Broker (see
// [store.BrokerSession]), as store/disk's client session is one session
// of its broker log. A Session keeps a client's session across
// reconnects of one process and loses it when the process ends; use
// store/disk to keep it across restarts and crashes.
//
// Messages are kept by pointer, not copied: a [message.Message] is
// immutable once published. Every method is safe for concurrent use.
package memory

import (
	"context"

	"github.com/ternmq/tern/store"
)

// Session is one client session kept in memory: a [store.BrokerSession]
// over a Broker of its own.
type Session = store.BrokerSession

// New returns an empty session.
func New() *Session {
	s, _ := store.NewBrokerSession(context.Background(), NewBroker(), "", true) // an open, empty Broker loads without fail
	return s
}
