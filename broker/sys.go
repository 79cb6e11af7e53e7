package broker

import (
	"math"
	"runtime"
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
	msgsIn        [3]atomic.Uint64 // by QoS
	msgsOut       [3]atomic.Uint64 // by QoS
	payloadIn     [3]atomic.Uint64 // payload bytes of msgsIn
	payloadOut    [3]atomic.Uint64 // payload bytes of msgsOut
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64
	subscriptions atomic.Int64
	dropped       atomic.Uint64
	droppedBy     [nDropReasons]atomic.Uint64
	offlineQoS0   atomic.Uint64

	refused       [256]atomic.Uint64         // CONNECTs refused, by reason code
	failed        [nPreReasons]atomic.Uint64 // connections ended before their CONNECT was judged
	routeLatency  latencyHist                // arrival to the subscribers' queues
	storeApplies  atomic.Uint64              // calls of Store.Apply
	storeFailures atomic.Uint64              // those that failed
	storeLatency  latencyHist                // their durations
	storeClosed   atomic.Bool                // the last Apply said the store is closed

	// The node's view of its back plane (cluster.go).
	bpReachable  atomic.Bool
	bpForwarded  atomic.Uint64
	bpReceived   atomic.Uint64
	bpDuplicates atomic.Uint64
	bpFailed     atomic.Uint64
	bpTakeovers  atomic.Uint64
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
	Retained         int    // retained messages, not counting the broker's own under $SYS/
	Dropped          uint64 // messages not delivered, for every reason: those below, and a message that cannot be encoded
	Sessions         int

	DroppedQueueFull     uint64 // the session's queue was full (MaxQueuedMessages)
	DroppedTooLarge      uint64 // larger than the client's Maximum Packet Size
	DroppedNotAuthorized uint64 // the ReceiveAuthorizer refused it, or did not answer in time
	DroppedNoMember      uint64 // no member of a shared subscription group could take it
	DroppedOffline       uint64 // a QoS 0 message for an offline client (not counted in Dropped)

	// The same counts by QoS (index 0, 1, 2), and the payload bytes of
	// those messages.
	MessagesReceivedByQoS [3]uint64
	MessagesSentByQoS     [3]uint64
	PayloadReceivedByQoS  [3]uint64
	PayloadSentByQoS      [3]uint64

	// RouteLatency is the time from a message's arrival (its Created) to
	// its place in every subscriber's queue, the store's write included.
	RouteLatency Histogram

	// The Store's batches (all zero without a Store): Apply calls, those
	// that failed, and their durations.
	StoreApplies  uint64
	StoreFailures uint64
	StoreLatency  Histogram

	// ConnGoroutines counts the goroutines of client connections (readers,
	// writers) still running. It drops to 0 once Shutdown or Close has
	// returned and those goroutines have exited: a leak check for tests
	// (package mqtttest) that is exact per Server, where a process-wide
	// goroutine count is not.
	ConnGoroutines int64

	// The node's view of the cluster (Server.Backplane); all zero without
	// a back plane.
	ClusterEngine          string // the back plane's engine: "memory", "redis", "nats" (its package name)
	ClusterNode            string // this node's ID on the back plane
	ClusterReachable       bool   // the engine answered the node's last call (the $SYS update checks it)
	ClusterForwarded       uint64 // messages the engine accepted for the other nodes
	ClusterReceived        uint64 // messages received from other nodes, the wills of dead nodes included
	ClusterDuplicates      uint64 // messages the back plane delivered again after a restart, skipped because the store had them
	ClusterForwardFailures uint64 // messages the engine did not accept (a QoS 1 or 2 one was refused to its publisher)
	ClusterTakeovers       uint64 // connections closed because their client connected to another node
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
		MessagesReceived: sum3(&s.stats.msgsIn),
		MessagesSent:     sum3(&s.stats.msgsOut),

		MessagesReceivedByQoS: load3(&s.stats.msgsIn),
		MessagesSentByQoS:     load3(&s.stats.msgsOut),
		PayloadReceivedByQoS:  load3(&s.stats.payloadIn),
		PayloadSentByQoS:      load3(&s.stats.payloadOut),
		RouteLatency:          s.stats.routeLatency.snapshot(),
		StoreApplies:          s.stats.storeApplies.Load(),
		StoreFailures:         s.stats.storeFailures.Load(),
		StoreLatency:          s.stats.storeLatency.snapshot(),

		BytesReceived: s.stats.bytesIn.Load(),
		BytesSent:     s.stats.bytesOut.Load(),
		Subscriptions: s.stats.subscriptions.Load(),
		Retained:      s.retained.userLen(),
		Dropped:       s.stats.dropped.Load(),
		Sessions:      sessions,

		DroppedQueueFull:     s.stats.droppedBy[dropQueueFull].Load(),
		DroppedTooLarge:      s.stats.droppedBy[dropTooLarge].Load(),
		DroppedNotAuthorized: s.stats.droppedBy[dropDenied].Load(),
		DroppedNoMember:      s.stats.droppedBy[dropNoMember].Load(),
		DroppedOffline:       s.stats.offlineQoS0.Load(),

		ConnGoroutines: s.live.Load(),

		ClusterEngine:          s.clusterEngine(),
		ClusterNode:            s.NodeID(),
		ClusterReachable:       s.bp != nil && s.stats.bpReachable.Load(),
		ClusterForwarded:       s.stats.bpForwarded.Load(),
		ClusterReceived:        s.stats.bpReceived.Load(),
		ClusterDuplicates:      s.stats.bpDuplicates.Load(),
		ClusterForwardFailures: s.stats.bpFailed.Load(),
		ClusterTakeovers:       s.stats.bpTakeovers.Load(),
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
	sys := sysState{last: s.started}
	for {
		s.publishSys(&sys)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sysState is what the $SYS loop carries from one update to the next:
// the load averages, the counters they were last fed, and the largest
// heap seen.
type sysState struct {
	last    time.Time
	prev    [nLoads]uint64
	loads   [nLoads]loadAvg
	heapMax uint64
}

// The counters whose rates are published under $SYS/broker/load/.
const (
	loadMsgsIn = iota
	loadMsgsOut
	loadBytesIn
	loadBytesOut
	loadDropped
	loadConnections
	nLoads
)

// loadTopics are the $SYS/broker/load/ topics of each counter, as
// Mosquitto names them. Tern counts PUBLISH packets as messages, so
// messages/... and publish/... carry the same figures.
var loadTopics = [nLoads][]string{
	loadMsgsIn:      {"messages/received", "publish/received"},
	loadMsgsOut:     {"messages/sent", "publish/sent"},
	loadBytesIn:     {"bytes/received"},
	loadBytesOut:    {"bytes/sent"},
	loadDropped:     {"publish/dropped"},
	loadConnections: {"connections"},
}

// loadWindows are the periods of the moving averages, with the topic
// suffix of each.
var loadWindows = [3]struct {
	d    time.Duration
	name string
}{{time.Minute, "1min"}, {5 * time.Minute, "5min"}, {15 * time.Minute, "15min"}}

// loadAvg holds the 1, 5 and 15 minute moving averages of one counter's
// rate, computed as Mosquitto does: at each update the rate over the
// interval since the previous one, in events per minute, is folded into
// each average with weight 1 - exp(-interval / period). The figures are
// events per minute, averaged over 1, 5 or 15 minutes.
type loadAvg [3]float64

// update folds in delta events counted over dt.
func (l *loadAvg) update(delta uint64, dt time.Duration) {
	if dt <= 0 {
		return
	}
	perMinute := float64(delta) * float64(time.Minute) / float64(dt)
	for i, w := range loadWindows {
		e := math.Exp(-float64(dt) / float64(w.d))
		l[i] = e*l[i] + (1-e)*perMinute
	}
}

func (s *Server) publishSys(sys *sysState) {
	now := time.Now()
	s.retained.sweep(now) // so that the count below leaves expired messages out
	s.clusterProbe()      // so that reachable is current without traffic
	st := s.Stats()
	u := func(x uint64) []byte { return strconv.AppendUint(nil, x, 10) }
	i := func(x int64) []byte { return strconv.AppendInt(nil, x, 10) }
	put := func(topic string, val []byte) {
		s.publish(&Message{Topic: topic, Payload: val, Retain: true, Created: now}, nil)
	}
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
		put(kv.topic, kv.val)
	}

	if st.ClusterNode != "" {
		// The node's view of the cluster; nothing without a back plane.
		reachable := []byte("0")
		if st.ClusterReachable {
			reachable = []byte("1")
		}
		put("$SYS/broker/cluster/engine", []byte(st.ClusterEngine))
		put("$SYS/broker/cluster/node", []byte(st.ClusterNode))
		put("$SYS/broker/cluster/reachable", reachable)
		put("$SYS/broker/cluster/forwarded/sent", u(st.ClusterForwarded))
		put("$SYS/broker/cluster/forwarded/received", u(st.ClusterReceived))
		put("$SYS/broker/cluster/forwarded/duplicates", u(st.ClusterDuplicates))
		put("$SYS/broker/cluster/forwarded/failed", u(st.ClusterForwardFailures))
		put("$SYS/broker/cluster/takeovers", u(st.ClusterTakeovers))
	}

	// Load averages.
	counts := [nLoads]uint64{
		loadMsgsIn:      st.MessagesReceived,
		loadMsgsOut:     st.MessagesSent,
		loadBytesIn:     st.BytesReceived,
		loadBytesOut:    st.BytesSent,
		loadDropped:     st.Dropped,
		loadConnections: st.ClientsTotal,
	}
	dt := now.Sub(sys.last)
	sys.last = now
	for k, n := range counts {
		sys.loads[k].update(n-sys.prev[k], dt)
		sys.prev[k] = n
		for _, name := range loadTopics[k] {
			for w, win := range loadWindows {
				put("$SYS/broker/load/"+name+"/"+win.name, strconv.AppendFloat(nil, sys.loads[k][w], 'f', 2, 64))
			}
		}
	}

	// The Go runtime: heap in use (live objects, as Mosquitto's heap
	// figures count its allocations), its largest value seen at an update,
	// and goroutines.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	sys.heapMax = max(sys.heapMax, ms.HeapAlloc)
	put("$SYS/broker/heap/current", u(ms.HeapAlloc))
	put("$SYS/broker/heap/maximum", u(sys.heapMax))
	put("$SYS/broker/runtime/goroutines", i(int64(runtime.NumGoroutine())))
}
