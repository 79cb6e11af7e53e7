package packet

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// loopReader replays one encoded packet forever, so a benchmark reads the
// same packet again and again through the Reader's real path.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func benchPublish(qos byte) *Publish {
	p := &Publish{QoS: qos, Topic: "sensors/room-12/temperature", Payload: bytes.Repeat([]byte{'x'}, 64)}
	if qos > 0 {
		p.PacketID = 4711
	}
	return p
}

// BenchmarkDecodePublish reads a PUBLISH with a 64-byte payload through a
// Reader, the path a broker's read loop takes.
func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		for _, qos := range []byte{0, 1} {
			b.Run(fmt.Sprintf("v%s/qos%d", v, qos), func(b *testing.B) {
				wire, err := Encode(benchPublish(qos), v)
				if err != nil {
					b.Fatal(err)
				}
				r := NewReader(&loopReader{b: wire})
				r.Version = v
				b.SetBytes(int64(len(wire)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := r.ReadPacket(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecodeBytes decodes the same PUBLISH from a byte slice with
// Decode (no copy; the packet aliases the input).
func BenchmarkDecodeBytes(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run("v"+v.String(), func(b *testing.B) {
			wire, _ := Encode(benchPublish(1), v)
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := Decode(v, wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodePublish encodes into a reused buffer.
func BenchmarkEncodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		for _, qos := range []byte{0, 1} {
			b.Run(fmt.Sprintf("v%s/qos%d", v, qos), func(b *testing.B) {
				p := benchPublish(qos)
				buf := make([]byte, 0, 256)
				b.ReportAllocs()
				var err error
				for i := 0; i < b.N; i++ {
					if buf, err = p.Append(buf[:0], v); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(len(buf)))
			})
		}
	}
}

// BenchmarkWritePublish writes through a Writer to io.Discard.
func BenchmarkWritePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run("v"+v.String(), func(b *testing.B) {
			w := NewWriter(io.Discard)
			w.Version = v
			p := benchPublish(1)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := w.WritePacket(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodePublishProps decodes an MQTT 5 PUBLISH carrying the
// request/response properties and two user properties.
func BenchmarkDecodePublishProps(b *testing.B) {
	p := benchPublish(1)
	p.Properties = Properties{ContentType: "application/json", ResponseTopic: "reply/42",
		CorrelationData: []byte("abc"), MessageExpiry: 60,
		User: []UserProperty{{"trace", "1"}, {"origin", "edge-7"}}}
	wire, _ := Encode(p, V5)
	r := NewReader(&loopReader{b: wire})
	r.Version = V5
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := r.ReadPacket(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchPacketsAreValid(t *testing.T) {
	// The benchmarks above fail with b.Fatal on a broken codec; this makes
	// sure a plain `go test` exercises the same values once.
	for _, v := range []Version{V311, V5} {
		for _, qos := range []byte{0, 1} {
			want := benchPublish(qos)
			wire, err := Encode(want, v)
			if err != nil {
				t.Fatal(err)
			}
			r := NewReader(&loopReader{b: wire})
			r.Version = v
			got, err := r.ReadPacket()
			if err != nil {
				t.Fatal(err)
			}
			g := got.(*Publish)
			if g.Topic != want.Topic || !bytes.Equal(g.Payload, want.Payload) || g.PacketID != want.PacketID {
				t.Fatalf("v%s qos%d: got %v", v, qos, g)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = r.ReadPacket() }); n > 1 {
				t.Errorf("v%s qos%d: ReadPacket allocates %v times, want at most 1", v, qos, n)
			}
			buf := make([]byte, 0, 256)
			if n := testing.AllocsPerRun(100, func() { buf, _ = want.Append(buf[:0], v) }); n != 0 {
				t.Errorf("v%s qos%d: Append into a reused buffer allocates %v times, want 0", v, qos, n)
			}
		}
	}
}
