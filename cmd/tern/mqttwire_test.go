package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

// subscribeOnWire runs bin (tern sub or mosquitto_sub, args after the
// host and port) against a fake server (mqtttest.ListenRaw) and returns
// the SUBSCRIBE it sent.
func subscribeOnWire(t *testing.T, bin string, args ...string) *packet.Subscribe {
	t.Helper()
	srv := mqtttest.ListenRaw(t)
	host, port, _ := strings.Cut(srv.Addr, ":")
	p := startProc(t, bin, append([]string{"-h", host, "-p", port}, args...)...)
	sc, _ := srv.AcceptConnect(nil)
	sp := mqtttest.Expect[*packet.Subscribe](sc)
	sc.Send(&packet.Suback{PacketID: sp.PacketID, ReasonCodes: make([]packet.ReasonCode, len(sp.Subscriptions))})
	if code, _, e := p.wait(); code != 0 {
		t.Fatalf("%s %q: exit %d %s", bin, args, code, e)
	}
	return sp
}

// TestSubIDOnWire: tern sub sends no Subscription Identifier unless asked
// (as mosquitto_sub), and the one asked for with --sub-id or -D subscribe
// subscription-identifier; its SUBSCRIBE is mosquitto_sub's where
// mosquitto_sub has the option.
func TestSubIDOnWire(t *testing.T) {
	tern := ternBinary(t)
	mosq := mqtttest.NeedBinary(t, "mosquitto_sub", "mosquitto-clients")
	for _, tc := range []struct {
		args    []string
		want    []uint32
		mosqToo bool
	}{
		{[]string{"-V", "5", "-t", "a/#", "-q", "1"}, nil, true},
		{[]string{"-V", "5", "-t", "a/#", "-t", "b", "-D", "subscribe", "subscription-identifier", "7"}, []uint32{7}, true},
		{[]string{"-V", "5", "-t", "a/#", "--sub-id", "268435455"}, []uint32{268435455}, false},
		{[]string{"-V", "5", "-t", "a", "--no-local", "--retain-handling", "1", "--retain-as-published", "--sub-id", "9"}, []uint32{9}, false},
		{[]string{"-V", "311", "-t", "a/#", "-q", "2"}, nil, true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got := subscribeOnWire(t, tern, append([]string{"sub"}, append(tc.args, "-E")...)...)
			if ids := got.Properties.SubscriptionIDs; !reflect.DeepEqual(ids, tc.want) || got.Properties.Has(packet.PropSubscriptionID) != (tc.want != nil) {
				t.Errorf("tern sub sent subscription identifiers %v, want %v", ids, tc.want)
			}
			if !tc.mosqToo {
				return
			}
			want := subscribeOnWire(t, mosq, append(tc.args, "-E")...)
			if !reflect.DeepEqual(got.Subscriptions, want.Subscriptions) || !reflect.DeepEqual(got.Properties, want.Properties) {
				t.Errorf("tern sub SUBSCRIBE %+v %+v\nmosquitto_sub's %+v %+v", got.Subscriptions, got.Properties, want.Subscriptions, want.Properties)
			}
		})
	}
}

// inflightPeak publishes n lines with bin and pre (tern pub, or
// mosquitto_pub) -l -q 1 and extra to a fake server that withholds each PUBACK until
// nothing more comes, and returns the most PUBLISHes it had
// unacknowledged at once.
func inflightPeak(t *testing.T, n int, bin string, pre []string, extra ...string) int {
	t.Helper()
	srv := mqtttest.ListenRaw(t)
	host, port, _ := strings.Cut(srv.Addr, ":")
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "m%d\n", i)
	}
	args := append(append(pre, "-h", host, "-p", port, "-t", "inflight", "-q", "1", "-l"), extra...)
	p := startProcIn(t, strings.NewReader(lines.String()), bin, args...)
	sc, _ := srv.AcceptConnect(nil)
	var unacked []uint16
	peak := 0
	for got := 0; got < n; {
		// Take every PUBLISH that comes; once none came for a moment,
		// the window is full (or the lines not yet read): acknowledge the
		// oldest. The pause only paces the test; the count decides.
		pk, err := sc.RecvTimeout(300 * time.Millisecond)
		switch {
		case err == nil:
			pub, ok := pk.(*packet.Publish)
			if !ok {
				t.Fatalf("%s: %v, want a PUBLISH", bin, pk)
			}
			got++
			unacked = append(unacked, pub.PacketID)
			peak = max(peak, len(unacked))
		case mqtttest.IsTimeout(err) && len(unacked) > 0:
			sc.Send(&packet.Puback{PacketID: unacked[0]})
			unacked = unacked[1:]
		default:
			t.Fatalf("%s: waiting for a PUBLISH: %v", bin, err)
		}
	}
	for _, id := range unacked {
		sc.Send(&packet.Puback{PacketID: id})
	}
	if code, _, e := p.wait(); code != 0 {
		t.Fatalf("%s %q: exit %d %s", bin, args, code, e)
	}
	return peak
}

// TestPubMaxInflight: tern pub -l -M N keeps at most N QoS 1 messages
// unacknowledged, as mosquitto_pub does, and sends the lines without
// waiting for each acknowledgement (so -M is what bounds them).
func TestPubMaxInflight(t *testing.T) {
	tern := ternBinary(t)
	for _, v := range []string{"5", "311"} {
		for _, m := range []int{1, 3} {
			t.Run(fmt.Sprintf("V%s/M%d", v, m), func(t *testing.T) {
				if got := inflightPeak(t, 8, tern, []string{"pub"}, "-V", v, "-M", fmt.Sprint(m)); got != m {
					t.Errorf("tern pub -M %d: at most %d unacknowledged, want %d", m, got, m)
				}
			})
		}
	}
	t.Run("default", func(t *testing.T) {
		// -M 20 by default: all 8 lines go out before any PUBACK.
		if got := inflightPeak(t, 8, tern, []string{"pub"}, "-V", "5"); got != 8 {
			t.Errorf("tern pub -l: at most %d unacknowledged, want all 8", got)
		}
	})
	t.Run("mosquitto_pub", func(t *testing.T) {
		mosq := mqtttest.NeedBinary(t, "mosquitto_pub", "mosquitto-clients")
		if got := inflightPeak(t, 8, mosq, nil, "-V", "5", "-M", "3"); got != 3 {
			t.Errorf("mosquitto_pub -M 3: at most %d unacknowledged, want 3", got)
		}
	})
}
