// Command mochi runs the Mochi MQTT broker (github.com/mochi-mqtt/server/v2)
// for bench/compare.sh: one plain TCP listener, every client allowed in,
// minimal logging, graceful shutdown on SIGINT / SIGTERM.
//
// It lives in its own Go module so that Tern never depends on Mochi.
//
// The flags default to Mochi's own defaults; bench/compare.sh raises them
// (see bench/README.md, "Fairness"):
//
//   - -max-inflight (Capabilities.MaximumInflight, default 8192): how many
//     QoS 1/2 messages Mochi stores per client while they wait for an
//     acknowledgement; beyond it they are dropped. It is a uint16 and packet
//     identifiers run out at 65535 anyway, so 65535 is the most Mochi
//     allows. Mochi does not bound the send window of MQTT 3.1.1 clients:
//     every stored message is written at once.
//   - -writes-pending (Capabilities.MaximumClientWritesPending, default
//     8192): the per-client channel of packets waiting to be written;
//     messages that find it full are dropped. Mochi allocates it in full
//     when a client connects (8 bytes a slot), so a large value is paid by
//     every connection, idle or not.
//   - -sys-interval: $SYS update period in seconds, 10 like Tern and
//     Mosquitto (Mochi's default is 1).
package main

import (
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1885", "TCP listener address")
	inflight := flag.Uint("max-inflight", 8192, "QoS 1/2 messages stored per client awaiting acknowledgement (1-65535)")
	pending := flag.Int("writes-pending", 8192, "packets queued per client for writing (allocated at connect)")
	sysInterval := flag.Int64("sys-interval", 10, "$SYS update interval in seconds")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn, error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("-log-level: %v", err)
	}
	if *inflight < 1 || *inflight > 65535 {
		log.Fatalf("-max-inflight %d: must be 1 to 65535", *inflight)
	}
	if *pending < 1 {
		log.Fatalf("-writes-pending %d: must be positive", *pending)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = uint16(*inflight)
	caps.MaximumClientWritesPending = int32(*pending)
	server := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		SysTopicResendInterval: *sysInterval,
		Logger:                 slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		log.Fatal(err)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		log.Fatal(err)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// Serve starts the listeners and returns.
	if err := server.Serve(); err != nil {
		log.Fatal(err)
	}
	<-sigs
	if err := server.Close(); err != nil {
		log.Fatal(err)
	}
}
