// Package mqtttest is Tern's test harness: the helpers that broker, client,
// proxy and command tests share, so each package does not grow its own.
//
//   - StartBroker runs an in-process Tern broker.Server on a free loopback
//     TCP port (and, on request, an in-memory listener) until the test
//     ends, then shuts it down and checks that none of its connection
//     goroutines is left.
//   - StartMosquitto runs the real Mosquitto broker (Debian package
//     mosquitto) with a generated configuration, for interoperability
//     tests; NeedBinary skips a test whose peer program is not installed.
//   - StartRedis runs the real redis-server (Debian package redis-server)
//     on a free loopback port, with Kill and Restart for engine faults;
//     StartRedisCluster joins three or more of them into a Redis Cluster
//     with redis-cli (package redis-tools). For the back plane tests.
//   - FreePort and FreeAddr pick a free loopback port.
//   - StartCutProxy puts a TCP proxy in front of a server that cuts the
//     k-th connection after a chosen number of bytes in one direction, or
//     turns it into a black hole (a half-open peer), so that a test can
//     break an exchange at every byte; it can also cut or black-hole every
//     open connection at once and refuse new ones (a server that is down),
//     and counts the bytes it forwarded each way (Traffic).
//   - RawClient speaks MQTT packet by packet, for protocol-level tests.
//   - StartHTTPProxy and StartSOCKS5 are forward proxies that record what
//     they were asked to reach, for tests of proxy dialing.
//   - ListenRaw is a fake server whose connections the test plays packet
//     by packet, for client tests at the wire.
//   - StartRefuser is a fake server that answers every CONNECT with a
//     chosen CONNACK reason code (and, in MQTT 5, a Server Reference), for
//     client tests of refusals and redirection.
//   - VerifyNone, LeakCheck and VerifyTestMain wrap go.uber.org/goleak
//     with the options the project needs.
//
// Every helper takes a testing.TB, registers its own cleanup with
// t.Cleanup, and fails the test (t.Fatal) when it cannot do its job, so
// the helpers that fail the test must be called from the test's goroutine.
// Everything listens on 127.0.0.1 only. No helper keeps package-level
// state, so tests using them may run in parallel (except LeakCheck, which
// looks at every goroutine of the process).
package mqtttest
