package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ternmq/tern/broker"
	"github.com/ternmq/tern/httpapi"
)

// A broker with an MQTT listener and an HTTP listener serving the API;
// a message published over HTTP reaches an in-process subscriber.
func Example() {
	srv := &broker.Server{
		SysInterval: -1,
		Listeners: []broker.Listener{
			{Type: "tcp", Addr: "127.0.0.1:0"},
			{Type: "http", Addr: "127.0.0.1:0"},
		},
	}
	h, err := httpapi.New(srv, httpapi.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv.HTTPHandler = h
	go srv.ListenAndServe()
	<-srv.Ready()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	got := make(chan string, 1)
	unsub, _ := srv.Subscribe("greetings/#", 1, func(m *broker.Message) { got <- string(m.Payload) })
	defer unsub()

	api := "http://" + srv.Addrs()[1].String()
	resp, err := http.Post(api+"/api/v1/publish", "application/json",
		strings.NewReader(`{"topic": "greetings/en", "payload": "hello", "qos": 1}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Status, " ", string(body))
	fmt.Println(<-got)
	// Output:
	// 200 OK {"matched":1}
	// hello
}
