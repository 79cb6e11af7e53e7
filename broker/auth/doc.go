// Package auth provides Tern's built-in authentication and authorization
// hooks, compatible with Mosquitto's files so that existing deployments can
// move over:
//
//   - [PasswordFile], a [broker.Authenticator] reading "username:hash"
//     lines with bcrypt hashes (as "htpasswd -B" writes them) or argon2id
//     hashes in the PHC string format, with optional anonymous access and
//     TLS-certificate identities (Mosquitto's password_file,
//     allow_anonymous and use_identity_as_username);
//   - [ACLFile], a [broker.Authorizer] and [broker.ReceiveAuthorizer]
//     reading Mosquitto's acl_file format, with user, topic and pattern
//     lines and read, write, readwrite and deny access;
//   - [PasswdCommand], the core of "tern passwd", which creates and edits
//     password files as mosquitto_passwd does, and [HashPassword] for
//     programs that write their own.
//
// Both files can be reloaded while the broker runs (Reload, for a SIGHUP
// handler); a file with an error is refused with its file and line, and
// the previous contents stay in force.
package auth
