package packet

import (
	"fmt"
	"io"
)

// Writer encodes packets for one protocol version and writes each with
// a single Write call, reusing one buffer: encoding allocates nothing
// once the buffer has grown to fit. Wrap the destination in a
// bufio.Writer to batch several packets into one system call. A Writer is
// not safe for concurrent use; a connection has one writing goroutine.
type Writer struct {
	// Version is the protocol version packets are encoded for. Writing a
	// CONNECT sets it from the packet.
	Version Version
	// MaxPacketSize, when non-zero, is the peer's maximum packet size: a
	// larger packet is not written and WritePacket returns a ProtocolError
	// of code PacketTooLarge [v5 MQTT-3.1.2-24] [v5 MQTT-3.2.2-15].
	MaxPacketSize uint32

	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Reset makes the Writer write to dst; Version and MaxPacketSize are kept.
func (w *Writer) Reset(dst io.Writer) { w.w = dst }

// WritePacket encodes p and writes it. Nothing is written if p cannot be
// encoded or is larger than MaxPacketSize.
func (w *Writer) WritePacket(p Packet) error {
	v := w.Version
	if c, ok := p.(*Connect); ok && c.Version != 0 {
		v = c.Version
		w.Version = v
	}
	b, err := p.Append(w.buf[:0], v)
	if cap(b) <= 1<<20 {
		w.buf = b[:0] // keep a grown buffer, but not a huge one
	}
	if err != nil {
		return err
	}
	if w.MaxPacketSize != 0 && len(b) > int(w.MaxPacketSize) {
		return &ProtocolError{Code: PacketTooLarge, Packet: p.Type(), Spec: "v5 MQTT-3.1.2-24",
			Msg: fmt.Sprintf("packet of %d bytes exceeds the peer's maximum packet size %d", len(b), w.MaxPacketSize)}
	}
	_, err = w.w.Write(b)
	return err
}

// Encode returns the wire form of p for version v in a new slice.
func Encode(p Packet, v Version) ([]byte, error) { return p.Append(nil, v) }
