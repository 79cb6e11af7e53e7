package subfmt

// Byte-for-byte comparisons with Debian's mosquitto_sub 2.0.11
// (mosquitto-clients): the test server of peer_test.go sends the same
// PUBLISH packets to mosquitto_sub and, decoded by package packet, to a
// Printer, and the outputs must be equal. mosquitto_sub runs under
// libfaketime (Debian package faketime) with its clock frozen at
// peerClock, so that the time fields (%I %U %j %J and the @ fields) are
// compared byte for byte too; without libfaketime the time formats are
// compared in shape only (TestMosquittoSubTimeShape).

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

// peerClock is the instant mosquitto_sub's frozen clock shows.
var peerClock = time.Unix(1588801680, 123456789) // 2020-05-06T21:48:00.123456789Z

// peerMessages returns the messages of the comparisons for version v:
// every QoS with the acknowledgements mosquitto_sub sends back, retain
// flags, packet identifiers up to 65535, every PUBLISH property (in an
// order of their own in the first message), a topic alias, empty,
// binary, non-UTF-8, JSON and large payloads, and a non-ASCII topic.
func peerMessages(v packet.Version) []wirePub {
	big := make([]byte, 70000) // a remaining length of three bytes
	for i := range big {
		big[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	user := func(k, v string) wireProp { return wireProp{ID: packet.PropUser, Str: k, Val: v} }
	pubs := []wirePub{
		{QoS: 1, ID: 7, Topic: "a/b", Payload: []byte("hello"), Props: []wireProp{
			user("k", "v"), {ID: packet.PropContentType, Str: "text/plain"}, {ID: packet.PropSubscriptionID, Num: 5},
			user("k", "w"), {ID: packet.PropMessageExpiry, Num: 4294967295}}},
		{QoS: 0, Topic: "e", Payload: nil},
		{QoS: 2, ID: 9, Retain: true, Topic: "x", Payload: []byte("ab\x00\xffc\"\\\n\x01\x7f"), Props: []wireProp{
			{ID: packet.PropPayloadFormat, Num: 0}, {ID: packet.PropCorrelationData, Bin: []byte("co\x00rr\xff")},
			{ID: packet.PropResponseTopic, Str: "resp/x"}}},
		{QoS: 0, Topic: "j", Payload: []byte(`{"a":[1,2.50,1e400,-0,{"b":null}],"c":"\u00e9\ud83d\ude00"}`), Props: []wireProp{
			{ID: packet.PropTopicAlias, Num: 3}}},
		{QoS: 1, ID: 65535, Topic: "sensors/température", Payload: []byte(` {"temperature":27.0, "humidity":57,"list":[1,2,{"a":[]},[]],"o":{},"s":"x\ty"}`),
			Props: []wireProp{
				{ID: packet.PropPayloadFormat, Num: 1}, {ID: packet.PropMessageExpiry, Num: 60},
				{ID: packet.PropContentType, Str: "application/json"}, {ID: packet.PropResponseTopic, Str: "reply/to"},
				{ID: packet.PropCorrelationData, Bin: []byte("id-42")}, {ID: packet.PropSubscriptionID, Num: 268435455},
				user("a", "1"), user("b", "2"), user("a", "3")}},
		{QoS: 0, Retain: true, Topic: "big", Payload: big, Props: []wireProp{{ID: packet.PropContentType, Str: ""}}},
		{QoS: 2, ID: 1, Topic: "json/invalid", Payload: []byte(`{bad`)},
		{QoS: 0, Topic: "bin", Payload: []byte("\xc3\x28\xff\xfe")},
		{QoS: 1, ID: 300, Topic: "json/numbers", Payload: []byte(`[1e400,-1e400,-0,0.1,1E5,123456789012345678,-1.5e-7,01,-.5,1.,2147483648,` +
			`"\u0000x","\uZZZZy","\ud83d\ude00","tab` + "\t" + `raw","\/\b\f\n\r\t\"\\",true,false,null,{"":{"k":[[],{}]}}]`)},
		{QoS: 0, Topic: "json/bom", Payload: []byte("\xEF\xBB\xBF \t{\"a\" : true }\n\x01")},
		{QoS: 0, Topic: "json/trailing", Payload: []byte(`[1,2]x`)},
		{QoS: 0, Topic: "json/string", Payload: []byte(`"just a string"`)},
	}
	if v != packet.V5 {
		for i := range pubs {
			pubs[i].Props = nil
		}
	}
	return pubs
}

// tz is the time zone of a comparison run.
type tz string

// compare runs mosquitto_sub with args on the messages of version v and a
// Printer with opts, at peerClock, and reports any difference.
func compare(t *testing.T, v packet.Version, zone tz, args []string, opts Options) {
	t.Helper()
	compareAt(t, v, zone, peerClock, args, opts)
}

// compareAt is compare with mosquitto_sub's clock frozen at clock.
func compareAt(t *testing.T, v packet.Version, zone tz, clock time.Time, args []string, opts Options) {
	t.Helper()
	loc, err := time.LoadLocation(string(zone))
	if err != nil {
		t.Skipf("time zone %s: %v (apt-get install tzdata)", zone, err)
	}
	opts.Location = loc
	p, err := Compile(opts)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", opts, err)
	}
	pubs := peerMessages(v)
	env := []string{"TZ=" + string(zone)}
	if p.usesTime() {
		env = append(env, faketimeEnv(t, clock)...)
	}
	res := peerRun{Version: v, Pubs: pubs, Args: args, Env: env}.run(t)

	var out, errs bytes.Buffer
	for i := range pubs {
		m := pubs[i].message(t, v, "", clock)
		if err := p.Print(&out, m); err != nil {
			var je *JSONError
			if !errors.As(err, &je) {
				t.Fatal(err)
			}
			errs.WriteString(strings.Repeat("Error: "+err.Error()+"\n", je.Count))
		}
	}
	if !bytes.Equal(out.Bytes(), res.Stdout) {
		t.Errorf("mosquitto_sub %q (%v, TZ=%s): stdout differs\n%s", args, v, zone, diff(res.Stdout, out.Bytes()))
	}
	if !bytes.Equal(errs.Bytes(), res.Stderr) {
		t.Errorf("mosquitto_sub %q (%v): stderr %q, Printer's errors %q", args, v, res.Stderr, errs.Bytes())
	}
}

// faketimeEnv returns the environment that freezes mosquitto_sub's clock
// at clock, or skips t without libfaketime.
func faketimeEnv(t testing.TB, clock time.Time) []string {
	lib := needFaketime(t)
	return []string{"LD_PRELOAD=" + lib, "FAKETIME_FMT=%s", fmt.Sprintf("FAKETIME=%d.%09d", clock.Unix(), clock.Nanosecond())}
}

// usesTime reports whether p prints a time field.
func (p *Printer) usesTime() bool {
	for _, o := range p.ops {
		if o.kind == opTime || o.kind == opDir && strings.IndexByte("IUjJ", o.c) >= 0 {
			return true
		}
	}
	return false
}

// diff shows where two outputs part.
func diff(want, got []byte) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-60)
	return fmt.Sprintf("  first difference at byte %d of %d (mosquitto_sub) / %d (Printer)\n  mosquitto_sub: %q\n  Printer:       %q",
		i, len(want), len(got), want[from:min(len(want), i+60)], got[from:min(len(got), i+60)])
}

// formatCases are the -F strings compared with mosquitto_sub: every
// directive alone and together, every flag, width and precision
// combination the man page and the source give a meaning to, escapes,
// and the time fields.
var formatCases = []string{
	// every directive
	"%%|%A|%C|%D|%E|%F|%l|%m|%P|%p|%q|%R|%r|%S|%t|%x|%X",
	"%%", "%A", "%C", "%D", "%E", "%F", "%l", "%m", "%P", "%p", "%q", "%R", "%r", "%S", "%t", "%x", "%X",
	"%I", "%U", "%j", "%J", "%j %J", "x%jy", "%J|%J",
	"", "plain text", "100%% sure",
	// strings: width, precision, left alignment
	"[%10t|%-10t|%.2t|%5.1t|%-5.1t|%.0t|%10.t|%007t|%00t|%-0t]",
	"[%.13t|%-22t|%22t|%.1000t]", // bytes, not characters: a cut inside é
	"é%t€\\\\@@%%",               // the escape \\ prints one backslash
	"[%20C|%-20C|%.4C|%020C|%.0C]",
	"[%20R|%-20R|%.3R|%-.3R]",
	"[%30I|%-30I|%.10I|%-.4I]",
	// numbers: width, zero padding, left alignment, absent properties
	"[%05l|%-5l|%-05l|%5m|%05m|%-5m|%1m]",
	"[%5A|%05A|%-5A|%-05A]",
	"[%5E|%05E|%-05E|%-5E|%12E]",
	"[%5F|%05F|%-5F]",
	"[%5S|%05S|%-5S|%-05S]",
	// payloads: width cuts the payload, - pads
	"[%5p|%-p|%-5p|%05p|%-05p|%1000p]",
	"[%10x|%3x|%1x|%0x|%-8X|%-08X|%08X|%-X|%11x]",
	"[%.2p|%5.2x|%-040p|%.3l|%7.2E]", // precision is ignored but for strings
	// directives whose width mosquitto_sub ignores
	"[%5q|%05r|%5P|%5D|%5%|%-5U|%.3j]",
	// escapes
	`[\\|\0|\a|\e|\n|\r|\t|\v]`, `a\tb\\n`, `%t\0%p\0`,
	// @ time fields
	"@@|@N|@s|%U",
	"@a|@A|@b|@B|@c|@C|@d|@D|@e|@F|@g|@G|@h|@H|@I|@j|@k|@l|@m|@M|@n|@p|@P|@r|@R|@S|@t|@T|@u|@U|@V|@w|@W|@x|@X|@y|@Y|@z|@Z|@%",
	// not strftime conversions: glibc prints them as they are
	"@E|@O|@q|@i|@L|@f|@v|@J|@K|@o|@Q|@+|@-|@_|@^|@#|@0|@1|@2|@3|@5|@9|@ |@\\|@é",
}

// TestMosquittoSubByteForByte compares every format of formatCases, for
// MQTT 3.1, 3.1.1 and 5 (with properties), in UTC.
func TestMosquittoSubByteForByte(t *testing.T) {
	needMosquittoSub(t)
	for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
		for _, f := range formatCases {
			t.Run(fmt.Sprintf("%v/%q", v, f), func(t *testing.T) {
				compare(t, v, "UTC", []string{"-F", f}, Options{Format: f, FormatSet: true})
			})
		}
	}
}

// TestMosquittoSubOptions compares the output options without -F and
// their combinations: payload only, -v, -N, --pretty, and -F with -v
// (the format wins) and -N.
func TestMosquittoSubOptions(t *testing.T) {
	needMosquittoSub(t)
	cases := []struct {
		args []string
		opts Options
	}{
		{nil, Options{}},
		{[]string{"-v"}, Options{Verbose: true}},
		{[]string{"-N"}, Options{NoEOL: true}},
		{[]string{"-v", "-N"}, Options{Verbose: true, NoEOL: true}},
		{[]string{"--pretty"}, Options{Pretty: true}},
		{[]string{"-v", "--pretty"}, Options{Verbose: true, Pretty: true}},
		{[]string{"-F", "%j", "--pretty"}, Options{Format: "%j", Pretty: true}},
		{[]string{"-F", "%J", "--pretty"}, Options{Format: "%J", Pretty: true}},
		{[]string{"-F", "<%j>%J", "--pretty", "-N"}, Options{Format: "<%j>%J", Pretty: true, NoEOL: true}},
		{[]string{"-F", "%t", "-v"}, Options{Format: "%t", Verbose: true}},
		{[]string{"-F", "%p", "-N"}, Options{Format: "%p", NoEOL: true}},
		{[]string{"-F", "%t %p|", "-N", "-v"}, Options{Format: "%t %p|", NoEOL: true, Verbose: true}},
		{[]string{"-F", "", "-N"}, Options{FormatSet: true, NoEOL: true}},
	}
	for _, v := range []packet.Version{packet.V31, packet.V311, packet.V5} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%v/%q", v, c.args), func(t *testing.T) {
				compare(t, v, "UTC", c.args, c.opts)
			})
		}
	}
}

// timeFormat has every time field.
const timeFormat = "%I|%U|@a|@A|@b|@B|@c|@C|@d|@D|@e|@F|@g|@G|@h|@H|@I|@j|@k|@l|@m|@M|@n|@N|@p|@P|@r|@R|@s|@S|@t|@T|@u|@U|@V|@w|@W|@x|@X|@y|@Y|@z|@Z|%j"

// TestMosquittoSubTimeZones compares the time fields in zones east and
// west of UTC, one with a half-hour offset, one in summer time.
func TestMosquittoSubTimeZones(t *testing.T) {
	needMosquittoSub(t)
	for _, zone := range []tz{"Europe/Berlin", "America/St_Johns", "Asia/Kolkata", "Pacific/Auckland", "America/Los_Angeles"} {
		t.Run(string(zone), func(t *testing.T) {
			compare(t, packet.V5, zone, []string{"-F", timeFormat, "--pretty"}, Options{Format: timeFormat, Pretty: true})
		})
	}
}

// TestMosquittoSubClocks compares the time fields at instants that
// exercise them: midnight and noon (12-hour clock), single-digit days,
// ISO weeks that belong to the next or the previous year, week 53, leap
// days, the first second after 2038-01-19 03:14:07 UTC, nanoseconds
// 0, 1 and 999999000.
func TestMosquittoSubClocks(t *testing.T) {
	needMosquittoSub(t)
	clocks := []time.Time{
		time.Date(2021, 1, 1, 0, 5, 9, 1, time.UTC),              // Friday, ISO 2020-W53
		time.Date(2024, 12, 30, 12, 0, 0, 0, time.UTC),           // Monday, ISO 2025-W01
		time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), // Friday (libfaketime reads .999999999 as .999999998)
		time.Date(2024, 2, 29, 11, 59, 59, 500000000, time.UTC),  // a leap day
		time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC),
		time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), // Sunday: week 0 / 1 differences
	}
	for _, clock := range clocks {
		for _, zone := range []tz{"UTC", "Europe/Berlin", "America/St_Johns"} {
			t.Run(fmt.Sprintf("%s/%s", clock.Format(time.RFC3339Nano), zone), func(t *testing.T) {
				compareAt(t, packet.V311, zone, clock, []string{"-F", timeFormat}, Options{Format: timeFormat})
			})
		}
	}
}

// TestMosquittoSubTimeShape runs without libfaketime: mosquitto_sub
// prints the time it reads from its own clock, so the outputs are
// compared with every digit replaced by 0 (in UTC, where the offset is
// +0000), and the Printer's times are the receive times it is given.
func TestMosquittoSubTimeShape(t *testing.T) {
	needMosquittoSub(t)
	f := "%I|%U|@N|@Y-@m-@d @T|%j"
	pubs := peerMessages(packet.V5)[:3]
	res := peerRun{Version: packet.V5, Pubs: pubs, Args: []string{"-F", f}, Env: []string{"TZ=UTC"}}.run(t)
	p, err := Compile(Options{Format: f, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for i := range pubs {
		if err := p.Print(&out, pubs[i].message(t, packet.V5, "", time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	shape := func(b []byte) []byte {
		return bytes.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return '0'
			}
			return r
		}, b)
	}
	// Digits of the payload and properties are replaced too; the shapes
	// can differ only in times.
	if !bytes.Equal(shape(res.Stdout), shape(out.Bytes())) {
		t.Errorf("shapes differ\n%s", diff(shape(res.Stdout), shape(out.Bytes())))
	}
}

// TestMosquittoSubJSONPayloads compares %J and %j --pretty on JSON
// payloads that exercise cJSON's parser and printer: numbers, escapes,
// nesting, whitespace, and payloads it refuses.
func TestMosquittoSubJSONPayloads(t *testing.T) {
	needMosquittoSub(t)
	payloads := []string{
		`0`, `-0`, `1`, `-1`, `1.5`, `1e2`, `1E-2`, `1e+2`, `0.1`, `1e21`, `1e-7`, `123456789`, `2147483647`, `2147483648`,
		`-2147483649`, `9007199254740993`, `1.7976931348623157e308`, `1.8e308`, `4.9e-324`, `2e-324`, `1e-400`,
		`0.30000000000000004`, `100000000000000000000`, `3.141592653589793238462643383279`, `00012`, `-00.5e0`, `1.`, `-.5`,
		`1234567890123456789012345678901234567890123456789012345678901234567890`, `1.0000000000000000000000000000000000000000000000000000000000001`,
		`1e`, `1e+`, `--1`, `-`, `+1`, `.5`, `1-2`, `0x10`, `1.5.5`, `[1.5e]`, `Infinity`, `NaN`,
		`""`, `"\u0041\u00e9\u20ac\ud83d\ude00"`, `"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `"\u00"`, `"\u12G4"`, `"a\u0000b"`,
		`"\x"`, `"\'"`, `"a` + "\x01\x1f\x7f\x80\xff" + `b"`, `"unterminated`, `"ends with \"`, `"\\"`, `"\/"`,
		`[]`, `{}`, `[[]]`, `{"a":{}}`, `[{}, {"b":[{}]}]`, `{"a":1,"a":2}`, `{"":""}`, `{"k\u0000x":1}`,
		`[1,]`, `[,1]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `{"a":}`, `[`, `]`, `{`, `}`, `nul`, `nulll`, `truex`, `True`,
		" \t\r\n\x01\x1f[ 1 , 2 ]\x20\x0b", "\xEF\xBB\xBF1", "\xEF\xBB\xBF", "\xEF\xBB\xBF1 2",
		strings.Repeat("[", 999) + strings.Repeat("]", 999), strings.Repeat("[", 1000) + strings.Repeat("]", 1000),
		strings.Repeat("[", 1001) + strings.Repeat("]", 1001), strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000),
		strings.Repeat(`{"a":`, 1001) + "1" + strings.Repeat("}", 1001),
	}
	var pubs []wirePub
	for i, pl := range payloads {
		pubs = append(pubs, wirePub{QoS: byte(i % 3), ID: uint16(i + 1), Topic: fmt.Sprintf("p/%d", i), Payload: []byte(pl)})
	}
	for _, args := range [][]string{{"-F", "%J"}, {"-F", "%J", "--pretty"}, {"-F", "%j", "--pretty"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			env := append([]string{"TZ=UTC"}, faketimeEnv(t, peerClock)...)
			res := peerRun{Version: packet.V311, Pubs: pubs, Args: args, Env: env}.run(t)
			p, err := Compile(Options{Format: args[1], Pretty: len(args) > 2, Location: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.SplitAfter(res.Stdout, []byte("\n"))
			var all bytes.Buffer
			for i := range pubs {
				var out bytes.Buffer
				p.Print(&out, pubs[i].message(t, packet.V311, "", peerClock))
				all.Write(out.Bytes())
				if !bytes.HasPrefix(res.Stdout[min(len(res.Stdout), all.Len()-out.Len()):], out.Bytes()) {
					t.Errorf("payload %q: Printer %q\nmosquitto_sub output from there: %q", payloads[i], out.Bytes(), res.Stdout[min(len(res.Stdout), all.Len()-out.Len()):min(len(res.Stdout), all.Len()+200)])
					break
				}
			}
			if !bytes.Equal(all.Bytes(), res.Stdout) && !t.Failed() {
				t.Errorf("outputs differ (%d lines from mosquitto_sub)\n%s", len(want), diff(res.Stdout, all.Bytes()))
			}
		})
	}
}

// TestMosquittoSubRefusesSeveralSubscriptionIDs shows why no comparison
// has a PUBLISH with two Subscription Identifiers, which MQTT 5 allows
// (section 3.3.4): libmosquitto 2.0.11 drops the connection on it
// without printing the message. For such a message the Printer follows
// mosquitto_sub's source (TestSeveralSubscriptionIDs).
func TestMosquittoSubRefusesSeveralSubscriptionIDs(t *testing.T) {
	needMosquittoSub(t)
	pubs := []wirePub{
		{QoS: 1, ID: 1, Topic: "t", Payload: []byte("p"), Props: []wireProp{
			{ID: packet.PropSubscriptionID, Num: 1}, {ID: packet.PropSubscriptionID, Num: 2}}},
		{QoS: 0, Topic: "t", Payload: []byte("q")},
	}
	res := runMosquittoSub(t, peerRun{Version: packet.V5, Pubs: pubs, Args: []string{"-F", "%S %t %p"}})
	if res.ServerErr == nil || len(res.Stdout) != 0 {
		t.Fatalf("mosquitto_sub printed %q (server: %v): it takes PUBLISH packets with several subscription identifiers now; add them to peerMessages", res.Stdout, res.ServerErr)
	}
}

// TestMosquittoSubRefusesEmptyTopicWithAlias: libmosquitto 2.0.11 drops
// the connection on a PUBLISH whose topic is empty and whose topic alias
// names a topic set before, so the comparisons use topic aliases only
// with a topic.
func TestMosquittoSubRefusesEmptyTopicWithAlias(t *testing.T) {
	needMosquittoSub(t)
	pubs := []wirePub{
		{QoS: 0, Topic: "set", Payload: []byte("1"), Props: []wireProp{{ID: packet.PropTopicAlias, Num: 3}}},
		{QoS: 1, ID: 1, Topic: "", Payload: []byte("2"), Props: []wireProp{{ID: packet.PropTopicAlias, Num: 3}}},
		{QoS: 0, Topic: "t", Payload: []byte("3")},
	}
	res := runMosquittoSub(t, peerRun{Version: packet.V5, Pubs: pubs, Args: []string{"-F", "%A %t %p"}})
	if res.ServerErr == nil || string(res.Stdout) != "3 set 1\n" {
		t.Fatalf("mosquitto_sub printed %q (server: %v): it resolves topic aliases now; add one to peerMessages", res.Stdout, res.ServerErr)
	}
}

// TestCompileAgreesWithMosquittoSub checks that Compile accepts exactly
// the -F strings mosquitto_sub accepts, on a list of hand-picked strings
// and on random ones. mosquitto_sub checks its format before it
// connects, so it runs here against a closed port: "Connection refused"
// means it took the format.
func TestCompileAgreesWithMosquittoSub(t *testing.T) {
	bin := needMosquittoSub(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	formats := []string{
		"%", "%5", "%-", "%0", "%5.", "%.", "%.5", "%-5.5", "%0-5t", "%--5t", "%-0-t", "%00t", "%.-5t", "%5.5.5t",
		"%z", "%é", "% ", "%%", "%-%", "%05%", "abc%", "\\", "\\q", "\\ ", "\\\\", "@", "@ ", "@@", "ab@", "%t@",
		"%-08.3t", "%.t", "%10.t", "\\0\\a\\e\\n\\r\\t\\v", "%A%C%D%E%F%I%j%J%l%m%P%p%q%R%r%S%t%U%x%X",
		"%B", "%a", "%d", "%s", "%T", "%N", "%n", "%H",
	}
	rng := rand.New(rand.NewPCG(12, 34))
	alphabet := []string{"%", "%", "%", "-", "0", "5", "9", ".", "t", "p", "J", "z", "@", "\\", "n", "q", " ", "é"}
	for range 300 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		formats = append(formats, b.String())
	}
	for _, f := range formats {
		out, _ := exec.Command(bin, "-h", "127.0.0.1", "-p", port, "-t", "x", "-F", f).CombinedOutput()
		theirs := bytes.Contains(out, []byte("Connection refused"))
		if !theirs && !bytes.Contains(out, []byte("specifier")) {
			t.Fatalf("-F %q: unexpected mosquitto_sub output %q", f, out)
		}
		_, cerr := Compile(Options{Format: f, FormatSet: true})
		if ours := cerr == nil; ours != theirs {
			t.Errorf("-F %q: mosquitto_sub accepts: %v (%q); Compile: %v", f, theirs, bytes.TrimSpace(out), cerr)
		}
	}
}
