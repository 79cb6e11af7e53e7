package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/packet"
	"github.com/ternmq/tern/transport"
)

// TestListenersAllTypes runs one broker with a TCP, TLS (client
// certificate required, its common name used as the user name),
// WebSocket, secure WebSocket and unix listener at once, and moves a
// message from a client on each listener to a subscriber on the next.
func TestListenersAllTypes(t *testing.T) {
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := pki.Client("alice")
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequire}
	sock := filepath.Join(dir, "tern.sock")

	var mu sync.Mutex
	users := map[string]string{} // client id -> user name seen by the hooks
	srv := &Server{
		Logger: testLogger(t),
		Listeners: []Listener{
			{Type: "tcp", Addr: "127.0.0.1:0"},
			{Type: "tls", Addr: "127.0.0.1:0", TLS: tlsCfg, UseCertCommonName: true},
			{Type: "ws", Addr: "127.0.0.1:0"},
			{Type: "wss", Addr: "127.0.0.1:0", Path: "/ws", TLS: &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}},
			{Type: "unix", Addr: sock},
		},
		Observers: []Observer{ObserverFunc(func(e Event) {
			if e.Kind == EventConnect {
				mu.Lock()
				users[e.Client.ClientID] = e.Client.Username
				mu.Unlock()
			}
		})},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	var addrs []net.Addr
	for i := 0; i < 500 && len(addrs) < 5; i++ {
		time.Sleep(10 * time.Millisecond)
		addrs = srv.Addrs()
	}
	if len(addrs) != 5 {
		t.Fatalf("listeners not open: %v", addrs)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ListenAndServe: %v", err)
		}
	}()
	urls := []struct {
		name string
		url  string
		tls  *tls.Config
	}{
		{"tcp", "tcp://" + addrs[0].String(), nil},
		{"tls", "tls://" + addrs[1].String(), pki.ClientConfig(alice)},
		{"ws", "ws://" + addrs[2].String() + "/mqtt", nil},
		{"wss", "wss://" + addrs[3].String() + "/ws", pki.ClientConfig()},
		{"unix", "unix://" + sock, nil},
	}
	clients := make([]*rawClient, len(urls))
	for i, u := range urls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nc, err := transport.Dial(ctx, u.url, transport.DialOptions{TLS: u.tls})
		cancel()
		if err != nil {
			t.Fatalf("%s: dial %s: %v", u.name, u.url, err)
		}
		t.Cleanup(func() { nc.Close() })
		c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: packet.V5}
		c.r.Version, c.w.Version = packet.V5, packet.V5
		c.connect(&packet.Connect{ClientID: u.name, CleanStart: true})
		c.subscribe(1, "via/"+u.name, 1)
		clients[i] = c
	}
	for i, c := range clients {
		next := urls[(i+1)%len(urls)].name
		c.send(&packet.Publish{Topic: "via/" + next, QoS: 1, PacketID: 2, Payload: []byte("from " + urls[i].name)})
	}
	for i, c := range clients {
		prev := urls[(i+len(urls)-1)%len(urls)].name
		for {
			p := c.recv()
			if pub, ok := p.(*packet.Publish); ok {
				if string(pub.Payload) != "from "+prev {
					t.Errorf("%s got %q, want from %s", urls[i].name, pub.Payload, prev)
				}
				break
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if users["tls"] != "alice" {
		t.Errorf("TLS listener with UseCertCommonName: user name %q, want alice", users["tls"])
	}
}

// TestTLSListenerRefusesClientWithoutCertificate: with UseCertCommonName
// and client certificates requested but not required, a client with no
// certificate is refused (CONNACK 0x87) rather than let in nameless.
func TestTLSListenerRefusesClientWithoutCertificate(t *testing.T) {
	pki, err := testpki.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := (&transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequest}).Build()
	if err != nil {
		t.Fatal(err)
	}
	l, err := transport.ListenTLS("127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Logger: testLogger(t)}
	if err := srv.init(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.serve(l, Listener{Name: "tls", Type: "tls", UseCertCommonName: true}) }()
	defer func() {
		srv.Close()
		<-errc
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := transport.Dial(ctx, "tls://"+l.Addr().String(), transport.DialOptions{TLS: pki.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &rawClient{t: t, nc: nc, r: packet.NewReader(nc), w: packet.NewWriter(nc), v: packet.V5}
	c.r.Version, c.w.Version = packet.V5, packet.V5
	c.send(&packet.Connect{Version: packet.V5, ClientID: "anon", CleanStart: true})
	ack, ok := c.recv().(*packet.Connack)
	if !ok || ack.ReasonCode != packet.NotAuthorized {
		t.Fatalf("want CONNACK 0x87, got %v", ack)
	}
}
