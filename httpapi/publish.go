package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/topic"
)

// PublishRequest is the body of POST /api/v1/publish and of a WebSocket
// "publish": one message, its payload as text (Payload) or as base64
// (PayloadBase64), with MQTT 5 properties.
type PublishRequest struct {
	Topic         string  `json:"topic"`
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 *string `json:"payload_base64,omitempty"`
	QoS           byte    `json:"qos"`
	Retain        bool    `json:"retain"`
	Properties
}

// Properties are the MQTT 5 properties of a message, in JSON.
type Properties struct {
	ContentType string `json:"content_type,omitempty"`
	// ResponseTopic is a topic name, without wildcards [v5 MQTT-3.3.2-14].
	ResponseTopic string `json:"response_topic,omitempty"`
	// CorrelationData is binary: base64.
	CorrelationData string         `json:"correlation_data,omitempty"`
	UserProperties  []UserProperty `json:"user_properties,omitempty"`
	// MessageExpiry is the Message Expiry Interval in seconds; 0: none.
	MessageExpiry uint32 `json:"message_expiry,omitempty"`
	// PayloadFormat 1 says the payload is UTF-8 text.
	PayloadFormat byte `json:"payload_format,omitempty"`
}

// UserProperty is one MQTT 5 user property.
type UserProperty struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// PublishResponse answers a publish once the broker accepted the message.
type PublishResponse struct {
	// Matched is the number of subscriptions (sessions and shared groups)
	// the message went to; with a back plane one more, for the other nodes.
	Matched int `json:"matched"`
}

// Message is a message in JSON, as GET /api/v1/retained and the streams
// deliver it: the payload as text when it is UTF-8, else in base64.
type Message struct {
	Topic         string `json:"topic"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	QoS           byte   `json:"qos"`
	Retain        bool   `json:"retain"`
	Properties
	From string `json:"from,omitempty"` // the publisher's client id
}

// message builds the broker's message that req describes; the error
// names the field at fault.
func (req *PublishRequest) message() (*broker.Message, error) {
	if req.Topic == "" {
		return nil, errors.New("topic: missing; give the topic name to publish to")
	}
	if err := topic.ValidateName(req.Topic); err != nil {
		return nil, fmt.Errorf("topic %q: %v", req.Topic, err)
	}
	if req.QoS > 2 {
		return nil, fmt.Errorf("qos: %d is not a QoS; use 0, 1 or 2", req.QoS)
	}
	m := &broker.Message{Topic: req.Topic, QoS: req.QoS, Retain: req.Retain}
	switch {
	case req.Payload != nil && req.PayloadBase64 != nil:
		return nil, errors.New("payload and payload_base64: give one of them, not both")
	case req.Payload != nil:
		m.Payload = []byte(*req.Payload)
	case req.PayloadBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*req.PayloadBase64)
		if err != nil {
			return nil, fmt.Errorf("payload_base64: not base64: %v", err)
		}
		m.Payload = b
	}
	if err := req.Properties.apply(&m.Properties, m.Payload); err != nil {
		return nil, err
	}
	return m, nil
}

// checkString applies the rules of an MQTT UTF-8 string: well-formed,
// no U+0000 [v5 MQTT-1.5.4-1] [v5 MQTT-1.5.4-2].
func checkString(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%s: contains U+0000, which MQTT strings may not", field)
	}
	return nil
}

func (p *Properties) apply(out *packet.Properties, payload []byte) error {
	if err := checkString("content_type", p.ContentType); err != nil {
		return err
	}
	out.ContentType = p.ContentType
	if p.ResponseTopic != "" {
		// [v5 MQTT-3.3.2-14] a topic name: no wildcards.
		if err := topic.ValidateName(p.ResponseTopic); err != nil {
			return fmt.Errorf("response_topic %q: %v", p.ResponseTopic, err)
		}
		out.ResponseTopic = p.ResponseTopic
	}
	if p.CorrelationData != "" {
		b, err := base64.StdEncoding.DecodeString(p.CorrelationData)
		if err != nil {
			return fmt.Errorf("correlation_data: not base64: %v", err)
		}
		out.CorrelationData = b
	}
	for i, u := range p.UserProperties {
		if err := checkString(fmt.Sprintf("user_properties[%d].key", i), u.Key); err != nil {
			return err
		}
		if err := checkString(fmt.Sprintf("user_properties[%d].value", i), u.Value); err != nil {
			return err
		}
		out.User = append(out.User, packet.UserProperty{Key: u.Key, Value: u.Value})
	}
	out.MessageExpiry = p.MessageExpiry
	switch p.PayloadFormat {
	case 0:
	case 1:
		// A payload said to be UTF-8 must be [v5 MQTT-3.3.2-4] (the
		// receiver may check it).
		if !utf8.Valid(payload) {
			return errors.New("payload_format: 1 says the payload is UTF-8 text, and it is not")
		}
		out.PayloadFormat = 1
	default:
		return fmt.Errorf("payload_format: %d; use 0 (bytes) or 1 (UTF-8 text)", p.PayloadFormat)
	}
	return nil
}

// jsonMessage is m in JSON.
func jsonMessage(m *broker.Message) Message {
	out := Message{Topic: m.Topic, QoS: m.QoS, Retain: m.Retain, From: m.From}
	if utf8.Valid(m.Payload) {
		out.Payload = string(m.Payload)
	} else {
		out.PayloadBase64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	p := &m.Properties
	out.ContentType = p.ContentType
	out.ResponseTopic = p.ResponseTopic
	if len(p.CorrelationData) > 0 {
		out.CorrelationData = base64.StdEncoding.EncodeToString(p.CorrelationData)
	}
	for _, u := range p.User {
		out.UserProperties = append(out.UserProperties, UserProperty{u.Key, u.Value})
	}
	if rem, ok := m.Remaining(time.Now()); ok {
		out.MessageExpiry = rem
	}
	out.PayloadFormat = p.PayloadFormat
	return out
}

// publishStatus is the HTTP status of an error of PublishAs.
func publishStatus(err error) (int, string) {
	var ref *broker.Refusal
	switch {
	case errors.Is(err, broker.ErrNotAuthorized):
		return http.StatusForbidden, "not authorized to publish to this topic"
	case errors.As(err, &ref) && (ref.Code == packet.QoSNotSupported || ref.Code == packet.RetainNotSupported || ref.Code == packet.TopicNameInvalid):
		return http.StatusUnprocessableEntity, ref.Reason
	case errors.Is(err, broker.ErrServerClosed):
		return http.StatusServiceUnavailable, "the broker is shutting down"
	}
	return http.StatusServiceUnavailable, "the broker did not accept the message: " + err.Error()
}

// publish is POST /api/v1/publish.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
	// Only JSON: a cross-site page cannot send it without the preflight
	// this API does not answer, so a browser's remembered credentials
	// cannot be used to publish from another site.
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", ct))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes (http.max_body)", h.cfg.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	var req PublishRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body is not a publish request: "+err.Error())
		return
	}
	m, err := req.message()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := h.srv.PublishAs(who, m)
	if err != nil {
		status, msg := publishStatus(err)
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusOK, PublishResponse{Matched: n})
}

// RetainedResponse answers GET /api/v1/retained.
type RetainedResponse struct {
	Messages  []Message `json:"messages"`
	Truncated bool      `json:"truncated"` // there were more than limit
}

// retained is GET /api/v1/retained?filter=F&limit=N.
func (h *Handler) retained(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
	q := r.URL.Query()
	filter := q.Get("filter")
	if filter == "" {
		writeError(w, http.StatusBadRequest, "filter: missing; give a topic filter, e.g. ?filter=sensors/%23")
		return
	}
	if err := topic.ValidateFilter(filter); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("filter %q: %v", filter, err))
		return
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: a number from 1 to 10000", s))
			return
		}
		limit = n
	}
	// Reading retained messages is subscribing to them.
	if !h.srv.Authorize(who, broker.ActionSubscribe, filter) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("not authorized to subscribe to %q", filter))
		return
	}
	msgs, more, err := h.srv.Retained(filter, limit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out := RetainedResponse{Messages: []Message{}, Truncated: more}
	for _, m := range msgs {
		if h.srv.AuthorizeReceive(who, m.Topic) {
			out.Messages = append(out.Messages, jsonMessage(m))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// ClientJSON is one client of GET /api/v1/clients.
type ClientJSON struct {
	ClientID       string             `json:"client_id"`
	Username       string             `json:"username,omitempty"`
	Protocol       string             `json:"protocol"`
	RemoteAddr     string             `json:"remote_addr,omitempty"`
	Listener       string             `json:"listener,omitempty"`
	Connected      bool               `json:"connected"`
	KeepAlive      int                `json:"keep_alive"` // seconds
	ConnectedSince *time.Time         `json:"connected_since,omitempty"`
	Subscriptions  []SubscriptionJSON `json:"subscriptions"`
	Inflight       int                `json:"inflight"`
	Queued         int                `json:"queued"`
}

// SubscriptionJSON is one subscription.
type SubscriptionJSON struct {
	ClientID          string `json:"client_id"`
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"retain_as_published,omitempty"`
	RetainHandling    byte   `json:"retain_handling,omitempty"`
	SubscriptionID    uint32 `json:"subscription_id,omitempty"`
}

func subsJSON(subs []broker.SubscriptionStatus) []SubscriptionJSON {
	out := make([]SubscriptionJSON, 0, len(subs))
	for _, s := range subs {
		out = append(out, SubscriptionJSON{s.ClientID, s.Filter, s.QoS, s.NoLocal, s.RetainAsPublished, s.RetainHandling, s.SubscriptionID})
	}
	return out
}

// clients is GET /api/v1/clients.
func (h *Handler) clients(w http.ResponseWriter, _ *http.Request, _ *broker.ClientInfo) {
	cs := h.srv.Clients()
	out := make([]ClientJSON, 0, len(cs))
	for _, c := range cs {
		j := ClientJSON{ClientID: c.ClientID, Username: c.Username, Protocol: c.Version.String(), RemoteAddr: c.RemoteAddr,
			Listener: c.Listener, Connected: c.Connected, KeepAlive: int(c.KeepAlive / time.Second),
			Subscriptions: subsJSON(c.Subscriptions), Inflight: c.Inflight, Queued: c.Queued}
		if c.Connected {
			t := c.ConnectedSince.UTC()
			j.ConnectedSince = &t
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
}

// disconnect is DELETE /api/v1/clients/{id}.
func (h *Handler) disconnect(w http.ResponseWriter, r *http.Request, who *broker.ClientInfo) {
	id := r.PathValue("id")
	if err := h.srv.DisconnectClient(id); err != nil {
		if errors.Is(err, broker.ErrNoClient) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no client %q is connected", id))
			return
		}
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	h.log.Info("client disconnected over HTTP", "client", id, "by", who.Username)
	writeJSON(w, http.StatusOK, map[string]string{"disconnected": id})
}

// subscriptions is GET /api/v1/subscriptions.
func (h *Handler) subscriptions(w http.ResponseWriter, _ *http.Request, _ *broker.ClientInfo) {
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": subsJSON(h.srv.Subscriptions())})
}
