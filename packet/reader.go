package packet

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Reader reads MQTT packets from a stream. It is not safe for concurrent
// use; a connection has one reading goroutine.
//
// Its buffering adapts to the traffic so that an idle connection costs
// little: while packets trickle in it reads into a 64-byte buffer of its
// own, and when a read fills that, it borrows a 4 KiB buffer from a pool
// for the burst and gives it back once the burst has been read.
type Reader struct {
	// Version decides how packets other than CONNECT are decoded. A Reader
	// that decodes a CONNECT sets Version from it, so a server needs not
	// set it; a client sets it before reading the CONNACK. While Version
	// is 0 only CONNECT can be read.
	Version Version
	// MaxPacketSize is the largest packet, fixed header included, the
	// Reader accepts; a larger one fails with a ProtocolError of code
	// PacketTooLarge before any memory is allocated for it. 0 means the
	// protocol's own limit (MaxPacketSize, 256 MiB + 4 bytes).
	MaxPacketSize uint32
	// ReuseAcks makes ReadPacket decode PUBACK, PUBREC, PUBREL and
	// PUBCOMP packets into storage of the Reader's own instead of
	// allocating each: such a packet, and the strings in its properties,
	// are then valid only until the next ReadPacket. A server or client
	// that acts on every acknowledgement at once saves an allocation or
	// two per QoS 1 and QoS 2 message.
	ReuseAcks bool

	src      io.Reader
	buf      []byte // buffered bytes are buf[r:w]
	r, w     int
	big      *[]byte // the pooled buffer in use, nil while reading into small
	lastFull bool    // the last read filled the buffer: more is likely waiting
	err      error   // a read error that came with data, returned (once) when the buffer is empty
	small    [64]byte
	dec      decoder
	acks     *ackScratch // for ReuseAcks, allocated on the first acknowledgement
}

// ackScratch is where a Reader with ReuseAcks decodes acknowledgements.
type ackScratch struct {
	a    ack
	body [32]byte
}

const bigBuffer = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, bigBuffer); return &b }}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	rd := &Reader{src: r}
	rd.buf = rd.small[:]
	return rd
}

// Reset discards any buffered data and reads from src; Version and
// MaxPacketSize are kept.
func (r *Reader) Reset(src io.Reader) {
	r.release()
	r.src, r.r, r.w, r.err, r.lastFull = src, 0, 0, nil, false
}

// Buffered reports how many bytes have been read from the stream but not
// yet consumed as packets.
func (r *Reader) Buffered() int { return r.w - r.r }

// Fill waits until at least one byte is buffered, reading from the
// stream if the buffer is empty. A server calls it before ReadPacket to
// wait for the next packet on a shallow call stack: the goroutine of an
// idle connection then needs only the smallest stack the runtime has.
func (r *Reader) Fill() error {
	if r.r < r.w {
		return nil
	}
	return r.fill()
}

func (r *Reader) release() {
	if r.big != nil {
		bufPool.Put(r.big)
		r.big = nil
	}
	r.buf = r.small[:]
}

// fill reads more bytes into the empty buffer.
func (r *Reader) fill() error {
	if err := r.takeErr(); err != nil {
		return err
	}
	r.r, r.w = 0, 0
	if r.big != nil && !r.lastFull {
		r.release() // the burst is over; wait for the next in the small buffer
	}
	for i := 0; ; i++ {
		n, err := r.src.Read(r.buf)
		if n < 0 || n > len(r.buf) {
			return errors.New("mqtt: source returned an invalid byte count")
		}
		r.w = n
		r.lastFull = n == len(r.buf)
		if n > 0 {
			r.err = err // returned after the data
			if r.lastFull && r.big == nil {
				r.big = bufPool.Get().(*[]byte)
				copy(*r.big, r.buf[:n])
				r.buf = *r.big
			}
			return nil
		}
		if err != nil {
			return err
		}
		if i == 100 {
			return io.ErrNoProgress
		}
	}
}

// takeErr returns the pending read error and clears it: like bufio, a
// timeout is reported once and a later read may succeed.
func (r *Reader) takeErr() error {
	err := r.err
	r.err = nil
	return err
}

func (r *Reader) readByte() (byte, error) {
	if r.r == r.w {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	c := r.buf[r.r]
	r.r++
	return c, nil
}

// read copies buffered bytes to p, or reads straight from the source
// when the buffer is empty and p is large.
func (r *Reader) read(p []byte) (int, error) {
	if r.r == r.w {
		if len(p) >= bigBuffer {
			if err := r.takeErr(); err != nil {
				return 0, err
			}
			return r.src.Read(p)
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

func (r *Reader) readFull(p []byte) error {
	for len(p) > 0 {
		n, err := r.read(p)
		p = p[n:]
		if err != nil && len(p) > 0 {
			return unexpected(err)
		}
	}
	return nil
}

// growStep is the size from which a packet's buffer grows as its bytes
// arrive instead of being allocated whole: a peer that announces a large
// packet and sends nothing pins no more than this.
const growStep = 64 << 10

// readBody reads a packet body of n bytes into a new buffer.
func (r *Reader) readBody(n int) ([]byte, error) {
	if n <= growStep {
		body := make([]byte, n)
		return body, r.readFull(body)
	}
	body := make([]byte, 0, growStep)
	for len(body) < n {
		if len(body) == cap(body) {
			nb := make([]byte, len(body), min(2*cap(body), n))
			copy(nb, body)
			body = nb
		}
		k, err := r.read(body[len(body):cap(body)])
		body = body[:len(body)+k]
		if err != nil && len(body) < n {
			return nil, unexpected(err)
		}
	}
	return body, nil
}

// ReadPacket reads and decodes the next packet. At a clean end of stream
// between packets it returns io.EOF; a stream ending inside a packet gives
// io.ErrUnexpectedEOF; a packet that breaks the protocol gives a
// *ProtocolError, after which the stream position is undefined and the
// connection must be closed. The packet's strings and slices share one
// fresh buffer that the Reader never touches again.
func (r *Reader) ReadPacket() (Packet, error) {
	b0, err := r.readByte()
	if err != nil {
		return nil, err
	}
	var hdr [4]byte
	n := 0
	for {
		c, err := r.readByte()
		if err != nil {
			return nil, unexpected(err)
		}
		hdr[n] = c
		n++
		if c&0x80 == 0 {
			break
		}
		if n == 4 {
			// A remaining length of five bytes or more [noid:vbi-5-bytes] (section 2.2.3).
			return nil, malformed(Type(b0>>4), "noid:vbi-5-bytes", "remaining length longer than four bytes")
		}
	}
	rl, _, perr := decodeVBI(hdr[:n])
	if perr != nil {
		perr.Packet = Type(b0 >> 4)
		return nil, perr
	}
	t, flags := Type(b0>>4), b0&0x0f
	if err := r.checkHeader(t, flags); err != nil {
		return nil, err
	}
	max := r.MaxPacketSize
	if max == 0 {
		max = MaxPacketSize
	}
	if size := uint64(1+n) + uint64(rl); size > uint64(max) {
		return nil, &ProtocolError{Code: PacketTooLarge, Packet: t, Spec: "v5 MQTT-3.2.2-15",
			Msg: fmt.Sprintf("packet of %d bytes exceeds the maximum packet size %d", size, max)}
	}
	var (
		body []byte
		p    Packet
	)
	if t == PUBLISH && uintptr(rl) <= smallPublish {
		box := new(publishBox)
		body, p = box.buf[:rl:rl], &box.p
		if err := r.readFull(body); err != nil {
			return nil, err
		}
	} else if r.ReuseAcks && t >= PUBACK && t <= PUBCOMP {
		if r.acks == nil {
			r.acks = new(ackScratch)
		}
		sc := r.acks
		sc.a = ack{}
		if int(rl) <= len(sc.body) {
			body = sc.body[:rl:rl]
			err = r.readFull(body)
		} else {
			body, err = r.readBody(int(rl))
		}
		if err != nil {
			return nil, err
		}
		switch t {
		case PUBACK:
			p = (*Puback)(&sc.a)
		case PUBREC:
			p = (*Pubrec)(&sc.a)
		case PUBREL:
			p = (*Pubrel)(&sc.a)
		default:
			p = (*Pubcomp)(&sc.a)
		}
	} else {
		if body, err = r.readBody(int(rl)); err != nil {
			return nil, err
		}
		p = New(t)
	}
	v := r.Version
	r.dec = decoder{b: body, t: t, v: v}
	err = p.decode(&r.dec, flags)
	r.dec = decoder{}
	if err != nil {
		return nil, err
	}
	if c, ok := p.(*Connect); ok {
		r.Version = c.Version
	}
	return p, nil
}

// checkHeader validates the packet type and the fixed-header flags
// [v5 MQTT-2.1.3-1] [v3 MQTT-2.2.2-1] [v3 MQTT-2.2.2-2].
func (r *Reader) checkHeader(t Type, flags byte) error {
	return checkHeader(r.Version, t, flags)
}

func checkHeader(v Version, t Type, flags byte) error {
	if t == 0 || (t == AUTH && v != V5 && v != 0) {
		return malformed(t, versioned(v, "MQTT-2.1.3-1", "MQTT-2.2.2-1"), "reserved packet type "+t.String())
	}
	if v == 0 && t != CONNECT {
		// Nothing but CONNECT can be read before the version is known;
		// a server gets here when the first packet is not a CONNECT
		// [v5 MQTT-3.1.0-1] [v3 MQTT-3.1.0-1].
		return protoErr(t, "v5 MQTT-3.1.0-1", "first packet is not CONNECT")
	}
	want := byte(0)
	switch t {
	case PUBLISH:
		return nil // DUP, QoS and RETAIN are checked with the packet
	case PUBREL:
		want = 0x02 // [v5 MQTT-3.6.1-1] [v3 MQTT-3.6.1-1]
	case SUBSCRIBE:
		want = 0x02 // [v5 MQTT-3.8.1-1] [v3 MQTT-3.8.1-1]
	case UNSUBSCRIBE:
		want = 0x02 // [v5 MQTT-3.10.1-1] [v3 MQTT-3.10.1-1]
	}
	if flags != want {
		if v == V31 && want == 0x02 && flags == 0x0A {
			// MQTT 3.1 gives PUBREL, SUBSCRIBE and UNSUBSCRIBE a DUP flag
			// and QoS 1 (MQTT 3.1 sections 3.6, 3.8, 3.10) and sets DUP
			// when it sends one again, after a reconnect say; the fixed
			// flags 0010 are a 3.1.1 rule [v3 MQTT-2.2.2-1]. So a 3.1
			// stream accepts 1010 too, as Mosquitto does.
			return nil
		}
		// DISCONNECT [v5 MQTT-3.14.1-1] [v3 MQTT-3.14.1-1], AUTH [v5 MQTT-3.15.1-1].
		return malformed(t, versioned(v, "MQTT-2.1.3-1", "MQTT-2.2.2-1"),
			fmt.Sprintf("fixed header flags 0x%x, want 0x%x", flags, want))
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Decode decodes the packet at the front of b, for a stream of protocol
// version v (0: only a CONNECT is accepted), and returns it with the number
// of bytes it took. The packet's strings and slices alias b. If b holds
// less than one whole packet, Decode returns io.ErrUnexpectedEOF.
func Decode(v Version, b []byte) (Packet, int, error) {
	if len(b) < 2 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	t, flags := Type(b[0]>>4), b[0]&0x0f
	rl, n, perr := decodeVBI(b[1:])
	if perr != nil {
		if perr.Spec == "noid:truncated" {
			return nil, 0, io.ErrUnexpectedEOF
		}
		perr.Packet = t
		return nil, 0, perr
	}
	if err := checkHeader(v, t, flags); err != nil {
		return nil, 0, err
	}
	end := 1 + n + int(rl)
	if len(b) < end {
		return nil, 0, io.ErrUnexpectedEOF
	}
	p := New(t)
	d := decoder{b: b[1+n : end : end], t: t, v: v}
	if err := p.decode(&d, flags); err != nil {
		return nil, 0, err
	}
	return p, end, nil
}

// IsProtocolError reports whether err is a *ProtocolError and returns it.
func IsProtocolError(err error) (*ProtocolError, bool) {
	var pe *ProtocolError
	ok := errors.As(err, &pe)
	return pe, ok
}
