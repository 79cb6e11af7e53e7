package broker

import (
	"log/slog"
	"net"
)

// logAddr logs a network address as the string "127.0.0.1:45368" in
// every handler: slog's JSON handler would write a *net.TCPAddr as an
// object ({"IP":…,"Port":…,"Zone":""}). It is formatted only when the
// line is written.
type logAddr struct{ a net.Addr }

// LogValue implements slog.LogValuer.
func (l logAddr) LogValue() slog.Value {
	if l.a == nil {
		return slog.StringValue("")
	}
	return slog.StringValue(l.a.String())
}

// userAttr is the "user" attribute of a log line: the client's user name,
// left out (slog's handlers skip the zero Attr) when it has none.
func userAttr(user string) slog.Attr {
	if user == "" {
		return slog.Attr{}
	}
	return slog.String("user", user)
}
