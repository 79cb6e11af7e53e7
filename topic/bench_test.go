package topic

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

var metrics = []string{"temp", "hum", "pressure", "co2", "battery", "rssi", "voltage", "current"}

// build100k returns a trie of 100,000 subscriptions in a realistic mix, and
// names to publish on: per-device exact filters, per-device wildcard
// filters, and a few fleet-wide wildcard filters held by a few monitoring
// clients.
func build100k() (*Trie[string, uint8], []string) {
	tr := NewTrie[string, uint8]()
	r := rand.New(rand.NewPCG(7, 7))
	const ids = 20000
	n := 0
	add := func(f, key string) {
		if !tr.Add(f, key, uint8(n%3)) {
			n++
		}
	}
	// A few fleet-wide wildcard filters.
	for k := 0; k < 3; k++ {
		add("#", "monitor-"+strconv.Itoa(k))
		add("$SYS/#", "monitor-"+strconv.Itoa(k))
	}
	for k := 0; k < 5; k++ {
		add("devices/#", "archiver-"+strconv.Itoa(k))
		for _, m := range metrics {
			add("devices/+/telemetry/"+m, "dashboard-"+strconv.Itoa(k))
		}
	}
	for k := 0; k < 50; k++ {
		add("devices/+/status", "ops-"+strconv.Itoa(k))
	}
	// 15,000 devices/{id}/+/temp and 4,900 devices/{id}/#.
	for n < 15000+100 {
		id := r.IntN(ids)
		add(fmt.Sprintf("devices/dev%05d/+/temp", id), "app-"+strconv.Itoa(id%1000))
	}
	for n < 15000+100+4900 {
		id := r.IntN(ids)
		add(fmt.Sprintf("devices/dev%05d/#", id), "debug-"+strconv.Itoa(r.IntN(100)))
	}
	// The rest, about 80,000: exact devices/{id}/telemetry/{metric}.
	for i := 0; n < 100000; i++ {
		id := i % ids
		m := metrics[(id+i/ids)%len(metrics)]
		add(fmt.Sprintf("devices/dev%05d/telemetry/%s", id, m), "app-"+strconv.Itoa(id%1000))
	}
	names := make([]string, 4096)
	for i := range names {
		id := r.IntN(ids)
		switch r.IntN(4) {
		case 0:
			names[i] = fmt.Sprintf("devices/dev%05d/status", id)
		default:
			names[i] = fmt.Sprintf("devices/dev%05d/telemetry/%s", id, metrics[r.IntN(len(metrics))])
		}
	}
	return tr, names
}

func BenchmarkMatch100k(b *testing.B) {
	tr, names := build100k()
	if tr.Len() != 100000 {
		b.Fatalf("Len = %d", tr.Len())
	}
	matched := 0
	fn := func(string, string, uint8) bool { matched++; return true }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.Match(names[i&(len(names)-1)], fn)
	}
	b.ReportMetric(float64(matched)/float64(b.N), "matches/op")
}

func BenchmarkMatchParallel(b *testing.B) {
	tr, names := build100k()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		matched := 0
		fn := func(string, string, uint8) bool { matched++; return true }
		for pb.Next() {
			tr.Match(names[i&(len(names)-1)], fn)
			i++
		}
	})
}

func BenchmarkAddRemove(b *testing.B) {
	tr, _ := build100k()
	filters := make([]string, 1024)
	for i := range filters {
		filters[i] = fmt.Sprintf("devices/dev%05d/cmd/%s/+", i*7, metrics[i%len(metrics)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := filters[i&(len(filters)-1)]
		tr.Add(f, "bench", 1)
		tr.Remove(f, "bench")
	}
}

func BenchmarkValidateFilter(b *testing.B) {
	filters := []string{
		"devices/dev00042/telemetry/temp",
		"devices/+/status",
		"$share/group1/devices/+/telemetry/#",
		"sport/tennis/player1/#",
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := ValidateFilter(filters[i&3]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatchFunc(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Match("devices/+/telemetry/#", "devices/dev00042/telemetry/temp")
	}
}
