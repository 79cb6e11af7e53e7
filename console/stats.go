package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
)

// Sample is one sample of the broker's Stats, as GET /console/api/stats
// answers and the stream sends: the counters, and the rates per second
// since the stream's previous sample (all zero in a single sample and in
// a stream's first).
type Sample struct {
	Time             time.Time `json:"time"`
	UptimeSeconds    float64   `json:"uptime_seconds"`
	ClientsConnected int64     `json:"clients_connected"`
	ClientsTotal     uint64    `json:"clients_total"` // connections accepted since start
	Sessions         int       `json:"sessions"`
	Subscriptions    int64     `json:"subscriptions"`
	Retained         int       `json:"retained"`
	MessagesReceived uint64    `json:"messages_received"`
	MessagesSent     uint64    `json:"messages_sent"`
	BytesReceived    uint64    `json:"bytes_received"`
	BytesSent        uint64    `json:"bytes_sent"`
	Dropped          uint64    `json:"dropped"`
	Cluster          string    `json:"cluster,omitempty"` // the back plane's engine, "" for a single broker

	// Rates per second since the previous sample of the stream.
	MessagesInRate  float64 `json:"messages_in_rate"`
	MessagesOutRate float64 `json:"messages_out_rate"`
	BytesInRate     float64 `json:"bytes_in_rate"`
	BytesOutRate    float64 `json:"bytes_out_rate"`
	ConnectRate     float64 `json:"connect_rate"` // connections accepted per second
	DropRate        float64 `json:"drop_rate"`
}

// sample reads the broker's counters now.
func sample(srv *broker.Server, now time.Time) Sample {
	st := srv.Stats()
	return Sample{
		Time:             now.UTC(),
		UptimeSeconds:    st.Uptime.Seconds(),
		ClientsConnected: st.ClientsConnected,
		ClientsTotal:     st.ClientsTotal,
		Sessions:         st.Sessions,
		Subscriptions:    st.Subscriptions,
		Retained:         st.Retained,
		MessagesReceived: st.MessagesReceived,
		MessagesSent:     st.MessagesSent,
		BytesReceived:    st.BytesReceived,
		BytesSent:        st.BytesSent,
		Dropped:          st.Dropped,
		Cluster:          st.ClusterEngine,
	}
}

// withRates fills in s's rates from prev, an earlier sample.
func (s Sample) withRates(prev Sample) Sample {
	secs := s.Time.Sub(prev.Time).Seconds()
	if secs <= 0 {
		return s
	}
	rate := func(now, before uint64) float64 {
		if now < before { // a counter never goes back; be safe anyway
			return 0
		}
		return float64(now-before) / secs
	}
	s.MessagesInRate = rate(s.MessagesReceived, prev.MessagesReceived)
	s.MessagesOutRate = rate(s.MessagesSent, prev.MessagesSent)
	s.BytesInRate = rate(s.BytesReceived, prev.BytesReceived)
	s.BytesOutRate = rate(s.BytesSent, prev.BytesSent)
	s.ConnectRate = rate(s.ClientsTotal, prev.ClientsTotal)
	s.DropRate = rate(s.Dropped, prev.Dropped)
	return s
}

func (h *Handler) stats(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, sample(h.srv, time.Now()))
}

// streamWriteTimeout bounds one write of the stream to a slow reader.
const streamWriteTimeout = 10 * time.Second

// statsStream is GET /console/api/stats/stream: Server-Sent Events, one
// "sample" event per Config.Interval, until the client goes or the
// broker shuts down (which ends the request's context).
func (h *Handler) statsStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(s Sample) bool {
		b, err := json.Marshal(s)
		if err != nil {
			return false
		}
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: sample\ndata: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	prev := sample(h.srv, time.Now())
	if !send(prev) {
		return
	}
	tick := time.NewTicker(h.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case now := <-tick.C:
			s := sample(h.srv, now).withRates(prev)
			if !send(s) {
				return
			}
			prev = s
		}
	}
}
