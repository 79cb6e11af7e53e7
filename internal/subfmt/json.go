package subfmt

// %j and %J: mosquitto_sub 2.0 builds the object with cJSON (Debian's
// libcjson 1.7.15) and prints it with cJSON_PrintUnformatted, or with
// cJSON_Print under --pretty. This file writes the same bytes without
// building a tree: cJSON's string escaping and number formatting, its
// pretty-printing layout (tabs, ":\t", ", " between array elements), and,
// for %J, its parser, quirks included, re-printing the payload as it
// parses it.

import (
	"bytes"
	"math"
	"strconv"
	"time"

	"github.com/ternmq/tern/packet"
)

// cjsonNestingLimit is CJSON_NESTING_LIMIT: deeper arrays and objects
// fail to parse.
const cjsonNestingLimit = 1000

// jw writes JSON as cJSON prints it.
type jw struct {
	b      []byte
	pretty bool
	depth  int
}

func (w *jw) tabs(n int) {
	for ; n > 0; n-- {
		w.b = append(w.b, '\t')
	}
}

func (w *jw) openObject() {
	w.b = append(w.b, '{')
	w.depth++
	if w.pretty {
		w.b = append(w.b, '\n')
	}
}

// key starts a member of the object being written; first tells whether
// it is the object's first member.
func (w *jw) key(first bool, k string) {
	w.sep(first)
	if w.pretty {
		w.tabs(w.depth)
	}
	w.str(k)
	w.colon()
}

func (w *jw) keyBytes(first bool, k []byte) {
	w.sep(first)
	if w.pretty {
		w.tabs(w.depth)
	}
	w.b = appendJSONString(w.b, k)
	w.colon()
}

func (w *jw) sep(first bool) {
	if !first {
		w.b = append(w.b, ',')
		if w.pretty {
			w.b = append(w.b, '\n')
		}
	}
}

func (w *jw) colon() {
	w.b = append(w.b, ':')
	if w.pretty {
		w.b = append(w.b, '\t')
	}
}

func (w *jw) closeObject(empty bool) {
	if w.pretty {
		if !empty {
			w.b = append(w.b, '\n')
		}
		w.tabs(w.depth - 1)
	}
	w.b = append(w.b, '}')
	w.depth--
}

func (w *jw) openArray() {
	w.b = append(w.b, '[')
	w.depth++
}

func (w *jw) elem(first bool) {
	if !first {
		w.b = append(w.b, ',')
		if w.pretty {
			w.b = append(w.b, ' ')
		}
	}
}

func (w *jw) closeArray() {
	w.b = append(w.b, ']')
	w.depth--
}

// str writes s as a C string (up to its first NUL), as cJSON does.
func (w *jw) str(s string) { w.b = appendJSONString(w.b, s) }

func (w *jw) num(d float64) { w.b = appendCJSONNumber(w.b, d) }

// appendJSONString appends s up to its first NUL, quoted and escaped as
// cJSON's print_string_ptr does: \" \\ \b \f \n \r \t, \u00xx (lower
// case) for the other bytes below 32, every other byte (DEL, bytes of
// invalid UTF-8) as it is.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			return append(dst, '"')
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 32 {
				dst = append(dst, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// appendCJSONNumber appends d as cJSON 1.7.15's print_number does:
// "null" for NaN and infinities, else %1.15g, or %1.17g when %1.15g does
// not read back to d (within cJSON's relative epsilon).
func appendCJSONNumber(dst []byte, d float64) []byte {
	if math.IsNaN(d) || math.IsInf(d, 0) {
		return append(dst, "null"...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, d, 'g', 15, 64)
	test, _ := strconv.ParseFloat(string(dst[start:]), 64) // ErrRange: ±Inf, as sscanf
	if !compareDouble(test, d) {
		dst = strconv.AppendFloat(dst[:start], d, 'g', 17, 64)
	}
	return dst
}

// compareDouble is cJSON's compare_double.
func compareDouble(a, b float64) bool {
	maxVal := math.Max(math.Abs(a), math.Abs(b))
	return math.Abs(a-b) <= maxVal*0x1p-52
}

// propertyNames are the keys libmosquitto's
// mosquitto_property_identifier_to_string gives the PUBLISH properties.
var propertyNames = [...]string{
	packet.PropPayloadFormat:   "payload-format-indicator",
	packet.PropMessageExpiry:   "message-expiry-interval",
	packet.PropContentType:     "content-type",
	packet.PropResponseTopic:   "response-topic",
	packet.PropCorrelationData: "correlation-data",
	packet.PropSubscriptionID:  "subscription-identifier",
	packet.PropTopicAlias:      "topic-alias",
}

// publishProps are the properties a PUBLISH may carry, in the order
// package packet encodes them.
var publishProps = [...]packet.PropertyID{
	packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
	packet.PropResponseTopic, packet.PropCorrelationData, packet.PropSubscriptionID,
	packet.PropTopicAlias, packet.PropUser,
}

// appendJSON appends the object of %j (escaped) or %J. For %J it returns
// false, having appended nothing, when the payload is not JSON.
func (p *Printer) appendJSON(dst []byte, m *Message, t time.Time, escaped bool) ([]byte, bool) {
	start := len(dst)
	w := &p.jw // a field, not a local: the parser and closures keep pointers to it
	*w = jw{b: dst, pretty: p.pretty}
	defer func() { w.b = nil }()
	w.openObject()
	w.key(true, "tst")
	var tb [64]byte
	w.b = appendJSONString(w.b, appendTST(tb[:0], t))
	w.key(false, "topic")
	w.str(m.Topic)
	w.key(false, "qos")
	w.num(float64(m.QoS))
	w.key(false, "retain")
	if m.Retain {
		w.num(1)
	} else {
		w.num(0)
	}
	w.key(false, "payloadlen")
	w.num(float64(len(m.Payload)))
	if m.QoS > 0 {
		w.key(false, "mid")
		w.num(float64(m.PacketID))
	}
	p.appendJSONProperties(w, m)
	w.key(false, "payload")
	switch {
	case len(m.Payload) == 0:
		w.b = append(w.b, "null"...) // libmosquitto's payload pointer is NULL
	case escaped:
		w.b = appendJSONString(w.b, m.Payload)
	default:
		jp := jsonParser{in: m.Payload, w: w, scratch: p.scratch[:0]}
		ok := jp.parse()
		p.scratch = jp.scratch[:0]
		if !ok {
			return w.b[:start], false
		}
	}
	w.closeObject(false)
	return w.b, true
}

// appendTST appends the "tst" value: strftime's
// "%Y-%m-%dT%H:%M:%S.000000Z%z" with the microseconds written over the
// zeros and 'Z' over the string end snprintf left after them, byte
// offsets and all, so "2020-05-06T21:48:00.123456Z+0100" (sic: a Z and
// an offset; mosquitto_sub(1) shows the string without the Z).
func appendTST(dst []byte, t time.Time) []byte {
	start := len(dst)
	dst = appendStrftime(dst, 'Y', t)
	dst = append(dst, '-')
	dst = appendStrftime(dst, 'm', t)
	dst = append(dst, '-')
	dst = appendStrftime(dst, 'd', t)
	dst = append(dst, 'T')
	dst = appendStrftime(dst, 'T', t)
	dst = append(dst, ".000000Z"...)
	dst = appendStrftime(dst, 'z', t)
	s := dst[start:]
	if len(s) >= 27 { // always, for years 1000 to 9999
		us := t.Nanosecond() / 1000
		for i := 25; i >= 20; i-- {
			s[i] = byte('0' + us%10)
			us /= 10
		}
		s[26] = 'Z'
	}
	return dst
}

// appendJSONProperties appends the "properties" member when m has any
// PUBLISH property, in wire order (m.PropertyOrder) or packet's order.
func (p *Printer) appendJSONProperties(w *jw, m *Message) {
	props := &m.Properties
	var done uint64 // bit id: printed
	has := false
	for _, id := range publishProps {
		has = has || props.Has(id)
	}
	if !has {
		return
	}
	w.key(false, "properties")
	w.openObject()
	first := true
	sub := 0 // subscription identifiers printed
	// one prints the next instance of property id, if it has one left.
	one := func(id packet.PropertyID) {
		if !isPublishProp(id) || !props.Has(id) {
			return
		}
		switch id {
		case packet.PropSubscriptionID:
			if sub >= len(props.SubscriptionIDs) {
				return
			}
		case packet.PropUser:
			// libmosquitto collects the user properties in one object,
			// where the first one was.
			if done&(1<<id) != 0 {
				return
			}
			w.key(first, "user-properties")
			first = false
			w.openObject()
			for i, u := range props.User {
				w.key(i == 0, u.Key)
				w.str(u.Value)
			}
			w.closeObject(false)
			done |= 1 << id
			return
		default:
			if done&(1<<id) != 0 {
				return
			}
		}
		w.key(first, propertyNames[id])
		first = false
		switch id {
		case packet.PropPayloadFormat:
			w.num(float64(props.PayloadFormat))
		case packet.PropMessageExpiry:
			w.num(float64(props.MessageExpiry))
		case packet.PropContentType:
			w.str(props.ContentType)
		case packet.PropResponseTopic:
			w.str(props.ResponseTopic)
		case packet.PropCorrelationData:
			w.b = appendJSONString(w.b, props.CorrelationData)
		case packet.PropSubscriptionID:
			w.num(float64(props.SubscriptionIDs[sub]))
			sub++
		case packet.PropTopicAlias:
			// mosquitto_sub 2.0 reads the alias under the wrong
			// identifier and always prints 0.
			w.num(0)
		}
		done |= 1 << id
	}
	for _, id := range m.PropertyOrder {
		one(id)
	}
	// Properties the order does not list, in packet's order.
	for _, id := range publishProps {
		one(id)
		for id == packet.PropSubscriptionID && sub < len(props.SubscriptionIDs) {
			one(id)
		}
	}
	w.closeObject(false)
}

func isPublishProp(id packet.PropertyID) bool {
	for _, p := range publishProps {
		if p == id {
			return true
		}
	}
	return false
}

// jsonParser parses a %J payload as cJSON_ParseWithOpts(payload, &end,
// true) does and mosquitto_sub checks it (end must be the end of the
// payload), printing the value to w as it goes.
type jsonParser struct {
	in      []byte // the payload; cJSON sees a NUL after it
	off     int
	depth   int // nesting of the parse, for cjsonNestingLimit
	w       *jw
	scratch []byte // an unescaped string
}

// at returns the byte at i, 0 at len(in) (the NUL terminator).
func (jp *jsonParser) at(i int) byte {
	if i < len(jp.in) {
		return jp.in[i]
	}
	return 0
}

func (jp *jsonParser) parse() bool {
	// cJSON reads the payload as a C string: a NUL inside it ends the
	// text before the end of the payload, which mosquitto_sub refuses.
	if bytes.IndexByte(jp.in, 0) >= 0 {
		return false
	}
	if len(jp.in) >= 4 && jp.in[0] == 0xEF && jp.in[1] == 0xBB && jp.in[2] == 0xBF {
		jp.off = 3 // a UTF-8 byte order mark
	}
	jp.skip()
	if !jp.value() {
		return false
	}
	jp.skip()
	return jp.off == len(jp.in)
}

// skip skips whitespace, which for cJSON is every byte up to 32.
func (jp *jsonParser) skip() {
	for jp.off < len(jp.in) && jp.in[jp.off] <= 32 {
		jp.off++
	}
}

func (jp *jsonParser) literal(s string) bool {
	if bytes.HasPrefix(jp.in[jp.off:], []byte(s)) {
		jp.w.b = append(jp.w.b, s...)
		jp.off += len(s)
		return true
	}
	return false
}

func (jp *jsonParser) value() bool {
	if jp.literal("null") || jp.literal("false") || jp.literal("true") {
		return true
	}
	switch c := jp.at(jp.off); {
	case c == '"':
		if !jp.string() {
			return false
		}
		jp.w.b = appendJSONString(jp.w.b, jp.scratch)
		return true
	case c == '-' || c >= '0' && c <= '9':
		return jp.number()
	case c == '[':
		return jp.array()
	case c == '{':
		return jp.object()
	}
	return false
}

// number parses as cJSON's parse_number: it copies the bytes of
// [0-9+-eE.] that follow (all of them: Debian 12's libcjson reads
// numbers of any length, where upstream 1.7.14 stopped at 63 bytes) and
// reads the longest prefix strtod(3) takes.
func (jp *jsonParser) number() bool {
	end := jp.off
	for end < len(jp.in) && isNumberByte(jp.in[end]) {
		end++
	}
	n := strtodPrefix(jp.in[jp.off:end])
	if n == 0 {
		return false
	}
	d, _ := strconv.ParseFloat(string(jp.in[jp.off:jp.off+n]), 64) // ErrRange: ±Inf or 0, as strtod
	jp.off += n
	jp.w.num(d)
	return true
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// strtodPrefix returns the length of the longest prefix of s that strtod
// reads as a decimal number (0: none).
func strtodPrefix(s []byte) int {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return 0
	}
	end := i
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			end = j
		}
	}
	return end
}

// string parses the string at off into scratch as cJSON's parse_string
// does: it first finds the closing quote (a backslash skips the byte
// after it), then unescapes. Control bytes and invalid UTF-8 pass; a \u
// escape with bad hex digits is U+0000, which ends the string when it is
// printed.
func (jp *jsonParser) string() bool {
	length := len(jp.in) + 1 // cJSON's buffer length counts the NUL
	e := jp.off + 1
	for e < length && jp.at(e) != '"' {
		if jp.at(e) == '\\' {
			if e+1 >= length {
				return false
			}
			e++
		}
		e++
	}
	if e >= length || jp.at(e) != '"' {
		return false
	}
	out := jp.scratch[:0]
	for i := jp.off + 1; i < e; {
		if jp.in[i] != '\\' {
			out = append(out, jp.in[i])
			i++
			continue
		}
		n := 2
		switch c := jp.in[i+1]; c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '"', '\\', '/':
			out = append(out, c)
		case 'u':
			if out, n = utf16Literal(jp.in[i:e], out); n == 0 {
				return false
			}
		default:
			return false
		}
		i += n
	}
	jp.scratch = out
	jp.off = e + 1
	return true
}

// utf16Literal decodes the \uXXXX (or surrogate pair \uXXXX\uXXXX) at
// the start of s as cJSON's utf16_literal_to_utf8 does, and returns the
// length it read, 0 for an error.
func utf16Literal(s, out []byte) ([]byte, int) {
	if len(s) < 6 {
		return out, 0
	}
	first := hex4(s[2:6])
	if first >= 0xDC00 && first <= 0xDFFF {
		return out, 0
	}
	cp, n := first, 6
	if first >= 0xD800 && first <= 0xDBFF {
		second := s[6:]
		if len(second) < 6 || second[0] != '\\' || second[1] != 'u' {
			return out, 0
		}
		low := hex4(second[2:6])
		if low < 0xDC00 || low > 0xDFFF {
			return out, 0
		}
		cp, n = 0x10000+((first&0x3FF)<<10|low&0x3FF), 12
	}
	switch {
	case cp < 0x80:
		out = append(out, byte(cp))
	case cp < 0x800:
		out = append(out, byte(0xC0|cp>>6), byte(0x80|cp&0x3F))
	case cp < 0x10000:
		out = append(out, byte(0xE0|cp>>12), byte(0x80|cp>>6&0x3F), byte(0x80|cp&0x3F))
	default:
		out = append(out, byte(0xF0|cp>>18), byte(0x80|cp>>12&0x3F), byte(0x80|cp>>6&0x3F), byte(0x80|cp&0x3F))
	}
	return out, n
}

// hex4 is cJSON's parse_hex4: four hex digits, or 0 when one is not.
func hex4(s []byte) uint32 {
	var h uint32
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			h = h<<4 | uint32(c-'0')
		case c >= 'A' && c <= 'F':
			h = h<<4 | uint32(c-'A'+10)
		case c >= 'a' && c <= 'f':
			h = h<<4 | uint32(c-'a'+10)
		default:
			return 0
		}
	}
	return h
}

func (jp *jsonParser) array() bool {
	if jp.depth >= cjsonNestingLimit {
		return false
	}
	jp.depth++
	jp.off++ // [
	jp.w.openArray()
	jp.skip()
	for first := true; ; first = false {
		if first && jp.at(jp.off) == ']' {
			break
		}
		jp.w.elem(first)
		jp.skip()
		if !jp.value() {
			return false
		}
		jp.skip()
		if jp.at(jp.off) != ',' {
			if jp.at(jp.off) != ']' {
				return false
			}
			break
		}
		jp.off++
	}
	jp.off++ // ]
	jp.w.closeArray()
	jp.depth--
	return true
}

func (jp *jsonParser) object() bool {
	if jp.depth >= cjsonNestingLimit {
		return false
	}
	jp.depth++
	jp.off++ // {
	jp.w.openObject()
	jp.skip()
	empty := jp.at(jp.off) == '}'
	for first := true; !empty; first = false {
		jp.skip()
		if jp.at(jp.off) != '"' || !jp.string() {
			return false
		}
		jp.w.keyBytes(first, jp.scratch)
		jp.skip()
		if jp.at(jp.off) != ':' {
			return false
		}
		jp.off++
		jp.skip()
		if !jp.value() {
			return false
		}
		jp.skip()
		if jp.at(jp.off) != ',' {
			if jp.at(jp.off) != '}' {
				return false
			}
			break
		}
		jp.off++
	}
	jp.off++ // }
	jp.w.closeObject(empty)
	jp.depth--
	return true
}
