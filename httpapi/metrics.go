package httpapi

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ternmq/tern/broker"
)

// Collector exports a broker's counters as Prometheus metrics. It reads
// them when scraped (Server.Stats, Connects, Clients): the broker keeps
// plain atomic counters on its hot path and nothing per scrape interval.
type Collector struct {
	srv *broker.Server
}

// NewCollector returns the collector of srv's metrics.
func NewCollector(srv *broker.Server) *Collector { return &Collector{srv: srv} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tern_"+name, help, labels, nil)
}

// The metrics, by Prometheus's conventions: a tern_ prefix, base units
// (seconds, bytes), _total for counters.
var (
	mBuildInfo      = desc("build_info", "The broker's version, as a label; always 1.", "version")
	mUptime         = desc("uptime_seconds", "Time since the broker started.")
	mConnections    = desc("connections", "Client connections open now, by listener and MQTT protocol version.", "listener", "protocol")
	mSessions       = desc("sessions", "Client sessions, by state: connected, or offline (persistent sessions waiting for their client).", "state")
	mConnects       = desc("connects_accepted_total", "CONNECTs accepted.")
	mRefused        = desc("connects_refused_total", "CONNECTs refused, by reason code.", "reason")
	mFailed         = desc("connections_failed_total", "Connections that ended before their CONNECT could be judged, by why.", "reason")
	mMsgsIn         = desc("messages_received_total", "Application messages received (from clients, the broker's own publishers, other nodes), by QoS.", "qos")
	mMsgsOut        = desc("messages_sent_total", "Application messages sent to clients, by QoS.", "qos")
	mPayloadIn      = desc("payload_received_bytes_total", "Payload bytes of the messages received, by QoS.", "qos")
	mPayloadOut     = desc("payload_sent_bytes_total", "Payload bytes of the messages sent, by QoS.", "qos")
	mBytesIn        = desc("network_received_bytes_total", "Bytes read from client connections, every packet included.")
	mBytesOut       = desc("network_sent_bytes_total", "Bytes written to client connections, every packet included.")
	mDropped        = desc("messages_dropped_total", "Messages not delivered to a session, by reason.", "reason")
	mQueued         = desc("session_queued_messages", "Messages waiting in the sessions' queues, over all sessions.")
	mQueuedMax      = desc("session_queued_messages_max", "The longest session queue.")
	mInflight       = desc("session_inflight_messages", "QoS 1 and 2 messages sent and not yet acknowledged, over all sessions.")
	mRetained       = desc("retained_messages", "Retained messages, not counting the broker's own $SYS ones.")
	mSubscriptions  = desc("subscriptions", "Subscriptions, shared ones included.")
	mRoute          = desc("route_duration_seconds", "Time from a message's arrival to its place in every subscriber's queue (the store's write included).")
	mStoreApplies   = desc("store_applies_total", "Batches of changes written to the store.")
	mStoreFailures  = desc("store_apply_failures_total", "Batches the store failed to write.")
	mStoreLatency   = desc("store_apply_duration_seconds", "Time to write one batch to the store, durably as configured.")
	mClusterInfo    = desc("cluster_info", "The back plane's engine and this node's id, as labels; always 1.", "engine", "node")
	mClusterUp      = desc("cluster_reachable", "1 when the back plane answered the node's last call.")
	mClusterFwd     = desc("cluster_forwarded_messages_total", "Messages the back plane accepted for the other nodes.")
	mClusterRecv    = desc("cluster_received_messages_total", "Messages received from other nodes.")
	mClusterFail    = desc("cluster_forward_failures_total", "Messages the back plane did not accept.")
	mClusterTakeovr = desc("cluster_takeovers_total", "Connections closed because their client connected to another node.")
)

var allDescs = []*prometheus.Desc{mBuildInfo, mUptime, mConnections, mSessions, mConnects, mRefused, mFailed,
	mMsgsIn, mMsgsOut, mPayloadIn, mPayloadOut, mBytesIn, mBytesOut, mDropped, mQueued, mQueuedMax, mInflight,
	mRetained, mSubscriptions, mRoute, mStoreApplies, mStoreFailures, mStoreLatency,
	mClusterInfo, mClusterUp, mClusterFwd, mClusterRecv, mClusterFail, mClusterTakeovr}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

var qosLabels = [3]string{"0", "1", "2"}

// snakeCase turns a reason code's name ("Bad User Name or Password")
// into a label value ("bad_user_name_or_password").
func snakeCase(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), " ", "_")
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	hist := func(d *prometheus.Desc, h broker.Histogram) {
		buckets := make(map[float64]uint64, len(h.Bounds))
		for i, b := range h.Bounds {
			buckets[b] = h.Cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
	}

	gauge(mBuildInfo, 1, broker.Version)
	gauge(mUptime, st.Uptime.Seconds())

	type lp struct{ listener, protocol string }
	conns := map[lp]int{}
	var online, offline, queued, queuedMax, inflight int
	for _, cl := range c.srv.Clients() {
		queued += cl.Queued
		queuedMax = max(queuedMax, cl.Queued)
		inflight += cl.Inflight
		if !cl.Connected {
			offline++
			continue
		}
		online++
		conns[lp{cl.Listener, cl.Version.String()}]++
	}
	for k, n := range conns {
		gauge(mConnections, float64(n), k.listener, k.protocol)
	}
	gauge(mSessions, float64(online), "connected")
	gauge(mSessions, float64(offline), "offline")
	gauge(mQueued, float64(queued))
	gauge(mQueuedMax, float64(queuedMax))
	gauge(mInflight, float64(inflight))

	cs := c.srv.Connects()
	counter(mConnects, cs.Accepted)
	for code, n := range cs.Refused {
		counter(mRefused, n, snakeCase(code.String()))
	}
	for why, n := range cs.Failed {
		counter(mFailed, n, why)
	}

	for q := range 3 {
		counter(mMsgsIn, st.MessagesReceivedByQoS[q], qosLabels[q])
		counter(mMsgsOut, st.MessagesSentByQoS[q], qosLabels[q])
		counter(mPayloadIn, st.PayloadReceivedByQoS[q], qosLabels[q])
		counter(mPayloadOut, st.PayloadSentByQoS[q], qosLabels[q])
	}
	counter(mBytesIn, st.BytesReceived)
	counter(mBytesOut, st.BytesSent)

	other := st.Dropped - min(st.Dropped, st.DroppedQueueFull+st.DroppedTooLarge+st.DroppedNotAuthorized+st.DroppedNoMember)
	counter(mDropped, st.DroppedQueueFull, "queue_full")
	counter(mDropped, st.DroppedTooLarge, "too_large")
	counter(mDropped, st.DroppedNotAuthorized, "not_authorized")
	counter(mDropped, st.DroppedNoMember, "no_member")
	counter(mDropped, st.DroppedOffline, "offline_qos0")
	counter(mDropped, other, "other")

	gauge(mRetained, float64(st.Retained))
	gauge(mSubscriptions, float64(st.Subscriptions))
	hist(mRoute, st.RouteLatency)

	if c.srv.Store != nil {
		counter(mStoreApplies, st.StoreApplies)
		counter(mStoreFailures, st.StoreFailures)
		hist(mStoreLatency, st.StoreLatency)
	}
	if st.ClusterEngine != "" {
		gauge(mClusterInfo, 1, st.ClusterEngine, st.ClusterNode)
		up := 0.0
		if st.ClusterReachable {
			up = 1
		}
		gauge(mClusterUp, up)
		counter(mClusterFwd, st.ClusterForwarded)
		counter(mClusterRecv, st.ClusterReceived)
		counter(mClusterFail, st.ClusterForwardFailures)
		counter(mClusterTakeovr, st.ClusterTakeovers)
	}
}

// MetricNames lists the names of the broker's metrics (without the Go
// runtime's and the process's), for documentation and tests.
func MetricNames() []string {
	names := make([]string, 0, len(allDescs))
	for _, d := range allDescs {
		s := d.String() // Desc{fqName: "tern_…", …}
		if i := strings.Index(s, `fqName: "`); i >= 0 {
			s = s[i+len(`fqName: "`):]
			s = s[:strings.IndexByte(s, '"')]
		}
		names = append(names, s)
	}
	return names
}
