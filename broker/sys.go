package broker

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Version is the broker version reported in $SYS/broker/version.
var Version = "tern dev"

// stats are the broker's counters, read by $SYS and Stats.
type stats struct {
	connected     atomic.Int64
	total         atomic.Uint64
	msgsIn        atomic.Uint64
	msgsOut       atomic.Uint64
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64
	subscriptions atomic.Int64
	dropped       atomic.Uint64
	droppedBy     [nDropReasons]atomic.Uint64
	offlineQoS0   atomic.Uint64
}

// Stats is a snapshot of the broker's counters.
type Stats struct {
	Uptime           time.Duration
	ClientsConnected int64
	ClientsTotal     uint64 // connections accepted since start
	MessagesReceived uint64
	MessagesSent     uint64
	BytesReceived    uint64
	BytesSent        uint64
	Subscriptions    int64
	Retained         int
	Dropped          uint64 // messages not delivered, for every reason: those below, and a message that cannot be encoded
	Sessions         int

	DroppedQueueFull     uint64 // the session's queue was full (MaxQueuedMessages)
	DroppedTooLarge      uint64 // larger than the client's Maximum Packet Size
	DroppedNotAuthorized uint64 // the ReceiveAuthorizer refused it, or did not answer in time
	DroppedNoMember      uint64 // no member of a shared subscription group could take it
}

// Stats returns the broker's counters.
func (s *Server) Stats() Stats {
	s.init()
	s.regMu.Lock()
	sessions := len(s.sessions)
	s.regMu.Unlock()
	return Stats{
		Uptime:           time.Since(s.started),
		ClientsConnected: s.stats.connected.Load(),
		ClientsTotal:     s.stats.total.Load(),
		MessagesReceived: s.stats.msgsIn.Load(),
		MessagesSent:     s.stats.msgsOut.Load(),
		BytesReceived:    s.stats.bytesIn.Load(),
		BytesSent:        s.stats.bytesOut.Load(),
		Subscriptions:    s.stats.subscriptions.Load(),
		Retained:         s.retained.len(),
		Dropped:          s.stats.dropped.Load(),
		Sessions:         sessions,

		DroppedQueueFull:     s.stats.droppedBy[dropQueueFull].Load(),
		DroppedTooLarge:      s.stats.droppedBy[dropTooLarge].Load(),
		DroppedNotAuthorized: s.stats.droppedBy[dropDenied].Load(),
		DroppedNoMember:      s.stats.droppedBy[dropNoMember].Load(),
	}
}

// sysLoop publishes $SYS/broker/... every SysInterval, as retained
// messages, with Mosquitto's topic names.
func (s *Server) sysLoop() {
	defer s.bgWG.Done()
	// Not Publish: $SYS messages are not counted as received, nor reported
	// to Observers.
	s.publish(&Message{Topic: "$SYS/broker/version", Payload: []byte(Version), Retain: true, Created: time.Now()}, nil)
	t := time.NewTicker(s.cfg.sysInterval)
	defer t.Stop()
	for {
		s.publishSys()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) publishSys() {
	s.retained.sweep(time.Now()) // so that the count below leaves expired messages out
	st := s.Stats()
	u := func(x uint64) []byte { return strconv.AppendUint(nil, x, 10) }
	i := func(x int64) []byte { return strconv.AppendInt(nil, x, 10) }
	for _, kv := range []struct {
		topic string
		val   []byte
	}{
		{"$SYS/broker/uptime", []byte(strconv.FormatInt(int64(st.Uptime/time.Second), 10) + " seconds")},
		{"$SYS/broker/clients/connected", i(st.ClientsConnected)},
		{"$SYS/broker/clients/total", i(int64(st.Sessions))},
		{"$SYS/broker/clients/active", i(st.ClientsConnected)},
		{"$SYS/broker/clients/disconnected", i(max(0, int64(st.Sessions)-st.ClientsConnected))},
		{"$SYS/broker/connections/total", u(st.ClientsTotal)},
		{"$SYS/broker/messages/received", u(st.MessagesReceived)},
		{"$SYS/broker/messages/sent", u(st.MessagesSent)},
		{"$SYS/broker/publish/messages/dropped", u(st.Dropped)},
		{"$SYS/broker/publish/messages/dropped/queue-full", u(st.DroppedQueueFull)},
		{"$SYS/broker/publish/messages/dropped/too-large", u(st.DroppedTooLarge)},
		{"$SYS/broker/publish/messages/dropped/not-authorized", u(st.DroppedNotAuthorized)},
		{"$SYS/broker/publish/messages/dropped/no-member", u(st.DroppedNoMember)},
		{"$SYS/broker/bytes/received", u(st.BytesReceived)},
		{"$SYS/broker/bytes/sent", u(st.BytesSent)},
		{"$SYS/broker/subscriptions/count", i(st.Subscriptions)},
		{"$SYS/broker/retained messages/count", i(int64(st.Retained))},
	} {
		s.publish(&Message{Topic: kv.topic, Payload: kv.val, Retain: true, Created: time.Now()}, nil)
	}
}
