package subfmt

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ternmq/tern/packet"
)

// Message is one received application message as the printer sees it.
type Message struct {
	Topic      string // resolved: the topic a topic alias stands for, when the PUBLISH carried none
	Payload    []byte
	QoS        byte
	Retain     bool
	PacketID   uint16            // as received; 0 for QoS 0 (printed by %m and in %j / %J as "mid")
	Properties packet.Properties // MQTT 5 properties; zero for 3.1 and 3.1.1
	// PropertyOrder is the order in which the PUBLISH carried its
	// properties, one entry per property (a user property or a
	// subscription identifier that appears three times is listed three
	// times). Only the "properties" object of %j and %J depends on it:
	// mosquitto_sub lists the properties in wire order. Nil means the order
	// in which package packet encodes them (by increasing identifier),
	// which is the wire order of every PUBLISH a Tern broker sends.
	PropertyOrder []packet.PropertyID
	// Received is the time the message arrived, printed by %I, %U, %j,
	// %J and the @ fields; zero means the time of the Print call.
	Received time.Time
}

// SetPublish sets m to the message of a received PUBLISH and the time it
// arrived. When pub carries a topic alias and no topic, the caller sets
// m.Topic to the topic the alias stands for.
func (m *Message) SetPublish(pub *packet.Publish, received time.Time) {
	*m = Message{Topic: pub.Topic, Payload: pub.Payload, QoS: pub.QoS, Retain: pub.Retain,
		PacketID: pub.PacketID, Properties: pub.Properties, Received: received}
}

// Options are mosquitto_sub's options that decide how a message is
// printed.
type Options struct {
	// Format is the format string of -F. It is used when it is not empty
	// or FormatSet is true: -F "" is a format too (it prints only the end
	// of line).
	Format    string
	FormatSet bool
	Verbose   bool // -v: "topic payload"; ignored when there is a format
	NoEOL     bool // -N: no newline after each message
	Pretty    bool // --pretty: %j and %J print indented JSON
	// Location is the time zone of the time fields; nil means time.Local
	// (mosquitto_sub uses localtime(3), that is the TZ environment
	// variable or /etc/localtime).
	Location *time.Location
}

// MaxWidth is the largest field width or precision Compile accepts.
const MaxWidth = 1<<16 - 1

// FormatError is a format string that Compile refuses. mosquitto_sub
// refuses the same strings at start-up (except widths above MaxWidth,
// which it accepts and overflows).
type FormatError struct {
	Format string // the -F argument
	Offset int    // byte offset of the offending directive in Format
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("-F %s: %s", quote(e.Format), e.Msg)
}

// JSONError is returned by Print when the payload of a message printed
// with %J is not JSON. The rest of the line has been written (without the
// JSON object), as mosquitto_sub does; the caller reports the error and
// goes on with the next message.
type JSONError struct {
	Topic string
	Count int // how many %J of the format failed: mosquitto_sub prints the message once for each
}

// Error returns mosquitto_sub's message, which it prints after "Error: ".
func (e *JSONError) Error() string {
	return "Message payload is not valid JSON on topic " + cString(e.Topic) + "."
}

// Printer prints messages as mosquitto_sub does with a given set of
// options. It reuses one buffer: a Printer is not safe for concurrent
// use.
type Printer struct {
	mode    byte // 'F' format, 'v' verbose, 'p' payload only
	eol     bool
	pretty  bool
	loc     *time.Location
	ops     []op
	lits    string // literal text of the format, sliced by ops
	buf     []byte
	scratch []byte // for %J: an unescaped JSON string
	jw      jw     // for %j and %J
}

// opKind tells what an op prints.
type opKind byte

const (
	opLit  opKind = iota // lits[a:b]
	opDir                // a % directive
	opTime               // an @ directive: strftime's %c, or @N
)

// op is one piece of a compiled format.
type op struct {
	kind  opKind
	c     byte  // directive character
	left  bool  // - flag
	zero  bool  // 0 flag
	width int32 // 0: none
	prec  int32 // -1: none
	a, b  int32 // literal: lits[a:b]
}

// directives are the characters that may follow % (and its flags).
const directives = "%ACDEFIJPRSUXjlmpqrtx"

// escapes are the characters that may follow \.
const escapes = "\\0aenrtv"

// Compile checks the format of opts and returns a Printer for opts.
func Compile(opts Options) (*Printer, error) {
	p := &Printer{mode: 'p', eol: !opts.NoEOL, pretty: opts.Pretty, loc: opts.Location}
	if p.loc == nil {
		p.loc = time.Local
	}
	switch {
	case opts.Format != "" || opts.FormatSet:
		p.mode = 'F'
		if err := check(opts.Format); err != nil {
			return nil, err
		}
		p.compile(opts.Format)
	case opts.Verbose:
		p.mode = 'v'
	}
	return p, nil
}

// check accepts exactly the format strings mosquitto_sub 2.0 accepts
// (client_shared.c, check_format), and refuses widths above MaxWidth.
func check(f string) error {
	fail := func(at int, msg string, args ...any) error {
		return &FormatError{Format: f, Offset: at, Msg: fmt.Sprintf(msg, args...)}
	}
	n := len(f)
	for i := 0; i < n; i++ {
		switch f[i] {
		case '%':
			start := i
			incomplete := func() error {
				return fail(start, "the format ends inside the directive %s: end it with a directive letter (e.g. %%t) or write %%%% for a literal %%", quote(f[start:]))
			}
			if i == n-1 {
				return incomplete()
			}
			if f[i+1] == '0' || f[i+1] == '-' {
				if i++; i == n-1 {
					return incomplete()
				}
			}
			// number skips the digits after i, which must not run to the
			// end of the format.
			number := func(what string) error {
				from, v := i+1, 0
				for f[i+1] >= '0' && f[i+1] <= '9' {
					v = min(v*10+int(f[i+1]-'0'), MaxWidth+1)
					if i++; i == n-1 {
						return incomplete()
					}
				}
				if v > MaxWidth {
					return fail(start, "the %s %s in %s is larger than %d, the largest a field can be", what, f[from:i+1], quote(f[start:]), MaxWidth)
				}
				return nil
			}
			if err := number("width"); err != nil {
				return err
			}
			if f[i+1] == '.' {
				if i++; i == n-1 {
					return incomplete()
				}
				if err := number("precision"); err != nil {
					return err
				}
			}
			if c := f[i+1]; strings.IndexByte(directives, c) < 0 {
				return fail(start, "%s is not a directive: %% takes an optional flag (- or 0), width and .precision, then one of %s (see mosquitto_sub(1), OUTPUT FORMAT)",
					quote(f[start:i+1+runeLen(f[i+1:])]), spaced("%", directives))
			}
			i++
		case '@':
			if i == n-1 {
				return fail(i, "the format ends with a lone @: write @@ for a literal @, or @ and a strftime(3) letter (e.g. @H)")
			}
			i++
		case '\\':
			if i == n-1 {
				return fail(i, `the format ends with a lone \: write \\ for a literal \`)
			}
			if strings.IndexByte(escapes, f[i+1]) < 0 {
				return fail(i, "%s is not an escape: the escapes are %s", quote(f[i:i+1+runeLen(f[i+1:])]), spaced(`\`, escapes))
			}
			i++
		}
	}
	return nil
}

// quote puts s in double quotes, as the user typed it when it is
// printable UTF-8 without a double quote, else as a Go string literal.
func quote(s string) string {
	for _, r := range s {
		if r == '"' || r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return strconv.Quote(s)
		}
	}
	return `"` + s + `"`
}

// runeLen returns the length of the character s starts with, for error
// messages that quote it whole.
func runeLen(s string) int {
	_, n := utf8.DecodeRuneInString(s)
	return n
}

// unescape returns the byte \c stands for.
func unescape(c byte) byte {
	switch c {
	case '0':
		return 0
	case 'a':
		return '\a'
	case 'e':
		return 0x1b
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'v':
		return '\v'
	}
	return c // '\\'
}

// spaced returns prefix+c for each byte c of set, separated by spaces.
func spaced(prefix, set string) string {
	var b strings.Builder
	for i := 0; i < len(set); i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(prefix)
		b.WriteByte(set[i])
	}
	return b.String()
}

// compile turns a checked format into ops, parsing it as mosquitto_sub's
// formatted_print does.
func (p *Printer) compile(f string) {
	var lits []byte
	lit := func(b ...byte) {
		if len(p.ops) > 0 && p.ops[len(p.ops)-1].kind == opLit {
			lits = append(lits, b...)
			p.ops[len(p.ops)-1].b = int32(len(lits))
			return
		}
		a := len(lits)
		lits = append(lits, b...)
		p.ops = append(p.ops, op{kind: opLit, a: int32(a), b: int32(len(lits))})
	}
	n := len(f)
	for i := 0; i < n; i++ {
		switch c := f[i]; c {
		case '%':
			o := op{kind: opDir, prec: -1}
			i++
			if f[i] == '-' {
				o.left = true
				i++
			}
			if f[i] == '0' {
				o.zero = true
				i++
			}
			for ; f[i] >= '0' && f[i] <= '9'; i++ {
				o.width = o.width*10 + int32(f[i]-'0')
			}
			if f[i] == '.' {
				o.prec = 0
				for i++; f[i] >= '0' && f[i] <= '9'; i++ {
					o.prec = o.prec*10 + int32(f[i]-'0')
				}
			}
			o.c = f[i]
			if o.c == '%' {
				lit('%')
			} else {
				p.ops = append(p.ops, o)
			}
		case '@':
			i++
			if f[i] == '@' {
				lit('@')
			} else {
				p.ops = append(p.ops, op{kind: opTime, c: f[i]})
			}
		case '\\':
			i++
			lit(unescape(f[i]))
		default:
			lit(c)
		}
	}
	p.lits = string(lits)
}

// Print writes m to w as mosquitto_sub would, in one Write call. It
// returns the error of the Write, or a *JSONError (after writing) when a
// %J payload is not JSON.
func (p *Printer) Print(w io.Writer, m *Message) error {
	out, err := p.Append(p.buf[:0], m)
	if cap(out) <= 1<<20 {
		p.buf = out[:0] // keep a grown buffer, but not a huge one
	}
	if len(out) > 0 {
		if _, werr := w.Write(out); werr != nil {
			return werr
		}
	}
	return err
}

// Append appends to dst what Print would write and returns the result,
// with the *JSONError Print would return.
func (p *Printer) Append(dst []byte, m *Message) ([]byte, error) {
	switch p.mode {
	case 'F':
		return p.appendFormat(dst, m)
	case 'v':
		if len(m.Payload) > 0 {
			dst = appendC(dst, m.Topic)
			dst = append(dst, ' ')
			dst = append(dst, m.Payload...)
			if p.eol {
				dst = append(dst, '\n')
			}
		} else if p.eol {
			// mosquitto_sub prints "(null)" for an empty payload, and
			// nothing at all with -N.
			dst = appendC(dst, m.Topic)
			dst = append(dst, " (null)\n"...)
		}
	default:
		if len(m.Payload) > 0 { // an empty payload prints nothing, not even the newline
			dst = append(dst, m.Payload...)
			if p.eol {
				dst = append(dst, '\n')
			}
		}
	}
	return dst, nil
}

func (p *Printer) appendFormat(dst []byte, m *Message) ([]byte, error) {
	var err *JSONError
	var now time.Time
	var haveTime bool
	t := func() time.Time {
		if !haveTime {
			now = m.Received
			if now.IsZero() {
				now = time.Now()
			}
			now = now.In(p.loc)
			haveTime = true
		}
		return now
	}
	props := &m.Properties
	for i := range p.ops {
		o := &p.ops[i]
		switch o.kind {
		case opLit:
			dst = append(dst, p.lits[o.a:o.b]...)
		case opTime:
			if o.c == 'N' {
				dst = appendZeroPad(dst, uint64(t().Nanosecond()), 9)
			} else {
				dst = appendStrftime(dst, o.c, t())
			}
		case opDir:
			switch o.c {
			case 'A':
				dst = o.optInt(dst, props.Has(packet.PropTopicAlias), int64(props.TopicAlias))
			case 'C':
				if props.Has(packet.PropContentType) {
					dst = o.str(dst, props.ContentType)
				} else {
					dst = appendPad(dst, ' ', int(o.width))
				}
			case 'D':
				dst = append(dst, props.CorrelationData...)
			case 'E':
				// mosquitto_sub prints the interval as a signed int:
				// 4294967295 is -1.
				dst = o.optInt(dst, props.Has(packet.PropMessageExpiry), int64(int32(props.MessageExpiry)))
			case 'F':
				dst = o.optInt(dst, props.Has(packet.PropPayloadFormat), int64(props.PayloadFormat))
			case 'I':
				tm := t()
				var b [64]byte
				s := appendStrftime(b[:0], 'F', tm)
				s = append(s, 'T')
				s = appendStrftime(s, 'T', tm)
				s = appendStrftime(s, 'z', tm)
				dst = o.strBytes(dst, s)
			case 'j', 'J':
				var ok bool
				dst, ok = p.appendJSON(dst, m, t(), o.c == 'j')
				if !ok {
					if err == nil {
						err = &JSONError{Topic: m.Topic}
					}
					err.Count++
				}
			case 'l':
				dst = o.int(dst, int64(len(m.Payload)))
			case 'm':
				dst = o.int(dst, int64(m.PacketID))
			case 'P':
				for k, u := range props.User {
					if k > 0 {
						dst = append(dst, ' ')
					}
					dst = appendC(dst, u.Key)
					dst = append(dst, ':')
					dst = appendC(dst, u.Value)
				}
			case 'p':
				dst = o.payload(dst, m.Payload, 0)
			case 'q':
				dst = append(dst, '0'+m.QoS)
			case 'R':
				if props.Has(packet.PropResponseTopic) {
					dst = o.str(dst, props.ResponseTopic)
				}
			case 'r':
				if m.Retain {
					dst = append(dst, '1')
				} else {
					dst = append(dst, '0')
				}
			case 'S':
				ids := props.SubscriptionIDs
				var id int64
				if len(ids) > 0 {
					id = int64(int32(ids[0]))
				}
				dst = o.optInt(dst, len(ids) > 0, id)
			case 't':
				dst = o.str(dst, m.Topic)
			case 'U':
				tm := t()
				dst = strconv.AppendInt(dst, tm.Unix(), 10)
				dst = append(dst, '.')
				dst = appendZeroPad(dst, uint64(tm.Nanosecond()), 9)
			case 'x':
				dst = o.payload(dst, m.Payload, 1)
			case 'X':
				dst = o.payload(dst, m.Payload, 2)
			}
		}
	}
	if p.eol {
		dst = append(dst, '\n')
	}
	if err != nil {
		return dst, err
	}
	return dst, nil
}

// optInt prints an integer property, or, when it is absent, width pad
// characters (zeros with the 0 flag, even with -: mosquitto_sub's
// formatted_print_blank).
func (o *op) optInt(dst []byte, present bool, v int64) []byte {
	if present {
		return o.int(dst, v)
	}
	pad := byte(' ')
	if o.zero {
		pad = '0'
	}
	return appendPad(dst, pad, int(o.width))
}

// int prints v as printf's %d, %-*d, %0*d or %*d.
func (o *op) int(dst []byte, v int64) []byte {
	var b [24]byte
	s := strconv.AppendInt(b[:0], v, 10)
	w := int(o.width)
	switch {
	case w <= len(s):
		return append(dst, s...)
	case o.left:
		dst = append(dst, s...)
		return appendPad(dst, ' ', w-len(s))
	case o.zero:
		if v < 0 {
			dst = append(dst, '-')
			s = s[1:]
			w--
		}
		dst = appendPad(dst, '0', w-len(s))
		return append(dst, s...)
	default:
		dst = appendPad(dst, ' ', w-len(s))
		return append(dst, s...)
	}
}

// str prints s as printf's %s with the op's width and precision (bytes,
// not characters; the string ends at a NUL, as C strings do).
func (o *op) str(dst []byte, s string) []byte {
	s = cString(s)
	if o.prec >= 0 && int(o.prec) < len(s) {
		s = s[:o.prec]
	}
	pad := int(o.width) - len(s)
	if !o.left {
		dst = appendPad(dst, ' ', pad)
	}
	dst = append(dst, s...)
	if o.left {
		dst = appendPad(dst, ' ', pad)
	}
	return dst
}

func (o *op) strBytes(dst []byte, s []byte) []byte {
	if o.prec >= 0 && int(o.prec) < len(s) {
		s = s[:o.prec]
	}
	pad := int(o.width) - len(s)
	if !o.left {
		dst = appendPad(dst, ' ', pad)
	}
	dst = append(dst, s...)
	if o.left {
		dst = appendPad(dst, ' ', pad)
	}
	return dst
}

// payload prints the payload raw (hex 0), as lower-case hex (1) or upper
// case hex (2), following mosquitto_sub's write_payload to the letter: a
// width also cuts the payload to width bytes (width/2 bytes in hex: "%4x"
// of a 3-byte payload prints "ab" and two pads), and a - flag without a
// width pads with as many spaces as the payload has bytes.
func (o *op) payload(dst []byte, pl []byte, hex int) []byte {
	n := len(pl)
	w := int(o.width)
	var pad int
	if w > 0 {
		n = min(n, w)
		if hex > 0 {
			n /= 2
			pad = w - 2*n
		} else {
			pad = w - n
		}
	} else {
		pad = -n // printf("%*s", -n, "") pads n spaces on the left-aligned path
	}
	if !o.left {
		c := byte(' ')
		if o.zero {
			c = '0'
		}
		dst = appendPad(dst, c, pad)
	}
	switch hex {
	case 0:
		dst = append(dst, pl[:n]...)
	case 1:
		dst = appendHex(dst, pl[:n], "0123456789abcdef")
	default:
		dst = appendHex(dst, pl[:n], "0123456789ABCDEF")
	}
	if o.left {
		if pad < 0 {
			pad = -pad
		}
		dst = appendPad(dst, ' ', pad)
	}
	return dst
}

func appendHex(dst, b []byte, digits string) []byte {
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

// appendPad appends n copies of c (nothing when n <= 0).
func appendPad(dst []byte, c byte, n int) []byte {
	for ; n > 0; n-- {
		dst = append(dst, c)
	}
	return dst
}

// appendZeroPad appends v in decimal with at least width digits.
func appendZeroPad(dst []byte, v uint64, width int) []byte {
	var b [20]byte
	s := strconv.AppendUint(b[:0], v, 10)
	dst = appendPad(dst, '0', width-len(s))
	return append(dst, s...)
}

// cString returns s up to its first NUL: what C's printf and fputs see
// of it.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// appendC appends s as a C string.
func appendC(dst []byte, s string) []byte { return append(dst, cString(s)...) }
