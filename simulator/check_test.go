package simulator

import (
	"strings"
	"testing"
	"time"
)

func TestCompareAlerts(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	end := t0.Add(3 * time.Hour)
	truth := Truth{
		Normal: []string{"N"},
		Alarms: []Alarm{
			{Shipment: "S", Device: "D", Rule: "single_event_high", Severity: "alarm", Start: t0, Opened: t0.Add(30 * time.Minute), End: &end, PeakC: 12},
			{Shipment: "S", Device: "D", Rule: "mkt", Severity: "alarm", Start: t0, Opened: t0.Add(time.Hour), PeakC: 14, ToleranceS: 3600},
			{Shipment: "S", Device: "D", Rule: "single_event_low", Severity: "alarm", Start: t0, Opened: t0.Add(15 * time.Minute), PeakC: -3},
		},
	}
	exact := func() []Alert {
		e := end
		return []Alert{
			{ID: "a", Shipment: "S", Device: "D", Rule: "single_event_high", Severity: "alarm", Start: t0, Opened: t0.Add(30 * time.Minute), End: &e, Peak: 12},
			{ID: "b", Shipment: "S", Device: "D", Rule: "mkt", Severity: "alarm", Start: t0, Opened: t0.Add(time.Hour), Peak: 14},
			{ID: "c", Shipment: "S", Device: "D", Rule: "single_event_low", Severity: "alarm", Start: t0, Opened: t0.Add(15 * time.Minute), Peak: -3},
		}
	}
	for _, c := range []struct {
		name   string
		change func([]Alert) []Alert
		want   []string // one prefix per difference, in order
	}{
		{"the same", func(g []Alert) []Alert { return g }, nil},
		{"a cleared alert's peak differs", func(g []Alert) []Alert { g[0].Peak = 11; return g }, []string{"differs: S D single_event_high"}},
		{"an open alert's peak short of the truth's", func(g []Alert) []Alert { g[1].Peak = 9.5; g[2].Peak = -2; return g }, nil},
		{"an open high alert's peak beyond the truth's", func(g []Alert) []Alert { g[1].Peak = 15; return g }, []string{"differs: S D mkt"}},
		{"an open low alert's peak beyond the truth's", func(g []Alert) []Alert { g[2].Peak = -4; return g }, []string{"differs: S D single_event_low"}},
		{"decided late", func(g []Alert) []Alert { g[0].Late = true; return g }, []string{"differs: S D single_event_high"}},
		{"missed", func(g []Alert) []Alert { return g[1:] }, []string{"missed: S D single_event_high"}},
		{"unexpected on a normal shipment", func(g []Alert) []Alert {
			return append(g, Alert{ID: "x", Shipment: "N", Device: "D", Rule: "data_gap", Start: t0})
		}, []string{"unexpected on a normal shipment: N D data_gap"}},
	} {
		got := CompareAlerts(truth, c.change(exact()))
		if len(got) != len(c.want) {
			t.Errorf("%s: %d differences %q, want %d", c.name, len(got), got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.HasPrefix(got[i], w) {
				t.Errorf("%s: difference %q, want it to start with %q", c.name, got[i], w)
			}
		}
	}
}
