// Package broker is Tern's embeddable MQTT 3.1, 3.1.1 and 5.0 broker.
//
// A [Server] is configured by its fields, whose zero values are a working
// broker (127.0.0.1:1883, every client allowed), checked by
// [Server.Validate]. Its lifecycle is net/http's: [Server.Serve],
// [Server.ListenAndServe], [Server.Shutdown], [Server.Close] and
// [ErrServerClosed]; [Server.Ready] and [Server.Addrs] tell a program
// when and where ListenAndServe listens. Authentication, authorization
// and observation are small interfaces set as fields ([Authenticator],
// [Authorizer], [ReceiveAuthorizer], [Observer], [AuthMethod]); package
// broker/auth implements them with Mosquitto-compatible password and ACL
// files and SCRAM. Each hook call has a deadline, [Server.HookTimeout],
// past which it counts as a refusal (see [NonBlocking]). The program itself can publish and subscribe without a socket
// ([Server.Publish], [Server.Subscribe]).
//
// A CONNECT that is not MQTT (a wrong protocol name) or is malformed is
// answered by closing the connection, without a CONNACK. A refused MQTT
// 3.1 / 3.1.1 client gets the CONNACK return code that says why, or,
// where 3.1.1 has none (a will QoS above MaximumQoS, a retained will with
// RetainUnavailable, a [Refusal] with a code 3.1.1 lacks), the close
// without a CONNACK. CONFORMANCE.md, at the root of the repository, lists
// the normative statements of MQTT 3.1.1 and 5.0 the broker keeps, with
// the code and the tests for each.
//
// # MQTT 5 features
//
// The MQTT 5 features, and the Server fields that configure them. Most
// settings are announced to MQTT 5 clients in the CONNACK properties
// (tern broker sets them from the mqtt5 section of its configuration
// file, see README.md); "(always)" means there is nothing to set.
//
//	feature                                         Server field
//	sessions and expiry                             MaxSessionExpiry (also 3.1.1 persistent sessions), MaxQueuedMessages
//	clean start, will delay, message expiry         (always)
//	reason codes and reason strings                 (always)
//	request problem information                     (always)
//	receive maximum: from clients / to clients      ReceiveMaximum / MaxInflight lowered by the client's
//	maximum packet size: from / to clients          MaxPacketSize / the client's (too large: dropped)
//	topic aliases: from / to clients                TopicAliasMaximum (TopicAliases(n); nil means 64) / OutboundTopicAliases
//	payload format, content type, response topic,
//	  correlation data, user properties             passed through (always)
//	request / response information                  ResponseInformation ("%c": client id)
//	subscription identifiers                        SubscriptionIDsUnavailable
//	no local, retain as published, retain handling  (always)
//	shared subscriptions and strategies             SharedSubscriptionsUnavailable, SharedStrategy
//	maximum QoS                                     MaximumQoS (QoS(n); nil means 2)
//	retain available                                RetainUnavailable
//	wildcard subscription available                 WildcardSubscriptionsUnavailable
//	server keep alive                               ServerKeepAlive
//	assigned client identifier                      (always)
//	enhanced authentication, re-authentication      AuthMethods (e.g. auth.PasswordFile.SCRAMMethods)
//	server DISCONNECT 0x8E taken over, 0x8D keep
//	  alive, 0x93, 0x94, 0x95, 0x8B shutting down,
//	  0x81 / 0x82 with the rule broken              (always)
package broker
