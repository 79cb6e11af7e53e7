package subfmt

// Tests that need no mosquitto_sub: the expected bytes are written out
// here (and were checked against mosquitto_sub 2.0.11 by the tests of
// mosquitto_test.go, which cover the same behaviour on the real peer).

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

var testClock = time.Date(2020, 5, 6, 21, 48, 0, 123456789, time.UTC)

func testMessage() *Message {
	m := &Message{Topic: "a/b", Payload: []byte("hello"), QoS: 1, PacketID: 7, Received: testClock}
	m.Properties.ContentType = "text/plain"
	m.Properties.MessageExpiry = 4294967295
	m.Properties.SubscriptionIDs = []uint32{5}
	m.Properties.User = []packet.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}}
	return m
}

func print1(t *testing.T, opts Options, m *Message) (string, error) {
	t.Helper()
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	p, err := Compile(opts)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", opts, err)
	}
	var b bytes.Buffer
	err = p.Print(&b, m)
	return b.String(), err
}

func TestPrint(t *testing.T) {
	empty := &Message{Topic: "e", Received: testClock}
	cases := []struct {
		opts Options
		m    *Message
		want string
	}{
		{Options{}, testMessage(), "hello\n"},
		{Options{}, empty, ""}, // not even a newline
		{Options{NoEOL: true}, testMessage(), "hello"},
		{Options{Verbose: true}, testMessage(), "a/b hello\n"},
		{Options{Verbose: true}, empty, "e (null)\n"},
		{Options{Verbose: true, NoEOL: true}, empty, ""},
		{Options{Format: "%t", Verbose: true}, testMessage(), "a/b\n"},
		{Options{FormatSet: true}, testMessage(), "\n"},
		{Options{FormatSet: true, NoEOL: true}, testMessage(), ""},
		{Options{Format: "%%|%A|%C|%D|%E|%F|%l|%m|%P|%p|%q|%R|%r|%S|%t|%x|%X"}, testMessage(),
			"%||text/plain||-1||5|7|k:v k:w|hello|1||0|5|a/b|68656c6c6f|68656C6C6F\n"},
		{Options{Format: "[%10t|%-10t|%.2t|%5.1t|%05l|%-5l|%5p|%-p|%10x|%3x|%-8X|%-08X|%08X]"}, testMessage(),
			"[       a/b|a/b       |a/|    a|00005|5    |hello|hello     |      6865| 68|6865    |6865    |00006865]\n"},
		{Options{Format: "[%5C|%05C|%5A|%05A|%-5A|%-05A|%5E|%05E|%-05E|%5S|%05S|%5R|%5m|%05q|%5P]"}, testMessage(),
			"[text/plain|text/plain|     |00000|     |00000|   -1|-0001|-1   |    5|00005||    7|1|k:v k:w]\n"},
		{Options{Format: `[\\|\0|\a|\e|\n|\r|\t|\v|@@|%%]`}, testMessage(), "[\\|\x00|\a|\x1b|\n|\r|\t|\v|@|%]\n"},
		{Options{Format: "%I|%U|@N|@Y-@m-@d @H:@M:@S|@c|@z|@Z|@q|@5|@E"}, testMessage(),
			"2020-05-06T21:48:00+0000|1588801680.123456789|123456789|2020-05-06 21:48:00|Wed May  6 21:48:00 2020|+0000|UTC|%q|   %5|%E\n"},
		{Options{Format: "%j"}, testMessage(),
			`{"tst":"2020-05-06T21:48:00.123456Z+0000","topic":"a/b","qos":1,"retain":0,"payloadlen":5,"mid":7,` +
				`"properties":{"message-expiry-interval":4294967295,"content-type":"text/plain","subscription-identifier":5,` +
				`"user-properties":{"k":"v","k":"w"}},"payload":"hello"}` + "\n"},
		{Options{Format: "%j"}, empty,
			`{"tst":"2020-05-06T21:48:00.123456Z+0000","topic":"e","qos":0,"retain":0,"payloadlen":0,"payload":null}` + "\n"},
		{Options{Format: "%j", Pretty: true}, empty,
			"{\n\t\"tst\":\t\"2020-05-06T21:48:00.123456Z+0000\",\n\t\"topic\":\t\"e\",\n\t\"qos\":\t0,\n\t\"retain\":\t0,\n" +
				"\t\"payloadlen\":\t0,\n\t\"payload\":\tnull\n}\n"},
		{Options{Format: "%J", Pretty: true}, &Message{Topic: "j", Payload: []byte(`{"a":[1,{"b":{}}],"c":{}}`), Received: testClock},
			"{\n\t\"tst\":\t\"2020-05-06T21:48:00.123456Z+0000\",\n\t\"topic\":\t\"j\",\n\t\"qos\":\t0,\n\t\"retain\":\t0,\n" +
				"\t\"payloadlen\":\t25,\n\t\"payload\":\t{\n\t\t\"a\":\t[1, {\n\t\t\t\t\"b\":\t{\n\t\t\t\t}\n\t\t\t}],\n" +
				"\t\t\"c\":\t{\n\t\t}\n\t}\n}\n"},
	}
	for _, c := range cases {
		got, err := print1(t, c.opts, c.m)
		if err != nil || got != c.want {
			t.Errorf("%+v:\n got %q, %v\nwant %q", c.opts, got, err, c.want)
		}
	}
}

// TestPayloadWidth pins mosquitto_sub's write_payload: a width cuts the
// payload to width bytes, and in hex then halves that (so "%6x" of three
// bytes prints one), and - without a width pads with as many spaces as
// the payload has bytes.
func TestPayloadWidth(t *testing.T) {
	m := &Message{Topic: "t", Payload: []byte("abc")}
	for f, want := range map[string]string{
		"%2p": "ab", "%5p": "  abc", "%05p": "00abc", "%-5p": "abc  ", "%-p": "abc   ",
		"%4x": "  61", "%5x": "   61", "%6x": "    61", "%7x": "     61", "%1x": " ", "%2x": "61", "%-x": "616263   ", "%-4X": "61  ",
	} {
		got, _ := print1(t, Options{Format: f, NoEOL: true}, m)
		if got != want {
			t.Errorf("%s: got %q, want %q", f, got, want)
		}
	}
}

// TestCString: mosquitto_sub prints strings with printf and cJSON, so a
// string ends at its first NUL; %D and %p print every byte.
func TestCString(t *testing.T) {
	m := &Message{Topic: "a\x00b", Payload: []byte("p\x00q")}
	m.Properties.CorrelationData = []byte("c\x00d")
	m.Properties.User = []packet.UserProperty{{Key: "k\x00x", Value: "v\x00y"}}
	got, _ := print1(t, Options{Format: "%t|%5t|%D|%p|%P", NoEOL: true}, m)
	if want := "a|    a|c\x00d|p\x00q|k:v"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got, _ = print1(t, Options{Format: "%j", NoEOL: true, Location: time.UTC}, m)
	if !strings.Contains(got, `"topic":"a",`) || !strings.Contains(got, `"correlation-data":"c"`) ||
		!strings.Contains(got, `"user-properties":{"k":"v"}`) || !strings.HasSuffix(got, `"payload":"p"}`) {
		t.Errorf("%%j: %q", got)
	}
}

// TestPropertyOrder: the "properties" object lists the properties in wire
// order when the Message gives it, in packet's order otherwise, with all
// user properties in one object where the first one was.
func TestPropertyOrder(t *testing.T) {
	m := testMessage()
	m.Properties.PayloadFormat = 1
	m.Properties.TopicAlias = 9
	m.PropertyOrder = []packet.PropertyID{packet.PropUser, packet.PropTopicAlias, packet.PropContentType,
		packet.PropSubscriptionID, packet.PropUser, packet.PropMessageExpiry}
	got, _ := print1(t, Options{Format: "%j"}, m)
	want := `"properties":{"user-properties":{"k":"v","k":"w"},"topic-alias":0,"content-type":"text/plain",` +
		`"subscription-identifier":5,"message-expiry-interval":4294967295,"payload-format-indicator":1}`
	if !strings.Contains(got, want) {
		t.Errorf("wire order: got %s\nwant it to contain %s", got, want)
	}
	m.PropertyOrder = nil
	got, _ = print1(t, Options{Format: "%j"}, m)
	want = `"properties":{"payload-format-indicator":1,"message-expiry-interval":4294967295,"content-type":"text/plain",` +
		`"subscription-identifier":5,"topic-alias":0,"user-properties":{"k":"v","k":"w"}}`
	if !strings.Contains(got, want) {
		t.Errorf("packet's order: got %s\nwant it to contain %s", got, want)
	}
	// A property marked present with a zero value is printed.
	m = &Message{Topic: "t"}
	m.Properties.Mark(packet.PropPayloadFormat)
	got, _ = print1(t, Options{Format: "%F|%j"}, m)
	if !strings.HasPrefix(got, "0|") || !strings.Contains(got, `"properties":{"payload-format-indicator":0}`) {
		t.Errorf("marked property: %s", got)
	}
}

// TestSeveralSubscriptionIDs: libmosquitto 2.0.11 refuses such a PUBLISH
// (TestMosquittoSubRefusesSeveralSubscriptionIDs); the Printer does what
// mosquitto_sub's source does with one: %S prints the first, %j repeats
// the key.
func TestSeveralSubscriptionIDs(t *testing.T) {
	m := &Message{Topic: "t", Payload: []byte("p")}
	m.Properties.SubscriptionIDs = []uint32{1, 268435455}
	got, _ := print1(t, Options{Format: "%S|%j"}, m)
	if !strings.HasPrefix(got, "1|") || !strings.Contains(got, `"properties":{"subscription-identifier":1,"subscription-identifier":268435455}`) {
		t.Errorf("got %s", got)
	}
}

func TestFormatErrors(t *testing.T) {
	cases := map[string][]string{
		"%":        {`-F "%"`, `"%"`, "%%"},
		"ab%5":     {`-F "ab%5"`, `"%5"`, "end it"},
		"%z":       {`"%z" is not a directive`, "%A %C %D", "mosquitto_sub(1)"},
		"%--5t":    {`"%--" is not a directive`},
		"%éa":      {`"%é" is not a directive`},
		`\q`:       {`-F "\q": "\q" is not an escape`, `\\ \0 \a \e \n \r \t \v`},
		"a\"%":     {`-F "a\"%"`},
		`ab\`:      {`lone \`, `\\`},
		"x@":       {"lone @", "@@"},
		"%99999t":  {`the width 99999 in "%99999t" is larger than 65535`},
		"%.70000t": {`the precision 70000 in "%.70000t" is larger than 65535`},
	}
	for f, wants := range cases {
		_, err := Compile(Options{Format: f})
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%q: error %v, want a *FormatError", f, err)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not say %q", f, err, w)
			}
		}
	}
	for _, f := range []string{"%65535t", "%.65535t", "%-0t", "%00t", "%-08.3t", "%.t", "@ ", `\\`, "%5%"} {
		if _, err := Compile(Options{Format: f}); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
}

// TestJSONError: a %J payload that is not JSON prints the rest of the
// line, and Print reports it with mosquitto_sub's message.
func TestJSONError(t *testing.T) {
	m := &Message{Topic: "t/1", Payload: []byte("{bad"), Received: testClock}
	got, err := print1(t, Options{Format: "<%J|%t>"}, m)
	var je *JSONError
	if !errors.As(err, &je) || got != "<|t/1>\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	if want := "Message payload is not valid JSON on topic t/1."; err.Error() != want || je.Count != 1 {
		t.Errorf("error %q (%d), want %q (1)", err, je.Count, want)
	}
	_, err = print1(t, Options{Format: "%J%j%J"}, m)
	if !errors.As(err, &je) || je.Count != 2 {
		t.Errorf("two %%J: %v", err)
	}
}

// TestPrintWrites: Print writes each message with one Write and returns
// the Write's error.
func TestPrintWrites(t *testing.T) {
	p, err := Compile(Options{Format: "%t %p"})
	if err != nil {
		t.Fatal(err)
	}
	w := &countWriter{}
	for range 3 {
		if err := p.Print(w, testMessage()); err != nil {
			t.Fatal(err)
		}
	}
	if w.calls != 3 || w.b.String() != strings.Repeat("a/b hello\n", 3) {
		t.Errorf("%d writes of %q", w.calls, w.b.String())
	}
	boom := errors.New("boom")
	if err := p.Print(&countWriter{err: boom}, testMessage()); err != boom {
		t.Errorf("Print returned %v, want the writer's error", err)
	}
}

type countWriter struct {
	b     bytes.Buffer
	calls int
	err   error
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	return w.b.Write(p)
}

// TestReceivedZero: a Message without a receive time is printed with the
// time of the Print call.
func TestReceivedZero(t *testing.T) {
	before := time.Now().Unix()
	got, _ := print1(t, Options{Format: "%U", NoEOL: true}, &Message{Topic: "t"})
	after := time.Now().Unix()
	sec, nsec, _ := strings.Cut(got, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || len(nsec) != 9 || s < before || s > after {
		t.Errorf("%%U printed %q, not a time between %d and %d", got, before, after)
	}
}

// TestJSONOutputIsJSON: whatever the payload, %j and a successful %J
// print valid JSON, and --pretty differs from the plain output only in
// whitespace.
func TestJSONOutputIsJSON(t *testing.T) {
	for _, pl := range []string{`{"a":[1,2,{"b":null}],"c":"\u00e9"}`, `[1e400,-0,"\u0000x","tab	"]`, "\x01\x02\"\\", "\xff\xfe", `"s"`, `[[[[]]]]`} {
		checkJSONOutput(t, []byte(pl))
	}
}

func checkJSONOutput(t *testing.T, payload []byte) {
	t.Helper()
	m := &Message{Topic: "t/\x01\"", Payload: payload, QoS: 2, PacketID: 3, Received: testClock}
	m.Properties.User = []packet.UserProperty{{Key: "\n", Value: "\xff"}}
	for _, f := range []string{"%j", "%J"} {
		plain, perr := print1(t, Options{Format: f, NoEOL: true}, m)
		pretty, qerr := print1(t, Options{Format: f, NoEOL: true, Pretty: true}, m)
		if (perr == nil) != (qerr == nil) {
			t.Fatalf("%s %q: plain %v, pretty %v", f, payload, perr, qerr)
		}
		if perr != nil {
			if f == "%j" || plain != "" || pretty != "" {
				t.Fatalf("%s %q: %v with output %q / %q", f, payload, perr, plain, pretty)
			}
			continue
		}
		if !json.Valid([]byte(plain)) || !json.Valid([]byte(pretty)) {
			t.Fatalf("%s %q: not JSON:\n%q\n%q", f, payload, plain, pretty)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, []byte(pretty)); err != nil || c.String() != plain {
			t.Fatalf("%s %q: compact(pretty) = %q (%v), plain %q", f, payload, c.String(), err, plain)
		}
	}
}
