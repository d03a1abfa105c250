package metrics

import (
	"strings"
	"testing"
)

func TestExposition(t *testing.T) {
	r := New()
	c := r.Counter("x_total", "Things.", "reason")
	c.With("a").Add(2)
	c.With(`q"b`).Inc()
	c.With("a").Inc()
	g := r.Gauge("y", "Level.")
	g.Set(1.5)
	g.Add(-0.5)
	h := r.Histogram("z_seconds", "Latency.", []float64{0.1, 1})
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(7)
	r.GaugeFunc("w", "Computed.", []string{"stream"}, func() map[string]float64 { return map[string]float64{"b": 2, "a": 1} })
	var sb strings.Builder
	r.Write(&sb)
	want := `# HELP x_total Things.
# TYPE x_total counter
x_total{reason="a"} 3
x_total{reason="q\"b"} 1
# HELP y Level.
# TYPE y gauge
y 1
# HELP z_seconds Latency.
# TYPE z_seconds histogram
z_seconds_bucket{le="0.1"} 1
z_seconds_bucket{le="1"} 2
z_seconds_bucket{le="+Inf"} 3
z_seconds_sum 7.55
z_seconds_count 3
# HELP w Computed.
# TYPE w gauge
w{stream="a"} 1
w{stream="b"} 2
`
	if sb.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", sb.String(), want)
	}
}

func TestDuplicateRegistrationPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	r := New()
	r.Gauge("a", "A.")
	r.Gauge("a", "A.")
}
