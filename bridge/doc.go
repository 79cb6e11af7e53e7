// Package bridge connects a Tern broker to another MQTT broker (Tern,
// Mosquitto, any MQTT 3.1, 3.1.1 or 5.0 server) and carries messages
// between them along topic mappings, as Mosquitto's bridges do.
//
//	b, err := bridge.Start(ctx, srv, bridge.Config{
//		Name:   "cloud",
//		Remote: "mqtts://cloud.example:8883",
//		Topics: []bridge.Mapping{{Topic: "sensors/#", Direction: bridge.Out, QoS: 1, RemotePrefix: "site1/"}},
//	})
//	defer b.Close(ctx)
//
// # How it works
//
// A bridge is two clients of package client. The local one connects to
// the broker.Server itself, over an in-memory connection (no socket), with
// a persistent MQTT 5 session; the remote one connects to Config.Remote on
// any transport the client dials (mqtt, mqtts, ws, wss, unix), with a
// persistent session unless Config.CleanSession. Both sessions outlive a
// disconnection by Config.SessionExpiry (7 days by default), so that a
// bridge removed from the configuration does not leave a session filling
// forever. With Config.Dir the bridge also remembers the filters it
// subscribed to on each side (filters.json), and unsubscribes, at the next
// Start, those of mappings removed meanwhile. A mapping Out subscribes
// the local side to LocalPrefix+Topic and publishes what arrives on the
// remote as RemotePrefix+rest; In does the reverse; Both does both. Each
// message goes at the lower of its QoS and the mapping's, with its retain
// flag (retain-as-published on MQTT 5) and its MQTT 5 properties.
//
// # Nothing lost across reconnects
//
// Both sides acknowledge by hand (client.Config.ManualAck): a QoS 1 or 2
// message taken from one broker is acknowledged to it only once the other
// broker acknowledged it (PUBACK, or PUBCOMP for QoS 2). While the remote
// is down, messages for it therefore stay unacknowledged in the local
// broker: the local broker's in-flight window fills, and the rest waits in
// the bridge's persistent session on the local broker, bounded by the
// broker's MaxQueuedMessages (tern broker's limits.max_queued_messages),
// beyond which the broker's QueuePolicy drops (counted in the broker's
// Stats.DroppedQueueFull and its $SYS drop counters). When the remote comes
// back, the remote client resends what it had sent and not seen
// acknowledged (DUP, or PUBREL for QoS 2, so QoS 2 stays exactly once with
// a persistent remote session), then the rest follows. Messages in the
// other direction wait in the bridge's session on the remote in the same
// way. Until the bridge first reaches the remote it takes nothing from the
// local broker (whose queue holds every QoS then), so that each message is
// sent within what the remote's CONNACK allows (Maximum QoS, Retain
// Available). QoS 0 messages taken while the remote is down later are
// dropped and counted (Status.Dropped). With Config.Dir the bridge's two client
// sessions are kept in store/disk logs, so a restart of the broker with
// its durable store resumes them too. The packet identifier of a QoS 2
// message received is stored only once the message is in the other side's
// store (see handoverStore): after a restart the source broker's resend of
// a message not handed over yet is carried, and that of one handed over is
// acknowledged without carrying it again. Only a crash between the two
// store writes can carry a QoS 2 message twice.
//
// # Loops
//
// A bridge adds the MQTT 5 User Property MarkerKey ("tern-bridge", its
// value the bridge's name) to every message it publishes on an MQTT 5
// side (always on the local broker), and never carries a message that
// has it: a message crosses at most one bridge (split horizon). So two
// bridges in opposite directions on the same topics, one on each broker,
// carry each message once and no further. (Carry each topic each way once:
// a mapping Both on each of two brokers would have both bridges carry every
// message, twice, though not in a loop.) With an MQTT 5 remote the
// remote subscriptions also use No Local, so the bridge's own messages do
// not come back.
//
// MQTT 3.1 and 3.1.1 have neither properties nor No Local. Toward such a
// remote the bridge remembers what it sent (a count per topic and payload,
// for a minute, at most 10000 entries) and does not carry in what comes
// back the same, which stops the echo of a mapping Both. Messages from an
// MQTT 3.1.1 remote are marked on the local broker, so no bridge there
// carries them again. What cannot be told apart is a message that crossed
// a 3.1.1 bridge elsewhere: two bridges in opposite directions that both
// speak 3.1.1 to each other must use distinct prefixes (Mosquitto's own
// advice): e.g. A carries "a/#" out to B's "from-a/", and B carries "b/#"
// out to A's "from-b/".
//
// # Status
//
// Status returns the state and the counters. The bridge publishes
// $SYS/broker/bridges/<Name>/state ("connected" or "disconnected",
// retained) whenever it changes, and $SYS/broker/bridges/<Name>/messages/in,
// out, dropped and suppressed every Config.SysInterval.
package bridge
