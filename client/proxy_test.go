package client_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy is a loopback TCP proxy in front of a broker for fault tests: it
// can cut its cutConn-th connection (from 1) after cutAfter bytes in one
// direction, drop every connection, refuse new ones, or black-hole them
// (keep them open, forward nothing). Minimal on purpose; package mqtttest
// has the full harness.
type proxy struct {
	t        testing.TB
	target   string
	l        net.Listener
	cutConn  int   // which connection to cut; 0: none
	cutAfter int64 // bytes passed before the cut
	upstream bool  // the cut counts client→server bytes (else server→client)

	mu      sync.Mutex
	n       int
	conns   []net.Conn
	refuse  bool
	hole    bool
	wg      sync.WaitGroup
	counted atomic.Int64 // bytes seen in the counted direction, on the counted connection
}

func newProxy(t testing.TB, brokerURL string) *proxy { return newCutProxy(t, brokerURL, 0, 0, false) }

// newCutProxy cuts connection cutConn after cutAfter bytes client→server
// (upstream) or server→client; cutAfter < 0 only counts them.
func newCutProxy(t testing.TB, brokerURL string, cutConn int, cutAfter int64, upstream bool) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: brokerURL[strings.Index(brokerURL, "://")+3:], l: l, cutConn: cutConn, cutAfter: cutAfter, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "mqtt://" + p.l.Addr().String() }

func (p *proxy) close() {
	p.l.Close()
	p.dropAll()
	p.wg.Wait()
}

// dropAll closes every open connection.
func (p *proxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) setRefuse(b bool) { p.mu.Lock(); p.refuse = b; p.mu.Unlock() }
func (p *proxy) setHole(b bool)   { p.mu.Lock(); p.hole = b; p.mu.Unlock() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.n++
		k, refuse := p.n, p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		limit := int64(-1)
		if k == p.cutConn {
			limit = p.cutAfter
			if limit < 0 {
				limit = 1 << 62
			}
		}
		p.wg.Add(2)
		go p.pipe(s, c, limitIf(p.upstream, limit), k == p.cutConn && p.upstream)
		go p.pipe(c, s, limitIf(!p.upstream, limit), k == p.cutConn && !p.upstream)
	}
}

func limitIf(b bool, n int64) int64 {
	if b {
		return n
	}
	return -1
}

// pipe copies src to dst; with limit >= 0 it closes both after limit bytes.
func (p *proxy) pipe(dst, src net.Conn, limit int64, count bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 4096)
	var passed int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hole := p.hole
			p.mu.Unlock()
			if hole {
				continue
			}
			chunk := buf[:n]
			cut := false
			if limit >= 0 && passed+int64(n) >= limit {
				chunk, cut = chunk[:limit-passed], true
			}
			passed += int64(len(chunk))
			if count {
				p.counted.Store(passed)
			}
			if _, werr := dst.Write(chunk); werr != nil || cut {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}
