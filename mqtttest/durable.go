package mqtttest

import (
	"context"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/store/disk"
)

// DurableBroker is an in-process Tern broker with a store/disk store that
// a test can stop and start again on the same address and data directory,
// as a broker process restarted on its data: for tests of what survives a
// restart of the other end (bridges, clients with persistent sessions).
type DurableBroker struct {
	// Addr is the TCP address, "127.0.0.1:port", the same across
	// restarts; URL is "tcp://" + Addr; Dir is the data directory.
	Addr, URL, Dir string
	// Server is the running broker; nil while stopped. A new Server is
	// made at each Start.
	Server *broker.Server

	t      testing.TB
	logger *slog.Logger
	st     *disk.Broker
	done   chan error
}

// StartDurableBroker starts a DurableBroker on a free port and a fresh
// data directory, with $SYS off, and stops it when the test ends. logger
// receives the broker's log; nil discards it.
func StartDurableBroker(t testing.TB, logger *slog.Logger) *DurableBroker {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &DurableBroker{t: t, Addr: FreeAddr(t), Dir: filepath.Join(t.TempDir(), "data"), logger: logger}
	b.URL = "tcp://" + b.Addr
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start opens the store and starts the broker on Addr, returning once it
// listens. It fails the test if it cannot.
func (b *DurableBroker) Start() {
	b.t.Helper()
	st, err := disk.OpenBroker(b.Dir, disk.BrokerOptions{})
	if err != nil {
		b.t.Fatalf("mqtttest: DurableBroker: %v", err)
	}
	b.st = st
	b.Server = &broker.Server{Store: st, Listeners: []broker.Listener{{Addr: b.Addr}}, SysInterval: -1, Logger: b.logger}
	b.done = make(chan error, 1)
	go func(srv *broker.Server, done chan error) { done <- srv.ListenAndServe() }(b.Server, b.done)
	select {
	case <-b.Server.Ready():
	case err := <-b.done:
		b.t.Fatalf("mqtttest: DurableBroker on %s: %v", b.Addr, err)
	}
}

// Stop shuts the broker down (within DefaultTimeout) and closes its store;
// it does nothing if the broker is stopped.
func (b *DurableBroker) Stop() {
	if b.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	b.Server.Shutdown(ctx)
	<-b.done
	b.st.Close()
	b.Server = nil
}

// Collector records the messages a client subscription receives: pass
// its Handle as the handler.
type Collector struct {
	mu   sync.Mutex
	msgs []*client.Message
}

// Handle records m.
func (c *Collector) Handle(m *client.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

// Count returns how many messages arrived.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// Messages returns the messages, in arrival order.
func (c *Collector) Messages() []*client.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*client.Message(nil), c.msgs...)
}

// Payloads returns how many times each payload arrived.
func (c *Collector) Payloads() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[string]int{}
	for _, m := range c.msgs {
		n[string(m.Payload)]++
	}
	return n
}

// Topics returns the topics of the messages, sorted.
func (c *Collector) Topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ts []string
	for _, m := range c.msgs {
		ts = append(ts, m.Topic)
	}
	sort.Strings(ts)
	return ts
}
