package session

// Reserve takes a packet identifier from the window's pool without a
// flight, for a SUBSCRIBE or UNSUBSCRIBE: an identifier is unique across
// every packet of a kind that awaits an acknowledgement, PUBLISH,
// SUBSCRIBE and UNSUBSCRIBE alike [v5 MQTT-2.2.1-3] [v3 MQTT-2.3.1-2],
// so a client that drives Outbound draws them all from one pool. A
// reserved identifier does not count against the window; give it back
// with Unreserve. It returns false when all 65535 are in use.
func (o *Outbound[T]) Reserve() (uint16, bool) { return o.ids.Alloc() }

// Unreserve gives back an identifier taken with Reserve; it reports false
// if id was not in use or belongs to a flight.
func (o *Outbound[T]) Unreserve(id uint16) bool {
	if o.flights[id] != nil {
		return false
	}
	return o.ids.Free(id)
}
