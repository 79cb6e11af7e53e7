package bridge

import (
	"sync"

	"github.com/ternmq/tern/store"
)

// handoverStore is the durable session store of one side of a bridge.
// Outgoing messages go to the store as the client writes them; the packet
// identifier of a QoS 2 message received (AddIncoming, which the client
// records on arrival) reaches the store only once the bridge has handed the
// message to the other side, whose own store then holds it (handedOver).
//
// The client takes a QoS 2 PUBLISH whose identifier is in the store as
// one it has passed on already, and answers its resend with PUBREC without
// delivering it. Recorded on arrival, an identifier would make a restart
// lose the messages received and not yet handed over (waiting in the
// subscription's buffer behind a full queue on the other side): the source
// broker resends them, and the client would acknowledge them unseen.
// Recorded at the hand-over, a resend after a restart is delivered again
// exactly when the other side does not have the message.
type handoverStore struct {
	store.Session
	mu      sync.Mutex
	pending map[uint16]bool // received, not handed over
}

func newHandoverStore(s store.Session) *handoverStore {
	return &handoverStore{Session: s, pending: map[uint16]bool{}}
}

// AddIncoming notes the identifier; handedOver stores it.
func (s *handoverStore) AddIncoming(id uint16) error {
	s.mu.Lock()
	s.pending[id] = true
	s.mu.Unlock()
	return nil
}

// handedOver stores the identifier of a QoS 2 message now in the other
// side's store.
func (s *handoverStore) handedOver(id uint16) error {
	s.mu.Lock()
	p := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !p {
		return nil
	}
	return s.Session.AddIncoming(id)
}

func (s *handoverStore) DeleteIncoming(id uint16) error {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
	return s.Session.DeleteIncoming(id)
}

func (s *handoverStore) Clear() error {
	s.mu.Lock()
	clear(s.pending)
	s.mu.Unlock()
	return s.Session.Clear()
}
