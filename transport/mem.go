package transport

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// memBufferSize is the capacity of each direction of an in-memory
// connection: a Write blocks only when this much data is waiting unread.
const memBufferSize = 64 << 10

// memNetwork is the Network() of the addresses of in-memory listeners and
// connections.
const memNetwork = "mem"

// MemAddr is the address of an in-memory listener or connection end.
type MemAddr string

// Network returns "mem".
func (a MemAddr) Network() string { return memNetwork }

// String returns the address itself.
func (a MemAddr) String() string { return string(a) }

var memSeq atomic.Uint64

// MemListener is a net.Listener without sockets: [MemListener.Dial] makes a
// connected pair of in-memory connections and hands one end to Accept. It
// lets tests run a broker and its clients in one process with no ports.
//
// Unlike net.Pipe, each direction of a connection is buffered (64 KiB), so
// a Write returns as soon as its bytes fit in the buffer instead of waiting
// for the peer to read them. The connections support deadlines on Read and
// Write (a timeout error satisfies errors.Is(err, os.ErrDeadlineExceeded)
// and net.Error.Timeout), Close unblocks pending calls on both ends, and a
// Read after the peer closed returns the buffered bytes, then io.EOF.
//
// Dial hands the connection over synchronously: it blocks until Accept
// takes it, the context ends or the listener is closed.
type MemListener struct {
	addr   MemAddr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	seq    atomic.Uint64
}

// NewMemListener returns an open in-memory listener with a unique address.
func NewMemListener() *MemListener {
	return &MemListener{
		addr:   MemAddr("mem-" + strconv.FormatUint(memSeq.Add(1), 10)),
		conns:  make(chan net.Conn),
		closed: make(chan struct{}),
	}
}

// Accept waits for and returns the server end of the next dialed
// connection. After Close it returns an error wrapping net.ErrClosed.
func (l *MemListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, l.opError("accept", net.ErrClosed)
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, l.opError("accept", net.ErrClosed)
	}
}

// Close stops the listener: pending and future Accept and Dial calls fail
// with an error wrapping net.ErrClosed. Connections already accepted stay
// open. Closing twice returns an error wrapping net.ErrClosed.
func (l *MemListener) Close() error {
	first := false
	l.once.Do(func() {
		first = true
		close(l.closed)
	})
	if !first {
		return l.opError("close", net.ErrClosed)
	}
	return nil
}

// Addr returns the listener's address, of network "mem".
func (l *MemListener) Addr() net.Addr { return l.addr }

// Dial connects to the listener and returns the client end of a new
// in-memory connection once Accept has taken the server end. It fails
// with an error wrapping net.ErrClosed if the listener is closed, or with
// the context's error if ctx ends first.
func (l *MemListener) Dial(ctx context.Context) (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, l.opError("dial", net.ErrClosed)
	default:
	}
	client := MemAddr(string(l.addr) + "-client-" + strconv.FormatUint(l.seq.Add(1), 10))
	c, s := memPipe(client, l.addr)
	select {
	case l.conns <- s:
		return c, nil
	case <-l.closed:
		return nil, l.opError("dial", net.ErrClosed)
	case <-ctx.Done():
		return nil, &net.OpError{Op: "dial", Net: memNetwork, Addr: l.addr, Err: ctx.Err()}
	}
}

func (l *MemListener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: memNetwork, Addr: l.addr, Err: err}
}

// memPipe returns two connected in-memory connections, a at address aAddr
// and b at bAddr.
func memPipe(aAddr, bAddr net.Addr) (a, b *memConn) {
	ab, ba := newMemStream(), newMemStream()
	a = &memConn{local: aAddr, remote: bAddr, rx: ba, tx: ab}
	b = &memConn{local: bAddr, remote: aAddr, rx: ab, tx: ba}
	return a, b
}

// memStream is one direction of an in-memory connection: a bounded ring
// buffer written by one end and read by the other. Its mutex also guards
// the reading end's read deadline and the writing end's write deadline, so
// that every wait (for data, for space, for a deadline, for a close) is a
// wait on the one condition variable.
type memStream struct {
	mu   sync.Mutex
	cond sync.Cond
	buf  []byte
	head int // index of the first unread byte
	n    int // unread bytes

	writerClosed bool // the writing end closed: EOF once drained
	readerClosed bool // the reading end closed: writes fail

	readDL  memDeadline // the reading end's read deadline
	writeDL memDeadline // the writing end's write deadline
}

func newMemStream() *memStream {
	s := &memStream{buf: make([]byte, memBufferSize)}
	s.cond.L = &s.mu
	return s
}

// memDeadline is a deadline whose expiry is recorded by a timer, so a
// waiter never compares clocks itself (a wall-clock deadline and a
// monotonic timer could disagree and leave a waiter asleep).
type memDeadline struct {
	timer   *time.Timer
	gen     uint64
	expired bool
}

// set arms d for t; the caller holds s.mu.
func (s *memStream) setDeadline(d *memDeadline, t time.Time) {
	d.stop()
	d.expired = false
	if !t.IsZero() {
		if dur := time.Until(t); dur <= 0 {
			d.expired = true
		} else {
			gen := d.gen
			d.timer = time.AfterFunc(dur, func() {
				s.mu.Lock()
				if d.gen == gen {
					d.expired = true
					s.cond.Broadcast()
				}
				s.mu.Unlock()
			})
		}
	}
	s.cond.Broadcast()
}

// stop disarms d; the caller holds the stream's mutex.
func (d *memDeadline) stop() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.gen++
}

// memConn is one end of an in-memory connection.
type memConn struct {
	local, remote net.Addr
	rx, tx        *memStream // rx is read by this end, tx written by it
	writeMu       sync.Mutex // keeps concurrent Writes whole
	closeOnce     sync.Once
}

func (c *memConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: memNetwork, Source: c.local, Addr: c.remote, Err: err}
}

// Read reads buffered bytes, waiting for at least one.
func (c *memConn) Read(p []byte) (int, error) {
	s := c.rx
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.readerClosed:
			return 0, c.opError("read", net.ErrClosed)
		case s.readDL.expired:
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case s.n > 0:
			n := 0
			for n < len(p) && s.n > 0 {
				end := s.head + s.n
				if end > len(s.buf) {
					end = len(s.buf)
				}
				k := copy(p[n:], s.buf[s.head:end])
				n += k
				s.head = (s.head + k) % len(s.buf)
				s.n -= k
			}
			if s.n == 0 {
				s.head = 0
			}
			s.cond.Broadcast() // room for writers
			return n, nil
		case s.writerClosed:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		s.cond.Wait()
	}
}

// Write writes all of p, waiting for buffer space as needed. On a timeout
// or close it returns the count written so far.
func (c *memConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.tx
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for {
		switch {
		case s.writerClosed:
			return n, c.opError("write", net.ErrClosed)
		case s.writeDL.expired:
			return n, c.opError("write", os.ErrDeadlineExceeded)
		case s.readerClosed:
			return n, c.opError("write", io.ErrClosedPipe)
		case n == len(p):
			return n, nil
		case s.n < len(s.buf):
			for n < len(p) && s.n < len(s.buf) {
				tail := (s.head + s.n) % len(s.buf)
				end := len(s.buf)
				if tail < s.head {
					end = s.head
				}
				k := copy(s.buf[tail:end], p[n:])
				n += k
				s.n += k
			}
			s.cond.Broadcast() // data for the reader
			continue
		}
		s.cond.Wait()
	}
}

// Close closes this end: pending and later calls on it fail with
// net.ErrClosed, the peer reads what is buffered and then io.EOF, and the
// peer's writes fail.
func (c *memConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		for _, s := range []*memStream{c.rx, c.tx} {
			s.mu.Lock()
			if s == c.rx {
				s.readerClosed = true
				s.n, s.head = 0, 0 // nobody will read it
				s.readDL.stop()
			} else {
				s.writerClosed = true
				s.writeDL.stop()
			}
			s.cond.Broadcast()
			s.mu.Unlock()
		}
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	s := c.rx
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readerClosed {
		return c.opError("set", net.ErrClosed)
	}
	s.setDeadline(&s.readDL, t)
	return nil
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	s := c.tx
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writerClosed {
		return c.opError("set", net.ErrClosed)
	}
	s.setDeadline(&s.writeDL, t)
	return nil
}
