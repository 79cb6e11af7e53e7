package mqtttest_test

import (
	"strings"
	"testing"

	"github.com/ternmq/tern/mqtttest"
	"github.com/ternmq/tern/packet"
)

func TestRefuserRedirect(t *testing.T) {
	t.Parallel()
	r := mqtttest.StartRefuser(t, mqtttest.RefuserConfig{Code: packet.ServerMoved, ServerReference: "other:1883", ReasonString: "moved"})
	for _, v := range []packet.Version{packet.V5, packet.V311, packet.V31} {
		c := mqtttest.DialRaw(t, r.Addr, v)
		c.Send(&packet.Connect{ClientID: "c-" + v.String(), CleanStart: true, Username: "u"})
		c.Send(&packet.Pingreq{}) // sent before the CONNACK came: must not spoil it
		ack := mqtttest.Expect[*packet.Connack](c)
		want := packet.ServerMoved
		if v != packet.V5 {
			want = packet.V3ServerUnavailable // ServerMoved.V3Connack()
		}
		if ack.ReasonCode != want || ack.SessionPresent {
			t.Errorf("%v: CONNACK %v, want code 0x%02x", v, ack, byte(want))
		}
		if v == packet.V5 && (ack.Properties.ServerReference != "other:1883" || ack.Properties.ReasonString != "moved") {
			t.Errorf("%v: CONNACK properties %+v", v, ack.Properties)
		}
		if got := c.ExpectClosed(); len(got) != 0 {
			t.Errorf("%v: after the CONNACK: %v", v, got)
		}
	}
	got := r.Connects()
	if len(got) != 3 || got[0].ClientID != "c-5.0" || got[0].Username != "u" || got[2].Version != packet.V31 {
		t.Fatalf("Connects: %v", got)
	}
}

func TestRefuserDefaults(t *testing.T) {
	t.Parallel()
	r := mqtttest.StartRefuser(t, mqtttest.RefuserConfig{V3Code: packet.V3NotAuthorized})
	c := mqtttest.DialRaw(t, r.Addr, packet.V5)
	c.Send(&packet.Connect{ClientID: "a", CleanStart: true})
	if ack := mqtttest.Expect[*packet.Connack](c); ack.ReasonCode != packet.ServerUnavailable {
		t.Fatalf("CONNACK %v, want 0x88", ack)
	}
	c = mqtttest.DialRaw(t, r.Addr, packet.V311)
	c.Send(&packet.Connect{ClientID: "b", CleanStart: true})
	if ack := mqtttest.Expect[*packet.Connack](c); ack.ReasonCode != packet.V3NotAuthorized {
		t.Fatalf("CONNACK %v, want the configured V3Code 5", ack)
	}
	// A first packet that is not CONNECT: closed without a CONNACK.
	c = mqtttest.DialRaw(t, r.Addr, packet.V311)
	c.Send(&packet.Pingreq{})
	if got := c.ExpectClosed(); len(got) != 0 {
		t.Fatalf("after PINGREQ: %v", got)
	}
	if n := len(r.Connects()); n != 2 {
		t.Fatalf("%d CONNECTs recorded, want 2", n)
	}
}

func TestRefuserBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  mqtttest.RefuserConfig
		want string
	}{
		{mqtttest.RefuserConfig{Code: packet.Success + 1}, "RefuserConfig.Code"},
		{mqtttest.RefuserConfig{Code: packet.Banned + 0x40}, "RefuserConfig.Code"},
		{mqtttest.RefuserConfig{V3Code: 6}, "RefuserConfig.V3Code"},
	} {
		ft := &fakeT{TB: t}
		ft.run(func() { mqtttest.StartRefuser(ft, tc.cfg) })
		if !ft.failed || !strings.Contains(ft.msg, tc.want) {
			t.Errorf("%+v: failed %v, message %q; want one naming %s", tc.cfg, ft.failed, ft.msg, tc.want)
		}
	}
}
