package packet

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// stepReader returns its steps one Read at a time: data or an error.
type stepReader struct{ steps []any }

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, errors.New("no more steps")
	}
	st := s.steps[0]
	s.steps = s.steps[1:]
	switch st := st.(type) {
	case error:
		return 0, st
	case []byte:
		n := copy(p, st)
		if n < len(st) {
			s.steps = append([]any{st[n:]}, s.steps...)
		}
		return n, nil
	}
	panic("bad step")
}

// A read error such as a deadline is reported once, as bufio does; the
// next ReadPacket reads on. Clients rely on it to poll with deadlines.
func TestReaderErrorIsNotSticky(t *testing.T) {
	ping, _ := Encode(&Pingresp{}, V311)
	r := NewReader(&stepReader{steps: []any{os.ErrDeadlineExceeded, ping}})
	r.Version = V311
	if _, err := r.ReadPacket(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read: %v", err)
	}
	if p, err := r.ReadPacket(); err != nil || p.Type() != PINGRESP {
		t.Fatalf("after the timeout: %v %v", p, err)
	}
}

// A burst larger than the small buffer moves to a pooled buffer and back;
// every packet of a long mixed stream comes out intact either way.
func TestReaderAdaptiveBuffer(t *testing.T) {
	var stream bytes.Buffer
	var want []Packet
	for i := 0; i < 500; i++ {
		var p Packet = &Publish{Topic: "t/x", QoS: 1, PacketID: uint16(i + 1), Payload: bytes.Repeat([]byte{byte(i)}, i*37%5000)}
		if i%3 == 0 {
			p = &Pingreq{}
		}
		b, err := Encode(p, V5)
		if err != nil {
			t.Fatal(err)
		}
		stream.Write(b)
		want = append(want, p)
	}
	data := stream.Bytes()
	// Hand the bytes over in uneven chunks, some tiny, some large.
	var steps []any
	for off, i := 0, 0; off < len(data); i++ {
		n := []int{1, 7, 64, 65, 3000, 4096, 9000}[i%7]
		n = min(n, len(data)-off)
		steps = append(steps, data[off:off+n])
		off += n
	}
	r := NewReader(&stepReader{steps: steps})
	r.Version = V5
	for i, w := range want {
		got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got.String() != w.String() {
			t.Fatalf("packet %d: got %v want %v", i, got, w)
		}
		if pub, ok := got.(*Publish); ok && !bytes.Equal(pub.Payload, w.(*Publish).Payload) {
			t.Fatalf("packet %d: payload differs", i)
		}
	}
}

// With ReuseAcks the four acknowledgements decode into the Reader's own
// storage, each valid until the next ReadPacket, long reason strings
// included; other packets are unaffected.
func TestReaderReuseAcks(t *testing.T) {
	long := "a reason string longer than the Reader's small ack buffer"
	in := []Packet{
		&Puback{PacketID: 1},
		&Pubrec{PacketID: 2, ReasonCode: NoMatchingSubscribers},
		&Pubrel{PacketID: 3, ReasonCode: PacketIdentifierNotFound, Properties: Properties{ReasonString: long}},
		&Pubcomp{PacketID: 4},
		&Publish{Topic: "t", QoS: 1, PacketID: 5, Payload: []byte("x")},
		&Puback{PacketID: 6, ReasonCode: NotAuthorized, Properties: Properties{ReasonString: "no"}},
	}
	var stream []byte
	for _, p := range in {
		b, err := Encode(p, V5)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(stream, b...)
	}
	r := NewReader(bytes.NewReader(stream))
	r.Version = V5
	r.ReuseAcks = true
	var prev Packet
	for i, want := range in {
		got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got.String() != want.String() {
			t.Fatalf("packet %d: got %v, want %v", i, got, want)
		}
		if id := ackID(got); id != 0 {
			if prev != nil && ackID(prev) != id {
				t.Fatalf("packet %d: the previous acknowledgement (%v) was not reused", i, prev)
			}
			prev = got
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		r := NewReader(bytes.NewReader(stream[:4]))
		r.Version, r.ReuseAcks = V5, true
		r.ReadPacket()
	})
	t.Logf("allocations per reader and PUBACK: %.0f", allocs)
}

func ackID(p Packet) uint16 {
	switch p := p.(type) {
	case *Puback:
		return p.PacketID
	case *Pubrec:
		return p.PacketID
	case *Pubrel:
		return p.PacketID
	case *Pubcomp:
		return p.PacketID
	}
	return 0
}
