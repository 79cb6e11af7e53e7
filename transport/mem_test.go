package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

func TestMemConnConformance(t *testing.T) {
	leakCheck(t)
	t.Run("pipe", func(t *testing.T) {
		nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
			a, b := memPipe(MemAddr("a"), MemAddr("b"))
			return a, b, func() { a.Close(); b.Close() }, nil
		})
	})
	t.Run("listener", func(t *testing.T) {
		nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
			l := NewMemListener()
			ch := acceptAsync(l)
			c, err := l.Dial(context.Background())
			if err != nil {
				return nil, nil, nil, err
			}
			r := <-ch
			if r.err != nil {
				return nil, nil, nil, r.err
			}
			return c, r.c, func() { c.Close(); r.c.Close(); l.Close() }, nil
		})
	})
}

func TestMemListenerEcho(t *testing.T) {
	leakCheck(t)
	l := NewMemListener()
	if l.Addr().Network() != "mem" {
		t.Errorf("Addr().Network() = %q, want mem", l.Addr().Network())
	}
	ch := acceptAsync(l)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	client, err := l.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	server := waitAccept(t, ch)
	if client.RemoteAddr() != server.LocalAddr() || client.LocalAddr() != server.RemoteAddr() {
		t.Errorf("addresses do not mirror: client %v->%v, server %v->%v",
			client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr())
	}
	exchange(t, client, server)
	checkClosedAccept(t, l)
	// Accepted connections outlive the listener.
	exchange(t, client, server)
	client.Close()
	server.Close()

	if _, err := l.Dial(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: got %v, want net.ErrClosed", err)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: got %v, want net.ErrClosed", err)
	}
}

func TestMemDialContext(t *testing.T) {
	leakCheck(t)
	l := NewMemListener()
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := l.Dial(ctx) // nobody accepts
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: got %v, want context.Canceled", err)
	}

	// A Dial waiting for Accept fails when the listener closes.
	go func() {
		_, err := l.Dial(context.Background())
		errc <- err
	}()
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial during Close: got %v, want net.ErrClosed", err)
	}
}

func TestMemManyConns(t *testing.T) {
	leakCheck(t)
	l := NewMemListener()
	const n = 64
	var srv sync.WaitGroup
	srv.Add(1)
	go func() { // an echo server
		defer srv.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := l.Dial(context.Background())
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testTimeout))
			msg := []byte(fmt.Sprintf("conn %d says hello", i))
			for range 20 {
				if _, err := c.Write(msg); err != nil {
					errc <- err
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					errc <- err
					return
				}
				if string(got) != string(msg) {
					errc <- fmt.Errorf("conn %d: got %q", i, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	l.Close()
	srv.Wait()
}

func TestMemConnSemantics(t *testing.T) {
	leakCheck(t)
	a, b := memPipe(MemAddr("a"), MemAddr("b"))

	// Writes up to the buffer size complete without a reader.
	big := make([]byte, memBufferSize)
	if n, err := a.Write(big); err != nil || n != len(big) {
		t.Fatalf("Write of a full buffer: %d, %v", n, err)
	}
	// One more byte blocks: a deadline ends it with a timeout.
	a.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := a.Write([]byte{1})
	if n != 0 {
		t.Errorf("blocked Write wrote %d bytes", n)
	}
	checkTimeout(t, err)
	a.SetWriteDeadline(time.Time{})

	// Close: the peer still reads what was buffered, then io.EOF.
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || len(got) != len(big) {
		t.Fatalf("ReadAll after peer Close: %d bytes, %v", len(got), err)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after drain: got %v, want io.EOF", err)
	}
	// Writing to a closed peer fails; calls on a closed end fail with ErrClosed.
	if _, err := b.Write([]byte("x")); err == nil {
		t.Error("Write to a closed peer succeeded")
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read on a closed conn: got %v, want net.ErrClosed", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write on a closed conn: got %v, want net.ErrClosed", err)
	}
	if err := a.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetDeadline on a closed conn: got %v, want net.ErrClosed", err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: got %v, want net.ErrClosed", err)
	}

	// Close unblocks a blocked Read on the same end and on the peer.
	c, d := memPipe(MemAddr("c"), MemAddr("d"))
	errc := make(chan error, 2)
	go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
	go func() { _, err := d.Read(make([]byte, 1)); errc <- err }()
	c.Close()
	for range 2 {
		select {
		case err := <-errc:
			if err == nil {
				t.Error("blocked Read returned no error after Close")
			}
		case <-time.After(testTimeout):
			t.Fatal("Close did not unblock a Read")
		}
	}
	d.Close()
	b.Close()

	// A deadline can be extended while a Read waits.
	e, f := memPipe(MemAddr("e"), MemAddr("f"))
	defer e.Close()
	defer f.Close()
	e.SetReadDeadline(time.Now().Add(time.Hour))
	go func() { _, err := e.Read(make([]byte, 1)); errc <- err }()
	e.SetReadDeadline(time.Now().Add(-time.Second)) // now in the past
	select {
	case err := <-errc:
		checkTimeout(t, err)
	case <-time.After(testTimeout):
		t.Fatal("moving the deadline into the past did not unblock Read")
	}
}
