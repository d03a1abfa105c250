package epcis

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Interval is one device's temperature over [Start, End), in °C.
type Interval struct {
	Device     string
	Start, End time.Time
	// Last is the device time of its latest reading in the interval.
	Last           time.Time
	Min, Max, Mean float64
	Count          int
	sum            int64 // µ°C: a sum that does not depend on the order
}

// Aggregator summarises readings per device and interval. Feed it every
// reading of a shipment once, in any order (resends are the caller's to
// drop: the store holds each reading once).
type Aggregator struct {
	every time.Duration
	m     map[aggKey]*Interval
}

type aggKey struct {
	device string
	start  int64
}

// NewAggregator returns an Aggregator of intervals of length every,
// aligned on the Unix epoch (an interval of 1h starts on the hour).
func NewAggregator(every time.Duration) *Aggregator {
	return &Aggregator{every: every, m: map[aggKey]*Interval{}}
}

// Add counts one reading.
func (a *Aggregator) Add(r *record.Reading) {
	start := r.Time.Truncate(a.every)
	k := aggKey{r.Device, start.UnixNano()}
	iv := a.m[k]
	if iv == nil {
		iv = &Interval{Device: r.Device, Start: start.UTC(), End: start.Add(a.every).UTC(), Last: r.Time, Min: r.TempC, Max: r.TempC}
		a.m[k] = iv
	}
	iv.Count++
	iv.sum += int64(math.Round(r.TempC * 1e6))
	iv.Min, iv.Max = min(iv.Min, r.TempC), max(iv.Max, r.TempC)
	if r.Time.After(iv.Last) {
		iv.Last = r.Time
	}
}

// Intervals returns the summaries by start, then device, each mean
// rounded to 0.01 °C.
func (a *Aggregator) Intervals() []Interval {
	out := make([]Interval, 0, len(a.m))
	for _, iv := range a.m {
		v := *iv
		v.Mean = roundTo(float64(v.sum)/1e6/float64(v.Count), 100)
		v.Last = v.Last.UTC()
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y Interval) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return strings.Compare(x.Device, y.Device)
	})
	return out
}

func roundTo(v, scale float64) float64 {
	if r := math.Round(v*scale) / scale; r != 0 {
		return r
	}
	return 0 // no -0
}

func sortStable[T any](s []T, cmp func(a, b T) int) { slices.SortStableFunc(s, cmp) }

// ErrInvalid is wrapped by every error about a document or option.
var ErrInvalid = errors.New("epcis")

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
