package subfmt

import (
	"io"
	"testing"
	"time"
)

// printCases are the formats of the benchmark and of the allocation test.
var printCases = []struct {
	name string
	opts Options
}{
	{"payload", Options{}},
	{"verbose", Options{Verbose: true}},
	{"topic-payload", Options{Format: "%t %p"}},
	{"widths", Options{Format: "%-20t %05l %10.3C %08x|%S|%P"}},
	{"time", Options{Format: "%I %U @c @N @Z"}},
	{"json", Options{Format: "%j"}},
	{"json-pretty", Options{Format: "%j", Pretty: true}},
	{"json-parse", Options{Format: "%J"}},
}

func benchMessage() *Message {
	m := testMessage()
	m.Payload = []byte(`{"temperature":27.5,"humidity":57,"tags":["a","b"],"ok":true}`)
	m.Received = time.Now()
	return m
}

func BenchmarkPrint(b *testing.B) {
	for _, c := range printCases {
		b.Run(c.name, func(b *testing.B) {
			p, err := Compile(c.opts)
			if err != nil {
				b.Fatal(err)
			}
			m := benchMessage()
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Print(io.Discard, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPrintDoesNotAllocate: once its buffer has grown, a Printer
// allocates nothing per message.
func TestPrintDoesNotAllocate(t *testing.T) {
	for _, c := range printCases {
		p, err := Compile(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		m := benchMessage()
		if n := testing.AllocsPerRun(100, func() { _ = p.Print(io.Discard, m) }); n != 0 {
			t.Errorf("%s: %v allocations per message", c.name, n)
		}
	}
}
