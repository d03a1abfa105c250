package simulator

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Alert is one of the gateway's alerts as its transitions leave it: what
// CompareAlerts holds against the ground truth.
type Alert struct {
	ID, Shipment, Device, Rule, Severity string
	Start, Opened                        time.Time
	End                                  *time.Time // nil while open
	Peak                                 float64
	Late                                 bool // the transition that opened it was decided late
	Retracted                            bool
	Transitions                          []string
}

// FetchAlerts lists a shipment's alerts from GET {base}/v1/shipments/{id}/alerts
// and replays each one's transitions. Retracted alerts are left out:
// the detector took them back.
func FetchAlerts(ctx context.Context, client *http.Client, base, shipment string) ([]Alert, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/shipments/"+shipment+"/alerts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("alerts of %s: %d %s", shipment, resp.StatusCode, b)
	}
	var list struct {
		Alerts []struct {
			Transitions []json.RawMessage `json:"transitions"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("alerts of %s: %w", shipment, err)
	}
	var out []Alert
	for _, l := range list.Alerts {
		var g Alert
		open := false
		for _, raw := range l.Transitions {
			a, err := record.ParseAlert(raw)
			if err != nil {
				return nil, fmt.Errorf("alerts of %s: %w: %s", shipment, err, raw)
			}
			if a.Transition == "acknowledged" {
				continue
			}
			g.ID, g.Shipment, g.Device, g.Rule, g.Severity = a.ID, a.Shipment, a.Device, a.Rule, a.Severity
			g.Transitions = append(g.Transitions, a.Transition)
			if a.PeakC.Set {
				g.Peak = a.PeakC.V
			}
			switch a.Transition {
			case "opened", "reopened":
				if !open && g.Opened.IsZero() {
					g.Late = a.Late
				}
				open, g.Retracted, g.Start, g.Opened, g.End = true, false, a.Start, a.End, nil
			case "revised":
				g.Start = a.Start
				if open {
					g.Opened = a.End
				} else {
					end := a.End
					g.End = &end
				}
			case "cleared":
				end := a.End
				open, g.End = false, &end
			case "retracted":
				open, g.Retracted = false, true
			}
		}
		if g.ID != "" && !g.Retracted {
			out = append(out, g)
		}
	}
	return out, nil
}

// Difference kinds, the first word of each line CompareAlerts returns.
const (
	DiffMissed     = "missed"
	DiffDiffers    = "differs"
	DiffUnexpected = "unexpected"
)

// CompareAlerts matches the ground truth's alerts with the gateway's by
// shipment, device, rule and start (within the alert's tolerance, closest
// first) and returns every difference, one line each, starting with
// DiffMissed, DiffDiffers or DiffUnexpected.
func CompareAlerts(truth Truth, got []Alert) []string {
	var out []string
	used := make([]bool, len(got))
	normal := map[string]bool{}
	for _, s := range truth.Normal {
		normal[s] = true
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	te := func(t *time.Time) string {
		if t == nil {
			return "open"
		}
		return ts(*t)
	}
	for _, w := range truth.Alarms {
		tol := time.Duration(w.ToleranceS) * time.Second
		best, bestD := -1, time.Duration(math.MaxInt64)
		for i, g := range got {
			if used[i] || g.Shipment != w.Shipment || g.Device != w.Device || g.Rule != w.Rule {
				continue
			}
			if d := absDur(g.Start.Sub(w.Start)); d <= tol && d < bestD {
				best, bestD = i, d
			}
		}
		what := fmt.Sprintf("%s %s %s (%s, scenario %q) start %s", w.Shipment, w.Device, w.Rule, w.Severity, w.Scenario, ts(w.Start))
		if best < 0 {
			near := ""
			for _, g := range got {
				if g.Shipment == w.Shipment && g.Device == w.Device && g.Rule == w.Rule {
					near += " " + ts(g.Start)
				}
			}
			if near == "" {
				near = " none"
			}
			out = append(out, fmt.Sprintf("%s: %s opened %s end %s; the gateway's %s alerts on that device start at:%s",
				DiffMissed, what, ts(w.Opened), te(w.End), w.Rule, near))
			continue
		}
		used[best] = true
		g := got[best]
		var diffs []string
		if g.Severity != w.Severity {
			diffs = append(diffs, fmt.Sprintf("severity: want %s, got %s", w.Severity, g.Severity))
		}
		if absDur(g.Start.Sub(w.Start)) > tol {
			diffs = append(diffs, fmt.Sprintf("start: want %s, got %s (tolerance %v)", ts(w.Start), ts(g.Start), tol))
		}
		if absDur(g.Opened.Sub(w.Opened)) > tol {
			diffs = append(diffs, fmt.Sprintf("opened: want %s, got %s", ts(w.Opened), ts(g.Opened)))
		}
		switch {
		case (w.End == nil) != (g.End == nil):
			diffs = append(diffs, fmt.Sprintf("end: want %s, got %s", te(w.End), te(g.End)))
		case w.End != nil && absDur(g.End.Sub(*w.End)) > tol:
			diffs = append(diffs, fmt.Sprintf("end: want %s, got %s", te(w.End), te(g.End)))
		}
		peakTol := 0.0
		if w.Rule == "mkt" {
			peakTol = 0.05
		}
		peakOK := math.Abs(g.Peak-w.PeakC) <= peakTol
		if !peakOK && w.End == nil && g.End == nil && w.Rule != "data_gap" {
			// Still open when the run ended: the gateway's peak is the one
			// its last transition carried, the truth's runs to the end, so
			// the gateway's may only fall short of it.
			if strings.HasSuffix(w.Rule, "_low") {
				peakOK = g.Peak >= w.PeakC-peakTol
			} else {
				peakOK = g.Peak <= w.PeakC+peakTol
			}
		}
		if !peakOK {
			diffs = append(diffs, fmt.Sprintf("peak: want %g °C, got %g °C", w.PeakC, g.Peak))
		}
		if g.Late != w.Late {
			diffs = append(diffs, fmt.Sprintf("late: want %t, got %t", w.Late, g.Late))
		}
		if len(diffs) > 0 {
			out = append(out, fmt.Sprintf("%s: %s: %s [alert %s, transitions %v]", DiffDiffers, what, strings.Join(diffs, "; "), g.ID, g.Transitions))
		}
	}
	var extra []string
	for i, g := range got {
		if used[i] {
			continue
		}
		kind := DiffUnexpected
		if normal[g.Shipment] {
			kind = DiffUnexpected + " on a normal shipment"
		}
		extra = append(extra, fmt.Sprintf("%s: %s %s %s (%s) start %s opened %s end %s peak %g late %t [alert %s, transitions %v]",
			kind, g.Shipment, g.Device, g.Rule, g.Severity, ts(g.Start), ts(g.Opened), te(g.End), g.Peak, g.Late, g.ID, g.Transitions))
	}
	slices.SortFunc(extra, cmp.Compare)
	return append(out, extra...)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
