package session

// IDs allocates MQTT packet identifiers (1 to 65535) in O(1): fresh ids
// are handed out in order until all have been used once, and released ids
// are reused from a free list after that. The zero value is ready to use.
// IDs is not safe for concurrent use; the session's lock guards it.
type IDs struct {
	fresh uint32           // the next never-used id minus one
	free  []uint16         // released ids, reused last in first out
	used  *[64]*[16]uint64 // in-use bits in chunks of 1024 ids, both levels allocated on first use
	n     int
}

// bit returns the word and mask of id's in-use bit, allocating its chunk
// if alloc is set; word is nil when the chunk does not exist. The table
// of chunks is allocated on first use too, so that the IDs of a session
// that never sends QoS 1 or 2 costs a few words.
func (a *IDs) bit(id uint16, alloc bool) (*uint64, uint64) {
	if a.used == nil {
		if !alloc {
			return nil, 0
		}
		a.used = new([64]*[16]uint64)
	}
	c := a.used[id>>10]
	if c == nil {
		if !alloc {
			return nil, 0
		}
		c = new([16]uint64)
		a.used[id>>10] = c
	}
	return &c[(id>>6)&15], 1 << (id & 63)
}

// Alloc returns an unused packet identifier and marks it used, or false
// when all 65535 are in use.
func (a *IDs) Alloc() (uint16, bool) {
	var id uint16
	switch {
	case len(a.free) > 0:
		id = a.free[len(a.free)-1]
		a.free = a.free[:len(a.free)-1]
	case a.fresh < 65535:
		a.fresh++
		id = uint16(a.fresh)
	default:
		return 0, false
	}
	w, m := a.bit(id, true)
	*w |= m
	a.n++
	return id, true
}

// Use marks id as used, for state restored from a store or a resent
// packet; it reports false if id was already in use or is 0.
func (a *IDs) Use(id uint16) bool {
	if id == 0 || a.InUse(id) {
		return false
	}
	// Take it off the free list or out of the fresh range.
	for i, f := range a.free {
		if f == id {
			a.free = append(a.free[:i], a.free[i+1:]...)
			break
		}
	}
	for uint32(id) > a.fresh {
		a.fresh++
		if uint32(id) != a.fresh {
			a.free = append(a.free, uint16(a.fresh))
		}
	}
	w, m := a.bit(id, true)
	*w |= m
	a.n++
	return true
}

// Free releases id; it reports false if id was not in use.
func (a *IDs) Free(id uint16) bool {
	if !a.InUse(id) {
		return false
	}
	w, m := a.bit(id, false)
	*w &^= m
	a.free = append(a.free, id)
	a.n--
	return true
}

// InUse reports whether id is allocated.
func (a *IDs) InUse(id uint16) bool {
	w, m := a.bit(id, false)
	return id != 0 && w != nil && *w&m != 0
}

// Len returns the number of ids in use.
func (a *IDs) Len() int { return a.n }
