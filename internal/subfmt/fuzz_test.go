package subfmt

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// FuzzPrinter: Compile either refuses a format with a *FormatError or
// returns a Printer whose Print never panics, whatever the message, and
// whose %J output is JSON or nothing.
func FuzzPrinter(f *testing.F) {
	for _, fs := range formatCases {
		f.Add(fs, []byte("hello"), "a/b", byte(0), int64(0))
	}
	for _, p := range peerMessages(packet.V5) {
		if len(p.Payload) < 1000 { // the fuzzer crawls on large inputs
			f.Add("%j|%J|%t|%10.3t|%-5x", p.Payload, p.Topic, p.QoS, int64(1588801680123456789))
		}
	}
	f.Add("%", []byte{}, "", byte(7), int64(-1<<62))
	f.Add("@Y@G@C", []byte{0}, "\x00", byte(255), int64(1<<62))
	f.Fuzz(func(t *testing.T, format string, payload []byte, topic string, flags byte, ns int64) {
		opts := Options{Format: format, FormatSet: flags&1 != 0, Verbose: flags&2 != 0, NoEOL: flags&4 != 0,
			Pretty: flags&8 != 0, Location: time.FixedZone("X", int(ns%100000))}
		p, err := Compile(opts)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Compile(%q): %v is not a *FormatError", format, err)
			}
			return
		}
		m := &Message{Topic: topic, Payload: payload, QoS: flags >> 6, Retain: flags&16 != 0, PacketID: uint16(ns),
			Received: time.Unix(0, ns)}
		if flags&32 != 0 {
			m.Properties.ContentType = topic
			m.Properties.CorrelationData = payload
			m.Properties.SubscriptionIDs = []uint32{uint32(ns), 1}
			m.Properties.User = []packet.UserProperty{{Key: topic, Value: string(payload)}}
			m.Properties.Mark(packet.PropPayloadFormat)
			m.Properties.TopicAlias = uint16(ns >> 16)
			m.PropertyOrder = []packet.PropertyID{packet.PropertyID(flags), packet.PropUser, packet.PropSubscriptionID}
		}
		var b bytes.Buffer
		err = p.Print(&b, m)
		var je *JSONError
		if err != nil && !errors.As(err, &je) {
			t.Fatalf("Print: %v", err)
		}
	})
}

// FuzzJSON: for any payload, %j prints JSON, %J prints JSON or nothing
// (with a *JSONError), and --pretty changes only whitespace.
func FuzzJSON(f *testing.F) {
	for _, p := range peerMessages(packet.V5) {
		if len(p.Payload) < 1000 { // the fuzzer crawls on large inputs
			f.Add(p.Payload)
		}
	}
	for _, s := range []string{`[1,{"a":"\ud83d\ude00"}]`, `"\u0000"`, "\xEF\xBB\xBF[]", `1e999`, `{"a":{"b":[[],{}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkJSONOutput(t, payload)
	})
}
