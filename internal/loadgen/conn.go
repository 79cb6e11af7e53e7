package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// errClosed is returned by operations on a connection that has closed.
var errClosed = errors.New("connection closed")

// dial opens the network connection to the broker with transport.Dial,
// which knows every scheme: tcp://, mqtt://, ssl://, tls://, mqtts://,
// ws://, wss:// and unix://. rawURL has its scheme (see brokerURL).
func dial(ctx context.Context, rawURL string, opts transport.DialOptions) (net.Conn, error) {
	return transport.Dial(ctx, rawURL, opts)
}

// schemes are the URL schemes bench dials, and whether they use TLS.
var schemes = map[string]bool{"tcp": false, "mqtt": false, "ssl": true, "tls": true, "mqtts": true, "ws": false, "wss": true, "unix": false}

// brokerURL returns rawURL with a scheme: a bare host[:port] means
// tcp://host[:port]. It refuses a scheme bench cannot dial.
func brokerURL(rawURL string) (string, error) {
	if !strings.Contains(rawURL, "://") {
		if rawURL == "" {
			return "", errors.New("--url is empty: give the broker as tcp://host:port")
		}
		rawURL = "tcp://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("--url %q: %w", rawURL, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if _, ok := schemes[scheme]; !ok {
		return "", fmt.Errorf("--url %q: scheme %q is not one bench dials (tcp://, mqtt://, mqtts://, ssl://, tls://, ws://, wss://, unix://)", rawURL, u.Scheme)
	}
	if scheme == "unix" {
		if u.Host+u.Path == "" {
			return "", fmt.Errorf("--url %q: no socket path (unix:///path/to/socket)", rawURL)
		}
	} else if u.Host == "" {
		return "", fmt.Errorf("--url %q: no host", rawURL)
	}
	return rawURL, nil
}

// isTLS reports whether rawURL (valid for brokerURL) dials with TLS.
func isTLS(rawURL string) bool {
	u, err := brokerURL(rawURL)
	if err != nil {
		return false
	}
	return schemes[strings.ToLower(u[:strings.Index(u, "://")])]
}

// connOptions describes one client connection.
type connOptions struct {
	url            string
	dial           transport.DialOptions
	version        packet.Version
	clientID       string
	username       string
	password       string
	keepAlive      time.Duration
	connectTimeout time.Duration
	bufSize        int  // read and write buffer sizes
	queue          int  // capacity of the outbound queue
	inflight       int  // QoS 1/2 publish window; 0 for a connection that does not publish at QoS > 0
	persistent     bool // a persistent session (clean session 0, or expiry 300 s)
	writeEach      bool // one write per packet (a flush after each), not coalesced
	payloadSize    int
	pubIndex       uint32
	counts         *counters                        // counts connections opened and up, if not nil
	life           context.Context                  // the connection closes when it ends; nil: the dial's context
	ackLatency     *shardedHist                     // publishers: records PUBLISH to PUBACK / PUBCOMP, if not nil
	onPublish      func(*packet.Publish, time.Time) // called in the reader goroutine
}

type itemKind uint8

const (
	kPacket itemKind = iota // write pkt as is
	kPublish
	kPuback
	kPubrec
	kPubrel
	kPubcomp
	kDisconnect // write pkt, flush, close
)

// item is one entry of a connection's outbound queue. Publishes and acks
// are described rather than allocated; the writer encodes them from
// structs it reuses.
type item struct {
	kind   itemKind
	qos    byte
	retain bool
	empty  bool // publish an empty payload (deletes a retained message)
	id     uint16
	seq    uint64
	topic  string
	pkt    packet.Packet
}

// conn is one MQTT client connection with one reader and one writer
// goroutine. Everything it writes goes through the queue out.
type conn struct {
	opts      connOptions
	nc        net.Conn
	rd        *packet.Reader
	bw        *bufio.Writer
	w         *packet.Writer
	keepAlive time.Duration
	handshake time.Duration // CONNECT written to CONNACK read
	window    int           // publish window: min(inflight, broker's Receive Maximum)
	maxQoS    byte          // the broker's MQTT 5 Maximum QoS, else 2

	out chan item
	// ids is the publish window: a channel of free packet identifiers.
	// It is not the session engine's Outbound: measured with
	// BenchmarkPublishQoS1, Outbound under a mutex costs an allocation
	// per publish (its *Flight) and about 10 % more time per QoS 1
	// message, and a bench connection never resumes a session, so it
	// needs none of Outbound's resend state.
	ids     chan uint16    // free packet identifiers, nil without a window
	sentAt  []atomic.Int64 // by packet identifier: when its PUBLISH was written (Unix ns), with ackLatency
	subacks chan *packet.Suback
	done    chan struct{}
	wg      sync.WaitGroup

	closeOnce sync.Once
	closing   atomic.Bool
	stopCtx   func() bool
	errMu     sync.Mutex
	err       error

	published atomic.Int64 // PUBLISH packets written
	acked     atomic.Int64 // QoS 1/2 exchanges completed
	nacked    atomic.Int64 // of which refused by the broker (MQTT 5 reason code >= 0x80)

	// owned by the writer goroutine
	pub     packet.Publish
	puback  packet.Puback
	pubrec  packet.Pubrec
	pubrel  packet.Pubrel
	pubcomp packet.Pubcomp
	payload []byte
}

// dialConn connects and performs the CONNECT / CONNACK handshake; the
// connection's goroutines run until ctx ends or the connection closes.
func dialConn(ctx context.Context, o connOptions) (*conn, error) {
	hctx := ctx
	if o.connectTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, o.connectTimeout)
		defer cancel()
	}
	nc, err := dial(hctx, o.url, o.dial)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(hctx, func() { nc.SetDeadline(time.Now()) })
	c, err := handshake(nc, o)
	if !stop() || err != nil {
		nc.Close()
		if err == nil || hctx.Err() != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("connect: no CONNACK within %v", o.connectTimeout)
		}
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	if o.life != nil {
		ctx = o.life
	}
	c.start(ctx)
	return c, nil
}

func handshake(nc net.Conn, o connOptions) (*conn, error) {
	bufSize := max(o.bufSize, 512)
	c := &conn{
		opts:      o,
		nc:        nc,
		rd:        packet.NewReader(bufio.NewReaderSize(nc, bufSize)),
		bw:        bufio.NewWriterSize(nc, bufSize),
		keepAlive: o.keepAlive,
		out:       make(chan item, max(o.queue, 4)),
		subacks:   make(chan *packet.Suback, 1),
		done:      make(chan struct{}),
	}
	c.w = packet.NewWriter(c.bw)
	c.rd.Version = o.version
	connect := &packet.Connect{
		Version:    o.version,
		CleanStart: !o.persistent || o.version == packet.V5,
		KeepAlive:  uint16(min(o.keepAlive/time.Second, 65535)),
		ClientID:   o.clientID,
		Username:   o.username,
		Password:   []byte(o.password),
	}
	if o.persistent && o.version == packet.V5 {
		connect.Properties.SessionExpiry = 300
	}
	start := time.Now()
	if err := c.w.WritePacket(connect); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	p, err := c.rd.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("connect: reading CONNACK: %w", err)
	}
	c.handshake = time.Since(start)
	ca, ok := p.(*packet.Connack)
	if !ok {
		return nil, fmt.Errorf("connect: expected CONNACK, got %s", p.Type())
	}
	if ca.ReasonCode != 0 {
		return nil, fmt.Errorf("connect: refused by the broker: %s", ca.ReasonCode.Text(packet.CONNACK, o.version))
	}
	receiveMax := uint16(65535)
	c.maxQoS = 2
	if o.version == packet.V5 {
		pr := &ca.Properties
		if pr.Has(packet.PropMaximumQoS) {
			c.maxQoS = pr.MaximumQoS
		}
		if pr.Has(packet.PropReceiveMaximum) && pr.ReceiveMaximum > 0 {
			receiveMax = pr.ReceiveMaximum
		}
		if pr.MaximumPacketSize > 0 {
			c.w.MaxPacketSize = pr.MaximumPacketSize
		}
		if pr.Has(packet.PropServerKeepAlive) {
			c.keepAlive = time.Duration(pr.ServerKeepAlive) * time.Second
		}
	}
	if o.inflight > 0 {
		c.window = min(o.inflight, int(receiveMax))
		c.ids = make(chan uint16, c.window)
		for i := 1; i <= c.window; i++ {
			c.ids <- uint16(i)
		}
		if o.ackLatency != nil {
			c.sentAt = make([]atomic.Int64, c.window+1)
		}
	}
	if o.payloadSize > 0 {
		c.payload = make([]byte, max(o.payloadSize, HeaderSize))
	}
	return c, nil
}

func (c *conn) start(ctx context.Context) {
	if c.opts.counts != nil {
		c.opts.counts.live.Add(1)
		c.opts.counts.connects.Add(1)
	}
	c.stopCtx = context.AfterFunc(ctx, c.close)
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
}

// close closes the connection at once; it is safe to call more than once.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		close(c.done)
		c.nc.Close()
		if c.stopCtx != nil {
			c.stopCtx()
		}
		if c.opts.counts != nil && c.stopCtx != nil { // started
			c.opts.counts.live.Add(-1)
		}
	})
}

// fail records the first error of a connection that was not closing.
func (c *conn) fail(err error) {
	if c.closing.Load() {
		return
	}
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// Err returns the error that broke the connection, nil if it ended normally.
func (c *conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *conn) errOrClosed() error {
	if err := c.Err(); err != nil {
		return err
	}
	return errClosed
}

// send queues it for the writer; false if the connection closed.
func (c *conn) send(it item) bool {
	select {
	case c.out <- it:
		return true
	case <-c.done:
		return false
	}
}

// publish queues one publish; for QoS 1 and 2 it first waits for a free
// slot in the in-flight window.
func (c *conn) publish(ctx context.Context, it item) error {
	it.kind = kPublish
	if it.qos > 0 {
		if c.ids == nil {
			return errors.New("publish: connection has no in-flight window")
		}
		select {
		case it.id = <-c.ids:
		case <-c.done:
			return c.errOrClosed()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	select {
	case c.out <- it:
		return nil
	case <-c.done:
		err = c.errOrClosed()
	case <-ctx.Done():
		err = ctx.Err()
	}
	if it.qos > 0 {
		c.ids <- it.id // never sent: back to the window (it has room for it)
	}
	return err
}

// outstanding returns the number of QoS 1/2 publishes not yet acknowledged.
func (c *conn) outstanding() int {
	if c.ids == nil {
		return 0
	}
	return c.window - len(c.ids)
}

// release returns a packet identifier to the window.
func (c *conn) release(id uint16, code packet.ReasonCode) {
	if c.ids == nil {
		return
	}
	if code.IsError() {
		c.nacked.Add(1)
	}
	if int(id) < len(c.sentAt) {
		if sent := c.sentAt[id].Swap(0); sent != 0 {
			c.opts.ackLatency.record(int(c.opts.pubIndex), time.Duration(time.Now().UnixNano()-sent))
		}
	}
	select {
	case c.ids <- id:
		c.acked.Add(1)
	default: // an acknowledgement for an identifier we did not use
	}
}

// subscribe subscribes to filters and waits for the SUBACK.
func (c *conn) subscribe(ctx context.Context, qos byte, filters ...string) error {
	sub := &packet.Subscribe{PacketID: 1}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, packet.Subscription{Filter: f, QoS: qos})
	}
	if !c.send(item{kind: kPacket, pkt: sub}) {
		return c.errOrClosed()
	}
	select {
	case sa := <-c.subacks:
		for i, code := range sa.ReasonCodes {
			if code.IsError() {
				return fmt.Errorf("subscribe %q: refused: %s", filters[min(i, len(filters)-1)], code.Text(packet.SUBACK, c.opts.version))
			}
		}
		return nil
	case <-c.done:
		return c.errOrClosed()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// disconnect sends DISCONNECT, closes the connection and waits for its
// goroutines; it gives up waiting for the writer when ctx ends.
func (c *conn) disconnect(ctx context.Context) {
	// From now on the broker may close first: that is no error.
	c.closing.Store(true)
	if c.send(item{kind: kDisconnect, pkt: &packet.Disconnect{}}) {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	c.close()
	c.wg.Wait()
}

func (c *conn) readLoop() {
	defer c.wg.Done()
	defer c.close()
	for {
		p, err := c.rd.ReadPacket()
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		switch p := p.(type) {
		case *packet.Publish:
			if c.opts.onPublish != nil {
				c.opts.onPublish(p, time.Now())
			}
			switch p.QoS {
			case 1:
				c.send(item{kind: kPuback, id: p.PacketID})
			case 2:
				c.send(item{kind: kPubrec, id: p.PacketID})
			}
		case *packet.Puback:
			c.release(p.PacketID, p.ReasonCode)
		case *packet.Pubrec:
			if p.ReasonCode.IsError() {
				c.release(p.PacketID, p.ReasonCode) // the exchange ends here [v5 MQTT-4.3.3-4]
			} else {
				c.send(item{kind: kPubrel, id: p.PacketID})
			}
		case *packet.Pubcomp:
			c.release(p.PacketID, p.ReasonCode)
		case *packet.Pubrel:
			c.send(item{kind: kPubcomp, id: p.PacketID})
		case *packet.Suback:
			select {
			case c.subacks <- p:
			default:
			}
		case *packet.Disconnect:
			c.fail(fmt.Errorf("disconnected by the broker: %s", p.ReasonCode.Text(packet.DISCONNECT, c.opts.version)))
			return
		}
	}
}

func (c *conn) writeLoop() {
	defer c.wg.Done()
	var tick <-chan time.Time
	if c.keepAlive > 0 {
		t := time.NewTicker(c.keepAlive / 2)
		defer t.Stop()
		tick = t.C
	}
	wrote := false
	for {
		select {
		case it := <-c.out:
			if err := c.write(it); err != nil {
				c.fail(fmt.Errorf("write: %w", err))
				c.close()
				return
			}
			wrote = true
			if it.kind == kDisconnect {
				c.bw.Flush()
				c.close()
				return
			}
			if c.opts.writeEach || len(c.out) == 0 {
				if err := c.bw.Flush(); err != nil {
					c.fail(fmt.Errorf("write: %w", err))
					c.close()
					return
				}
			}
		case <-tick:
			// Nothing written for a whole half keep-alive: ping, so
			// that the broker never sees a silence of a keep-alive.
			if !wrote {
				err := c.w.WritePacket(&packet.Pingreq{})
				if err == nil {
					err = c.bw.Flush()
				}
				if err != nil {
					c.fail(fmt.Errorf("write: %w", err))
					c.close()
					return
				}
			}
			wrote = false
		case <-c.done:
			return
		}
	}
}

// write encodes one queued item into the buffered writer.
func (c *conn) write(it item) error {
	switch it.kind {
	case kPublish:
		p := &c.pub
		p.QoS, p.Retain, p.Topic, p.PacketID = it.qos, it.retain, it.topic, it.id
		var now int64
		if it.empty {
			p.Payload = nil
		} else {
			now = time.Now().UnixNano()
			PutHeader(c.payload, Header{Publisher: c.opts.pubIndex, Seq: it.seq, Sent: now})
			p.Payload = c.payload
		}
		if it.qos > 0 && int(it.id) < len(c.sentAt) {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			c.sentAt[it.id].Store(now)
		}
		c.published.Add(1)
		return c.w.WritePacket(p)
	case kPuback:
		c.puback.PacketID = it.id
		return c.w.WritePacket(&c.puback)
	case kPubrec:
		c.pubrec.PacketID = it.id
		return c.w.WritePacket(&c.pubrec)
	case kPubrel:
		c.pubrel.PacketID = it.id
		return c.w.WritePacket(&c.pubrel)
	case kPubcomp:
		c.pubcomp.PacketID = it.id
		return c.w.WritePacket(&c.pubcomp)
	default:
		return c.w.WritePacket(it.pkt)
	}
}
