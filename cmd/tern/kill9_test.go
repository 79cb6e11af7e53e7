package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// TestKill9Loop runs the built tern broker on one data directory and
// kills it with SIGKILL at random moments, again and again, while
// publishers send numbered QoS 1 and QoS 2 messages (one at a time, as
// devices do) and retained messages, and persistent subscribers (one
// online throughout, one that connects only at the end; MQTT 3.1.1 and
// 5.0) receive, and so does a shared subscription group of two online
// persistent members (3.1.1 and 5.0). Every acknowledgement a publisher
// gets is recorded. At the end: every acknowledged QoS 1 message reached
// each subscriber, and the group, at least once, every acknowledged QoS
// 2 message exactly once, each publisher's messages in order (in the
// group: at each member), and every acknowledged retained message is
// there.
func TestKill9Loop(t *testing.T) {
	bin := ternBinary(t)
	kills := 20
	if s := os.Getenv("TERN_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	dir := filepath.Join(t.TempDir(), "data")
	port := freePort(t)
	addr := "127.0.0.1:" + port
	start := func() *brokerProc {
		_ = bin
		return startBroker(t, "", "-p", port, "--data-dir", dir, "--sys-interval", "0s", "--max-queued", "1000000")
	}

	b := start()
	if !strings.Contains(b.String(), "data="+dir) && !strings.Contains(b.String(), `data="`+dir) {
		t.Fatalf("the first log line does not say where data lives:\n%s", b)
	}
	// The offline subscriber makes its session, then leaves.
	off := &k9sub{t: t, addr: addr, id: "sub-offline", v: packet.V5, got: map[string][]int{}}
	off.connectOnce()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	on := &k9sub{t: t, addr: addr, id: "sub-online", v: packet.V311, got: map[string][]int{}}
	on.connectOnce()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); on.run(ctx) }()
	members := []*k9sub{
		{t: t, addr: addr, id: "sub-shared-1", v: packet.V5, filter: "$share/k9/k9/+", got: map[string][]int{}},
		{t: t, addr: addr, id: "sub-shared-2", v: packet.V311, filter: "$share/k9/k9/+", got: map[string][]int{}},
	}
	for _, m := range members {
		m.connectOnce()
		wg.Add(1)
		go func() { defer wg.Done(); m.run(ctx) }()
	}

	pubs := []*k9pub{
		{t: t, addr: addr, id: "pub-q1", qos: 1, v: packet.V311},
		{t: t, addr: addr, id: "pub-q2", qos: 2, v: packet.V5},
		{t: t, addr: addr, id: "pub-q2b", qos: 2, v: packet.V311},
		{t: t, addr: addr, id: "pub-ret", qos: 1, v: packet.V5, retain: true},
	}
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	for _, p := range pubs {
		pwg.Add(1)
		go func() { defer pwg.Done(); p.run(pctx) }()
	}

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	for i := range kills {
		time.Sleep(time.Duration(200+r.IntN(800)) * time.Millisecond)
		b.kill()
		t.Logf("kill %d: acknowledged so far %v", i+1, acked(pubs))
		b = start()
	}
	time.Sleep(300 * time.Millisecond)
	pstop()
	pwg.Wait()
	// Let the online subscriber drain, then one more kill before the
	// offline one collects.
	time.Sleep(500 * time.Millisecond)
	b.kill()
	b = start()
	off.v = packet.V5
	wg.Add(1)
	go func() { defer wg.Done(); off.run(ctx) }()

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !(on.complete(pubs) && off.complete(pubs) && groupOf(members).complete(pubs)) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	total := 0
	for _, p := range pubs {
		total += len(p.acked)
	}
	t.Logf("%d kills, %d messages acknowledged (%v)", kills+1, total, acked(pubs))
	for _, s := range []*k9sub{on, off, groupOf(members)} {
		s.check(pubs)
	}
	for _, m := range members {
		m.checkOrder(pubs)
	}
	// Retained: the last acknowledged value of every topic is there.
	checkRetained(t, addr, pubs[3])
	b.stop()
}

func acked(pubs []*k9pub) string {
	var parts []string
	for _, p := range pubs {
		p.mu.Lock()
		parts = append(parts, fmt.Sprintf("%s:%d", p.id, len(p.acked)))
		p.mu.Unlock()
	}
	return strings.Join(parts, " ")
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// kill sends SIGKILL and waits for the process to end.
func (b *brokerProc) kill() {
	b.t.Helper()
	b.stopped = true
	b.cmd.Process.Signal(syscall.SIGKILL)
	err := <-b.done
	b.done <- err
}

// k9conn is a raw MQTT connection of the loop's clients.
type k9conn struct {
	nc net.Conn
	r  *packet.Reader
	w  *packet.Writer
}

// dialK9 connects (retrying while the broker restarts) with a persistent
// session and returns the connection and the CONNACK.
func dialK9(ctx context.Context, addr, id string, v packet.Version) (*k9conn, *packet.Connack, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		c := &k9conn{nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc)}
		c.r.Version, c.w.Version = v, v
		cp := &packet.Connect{Version: v, ClientID: id, KeepAlive: 30}
		if v == packet.V5 {
			cp.Properties.SessionExpiry = 3600
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.w.WritePacket(cp); err != nil {
			nc.Close()
			continue
		}
		p, err := c.r.ReadPacket()
		if err != nil {
			nc.Close()
			continue
		}
		ack, ok := p.(*packet.Connack)
		if !ok || ack.ReasonCode != 0 {
			nc.Close()
			return nil, nil, fmt.Errorf("%s: CONNACK %v", id, p)
		}
		nc.SetDeadline(time.Time{})
		return c, ack, nil
	}
}

// dialK9Any is dialK9 on the first of addrs that answers, trying each in
// turn (one second each) until ctx ends.
func dialK9Any(ctx context.Context, addrs []string, id string, v packet.Version) (*k9conn, *packet.Connack, error) {
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		c, ack, err := dialK9(actx, addrs[i%len(addrs)], id, v)
		cancel()
		if err == nil {
			return c, ack, nil
		}
		if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, nil, err // refused by a CONNACK
		}
	}
}

// k9pub publishes numbered messages one at a time and records each
// acknowledgement (PUBACK; for QoS 2 the PUBREC, which hands the
// message over). After a reconnect it completes the message in hand:
// the PUBLISH again with DUP, or the PUBREL.
type k9pub struct {
	t      *testing.T
	addr   string
	id     string
	qos    byte
	v      packet.Version
	retain bool
	// alt, when set, are the addresses of other nodes of a cluster: the
	// publisher moves to the next when its node does not answer. A node
	// without its session (session present 0) does not know a QoS 2
	// message whose PUBREC had not come: as MQTT asks of a client whose
	// session is gone, the publisher drops it (never acknowledged) and
	// goes on with the next.
	alt []string

	mu    sync.Mutex
	acked []int
}

func (p *k9pub) topic(n int) string {
	if p.retain {
		return fmt.Sprintf("k9/ret/%s/%d", p.id, n%10)
	}
	return "k9/" + p.id
}

func (p *k9pub) run(ctx context.Context) {
	var c *k9conn
	n := 1
	state := 0 // 0: PUBLISH to send, 1: PUBLISH sent, 2: PUBREC got (QoS 2)
	pid := uint16(0)
	var giveUp time.Time
	for ctx.Err() == nil || state != 0 {
		if ctx.Err() != nil {
			if giveUp.IsZero() {
				giveUp = time.Now().Add(20 * time.Second)
			} else if time.Now().After(giveUp) {
				p.t.Errorf("%s: could not complete message %d after the end", p.id, n)
				return
			}
		}
		if c == nil && len(p.alt) > 0 {
			var ack *packet.Connack
			var err error
			if c, ack, err = dialK9Any(ctx, append([]string{p.addr}, p.alt...), p.id, p.v); err != nil {
				fctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				c, ack, err = dialK9Any(fctx, append([]string{p.addr}, p.alt...), p.id, p.v)
				cancel()
				if err != nil {
					return
				}
			}
			if !ack.SessionPresent && state == 1 && p.qos == 2 {
				n++
				state = 0
				if ctx.Err() != nil {
					break
				}
			}
		}
		if c == nil {
			var err error
			if c, _, err = dialK9(ctx, p.addr, p.id, p.v); err != nil {
				if state != 0 {
					// Stopping with a message in hand: finish it on a
					// fresh context, bounded.
					fctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					c, _, err = dialK9(fctx, p.addr, p.id, p.v)
					cancel()
				}
				if err != nil {
					return
				}
			}
		}
		var err error
		switch state {
		case 0:
			pid = uint16(n%60000 + 1)
			err = c.w.WritePacket(&packet.Publish{Topic: p.topic(n), QoS: p.qos, PacketID: pid, Retain: p.retain, Payload: []byte(strconv.Itoa(n))})
			state = 1
		case 1:
			err = c.w.WritePacket(&packet.Publish{Topic: p.topic(n), QoS: p.qos, PacketID: pid, Retain: p.retain, Dup: true, Payload: []byte(strconv.Itoa(n))})
		case 2:
			err = c.w.WritePacket(&packet.Pubrel{PacketID: pid})
		}
		for err == nil && state != 0 {
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			var pk packet.Packet
			if pk, err = c.r.ReadPacket(); err != nil {
				break
			}
			switch a := pk.(type) {
			case *packet.Puback:
				if a.PacketID == pid && !a.ReasonCode.IsError() { // 0x10 No matching subscribers is a success
					p.record(n)
					n++
					state = 0
				} else if a.ReasonCode.IsError() {
					state = 0 // refused (store full): sent again as a new message
				}
			case *packet.Pubrec:
				if a.PacketID == pid && !a.ReasonCode.IsError() && state == 1 {
					p.record(n)
					state = 2
					err = c.w.WritePacket(&packet.Pubrel{PacketID: pid})
				}
			case *packet.Pubcomp:
				if a.PacketID == pid && state == 2 {
					n++
					state = 0
				}
			}
		}
		if err != nil {
			c.nc.Close()
			c = nil
			if state == 0 && ctx.Err() != nil {
				return
			}
		}
	}
	if c != nil {
		c.w.WritePacket(&packet.Disconnect{})
		c.nc.Close()
	}
}

func (p *k9pub) record(n int) {
	p.mu.Lock()
	p.acked = append(p.acked, n)
	p.mu.Unlock()
}

// k9sub receives with a persistent session, acknowledging at once, and
// keeps its own exactly-once state (the QoS 2 ids awaiting PUBREL)
// across its connections, as a client library does.
type k9sub struct {
	t    *testing.T
	addr string
	id   string
	v    packet.Version
	// filter is what it subscribes to, "k9/+" if empty.
	filter string
	// group: the messages of a shared subscription group's members, put
	// together to count losses and duplicates; order is checked at each
	// member (checkOrder), not here.
	group bool

	mu      sync.Mutex
	got     map[string][]int // by publisher: the numbers received, in order, duplicates included
	pending map[uint16]bool  // QoS 2 ids received, not yet released
	dupQoS2 int
}

func (s *k9sub) connectOnce() {
	c, _, err := dialK9(context.Background(), s.addr, s.id, s.v)
	if err != nil {
		s.t.Fatal(err)
	}
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	filter := s.filter
	if filter == "" {
		filter = "k9/+"
	}
	c.w.WritePacket(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: 2}}})
	if p, err := c.r.ReadPacket(); err != nil || p.Type() != packet.SUBACK {
		s.t.Fatalf("%s: no SUBACK: %v %v", s.id, p, err)
	}
	c.w.WritePacket(&packet.Disconnect{})
	c.nc.Close()
}

func (s *k9sub) run(ctx context.Context) {
	if s.pending == nil {
		s.pending = map[uint16]bool{}
	}
	for ctx.Err() == nil {
		c, ack, err := dialK9(ctx, s.addr, s.id, s.v)
		if err != nil {
			return
		}
		if !ack.SessionPresent {
			s.t.Errorf("%s: the broker lost the session (session present 0)", s.id)
		}
		stop := context.AfterFunc(ctx, func() { c.nc.Close() })
		for {
			pk, err := c.r.ReadPacket()
			if err != nil {
				break
			}
			switch p := pk.(type) {
			case *packet.Publish:
				s.mu.Lock()
				from := strings.TrimPrefix(p.Topic, "k9/")
				n, _ := strconv.Atoi(string(p.Payload))
				switch {
				case p.QoS == 2 && s.pending[p.PacketID]:
					s.dupQoS2++ // a resend of one received: not the application's again
				default:
					s.got[from] = append(s.got[from], n)
					if p.QoS == 2 {
						s.pending[p.PacketID] = true
					}
				}
				s.mu.Unlock()
				if p.QoS == 1 {
					err = c.w.WritePacket(&packet.Puback{PacketID: p.PacketID})
				} else if p.QoS == 2 {
					err = c.w.WritePacket(&packet.Pubrec{PacketID: p.PacketID})
				}
			case *packet.Pubrel:
				s.mu.Lock()
				delete(s.pending, p.PacketID)
				s.mu.Unlock()
				err = c.w.WritePacket(&packet.Pubcomp{PacketID: p.PacketID})
			}
			if err != nil {
				break
			}
		}
		stop()
		c.nc.Close()
	}
}

// complete reports whether every acknowledged message has arrived.
func (s *k9sub) complete(pubs []*k9pub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pubs[:3] {
		p.mu.Lock()
		acked := append([]int(nil), p.acked...)
		p.mu.Unlock()
		seen := map[int]bool{}
		for _, n := range s.got[p.id] {
			seen[n] = true
		}
		for _, n := range acked {
			if !seen[n] {
				return false
			}
		}
	}
	return true
}

func (s *k9sub) check(pubs []*k9pub) {
	t := s.t
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pubs[:3] {
		got := s.got[p.id]
		seen := map[int]int{}
		last := 0
		for _, n := range got {
			seen[n]++
			if seen[n] == 1 && !s.group {
				if n < last {
					t.Errorf("%s from %s: %d after %d: out of order", s.id, p.id, n, last)
				}
				last = n
			}
		}
		lost, dups := 0, 0
		for _, n := range p.acked {
			switch {
			case seen[n] == 0:
				lost++
				if lost <= 5 {
					t.Errorf("%s: acknowledged message %d of %s (QoS %d) never arrived", s.id, n, p.id, p.qos)
				}
			case seen[n] > 1 && p.qos == 2:
				dups++
				if dups <= 5 {
					t.Errorf("%s: QoS 2 message %d of %s arrived %d times", s.id, n, p.id, seen[n])
				}
			}
		}
		qos1dups := 0
		for _, c := range seen {
			if c > 1 {
				qos1dups += c - 1
			}
		}
		t.Logf("%s from %s (QoS %d): %d acknowledged, %d received, lost %d, QoS 2 duplicates %d, redeliveries %d",
			s.id, p.id, p.qos, len(p.acked), len(got), lost, dups, qos1dups)
	}
	t.Logf("%s: %d QoS 2 resends recognised as duplicates", s.id, s.dupQoS2)
}

// groupOf puts together what the members of a shared subscription
// group received.
func groupOf(members []*k9sub) *k9sub {
	g := &k9sub{t: members[0].t, id: "shared group", group: true, got: map[string][]int{}}
	for _, m := range members {
		m.mu.Lock()
		for from, ns := range m.got {
			g.got[from] = append(g.got[from], ns...)
		}
		g.dupQoS2 += m.dupQoS2
		m.mu.Unlock()
	}
	return g
}

// checkOrder checks that each publisher's messages reached s in order.
func (s *k9sub) checkOrder(pubs []*k9pub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pubs[:3] {
		seen := map[int]bool{}
		last := 0
		for _, n := range s.got[p.id] {
			if !seen[n] {
				seen[n] = true
				if n < last {
					s.t.Errorf("%s from %s: %d after %d: out of order", s.id, p.id, n, last)
				}
				last = n
			}
		}
		s.t.Logf("%s from %s: %d received", s.id, p.id, len(s.got[p.id]))
	}
}

// checkRetained subscribes to the retained topics and checks that each
// holds the last value acknowledged for it (or a later one, published
// and stored but whose acknowledgement the kill cut off).
func checkRetained(t *testing.T, addr string, p *k9pub) {
	last := map[string]int{}
	for _, n := range p.acked {
		last[p.topic(n)] = n
	}
	c, _, err := dialK9(context.Background(), addr, "ret-check", packet.V311)
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	c.w.WritePacket(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "k9/ret/#", QoS: 0}}})
	got := map[string]int{}
	for len(got) < len(last) {
		pk, err := c.r.ReadPacket()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if pub, ok := pk.(*packet.Publish); ok {
			got[pub.Topic], _ = strconv.Atoi(string(pub.Payload))
		}
	}
	for topic, n := range last {
		if got[topic] < n {
			t.Errorf("retained %s: %d, want the acknowledged %d (or later)", topic, got[topic], n)
		}
	}
	t.Logf("retained: %d topics checked", len(last))
}
