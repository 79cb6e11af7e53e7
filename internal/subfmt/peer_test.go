package subfmt

// The harness of the byte-for-byte tests: the test is the MQTT server.
// It accepts one mosquitto_sub connection on a loopback port, answers its
// CONNECT and SUBSCRIBE, sends a fixed list of PUBLISH packets (encoded
// here byte by byte, so that the order of their properties is ours to
// choose), completes the QoS 1 and QoS 2 flows mosquitto_sub answers
// with, and returns what mosquitto_sub wrote.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ternmq/tern/packet"
)

const (
	peerTimeout = 60 * time.Second // a mosquitto_sub run is killed after this
	exitWait    = 10 * time.Second // how long mosquitto_sub may take to exit once the server is done
)

// needMosquittoSub skips t when mosquitto_sub is not installed.
func needMosquittoSub(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Skip("mosquitto_sub not installed: apt-get install mosquitto-clients")
	}
	return path
}

// needFaketime skips t when libfaketime is not installed, and returns the
// library to preload.
func needFaketime(t testing.TB) string {
	t.Helper()
	// Debian installs it under the multiarch directory.
	libs, _ := filepath.Glob("/usr/lib/*/faketime/libfaketime.so.1")
	for _, p := range append(libs, "/usr/lib/faketime/libfaketime.so.1") {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("libfaketime not installed: apt-get install faketime")
	return ""
}

// wireProp is one MQTT 5 property of a wirePub, encoded in list order.
type wireProp struct {
	ID  packet.PropertyID
	Num uint32 // byte, two-byte, four-byte and variable byte integers
	Str string // strings; the name of a user property
	Val string // the value of a user property
	Bin []byte // binary data
}

// wirePub is a PUBLISH as the test server sends it.
type wirePub struct {
	QoS     byte
	Retain  bool
	Topic   string
	ID      uint16
	Props   []wireProp // sent only to MQTT 5 clients
	Payload []byte
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, x uint32) []byte {
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if x > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if x == 0 {
			return b
		}
	}
}

// encode returns p on the wire for version v.
func (p *wirePub) encode(v packet.Version) []byte {
	var body []byte
	body = appendStr(body, p.Topic)
	if p.QoS > 0 {
		body = binary.BigEndian.AppendUint16(body, p.ID)
	}
	if v == packet.V5 {
		var props []byte
		for _, pr := range p.Props {
			props = append(props, byte(pr.ID))
			switch pr.ID {
			case packet.PropPayloadFormat:
				props = append(props, byte(pr.Num))
			case packet.PropTopicAlias:
				props = binary.BigEndian.AppendUint16(props, uint16(pr.Num))
			case packet.PropMessageExpiry:
				props = binary.BigEndian.AppendUint32(props, pr.Num)
			case packet.PropSubscriptionID:
				props = appendVarint(props, pr.Num)
			case packet.PropContentType, packet.PropResponseTopic:
				props = appendStr(props, pr.Str)
			case packet.PropCorrelationData:
				props = appendStr(props, string(pr.Bin))
			case packet.PropUser:
				props = appendStr(appendStr(props, pr.Str), pr.Val)
			default:
				panic(fmt.Sprintf("wirePub: property %v not handled", pr.ID))
			}
		}
		body = appendVarint(body, uint32(len(props)))
		body = append(body, props...)
	}
	body = append(body, p.Payload...)
	flags := p.QoS << 1
	if p.Retain {
		flags |= 1
	}
	out := []byte{0x30 | flags}
	out = appendVarint(out, uint32(len(body)))
	return append(out, body...)
}

// order returns the wire order of p's properties.
func (p *wirePub) order() []packet.PropertyID {
	ids := make([]packet.PropertyID, len(p.Props))
	for i, pr := range p.Props {
		ids[i] = pr.ID
	}
	return ids
}

// message decodes p as version v with package packet and returns the
// Message a subscriber hands to a Printer; topic is the topic the alias
// resolves to when p carries none.
func (p *wirePub) message(t testing.TB, v packet.Version, topic string, at time.Time) *Message {
	t.Helper()
	pk, n, err := packet.Decode(v, p.encode(v))
	if err != nil {
		t.Fatalf("decoding %+v: %v", p, err)
	}
	if n != len(p.encode(v)) {
		t.Fatalf("decoding %+v: %d bytes used", p, n)
	}
	m := &Message{}
	m.SetPublish(pk.(*packet.Publish), at)
	if v == packet.V5 {
		m.PropertyOrder = p.order()
	}
	if m.Topic == "" {
		m.Topic = topic
	}
	return m
}

// peerRun describes one mosquitto_sub run against the test server.
type peerRun struct {
	Version packet.Version
	Pubs    []wirePub
	Args    []string // mosquitto_sub's output options: -F ..., -v, -N, --pretty
	Env     []string // added to the environment (TZ=..., FAKETIME=...)
	Count   int      // -C; 0 means len(Pubs)
}

// peerResult is what mosquitto_sub wrote.
type peerResult struct {
	Stdout, Stderr []byte
	Exit           int
	ServerErr      error // the test server's complaint: a PUBLISH not acknowledged, ...
	Killed         bool  // mosquitto_sub did not exit within exitWait after the server was done
}

// runMosquittoSub runs mosquitto_sub against a one-connection server that
// sends r.Pubs and returns its output.
func runMosquittoSub(t testing.TB, r peerRun) peerResult {
	t.Helper()
	bin := needMosquittoSub(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	ver := map[packet.Version]string{packet.V31: "mqttv31", packet.V311: "mqttv311", packet.V5: "mqttv5"}[r.Version]
	count := r.Count
	if count == 0 {
		count = len(r.Pubs)
	}
	args := []string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "#", "-q", "2",
		"-V", ver, "-C", fmt.Sprint(count), "-i", "subfmt-test", "-k", "600"}
	if r.Version == packet.V5 {
		args = append(args, "-D", "connect", "topic-alias-maximum", "100")
	}
	args = append(args, r.Args...)

	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), r.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	served := make(chan error, 1)
	go func() { served <- serveOne(ctx, ln, r.Version, r.Pubs) }()
	var werr, srvErr error
	res := peerResult{}
	select {
	case srvErr = <-served:
		ln.Close()
		if srvErr != nil {
			cancel() // a message went unacknowledged: the client is stuck or gone
		}
		select {
		case werr = <-exited:
		case <-time.After(exitWait):
			// A client that dropped the connection on a packet it
			// refuses may try to connect again instead of exiting.
			cancel()
			werr = <-exited
			res.Killed = true
		}
	case werr = <-exited: // before or while being served
		ln.Close()
		srvErr = <-served
	}
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	if srvErr != nil {
		res.ServerErr = srvErr
	}
	var ee *exec.ExitError
	switch {
	case res.Killed:
	case errors.As(werr, &ee):
		res.Exit = ee.ExitCode()
	case werr != nil:
		t.Fatalf("mosquitto_sub: %v", werr)
	}
	return res
}

// run is runMosquittoSub for a run that must go through: every message
// delivered and acknowledged, and mosquitto_sub exiting by itself.
func (r peerRun) run(t testing.TB) peerResult {
	t.Helper()
	res := runMosquittoSub(t, r)
	if res.ServerErr != nil || res.Killed {
		t.Fatalf("mosquitto_sub %q: server: %v, killed: %v; stdout %q stderr %q", r.Args, res.ServerErr, res.Killed, res.Stdout, res.Stderr)
	}
	return res
}

// serveOne accepts one client on ln and sends it pubs.
func serveOne(ctx context.Context, ln net.Listener, v packet.Version, pubs []wirePub) error {
	conn, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	rd := packet.NewReader(conn)
	wr := packet.NewWriter(conn)
	pk, err := rd.ReadPacket()
	if err != nil {
		return fmt.Errorf("reading CONNECT: %w", err)
	}
	if c, ok := pk.(*packet.Connect); !ok || c.Version != v {
		return fmt.Errorf("first packet %v, want a CONNECT of version %v", pk, v)
	}
	wr.Version = v
	if err := wr.WritePacket(&packet.Connack{}); err != nil {
		return err
	}
	// next reads packets until one of type want arrives, answering PINGREQ.
	// It returns nil, nil when the client has gone (DISCONNECT or EOF).
	next := func(want packet.Type) (packet.Packet, error) {
		for {
			pk, err := rd.ReadPacket()
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
					return nil, nil
				}
				return nil, err
			}
			switch pk.Type() {
			case want:
				return pk, nil
			case packet.PINGREQ:
				if err := wr.WritePacket(&packet.Pingresp{}); err != nil {
					return nil, err
				}
			case packet.DISCONNECT:
				return nil, nil
			default:
				return nil, fmt.Errorf("got %v while waiting for %v", pk, want)
			}
		}
	}
	pk, err = next(packet.SUBSCRIBE)
	if err != nil || pk == nil {
		return fmt.Errorf("waiting for SUBSCRIBE: %v", err)
	}
	sub := pk.(*packet.Subscribe)
	codes := make([]packet.ReasonCode, len(sub.Subscriptions))
	for i := range codes {
		codes[i] = 2 // granted QoS 2
	}
	if err := wr.WritePacket(&packet.Suback{PacketID: sub.PacketID, ReasonCodes: codes}); err != nil {
		return err
	}
	for i := range pubs {
		p := &pubs[i]
		last := i == len(pubs)-1 // mosquitto_sub -C may leave before acknowledging it
		if _, err := conn.Write(p.encode(v)); err != nil {
			return fmt.Errorf("writing PUBLISH %d: %w", i, err)
		}
		switch p.QoS {
		case 1:
			if pk, err = next(packet.PUBACK); err != nil || pk == nil {
				return ackErr(i, last, "PUBACK", err)
			}
		case 2:
			if pk, err = next(packet.PUBREC); err != nil || pk == nil {
				return ackErr(i, last, "PUBREC", err)
			}
			if err := wr.WritePacket(&packet.Pubrel{PacketID: p.ID}); err != nil {
				return err
			}
			if pk, err = next(packet.PUBCOMP); err != nil || pk == nil {
				return ackErr(i, last, "PUBCOMP", err)
			}
		}
	}
	// mosquitto_sub -C disconnects after the last message it counts.
	_, err = next(packet.DISCONNECT)
	return err
}

// ackErr reports a missing acknowledgement; a client that leaves after
// the last message is fine.
func ackErr(i int, last bool, what string, err error) error {
	if err == nil {
		if last {
			return nil
		}
		err = errors.New("the client went away")
	}
	return fmt.Errorf("PUBLISH %d: waiting for %s: %w", i, what, err)
}
