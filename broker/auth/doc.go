// Package auth provides Tern's built-in authentication and authorization
// hooks, compatible with Mosquitto's files so that existing deployments can
// move over:
//
//   - [PasswordFile], a [broker.Authenticator] reading "username:hash"
//     lines with bcrypt hashes (as "htpasswd -B" writes them), argon2id
//     hashes in the PHC string format, or Mosquitto's own "$7$"
//     (PBKDF2-SHA512, mosquitto_passwd 2.0) and "$6$" (salted SHA-512,
//     Mosquitto 1.x) hashes, so that a Mosquitto password file works as
//     it is, with optional anonymous access and TLS-certificate
//     identities (Mosquitto's password_file, allow_anonymous and
//     use_identity_as_username); a client without a username is refused
//     with "not authorized", a wrong username or password with "bad user
//     name or password";
//   - [SCRAM], [broker.AuthMethod]s for MQTT 5 enhanced authentication
//     with SCRAM-SHA-256 and SCRAM-SHA-512 ([PasswordFile.SCRAMMethods]),
//     which check the SCRAM credentials a password file line may carry as
//     extra ':'-separated fields after its hash,
//     "$scram-sha-256$i=<iterations>$<salt>$<StoredKey>$<ServerKey>" and
//     the same with "$scram-sha-512$" (see [PasswordFile]); lines without
//     them, as Mosquitto and older versions of Tern write them, are read
//     as before, and Mosquitto 2.0 ignores them;
//   - [ACLFile], a [broker.Authorizer] and [broker.ReceiveAuthorizer]
//     reading Mosquitto's acl_file format, with user, topic and pattern
//     lines and read, write, readwrite and deny access;
//   - [PasswdCommand], the core of "tern passwd", which creates and edits
//     password files as mosquitto_passwd does, writing SCRAM credentials
//     along with each hash unless told not to, and Mosquitto's "$7$" form
//     on request ([PasswdArgs].Mosquitto) so that one file serves both
//     brokers, and [HashPassword] and [SCRAMCredential] for programs that
//     write their own.
//
// Both files can be reloaded while the broker runs (Reload, for a SIGHUP
// handler); a file with an error is refused with its file and line, and
// the previous contents stay in force.
package auth
