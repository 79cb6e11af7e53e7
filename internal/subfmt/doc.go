// Package subfmt prints received MQTT messages exactly as mosquitto_sub
// 2.0 prints them: its -F format language, -v, -N and --pretty. It is the
// printer of tern sub and tern rr.
//
// The specification is mosquitto_sub(1), and where the program and its
// manual disagree, the program (Debian's mosquitto-clients 2.0.11 with
// libcjson 1.7.15): the tests run the real mosquitto_sub against a test
// server and compare its output with a Printer's byte for byte, for MQTT
// 3.1, 3.1.1 and 5 with every PUBLISH property, with mosquitto_sub's clock
// frozen by libfaketime so that the time fields are compared too.
//
//	p, err := subfmt.Compile(subfmt.Options{Format: "%I %t %p"}) // tern sub -F '%I %t %p'
//	...
//	var m subfmt.Message
//	m.SetPublish(pub, time.Now()) // pub: a received *packet.Publish
//	err = p.Print(os.Stdout, &m)
//
// A Printer compiles its format once and allocates nothing per message
// once its buffer has grown; each message is one Write.
//
// # Output modes
//
// Without -F or -v the payload is printed as it is, followed by a
// newline; an empty payload prints nothing, not even the newline. With -v
// (Options.Verbose) the line is "topic payload"; an empty payload prints
// "topic (null)", and nothing at all with -N. With -F the format decides
// and -v is ignored; -F "" prints only the newline. -N (Options.NoEOL)
// drops the newline after each message in every mode. --pretty
// (Options.Pretty) changes only %j and %J.
//
// # The format language
//
// A format is text in which three characters start a sequence: %
// (a message field), @ (a time field) and \ (an escape). Every other
// byte is copied.
//
// A % sequence is %[flag][width][.precision]directive, with at most one
// flag character, - (align left) or 0 (pad with zeros); after -, a 0 is
// still read as the zero flag ("%-05A"). The directives:
//
//	%%   a literal %
//	%A   MQTT 5 topic alias, if present
//	%C   MQTT 5 content type, if present
//	%D   MQTT 5 correlation data, raw bytes, if present
//	%E   MQTT 5 message expiry interval, if present, as a signed 32-bit
//	     number: 4294967295 prints -1
//	%F   MQTT 5 payload format indicator, if present
//	%I   receive time, ISO 8601: 2020-05-06T22:48:00+0100
//	%j   JSON object of the message with the payload as a string (see JSON)
//	%J   JSON object of the message with the payload as JSON (see JSON)
//	%l   payload length in bytes
//	%m   packet identifier (0 for QoS 0)
//	%P   MQTT 5 user properties, "key:value" separated by single spaces
//	%p   payload, raw bytes
//	%q   QoS, one digit
//	%R   MQTT 5 response topic, if present
//	%r   retain flag, 0 or 1
//	%S   MQTT 5 subscription identifier, the first if there are several
//	%t   topic
//	%U   receive time as Unix seconds and nanoseconds: 1588801680.123456789
//	%x   payload in lower-case hex
//	%X   payload in upper-case hex
//
// Widths, precisions and flags act as printf's, per kind of directive:
//
//   - %C %I %R %t are strings: padded with spaces to the width (right
//     aligned unless -), cut to the precision. Both count bytes, not
//     characters. An absent %C prints width spaces; an absent %R prints
//     nothing at all, whatever the width.
//   - %A %E %F %l %m %S are numbers: padded to the width with spaces, or
//     with zeros after the sign with the 0 flag, left aligned with -. An
//     absent property prints width pad characters: zeros with the 0 flag,
//     even after - ("%-05A" of no alias is 00000).
//   - %p %x %X take a width that is also a maximum: the payload is cut to
//     width bytes, and for %x and %X that count is then halved (rounded
//     down) before the bytes are printed in hex, so "%6x" of "abc" is
//     "    61". The padding is spaces, or zeros with the 0 flag, on the
//     left; with - it is spaces on the right, and - without a width adds
//     as many spaces as the payload has bytes ("%-p" of "abc" is "abc   ").
//   - %% %D %j %J %P %q %r %U ignore width, precision and flags.
//
// Strings end at their first NUL byte, as C strings do: %t, %C, %R, %P and
// every string inside %j and %J. %D and %p print every byte.
//
// The escapes are \\ (a backslash), \0 (a NUL byte, to separate fields
// for xargs -0), \a, \e (ESC, for ANSI colours), \n, \r, \t and \v.
//
// # Time fields
//
// @@ prints a literal @ and @N the nanoseconds of the receive time (nine
// digits). @ followed by any other byte X prints what glibc's strftime(3)
// prints for "%X" in the C locale (mosquitto_sub never calls
// setlocale): @a @A @b @B @c @C @d @D @e @F @g @G @h @H @I @j @k @l @m
// @M @n @p @P @r @R @s @S @t @T @u @U @V @w @W @x @X @y @Y @z @Z and @%
// (a literal %). For a byte glibc does not know as a conversion (@q, @E,
// @-, @é, ...) glibc prints "%" and the byte; for a digit d it prints
// them right aligned in d columns ("@5" is "   %5").
//
// The time is Message.Received (the time of the Print call if zero) in
// Options.Location (time.Local if nil; for mosquitto_sub, localtime(3):
// the TZ environment variable, else /etc/localtime).
//
// # JSON
//
// %j and %J print one object, built and printed as mosquitto_sub does
// with cJSON: compact, or with --pretty in cJSON_Print's layout (a newline
// after {, one member per line indented with tabs, "key":<tab>value,
// arrays on one line with ", " between elements). Its members, in order:
//
//   - "tst": the receive time, "2020-05-06T22:48:00.123456Z+0100": local
//     time, microseconds, then a literal Z followed by the offset;
//   - "topic", "qos", "retain" (0 or 1), "payloadlen";
//   - "mid", the packet identifier, for QoS 1 and 2;
//   - "properties", for an MQTT 5 message with properties: an object
//     with payload-format-indicator, message-expiry-interval,
//     content-type, response-topic, correlation-data (a string),
//     subscription-identifier (once per identifier), topic-alias (always
//     0: mosquitto_sub 2.0 reads the alias under the wrong identifier)
//     and user-properties, an object of every user property in order,
//     repeated names repeated. The properties are listed in the order
//     the PUBLISH carried them (Message.PropertyOrder), the user
//     properties where the first one was;
//   - "payload": null when the payload is empty. For %j a string. For %J
//     the payload parsed as JSON and printed again by cJSON's rules:
//     numbers with %.15g, or %.17g when that does not read back (27.0 is
//     27, 1e400 is null, -0 stays -0), strings re-escaped, \u escapes
//     decoded (bad hex digits decode as U+0000, which ends the string).
//     cJSON takes any byte up to 32 as whitespace, skips a UTF-8 byte
//     order mark and reads leading zeros ("01" is 1); it refuses nesting
//     deeper than 1000 and lone surrogates. A payload that is not JSON
//     (or holds a NUL byte) prints no object: the rest of the line is
//     printed and Print returns a *JSONError, whose message is the one
//     mosquitto_sub prints on stderr after "Error: ".
//
// Strings are escaped as \" \\ \b \f \n \r \t, other bytes below 0x20 as
// \u00xx; every other byte is copied, bytes of invalid UTF-8 included.
//
// # Where mosquitto_sub differs from its manual
//
// Tern follows the program. The manual's %j example has no Z in "tst" and
// no "payloadlen", "mid" or "properties"; its %J error message has no
// final full stop; it says a newline ends every message, but an empty
// payload prints nothing without -F; it gives %p, %x and %X a minimum
// width, which is also a maximum (halved for hex), and does not say that
// - without a width pads, nor that 0 pads %p, nor that an absent property
// is padded with zeros under "-0"; it does not say that %E is signed,
// that %R is not padded when absent, or that topic-alias in %j is always
// 0.
//
// libmosquitto 2.0.11 drops the connection on a PUBLISH carrying two
// subscription identifiers, and on one with an empty topic and a topic
// alias, so mosquitto_sub never prints those. For the first the Printer
// does what the source of mosquitto_sub does (%S prints the first; %j
// repeats the key); the second is the caller's to resolve: Message.Topic
// is the topic the alias stands for.
//
// # Where Tern differs from mosquitto_sub
//
// Never in the bytes printed for a message, given the message's property
// order: without Message.PropertyOrder, the "properties" object of %j and
// %J lists the properties in package packet's encoding order, which is
// the wire order of a Tern broker's PUBLISH but not of every broker's
// (Mosquitto sends the subscription identifier first and the message
// expiry interval last), and package packet does not record the order it
// decodes. Compile refuses the format
// strings mosquitto_sub refuses, with an error that names the -F argument
// and the offending sequence and says what would be valid (mosquitto_sub:
// "Error: Invalid format specifier 'z'."); it also refuses widths and
// precisions above MaxWidth, which mosquitto_sub accepts and overflows.
// mosquitto_sub reads its clock again for each of %I, %U, %j and %J and
// once per line for the @ fields; a Printer uses the message's receive
// time for all of them.
//
// The options of mosquitto_sub that choose which messages are printed
// rather than how (-C, -R, -T, --retained-only, --remove-retained,
// --random-filter) and its -d debug lines belong to the caller.
package subfmt
