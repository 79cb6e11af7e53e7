package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/topic"
)

// Subscription streams: Server-Sent Events (GET /api/v1/subscribe) and a
// JSON-over-WebSocket stream (GET /api/v1/ws). Each stream subscribes
// through the broker's in-process client (Server.Subscribe) after the
// Authorizer allowed each filter, and checks each message with the
// ReceiveAuthorizer, as the broker does for MQTT clients. Messages wait
// in a bounded buffer; a reader too slow for it loses messages, and is
// told how many. Every write has a deadline, and a stream ends when its
// request's context ends (the client went, or the broker is stopping).

const (
	streamWriteTimeout = 30 * time.Second
	streamPing         = 15 * time.Second
)

// stream is the subscriptions of one SSE or WebSocket stream.
type stream struct {
	h       *Handler
	who     *broker.ClientInfo
	ch      chan *broker.Message
	dropped atomic.Uint64
	mu      sync.Mutex
	subs    map[string]func() // filter -> unsubscribe
}

func (h *Handler) newStream(who *broker.ClientInfo) *stream {
	return &stream{h: h, who: who, ch: make(chan *broker.Message, h.cfg.StreamBuffer), subs: map[string]func(){}}
}

// errForbidden is a filter the Authorizer refused.
var errForbidden = errors.New("not authorized")

// subscribe adds filter at qos; subscribing to a filter twice replaces
// the first.
func (s *stream) subscribe(filter string, qos byte) error {
	if err := topic.ValidateFilter(filter); err != nil {
		return fmt.Errorf("filter %q: %v", filter, err)
	}
	if qos > 2 {
		return fmt.Errorf("qos: %d is not a QoS; use 0, 1 or 2", qos)
	}
	if !s.h.srv.Authorize(s.who, broker.ActionSubscribe, filter) {
		return fmt.Errorf("filter %q: %w to subscribe", filter, errForbidden)
	}
	s.unsubscribe(filter)
	srv, who := s.h.srv, s.who
	unsub, err := srv.Subscribe(filter, qos, func(m *broker.Message) {
		if !srv.AuthorizeReceive(who, m.Topic) {
			return
		}
		select {
		case s.ch <- m:
		default:
			s.dropped.Add(1)
		}
	})
	if err != nil {
		return fmt.Errorf("filter %q: %v", filter, err)
	}
	s.mu.Lock()
	s.subs[filter] = unsub
	s.mu.Unlock()
	return nil
}

// unsubscribe ends the subscription to filter; false if there was none.
func (s *stream) unsubscribe(filter string) bool {
	s.mu.Lock()
	unsub := s.subs[filter]
	delete(s.subs, filter)
	s.mu.Unlock()
	if unsub != nil {
		unsub()
	}
	return unsub != nil
}

func (s *stream) close() {
	s.mu.Lock()
	subs := s.subs
	s.subs = map[string]func(){}
	s.mu.Unlock()
	for _, unsub := range subs {
		unsub()
	}
}

// parseQoS reads the qos parameter; "" is 0.
func parseQoS(s string) (byte, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 2 {
		return 0, fmt.Errorf("qos %q: use 0, 1 or 2", s)
	}
	return byte(n), nil
}

// sse is GET /api/v1/subscribe?filter=F[&filter=G…][&qos=N]: the
// messages as Server-Sent Events "message" (data: a Message), after one
// "subscribed" event; "dropped" (data: {"count": n}) says how many were
// lost because the reader was slow.
func (h *Handler) sse(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
	q := r.URL.Query()
	filters := q["filter"]
	if len(filters) == 0 {
		writeError(w, http.StatusBadRequest, "filter: missing; give one or more topic filters, e.g. ?filter=sensors/%23")
		return
	}
	qos, err := parseQoS(q.Get("qos"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	st := h.newStream(who)
	defer st.close()
	for _, f := range filters {
		if err := st.subscribe(f, qos); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, errForbidden) {
				status = http.StatusForbidden
			}
			writeError(w, status, err.Error())
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("subscribed", map[string]any{"filters": filters, "qos": qos}) {
		return
	}
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	var told uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case m := <-st.ch:
			if n := st.dropped.Load(); n != told {
				if !write("dropped", map[string]uint64{"count": n - told}) {
					return
				}
				told = n
			}
			if !write("message", jsonMessage(m)) {
				return
			}
		case <-ping.C:
			rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// WSRequest is what a WebSocket client sends: {"type": "subscribe",
// "filter": F, "qos": N}, {"type": "unsubscribe", "filter": F} or
// {"type": "publish", …PublishRequest}. ID, if given, is echoed in the
// answer.
type WSRequest struct {
	Type   string `json:"type"`
	ID     string `json:"id,omitempty"`
	Filter string `json:"filter,omitempty"`
	PublishRequest
}

// WSEvent is what the server sends: {"type": "message", "message": …},
// {"type": "ok", "id": …} (with "matched" for a publish), {"type":
// "error", "id": …, "error": …, "status": HTTP-like status}, or
// {"type": "dropped", "count": n}.
type WSEvent struct {
	Type    string   `json:"type"`
	ID      string   `json:"id,omitempty"`
	Message *Message `json:"message,omitempty"`
	Matched *int     `json:"matched,omitempty"`
	Error   string   `json:"error,omitempty"`
	Status  int      `json:"status,omitempty"`
	Count   uint64   `json:"count,omitempty"`
}

// websocket is GET /api/v1/ws: a WebSocket of JSON text messages. The
// stream ends when the client closes it or when the request's context
// ends (the broker is stopping: the client is told 1001 going away).
// Reads and writes use contexts of their own, not the request's: a
// cancelled context would make the library drop the connection before
// the close handshake.
func (h *Handler) websocket(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
	c, err := websocket.Accept(w, r, nil) // same origin only
	if err != nil {
		return // Accept answered the request
	}
	defer c.CloseNow()
	c.SetReadLimit(h.cfg.MaxBody)
	st := h.newStream(who)
	defer st.close()

	var wmu sync.Mutex
	send := func(ev WSEvent) error {
		b, _ := json.Marshal(ev)
		wctx, wcancel := context.WithTimeout(context.Background(), streamWriteTimeout)
		defer wcancel()
		wmu.Lock()
		defer wmu.Unlock()
		return c.Write(wctx, websocket.MessageText, b)
	}

	// The reader ends when the connection does: closed by the client, or
	// by this handler (Close, CloseNow).
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			typ, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				if send(WSEvent{Type: "error", Error: "send JSON text messages", Status: http.StatusBadRequest}) != nil {
					return
				}
				continue
			}
			if send(h.wsCommand(st, who, b)) != nil {
				return
			}
		}
	}()

	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	var told uint64
loop:
	for {
		select {
		case <-r.Context().Done():
			break loop
		case <-readDone:
			break loop
		case m := <-st.ch:
			if n := st.dropped.Load(); n != told {
				if send(WSEvent{Type: "dropped", Count: n - told}) != nil {
					break loop
				}
				told = n
			}
			jm := jsonMessage(m)
			if send(WSEvent{Type: "message", Message: &jm}) != nil {
				break loop
			}
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(context.Background(), streamWriteTimeout)
			err := c.Ping(pctx)
			pcancel()
			if err != nil {
				break loop
			}
		}
	}
	if r.Context().Err() != nil {
		// The close handshake: bounded by the library (5 s at most).
		c.Close(websocket.StatusGoingAway, "the broker is shutting down")
	}
	c.CloseNow()
	<-readDone
}

// wsCommand carries out one request of a WebSocket client.
func (h *Handler) wsCommand(st *stream, who *broker.ClientInfo, b []byte) WSEvent {
	var req WSRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return WSEvent{Type: "error", Error: "not a request: " + err.Error(), Status: http.StatusBadRequest}
	}
	fail := func(status int, msg string) WSEvent {
		return WSEvent{Type: "error", ID: req.ID, Error: msg, Status: status}
	}
	switch req.Type {
	case "subscribe":
		if err := st.subscribe(req.Filter, req.QoS); err != nil {
			if errors.Is(err, errForbidden) {
				return fail(http.StatusForbidden, err.Error())
			}
			return fail(http.StatusBadRequest, err.Error())
		}
	case "unsubscribe":
		if !st.unsubscribe(req.Filter) {
			return fail(http.StatusNotFound, fmt.Sprintf("filter %q: not subscribed", req.Filter))
		}
	case "publish":
		m, err := req.PublishRequest.message()
		if err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
		n, err := h.srv.PublishAs(who, m)
		if err != nil {
			return fail(publishStatus(err))
		}
		return WSEvent{Type: "ok", ID: req.ID, Matched: &n}
	default:
		return fail(http.StatusBadRequest, fmt.Sprintf("type %q: use subscribe, unsubscribe or publish", req.Type))
	}
	return WSEvent{Type: "ok", ID: req.ID}
}
