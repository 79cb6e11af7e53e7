package loadgen

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// CSVHeader is the header row of WriteCSV: one row per Sample.
//
//	elapsed_s         seconds since the run started (the end of the sample's interval)
//	sent              PUBLISH packets written by the publishers, in all
//	sent_per_sec      of which per second over the sample's interval
//	received          distinct messages received by the subscribers, in all
//	received_per_sec  of which per second over the interval
//	acked             QoS 1/2 publishes acknowledged, in all
//	inflight          QoS 1/2 publishes written and not yet acknowledged
//	connections       connections up
//	connects          connections opened since the start
//	connects_per_sec  of which per second over the interval
var CSVHeader = []string{"elapsed_s", "sent", "sent_per_sec", "received", "received_per_sec",
	"acked", "inflight", "connections", "connects", "connects_per_sec"}

// WriteCSV writes r's time series as CSV: the CSVHeader row, then one row
// per Sample. Rates have three decimals.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, s := range r.Series {
		cw.Write([]string{f(s.Elapsed.Seconds()), i(s.Sent), f(s.SentRate), i(s.Received), f(s.ReceivedRate),
			i(s.Acked), i(s.Inflight), i(s.Connections), i(s.Connects), f(s.ConnectRate)})
	}
	cw.Flush()
	return cw.Error()
}

// Colours of the client groups in the charts.
var groupColor = map[string]string{
	GroupPublishers:  "#1f77b4",
	GroupSubscribers: "#d62728",
	GroupConnections: "#2ca02c",
}

// WriteHTML writes r as one self-contained HTML page (inline CSS and SVG,
// no script, nothing fetched): the run's parameters and table, the
// throughput over time of each client group, and for each group with
// latencies a histogram and a percentile plot.
func (r *Result) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	title := "tern bench " + r.Scenario
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fff;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
table.params td{padding:0 1.5em 0 0}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}
svg.chart{background:#fff;border:1px solid #ddd}
svg text{font-size:12px;fill:#333}
svg .grid{stroke:#e5e5e5}
svg .axis{stroke:#888}
.legend span{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}
</style></head><body>
<h1>%s</h1>
`, esc(title), esc(title))
	b.WriteString("<table class=\"params\">\n")
	param := func(k, v string) { fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td></tr>\n", esc(k), esc(v)) }
	param("broker", r.URL)
	param("started", r.Started.Format(time.RFC3339))
	param("run id", r.RunID)
	param("protocol", map[int]string{3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5.0"}[r.Protocol])
	switch layoutOf(r.Scenario) {
	case layoutConnect, layoutIdle:
		param("connections", strconv.Itoa(r.Connections))
	default:
		param("QoS", strconv.Itoa(r.QoS))
		if r.Publishers > 0 {
			param("publishers", strconv.Itoa(r.Publishers))
		}
		if r.Subscribers > 0 {
			param("subscribers", strconv.Itoa(r.Subscribers))
		}
		param("payload", strconv.Itoa(r.PayloadBytes)+" bytes")
		if r.TargetRate > 0 {
			param("target rate", human(r.TargetRate)+" msgs/s")
		}
	}
	b.WriteString("</table>\n")
	var table bytes.Buffer
	WriteTable(&table, r)
	fmt.Fprintf(&b, "<pre class=\"summary\">%s</pre>\n", esc(table.String()))

	b.WriteString("<h2>Throughput over time</h2>\n<div class=\"charts\">\n")
	b.WriteString(r.throughputChart())
	if layoutOf(r.Scenario) == layoutConnect || layoutOf(r.Scenario) == layoutIdle {
		b.WriteString(r.connectionsChart())
	}
	b.WriteString("</div>\n")

	for _, g := range r.Latency {
		fmt.Fprintf(&b, "<h2>Latency of the %s: %s</h2>\n", esc(g.Group), esc(g.What))
		h := g.Hist
		fmt.Fprintf(&b, "<p class=\"percentiles\">%d samples; p50 %s, p90 %s, p99 %s, p99.9 %s, max %s, mean %s</p>\n",
			h.Count(), durMs(h.Percentile(50)), durMs(h.Percentile(90)), durMs(h.Percentile(99)),
			durMs(h.Percentile(99.9)), durMs(h.Max()), durMs(h.Mean()))
		b.WriteString("<div class=\"charts\">\n")
		b.WriteString(histogramChart(g))
		b.WriteString(percentileChart(g))
		b.WriteString("</div>\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func durMs(d time.Duration) string { return msText(float64(d) / 1e6) }

// Chart geometry.
const (
	chartW, chartH = 520, 300
	padL, padR     = 64, 16
	padT, padB     = 28, 44
	plotW, plotH   = chartW - padL - padR, chartH - padT - padB
)

// line is one series of a chart.
type line struct {
	name, color string
	xs, ys      []float64
}

// axis maps values to pixels, linearly or on log10.
type axis struct {
	lo, hi float64
	log    bool
	px     float64 // length in pixels
	flip   bool    // y: larger values higher up
}

func (a axis) pos(v float64) float64 {
	lo, hi := a.lo, a.hi
	if a.log {
		v, lo, hi = math.Log10(math.Max(v, a.lo)), math.Log10(lo), math.Log10(hi)
	}
	f := 0.0
	if hi > lo {
		f = (v - lo) / (hi - lo)
	}
	if a.flip {
		return float64(padT) + a.px*(1-f)
	}
	return float64(padL) + a.px*f
}

// niceTicks returns about n round values from 0 (or lo) to at least hi.
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ts []float64
	for v := math.Floor(lo/step) * step; v <= hi+step/2; v += step {
		ts = append(ts, v)
	}
	return ts
}

// logTicks returns the 1-2-5 values between lo and hi, or the powers of
// ten alone when those would be too many.
func logTicks(lo, hi float64) []float64 {
	ms := []float64{1, 2, 5}
	if hi/lo > 1e3 {
		ms = ms[:1]
	}
	var ts []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range ms {
			v := m * math.Pow(10, e)
			if v >= lo*0.999 && v <= hi*1.001 {
				ts = append(ts, v)
			}
		}
	}
	return ts
}

// svgOpen starts a chart: its frame, title, axis labels and grid.
func svgOpen(b *strings.Builder, class, title, xLabel, yLabel string, x, y axis, xTicks, yTicks []float64, xFmt, yFmt func(float64) string) {
	esc := html.EscapeString
	fmt.Fprintf(b, `<svg class="chart %s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		class, chartW, chartH, chartW, chartH, esc(title))
	fmt.Fprintf(b, `<text x="%d" y="18" font-weight="bold">%s</text>`+"\n", padL, esc(title))
	for _, t := range yTicks {
		py := y.pos(t)
		fmt.Fprintf(b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			padL, padL+plotW, py, py, padL-6, py+4, esc(yFmt(t)))
	}
	for _, t := range xTicks {
		px := x.pos(t)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			px, px, padT, padT+plotH, px, padT+plotH+16, esc(xFmt(t)))
	}
	fmt.Fprintf(b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/><line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/>`+"\n",
		padL, padL+plotW, padT+plotH, padT+plotH, padL, padL, padT, padT+plotH)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, chartH-6, esc(xLabel))
	fmt.Fprintf(b, `<text transform="translate(14 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padT+plotH/2, esc(yLabel))
}

// lineChart draws lines with a marker on every point, and a legend.
func lineChart(class, title, xLabel, yLabel string, x, y axis, xTicks, yTicks []float64, xFmt, yFmt func(float64) string, lines []line) string {
	var b strings.Builder
	svgOpen(&b, class, title, xLabel, yLabel, x, y, xTicks, yTicks, xFmt, yFmt)
	lx := padL + 8*len(title) + 24 // the legend follows the title
	for _, l := range lines {
		var pts []string
		for i := range l.xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x.pos(l.xs[i]), y.pos(l.ys[i])))
		}
		fmt.Fprintf(&b, `<g class="series" data-group="%s" data-points="%d">`, html.EscapeString(l.name), len(pts))
		width := 2
		if l.name == GroupPublishers {
			width = 4 // under the subscribers' line when the two are equal
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%d" points="%s"/>`, l.color, width, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.SplitN(p, ",", 2)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, xy[0], xy[1], l.color)
		}
		b.WriteString("</g>\n")
		fmt.Fprintf(&b, `<rect x="%d" y="10" width="12" height="4" fill="%s"/><text x="%d" y="18">%s</text>`+"\n",
			lx, l.color, lx+16, html.EscapeString(l.name))
		lx += 24 + 8*len(l.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func secFmt(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) + "s" }

// latFmt formats a latency tick given in milliseconds, briefly.
func latFmt(ms float64) string {
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }
	switch {
	case ms == 0:
		return "0"
	case ms < 1:
		return g(ms*1000) + "µs"
	case ms < 1000:
		return g(ms) + "ms"
	default:
		return g(ms/1000) + "s"
	}
}

// throughputChart plots the per-second rates of each client group.
func (r *Result) throughputChart() string {
	var lines []line
	add := func(name string, rate func(Sample) float64, total func(Sample) int64) {
		any := false
		for _, s := range r.Series {
			any = any || total(s) > 0
		}
		if !any {
			return
		}
		l := line{name: name, color: groupColor[name]}
		for _, s := range r.Series {
			l.xs = append(l.xs, s.Elapsed.Seconds())
			l.ys = append(l.ys, rate(s))
		}
		lines = append(lines, l)
	}
	title, unit := "Sent and received per second", "messages per second"
	switch layoutOf(r.Scenario) {
	case layoutConnect, layoutIdle:
		title, unit = "Connections opened per second", "connections per second"
		add(GroupConnections, func(s Sample) float64 { return s.ConnectRate }, func(s Sample) int64 { return s.Connects })
	default:
		add(GroupPublishers, func(s Sample) float64 { return s.SentRate }, func(s Sample) int64 { return s.Sent })
		add(GroupSubscribers, func(s Sample) float64 { return s.ReceivedRate }, func(s Sample) int64 { return s.Received })
	}
	return seriesChart("throughput", title, unit, lines, human)
}

// connectionsChart plots the connections up over time, from none at the
// start.
func (r *Result) connectionsChart() string {
	l := line{name: GroupConnections, color: groupColor[GroupConnections], xs: []float64{0}, ys: []float64{0}}
	for _, s := range r.Series {
		l.xs = append(l.xs, s.Elapsed.Seconds())
		l.ys = append(l.ys, float64(s.Connections))
	}
	return seriesChart("connections", "Connections up", "connections", []line{l}, human)
}

// seriesChart is a line chart over the run's elapsed seconds.
func seriesChart(class, title, yLabel string, lines []line, yFmt func(float64) string) string {
	xHi, yHi := 1.0, 1.0
	for _, l := range lines {
		for i := range l.xs {
			xHi, yHi = math.Max(xHi, l.xs[i]), math.Max(yHi, l.ys[i])
		}
	}
	xt, yt := niceTicks(0, xHi, 6), niceTicks(0, yHi, 5)
	x := axis{lo: 0, hi: xt[len(xt)-1], px: plotW}
	y := axis{lo: 0, hi: yt[len(yt)-1], px: plotH, flip: true}
	return lineChart(class, title, "elapsed time", yLabel, x, y, xt, yt, secFmt, yFmt, lines)
}

// histogramChart draws g's latency distribution as bars over a log scale
// of latency: 40 bins from the smallest to the largest value.
func histogramChart(g LatencyGroup) string {
	h := g.Hist
	lo := math.Max(float64(h.Min())/1e6, 0.001) // ms, at least 1µs
	hi := math.Max(float64(h.Max())/1e6, lo*10)
	const bins = 40
	counts := make([]uint64, bins)
	llo, lhi := math.Log10(lo), math.Log10(hi)
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		blo, bhi := bucketRange(i)
		mid := math.Max(float64(blo+bhi)/2/1e6, lo)
		k := int(float64(bins) * (math.Log10(mid) - llo) / (lhi - llo))
		counts[min(max(k, 0), bins-1)] += c
	}
	var top uint64 = 1
	for _, c := range counts {
		top = max(top, c)
	}
	x := axis{lo: lo, hi: hi, log: true, px: plotW}
	yt := niceTicks(0, float64(top), 4)
	y := axis{lo: 0, hi: yt[len(yt)-1], px: plotH, flip: true}
	var b strings.Builder
	svgOpen(&b, "histogram", "Histogram", "latency (log scale)", "messages", x, y, logTicks(lo, hi), yt,
		latFmt, human)
	color := groupColor[g.Group]
	fmt.Fprintf(&b, `<g class="bars" data-group="%s">`, html.EscapeString(g.Group))
	for k, c := range counts {
		if c == 0 {
			continue
		}
		x0 := x.pos(math.Pow(10, llo+(lhi-llo)*float64(k)/bins))
		x1 := x.pos(math.Pow(10, llo+(lhi-llo)*float64(k+1)/bins))
		y0 := y.pos(float64(c))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d</title></rect>`,
			x0, y0, math.Max(x1-x0-1, 1), float64(padT+plotH)-y0, color, c)
	}
	b.WriteString("</g>\n</svg>\n")
	return b.String()
}

// percentileChart plots latency against percentile on a scale of nines
// (0, 90, 99, 99.9, ...), as HdrHistogram's plots do, up to the nines the
// sample count supports.
func percentileChart(g LatencyGroup) string {
	h := g.Hist
	nines := math.Min(math.Max(math.Log10(float64(h.Count())), 1), 5)
	l := line{name: g.Group, color: groupColor[g.Group]}
	yHi := 0.0
	for x := 0.0; x <= nines+1e-9; x += nines / 100 {
		q := 100 * (1 - math.Pow(10, -x))
		v := float64(h.Percentile(q)) / 1e6
		l.xs, l.ys = append(l.xs, x), append(l.ys, v)
		yHi = math.Max(yHi, v)
	}
	var xt []float64
	for i := 0.0; i <= math.Floor(nines); i++ {
		xt = append(xt, i)
	}
	yt := niceTicks(0, math.Max(yHi, 0.001), 5)
	x := axis{lo: 0, hi: nines, px: plotW}
	y := axis{lo: 0, hi: yt[len(yt)-1], px: plotH, flip: true}
	nineFmt := func(v float64) string {
		return strconv.FormatFloat(100*(1-math.Pow(10, -v)), 'g', 6, 64) + "%"
	}
	return lineChart("percentiles", "Percentiles", "percentile", "latency", x, y, xt, yt, nineFmt, latFmt, []line{l})
}
