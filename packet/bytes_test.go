package packet

import (
	"bytes"
	"encoding/hex"
	"io"
	"reflect"
	"strings"
	"testing"
)

// b decodes an annotated hex literal: each part is hex digits, possibly
// grouped with spaces; the parts are concatenated.
func b(parts ...string) []byte {
	h := strings.ReplaceAll(strings.Join(parts, ""), " ", "")
	out, err := hex.DecodeString(h)
	if err != nil {
		panic("bad hex literal " + h + ": " + err.Error())
	}
	return out
}

// cat concatenates byte slices (for payloads too long to spell in hex).
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// marked returns p with the given properties marked present: the way to
// say "this property is on the wire with a zero value".
func marked(p Properties, ids ...PropertyID) Properties {
	for _, id := range ids {
		p.Mark(id)
	}
	return p
}

// propsOf returns pointers to every property set of a packet (a CONNECT
// has two: its own and the will's).
func propsOf(p Packet) []*Properties {
	switch p := p.(type) {
	case *Connect:
		ps := []*Properties{&p.Properties}
		if p.Will != nil {
			ps = append(ps, &p.Will.Properties)
		}
		return ps
	case *Connack:
		return []*Properties{&p.Properties}
	case *Publish:
		return []*Properties{&p.Properties}
	case *Puback:
		return []*Properties{&p.Properties}
	case *Pubrec:
		return []*Properties{&p.Properties}
	case *Pubrel:
		return []*Properties{&p.Properties}
	case *Pubcomp:
		return []*Properties{&p.Properties}
	case *Subscribe:
		return []*Properties{&p.Properties}
	case *Suback:
		return []*Properties{&p.Properties}
	case *Unsubscribe:
		return []*Properties{&p.Properties}
	case *Unsuback:
		return []*Properties{&p.Properties}
	case *Disconnect:
		return []*Properties{&p.Properties}
	case *Auth:
		return []*Properties{&p.Properties}
	}
	return nil
}

// markPresent marks every property of p whose field is non-zero, so that
// an expected value written with plain fields (plus explicit marks for
// zero values) carries exactly the presence mask the Reader sets: one bit
// per property on the wire, no more and no less.
func markPresent(p Packet) {
	for _, ps := range propsOf(p) {
		for id := PropertyID(1); id <= maxPropertyID; id++ {
			if ps.Has(id) {
				ps.Mark(id)
			}
		}
	}
}

type wireCase struct {
	name string
	v    Version
	wire []byte
	pkt  Packet
}

var userKV = []UserProperty{{"k", "v"}}

func wireCases() []wireCase {
	payload200 := bytes.Repeat([]byte{'x'}, 200)
	payload16k := bytes.Repeat([]byte{'y'}, 16384)
	return []wireCase{
		// ---------------------------------------------------------- CONNECT
		{"CONNECT 3.1 minimal", V31, b(
			"10",                // CONNECT, flags 0
			"12",                // remaining length 18
			"0006 4d5149736470", // protocol name "MQIsdp"
			"03",                // level 3 (3.1)
			"02",                // flags: clean session
			"003c",              // keep alive 60
			"0004 74657374",     // client id "test"
		), &Connect{Version: V31, ProtocolName: "MQIsdp", CleanStart: true, KeepAlive: 60, ClientID: "test"}},

		{"CONNECT 3.1 will user password", V31, b(
			"10",                // CONNECT
			"21",                // remaining length 33
			"0006 4d5149736470", // "MQIsdp"
			"03",                // level 3
			"ee",                // flags: user, password, will retain, will QoS 1, will, clean
			"000a",              // keep alive 10
			"0002 6331",         // client id "c1"
			"0003 772f74",       // will topic "w/t"
			"0003 627965",       // will message "bye"
			"0001 75",           // user name "u"
			"0002 7077",         // password "pw"
		), &Connect{Version: V31, ProtocolName: "MQIsdp", CleanStart: true, KeepAlive: 10, ClientID: "c1",
			Will:         &Will{Topic: "w/t", Payload: []byte("bye"), QoS: 1, Retain: true},
			UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw")}},

		{"CONNECT 3.1.1 minimal", V311, b(
			"10",            // CONNECT, flags 0
			"10",            // remaining length 16
			"0004 4d515454", // protocol name "MQTT"
			"04",            // level 4 (3.1.1)
			"02",            // flags: clean session
			"003c",          // keep alive 60
			"0004 74657374", // client id "test"
		), &Connect{Version: V311, ProtocolName: "MQTT", CleanStart: true, KeepAlive: 60, ClientID: "test"}},

		{"CONNECT 3.1.1 empty client id keep alive 0", V311, b(
			"10",            // CONNECT
			"0c",            // remaining length 12
			"0004 4d515454", // "MQTT"
			"04",            // level 4
			"02",            // clean session
			"0000",          // keep alive off
			"0000",          // client id ""
		), &Connect{Version: V311, ProtocolName: "MQTT", CleanStart: true}},

		{"CONNECT 3.1.1 will QoS 2 empty will payload user binary password", V311, b(
			"10",            // CONNECT
			"20",            // remaining length 32
			"0004 4d515454", // "MQTT"
			"04",            // level 4
			"d4",            // flags: user, password, will QoS 2, will; clean session 0
			"001e",          // keep alive 30
			"0002 6964",     // client id "id"
			"0003 612f62",   // will topic "a/b"
			"0000",          // will message empty
			"0004 75736572", // user name "user"
			"0003 00ff10",   // password 00 ff 10
		), &Connect{Version: V311, ProtocolName: "MQTT", KeepAlive: 30, ClientID: "id",
			Will:         &Will{Topic: "a/b", QoS: 2},
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte{0x00, 0xff, 0x10}}},

		{"CONNECT 3.1.1 empty user name", V311, b(
			"10",            // CONNECT
			"0f",            // remaining length 15
			"0004 4d515454", // "MQTT"
			"04",            // level 4
			"82",            // flags: user name, clean session
			"0000",          // keep alive 0
			"0001 63",       // client id "c"
			"0000",          // user name "" (present)
		), &Connect{Version: V311, ProtocolName: "MQTT", CleanStart: true, ClientID: "c", UsernameFlag: true}},

		{"CONNECT 3.1.1 client id with BOM", V311, b(
			"10",               // CONNECT
			"11",               // remaining length 17
			"0004 4d515454",    // "MQTT"
			"04",               // level 4
			"02",               // clean session
			"003c",             // keep alive 60
			"0005 efbbbf 6964", // client id U+FEFF "id": the BOM is kept [MQTT-1.5.3-3]
		), &Connect{Version: V311, ProtocolName: "MQTT", CleanStart: true, KeepAlive: 60, ClientID: "\uFEFFid"}},

		{"CONNECT 5.0 minimal", V5, b(
			"10",            // CONNECT
			"11",            // remaining length 17
			"0004 4d515454", // "MQTT"
			"05",            // level 5
			"02",            // clean start
			"003c",          // keep alive 60
			"00",            // property length 0
			"0004 74657374", // client id "test"
		), &Connect{Version: V5, ProtocolName: "MQTT", CleanStart: true, KeepAlive: 60, ClientID: "test"}},

		{"CONNECT 5.0 all properties will user password", V5, b(
			"10",                           // CONNECT
			"8b01",                         // remaining length 139 (two-byte VBI)
			"0004 4d515454",                // "MQTT"
			"05",                           // level 5
			"ee",                           // flags: user, password, will retain, will QoS 1, will, clean start
			"0078",                         // keep alive 120
			"36",                           // property length 54
			"11 00000e10",                  // session expiry 3600
			"15 0005 534352414d",           // auth method "SCRAM"
			"16 0002 0102",                 // auth data 01 02
			"17 00",                        // request problem information 0 (explicit zero)
			"19 01",                        // request response information 1
			"21 0014",                      // receive maximum 20
			"22 000a",                      // topic alias maximum 10
			"26 0001 6b 0001 31",           // user property k=1
			"26 0001 6b 0001 32",           // user property k=2 (same key again)
			"26 0001 61 0001 62",           // user property a=b
			"27 00100000",                  // maximum packet size 1 MiB
			"0003 636964",                  // client id "cid"
			"2a",                           // will property length 42
			"01 01",                        // payload format 1 (UTF-8)
			"02 0000003c",                  // message expiry 60
			"03 000a 746578742f706c61696e", // content type "text/plain"
			"08 0003 722f74",               // response topic "r/t"
			"09 0001 63",                   // correlation data "c"
			"18 00000005",                  // will delay 5
			"26 0001 77 0001 78",           // user property w=x
			"0004 77696c6c",                // will topic "will"
			"0004 676f6e65",                // will payload "gone"
			"0004 75736572",                // user name "user"
			"0006 736563726574",            // password "secret"
		), &Connect{Version: V5, ProtocolName: "MQTT", CleanStart: true, KeepAlive: 120, ClientID: "cid",
			Will: &Will{Topic: "will", Payload: []byte("gone"), QoS: 1, Retain: true, Properties: Properties{
				PayloadFormat: 1, MessageExpiry: 60, ContentType: "text/plain", ResponseTopic: "r/t",
				CorrelationData: []byte("c"), WillDelay: 5, User: []UserProperty{{"w", "x"}},
			}},
			UsernameFlag: true, Username: "user", PasswordFlag: true, Password: []byte("secret"),
			Properties: marked(Properties{
				SessionExpiry: 3600, AuthMethod: "SCRAM", AuthData: []byte{1, 2}, RequestResponseInfo: 1,
				ReceiveMaximum: 20, TopicAliasMaximum: 10, MaximumPacketSize: 1 << 20,
				User: []UserProperty{{"k", "1"}, {"k", "2"}, {"a", "b"}},
			}, PropRequestProblemInfo)}},

		{"CONNECT 5.0 password without user name", V5, b(
			"10",            // CONNECT
			"11",            // remaining length 17
			"0004 4d515454", // "MQTT"
			"05",            // level 5
			"42",            // flags: password, clean start (allowed in 5.0)
			"0000",          // keep alive 0
			"00",            // property length 0
			"0000",          // client id ""
			"0002 7077",     // password "pw"
		), &Connect{Version: V5, ProtocolName: "MQTT", CleanStart: true, PasswordFlag: true, Password: []byte("pw")}},

		{"CONNECT 5.0 will without properties", V5, b(
			"10",            // CONNECT
			"16",            // remaining length 22
			"0004 4d515454", // "MQTT"
			"05",            // level 5
			"06",            // flags: will (QoS 0), clean start
			"0000",          // keep alive 0
			"00",            // property length 0
			"0001 63",       // client id "c"
			"00",            // will property length 0
			"0001 74",       // will topic "t"
			"0002 6869",     // will payload "hi"
		), &Connect{Version: V5, ProtocolName: "MQTT", CleanStart: true, ClientID: "c",
			Will: &Will{Topic: "t", Payload: []byte("hi")}}},

		// ---------------------------------------------------------- CONNACK
		{"CONNACK 3.1 accepted", V31, b("20", "02", "00", "00"), &Connack{}},
		{"CONNACK 3.1.1 accepted", V311, b(
			"20", // CONNACK
			"02", // remaining length 2
			"00", // no session present
			"00", // return code 0: accepted
		), &Connack{ReasonCode: V3Accepted}},
		{"CONNACK 3.1.1 accepted session present", V311, b(
			"20", "02",
			"01", // session present
			"00", // accepted
		), &Connack{SessionPresent: true}},
		{"CONNACK 3.1.1 unacceptable protocol version", V311, b("20", "02", "00", "01"), &Connack{ReasonCode: V3UnacceptableProtocolVersion}},
		{"CONNACK 3.1.1 identifier rejected", V311, b("20", "02", "00", "02"), &Connack{ReasonCode: V3IdentifierRejected}},
		{"CONNACK 3.1.1 server unavailable", V311, b("20", "02", "00", "03"), &Connack{ReasonCode: V3ServerUnavailable}},
		{"CONNACK 3.1.1 bad user name or password", V311, b("20", "02", "00", "04"), &Connack{ReasonCode: V3BadUsernameOrPassword}},
		{"CONNACK 3.1.1 not authorized", V311, b("20", "02", "00", "05"), &Connack{ReasonCode: V3NotAuthorized}},

		{"CONNACK 5.0 minimal", V5, b(
			"20", // CONNACK
			"03", // remaining length 3
			"00", // ack flags
			"00", // success
			"00", // property length 0
		), &Connack{}},

		{"CONNACK 5.0 server capabilities", V5, b(
			"20",                   // CONNACK
			"2b",                   // remaining length 43
			"01",                   // session present
			"00",                   // success
			"28",                   // property length 40
			"12 0006 6175746f2d31", // assigned client id "auto-1"
			"13 001e",              // server keep alive 30
			"21 0064",              // receive maximum 100
			"22 0010",              // topic alias maximum 16
			"24 00",                // maximum QoS 0 (explicit)
			"25 00",                // retain available 0 (explicit)
			"26 0001 78 0001 79",   // user property x=y
			"27 00010000",          // maximum packet size 65536
			"28 01",                // wildcard subscriptions available
			"29 00",                // subscription identifiers not available (explicit)
			"2a 01",                // shared subscriptions available
		), &Connack{SessionPresent: true, Properties: marked(Properties{
			AssignedClientID: "auto-1", ServerKeepAlive: 30, ReceiveMaximum: 100, TopicAliasMaximum: 16,
			User: []UserProperty{{"x", "y"}}, MaximumPacketSize: 65536, WildcardSubAvailable: 1, SharedSubAvailable: 1,
		}, PropMaximumQoS, PropRetainAvailable, PropSubIDAvailable)}},

		{"CONNACK 5.0 use another server", V5, b(
			"20",                           // CONNACK
			"2b",                           // remaining length 43
			"00",                           // no session
			"9c",                           // use another server
			"28",                           // property length 40
			"11 00000000",                  // session expiry 0 (explicit)
			"15 0001 6d",                   // auth method "m"
			"16 0001 64",                   // auth data "d"
			"1a 0004 72657370",             // response information "resp"
			"1c 000a 6f746865723a31383833", // server reference "other:1883"
			"1f 0004 6e6f7065",             // reason string "nope"
		), &Connack{ReasonCode: UseAnotherServer, Properties: marked(Properties{
			AuthMethod: "m", AuthData: []byte("d"), ResponseInfo: "resp", ServerReference: "other:1883", ReasonString: "nope",
		}, PropSessionExpiry)}},

		// ---------------------------------------------------------- PUBLISH
		{"PUBLISH 3.1 QoS 0", V31, b(
			"30",          // PUBLISH QoS 0
			"07",          // remaining length 7
			"0003 612f62", // topic "a/b"
			"6869",        // payload "hi"
		), &Publish{Topic: "a/b", Payload: []byte("hi")}},
		{"PUBLISH 3.1.1 QoS 0", V311, b(
			"30",          // PUBLISH QoS 0
			"07",          // remaining length 7
			"0003 612f62", // topic "a/b"
			"6869",        // payload "hi"
		), &Publish{Topic: "a/b", Payload: []byte("hi")}},
		{"PUBLISH 3.1.1 retain empty payload", V311, b(
			"31",          // PUBLISH QoS 0 retain
			"05",          // remaining length 5
			"0003 612f62", // topic "a/b"; no payload
		), &Publish{Topic: "a/b", Retain: true}},
		{"PUBLISH 3.1.1 QoS 1", V311, b(
			"32",          // PUBLISH QoS 1
			"08",          // remaining length 8
			"0003 612f62", // topic "a/b"
			"0001",        // packet id 1
			"78",          // payload "x"
		), &Publish{Topic: "a/b", QoS: 1, PacketID: 1, Payload: []byte("x")}},
		{"PUBLISH 3.1.1 QoS 1 dup", V311, b(
			"3a",          // PUBLISH dup QoS 1
			"07",          // remaining length 7
			"0003 612f62", // topic "a/b"
			"ffff",        // packet id 65535
		), &Publish{Topic: "a/b", Dup: true, QoS: 1, PacketID: 65535}},
		{"PUBLISH 3.1.1 QoS 2 dup retain binary payload", V311, b(
			"3d",          // PUBLISH dup QoS 2 retain
			"09",          // remaining length 9
			"0003 612f62", // topic "a/b"
			"0102",        // packet id 0x0102
			"00ff",        // payload 00 ff
		), &Publish{Topic: "a/b", Dup: true, QoS: 2, Retain: true, PacketID: 0x0102, Payload: []byte{0, 0xff}}},
		{"PUBLISH 3.1.1 200-byte payload (2-byte remaining length)", V311, cat(b(
			"30",      // PUBLISH QoS 0
			"cb01",    // remaining length 203
			"0001 74", // topic "t"
		), payload200), &Publish{Topic: "t", Payload: payload200}},
		{"PUBLISH 3.1.1 16384-byte payload (3-byte remaining length)", V311, cat(b(
			"30",      // PUBLISH QoS 0
			"838001",  // remaining length 16387
			"0001 74", // topic "t"
		), payload16k), &Publish{Topic: "t", Payload: payload16k}},
		{"PUBLISH 3.1.1 topic with BOM", V311, b(
			"30",             // PUBLISH QoS 0
			"06",             // remaining length 6
			"0004 efbbbf 61", // topic U+FEFF "a": the BOM is kept [MQTT-1.5.3-3]
		), &Publish{Topic: "\uFEFFa"}},

		{"PUBLISH 5.0 QoS 0", V5, b(
			"30",          // PUBLISH QoS 0
			"08",          // remaining length 8
			"0003 612f62", // topic "a/b"
			"00",          // property length 0
			"6869",        // payload "hi"
		), &Publish{Topic: "a/b", Payload: []byte("hi")}},
		{"PUBLISH 5.0 QoS 1 every property", V5, b(
			"32",          // PUBLISH QoS 1
			"4b",          // remaining length 75
			"0001 74",     // topic "t"
			"1234",        // packet id 0x1234
			"43",          // property length 67
			"01 01",       // payload format 1 (UTF-8)
			"02 00000e10", // message expiry 3600
			"03 0010 6170706c69636174696f6e2f6a736f6e", // content type "application/json"
			"08 0006 726573702f31",                     // response topic "resp/1"
			"09 0003 000102",                           // correlation data 00 01 02
			"0b 01",                                    // subscription id 1
			"0b ff7f",                                  // subscription id 16383
			"0b 808001",                                // subscription id 16384
			"23 0005",                                  // topic alias 5
			"26 0001 61 0001 31",                       // user property a=1
			"26 0001 61 0001 32",                       // user property a=2 (same key again)
			"7b7d",                                     // payload "{}"
		), &Publish{Topic: "t", QoS: 1, PacketID: 0x1234, Payload: []byte("{}"), Properties: Properties{
			PayloadFormat: 1, MessageExpiry: 3600, ContentType: "application/json", ResponseTopic: "resp/1",
			CorrelationData: []byte{0, 1, 2}, SubscriptionIDs: []uint32{1, 16383, 16384}, TopicAlias: 5,
			User: []UserProperty{{"a", "1"}, {"a", "2"}},
		}}},
		{"PUBLISH 5.0 QoS 2 empty topic with topic alias", V5, b(
			"34",      // PUBLISH QoS 2
			"09",      // remaining length 9
			"0000",    // topic "" (the alias stands for it)
			"0007",    // packet id 7
			"03",      // property length 3
			"23 000a", // topic alias 10
			"70",      // payload "p"
		), &Publish{QoS: 2, PacketID: 7, Payload: []byte("p"), Properties: Properties{TopicAlias: 10}}},
		{"PUBLISH 5.0 explicit zero payload format and message expiry", V5, b(
			"30",          // PUBLISH QoS 0
			"0b",          // remaining length 11
			"0001 74",     // topic "t"
			"07",          // property length 7
			"01 00",       // payload format 0 (explicit)
			"02 00000000", // message expiry 0 (explicit)
		), &Publish{Topic: "t", Properties: marked(Properties{}, PropPayloadFormat, PropMessageExpiry)}},
		{"PUBLISH 5.0 multi-byte UTF-8 topic", V5, b(
			"30",                                     // PUBLISH QoS 0
			"11",                                     // remaining length 17
			"000e efbbbf c3a9 2f e282ac 2f f09f9880", // topic U+FEFF "é/€/😀" (3-, 2-, 3- and 4-byte sequences)
			"00",                                     // property length 0
		), &Publish{Topic: "\uFEFFé/€/😀"}},

		// ------------------------------------------- PUBACK PUBREC PUBREL PUBCOMP
		{"PUBACK 3.1.1", V311, b("40", "02", "0001"), &Puback{PacketID: 1}},
		{"PUBREC 3.1.1", V311, b("50", "02", "0002"), &Pubrec{PacketID: 2}},
		{"PUBREL 3.1.1", V311, b(
			"62",   // PUBREL, flags 0010
			"02",   // remaining length 2
			"0003", // packet id 3
		), &Pubrel{PacketID: 3}},
		{"PUBCOMP 3.1.1", V311, b("70", "02", "0004"), &Pubcomp{PacketID: 4}},
		{"PUBACK 3.1", V31, b("40", "02", "abcd"), &Puback{PacketID: 0xabcd}},
		{"PUBREC 3.1", V31, b("50", "02", "abcd"), &Pubrec{PacketID: 0xabcd}},
		{"PUBREL 3.1", V31, b("62", "02", "abcd"), &Pubrel{PacketID: 0xabcd}},
		{"PUBCOMP 3.1", V31, b("70", "02", "abcd"), &Pubcomp{PacketID: 0xabcd}},

		{"PUBACK 5.0 short form", V5, b(
			"40",   // PUBACK
			"02",   // remaining length 2: reason code 0 and properties left off
			"0001", // packet id 1
		), &Puback{PacketID: 1}},
		{"PUBREC 5.0 short form", V5, b("50", "02", "0002"), &Pubrec{PacketID: 2}},
		{"PUBREL 5.0 short form", V5, b("62", "02", "0003"), &Pubrel{PacketID: 3}},
		{"PUBCOMP 5.0 short form", V5, b("70", "02", "0004"), &Pubcomp{PacketID: 4}},

		{"PUBACK 5.0 reason code only", V5, b(
			"40",   // PUBACK
			"03",   // remaining length 3
			"0001", // packet id 1
			"10",   // no matching subscribers; property length left off
		), &Puback{PacketID: 1, ReasonCode: NoMatchingSubscribers}},
		{"PUBREC 5.0 reason code only", V5, b("50", "03", "0002", "97"), &Pubrec{PacketID: 2, ReasonCode: QuotaExceeded}},
		{"PUBREL 5.0 reason code only", V5, b("62", "03", "0003", "92"), &Pubrel{PacketID: 3, ReasonCode: PacketIdentifierNotFound}},
		{"PUBCOMP 5.0 reason code only", V5, b("70", "03", "0004", "92"), &Pubcomp{PacketID: 4, ReasonCode: PacketIdentifierNotFound}},

		{"PUBACK 5.0 reason string and user property", V5, b(
			"40",                   // PUBACK
			"14",                   // remaining length 20
			"0001",                 // packet id 1
			"87",                   // not authorized
			"10",                   // property length 16
			"1f 0006 64656e696564", // reason string "denied"
			"26 0001 6b 0001 76",   // user property k=v
		), &Puback{PacketID: 1, ReasonCode: NotAuthorized, Properties: Properties{ReasonString: "denied", User: userKV}}},
		{"PUBREC 5.0 success with reason string", V5, b(
			"50",         // PUBREC
			"08",         // remaining length 8
			"0005",       // packet id 5
			"00",         // success: written because properties follow
			"04",         // property length 4
			"1f 0001 78", // reason string "x"
		), &Pubrec{PacketID: 5, Properties: Properties{ReasonString: "x"}}},
		{"PUBREL 5.0 reason string", V5, b(
			"62",               // PUBREL
			"0b",               // remaining length 11
			"0003",             // packet id 3
			"92",               // packet identifier not found
			"07",               // property length 7
			"1f 0004 676f6e65", // reason string "gone"
		), &Pubrel{PacketID: 3, ReasonCode: PacketIdentifierNotFound, Properties: Properties{ReasonString: "gone"}}},
		{"PUBCOMP 5.0 reason string", V5, b(
			"70",         // PUBCOMP
			"08",         // remaining length 8
			"0004",       // packet id 4
			"92",         // packet identifier not found
			"04",         // property length 4
			"1f 0001 78", // reason string "x"
		), &Pubcomp{PacketID: 4, ReasonCode: PacketIdentifierNotFound, Properties: Properties{ReasonString: "x"}}},

		// -------------------------------------------------------- SUBSCRIBE
		{"SUBSCRIBE 3.1.1", V311, b(
			"82",          // SUBSCRIBE, flags 0010
			"0c",          // remaining length 12
			"0001",        // packet id 1
			"0003 612f62", // filter "a/b"
			"01",          // requested QoS 1
			"0001 23",     // filter "#"
			"02",          // requested QoS 2
		), &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "#", QoS: 2}}}},
		{"SUBSCRIBE 3.1", V31, b("82", "06", "0001", "0001 74", "00"), &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t"}}}},
		{"SUBSCRIBE 5.0 no properties", V5, b(
			"82",      // SUBSCRIBE
			"07",      // remaining length 7
			"0001",    // packet id 1
			"00",      // property length 0
			"0001 74", // filter "t"
			"00",      // options: QoS 0
		), &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t"}}}},
		{"SUBSCRIBE 5.0 options and subscription identifier", V5, b(
			"82",                         // SUBSCRIBE
			"23",                         // remaining length 35
			"000a",                       // packet id 10
			"09",                         // property length 9
			"0b 2a",                      // subscription id 42
			"26 0001 6b 0001 76",         // user property k=v
			"0003 612f2b",                // filter "a/+"
			"1d",                         // QoS 1, no local, retain as published, retain handling 1
			"000a 247368617265 2f672f74", // filter "$share/g/t"
			"2a",                         // QoS 2, retain as published, retain handling 2
			"0001 78",                    // filter "x"
			"00",                         // QoS 0, no options
		), &Subscribe{PacketID: 10, Properties: Properties{SubscriptionIDs: []uint32{42}, User: userKV},
			Subscriptions: []Subscription{
				{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
				{Filter: "$share/g/t", QoS: 2, RetainAsPublished: true, RetainHandling: 2},
				{Filter: "x"},
			}}},

		// ----------------------------------------------------------- SUBACK
		{"SUBACK 3.1.1", V311, b(
			"90",          // SUBACK
			"06",          // remaining length 6
			"0001",        // packet id 1
			"00 01 02 80", // granted QoS 0, 1, 2, failure
		), &Suback{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS1, GrantedQoS2, V3SubackFailure}}},
		{"SUBACK 3.1", V31, b("90", "04", "0001", "02 00"), &Suback{PacketID: 1, ReasonCodes: []ReasonCode{GrantedQoS2, GrantedQoS0}}},
		{"SUBACK 5.0 one code", V5, b(
			"90",   // SUBACK
			"04",   // remaining length 4
			"0003", // packet id 3
			"00",   // property length 0
			"00",   // granted QoS 0
		), &Suback{PacketID: 3, ReasonCodes: []ReasonCode{GrantedQoS0}}},
		{"SUBACK 5.0 every code with reason string", V5, b(
			"90",                                  // SUBACK
			"19",                                  // remaining length 25
			"0002",                                // packet id 2
			"0a",                                  // property length 10
			"1f 0007 7061727469616c",              // reason string "partial"
			"00 01 02 80 83 87 8f 91 97 9e a1 a2", // the twelve codes of table 3-8
		), &Suback{PacketID: 2, Properties: Properties{ReasonString: "partial"}, ReasonCodes: []ReasonCode{
			GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError, ImplementationSpecificError, NotAuthorized,
			TopicFilterInvalid, PacketIdentifierInUse, QuotaExceeded, SharedSubscriptionsNotSupported,
			SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported,
		}}},

		// ------------------------------------------------------ UNSUBSCRIBE
		{"UNSUBSCRIBE 3.1.1", V311, b(
			"a2",          // UNSUBSCRIBE, flags 0010
			"0a",          // remaining length 10
			"0001",        // packet id 1
			"0003 612f62", // filter "a/b"
			"0001 23",     // filter "#"
		), &Unsubscribe{PacketID: 1, Filters: []string{"a/b", "#"}}},
		{"UNSUBSCRIBE 3.1", V31, b("a2", "05", "0001", "0001 74"), &Unsubscribe{PacketID: 1, Filters: []string{"t"}}},
		{"UNSUBSCRIBE 5.0", V5, b(
			"a2",                 // UNSUBSCRIBE
			"0f",                 // remaining length 15
			"0002",               // packet id 2
			"07",                 // property length 7
			"26 0001 6b 0001 76", // user property k=v
			"0003 612f62",        // filter "a/b"
		), &Unsubscribe{PacketID: 2, Properties: Properties{User: userKV}, Filters: []string{"a/b"}}},

		// --------------------------------------------------------- UNSUBACK
		{"UNSUBACK 3.1.1", V311, b(
			"b0",   // UNSUBACK
			"02",   // remaining length 2
			"0001", // packet id 1; no payload in 3.1.1
		), &Unsuback{PacketID: 1}},
		{"UNSUBACK 3.1", V31, b("b0", "02", "0001"), &Unsuback{PacketID: 1}},
		{"UNSUBACK 5.0 every code", V5, b(
			"b0",                   // UNSUBACK
			"0a",                   // remaining length 10
			"0001",                 // packet id 1
			"00",                   // property length 0
			"00 11 80 83 87 8f 91", // the seven codes of table 3-9
		), &Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{Success, NoSubscriptionExisted, UnspecifiedError,
			ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse}}},
		{"UNSUBACK 5.0 reason string", V5, b(
			"b0",           // UNSUBACK
			"09",           // remaining length 9
			"0002",         // packet id 2
			"05",           // property length 5
			"1f 0002 6e6f", // reason string "no"
			"11",           // no subscription existed
		), &Unsuback{PacketID: 2, Properties: Properties{ReasonString: "no"}, ReasonCodes: []ReasonCode{NoSubscriptionExisted}}},

		// ------------------------------------------------ PINGREQ PINGRESP
		{"PINGREQ 3.1", V31, b("c0", "00"), &Pingreq{}},
		{"PINGREQ 3.1.1", V311, b("c0", "00"), &Pingreq{}},
		{"PINGREQ 5.0", V5, b("c0", "00"), &Pingreq{}},
		{"PINGRESP 3.1", V31, b("d0", "00"), &Pingresp{}},
		{"PINGRESP 3.1.1", V311, b("d0", "00"), &Pingresp{}},
		{"PINGRESP 5.0", V5, b("d0", "00"), &Pingresp{}},

		// ------------------------------------------------------- DISCONNECT
		{"DISCONNECT 3.1", V31, b("e0", "00"), &Disconnect{}},
		{"DISCONNECT 3.1.1", V311, b("e0", "00"), &Disconnect{}},
		{"DISCONNECT 5.0 empty", V5, b(
			"e0", // DISCONNECT
			"00", // remaining length 0: normal disconnection, no properties
		), &Disconnect{}},
		{"DISCONNECT 5.0 reason code only", V5, b(
			"e0", // DISCONNECT
			"01", // remaining length 1
			"04", // disconnect with will message; property length left off
		), &Disconnect{ReasonCode: DisconnectWithWill}},
		{"DISCONNECT 5.0 session taken over", V5, b("e0", "01", "8e"), &Disconnect{ReasonCode: SessionTakenOver}},
		{"DISCONNECT 5.0 session expiry 0 and reason string", V5, b(
			"e0",             // DISCONNECT
			"0d",             // remaining length 13
			"00",             // normal disconnection: written because properties follow
			"0b",             // property length 11
			"11 00000000",    // session expiry 0 (explicit)
			"1f 0003 627965", // reason string "bye"
		), &Disconnect{Properties: marked(Properties{ReasonString: "bye"}, PropSessionExpiry)}},
		{"DISCONNECT 5.0 server reference", V5, b(
			"e0",                 // DISCONNECT
			"0a",                 // remaining length 10
			"9c",                 // use another server
			"08",                 // property length 8
			"1c 0005 6f74686572", // server reference "other"
		), &Disconnect{ReasonCode: UseAnotherServer, Properties: Properties{ServerReference: "other"}}},

		// ------------------------------------------------------------- AUTH
		{"AUTH 5.0 empty", V5, b(
			"f0", // AUTH
			"00", // remaining length 0: success, no properties
		), &Auth{}},
		{"AUTH 5.0 continue authentication", V5, b(
			"f0",                 // AUTH
			"11",                 // remaining length 17
			"18",                 // continue authentication
			"0f",                 // property length 15
			"15 0005 534352414d", // auth method "SCRAM"
			"16 0004 01020304",   // auth data 01 02 03 04
		), &Auth{ReasonCode: ContinueAuthentication, Properties: Properties{AuthMethod: "SCRAM", AuthData: []byte{1, 2, 3, 4}}}},
		{"AUTH 5.0 re-authenticate", V5, b(
			"f0",                 // AUTH
			"11",                 // remaining length 17
			"19",                 // re-authenticate
			"0f",                 // property length 15
			"15 0001 6d",         // auth method "m"
			"1f 0001 72",         // reason string "r"
			"26 0001 6b 0001 76", // user property k=v
		), &Auth{ReasonCode: ReAuthenticate, Properties: Properties{AuthMethod: "m", ReasonString: "r", User: userKV}}},
	}
}

// readerVersion is the Version a Reader (or Decode) needs for tc: 0 for a
// CONNECT, which carries its own version.
func readerVersion(tc wireCase) Version {
	if tc.pkt.Type() == CONNECT {
		return 0
	}
	return tc.v
}

func TestWireBytes(t *testing.T) {
	seen := map[Type]map[Version]bool{}
	for _, tc := range wireCases() {
		t.Run(tc.name, func(t *testing.T) {
			if seen[tc.pkt.Type()] == nil {
				seen[tc.pkt.Type()] = map[Version]bool{}
			}
			seen[tc.pkt.Type()][tc.v] = true

			// Encode the value as written (zero-valued properties marked,
			// nothing else) and compare byte for byte.
			got, err := tc.pkt.Append(nil, tc.v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, tc.wire) {
				t.Fatalf("Append:\n got  %x\n want %x", got, tc.wire)
			}
			// Appending after existing bytes keeps them and adds the same.
			prefix := []byte("prefix")
			got, err = tc.pkt.Append(prefix, tc.v)
			if err != nil || !bytes.Equal(got, cat(prefix, tc.wire)) {
				t.Fatalf("Append after a prefix: %x, %v", got, err)
			}
			// The Writer writes the same bytes in one Write.
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.Version = tc.v
			if err := w.WritePacket(tc.pkt); err != nil {
				t.Fatalf("WritePacket: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), tc.wire) {
				t.Fatalf("WritePacket:\n got  %x\n want %x", buf.Bytes(), tc.wire)
			}
			if w.Version != tc.v {
				t.Fatalf("Writer.Version = %v after writing, want %v", w.Version, tc.v)
			}

			// The decoded value carries a presence mark for every property
			// on the wire.
			want := tc.pkt
			markPresent(want)

			// Decode: the packet, and the count of bytes it took even with
			// more data behind it.
			p, n, err := Decode(readerVersion(tc), append(append([]byte(nil), tc.wire...), 0xe0, 0x00))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(tc.wire) {
				t.Fatalf("Decode took %d bytes, want %d", n, len(tc.wire))
			}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("Decode:\n got  %#v\n want %#v", p, want)
			}

			// Reader.
			r := NewReader(bytes.NewReader(tc.wire))
			r.Version = readerVersion(tc)
			p, err = r.ReadPacket()
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("ReadPacket:\n got  %#v\n want %#v", p, want)
			}
			if r.Version != tc.v {
				t.Fatalf("Reader.Version = %v after the packet, want %v", r.Version, tc.v)
			}
			if _, err := r.ReadPacket(); err != io.EOF {
				t.Fatalf("ReadPacket at end of stream: %v, want io.EOF", err)
			}

			// Re-encoding the decoded packet gives the wire bytes again.
			again, err := p.Append(nil, tc.v)
			if err != nil || !bytes.Equal(again, tc.wire) {
				t.Fatalf("re-encode of the decoded packet:\n got  %x (%v)\n want %x", again, err, tc.wire)
			}
		})
	}

	// Every packet type in every version that has it.
	for typ := CONNECT; typ <= AUTH; typ++ {
		for _, v := range []Version{V31, V311, V5} {
			if typ == AUTH && v != V5 {
				continue
			}
			if !seen[typ][v] {
				t.Errorf("no byte-exact case for %v in %v", typ, v)
			}
		}
	}
}

// TestWireBytesStream reads every case of one version back to back from
// one stream, as a connection would see them.
func TestWireBytesStream(t *testing.T) {
	for _, v := range []Version{V31, V311, V5} {
		var stream []byte
		var want []Packet
		for _, tc := range wireCases() {
			if tc.v != v || tc.pkt.Type() == CONNECT {
				continue
			}
			stream = append(stream, tc.wire...)
			markPresent(tc.pkt)
			want = append(want, tc.pkt)
		}
		r := NewReader(bytes.NewReader(stream))
		r.Version = v
		for i, w := range want {
			p, err := r.ReadPacket()
			if err != nil {
				t.Fatalf("%v: packet %d (%v): %v", v, i, w.Type(), err)
			}
			if !reflect.DeepEqual(p, w) {
				t.Fatalf("%v: packet %d:\n got  %#v\n want %#v", v, i, p, w)
			}
		}
		if _, err := r.ReadPacket(); err != io.EOF {
			t.Fatalf("%v: at end: %v, want io.EOF", v, err)
		}
		off := 0
		for i, w := range want {
			p, n, err := Decode(v, stream[off:])
			if err != nil || !reflect.DeepEqual(p, w) {
				t.Fatalf("%v: Decode packet %d: %v\n got  %#v\n want %#v", v, i, err, p, w)
			}
			off += n
		}
		if off != len(stream) {
			t.Fatalf("%v: Decode consumed %d of %d bytes", v, off, len(stream))
		}
	}
}

// TestNonCanonical covers valid encodings that a sender may choose but
// that Append never produces: they decode to the same value as the short
// form, and re-encode to the short form.
func TestNonCanonical(t *testing.T) {
	cases := []struct {
		name      string
		v         Version
		wire      []byte
		pkt       Packet
		canonical []byte
	}{
		{"PUBACK 5.0 success written out", V5, b(
			"40", "03", // PUBACK, remaining length 3
			"0001", // packet id 1
			"00",   // success, property length left off
		), &Puback{PacketID: 1}, b("40 02 0001")},
		{"PUBACK 5.0 success and empty properties", V5, b(
			"40", "04", // PUBACK, remaining length 4
			"0001", // packet id 1
			"00",   // success
			"00",   // property length 0
		), &Puback{PacketID: 1}, b("40 02 0001")},
		{"PUBCOMP 5.0 code and empty properties", V5, b(
			"70", "04", "0009",
			"92", // packet identifier not found
			"00", // property length 0
		), &Pubcomp{PacketID: 9, ReasonCode: PacketIdentifierNotFound}, b("70 03 0009 92")},
		{"DISCONNECT 5.0 success written out", V5, b("e0", "01", "00"), &Disconnect{}, b("e0 00")},
		{"DISCONNECT 5.0 success and empty properties", V5, b("e0", "02", "00", "00"), &Disconnect{}, b("e0 00")},
		{"AUTH 5.0 success and empty properties", V5, b("f0", "02", "00", "00"), &Auth{}, b("f0 00")},
		{"PUBLISH 5.0 properties out of identifier order", V5, b(
			"30", "10", // PUBLISH QoS 0, remaining length 16
			"0001 74",            // topic "t"
			"0c",                 // property length 12
			"26 0001 6b 0001 76", // user property k=v first
			"02 0000003c",        // then message expiry 60
			"",                   // no payload
		), &Publish{Topic: "t", Properties: Properties{User: userKV, MessageExpiry: 60}},
			b("30 10 0001 74 0c 02 0000003c 26 0001 6b 0001 76")},
		{"CONNECT 5.0 user properties around another property", V5, b(
			"10", "20", // CONNECT, remaining length 32
			"0004 4d515454", "05", "00", "0000", // "MQTT" level 5, no flags, keep alive 0
			"13",                 // property length 19
			"26 0001 61 0001 31", // user a=1
			"11 0000000a",        // session expiry 10
			"26 0001 61 0001 32", // user a=2
			"0000",               // client id ""
		), &Connect{Version: V5, ProtocolName: "MQTT", Properties: Properties{SessionExpiry: 10,
			User: []UserProperty{{"a", "1"}, {"a", "2"}}}},
			b("10 20 0004 4d515454 05 00 0000 13 11 0000000a 26 0001 61 0001 31 26 0001 61 0001 32 0000")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.pkt
			markPresent(want)
			v := tc.v
			if tc.pkt.Type() == CONNECT {
				v = 0
			}
			p, n, err := Decode(v, tc.wire)
			if err != nil || n != len(tc.wire) || !reflect.DeepEqual(p, want) {
				t.Fatalf("Decode: %v, %d bytes\n got  %#v\n want %#v", err, n, p, want)
			}
			r := NewReader(bytes.NewReader(tc.wire))
			r.Version = v
			p, err = r.ReadPacket()
			if err != nil || !reflect.DeepEqual(p, want) {
				t.Fatalf("ReadPacket: %v\n got  %#v\n want %#v", err, p, want)
			}
			got, err := p.Append(nil, tc.v)
			if err != nil || !bytes.Equal(got, tc.canonical) {
				t.Fatalf("re-encode:\n got  %x (%v)\n want %x", got, err, tc.canonical)
			}
		})
	}
}

// TestVBIBoundaries checks the variable byte integer at every length
// boundary of section 1.5.5 / 2.2.3.
func TestVBIBoundaries(t *testing.T) {
	cases := []struct {
		x    uint32
		wire []byte
	}{
		{0, b("00")},
		{127, b("7f")},
		{128, b("8001")},
		{16383, b("ff7f")},
		{16384, b("808001")},
		{2097151, b("ffff7f")},
		{2097152, b("80808001")},
		{MaxRemainingLength, b("ffffff7f")},
	}
	for _, tc := range cases {
		if got := appendVBI(nil, tc.x); !bytes.Equal(got, tc.wire) {
			t.Errorf("appendVBI(%d) = %x, want %x", tc.x, got, tc.wire)
		}
		if n := vbiLen(int(tc.x)); n != len(tc.wire) {
			t.Errorf("vbiLen(%d) = %d, want %d", tc.x, n, len(tc.wire))
		}
		x, n, err := decodeVBI(append(append([]byte(nil), tc.wire...), 0x55))
		if err != nil || x != tc.x || n != len(tc.wire) {
			t.Errorf("decodeVBI(%x) = %d, %d, %v; want %d, %d", tc.wire, x, n, err, tc.x, len(tc.wire))
		}
	}
}

func TestReasonCodeNames(t *testing.T) {
	cases := []struct {
		c    ReasonCode
		t    Type
		v    Version
		want string
	}{
		{0x00, DISCONNECT, V5, "Normal disconnection"},
		{0x00, SUBACK, V5, "Granted QoS 0"},
		{0x00, SUBACK, V311, "Granted QoS 0"},
		{0x00, PUBACK, V5, "Success"},
		{0x00, AUTH, V5, "Success"},
		{0x00, CONNACK, V5, "Success"},
		{0x00, CONNACK, V311, "Connection Accepted"},
		{0x01, CONNACK, V311, "Connection Refused, unacceptable protocol version"},
		{0x04, CONNACK, V31, "Connection Refused, bad user name or password"},
		{0x05, CONNACK, V311, "Connection Refused, not authorized"},
		{0x87, CONNACK, V5, "Not authorized"},
		{0x01, SUBACK, V311, "Granted QoS 1"},
		{0x80, SUBACK, V311, "Failure"},
		{0x80, SUBACK, V5, "Unspecified error"},
		{0x04, DISCONNECT, V5, "Disconnect with Will Message"},
		{0x95, DISCONNECT, V5, "Packet too large"},
		{0x18, AUTH, V5, "Continue authentication"},
		{0x19, AUTH, V5, "Re-authenticate"},
	}
	for _, tc := range cases {
		if got := tc.c.Text(tc.t, tc.v); got != tc.want {
			t.Errorf("ReasonCode(0x%02x).Text(%v, %v) = %q, want %q", byte(tc.c), tc.t, tc.v, got, tc.want)
		}
	}
	names := map[ReasonCode]string{
		Success: "Success", GrantedQoS1: "Granted QoS 1", MalformedPacket: "Malformed Packet",
		ProtocolErrorCode: "Protocol Error", UnsupportedProtocolVersion: "Unsupported Protocol Version",
		TopicNameInvalid: "Topic Name invalid", PacketTooLarge: "Packet too large",
		WildcardSubscriptionsNotSupported: "Wildcard Subscriptions not supported",
		0x03:                              "Reason code 0x3",
		0xff:                              "Reason code 0xff",
	}
	for c, want := range names {
		if got := c.String(); got != want {
			t.Errorf("ReasonCode(0x%02x).String() = %q, want %q", byte(c), got, want)
		}
	}
	// Every code some packet allows has a name.
	for c := 0; c < 256; c++ {
		rc := ReasonCode(c)
		for typ := CONNACK; typ <= AUTH; typ++ {
			if rc.ValidFor(typ) && strings.HasPrefix(rc.String(), "Reason code") {
				t.Errorf("code 0x%02x is valid in %v but has no name", c, typ)
			}
		}
	}
	if !MalformedPacket.IsError() || Success.IsError() || GrantedQoS2.IsError() {
		t.Error("IsError")
	}
}

func TestNames(t *testing.T) {
	props := map[PropertyID]string{
		PropPayloadFormat: "PayloadFormat", PropMessageExpiry: "MessageExpiry", PropSubscriptionID: "SubscriptionID",
		PropWillDelay: "WillDelay", PropUser: "User", PropSharedSubAvailable: "SharedSubAvailable",
		0x04: "Property(0x4)", 0x2b: "Property(0x2b)", 0xff: "Property(0xff)",
	}
	for id, want := range props {
		if got := id.String(); got != want {
			t.Errorf("PropertyID(0x%02x).String() = %q, want %q", byte(id), got, want)
		}
	}
	types := map[Type]string{
		0: "RESERVED", CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
		PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK",
		UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP",
		DISCONNECT: "DISCONNECT", AUTH: "AUTH", 16: "TYPE(16)",
	}
	for typ, want := range types {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", byte(typ), got, want)
		}
	}
	versions := []struct {
		v          Version
		str, proto string
		valid      bool
	}{
		{V31, "3.1", "MQIsdp", true}, {V311, "3.1.1", "MQTT", true}, {V5, "5.0", "MQTT", true},
		{0, "level 0", "MQTT", false}, {6, "level 6", "MQTT", false},
	}
	for _, tc := range versions {
		if got := tc.v.String(); got != tc.str {
			t.Errorf("Version(%d).String() = %q, want %q", byte(tc.v), got, tc.str)
		}
		if got := tc.v.ProtocolName(); got != tc.proto {
			t.Errorf("Version(%d).ProtocolName() = %q, want %q", byte(tc.v), got, tc.proto)
		}
		if tc.v.Valid() != tc.valid {
			t.Errorf("Version(%d).Valid() = %t", byte(tc.v), !tc.valid)
		}
	}
	for typ := Type(0); typ < 20; typ++ {
		p := New(typ)
		if (p != nil) != (typ >= CONNECT && typ <= AUTH) {
			t.Errorf("New(%d) = %T", byte(typ), p)
		}
		if p != nil && p.Type() != typ {
			t.Errorf("New(%d).Type() = %v", byte(typ), p.Type())
		}
	}
}

func TestPacketString(t *testing.T) {
	// Zero values render without panicking.
	for typ := CONNECT; typ <= AUTH; typ++ {
		if s := New(typ).String(); !strings.HasPrefix(s, typ.String()) {
			t.Errorf("New(%v).String() = %q", typ, s)
		}
	}
	for _, tc := range wireCases() {
		s := tc.pkt.String()
		if !strings.HasPrefix(s, tc.pkt.Type().String()) {
			t.Errorf("%s: String() = %q, want the packet type first", tc.name, s)
		}
		if c, ok := tc.pkt.(*Connect); ok && len(c.Password) > 0 {
			if strings.Contains(s, string(c.Password)) || !strings.Contains(s, "password=<redacted>") {
				t.Errorf("%s: String() = %q does not redact the password", tc.name, s)
			}
		}
	}
	c := &Connect{Version: V5, ClientID: "me", Username: "alice", Password: []byte("hunter2"),
		Will: &Will{Topic: "w", Payload: []byte("hunter3"), Properties: Properties{WillDelay: 9}}}
	s := c.String()
	for _, want := range []string{`client="me"`, `user="alice"`, "password=<redacted>", `will{topic="w"`, "WillDelay:9"} {
		if !strings.Contains(s, want) {
			t.Errorf("Connect.String() = %q, missing %q", s, want)
		}
	}
	if strings.Contains(s, "hunter2") || strings.Contains(s, "hunter3") {
		t.Errorf("Connect.String() = %q leaks the password or will payload", s)
	}
	// An empty password that is present is still redacted, not shown.
	if s := (&Connect{Version: V5, PasswordFlag: true}).String(); !strings.Contains(s, "password=<redacted>") {
		t.Errorf("String() of a CONNECT with an empty password = %q", s)
	}

	p := &Properties{MessageExpiry: 60, User: []UserProperty{{"a", "b"}}}
	p.Mark(PropPayloadFormat)
	if got, want := p.String(), `{PayloadFormat:0 MessageExpiry:60 User:["a"="b"]}`; got != want {
		t.Errorf("Properties.String() = %s, want %s", got, want)
	}
	if got := (&Properties{}).String(); got != "{}" {
		t.Errorf("empty Properties.String() = %s", got)
	}
	pub := &Publish{Topic: "t", QoS: 1, PacketID: 3, Retain: true, Payload: bytes.Repeat([]byte("z"), 100)}
	if got := pub.String(); !strings.Contains(got, "id=3") || !strings.Contains(got, "payload=100B") ||
		!strings.Contains(got, " retain") || !strings.Contains(got, "...") {
		t.Errorf("Publish.String() = %q", got)
	}
	if got, want := (&Suback{PacketID: 2, ReasonCodes: []ReasonCode{0, 0x80}}).String(), "SUBACK id=2 codes=[0x00 0x80]"; got != want {
		t.Errorf("Suback.String() = %q, want %q", got, want)
	}
	if got, want := (&Disconnect{ReasonCode: PacketTooLarge}).String(), "DISCONNECT code=0x95(Packet too large)"; got != want {
		t.Errorf("Disconnect.String() = %q, want %q", got, want)
	}
}

// TestPropertyMarks checks Mark / Unmark / Has / IsZero on their own.
func TestPropertyMarks(t *testing.T) {
	var p Properties
	if !p.IsZero() || p.Has(PropSessionExpiry) {
		t.Fatal("zero Properties has a property")
	}
	p.Mark(PropSessionExpiry)
	if p.IsZero() || !p.Has(PropSessionExpiry) {
		t.Fatal("Mark did not mark")
	}
	p.Unmark(PropSessionExpiry)
	if !p.IsZero() {
		t.Fatal("Unmark did not unmark")
	}
	p.SessionExpiry = 5
	p.Unmark(PropSessionExpiry)
	if !p.Has(PropSessionExpiry) {
		t.Fatal("a non-zero field is present whatever its mark")
	}
	// Identifiers that are not properties cannot be marked.
	var q Properties
	q.Mark(0x04)
	q.Mark(0)
	q.Mark(0xff)
	if !q.IsZero() {
		t.Fatalf("marking a non-property made the set non-empty: %s", q.String())
	}
	// Properties not allowed in a packet are not encoded.
	pub := &Publish{Topic: "t", Properties: Properties{SessionExpiry: 7, ReasonString: "r"}}
	got, err := pub.Append(nil, V5)
	if err != nil || !bytes.Equal(got, b("30 04 0001 74 00")) {
		t.Fatalf("PUBLISH with properties it may not carry: %x, %v", got, err)
	}
	// Properties are not encoded before 5.0.
	got, err = (&Puback{PacketID: 1, ReasonCode: 0, Properties: Properties{ReasonString: "r"}}).Append(nil, V311)
	if err != nil || !bytes.Equal(got, b("40 02 0001")) {
		t.Fatalf("3.1.1 PUBACK with properties: %x, %v", got, err)
	}
}
