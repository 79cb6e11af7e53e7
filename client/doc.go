// Package client is Tern's MQTT client: MQTT 3.1, 3.1.1 and 5.0 behind
// one API, every call bounded by a context, and a session that loses
// nothing across reconnects and, with a durable store, restarts.
//
//	c, err := client.New(client.Config{Servers: []string{"mqtt://127.0.0.1:1883"}})
//	ack, err := c.Connect(ctx)
//	sub, err := c.Subscribe(ctx, "sensors/#", 1, func(m *client.Message) { ... })
//	res, err := c.Publish(ctx, &message.Message{Topic: "sensors/t", Payload: []byte("21.5"), QoS: 1})
//	err = c.Disconnect(ctx)
//
// # Connections
//
// Config.Servers lists the servers (mqtt://, tcp://, mqtts://, tls://,
// ws://, wss://, unix://), tried in rotation. Connect returns the first
// CONNACK, or the refusal as a *ConnectError carrying the reason code.
// From then on the client keeps itself connected: a broken connection
// is replaced after an exponential backoff with jitter (Config.BackoffMin,
// BackoffMax, BackoffJitter), each CONNECT built afresh
// (Config.BeforeConnect for new credentials), MQTT 5 redirections followed
// when Config.FollowRedirects allows, and Config.OnConnectionUp and
// OnConnectionDown told. Keep alive sends PINGREQ when the connection is
// idle and takes a connection on which nothing arrived for 1.5 times the
// keep alive as dead (a half-open connection: server gone, packets
// black-holed). Disconnect ends it all; no goroutine remains.
//
// A custom dialer (Config.Dial), an already open connection
// (Config.Conn), TLS (Config.TLS) and SOCKS5 or HTTP CONNECT proxies
// (Config.Proxy, or the HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY
// environment) are supported. Credentials are sent only after the
// server's certificate is verified; with verification off
// (InsecureSkipVerify) the password is left out unless
// Config.AllowInsecurePassword is set.
//
// # Publishing: acknowledged means kept
//
// Publish returns once the server acknowledged the message (PUBACK for
// QoS 1, PUBCOMP for QoS 2; QoS 0 once written) with its reason code and
// properties, or when its context ends. A QoS 1 or 2 message is written to
// Config.Store before Publish accepts it, and leaves it only when its
// exchange completes; after a reconnect everything unacknowledged is sent
// again, in the original order, PUBLISH with DUP or PUBREL, before anything
// new, and within the server's Receive Maximum. When the server says it
// has no session (session present 0), these messages are still sent: the
// server takes them as new ones, which delivers them at least once (QoS 2
// then cannot be guaranteed exactly once, as the server forgot which ids
// it had). With store/disk the same happens after the process restarts
// or is killed: New reads the store and the first connection resends.
// A store that syncs to disk (store/disk with Sync) is called without the
// client's lock, and the writer's and reader's calls concurrently, so
// concurrent publishers, acknowledgements and sends share fsyncs through
// the store's group commit instead of queuing behind one another; the
// send order, and the order a restart resends in, stay those of the
// calls to Publish.
//
// While offline, QoS 1 and 2 messages are queued, up to Config.MaxQueued
// (Publish waits for room until its context ends; PublishAsync fails
// with ErrQueueFull). A QoS 0 message published offline fails with
// ErrDropped, unless Config.QueueQoS0 queues it; it is never reported
// sent when it was not. An MQTT 5 message whose Message Expiry Interval
// passes while it is queued is not sent either (ErrExpired); one sent
// late carries the interval that remains, as a server forwards it. PublishAsync returns a Token whose Wait takes a
// context and whose Done is a channel.
//
// # Receiving
//
// Each Subscription has its handler, called from a goroutine of its own
// (started when messages are waiting, ended when none are), in the order
// the messages arrived: a slow handler delays only its own subscription,
// never keep alive, acknowledgements or other subscriptions, and a handler
// may publish and wait for the acknowledgement without deadlock.
// A subscription without a handler is read with Messages, an iterator:
//
//	for m := range sub.Messages(ctx) { ... }
//
// Messages are routed by the MQTT 5 Subscription Identifier the client
// gives each subscription when the server supports them (its own, or
// SubscribeOptions.ID; none with Config.NoSubscriptionIDs), else by
// matching the topic against the filters; Config.OnMessage gets the rest.
// Each subscription buffers up to Config.MaxBuffered messages: beyond
// that QoS 0 messages are dropped (logged, and counted by
// Subscription.Dropped) and the acknowledgement of QoS 1
// and 2 messages waits until the handler takes them, so the server's
// in-flight window (the client's Receive Maximum) throttles the flow.
// With Config.ManualAck the application acknowledges with Message.Ack;
// either way acknowledgements go out in the order the messages arrived,
// as MQTT requires. QoS 2 messages are handed over exactly once, across
// reconnects and (with a durable store) restarts.
// Subscriptions are made again on a connection that finds the server
// without the session, unless Config.NoResubscribe.
//
// # MQTT 5
//
// Every property can be set (Config.Properties, Config.Will, message
// properties, SubscribeOptions.User) and read (Connack, Message,
// PublishResult, Subscription.Codes). Receive Maximum is honoured both
// ways, topic aliases are assigned automatically up to the server's Topic
// Alias Maximum and rebuilt on each connection, the server's Maximum Packet
// Size is respected (a larger publish fails with packet.ErrPacketTooLarge
// and is not sent), Request and Respond implement request/response with
// a response topic and correlation data, and SCRAM runs enhanced
// authentication with SCRAM-SHA-256 or -512 (Reauthenticate repeats it
// on the live connection).
//
// # Goroutines and the write path
//
// Each connection has one reader goroutine and one writer goroutine, and
// one write path: conn.flush encodes what is ready (control packets and
// acknowledgements, then resends, then queued messages within the
// server's Receive Maximum) and writes it in one Write, under the
// connection's write lock. The writer goroutine runs it whenever it is
// woken (PublishAsync, acknowledgements, SUBSCRIBE, keep alive) and so
// batches what many publishers queued. A one-at-a-time Publish runs it
// itself, from its own goroutine, when no one else holds the write lock
// (TryLock), and otherwise wakes the writer: its message then leaves
// without a hand-off to the writer goroutine and back, which for QoS 0
// was two goroutine switches per message (and, with idle processors, two
// thread wake-ups). The bytes still leave in queue order through one
// path under one lock, and the read loop never writes: it queues what it
// has to send (PUBACK, PUBREC, PUBREL, PUBCOMP) and wakes the writer.
// See bench/notes/client-vs-paho.md for the measurements behind this.
//
// # Many clients
//
// A Client has no package-level state; one process may run thousands,
// each with its own Config.Logger.
package client
