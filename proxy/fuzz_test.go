package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/proxy"
)

// fakeUpstream accepts connections, answers each CONNECT with a CONNACK,
// and decodes everything else; a decoding error means the proxy passed
// on something malformed.
type fakeUpstream struct {
	l    net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func startFakeUpstream(tb testing.TB) *fakeUpstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &fakeUpstream{l: l}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				r := packet.NewReader(nc)
				w := packet.NewWriter(nc)
				for {
					p, err := r.ReadPacket()
					if err != nil {
						if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
							u.mu.Lock()
							u.errs = append(u.errs, err)
							u.mu.Unlock()
						}
						return
					}
					switch p := p.(type) {
					case *packet.Connect:
						w.WritePacket(&packet.Connack{})
					case *packet.Publish:
						if p.QoS == 1 {
							w.WritePacket(&packet.Puback{PacketID: p.PacketID})
						}
					case *packet.Pingreq:
						w.WritePacket(&packet.Pingresp{})
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { l.Close(); u.wg.Wait() })
	return u
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

func (u *fakeUpstream) takeErrs() []error {
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.errs
	u.errs = nil
	return e
}

// FuzzClientStream sends a valid CONNECT and then arbitrary bytes through
// the proxy: the proxy must not panic, must close or carry on, and
// whatever reaches the upstream must decode.
func FuzzClientStream(f *testing.F) {
	for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
		pub, _ := packet.Encode(&packet.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("x")}, v)
		sub, _ := packet.Encode(&packet.Subscribe{PacketID: 2, Subscriptions: []packet.Subscription{{Filter: "a/#", QoS: 2}, {Filter: "deny/#"}}}, v)
		f.Add(byte(v), append(pub, sub...))
		f.Add(byte(v), []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	}
	f.Add(byte(5), []byte{0x32, 0x09, 0x00, 0x00, 0x00, 0x05, 0x03, 0x23, 0x00, 0x01, 'x'})
	up := startFakeUpstream(f)
	ps := &proxy.Server{Upstreams: []string{"tcp://" + up.l.Addr().String()}, MaxPacketSize: 4096,
		ConnectTimeout: time.Second, Logger: discardLogger(),
		Filters: []proxy.Filter{&proxy.TopicFilter{Up: proxy.Rules{Deny: []string{"deny/#"}}, Down: proxy.Rules{Deny: []string{"deny/#"}}}}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go ps.Serve(l)
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ps.Shutdown(ctx)
	})
	f.Fuzz(func(t *testing.T, level byte, data []byte) {
		v := packet.Version(level%3 + 3)
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		cp, _ := packet.Encode(&packet.Connect{Version: v, ClientID: "fuzz", CleanStart: true}, v)
		nc.Write(cp)
		r := packet.NewReader(nc)
		r.Version = v
		if _, err := r.ReadPacket(); err != nil {
			t.Fatalf("no CONNACK: %v", err)
		}
		nc.Write(data)
		// Whatever comes back must decode: the proxy sends nothing
		// malformed to the client either.
		nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			if _, err := r.ReadPacket(); err != nil {
				if pe, ok := packet.IsProtocolError(err); ok {
					t.Fatalf("the proxy sent the client a bad packet: %v", pe)
				}
				break
			}
		}
		nc.Close()
		deadline := time.Now().Add(5 * time.Second)
		for ps.Conns() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if errs := up.takeErrs(); len(errs) > 0 {
			t.Fatalf("the upstream got malformed bytes: %v (input % x)", errs, bytes.TrimSpace(data))
		}
	})
}
