// Package metrics is a small Prometheus registry: counters, gauges and
// histograms written in the text exposition format (version 0.0.4). The
// gateway needs a handful of series with fixed label sets; this is less
// code than adapting a general client and allocates nothing on update.
package metrics

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metrics in registration order.
type Registry struct {
	mu      sync.Mutex
	entries []entry
}

type entry struct {
	name, help, typ string
	write           func(w io.Writer, name string)
}

// New returns an empty registry.
func New() *Registry { return &Registry{} }

func (r *Registry) add(name, help, typ string, write func(io.Writer, string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.name == name {
			panic("metrics: " + name + " registered twice")
		}
	}
	r.entries = append(r.entries, entry{name, help, typ, write})
}

// Write writes every metric in the text exposition format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	entries := slices.Clone(r.entries)
	r.mu.Unlock()
	for _, e := range entries {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", e.name, e.help, e.name, e.typ)
		e.write(w, e.name)
	}
}

// Counter is a monotonically increasing count.
type Counter struct{ v atomic.Uint64 }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// CounterVec is a family of counters with one label set each.
type CounterVec struct {
	labels []string
	mu     sync.RWMutex
	kids   map[string]*Counter
	order  []string
}

// Counter registers a counter family; with no labels, use With().
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{labels: labels, kids: map[string]*Counter{}}
	r.add(name, help, "counter", func(w io.Writer, name string) {
		v.mu.RLock()
		defer v.mu.RUnlock()
		for _, k := range v.order {
			fmt.Fprintf(w, "%s%s %d\n", name, k, v.kids[k].Value())
		}
	})
	return v
}

// With returns the counter for the label values, creating it at zero.
// Resolve it once, outside a hot loop.
func (v *CounterVec) With(values ...string) *Counter {
	if len(values) != len(v.labels) {
		panic("metrics: wrong number of label values")
	}
	k := labelString(v.labels, values)
	v.mu.RLock()
	c := v.kids[k]
	v.mu.RUnlock()
	if c != nil {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.kids[k]; c == nil {
		c = &Counter{}
		v.kids[k] = c
		v.order = append(v.order, k)
	}
	return c
}

// Gauge is a value that goes up and down.
type Gauge struct{ bits atomic.Uint64 }

// Set sets the value.
func (g *Gauge) Set(f float64) { g.bits.Store(math.Float64bits(f)) }

// Add adds d, which may be negative.
func (g *Gauge) Add(d float64) {
	for {
		old := g.bits.Load()
		if g.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Value returns the value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Gauge registers a gauge without labels.
func (r *Registry) Gauge(name, help string) *Gauge {
	g := &Gauge{}
	r.add(name, help, "gauge", func(w io.Writer, name string) {
		fmt.Fprintf(w, "%s %s\n", name, formatFloat(g.Value()))
	})
	return g
}

// GaugeFunc registers a gauge whose value fn computes at scrape time; fn
// returns one value per label value set, keyed by the joined values.
func (r *Registry) GaugeFunc(name, help string, labels []string, fn func() map[string]float64) {
	r.add(name, help, "gauge", func(w io.Writer, name string) {
		vals := fn()
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var ls string
			if len(labels) > 0 {
				ls = labelString(labels, strings.Split(k, "\x00"))
			}
			fmt.Fprintf(w, "%s%s %s\n", name, ls, formatFloat(vals[k]))
		}
	})
}

// CounterFunc registers a counter without labels whose value fn reads at
// scrape time (a count another package keeps).
func (r *Registry) CounterFunc(name, help string, fn func() float64) {
	r.add(name, help, "counter", func(w io.Writer, name string) {
		fmt.Fprintf(w, "%s %s\n", name, formatFloat(fn()))
	})
}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	upper  []float64
	counts []atomic.Uint64
	count  atomic.Uint64
	sum    Gauge
}

// Histogram registers a histogram with the given bucket upper bounds.
func (r *Registry) Histogram(name, help string, buckets []float64) *Histogram {
	h := &Histogram{upper: buckets, counts: make([]atomic.Uint64, len(buckets))}
	r.add(name, help, "histogram", func(w io.Writer, name string) {
		var cum uint64
		for i, u := range h.upper {
			cum += h.counts[i].Load()
			fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, formatFloat(u), cum)
		}
		fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n",
			name, h.count.Load(), name, formatFloat(h.sum.Value()), name, h.count.Load())
	})
	return h
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	if i, _ := slices.BinarySearch(h.upper, v); i < len(h.upper) {
		h.counts[i].Add(1)
	}
	h.count.Add(1)
	h.sum.Add(v)
}

// LatencyBuckets are upper bounds in seconds from 100 µs to 10 s.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// labelEscaper escapes label values per the text exposition format.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func labelString(labels, values []string) string {
	if len(labels) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l)
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(values[i]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
