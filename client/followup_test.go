package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ternmq/tern/client"
	"github.com/ternmq/tern/message"
)

// TestParallelFirstRequestsSubscribeOnce: many first Requests made at
// once share one subscription to the response topics; the broker ends
// up with the responder's subscription and one more, not one per call.
func TestParallelFirstRequestsSubscribeOnce(t *testing.T) {
	b, url := startTern(t, nil)
	srv := connect(t, client.Config{Servers: []string{url}})
	if _, err := srv.Subscribe(ctx(t), "svc/echo", 1, func(m *client.Message) {
		if _, err := srv.Respond(context.Background(), m, &message.Message{Payload: m.Payload, QoS: 1}); err != nil && !errors.Is(err, client.ErrClosed) {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, client.Config{Servers: []string{url}})
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := fmt.Sprint(i)
			resp, err := c.Request(ctx(t), &message.Message{Topic: "svc/echo", Payload: []byte(w), QoS: 1})
			if err == nil && string(resp.Payload) != w {
				err = fmt.Errorf("request %s got %q", w, resp.Payload)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Stats().Subscriptions; got != 2 {
		t.Fatalf("broker holds %d subscriptions, want 2 (the responder's and one response subscription)", got)
	}
}
