// Package topic implements MQTT topic names and topic filters: validation,
// matching and a subscription trie, as specified by MQTT 3.1.1 and 5.0
// section 4.7, plus the shared subscription syntax of MQTT 5.0 section
// 4.8.2. It depends only on the standard library.
//
// # Names and filters
//
// A topic name ("sport/tennis/player1") is what a PUBLISH carries; a topic
// filter ("sport/tennis/+", "sport/#") is what a SUBSCRIBE carries. Both are
// divided into levels by '/', and levels may be empty ("/finance" has two
// levels, "" and "finance"). In a filter, '+' matches exactly one level and
// '#', which must be the last level, matches any number of levels, including
// none: "sport/#" matches "sport". Filters beginning with a wildcard never
// match names beginning with '$', so "#" does not match "$SYS/broker/uptime"
// but "$SYS/#" does.
//
// [ValidateName] and [ValidateFilter] check the syntax; their errors are
// *[Error] values that name the broken rule and wrap a sentinel such as
// [ErrBadWildcard], for errors.Is. [Match] decides whether one filter
// matches one name. [ParseShare] and [IsShared] handle shared subscription
// filters, "$share/{ShareName}/{filter}".
//
// # Subscription trie
//
// A [Trie] holds many subscriptions and finds every one that matches a
// published name in time proportional to the number of levels of the name
// and of matching subscriptions, without allocating. It is safe for
// concurrent use: matches run in parallel under a read lock, and Add and
// Remove are cheap. The trie stores filters literally and does not treat
// "$share/" filters specially: a broker stores a shared subscription under
// the filter of its choice and does the per-group selection itself.
//
// # Spec references
//
// Each normative statement enforced here is tagged in the source with its
// id for each protocol version, like "[v5 MQTT-4.7.1-1] [v3 MQTT-4.7.1-2]",
// since the same rule may have different ids in 3.1.1 and 5.0. Error
// messages quote the MQTT 5.0 id.
package topic
