package bridge

import (
	"strconv"
	"testing"
	"time"
)

func TestEchoTable(t *testing.T) {
	now := time.Unix(1000, 0)
	e := newEchoTable()
	e.now = func() time.Time { return now }
	if e.echo("t", []byte("x")) {
		t.Fatal("an echo of nothing sent")
	}
	e.sent("t", []byte("x"))
	e.sent("t", []byte("x"))
	if e.echo("t", []byte("y")) || e.echo("u", []byte("x")) {
		t.Fatal("another payload or topic taken as the echo")
	}
	if !e.echo("t", []byte("x")) || !e.echo("t", []byte("x")) {
		t.Fatal("the two echoes of two messages sent not recognised")
	}
	if e.echo("t", []byte("x")) {
		t.Fatal("a third message taken as an echo of two")
	}
	e.sent("t", []byte("late"))
	now = now.Add(echoTTL + time.Second)
	if e.echo("t", []byte("late")) {
		t.Fatal("an echo after the TTL")
	}
	if e.len() != 0 {
		t.Fatalf("%d entries left", e.len())
	}
	for i := range echoMax + 10 {
		e.sent("t", []byte(strconv.Itoa(i)))
	}
	if n := e.len(); n > echoMax {
		t.Fatalf("%d entries, above the bound %d", n, echoMax)
	}
}
