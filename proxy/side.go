package proxy

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/ternmq/tern/packet"
)

// writerPool holds the write buffers of sides that have nothing to
// write: an idle connection holds none.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// side is the writing end of one of a proxied connection's two network
// connections. Packets are forwarded by the goroutine reading the other
// side and answered (a drop's acknowledgement) by the one reading this
// side, so the two share a lock; the writes are buffered and flushed
// when the forwarding goroutine has nothing more to read, which batches
// the packets of a burst into few system calls.
type side struct {
	mu      sync.Mutex
	nc      net.Conn
	bw      *bufio.Writer // from writerPool while there is something to write; nil when idle
	buf     []byte
	version packet.Version
	max     uint32 // the peer's MQTT 5 Maximum Packet Size; 0: none
	timeout time.Duration
	armed   time.Time // when the write deadline was last set
	err     error     // sticky write error
	connack bool      // a CONNACK has been written (client side)
}

func newSide(nc net.Conn, timeout time.Duration) *side {
	return &side{nc: nc, timeout: timeout}
}

func (w *side) setVersion(v packet.Version) {
	w.mu.Lock()
	w.version = v
	w.mu.Unlock()
}

func (w *side) setMax(m uint32) {
	w.mu.Lock()
	w.max = m
	w.mu.Unlock()
}

// write encodes p (within the peer's Maximum Packet Size, dropping its
// Reason String and User Properties if that makes it fit
// [v5 MQTT-3.1.2-24] [v5 MQTT-3.2.2-15]) into the buffer, and flushes
// it if flush is set. An encoding error (a packet too large, one a filter
// made unencodable) writes nothing and is returned; a write error is
// sticky.
func (w *side) write(p packet.Packet, flush bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(p, flush)
}

func (w *side) writeLocked(p packet.Packet, flush bool) error {
	if w.err != nil {
		return w.err
	}
	b, err := packet.AppendFitting(w.buf[:0], p, w.version, w.max)
	if cap(b) <= 64<<10 {
		w.buf = b[:0]
	}
	if err != nil {
		return err
	}
	if _, ok := p.(*packet.Connack); ok {
		w.connack = true
	}
	if w.bw == nil {
		w.bw = writerPool.Get().(*bufio.Writer)
		w.bw.Reset(w.nc)
	}
	w.arm()
	if _, err = w.bw.Write(b); err == nil && flush {
		err = w.flushLocked()
	}
	if err != nil {
		w.err = err
	}
	return err
}

// arm sets the write deadline to WriteTimeout from now, but at most
// every quarter of it for long timeouts: a write then has between three
// quarters of the timeout and all of it, and a busy connection does not
// reset its timer for every packet.
func (w *side) arm() {
	now := time.Now()
	if w.timeout < 4*time.Second || now.Sub(w.armed) > w.timeout/4 {
		w.nc.SetWriteDeadline(now.Add(w.timeout))
		w.armed = now
	}
}

// flushLocked writes the buffer out and gives it back to the pool.
func (w *side) flushLocked() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	w.bw.Reset(nil)
	writerPool.Put(w.bw)
	w.bw = nil
	return nil
}

// flush writes out what is buffered.
func (w *side) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil || w.bw == nil {
		return w.err
	}
	w.arm()
	if err := w.flushLocked(); err != nil {
		w.err = err
	}
	return w.err
}

// last writes the final packet that build returns (given whether a
// CONNACK went out already; nil: none) and flushes, within a short
// deadline: the connection is about to be closed.
func (w *side) last(build func(connack bool) packet.Packet) {
	w.nc.SetWriteDeadline(time.Now().Add(2 * time.Second)) // unblocks a write in progress
	w.mu.Lock()
	defer w.mu.Unlock()
	p := build(w.connack)
	if p != nil && w.err == nil {
		w.timeout = 2 * time.Second
		w.writeLocked(p, true)
	}
	if w.err == nil {
		w.err = errEnded // nothing may follow the last packet
	}
}

var errEnded = errors.New("proxy: connection ended")
