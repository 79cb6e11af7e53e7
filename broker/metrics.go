package broker

import (
	"errors"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/message"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/store"
)

// The counters behind Stats that a metrics exporter (package httpapi's
// Prometheus collector) reads. They cost an atomic add or two per
// message on the hot path: no lock, no allocation. Everything that is a
// level rather than a count (queues, in-flight windows, connections by
// listener) is taken from a snapshot when it is read (Clients), not kept
// up to date per message.

// histBuckets is the number of finite buckets of a latencyHist: upper
// bounds of 1 µs · 2^k, k = 0 … histBuckets-1 (1 µs to about 1 s).
const histBuckets = 21

// latencyHist is a lock-free histogram of durations with power-of-two
// buckets: observing one is a division, a bit count and two atomic adds.
type latencyHist struct {
	counts [histBuckets + 1]atomic.Uint64 // the last one: above the largest bound
	sumNs  atomic.Uint64
}

func (h *latencyHist) observe(d time.Duration) {
	ns := uint64(max(d, 0))
	k := 0
	if ns > 0 {
		k = bits.Len64((ns - 1) / 1000) // ns <= 1000 · 2^k
	}
	h.counts[min(k, histBuckets)].Add(1)
	h.sumNs.Add(ns)
}

// Histogram is a snapshot of a latency histogram, in Prometheus's shape.
type Histogram struct {
	// Bounds are the buckets' upper bounds in seconds, ascending.
	Bounds []float64
	// Cumulative[i] is the number of observations <= Bounds[i].
	Cumulative []uint64
	Count      uint64  // observations, those above the last bound included
	Sum        float64 // seconds
}

func (h *latencyHist) snapshot() Histogram {
	out := Histogram{Bounds: make([]float64, histBuckets), Cumulative: make([]uint64, histBuckets)}
	var run uint64
	for i := range histBuckets {
		run += h.counts[i].Load()
		out.Bounds[i] = float64(uint64(1000)<<i) / 1e9
		out.Cumulative[i] = run
	}
	out.Count = run + h.counts[histBuckets].Load()
	out.Sum = float64(h.sumNs.Load()) / 1e9
	return out
}

// qosIndex bounds a QoS for indexing the per-QoS counters.
func qosIndex(q byte) byte { return min(q, 2) }

// countIn counts a message that entered the broker.
func (st *stats) countIn(m *message.Message) {
	q := qosIndex(m.QoS)
	st.msgsIn[q].Add(1)
	st.payloadIn[q].Add(uint64(len(m.Payload)))
}

// countOut counts a message sent to a client at QoS q.
func (st *stats) countOut(q byte, payload int) {
	q = qosIndex(q)
	st.msgsOut[q].Add(1)
	st.payloadOut[q].Add(uint64(payload))
}

func sum3(a *[3]atomic.Uint64) uint64 { return a[0].Load() + a[1].Load() + a[2].Load() }

func load3(a *[3]atomic.Uint64) [3]uint64 { return [3]uint64{a[0].Load(), a[1].Load(), a[2].Load()} }

// routed records how long m took from its arrival to the queues of its
// subscribers.
func (st *stats) routed(m *message.Message) {
	if !m.Created.IsZero() {
		st.routeLatency.observe(time.Since(m.Created))
	}
}

// Reasons a connection ended before it was a client, besides the reason
// codes of a CONNACK (Stats.Refused).
const (
	preNotMQTT    = iota // not an MQTT protocol name
	preBadVersion        // an unsupported protocol version
	preBadConnect        // a malformed CONNECT
	preTimeout           // no CONNECT within the ConnectTimeout
	preClosed            // closed by the peer before its CONNECT
	preOther             // any other error before the CONNECT
	nPreReasons
)

var preKeys = [nPreReasons]string{"not_mqtt", "unsupported_protocol_version", "malformed_connect", "connect_timeout", "closed_before_connect", "network_error"}

// refusedCode counts a CONNECT refused with code.
func (st *stats) refusedCode(code packet.ReasonCode) { st.refused[code].Add(1) }

// appliedStore records one Apply of the store.
func (st *stats) appliedStore(took time.Duration, err error) {
	st.storeApplies.Add(1)
	st.storeLatency.observe(took)
	if err != nil {
		st.storeFailures.Add(1)
	}
	st.storeClosed.Store(errors.Is(err, store.ErrClosed))
}

// ConnectStats are the outcomes of the connections accepted by the
// listeners, from Stats.
type ConnectStats struct {
	// Accepted counts the clients whose CONNECT was accepted.
	Accepted uint64
	// Refused counts the CONNECTs refused, by the reason code that
	// refused them (the MQTT 5 code; 3.1.1 clients got the matching
	// return code, or a close).
	Refused map[packet.ReasonCode]uint64
	// Failed counts the connections that ended before a CONNECT could be
	// judged, by why: not_mqtt, unsupported_protocol_version,
	// malformed_connect, connect_timeout, closed_before_connect,
	// network_error.
	Failed map[string]uint64
}

// Connects returns the counts of accepted, refused and failed connects.
func (s *Server) Connects() ConnectStats {
	out := ConnectStats{Accepted: s.stats.total.Load(), Refused: map[packet.ReasonCode]uint64{}, Failed: map[string]uint64{}}
	for i := range s.stats.refused {
		if n := s.stats.refused[i].Load(); n > 0 {
			out.Refused[packet.ReasonCode(i)] = n
		}
	}
	for i, k := range preKeys {
		if n := s.stats.failed[i].Load(); n > 0 {
			out.Failed[k] = n
		}
	}
	return out
}

// DropKeys names the reasons of Stats.DroppedBy, in order.
var DropKeys = dropKeys

// Health says whether the server can do its work: nil when its
// listeners are open (ListenAndServe has opened them, or Serve runs),
// its Store has not been closed under it, and its back plane, if any,
// answered the node's last call; otherwise an error naming what is not.
func (s *Server) Health() error {
	if err := s.init(); err != nil {
		return err
	}
	select {
	case <-s.ready:
	default:
		return errors.New("not listening yet")
	}
	s.mu.Lock()
	closed, open := s.closed, len(s.listeners)+len(s.bound)
	s.mu.Unlock()
	switch {
	case closed:
		return ErrServerClosed
	case open == 0:
		return errors.New("no listener is open")
	case s.Store != nil && s.stats.storeClosed.Load():
		return errors.New("the store is closed")
	case s.bp != nil && !s.stats.bpReachable.Load():
		return errors.New("the back plane is out of reach")
	}
	return nil
}
