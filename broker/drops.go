package broker

import (
	"log/slog"
	"strings"
	"time"
)

// Dropped messages: every message the broker fails to deliver to a
// session is counted (Stats, $SYS), reported to Observers, and logged,
// per client, in a warning that sums up the drops: the first drop is
// logged at once, and the drops that follow within dropLogDefault of a
// line are logged together when that time has passed (or at shutdown),
// so a client that loses thousands of messages costs a line every ten
// seconds and every drop is in a line.

// dropLogDefault is the shortest time between two drop lines of a client.
const dropLogDefault = 10 * time.Second

// dropReason is why a message was dropped.
type dropReason uint8

const (
	dropQueueFull dropReason = iota
	dropTooLarge
	dropDenied
	dropNoMember
	dropOther // e.g. a message that cannot be encoded
	nDropReasons
)

// dropKeys name the reasons in logs and $SYS topics.
var dropKeys = [nDropReasons]string{"queue-full", "too-large", "not-authorized", "no-member", "other"}

func reasonOf(why error) dropReason {
	switch why {
	case errQueueFull:
		return dropQueueFull
	case errTooLarge:
		return dropTooLarge
	case errDenied:
		return dropDenied
	case errNoMember:
		return dropNoMember
	}
	return dropOther
}

// dropLog is a session's account of its dropped messages, guarded by
// the session's mu.
type dropLog struct {
	total   uint64               // since the session began
	pending [nDropReasons]uint64 // since the last line
	texts   [nDropReasons]string // the error of each pending reason
	last    time.Time            // when the last line was written
	armed   bool                 // a timer will write the pending drops
}

// dropLine is one warning to write.
type dropLine struct {
	client, user string
	since, total uint64
	by           [nDropReasons]uint64
	texts        [nDropReasons]string
}

// take returns the pending drops as a line and starts a new period.
func (d *dropLog) take(now time.Time) dropLine {
	l := dropLine{total: d.total, by: d.pending, texts: d.texts}
	for _, n := range d.pending {
		l.since += n
	}
	d.pending = [nDropReasons]uint64{}
	d.texts = [nDropReasons]string{}
	d.last = now
	return l
}

// dropped counts and reports a message that was not delivered to s.
func (srv *Server) dropped(s *session, m *Message, why error) {
	if why == errOffline {
		srv.stats.offlineQoS0.Add(1)
		return // QoS 0 to an offline client is discarded by design, not lost
	}
	r := reasonOf(why)
	srv.stats.dropped.Add(1)
	srv.stats.droppedBy[r].Add(1)

	every := srv.dropLogEvery
	if every <= 0 {
		every = dropLogDefault
	}
	now := time.Now()
	var line dropLine
	var write bool
	var arm time.Duration
	s.mu.Lock()
	d := s.drops
	if d == nil {
		d = &dropLog{}
		s.drops = d
	}
	d.total++
	d.pending[r]++
	d.texts[r] = why.Error()
	if !d.armed {
		if d.last.IsZero() || now.Sub(d.last) >= every {
			line, write = d.take(now), true
		} else {
			d.armed = true
			arm = d.last.Add(every).Sub(now)
		}
	}
	info := s.info
	s.mu.Unlock()
	if write {
		srv.logDrops(s, info, line)
	}
	if arm > 0 {
		srv.armDropTimer(s, arm)
	}
	if len(srv.Observers) > 0 {
		srv.observe(Event{Kind: EventDrop, Client: &info, Topic: m.Topic, QoS: m.QoS, Message: m, Err: why})
	}
}

// armDropTimer writes the pending drops of s after d, or now if the
// server has stopped.
func (srv *Server) armDropTimer(s *session, d time.Duration) {
	srv.dropMu.Lock()
	if srv.dropsDone {
		srv.dropMu.Unlock()
		srv.flushDrops(s)
		return
	}
	if srv.dropTimers == nil {
		srv.dropTimers = map[*session]*time.Timer{}
	}
	srv.dropTimers[s] = time.AfterFunc(d, func() {
		srv.dropMu.Lock()
		delete(srv.dropTimers, s)
		srv.dropMu.Unlock()
		srv.flushDrops(s)
	})
	srv.dropMu.Unlock()
}

// flushDrops writes the pending drops of s, if any.
func (srv *Server) flushDrops(s *session) {
	s.mu.Lock()
	d := s.drops
	var line dropLine
	write := false
	if d != nil {
		d.armed = false
		for _, n := range d.pending {
			if n > 0 {
				write = true
			}
		}
		if write {
			line = d.take(time.Now())
		}
	}
	info := s.info
	s.mu.Unlock()
	if write {
		srv.logDrops(s, info, line)
	}
}

// finishDrops writes every pending drop line when the server stops; from
// then on drops are logged at once.
func (srv *Server) finishDrops() {
	srv.dropMu.Lock()
	srv.dropsDone = true
	timers := srv.dropTimers
	srv.dropTimers = nil
	srv.dropMu.Unlock()
	for s, t := range timers {
		t.Stop()
		srv.flushDrops(s)
	}
}

// logDrops writes one drop warning of session s.
func (srv *Server) logDrops(s *session, info ClientInfo, l dropLine) {
	var reasons []string
	var by []any
	for r, n := range l.by {
		if n > 0 {
			reasons = append(reasons, l.texts[r])
			by = append(by, dropKeys[r], n)
		}
	}
	client := s.id
	if s.inline != nil {
		client = "(in-process subscription)"
	}
	srv.cfg.log.Warn("messages dropped", "client", client, userAttr(info.Username),
		"dropped", l.since, "dropped_total", l.total, "reason", strings.Join(reasons, "; "), slog.Group("by_reason", by...),
		"queue_limit", srv.cfg.maxQueued, "policy", srv.QueuePolicy.String())
}
