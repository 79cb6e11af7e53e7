// Package scram implements the Salted Challenge Response Authentication
// Mechanism of RFC 5802 with the hash functions of RFC 7677
// (SCRAM-SHA-256) and SHA-512 (SCRAM-SHA-512), both sides of the
// conversation, as MQTT 5 enhanced authentication carries it in the
// Authentication Data of CONNECT, AUTH and CONNACK:
//
//	C: n,,n=user,r=<client nonce>                                   client-first-message   (CONNECT)
//	S: r=<client nonce><server nonce>,s=<salt>,i=<iterations>       server-first-message   (AUTH 0x18)
//	C: c=biws,r=<client nonce><server nonce>,p=<client proof>       client-final-message   (AUTH 0x18)
//	S: v=<server signature>                                         server-final-message   (CONNACK 0)
//
// [Client] is the client's side; [Server] is the server's, which finds a
// user's stored credentials (salt, iteration count, StoredKey and
// ServerKey, never the password) through a [CredentialStore].
// [Mechanism.Credentials] and [Mechanism.NewCredentials] derive stored
// credentials from a password, for a password file.
//
// What this implementation does and does not do:
//
//   - No channel binding: the client sends the GS2 header "n,,"; the server
//     accepts "n,," and "y,," (the client could bind but believes the
//     server cannot, which is true) and refuses "p=..." with
//     [ErrChannelBindingNotSupported]. The -PLUS mechanisms are not offered.
//   - An authorization identity ("a=") is accepted by the server only when
//     it equals the user name; the client never sends one.
//   - User names are escaped as the RFC says ("," as "=2C", "=" as "=3D");
//     any other '=' in a user name is an error.
//   - Passwords and user names are used as the UTF-8 bytes given, without
//     SASLprep (RFC 4013) normalisation. For ASCII they are the same; a
//     peer that normalises a non-ASCII password differently will not
//     agree with this one.
//   - Nonces are 18 bytes from crypto/rand (24 characters of base64);
//     proofs and signatures are compared in constant time; iteration
//     counts below [MinIterations] (4096, RFC 7677's minimum) are refused
//     on both sides, and the client refuses counts above its
//     MaxIterations so that a hostile server cannot make it spin.
//   - A user the store does not know ([ErrUnknownUser]) gets a made-up
//     salt, stable for the user name while the process runs, and fails at
//     the proof as a wrong password does, so the exchange does not reveal
//     which users exist.
//   - Every malformed message is an [*Error] naming what is wrong, with
//     the RFC's server-error-value; parsing never panics (FuzzServer).
package scram
