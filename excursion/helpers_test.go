package excursion

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// t0 is 2025-01-01T00:00:00Z in Unix ns: an hour boundary, so the MKT
// buckets (1 h for a 24 h window) line up with the test's readings.
const t0 = int64(1735689600) * int64(time.Second)

// at returns the device time m minutes after t0.
func at(m float64) int64 { return t0 + int64(m*float64(time.Minute)) }

// mins converts a device time back to minutes after t0.
func mins(t int64) float64 { return float64(t-t0) / float64(time.Minute) }

// r is a reading in a table: minutes after t0, °C, and flags ("d" defrost, "o" door open).
type r struct {
	m     float64
	c     float64
	flags string
}

func (x r) sample(dev string) Sample {
	return Sample{
		Seq: uint64(at(x.m)), Device: dev, Time: at(x.m), TempC: x.c, // one reading per device time
		Defrost: strings.Contains(x.flags, "d"), DoorOpen: strings.Contains(x.flags, "o"),
	}
}

// every returns readings at c °C every step minutes from `from` to `to`, inclusive.
func every(from, to, step, c float64, flags string) []r {
	var out []r
	for m := from; m <= to+1e-9; m += step {
		out = append(out, r{m, c, flags})
	}
	return out
}

func join(parts ...[]r) []r { return slices.Concat(parts...) }

func newDetector(t testing.TB, p Profile, cfg Config) *Detector {
	t.Helper()
	d, err := New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// feed observes readings in the given order and returns all events.
func feed(t testing.TB, d *Detector, dev string, rs []r) []Event {
	t.Helper()
	var evs []Event
	for _, x := range rs {
		var err error
		evs, _, err = d.Observe(evs, x.sample(dev))
		if err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// summary renders an event for a table: transition, rule, [start,end) and
// decision time in minutes after t0, time beyond, peak, windows, lateness.
func summary(e Event) string {
	s := fmt.Sprintf("%v %v [%g,%g) at %g beyond %v peak %g", e.Transition, e.Rule, mins(e.Start), mins(e.End), mins(e.At), e.Beyond, e.PeakC)
	if e.Suppressed != 0 {
		s += " held " + e.Suppressed.String()
	}
	if e.Late {
		s += " late"
	}
	return s
}

// summaries renders the events of the given rules (all when none are given).
func summaries(evs []Event, rules ...Rule) []string {
	out := []string{}
	for _, e := range evs {
		if len(rules) == 0 || slices.Contains(rules, e.Rule) {
			out = append(out, summary(e))
		}
	}
	return out
}

// alertView is what a consumer that applies events in order shows for one alert.
type alertView struct {
	Rule       Rule
	Start      int64
	Open       bool
	End        int64 // compared for cleared alerts only
	PeakC      float64
	Beyond     time.Duration
	Suppressed Suppression
}

// view applies events the way a consumer would: keyed by alert id, Retracted deletes.
func view(evs []Event) map[string]alertView {
	v := map[string]alertView{}
	for _, e := range evs {
		switch e.Transition {
		case Opened, Reopened:
			v[e.ID] = alertView{Rule: e.Rule, Start: e.Start, Open: true, Suppressed: e.Suppressed}
		case Cleared:
			v[e.ID] = alertView{Rule: e.Rule, Start: e.Start, End: e.End, PeakC: e.PeakC, Beyond: e.Beyond, Suppressed: e.Suppressed}
		case Revised:
			old := v[e.ID]
			if !old.Open {
				old.End, old.PeakC, old.Beyond = e.End, e.PeakC, e.Beyond
			}
			old.Suppressed = e.Suppressed
			v[e.ID] = old
		case Retracted:
			delete(v, e.ID)
		}
	}
	return v
}

func diffViews(a, b map[string]alertView) string {
	var out []string
	for id, x := range a {
		if y, ok := b[id]; !ok {
			out = append(out, fmt.Sprintf("only first: %v [%g", x.Rule, mins(x.Start)))
		} else if x != y {
			out = append(out, fmt.Sprintf("differ: %+v vs %+v", x, y))
		}
	}
	for id, y := range b {
		if _, ok := a[id]; !ok {
			out = append(out, fmt.Sprintf("only second: %v [%g open=%v", y.Rule, mins(y.Start), y.Open))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// checkLifecycle checks the invariants every event stream must keep:
// per alert Opened comes first, Cleared only follows an open alert,
// Reopened only a cleared one, Revised only an existing one; End ≥ Start,
// At ≥ End (but for Retracted), and 0 ≤ Beyond ≤ End − Start. state carries the stream's
// per-alert state between calls (0 none, 1 open, 2 cleared).
func checkLifecycle(evs []Event, state map[string]int) error {
	for _, e := range evs {
		s := state[e.ID]
		ok := false
		switch e.Transition {
		case Opened:
			ok, state[e.ID] = s == 0, 1
		case Cleared:
			ok, state[e.ID] = s == 1, 2
		case Reopened:
			ok, state[e.ID] = s == 2, 1
		case Revised:
			ok = s != 0
		case Retracted:
			ok = s != 0
			delete(state, e.ID)
		}
		switch {
		case !ok:
			return fmt.Errorf("%s in state %d", summary(e), s)
		case e.End < e.Start:
			return fmt.Errorf("end before start: %s", summary(e))
		case e.At < e.End && e.Transition != Retracted:
			return fmt.Errorf("decided before its end: %s", summary(e))
		case e.Beyond < 0 || int64(e.Beyond) > e.End-e.Start:
			return fmt.Errorf("time beyond exceeds elapsed time: %s", summary(e))
		case e.ID != AlertID(e.Device, e.Rule, e.Start):
			return fmt.Errorf("id not derived from device, rule, start: %s", summary(e))
		case len(e.Readings) > 4:
			return fmt.Errorf("%d reading ids", len(e.Readings))
		case math.IsNaN(e.PeakC):
			return fmt.Errorf("NaN peak: %s", summary(e))
		}
	}
	return nil
}

// sampleID returns s's record id, Device:Seq.
func sampleID(s Sample) string { return s.Device + ":" + strconv.FormatUint(s.Seq, 10) }
