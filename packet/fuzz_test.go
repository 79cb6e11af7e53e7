package packet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// Native fuzz targets for the decoder, one per protocol version. Each
// input is read as a stream of packets and checked for:
//
//   - no panic, through Decode and through a Reader (Version set to the
//     target's version, and to 0 so a CONNECT's own level is used);
//   - agreement between Decode and the Reader: same packets, same errors,
//     and a Reader that consumes exactly the bytes Decode reports and
//     refuses a packet over MaxPacketSize after its fixed header, without
//     reading or allocating its body;
//   - a stable round trip: a decoded packet encodes, the encoding decodes
//     to a packet reflect.DeepEqual to the first one, and encodes again to
//     the same bytes (also when encoded for the other two versions, if
//     that succeeds);
//   - valid MQTT strings, and byte slices that cannot be appended into
//     the bytes that follow them.
//
// The checked-in corpus is in testdata/fuzz/FuzzDecodeV31, ...V311 and
// ...V5; the seeds below add one encoded packet of every type.

// fzMax is the MaxPacketSize of the Readers the fuzz targets use.
const fzMax = 4096

// fzAllocLimit bounds what one ReadPacket may allocate with MaxPacketSize
// fzMax: the packet buffer and what is decoded from it, with room for
// slices growing while they are appended to.
const fzAllocLimit = 8*fzMax + 64<<10

func FuzzDecodeV31(f *testing.F)  { fuzzDecode(f, V31) }
func FuzzDecodeV311(f *testing.F) { fuzzDecode(f, V311) }
func FuzzDecodeV5(f *testing.F)   { fuzzDecode(f, V5) }

func fuzzDecode(f *testing.F, v Version) {
	var stream []byte
	for _, p := range fzSeedPackets(v) {
		b, err := p.Append(nil, v)
		if err != nil {
			f.Fatalf("seed %v: %v", p, err)
		}
		f.Add(b)
		stream = append(stream, b...)
	}
	f.Add(stream) // every packet in one stream
	calls := 0
	r := NewReader(nil) // reused, to leave its buffer out of the costs
	f.Fuzz(func(t *testing.T, data []byte) {
		calls++
		fzCheckDecode(t, v, data)
		fzCheckStream(t, r, data, v, fzMax, false)
		fzCheckStream(t, r, data, v, 64, true)
		fzCheckStream(t, r, data, 0, fzMax, true)
		fzCheckAlloc(t, r, v, data, calls%64 == 1)
	})
}

// fzHeader parses a fixed header without the package's code: the packet
// type and flags, the remaining length, and the header length. ok is
// false when the remaining length is cut short, longer than four bytes or
// not in its shortest form.
func fzHeader(b []byte) (t Type, flags byte, rl, hlen int, ok bool) {
	mul := 1
	for i := 1; i < len(b) && i <= 4; i++ {
		rl += int(b[i]&0x7f) * mul
		mul <<= 7
		if b[i]&0x80 == 0 {
			if i > 1 && b[i] == 0 {
				return 0, 0, 0, 0, false // a longer form than needed
			}
			return Type(b[0] >> 4), b[0] & 0x0f, rl, i + 1, true
		}
	}
	return 0, 0, 0, 0, false
}

// fzCheckDecode decodes the packet at the front of data with Decode and,
// if it is valid, checks its round trip.
func fzCheckDecode(t *testing.T, v Version, data []byte) {
	p, n, err := Decode(v, data)
	if err != nil {
		fzCheckErr(t, "Decode", data, err)
		if p != nil || n != 0 {
			t.Fatalf("Decode returned %v, %d with error %v", p, n, err)
		}
		return
	}
	ty, _, rl, hlen, ok := fzHeader(data)
	if !ok || n != hlen+rl || n > len(data) {
		t.Fatalf("Decode consumed %d bytes; the fixed header announces %d + %d (ok=%t), input %d bytes", n, hlen, rl, ok, len(data))
	}
	if p == nil || p.Type() != ty {
		t.Fatalf("Decode returned %#v for a packet of type %s", p, ty)
	}
	_ = p.String()
	fzCheckValues(t, p)

	// Bytes after the packet play no part; one byte less is too few.
	if q, m, err := Decode(v, data[:n:n]); err != nil || m != n || !reflect.DeepEqual(p, q) {
		t.Fatalf("Decode of the packet alone: %v, %d, %v; with trailing bytes: %v, %d", q, m, err, p, n)
	}
	if _, _, err := Decode(v, data[:n-1]); err != io.ErrUnexpectedEOF {
		t.Fatalf("Decode of the packet minus its last byte: %v, want io.ErrUnexpectedEOF", err)
	}

	fzRoundTrip(t, v, p)

	// Encoded for another version, the packet either cannot be encoded or
	// must decode, for that version, to a packet with a stable round trip.
	prefix := []byte{0xAA, 0xBB}
	for _, w := range []Version{V31, V311, V5} {
		if w == v {
			continue
		}
		b, err := p.Append(prefix[:2:2], w)
		if err != nil {
			if !errors.Is(err, ErrEncode) || !bytes.Equal(b, prefix) {
				t.Fatalf("failed Append for %s: %v, dst %x", w, err, b)
			}
			continue
		}
		b = b[2:]
		q, m, err := Decode(w, b)
		if err != nil || m != len(b) {
			t.Fatalf("%v (decoded for %s) encoded for %s as\n%x\nwhich decodes as %v, %d, %v", p, v, w, b, q, m, err)
		}
		fzRoundTrip(t, w, q)
	}
}

// fzRoundTrip checks that decoded packet p encodes for version v, and
// that the encoding decodes to p and encodes again to the same bytes.
func fzRoundTrip(t *testing.T, v Version, p Packet) {
	enc, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("decoded packet does not encode for %s: %v\n%#v", v, err, p)
	}
	pre := []byte("pre")
	if b, err := p.Append(pre[:3:3], v); err != nil || !bytes.Equal(b[:3], pre) || !bytes.Equal(b[3:], enc) {
		t.Fatalf("Append after a prefix: %x, %v; want pre + %x", b, err, enc)
	}
	q, n, err := Decode(v, enc)
	if err != nil || n != len(enc) {
		t.Fatalf("encoding of %v for %s:\n%x\ndecodes as %v, %d bytes of %d, %v", p, v, enc, q, n, len(enc), err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip for %s changes the packet:\n%#v\n%#v\nvia %x", v, p, q, enc)
	}
	enc2, err := q.Append(nil, v)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("unstable encoding for %s:\n%x\n%x (%v)", v, enc, enc2, err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Version = v
	if err := w.WritePacket(p); err != nil || !bytes.Equal(buf.Bytes(), enc) {
		t.Fatalf("Writer wrote %x, %v; Append gives %x", buf.Bytes(), err, enc)
	}
}

// fzCheckErr checks an error of Decode or ReadPacket for the packet at the
// front of data.
func fzCheckErr(t *testing.T, what string, data []byte, err error) {
	if err == io.ErrUnexpectedEOF {
		return
	}
	pe, ok := err.(*ProtocolError)
	if !ok {
		t.Fatalf("%s: error %T %v is neither io.ErrUnexpectedEOF nor a *ProtocolError", what, err, err)
	}
	switch pe.Code {
	case MalformedPacket, ProtocolErrorCode, TopicNameInvalid, TopicAliasInvalid, UnsupportedProtocolVersion, PacketTooLarge:
	default:
		t.Fatalf("%s: unexpected reason code in %v", what, pe)
	}
	if pe.Spec == "" || pe.Msg == "" || pe.Packet != Type(data[0]>>4) {
		t.Fatalf("%s: incomplete error %#v for a packet of type %s", what, pe, Type(data[0]>>4))
	}
	if s := pe.Error(); !strings.HasPrefix(s, "mqtt: ") {
		t.Fatalf("%s: error text %q", what, s)
	}
}

// fzCheckStream reads data with a Reader of version rv and the given
// MaxPacketSize, packet by packet, and compares each result with Decode
// on the rest of data. With oneByte the Reader's source returns one byte
// per Read, so it cannot read ahead: the count of bytes read must then
// stop exactly at the end of each packet, or of the fixed header of a
// packet refused as too large.
func fzCheckStream(t *testing.T, r *Reader, data []byte, rv Version, max uint32, oneByte bool) {
	cr := &fzCountReader{r: bytes.NewReader(data)}
	var src io.Reader = cr
	if oneByte {
		src = iotest.OneByteReader(cr)
	}
	r.Reset(src)
	r.Version, r.MaxPacketSize = rv, max
	ver, off, i := rv, 0, 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("packet %d (Reader version %d, max %d, one byte reads %t): "+format,
			append([]any{i, rv, max, oneByte}, args...)...)
	}
	for ; ; i++ {
		p, err := r.ReadPacket()
		pos := cr.n - r.Buffered()
		rest := data[off:]
		if len(rest) == 0 {
			if p != nil || err != io.EOF {
				fail("at the end of the stream: %v, %v", p, err)
			}
			return
		}
		want, n, werr := Decode(ver, rest)
		ty, flags, rl, hlen, ok := fzHeader(rest)
		if ok && hlen+rl > int(max) && checkHeader(ver, ty, flags) == nil {
			pe, isPE := err.(*ProtocolError)
			if p != nil || !isPE || pe.Code != PacketTooLarge || pe.Packet != ty {
				fail("a packet of %d bytes over the limit gives %v, %v", hlen+rl, p, err)
			}
			if oneByte && cr.n != off+hlen {
				fail("read %d bytes for a refused packet whose fixed header ends at %d", cr.n, off+hlen)
			}
			return
		}
		if werr != nil {
			if p != nil || err == nil {
				fail("Decode fails with %v, ReadPacket returns %v, %v", werr, p, err)
			}
			fzCheckErr(t, "ReadPacket", rest, err)
			pe, _ := err.(*ProtocolError)
			wpe, _ := werr.(*ProtocolError)
			if (pe == nil) != (wpe == nil) || pe != nil && (pe.Code != wpe.Code || pe.Spec != wpe.Spec || pe.Packet != wpe.Packet) {
				fail("Decode fails with %v, ReadPacket with %v", werr, err)
			}
			return
		}
		if err != nil || !reflect.DeepEqual(p, want) {
			fail("ReadPacket returns %v, %v; Decode %v", p, err, want)
		}
		if pos != off+n || oneByte && cr.n != off+n {
			fail("the Reader consumed up to %d (read %d), the packet ends at %d", pos, cr.n, off+n)
		}
		fzCheckValues(t, p)
		off += n
		if c, ok := p.(*Connect); ok {
			ver = c.Version
		}
		if r.Version != ver {
			fail("Reader version %d after %v, want %d", r.Version, p, ver)
		}
	}
}

// fzCheckAlloc measures what ReadPacket allocates for the first packet of
// data: when its header announces more than fzMax bytes (it must be
// refused without allocating its body), and for other packets when
// sample is set (ReadMemStats stops the world, so not for every input).
func fzCheckAlloc(t *testing.T, r *Reader, v Version, data []byte, sample bool) {
	_, _, rl, hlen, ok := fzHeader(data)
	huge := ok && hlen+rl > fzMax
	if !huge && !sample {
		return
	}
	// The counters are the whole process's: while fuzzing, the engine's
	// own goroutines allocate too. ReadPacket allocating the body would
	// show every time, so take the least of three measurements.
	var p Packet
	var err error
	d := uint64(math.MaxUint64)
	for range 3 {
		r.Reset(bytes.NewReader(data))
		r.Version, r.MaxPacketSize = v, fzMax
		d = min(d, fzAllocated(!sample, func() { p, err = r.ReadPacket() }))
		if d <= fzAllocLimit {
			break
		}
	}
	if d > fzAllocLimit {
		t.Fatalf("ReadPacket allocated %d bytes (limit %d) for a packet of %d bytes: %T, %v", d, fzAllocLimit, hlen+rl, p, err)
	}
}

// fzAllocated returns the bytes allocated while f runs. ReadMemStats is
// exact but stops the world; with cheap set, runtime/metrics is read
// instead, which sees each large (over 32 KiB) allocation at once and
// small ones a span at a time: enough to see a huge packet's body.
func fzAllocated(cheap bool, f func()) uint64 {
	if cheap {
		s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(s)
		a0 := s[0].Value.Uint64()
		f()
		metrics.Read(s)
		return s[0].Value.Uint64() - a0
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// fzCheckValues checks every string in a decoded packet is a valid MQTT
// string and every []byte has no spare capacity, so that appending to a
// payload cannot overwrite the bytes after it in the packet buffer.
func fzCheckValues(t *testing.T, p Packet) {
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			if !ValidUTF8String(v.String()) {
				t.Fatalf("%q is not a valid MQTT string, in %#v", v.String(), p)
			}
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				walk(v.Field(i))
			}
		case reflect.Slice:
			if v.Type() == fzBytes {
				if v.Cap() != v.Len() {
					t.Fatalf("%q has len %d and cap %d, in %#v", v.Bytes(), v.Len(), v.Cap(), p)
				}
				return
			}
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(p))
}

var fzBytes = reflect.TypeFor[[]byte]()

type fzCountReader struct {
	r io.Reader
	n int
}

func (c *fzCountReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// fzZeros is an endless stream of zero bytes: the body of a huge packet.
type fzZeros struct{}

func (fzZeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// TestFuzzReaderRefusesHugePackets gives a Reader fixed headers of every
// packet type announcing more than its MaxPacketSize, followed by an
// endless body: ReadPacket must fail with PacketTooLarge after reading the
// header alone and without allocating anything near the announced size.
func TestFuzzReaderRefusesHugePackets(t *testing.T) {
	flags := map[Type]byte{PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}
	for _, v := range []Version{0, V31, V311, V5} {
		for ty := CONNECT; ty <= AUTH; ty++ {
			if v == 0 && ty != CONNECT || ty == AUTH && v != V5 {
				continue
			}
			for _, size := range []int{fzMax + 1, 1 << 20, MaxPacketSize} {
				hdr := []byte{byte(ty)<<4 | flags[ty]}
				rl := size - 2
				for 1+vbiLen(rl)+rl > size {
					rl--
				}
				hdr = appendVBI(hdr, uint32(rl))
				if len(hdr)+rl != size {
					t.Fatalf("test bug: header %x for %d bytes", hdr, size)
				}
				cr := &fzCountReader{r: io.MultiReader(bytes.NewReader(hdr), fzZeros{})}
				r := NewReader(iotest.OneByteReader(cr))
				r.Version, r.MaxPacketSize = v, fzMax
				var p Packet
				var err error
				d := fzAllocated(false, func() { p, err = r.ReadPacket() })
				name := fmt.Sprintf("%s of %d bytes, version %d", ty, size, v)
				if pe, ok := IsProtocolError(err); p != nil || !ok || pe.Code != PacketTooLarge || pe.Packet != ty {
					t.Errorf("%s: %v, %v; want PacketTooLarge", name, p, err)
				}
				if cr.n != len(hdr) {
					t.Errorf("%s: read %d bytes, the header has %d", name, cr.n, len(hdr))
				}
				if d > fzAllocLimit {
					t.Errorf("%s: ReadPacket allocated %d bytes", name, d)
				}
				// Decode of the header alone allocates nothing and asks for more.
				if n := testing.AllocsPerRun(10, func() {
					if _, _, err := Decode(v, hdr); err != io.ErrUnexpectedEOF {
						t.Errorf("%s: Decode of the header: %v", name, err)
					}
				}); n != 0 {
					t.Errorf("%s: Decode of the header allocates %v times", name, n)
				}
			}
		}
	}
}

// TestFuzzReaderAllocations reads packets of fzMax bytes that decode to
// as many values as possible and checks what ReadPacket allocates. Long
// SUBSCRIBE and UNSUBSCRIBE packets of empty filters once allocated 25
// times their size while their slices grew. (3.1.1 refuses empty filters,
// so its packets carry one-character ones.)
func TestFuzzReaderAllocations(t *testing.T) {
	ids := make([]uint32, fzMax/2-10)
	for i := range ids {
		ids[i] = 1
	}
	oneChar := func(n int) []string {
		fs := make([]string, n)
		for i := range fs {
			fs[i] = "a"
		}
		return fs
	}
	oneCharSubs := func(n int) []Subscription {
		ss := make([]Subscription, n)
		for i := range ss {
			ss[i].Filter = "a"
		}
		return ss
	}
	for _, c := range []struct {
		v Version
		p Packet
	}{
		{V311, &Unsubscribe{PacketID: 1, Filters: oneChar(fzMax/3 - 3)}},
		{V5, &Unsubscribe{PacketID: 1, Filters: make([]string, fzMax/2-5)}},
		{V311, &Subscribe{PacketID: 1, Subscriptions: oneCharSubs(fzMax/4 - 3)}},
		{V5, &Subscribe{PacketID: 1, Subscriptions: make([]Subscription, fzMax/3-3)}},
		{V311, &Suback{PacketID: 1, ReasonCodes: make([]ReasonCode, fzMax-8)}},
		{V5, &Publish{Topic: "t", Properties: Properties{User: make([]UserProperty, fzMax/5-6)}}},
		{V5, &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: ids}}},
		{V5, &Connect{Version: V5, Properties: Properties{User: make([]UserProperty, fzMax/5-6)}}},
	} {
		b, err := c.p.Append(nil, c.v)
		if err != nil || len(b) > fzMax || len(b) < fzMax-32 {
			t.Fatalf("test bug: %T of %d bytes, %v", c.p, len(b), err)
		}
		r := NewReader(bytes.NewReader(b))
		r.Version, r.MaxPacketSize = c.v, fzMax
		var err2 error
		d := fzAllocated(false, func() { _, err2 = r.ReadPacket() })
		if err2 != nil || d > fzAllocLimit {
			t.Errorf("%s %T of %d bytes: %v, allocated %d bytes (limit %d)", c.v, c.p, len(b), err2, d, fzAllocLimit)
		}
	}
}

// TestFuzzReaderSizeLimit checks the boundary: a packet of exactly
// MaxPacketSize bytes is read, one more byte is refused.
func TestFuzzReaderSizeLimit(t *testing.T) {
	for _, v := range []Version{V31, V311, V5} {
		for _, extra := range []int{0, 1} {
			p := &Publish{Topic: "t", QoS: 1, PacketID: 7}
			b, _ := p.Append(nil, v)
			p.Payload = bytes.Repeat([]byte{'x'}, fzMax-len(b)-1+extra) // one more header byte
			b, err := p.Append(nil, v)
			if err != nil || len(b) != fzMax+extra {
				t.Fatalf("test bug: %d bytes, %v", len(b), err)
			}
			r := NewReader(bytes.NewReader(b))
			r.Version, r.MaxPacketSize = v, fzMax
			q, err := r.ReadPacket()
			if extra == 0 && (err != nil || !reflect.DeepEqual(p, q)) {
				t.Errorf("%s: packet of MaxPacketSize bytes: %v", v, err)
			}
			if extra == 1 && !errors.Is(err, ErrPacketTooLarge) {
				t.Errorf("%s: packet of MaxPacketSize+1 bytes: %v, %v", v, q, err)
			}
		}
	}
}

// fzSeedPackets returns a valid packet of every type of version v, and a
// few variants with optional fields and MQTT 5 properties.
func fzSeedPackets(v Version) []Packet {
	ps := []Packet{
		&Connect{Version: v, ClientID: "client-1", CleanStart: true, KeepAlive: 60},
		&Connect{Version: v, ClientID: "c", KeepAlive: 30, Username: "user", Password: []byte("secret"),
			Will: &Will{Topic: "will/topic", Payload: []byte("bye"), QoS: 1, Retain: true}},
		&Connect{Version: v, UsernameFlag: true, PasswordFlag: true, Will: &Will{Topic: "ü/€", QoS: 2}},
		&Connack{SessionPresent: true},
		&Publish{Topic: "a/b", Payload: []byte("hello")},
		&Publish{Topic: "a/b/c", QoS: 1, PacketID: 1, Retain: true, Payload: []byte{0, 1, 2, 0xff}},
		&Publish{Topic: "ü/€/😀", QoS: 2, PacketID: 0xFFFF, Dup: true},
		&Puback{PacketID: 1},
		&Pubrec{PacketID: 2},
		&Pubrel{PacketID: 3},
		&Pubcomp{PacketID: 0xFFFF},
		&Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 2}, {Filter: "x"}}},
		&Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, V3SubackFailure}},
		&Unsubscribe{PacketID: 11, Filters: []string{"a/+", "#"}},
		&Pingreq{},
		&Pingresp{},
		&Disconnect{},
	}
	if v != V5 {
		// Empty filters are a Protocol Error in 3.1 and 3.1.1
		// [v3 MQTT-4.7.3-1]; MQTT 5 answers them per filter.
		return append(ps,
			&Connack{ReasonCode: V3NotAuthorized},
			&Unsuback{PacketID: 11},
		)
	}
	user := []UserProperty{{"k", "v"}, {"k", "v2"}, {"", ""}}
	full := &Connect{Version: V5, ClientID: "full", KeepAlive: 5, Username: "u", Password: []byte{0},
		Properties: Properties{SessionExpiry: 3600, ReceiveMaximum: 10, MaximumPacketSize: 1 << 20, TopicAliasMaximum: 8,
			RequestResponseInfo: 1, AuthMethod: "SCRAM-SHA-1", AuthData: []byte("data"), User: user},
		Will: &Will{Topic: "w", Payload: []byte("p"), Properties: Properties{WillDelay: 10, PayloadFormat: 1,
			MessageExpiry: 60, ContentType: "text/plain", ResponseTopic: "r", CorrelationData: []byte("c"), User: user}}}
	full.Properties.Mark(PropRequestProblemInfo) // sent as 0
	connack := &Connack{Properties: Properties{SessionExpiry: 1, ReceiveMaximum: 1, RetainAvailable: 1,
		MaximumPacketSize: 100, AssignedClientID: "auto-1", TopicAliasMaximum: 2, ReasonString: "ok", User: user,
		WildcardSubAvailable: 1, SubIDAvailable: 1, SharedSubAvailable: 1, ServerKeepAlive: 20,
		ResponseInfo: "resp", ServerReference: "other:1883", AuthMethod: "m", AuthData: []byte{1}}}
	connack.Properties.Mark(PropMaximumQoS) // sent as 0
	pub := &Publish{QoS: 1, PacketID: 5, Payload: []byte(`{"a":1}`), Properties: Properties{PayloadFormat: 1,
		MessageExpiry: 30, TopicAlias: 3, ResponseTopic: "reply/to", CorrelationData: []byte{9, 9},
		User: user, SubscriptionIDs: []uint32{1, 268435455}, ContentType: "application/json"}}
	sub := &Subscribe{PacketID: 12, Properties: Properties{SubscriptionIDs: []uint32{128}, User: user},
		Subscriptions: []Subscription{{Filter: "a/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "$share/g/t", QoS: 1, RetainHandling: 1}}}
	reason := Properties{ReasonString: "because", User: user}
	disc := &Disconnect{ReasonCode: DisconnectWithWill, Properties: Properties{ServerReference: "s", ReasonString: "bye"}}
	disc.Properties.Mark(PropSessionExpiry) // sent as 0
	return append(ps, full, connack, pub, sub, disc,
		&Connack{ReasonCode: NotAuthorized},
		&Puback{PacketID: 1, ReasonCode: NoMatchingSubscribers},
		&Pubrec{PacketID: 2, ReasonCode: QuotaExceeded, Properties: reason},
		&Pubrel{PacketID: 3, ReasonCode: PacketIdentifierNotFound, Properties: reason},
		&Pubcomp{PacketID: 4, Properties: reason},
		&Suback{PacketID: 12, Properties: reason, ReasonCodes: []ReasonCode{GrantedQoS2, TopicFilterInvalid, WildcardSubscriptionsNotSupported}},
		&Unsubscribe{PacketID: 13, Properties: Properties{User: user}, Filters: []string{"a"}},
		&Unsubscribe{PacketID: 14, Filters: []string{"a/+", "", "#"}},
		&Subscribe{PacketID: 15, Subscriptions: []Subscription{{Filter: ""}, {Filter: "a", QoS: 1}}},
		&Unsuback{PacketID: 13, Properties: reason, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted}},
		&Auth{},
		&Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthMethod: "m", AuthData: []byte("d"), ReasonString: "r", User: user}},
	)
}

// FuzzUTF8 compares validUTF8 with a rune-by-rune reference.
func FuzzUTF8(f *testing.F) {
	for _, s := range []string{"", "a", "\x00", "abcdefgh", "abcdefg\x00", "abcdefghi\x00", "\x00bcdefgh",
		"ü", "€😀", "\xef\xbb\xbf", "\xed\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xee\x80\x80",
		"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
		"\xff", "abcdefgh\xc3", "abcdefghü\x00", "12345678abcdefgh\xe2\x82", "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x80"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := utf8.Valid(b)
		for i := 0; i < len(b); {
			r, size := utf8.DecodeRune(b[i:])
			if r == 0 || r == utf8.RuneError && size == 1 || r >= 0xD800 && r <= 0xDFFF {
				want = false
			}
			i += size
		}
		if got := validUTF8(b); got != want {
			t.Fatalf("validUTF8(%q) = %t, want %t", b, got, want)
		}
		if got := ValidUTF8String(string(b)); got != (want && len(b) <= 65535) {
			t.Fatalf("ValidUTF8String(%q) = %t, want %t", b, got, want)
		}
	})
}
