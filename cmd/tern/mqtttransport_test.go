package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/internal/testpki"
	"github.com/ternmq/tern/transport"
)

// socks5Proxy is a minimal SOCKS5 server (no authentication, CONNECT
// only) on a loopback port, counting the connections it relays.
type socks5Proxy struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	count int
}

func startSOCKS5(t *testing.T) *socks5Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &socks5Proxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *socks5Proxy) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 262)
	// Greeting: version 5, methods; answer "no authentication".
	if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 5 {
		return
	}
	if _, err := io.ReadFull(c, buf[:buf[1]]); err != nil {
		return
	}
	c.Write([]byte{5, 0})
	// Request: 5, CONNECT, 0, address type, address, port.
	if _, err := io.ReadFull(c, buf[:4]); err != nil || buf[1] != 1 {
		return
	}
	var host string
	switch buf[3] {
	case 1:
		io.ReadFull(c, buf[:4])
		host = net.IP(buf[:4]).String()
	case 3:
		io.ReadFull(c, buf[:1])
		n := int(buf[0])
		io.ReadFull(c, buf[:n])
		host = string(buf[:n])
	default:
		return
	}
	io.ReadFull(c, buf[:2])
	addr := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(buf[:2]))))
	up, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer up.Close()
	c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	c.SetDeadline(time.Time{})
	p.mu.Lock()
	p.count++
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

// TestPubSubTransports publishes and subscribes over every transport:
// TCP, TLS with a client certificate (--cafile, --cert, --key, and -L
// mqtts://), WebSocket (-L ws://), secure WebSocket, a unix socket
// (--unix, -L unix://), SOCKS5 (--proxy), and from a local address (-A).
func TestPubSubTransports(t *testing.T) {
	tern := ternBinary(t)
	dir := t.TempDir()
	pki, err := testpki.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pki.Client("cli"); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "client-cli.pem"), filepath.Join(dir, "client-cli.key")
	requireCert := &transport.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile, ClientCAFile: pki.CAFile, ClientAuth: transport.ClientAuthRequire}
	sock := filepath.Join(dir, "mqtt.sock")
	srv := &broker.Server{Logger: slog.New(slog.DiscardHandler), Listeners: []broker.Listener{
		{Type: "tcp", Addr: "127.0.0.1:0"},
		{Type: "tls", Addr: "127.0.0.1:0", TLS: requireCert},
		{Type: "ws", Addr: "127.0.0.1:0"},
		{Type: "wss", Addr: "127.0.0.1:0", TLS: requireCert},
		{Type: "unix", Addr: sock},
	}}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	<-srv.Ready()
	addrs := srv.Addrs()
	if addrs == nil {
		t.Fatal(<-errc)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-errc; !errors.Is(err, broker.ErrServerClosed) {
			t.Error(err)
		}
	}()
	tcpPort, tlsPort, wsPort, wssPort := port(addrs[0].String()), port(addrs[1].String()), port(addrs[2].String()), port(addrs[3].String())
	proxy := startSOCKS5(t)
	tlsArgs := []string{"--cafile", pki.CAFile, "--cert", cert, "--key", key}
	for _, c := range []struct {
		name string
		args []string // connection options; -t comes after
		url  bool     // -L carries the topic
	}{
		{"tcp", []string{"-h", "127.0.0.1", "-p", tcpPort}, false},
		{"tls", append([]string{"-h", "localhost", "-p", tlsPort}, tlsArgs...), false},
		{"mqtts url", append([]string{"-L", "mqtts://localhost:" + tlsPort + "/tr/mqtts-url"}, tlsArgs...), true},
		{"ws", []string{"-L", "ws://127.0.0.1:" + wsPort + "/tr/ws"}, true},
		{"wss", append([]string{"-L", "wss://localhost:" + wssPort + "/tr/wss"}, tlsArgs...), true},
		{"unix", []string{"--unix", sock}, false},
		{"unix url", []string{"-L", "unix://" + sock}, false},
		{"socks5", []string{"-h", "127.0.0.1", "-p", tcpPort, "--proxy", "socks5h://" + proxy.ln.Addr().String()}, false},
		{"bind", []string{"-h", "127.0.0.1", "-p", tcpPort, "-A", "127.0.0.1"}, false},
		{"bind tls", append([]string{"-h", "localhost", "-p", tlsPort, "-A", "127.0.0.1"}, tlsArgs...), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := "tr/" + strings.ReplaceAll(c.name, " ", "-")
			topicArgs := []string{"-t", tp}
			if c.url {
				topicArgs = nil
			}
			pub := append(append(append([]string{"pub"}, c.args...), topicArgs...), "-r", "-q", "1", "-m", "over "+c.name)
			if code, out, e := runProc(t, tern, pub...); code != 0 {
				t.Fatalf("%q: exit %d %s %s", pub, code, out, e)
			}
			sub := append(append(append([]string{"sub"}, c.args...), topicArgs...), "-C", "1", "-W", "20", "-v")
			code, out, e := runProc(t, tern, sub...)
			if code != 0 || out != tp+" over "+c.name+"\n" {
				t.Errorf("%q: exit %d, %q %s", sub, code, out, e)
			}
			runProc(t, tern, append(append(append([]string{"pub"}, c.args...), topicArgs...), "-r", "-n")...)
		})
	}
	proxy.mu.Lock()
	if proxy.count < 2 {
		t.Errorf("%d connections through the SOCKS5 proxy, want 2 at least", proxy.count)
	}
	proxy.mu.Unlock()
	// Without the client certificate the TLS listener refuses; without
	// --cafile the certificate is unknown: exit status 1.
	if code, _, e := runProc(t, tern, "pub", "-h", "localhost", "-p", tlsPort, "--cafile", pki.CAFile, "-t", "a", "-m", "b"); code != 1 {
		t.Errorf("no client certificate: exit %d %s", code, e)
	}
	if code, _, e := runProc(t, tern, "pub", "-h", "localhost", "-p", tlsPort, "--tls-use-os-certs", "-t", "a", "-m", "b"); code != 1 || !strings.Contains(e, "certificate") {
		t.Errorf("unknown CA: exit %d %s", code, e)
	}
}
