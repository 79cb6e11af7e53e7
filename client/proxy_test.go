package client_test

import (
	"strings"
	"testing"

	"github.com/ternmq/tern/mqtttest"
)

// hostPort is the host:port of a broker URL.
func hostPort(url string) string { return url[strings.Index(url, "://")+3:] }

// passProxy puts an mqtttest.CutProxy in front of the broker at url that
// forwards everything until the test cuts (CutNow), black-holes
// (BlackHoleNow) or refuses (Refuse) connections.
func passProxy(t testing.TB, url string) *mqtttest.CutProxy {
	t.Helper()
	return mqtttest.StartCutProxy(t, mqtttest.CutProxyConfig{Target: hostPort(url)})
}

// countingProxy is a CutProxy and the direction its trigger counts.
type countingProxy struct {
	*mqtttest.CutProxy
	dir mqtttest.Direction
}

// cutProxy puts an mqtttest.CutProxy in front of the broker at url that
// cuts its first connection after n bytes client→server (up) or
// server→client; n < 0 only counts them.
func cutProxy(t testing.TB, url string, n int64, up bool) countingProxy {
	t.Helper()
	cfg := mqtttest.CutProxyConfig{Target: hostPort(url), Conn: 1, Dir: mqtttest.ServerToClient}
	if up {
		cfg.Dir = mqtttest.ClientToServer
	}
	if n >= 0 {
		cfg.Mode, cfg.After = mqtttest.Cut, n
	}
	return countingProxy{mqtttest.StartCutProxy(t, cfg), cfg.Dir}
}

// counted is the bytes forwarded in the counted direction on the first
// connection.
func (p countingProxy) counted() int64 {
	conns := p.Conns()
	if len(conns) == 0 {
		return 0
	}
	return conns[0].Forwarded[p.dir]
}
