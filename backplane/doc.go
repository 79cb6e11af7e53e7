// Package backplane is the contract between one Tern broker node and the
// shared layer that lets several nodes serve one MQTT topic space: a
// distributed engine that operators already run (Redis, NATS), never a
// cluster protocol of Tern's own.
//
// A broker joins the back plane through an implementation's Join function
// (backplane/memory for tests, backplane/redis, backplane/nats) and gets a
// Node. Node is the sum of small interfaces, so a broker, a hook or a test
// can depend on only the part it uses:
//
//   - Interest: Subscribe and Unsubscribe announce and withdraw the node's
//     interest in a topic filter. They are reference-counted per node: the
//     broker calls Subscribe once per local subscription and Unsubscribe once
//     per removal, and the engine hears only of the first and the last.
//     "$share/{group}/{filter}" filters join the node to a shared group.
//   - Forwarder: Forward hands a message published on this node to the
//     nodes that have matching interest, and only to them: a node without a
//     matching subscription gets no traffic for it. An engine may add
//     BatchForwarder (Redis and NATS do): ForwardBatch takes the messages
//     of one connection in one round trip, in order, with an error per
//     message; ForwardAll uses it, or Forward one message after the other.
//   - Retained: the retained messages of the whole topic space.
//   - Owner: which node a client identifier is connected to, cluster-wide,
//     with takeover.
//   - Wills: will messages the engine publishes on a node's behalf if the
//     node dies (its lease lapses) before it clears them, after their Will
//     Delay Interval.
//
// Messages and takeover notices arrive through the Config handlers, called
// in arrival order on one goroutine per node. Messages come through each
// node's durable queue on the engine (see Durable forwarding).
//
// # Matching
//
// Topic matching is exact MQTT matching everywhere (package topic): '+'
// matches exactly one level, '#' any number of levels including none, and
// filters beginning with a wildcard never match names beginning with '$'
// [v5 MQTT-4.7.2-1] [v3 MQTT-4.7.2-1]. No engine may approximate a filter
// with a glob that lets '+' cross levels.
//
// # Shared subscriptions
//
// A shared group is a pair (ShareName, inner filter), as on one node. The
// back plane picks one node per matching group for each message, cluster
// wide, and tells that node in Delivery.Groups; the node then picks one of
// its local members. A broker with a back plane therefore never delivers
// shared subscriptions on its own when a message is published: every
// shared delivery, including those that land on the publishing node,
// arrives through OnMessage.
//
// # Durable forwarding
//
// Every engine keeps a durable queue per node ID (backplane/redis: a
// stream per node read through a consumer group; backplane/nats: a
// JetStream subject per node read through a durable consumer with explicit
// acknowledgement; backplane/memory: a queue in the Cluster value), for
// every QoS:
//
//   - Forward returns nil only once the engine has the message in the
//     queue of every node with matching interest (as this node knows the
//     interest): as durable as the engine's own persistence (Redis: its
//     appendonly and appendfsync settings; JetStream: the stream's
//     storage and replicas). The broker acknowledges a QoS 1 or 2 PUBLISH
//     only after that.
//   - A receiving node acknowledges a queued message to the engine only
//     once OnMessage (or OnBatch) returned for it, that is once the broker
//     stored it (with a store: in the queues of its persistent sessions,
//     with its Mark, in one write) or delivered it.
//   - A node that dies (no Close) or is cut off keeps its interest and its
//     queue on the engine for Config.Keep: what is forwarded to it
//     meanwhile waits, and the node, or its next process under the same
//     ID, gets it when it comes back, after what it had been given and not
//     acknowledged, in order per publishing node. A broker with a durable
//     store skips deliveries at or below the last Mark it stored, so each
//     message is taken once. Join waits (as its context allows) for the
//     lease of the ID's previous process to lapse.
//   - Limits: a queue holds a bounded number of messages (QueueLen of each
//     engine; the oldest go first); interest reaches the other nodes
//     asynchronously, so a message published elsewhere just after a
//     SUBSCRIBE may miss it; a Close withdraws the node and drops its
//     queue; a delivery the broker could not store (its store failing) is
//     acknowledged all the same.
//
// # Failures
//
// When the engine cannot be reached, every call returns an error for which
// errors.Is(err, ErrUnreachable) holds, so the broker can refuse a QoS 1 or
// 2 PUBLISH (reason code 0x80 or 0x97) rather than acknowledge a message it
// could not forward. When the engine comes back, the node announces its
// interest and wills again by itself.
//
// # Wiring into a broker
//
// The broker holds a Node (or nil: one node, no back plane) and calls it at
// these points; nothing else changes in its hot path.
//
//   - Start: Join with OnMessage and OnTakeover set; Close at Shutdown.
//   - SUBSCRIBE: after adding a subscription to its trie, Subscribe(filter)
//     with the filter as the client sent it ("$share/g/f" included); on
//     UNSUBSCRIBE and when a session with subscriptions ends, Unsubscribe.
//     An ErrUnreachable error leaves the count in place (it is announced at
//     the heal): grant the subscription and log.
//   - PUBLISH from a client: deliver to local non-shared subscribers as
//     today, then Forward(m). Do not deliver shared subscriptions locally:
//     they arrive through OnMessage. For QoS 1 and 2, send PUBACK/PUBREC only
//     once Forward returned nil; on ErrUnreachable answer 0x80 (MQTT 5) or
//     close the connection (3.1.1) rather than acknowledge.
//   - Retained: SetRetained(m) for a PUBLISH with RETAIN (an empty payload
//     deletes); on SUBSCRIBE, MatchRetained(filter) instead of (or merged
//     with) the local retained index.
//   - CONNECT: Claim(clientID) before answering CONNACK; the previous owner
//     node closes its connection when OnTakeover tells it (DISCONNECT 0x8E
//     for MQTT 5 [v5 MQTT-3.1.4-3]). Release(clientID) when the session ends.
//   - Will: SetWill after a CONNECT with a will; ClearWill once the will is
//     settled locally (DISCONNECT 0x00, or the broker published it itself, at
//     a takeover as on one node). The back plane publishes only the wills of
//     a node that died. Pass the Will Delay Interval in
//     m.Properties.WillDelay: a will with a delay is published no earlier
//     than the node's death (its lease lapsed, as the engine judges it) plus
//     the delay, by the node that found the death, which holds it
//     meanwhile. The back plane cannot know sessions, so the will is
//     published once the delay has passed even if the client resumed its
//     session elsewhere. If the holding node closes first it publishes the
//     wills it holds at once (early rather than never); if it dies too,
//     they are lost.
//   - OnMessage(d): if d.Plain, deliver d.Message to each local non-shared
//     subscription matching its topic (overlaps as on one node); for each
//     group in d.Groups, pick one local member of "$share/Name/Filter" with
//     the broker's usual strategy. Never Forward a message that came from
//     OnMessage.
package backplane
