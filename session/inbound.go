package session

import (
	"fmt"
	"sort"

	"github.com/ternmq/tern/packet"
)

// Inbound is the receiving side's QoS 2 exactly-once state: the packet
// identifiers of QoS 2 PUBLISHes received and acknowledged with PUBREC,
// and not yet released by PUBREL. It lives as long as the session, across
// connections, and is the same for a broker receiving from its clients as
// for a client receiving from its server (MQTT 5 section 4.3.3, MQTT 3.1.1
// section 4.3.3, method B: the message is passed on at PUBLISH and the
// packet identifier is remembered until PUBREL).
//
// Max is the Receive Maximum this side announced: the number of QoS 2
// PUBLISHes the peer may have unacknowledged at once (section 4.9); 0
// means no limit beyond the 65535 packet identifiers. The peer's send
// quota is not preserved across network connections (section 4.9): call
// NewConnection on each, and the ids still pending from an earlier one
// stop counting against Max. The zero value is ready to use. Inbound is
// not safe for concurrent use.
type Inbound struct {
	Max     int
	pending map[uint16]struct{}
	n       int // the peer's unacknowledged QoS 2 PUBLISHes on this connection, counted against Max
}

// ErrReceiveMaximum is returned by Inbound.Receive when the peer sent
// more unacknowledged QoS 2 PUBLISHes than the Receive Maximum it was
// given: DISCONNECT 0x93 (MQTT 5 section 3.3.4).
var ErrReceiveMaximum = &packet.ProtocolError{Code: packet.ReceiveMaximumExceeded, Packet: packet.PUBLISH,
	Spec: "v5 noid:receive-maximum", Msg: "more QoS 2 messages unacknowledged than the Receive Maximum"}

// Receive records a QoS 2 PUBLISH with packet identifier id. It reports
// whether the message is new and must be passed on; a PUBLISH whose id is
// still pending is a retransmission and is acknowledged again but not
// passed on a second time [v5 MQTT-4.3.3-10] [v3 MQTT-4.3.3-2]. A new
// message beyond Max (counting the ids received, less those released,
// since NewConnection, or all pending ids if it is never called) is
// refused with ErrReceiveMaximum, recording nothing.
// The caller answers PUBREC either way.
func (in *Inbound) Receive(id uint16) (first bool, err error) {
	if _, dup := in.pending[id]; dup {
		return false, nil
	}
	if in.Max > 0 && in.n >= in.Max {
		e := *ErrReceiveMaximum
		e.Msg = fmt.Sprintf("more than %d QoS 2 messages unacknowledged", in.Max)
		return false, &e
	}
	in.record(id)
	return true, nil
}

func (in *Inbound) record(id uint16) {
	if in.pending == nil {
		in.pending = map[uint16]struct{}{}
	}
	in.pending[id] = struct{}{}
	in.n++
}

// Release forgets id at PUBREL and reports whether it was pending; the
// caller answers PUBCOMP, with 0x92 Packet Identifier not found in MQTT 5
// when it was not [v5 MQTT-4.3.3-11] [v3 MQTT-4.3.3-2].
func (in *Inbound) Release(id uint16) bool {
	if _, ok := in.pending[id]; !ok {
		return false
	}
	delete(in.pending, id)
	if in.n > 0 {
		in.n--
	}
	return true
}

// NewConnection starts the count of unacknowledged QoS 2 PUBLISHes
// afresh, for a new network connection of the session: the send quota
// is not preserved across connections (MQTT 5 section 4.9). The ids
// still pending from an earlier connection stay pending, so that a
// PUBLISH sent again is still recognized and their PUBREL answered, but
// no longer count against Max; a peer that lost them would otherwise be
// refused on every new connection. The PUBREL of one of them still frees
// a unit of the count, as the peer counts the PUBCOMP that answers it.
func (in *Inbound) NewConnection() { in.n = 0 }

// Pending reports whether id awaits its PUBREL.
func (in *Inbound) Pending(id uint16) bool {
	_, ok := in.pending[id]
	return ok
}

// Len returns the number of packet identifiers awaiting PUBREL.
func (in *Inbound) Len() int { return len(in.pending) }

// IDs returns the pending packet identifiers in increasing order, for a
// store.
func (in *Inbound) IDs() []uint16 {
	ids := make([]uint16, 0, len(in.pending))
	for id := range in.pending {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Restore marks id pending, for state read back from a store.
func (in *Inbound) Restore(id uint16) {
	if _, ok := in.pending[id]; !ok {
		in.record(id)
	}
}

// Clear forgets every pending id: the session ended or started clean.
func (in *Inbound) Clear() { in.pending, in.n = nil, 0 }
