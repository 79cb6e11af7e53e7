package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// errCase is one invalid packet: the wire bytes (exactly one packet, its
// remaining length matching the bytes given), the version the stream is
// read with (0: before CONNECT), and the reason code and normative id the
// decoder must report.
type errCase struct {
	name string
	v    Version
	wire []byte
	code ReasonCode
	spec string
}

// Bodies reused below.
const (
	mqtt   = "0004 4d515454" // protocol name "MQTT"
	mqisdp = "0006 4d5149736470"
	test   = "0004 74657374" // client id "test"
)

func errCases() []errCase {
	const (
		mal = MalformedPacket
		pe  = ProtocolErrorCode
	)
	return []errCase{
		// ------------------------------------------- fixed header flags
		{"CONNECT flags 0001 (3.1.1 body)", 0, b("11", "10", mqtt, "04", "02", "003c", test), mal, "v3 MQTT-2.2.2-1"},
		{"CONNECT flags 1000 (5.0 body)", 0, b("18", "11", mqtt, "05", "02", "003c", "00", test), mal, "v3 MQTT-2.2.2-1"},
		{"CONNACK flags 0001 3.1.1", V311, b("21", "02", "00", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"CONNACK flags 0001 5.0", V5, b("21", "03", "00", "00", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"PUBACK flags 0001 3.1.1", V311, b("41", "02", "0001"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBACK flags 1000 5.0", V5, b("48", "02", "0001"), mal, "v5 MQTT-2.1.3-1"},
		{"PUBREC flags 0010 3.1.1", V311, b("52", "02", "0001"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBREL flags 0000 3.1.1", V311, b("60", "02", "0001"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBREL flags 0000 5.0", V5, b("60", "02", "0001"), mal, "v5 MQTT-2.1.3-1"},
		{"PUBREL flags 0011 5.0", V5, b("63", "02", "0001"), mal, "v5 MQTT-2.1.3-1"},
		{"PUBCOMP flags 0010 5.0", V5, b("72", "02", "0001"), mal, "v5 MQTT-2.1.3-1"},
		{"SUBSCRIBE flags 0000 3.1.1", V311, b("80", "06", "0001", "0001 74", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"SUBSCRIBE flags 0000 5.0", V5, b("80", "07", "0001", "00", "0001 74", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"SUBSCRIBE flags 1010 3.1.1", V311, b("8a", "06", "0001", "0001 74", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"SUBSCRIBE flags 1010 5.0", V5, b("8a", "07", "0001", "00", "0001 74", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"PUBREL flags 1010 3.1.1", V311, b("6a", "02", "0005"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBREL flags 1010 5.0", V5, b("6a", "02", "0005"), mal, "v5 MQTT-2.1.3-1"},
		{"UNSUBSCRIBE flags 1010 3.1.1", V311, b("aa", "05", "0001", "0001 74"), mal, "v3 MQTT-2.2.2-1"},
		{"UNSUBSCRIBE flags 1010 5.0", V5, b("aa", "06", "0001", "00", "0001 74"), mal, "v5 MQTT-2.1.3-1"},
		// MQTT 3.1 accepts DUP (1010) on these, but its QoS is still 1.
		{"PUBREL flags 1000 3.1", V31, b("68", "02", "0005"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBREL flags 1011 3.1", V31, b("6b", "02", "0005"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBREL flags 1100 3.1", V31, b("6c", "02", "0005"), mal, "v3 MQTT-2.2.2-1"},
		{"SUBSCRIBE flags 1000 3.1", V31, b("88", "06", "0001", "0001 74", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"UNSUBSCRIBE flags 1110 3.1", V31, b("ae", "05", "0001", "0001 74"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBACK flags 1000 3.1", V31, b("48", "02", "0001"), mal, "v3 MQTT-2.2.2-1"},
		{"PUBREC flags 1010 3.1", V31, b("5a", "02", "0001"), mal, "v3 MQTT-2.2.2-1"},
		{"SUBACK flags 0010 3.1.1", V311, b("92", "03", "0001", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"UNSUBSCRIBE flags 0000 3.1.1", V311, b("a0", "05", "0001", "0001 74"), mal, "v3 MQTT-2.2.2-1"},
		{"UNSUBSCRIBE flags 0000 5.0", V5, b("a0", "06", "0001", "00", "0001 74"), mal, "v5 MQTT-2.1.3-1"},
		{"UNSUBACK flags 0001 3.1.1", V311, b("b1", "02", "0001"), mal, "v3 MQTT-2.2.2-1"},
		{"PINGREQ flags 0001 3.1.1", V311, b("c1", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"PINGREQ flags 1000 5.0", V5, b("c8", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"PINGRESP flags 0010 5.0", V5, b("d2", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"DISCONNECT flags 0001 3.1.1", V311, b("e1", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"DISCONNECT flags 0010 5.0", V5, b("e2", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"AUTH flags 0001 5.0", V5, b("f1", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"AUTH flags 1000 5.0", V5, b("f8", "00"), mal, "v5 MQTT-2.1.3-1"},

		// ------------------------------------------- reserved packet types
		{"type 0 3.1.1", V311, b("00", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"type 0 5.0", V5, b("00", "00"), mal, "v5 MQTT-2.1.3-1"},
		{"type 0 before CONNECT", 0, b("00", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"AUTH in 3.1.1", V311, b("f0", "00"), mal, "v3 MQTT-2.2.2-1"},
		{"AUTH in 3.1", V31, b("f0", "00"), mal, "v3 MQTT-2.2.2-1"},

		// ------------------------------------------- PUBLISH flags
		{"PUBLISH QoS 3 3.1.1", V311, b("36", "05", "0001 74", "0001"), mal, "v3 MQTT-3.3.1-4"},
		{"PUBLISH QoS 3 5.0", V5, b("36", "06", "0001 74", "0001", "00"), mal, "v5 MQTT-3.3.1-4"},
		{"PUBLISH QoS 3 dup retain 5.0", V5, b("3f", "06", "0001 74", "0001", "00"), mal, "v5 MQTT-3.3.1-4"},
		{"PUBLISH DUP on QoS 0 3.1.1", V311, b("38", "03", "0001 74"), mal, "v3 MQTT-3.3.1-2"},
		{"PUBLISH DUP on QoS 0 5.0", V5, b("39", "04", "0001 74", "00"), mal, "v5 MQTT-3.3.1-2"},

		// ------------------------------------------- packet identifier 0
		{"PUBLISH QoS 1 id 0 3.1.1", V311, b("32", "05", "0001 74", "0000"), pe, "v3 MQTT-2.3.1-1"},
		{"PUBLISH QoS 2 id 0 5.0", V5, b("34", "06", "0001 74", "0000", "00"), pe, "v5 MQTT-2.2.1-3"},
		{"SUBSCRIBE id 0 3.1.1", V311, b("82", "06", "0000", "0001 74", "00"), pe, "v3 MQTT-2.3.1-1"},
		{"SUBSCRIBE id 0 5.0", V5, b("82", "07", "0000", "00", "0001 74", "00"), pe, "v5 MQTT-2.2.1-3"},
		{"UNSUBSCRIBE id 0 3.1.1", V311, b("a2", "05", "0000", "0001 74"), pe, "v3 MQTT-2.3.1-1"},
		{"UNSUBSCRIBE id 0 5.0", V5, b("a2", "06", "0000", "00", "0001 74"), pe, "v5 MQTT-2.2.1-3"},
		{"PUBACK id 0 3.1.1", V311, b("40", "02", "0000"), pe, "v3 MQTT-2.3.1-6"},
		{"PUBACK id 0 5.0", V5, b("40", "02", "0000"), pe, "v5 MQTT-2.2.1-5"},
		{"PUBREC id 0 5.0", V5, b("50", "03", "0000", "00"), pe, "v5 MQTT-2.2.1-5"},
		{"PUBREL id 0 3.1.1", V311, b("62", "02", "0000"), pe, "v3 MQTT-2.3.1-6"},
		{"PUBCOMP id 0 5.0", V5, b("70", "02", "0000"), pe, "v5 MQTT-2.2.1-5"},
		{"SUBACK id 0 3.1.1", V311, b("90", "03", "0000", "00"), pe, "v3 MQTT-2.3.1-7"},
		{"SUBACK id 0 5.0", V5, b("90", "04", "0000", "00", "00"), pe, "v5 MQTT-2.2.1-6"},
		{"UNSUBACK id 0 3.1.1", V311, b("b0", "02", "0000"), pe, "v3 MQTT-2.3.1-7"},
		{"UNSUBACK id 0 5.0", V5, b("b0", "04", "0000", "00", "00"), pe, "v5 MQTT-2.2.1-6"},

		// ------------------------------------------- remaining length
		{"remaining length of 5 bytes 3.1.1", V311, b("30", "ffffffff7f"), mal, "noid:vbi-5-bytes"},
		{"remaining length of 5 bytes 5.0", V5, b("30", "ffffffff7f"), mal, "noid:vbi-5-bytes"},
		{"remaining length of 5 bytes CONNECT", 0, b("10", "8080808001"), mal, "noid:vbi-5-bytes"},
		{"remaining length 80 00 3.1.1", V311, b("c0", "8000"), mal, "v5 MQTT-1.5.5-1"},
		{"remaining length 80 00 5.0", V5, b("c0", "8000"), mal, "v5 MQTT-1.5.5-1"},
		{"remaining length 3 in three bytes 5.0", V5, b("30", "838000", "0001 74"), mal, "v5 MQTT-1.5.5-1"},
		{"property length 80 00", V5, b("30", "05", "0001 74", "8000"), mal, "v5 MQTT-1.5.5-1"},
		{"subscription id 81 00", V5, b("30", "07", "0001 74", "03", "0b 8100"), mal, "v5 MQTT-1.5.5-1"},

		{"remaining length short PUBACK 3.1.1", V311, b("40", "01", "00"), mal, "noid:truncated"},
		{"remaining length short PUBACK 5.0", V5, b("40", "01", "00"), mal, "noid:truncated"},
		{"remaining length short CONNACK 3.1.1", V311, b("20", "01", "00"), mal, "noid:truncated"},
		{"remaining length short CONNECT keep alive", 0, b("10", "09", mqtt, "04", "02", "00"), mal, "noid:truncated"},
		{"remaining length short CONNECT client id", 0, b("10", "0e", mqtt, "04", "02", "003c", "0004 7465"), mal, "noid:truncated"},
		{"remaining length short PUBLISH topic 3.1.1", V311, b("30", "02", "0003"), mal, "noid:truncated"},
		{"remaining length short PUBLISH packet id 3.1.1", V311, b("32", "04", "0001 74", "00"), mal, "noid:truncated"},
		{"remaining length short PUBLISH property length 5.0", V5, b("30", "03", "0001 74"), mal, "noid:truncated"},
		{"remaining length short SUBSCRIBE options 3.1.1", V311, b("82", "05", "0001", "0001 74"), mal, "noid:truncated"},
		{"remaining length short SUBSCRIBE options 5.0", V5, b("82", "06", "0001", "00", "0001 74"), mal, "noid:truncated"},
		{"remaining length short UNSUBSCRIBE filter 3.1.1", V311, b("a2", "04", "0001", "0005"), mal, "noid:truncated"},
		{"remaining length short CONNECT v5 properties", 0, b("10", "0c", mqtt, "05", "02", "003c", "05", "11"), mal, "noid:truncated"},

		{"remaining length long PUBACK 3.1.1", V311, b("40", "03", "0001", "00"), mal, "noid:trailing-bytes"},
		{"remaining length long PUBACK 5.0", V5, b("40", "05", "0001", "00", "00", "ff"), mal, "noid:trailing-bytes"},
		{"remaining length long CONNACK 3.1.1", V311, b("20", "03", "00", "00", "00"), mal, "noid:trailing-bytes"},
		{"remaining length long CONNACK 5.0", V5, b("20", "04", "00", "00", "00", "00"), mal, "noid:trailing-bytes"},
		{"remaining length long CONNECT (user name flag clear, field present)", 0, b("10", "13", mqtt, "04", "02", "003c", test, "0001 75"), mal, "noid:trailing-bytes"},
		{"remaining length long DISCONNECT 3.1.1", V311, b("e0", "01", "00"), mal, "noid:trailing-bytes"},
		{"remaining length long UNSUBACK 3.1.1", V311, b("b0", "03", "0001", "00"), mal, "noid:trailing-bytes"},
		{"remaining length long AUTH", V5, b("f0", "03", "00", "00", "ff"), mal, "noid:trailing-bytes"},
		{"PINGREQ remaining length 1 3.1.1", V311, b("c0", "01", "00"), mal, "noid:trailing-bytes"},
		{"PINGREQ remaining length 1 5.0", V5, b("c0", "01", "00"), mal, "noid:trailing-bytes"},
		{"PINGRESP remaining length 2 3.1.1", V311, b("d0", "02", "0000"), mal, "noid:trailing-bytes"},

		// ------------------------------------------- UTF-8
		{"topic bad continuation byte 3.1.1", V311, b("30", "04", "0002 c328"), mal, "v3 MQTT-1.5.3-1"},
		{"topic bad continuation byte 5.0", V5, b("30", "05", "0002 c328", "00"), mal, "v5 MQTT-1.5.4-1"},
		{"topic surrogate ED A0 80 3.1.1", V311, b("30", "05", "0003 eda080"), mal, "v3 MQTT-1.5.3-1"},
		{"topic surrogate ED A0 80 5.0", V5, b("30", "06", "0003 eda080", "00"), mal, "v5 MQTT-1.5.4-1"},
		{"topic overlong C0 AF 5.0", V5, b("30", "05", "0002 c0af", "00"), mal, "v5 MQTT-1.5.4-1"},
		{"topic above U+10FFFF 5.0", V5, b("30", "07", "0004 f4908080", "00"), mal, "v5 MQTT-1.5.4-1"},
		{"topic truncated sequence 3.1.1", V311, b("30", "05", "0003 61e282"), mal, "v3 MQTT-1.5.3-1"},
		{"topic U+0000 3.1.1", V311, b("30", "05", "0003 610062"), mal, "v3 MQTT-1.5.3-2"},
		{"topic U+0000 5.0", V5, b("30", "06", "0003 610062", "00"), mal, "v5 MQTT-1.5.4-2"},
		{"topic U+0000 after 8 ASCII bytes 3.1.1", V311, b("30", "0c", "000a 6162636465666768 0069"), mal, "v3 MQTT-1.5.3-2"},
		{"topic U+0000 after a 2-byte character 5.0", V5, b("30", "06", "0003 c3a900", "00"), mal, "v5 MQTT-1.5.4-2"},
		{"client id bad continuation byte 3.1.1", 0, b("10", "0d", mqtt, "04", "02", "003c", "0001 ff"), mal, "v3 MQTT-1.5.3-1"},
		{"client id bad continuation byte 3.1", 0, b("10", "0f", mqisdp, "03", "02", "003c", "0001 ff"), mal, "v3 MQTT-1.5.3-1"},
		{"client id bad continuation byte 5.0", 0, b("10", "0e", mqtt, "05", "02", "003c", "00", "0001 ff"), mal, "v5 MQTT-1.5.4-1"},
		{"client id surrogate 5.0", 0, b("10", "10", mqtt, "05", "02", "003c", "00", "0003 edbfbf"), mal, "v5 MQTT-1.5.4-1"},
		{"user name U+0000 3.1.1", 0, b("10", "13", mqtt, "04", "82", "003c", test, "0001 00"), mal, "v3 MQTT-1.5.3-2"},
		{"will topic bad UTF-8 3.1.1", 0, b("10", "15", mqtt, "04", "06", "003c", test, "0001 ff", "0000"), mal, "v3 MQTT-1.5.3-1"},
		{"user property name bad UTF-8", V5, b("30", "0b", "0001 74", "07", "26 0001 ff 0001 76"), mal, "v5 MQTT-1.5.4-1"},
		{"user property value U+0000", V5, b("30", "0b", "0001 74", "07", "26 0001 6b 0001 00"), mal, "v5 MQTT-1.5.4-2"},
		{"reason string surrogate", V5, b("40", "0a", "0001", "80", "06", "1f 0003 eda080"), mal, "v5 MQTT-1.5.4-1"},
		{"SUBSCRIBE filter bad UTF-8 3.1.1", V311, b("82", "06", "0001", "0001 80", "00"), mal, "v3 MQTT-1.5.3-1"},
		{"UNSUBSCRIBE filter U+0000 5.0", V5, b("a2", "06", "0001", "00", "0001 00"), mal, "v5 MQTT-1.5.4-2"},

		// ------------------------------------------- PUBLISH topic
		{"PUBLISH topic with + 3.1.1", V311, b("30", "05", "0003 612f2b"), TopicNameInvalid, "v3 MQTT-3.3.2-2"},
		{"PUBLISH topic # 3.1.1", V311, b("30", "03", "0001 23"), TopicNameInvalid, "v3 MQTT-3.3.2-2"},
		{"PUBLISH topic with + 5.0", V5, b("30", "06", "0003 612f2b", "00"), TopicNameInvalid, "v5 MQTT-3.3.2-2"},
		{"PUBLISH topic # QoS 1 5.0", V5, b("32", "06", "0001 23", "0001", "00"), TopicNameInvalid, "v5 MQTT-3.3.2-2"},
		{"PUBLISH topic with # and an alias 5.0", V5, b("30", "07", "0001 23", "03", "23 0001"), TopicNameInvalid, "v5 MQTT-3.3.2-2"},
		{"PUBLISH empty topic 3.1.1", V311, b("30", "02", "0000"), pe, "v3 MQTT-4.7.3-1"},
		{"PUBLISH empty topic 3.1", V31, b("30", "04", "0000", "6869"), pe, "v3 MQTT-4.7.3-1"},
		{"PUBLISH empty topic without alias 5.0", V5, b("30", "03", "0000", "00"), pe, "v5 noid:empty-topic-no-alias"},

		// ------------------------------------------- SUBSCRIBE / UNSUBSCRIBE
		{"SUBSCRIBE no filters 3.1.1", V311, b("82", "02", "0001"), pe, "v3 MQTT-3.8.3-3"},
		{"SUBSCRIBE no filters 5.0", V5, b("82", "03", "0001", "00"), pe, "v5 MQTT-3.8.3-2"},
		{"UNSUBSCRIBE no filters 3.1.1", V311, b("a2", "02", "0001"), pe, "v3 MQTT-3.10.3-2"},
		{"UNSUBSCRIBE no filters 5.0", V5, b("a2", "03", "0001", "00"), pe, "v5 MQTT-3.10.3-2"},
		// Empty filters: 3.1 and 3.1.1 close; 5.0 answers 0x8F per filter (v31dup_test.go).
		{"UNSUBSCRIBE empty filter 3.1.1", V311, b("a2", "07", "1234", "0000", "0001 71"), pe, "v3 MQTT-4.7.3-1"},
		{"UNSUBSCRIBE empty second filter 3.1.1", V311, b("a2", "07", "1234", "0001 71", "0000"), pe, "v3 MQTT-4.7.3-1"},
		{"UNSUBSCRIBE empty filter 3.1", V31, b("a2", "04", "0001", "0000"), pe, "v3 MQTT-4.7.3-1"},
		{"SUBSCRIBE empty filter 3.1.1", V311, b("82", "05", "0001", "0000", "01"), pe, "v3 MQTT-4.7.3-1"},
		{"SUBSCRIBE empty second filter 3.1.1", V311, b("82", "09", "0001", "0001 74", "00", "0000", "01"), pe, "v3 MQTT-4.7.3-1"},
		{"SUBSCRIBE empty filter 3.1", V31, b("82", "05", "0001", "0000", "01"), pe, "v3 MQTT-4.7.3-1"},
		{"SUBSCRIBE reserved bit 2 3.1.1", V311, b("82", "06", "0001", "0001 74", "04"), mal, "v3 MQTT-3.8.3-4"},
		{"SUBSCRIBE reserved bit 7 3.1.1", V311, b("82", "06", "0001", "0001 74", "81"), mal, "v3 MQTT-3.8.3-4"},
		{"SUBSCRIBE reserved bit in second filter 3.1.1", V311, b("82", "0a", "0001", "0001 74", "01", "0001 75", "10"), mal, "v3 MQTT-3.8.3-4"},
		{"SUBSCRIBE reserved bit 6 5.0", V5, b("82", "07", "0001", "00", "0001 74", "40"), mal, "v5 MQTT-3.8.3-5"},
		{"SUBSCRIBE reserved bit 7 5.0", V5, b("82", "07", "0001", "00", "0001 74", "80"), mal, "v5 MQTT-3.8.3-5"},
		{"SUBSCRIBE QoS 3 3.1.1", V311, b("82", "06", "0001", "0001 74", "03"), mal, "v3 MQTT-3.8.3-4"},
		{"SUBSCRIBE QoS 3 5.0", V5, b("82", "07", "0001", "00", "0001 74", "03"), pe, "v5 noid:sub-qos3"},
		{"SUBSCRIBE retain handling 3 5.0", V5, b("82", "07", "0001", "00", "0001 74", "30"), pe, "v5 noid:retain-handling-3"},
		{"SUBSCRIBE no local on $share 5.0", V5, b("82", "10", "0001", "00", "000a 247368617265 2f672f74", "04"), pe, "v5 MQTT-3.8.3-4"},

		// ------------------------------------------- CONNECT
		{"CONNECT reserved flag 3.1.1", 0, b("10", "10", mqtt, "04", "03", "003c", test), mal, "v3 MQTT-3.1.2-3"},
		{"CONNECT reserved flag 5.0", 0, b("10", "11", mqtt, "05", "03", "003c", "00", test), mal, "v5 MQTT-3.1.2-3"},
		{"CONNECT will QoS 1 without will flag 3.1.1", 0, b("10", "10", mqtt, "04", "0a", "003c", test), mal, "v3 MQTT-3.1.2-13"},
		{"CONNECT will QoS 2 without will flag 5.0", 0, b("10", "11", mqtt, "05", "12", "003c", "00", test), mal, "v5 MQTT-3.1.2-11"},
		{"CONNECT will retain without will flag 3.1.1", 0, b("10", "10", mqtt, "04", "22", "003c", test), mal, "v3 MQTT-3.1.2-15"},
		{"CONNECT will retain without will flag 5.0", 0, b("10", "11", mqtt, "05", "22", "003c", "00", test), mal, "v5 MQTT-3.1.2-13"},
		{"CONNECT will QoS 3 3.1.1", 0, b("10", "15", mqtt, "04", "1e", "003c", test, "0001 74", "0000"), mal, "v3 MQTT-3.1.2-14"},
		{"CONNECT will QoS 3 5.0", 0, b("10", "17", mqtt, "05", "1e", "003c", "00", test, "00", "0001 74", "0000"), mal, "v5 MQTT-3.1.2-12"},
		{"CONNECT password without user name 3.1.1", 0, b("10", "14", mqtt, "04", "42", "003c", test, "0002 7077"), mal, "v3 MQTT-3.1.2-22"},
		{"CONNECT password without user name 3.1", 0, b("10", "16", mqisdp, "03", "42", "003c", test, "0002 7077"), mal, "v3 MQTT-3.1.2-22"},
		{"CONNECT will topic with wildcard 3.1.1", 0, b("10", "17", mqtt, "04", "06", "003c", test, "0003 612f23", "0000"), pe, "v3 MQTT-4.7.1-1"},
		{"CONNECT empty will topic 5.0", 0, b("10", "16", mqtt, "05", "06", "003c", "00", test, "00", "0000", "0000"), pe, "v5 MQTT-4.7.0-1"},
		{"CONNECT protocol name MQTX", 0, b("10", "10", "0004 4d515458", "04", "02", "003c", test), UnsupportedProtocolVersion, "v5 MQTT-3.1.2-1"},
		{"CONNECT protocol name mqtt", 0, b("10", "10", "0004 6d717474", "04", "02", "003c", test), UnsupportedProtocolVersion, "v5 MQTT-3.1.2-1"},
		{"CONNECT level 6", 0, b("10", "11", mqtt, "06", "02", "003c", "00", test), UnsupportedProtocolVersion, "v5 MQTT-3.1.2-2"},
		{"CONNECT level 3 with MQTT", 0, b("10", "10", mqtt, "03", "02", "003c", test), UnsupportedProtocolVersion, "v5 MQTT-3.1.2-2"},
		{"CONNECT level 4 with MQIsdp", 0, b("10", "12", mqisdp, "04", "02", "003c", test), UnsupportedProtocolVersion, "v5 MQTT-3.1.2-2"},

		// ------------------------------------------- CONNACK
		{"CONNACK reserved ack flag 3.1.1", V311, b("20", "02", "02", "00"), mal, "v5 MQTT-3.2.2-1"},
		{"CONNACK reserved ack flag 5.0", V5, b("20", "03", "80", "00", "00"), mal, "v5 MQTT-3.2.2-1"},
		{"CONNACK return code 6 3.1.1", V311, b("20", "02", "00", "06"), mal, "v3 noid:connack-return-code"},
		{"CONNACK return code 0x87 3.1.1", V311, b("20", "02", "00", "87"), mal, "v3 noid:connack-return-code"},
		{"CONNACK reason code 0x01 5.0", V5, b("20", "03", "00", "01", "00"), mal, "v5 MQTT-3.2.2-8"},
		{"CONNACK reason code 0x8B 5.0", V5, b("20", "03", "00", "8b", "00"), mal, "v5 MQTT-3.2.2-8"},
		{"CONNACK session present with refusal 3.1.1", V311, b("20", "02", "01", "05"), pe, "v3 MQTT-3.2.2-4"},
		{"CONNACK session present with refusal 5.0", V5, b("20", "03", "01", "87", "00"), pe, "v5 MQTT-3.2.2-6"},

		// ------------------------------------------- reason codes not allowed
		{"PUBACK reason code 0x01", V5, b("40", "03", "0001", "01"), mal, "v5 MQTT-3.4.2-1"},
		{"PUBACK reason code 0x92", V5, b("40", "03", "0001", "92"), mal, "v5 MQTT-3.4.2-1"},
		{"PUBREC reason code 0x92", V5, b("50", "03", "0001", "92"), mal, "v5 MQTT-3.5.2-1"},
		{"PUBREL reason code 0x10", V5, b("62", "03", "0001", "10"), mal, "v5 MQTT-3.6.2-1"},
		{"PUBCOMP reason code 0x80", V5, b("70", "03", "0001", "80"), mal, "v5 MQTT-3.7.2-1"},
		{"SUBACK return code 0x03 3.1.1", V311, b("90", "03", "0001", "03"), mal, "v3 MQTT-3.9.3-2"},
		{"SUBACK return code 0x87 3.1.1", V311, b("90", "04", "0001", "00", "87"), mal, "v3 MQTT-3.9.3-2"},
		{"SUBACK reason code 0x03 5.0", V5, b("90", "04", "0001", "00", "03"), mal, "v5 MQTT-3.9.3-2"},
		{"SUBACK reason code 0x11 5.0", V5, b("90", "05", "0001", "00", "00", "11"), mal, "v5 MQTT-3.9.3-2"},
		{"SUBACK no return codes 3.1.1", V311, b("90", "02", "0001"), pe, "noid:no-reason-codes"},
		{"UNSUBACK reason code 0x01 5.0", V5, b("b0", "04", "0001", "00", "01"), mal, "v5 MQTT-3.11.3-2"},
		{"UNSUBACK no reason codes 5.0", V5, b("b0", "03", "0001", "00"), pe, "noid:no-reason-codes"},
		{"DISCONNECT reason code 0x01", V5, b("e0", "01", "01"), mal, "v5 MQTT-3.14.2-1"},
		{"DISCONNECT reason code 0x84", V5, b("e0", "01", "84"), mal, "v5 MQTT-3.14.2-1"},
		{"AUTH reason code 0x01", V5, b("f0", "01", "01"), mal, "v5 MQTT-3.15.2-1"},
		{"AUTH reason code 0x87", V5, b("f0", "01", "87"), mal, "v5 MQTT-3.15.2-1"},

		// ------------------------------------------- properties
		{"PUBLISH payload format twice", V5, b("30", "08", "0001 74", "04", "01 01", "01 01"), pe, "v5 noid:dup-prop"},
		{"CONNACK maximum QoS twice", V5, b("20", "07", "00", "00", "04", "24 00", "24 00"), pe, "v5 noid:dup-prop"},
		{"CONNECT session expiry twice", 0, b("10", "1b", mqtt, "05", "02", "003c", "0a", "11 00000001", "11 00000002", test), pe, "v5 noid:dup-prop"},
		{"CONNECT will delay twice", 0, b("10", "21", mqtt, "05", "06", "003c", "00", test, "0a", "18 00000001", "18 00000001", "0001 74", "0000"), pe, "v5 noid:dup-prop"},
		{"DISCONNECT reason string twice", V5, b("e0", "0a", "00", "08", "1f 0001 61", "1f 0001 62"), pe, "v5 noid:dup-prop"},
		{"SUBSCRIBE subscription id twice", V5, b("82", "0b", "0001", "04", "0b 01", "0b 02", "0001 74", "00"), pe, "v5 noid:dup-prop"},

		{"PUBLISH session expiry", V5, b("30", "09", "0001 74", "05", "11 0000003c"), mal, "v5 noid:prop-not-allowed"},
		{"PUBLISH reason string", V5, b("30", "08", "0001 74", "04", "1f 0001 61"), mal, "v5 noid:prop-not-allowed"},
		{"PUBLISH unknown property 0x04", V5, b("30", "06", "0001 74", "02", "04 00"), mal, "v5 noid:prop-not-allowed"},
		{"PUBLISH property id 128", V5, b("30", "06", "0001 74", "02", "8001"), mal, "v5 noid:prop-not-allowed"},
		{"CONNECT will delay outside the will", 0, b("10", "16", mqtt, "05", "02", "003c", "05", "18 0000000a", test), mal, "v5 noid:prop-not-allowed"},
		{"CONNECT session expiry in the will", 0, b("10", "1c", mqtt, "05", "06", "003c", "00", test, "05", "11 0000000a", "0001 74", "0000"), mal, "v5 noid:prop-not-allowed"},
		{"PUBACK auth method", V5, b("40", "08", "0001", "00", "04", "15 0001 6d"), mal, "v5 noid:prop-not-allowed"},
		{"SUBSCRIBE topic alias", V5, b("82", "0a", "0001", "03", "23 0001", "0001 74", "00"), mal, "v5 noid:prop-not-allowed"},

		{"PUBLISH payload format 2", V5, b("30", "06", "0001 74", "02", "01 02"), pe, "v5 noid:prop-range"},
		{"will payload format 2", 0, b("10", "19", mqtt, "05", "06", "003c", "00", test, "02", "01 02", "0001 74", "0000"), pe, "v5 noid:prop-range"},
		{"CONNECT receive maximum 0", 0, b("10", "14", mqtt, "05", "02", "003c", "03", "21 0000", test), pe, "v5 noid:prop-range"},
		{"CONNECT maximum packet size 0", 0, b("10", "16", mqtt, "05", "02", "003c", "05", "27 00000000", test), pe, "v5 noid:prop-range"},
		{"CONNECT request problem information 2", 0, b("10", "13", mqtt, "05", "02", "003c", "02", "17 02", test), pe, "v5 noid:prop-range"},
		{"CONNECT request response information 2", 0, b("10", "13", mqtt, "05", "02", "003c", "02", "19 02", test), pe, "v5 noid:prop-range"},
		{"CONNACK maximum QoS 2", V5, b("20", "05", "00", "00", "02", "24 02"), pe, "v5 noid:prop-range"},
		{"CONNACK retain available 2", V5, b("20", "05", "00", "00", "02", "25 02"), pe, "v5 noid:prop-range"},
		{"CONNACK wildcard subscription available 2", V5, b("20", "05", "00", "00", "02", "28 02"), pe, "v5 noid:prop-range"},
		{"CONNACK subscription identifiers available 2", V5, b("20", "05", "00", "00", "02", "29 02"), pe, "v5 noid:prop-range"},
		{"CONNACK shared subscription available 2", V5, b("20", "05", "00", "00", "02", "2a 02"), pe, "v5 noid:prop-range"},
		{"CONNACK receive maximum 0", V5, b("20", "06", "00", "00", "03", "21 0000"), pe, "v5 noid:prop-range"},
		{"PUBLISH topic alias 0", V5, b("30", "07", "0001 74", "03", "23 0000"), TopicAliasInvalid, "v5 MQTT-3.3.2-8"},
		{"SUBSCRIBE subscription id 0", V5, b("82", "09", "0001", "02", "0b 00", "0001 74", "00"), pe, "v5 noid:subid-0"},
		{"PUBLISH subscription id 0", V5, b("30", "06", "0001 74", "02", "0b 00"), pe, "v5 noid:subid-0"},

		{"property length past the packet", V5, b("30", "06", "0001 74", "05", "01 01"), mal, "noid:truncated"},
		{"u32 property past the property length", V5, b("30", "09", "0001 74", "03", "02 0000", "0000"), mal, "noid:truncated"},
		{"string property past the property length", V5, b("30", "09", "0001 74", "03", "03 0002", "6869"), mal, "noid:truncated"},
		{"user property value past the property length", V5, b("30", "0b", "0001 74", "05", "26 0001 6b 00", "01 76"), mal, "noid:truncated"},
		{"property id cut by the property length", V5, b("30", "06", "0001 74", "01", "80", "01"), mal, "noid:truncated"},
		{"PUBLISH response topic with wildcard", V5, b("30", "0a", "0001 74", "06", "08 0003 612f23"), pe, "v5 MQTT-3.3.2-14"},
		{"PUBLISH empty response topic", V5, b("30", "07", "0001 74", "03", "08 0000"), pe, "v5 MQTT-3.3.2-14"},
		{"will response topic with wildcard", 0, b("10", "1c", mqtt, "05", "06", "003c", "00", test, "05", "08 0002 2b2f", "0001 74", "0000"), pe, "v5 MQTT-3.3.2-14"},

		// ------------------------------------------- first packet
		{"PINGREQ before CONNECT", 0, b("c0", "00"), pe, "v5 MQTT-3.1.0-1"},
		{"PUBLISH before CONNECT", 0, b("30", "03", "0001 74"), pe, "v5 MQTT-3.1.0-1"},
		{"CONNACK before CONNECT", 0, b("20", "02", "00", "00"), pe, "v5 MQTT-3.1.0-1"},
		{"AUTH before CONNECT", 0, b("f0", "00"), pe, "v5 MQTT-3.1.0-1"},
	}
}

// sentinelFor returns the sentinel errors.Is must match for code, or nil
// for codes without one.
func sentinelFor(code ReasonCode) error {
	switch code {
	case MalformedPacket:
		return ErrMalformed
	case ProtocolErrorCode:
		return ErrProtocol
	case PacketTooLarge:
		return ErrPacketTooLarge
	}
	return nil
}

// checkProtocolError asserts err is a *ProtocolError with the given code,
// spec and packet type, that exactly the right sentinel matches, and that
// the message names all three.
func checkProtocolError(t *testing.T, how string, err error, typ Type, code ReasonCode, spec string) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: err = %v (%T), want a *ProtocolError", how, err, err)
	}
	if pe.Code != code || pe.Spec != spec || pe.Packet != typ {
		t.Fatalf("%s: got code 0x%02x (%v) spec %q packet %v; want code 0x%02x (%v) spec %q packet %v\n%v",
			how, byte(pe.Code), pe.Code, pe.Spec, pe.Packet, byte(code), code, spec, typ, err)
	}
	want := sentinelFor(code)
	for _, s := range []error{ErrMalformed, ErrProtocol, ErrPacketTooLarge} {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("%s: errors.Is(err, %v) = %t", how, s, got)
		}
	}
	if errors.Is(err, ErrEncode) {
		t.Errorf("%s: a decoding error matches ErrEncode", how)
	}
	msg := err.Error()
	if !strings.Contains(msg, code.String()) || !strings.Contains(msg, spec) || (typ != 0 && !strings.Contains(msg, typ.String())) {
		t.Errorf("%s: message %q lacks the code name, spec or packet type", how, msg)
	}
	if p, ok := IsProtocolError(err); !ok || p != pe {
		t.Errorf("%s: IsProtocolError = %v, %t", how, p, ok)
	}
}

func TestDecodeErrors(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range errCases() {
		if names[tc.name] {
			t.Errorf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			typ := Type(tc.wire[0] >> 4)

			r := NewReader(bytes.NewReader(tc.wire))
			r.Version = tc.v
			p, err := r.ReadPacket()
			if p != nil {
				t.Errorf("ReadPacket returned a packet with the error: %v", p)
			}
			checkProtocolError(t, "ReadPacket", err, typ, tc.code, tc.spec)
			if tc.v == 0 && r.Version != 0 {
				t.Errorf("Reader.Version = %v after a failed CONNECT", r.Version)
			}

			p, n, err := Decode(tc.v, tc.wire)
			if p != nil || n != 0 {
				t.Errorf("Decode returned %v, %d with the error", p, n)
			}
			checkProtocolError(t, "Decode", err, typ, tc.code, tc.spec)
		})
	}
}

// TestRepeatableProperties: User Property may repeat anywhere, and
// Subscription Identifier may repeat in a PUBLISH (a server sends one per
// matching subscription) but not in a SUBSCRIBE (TestDecodeErrors).
func TestRepeatableProperties(t *testing.T) {
	cases := []struct {
		name string
		v    Version
		wire []byte
		want Packet
	}{
		{"user property repeated in PUBLISH", V5, b("30", "12", "0001 74", "0e", "26 0001 6b 0001 31", "26 0001 6b 0001 31"),
			&Publish{Topic: "t", Properties: Properties{User: []UserProperty{{"k", "1"}, {"k", "1"}}}}},
		{"user property repeated in SUBACK", V5, b("90", "12", "0001", "0e", "26 0001 6b 0001 31", "26 0001 6b 0001 32", "00"),
			&Suback{PacketID: 1, ReasonCodes: []ReasonCode{0}, Properties: Properties{User: []UserProperty{{"k", "1"}, {"k", "2"}}}}},
		{"user property repeated in will properties", 0, b("10", "25", mqtt, "05", "06", "003c", "00", test,
			"0e", "26 0001 6b 0001 31", "26 0001 6b 0001 32", "0001 74", "0000"),
			&Connect{Version: V5, ProtocolName: "MQTT", CleanStart: true, KeepAlive: 60, ClientID: "test",
				Will: &Will{Topic: "t", Properties: Properties{User: []UserProperty{{"k", "1"}, {"k", "2"}}}}}},
		{"subscription id repeated in PUBLISH", V5, b("30", "0a", "0001 74", "06", "0b 01", "0b 02", "0b 01"),
			&Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{1, 2, 1}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			markPresent(tc.want)
			p, n, err := Decode(tc.v, tc.wire)
			if err != nil || n != len(tc.wire) {
				t.Fatalf("Decode: %v (%d bytes)", err, n)
			}
			got, err := p.Append(nil, V5)
			if err != nil || !bytes.Equal(got, tc.wire) {
				t.Fatalf("re-encode: %x, %v; want %x", got, err, tc.wire)
			}
			r := NewReader(bytes.NewReader(tc.wire))
			r.Version = tc.v
			if !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("Decode:\n got  %#v\n want %#v", p, tc.want)
			}
			if p2, err := r.ReadPacket(); err != nil || !reflect.DeepEqual(p2, tc.want) {
				t.Fatalf("ReadPacket: %v\n got  %#v\n want %#v", err, p2, tc.want)
			}
		})
	}
}

// countingReader counts the bytes handed out by Read.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReaderMaxPacketSize(t *testing.T) {
	cases := []struct {
		name   string
		max    uint32
		header []byte // fixed header of the packet offered
		body   int    // remaining length
	}{
		{"one byte over", 10, b("30", "09"), 9},
		{"two-byte remaining length", 100, b("30", "c801"), 200},
		{"256 MiB claimed, 1 KiB allowed", 1024, b("30", "ffffff7f"), MaxRemainingLength},
		{"CONNECT over the limit", 16, b("10", "0f"), 15},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The stream holds only the fixed header: a Reader that tried
			// to read the body would report io.ErrUnexpectedEOF instead.
			// One byte per Read, counted, shows it read nothing more.
			cr := &countingReader{r: bytes.NewReader(tc.header)}
			r := NewReader(iotest.OneByteReader(cr))
			r.MaxPacketSize = tc.max
			if tc.header[0]>>4 != byte(CONNECT) {
				r.Version = V5
			}
			_, err := r.ReadPacket()
			checkProtocolError(t, "ReadPacket", err, Type(tc.header[0]>>4), PacketTooLarge, "v5 MQTT-3.2.2-15")
			if cr.n != len(tc.header) {
				t.Fatalf("Reader consumed %d bytes, want only the %d-byte fixed header", cr.n, len(tc.header))
			}
			if want := "exceeds the maximum packet size"; !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %q", err, want)
			}
		})
	}

	// A packet of exactly MaxPacketSize bytes is accepted; the limit
	// counts the fixed header.
	pkt := b("30", "08", "0001 74", "78797a7778") // 10 bytes in all
	r := NewReader(bytes.NewReader(pkt))
	r.Version, r.MaxPacketSize = V311, 10
	if _, err := r.ReadPacket(); err != nil {
		t.Fatalf("packet of exactly MaxPacketSize: %v", err)
	}
	r = NewReader(bytes.NewReader(pkt))
	r.Version, r.MaxPacketSize = V311, 9
	if _, err := r.ReadPacket(); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("packet one byte over MaxPacketSize: %v", err)
	}
}

// TestTruncatedStream: a stream or buffer ending inside a packet is not a
// protocol error but io.ErrUnexpectedEOF; ending between packets is io.EOF.
func TestTruncatedStream(t *testing.T) {
	whole := b("32", "08", "0003 612f62", "0001", "78")
	for i := 1; i < len(whole); i++ {
		part := whole[:i]
		r := NewReader(bytes.NewReader(part))
		r.Version = V311
		if _, err := r.ReadPacket(); err != io.ErrUnexpectedEOF {
			t.Errorf("ReadPacket of %x: %v, want io.ErrUnexpectedEOF", part, err)
		}
		if _, _, err := Decode(V311, part); err != io.ErrUnexpectedEOF {
			t.Errorf("Decode of %x: %v, want io.ErrUnexpectedEOF", part, err)
		}
	}
	// A remaining length cut short is also incomplete, not malformed.
	for _, part := range [][]byte{b("30 80"), b("30 ff ff"), b("30 ff ff ff")} {
		if _, _, err := Decode(V311, part); err != io.ErrUnexpectedEOF {
			t.Errorf("Decode of %x: %v, want io.ErrUnexpectedEOF", part, err)
		}
		r := NewReader(bytes.NewReader(part))
		r.Version = V311
		if _, err := r.ReadPacket(); err != io.ErrUnexpectedEOF {
			t.Errorf("ReadPacket of %x: %v, want io.ErrUnexpectedEOF", part, err)
		}
	}
	r := NewReader(bytes.NewReader(nil))
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Errorf("ReadPacket of an empty stream: %v, want io.EOF", err)
	}
	// Errors of the underlying reader come through unchanged.
	boom := errors.New("boom")
	r = NewReader(iotest.ErrReader(boom))
	if _, err := r.ReadPacket(); err != boom {
		t.Errorf("ReadPacket with a failing reader: %v, want %v", err, boom)
	}
	// A *bufio.Reader is used as it is.
	br := bufio.NewReader(bytes.NewReader(b("c0 00 d0 00")))
	r = NewReader(br)
	r.Version = V311
	if p, err := r.ReadPacket(); err != nil || p.Type() != PINGREQ {
		t.Fatalf("first packet: %v, %v", p, err)
	}
	if r.Buffered() != 2 {
		t.Errorf("Buffered = %d, want 2", r.Buffered())
	}
}

func TestProtocolErrorMessage(t *testing.T) {
	_, _, err := Decode(V5, b("36", "06", "0001 74", "0001", "00"))
	if got, want := err.Error(), "mqtt: PUBLISH: QoS 3 (Malformed Packet, v5 MQTT-3.3.1-4)"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	_, _, err = Decode(V311, b("30", "05", "0003 612f2b"))
	if got, want := err.Error(), `mqtt: PUBLISH: wildcard in topic name "a/+" (Topic Name invalid, v3 MQTT-3.3.2-2)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	_, _, err = Decode(0, b("10", "10", "0004 4d515458", "04", "02", "003c", test))
	if got, want := err.Error(), `mqtt: CONNECT: unsupported protocol "MQTX" level 4 (Unsupported Protocol Version, v5 MQTT-3.1.2-1)`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	// Without a packet type the message starts with the message itself.
	_, _, err = Decode(V5, b("00 00"))
	if got, want := err.Error(), "mqtt: reserved packet type RESERVED (Malformed Packet, v5 MQTT-2.1.3-1)"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if got, want := ErrMalformed.Error(), "mqtt: malformed packet (Malformed Packet)"; got != want {
		t.Errorf("ErrMalformed = %q, want %q", got, want)
	}
	if got, want := ErrPacketTooLarge.Error(), "mqtt: packet too large (Packet too large)"; got != want {
		t.Errorf("ErrPacketTooLarge = %q, want %q", got, want)
	}

	// errors.Is also matches a code and spec pair, and nothing else.
	_, _, err = Decode(V5, b("36", "06", "0001 74", "0001", "00"))
	if !errors.Is(err, &ProtocolError{Code: MalformedPacket, Spec: "v5 MQTT-3.3.1-4"}) {
		t.Error("errors.Is with code and spec does not match")
	}
	if errors.Is(err, &ProtocolError{Code: MalformedPacket, Spec: "v5 MQTT-3.3.1-2"}) {
		t.Error("errors.Is matches another spec")
	}
	if errors.Is(err, &ProtocolError{Code: ProtocolErrorCode, Spec: "v5 MQTT-3.3.1-4"}) {
		t.Error("errors.Is matches another code")
	}
	if errors.Is(err, io.EOF) {
		t.Error("errors.Is matches io.EOF")
	}
	// Wrapped errors are still found.
	wrapped := errors.Join(errors.New("conn 7"), err)
	if !errors.Is(wrapped, ErrMalformed) {
		t.Error("errors.Is does not see through wrapping")
	}
	if pe, ok := IsProtocolError(wrapped); !ok || pe.Spec != "v5 MQTT-3.3.1-4" {
		t.Errorf("IsProtocolError(wrapped) = %v, %t", pe, ok)
	}
	if _, ok := IsProtocolError(io.EOF); ok {
		t.Error("IsProtocolError(io.EOF) = true")
	}
}

// bigString is over the 65,535 bytes a UTF-8 string or binary field holds.
var bigString = strings.Repeat("a", 65536)

func TestEncodeErrors(t *testing.T) {
	tooBig := []byte(bigString)
	topicAlias0 := Properties{}
	topicAlias0.Mark(PropTopicAlias)
	recvMax0 := Properties{}
	recvMax0.Mark(PropReceiveMaximum)
	cases := []struct {
		name string
		v    Version
		p    Packet
	}{
		{"PUBLISH QoS 3", V311, &Publish{Topic: "t", QoS: 3, PacketID: 1}},
		{"PUBLISH QoS 3 5.0", V5, &Publish{Topic: "t", QoS: 3, PacketID: 1}},
		{"PUBLISH QoS 1 packet id 0", V311, &Publish{Topic: "t", QoS: 1}},
		{"PUBLISH QoS 2 packet id 0 5.0", V5, &Publish{Topic: "t", QoS: 2}},
		{"PUBLISH DUP on QoS 0", V311, &Publish{Topic: "t", Dup: true}},
		{"PUBLISH topic with +", V311, &Publish{Topic: "a/+"}},
		{"PUBLISH topic #", V5, &Publish{Topic: "#"}},
		{"PUBLISH empty topic", V311, &Publish{}},
		{"PUBLISH empty topic with an alias in 3.1.1", V311, &Publish{Properties: Properties{TopicAlias: 1}}},
		{"PUBLISH empty topic without an alias 5.0", V5, &Publish{}},
		{"PUBLISH topic over 65535 bytes", V311, &Publish{Topic: bigString}},
		{"PUBLISH topic bad UTF-8", V311, &Publish{Topic: "a\xff"}},
		{"PUBLISH topic U+0000", V5, &Publish{Topic: "a\x00"}},
		{"PUBLISH topic surrogate", V5, &Publish{Topic: "\xed\xa0\x80"}},
		{"PUBLISH payload format 2", V5, &Publish{Topic: "t", Properties: Properties{PayloadFormat: 2}}},
		{"PUBLISH topic alias 0 marked", V5, &Publish{Topic: "t", Properties: topicAlias0}},
		{"PUBLISH response topic with wildcard", V5, &Publish{Topic: "t", Properties: Properties{ResponseTopic: "r/#"}}},
		{"PUBLISH correlation data over 65535 bytes", V5, &Publish{Topic: "t", Properties: Properties{CorrelationData: tooBig}}},
		{"PUBLISH content type over 65535 bytes", V5, &Publish{Topic: "t", Properties: Properties{ContentType: bigString}}},
		{"PUBLISH subscription id 0", V5, &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{1, 0}}}},
		{"PUBLISH subscription id over 268435455", V5, &Publish{Topic: "t", Properties: Properties{SubscriptionIDs: []uint32{MaxRemainingLength + 1}}}},
		{"PUBLISH user property name over 65535 bytes", V5, &Publish{Topic: "t", Properties: Properties{User: []UserProperty{{bigString, "v"}}}}},
		{"PUBLISH user property value bad UTF-8", V5, &Publish{Topic: "t", Properties: Properties{User: []UserProperty{{"k", "\xc3"}}}}},
		{"CONNECT client id over 65535 bytes", V311, &Connect{Version: V311, ClientID: bigString}},
		{"CONNECT user name bad UTF-8", V311, &Connect{Version: V311, Username: "\xff"}},
		{"CONNECT password over 65535 bytes", V5, &Connect{Version: V5, Username: "u", Password: tooBig}},
		{"CONNECT password without user name 3.1.1", V311, &Connect{Version: V311, Password: []byte("pw")}},
		{"CONNECT password without user name 3.1", V31, &Connect{Version: V31, PasswordFlag: true}},
		{"CONNECT will QoS 3", V311, &Connect{Version: V311, Will: &Will{Topic: "t", QoS: 3}}},
		{"CONNECT will topic with wildcard", V5, &Connect{Version: V5, Will: &Will{Topic: "a/+"}}},
		{"CONNECT empty will topic", V311, &Connect{Version: V311, Will: &Will{}}},
		{"CONNECT will payload over 65535 bytes", V311, &Connect{Version: V311, Will: &Will{Topic: "t", Payload: tooBig}}},
		{"CONNECT unsupported version", 6, &Connect{Version: 6}},
		{"CONNECT no version", 0, &Connect{}},
		{"CONNECT receive maximum 0 marked", V5, &Connect{Version: V5, Properties: recvMax0}},
		{"CONNECT request problem information 2", V5, &Connect{Version: V5, Properties: Properties{RequestProblemInfo: 2}}},
		{"CONNACK return code 6 3.1.1", V311, &Connack{ReasonCode: 6}},
		{"CONNACK reason code 0x01 5.0", V5, &Connack{ReasonCode: 0x01}},
		{"CONNACK session present with refusal", V311, &Connack{SessionPresent: true, ReasonCode: V3NotAuthorized}},
		{"CONNACK maximum QoS 2", V5, &Connack{Properties: Properties{MaximumQoS: 2}}},
		{"PUBACK packet id 0", V311, &Puback{}},
		{"PUBACK reason code 0x81", V5, &Puback{PacketID: 1, ReasonCode: MalformedPacket}},
		{"PUBREC reason code 0x92", V5, &Pubrec{PacketID: 1, ReasonCode: PacketIdentifierNotFound}},
		{"PUBREL reason code 0x10", V5, &Pubrel{PacketID: 1, ReasonCode: NoMatchingSubscribers}},
		{"PUBCOMP reason code 0x80", V5, &Pubcomp{PacketID: 1, ReasonCode: UnspecifiedError}},
		{"PUBCOMP packet id 0", V5, &Pubcomp{}},
		{"SUBSCRIBE packet id 0", V311, &Subscribe{Subscriptions: []Subscription{{Filter: "t"}}}},
		{"SUBSCRIBE no filters", V5, &Subscribe{PacketID: 1}},
		{"SUBSCRIBE QoS 3", V311, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t", QoS: 3}}}},
		{"SUBSCRIBE retain handling 3", V5, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t", RetainHandling: 3}}}},
		{"SUBSCRIBE two subscription ids", V5, &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIDs: []uint32{1, 2}},
			Subscriptions: []Subscription{{Filter: "t"}}}},
		{"SUBSCRIBE filter over 65535 bytes", V311, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: bigString}}}},
		{"SUBACK packet id 0", V311, &Suback{ReasonCodes: []ReasonCode{0}}},
		{"SUBACK return code 0x87 3.1.1", V311, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{NotAuthorized}}},
		{"SUBACK reason code 0x03 5.0", V5, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{0x03}}},
		{"SUBACK no codes", V5, &Suback{PacketID: 1}},
		{"UNSUBSCRIBE packet id 0", V311, &Unsubscribe{Filters: []string{"t"}}},
		{"UNSUBSCRIBE no filters", V311, &Unsubscribe{PacketID: 1}},
		{"UNSUBSCRIBE filter U+0000", V5, &Unsubscribe{PacketID: 1, Filters: []string{"\x00"}}},
		{"UNSUBSCRIBE empty filter 3.1.1", V311, &Unsubscribe{PacketID: 1, Filters: []string{"t", ""}}},
		{"UNSUBSCRIBE empty filter 3.1", V31, &Unsubscribe{PacketID: 1, Filters: []string{""}}},
		{"SUBSCRIBE empty filter 3.1.1", V311, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: ""}}}},
		{"SUBSCRIBE empty filter 3.1", V31, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "t"}, {Filter: ""}}}},
		{"UNSUBACK packet id 0", V5, &Unsuback{ReasonCodes: []ReasonCode{0}}},
		{"UNSUBACK reason code 0x01", V5, &Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{0x01}}},
		{"UNSUBACK no codes 5.0", V5, &Unsuback{PacketID: 1}},
		{"DISCONNECT reason code 0x01", V5, &Disconnect{ReasonCode: 0x01}},
		{"DISCONNECT reason string over 65535 bytes", V5, &Disconnect{Properties: Properties{ReasonString: bigString}}},
		{"AUTH in 3.1.1", V311, &Auth{}},
		{"AUTH in 3.1", V31, &Auth{ReasonCode: ContinueAuthentication}},
		{"AUTH reason code 0x87", V5, &Auth{ReasonCode: NotAuthorized}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, 0, 64)
			dst = append(dst, "prefix"...)
			out, err := tc.p.Append(dst, tc.v)
			if err == nil {
				t.Fatalf("Append succeeded: %x", out)
			}
			if !errors.Is(err, ErrEncode) {
				t.Fatalf("error %v does not wrap ErrEncode", err)
			}
			if _, ok := IsProtocolError(err); ok {
				t.Errorf("encoding error %v is a ProtocolError", err)
			}
			if !strings.HasPrefix(err.Error(), "mqtt: cannot encode "+tc.p.Type().String()+": ") {
				t.Errorf("message %q does not name the packet", err)
			}
			if string(out) != "prefix" {
				t.Fatalf("dst came back as %q, want it unchanged", out)
			}
			if out, err := Encode(tc.p, tc.v); err == nil || len(out) != 0 {
				t.Fatalf("Encode: %x, %v", out, err)
			}
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.Version = tc.v
			if err := w.WritePacket(tc.p); !errors.Is(err, ErrEncode) || buf.Len() != 0 {
				t.Fatalf("WritePacket: %v, wrote %d bytes", err, buf.Len())
			}
		})
	}
}

func TestWriterMaxPacketSize(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Version, w.MaxPacketSize = V311, 10
	big := &Publish{Topic: "t", Payload: []byte("123456")} // 2 + 3 + 6 = 11 bytes
	err := w.WritePacket(big)
	checkProtocolError(t, "WritePacket", err, PUBLISH, PacketTooLarge, "v5 MQTT-3.1.2-24")
	if buf.Len() != 0 {
		t.Fatalf("WritePacket wrote %d bytes of a packet over the limit", buf.Len())
	}
	if want := "exceeds the peer's maximum packet size 10"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
	// Exactly at the limit is fine, and the Writer goes on working.
	fits := &Publish{Topic: "t", Payload: []byte("12345")}
	if err := w.WritePacket(fits); err != nil {
		t.Fatalf("packet of exactly MaxPacketSize: %v", err)
	}
	if err := w.WritePacket(&Pingreq{}); err != nil {
		t.Fatal(err)
	}
	if want := b("30 08 0001 74 3132333435", "c0 00"); !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("written %x, want %x", buf.Bytes(), want)
	}
	// Reset keeps Version and MaxPacketSize.
	var buf2 bytes.Buffer
	w.Reset(&buf2)
	if err := w.WritePacket(big); !errors.Is(err, ErrPacketTooLarge) || buf2.Len() != 0 {
		t.Fatalf("after Reset: %v, %d bytes", err, buf2.Len())
	}
	// A failing destination's error comes back as it is.
	boom := errors.New("boom")
	w.Reset(errWriter{boom})
	if err := w.WritePacket(&Pingreq{}); err != boom {
		t.Fatalf("WritePacket to a failing writer: %v", err)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
