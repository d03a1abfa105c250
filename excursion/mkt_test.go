package excursion

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestMeanKineticKnownAnswers checks the literal USP <1079.2> formula.
// The values were worked out with:
//
//	python3 -c 'import math; k=1e4; f=lambda p: k/-math.log(sum(d*math.exp(-k/(c+273.15)) for c,d in p)/sum(d for c,d in p))-273.15; print(f([(5,22),(15,2)]), f([(5,18),(14,6)]))'
//	6.462284943836664 8.285215773520349
func TestMeanKineticKnownAnswers(t *testing.T) {
	tests := []struct {
		name  string
		spans []Span
		want  float64
	}{
		{"constant 5 °C", []Span{{5, 24 * time.Hour}}, 5.00},
		{"22 h at 5 °C, 2 h at 15 °C", []Span{{5, 22 * time.Hour}, {15, 2 * time.Hour}}, 6.46},
		{"18 h at 5 °C, 6 h at 14 °C", []Span{{5, 18 * time.Hour}, {14, 6 * time.Hour}}, 8.29},
		{"order does not matter", []Span{{14, 6 * time.Hour}, {5, 18 * time.Hour}}, 8.29},
		{"zero durations are skipped", []Span{{5, time.Hour}, {40, 0}}, 5.00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MeanKinetic(tt.spans, 10000); math.Abs(got-tt.want) > 0.005 {
				t.Errorf("MeanKinetic = %.4f, want %.2f", got, tt.want)
			}
		})
	}
	if got := MeanKinetic(nil, 10000); !math.IsNaN(got) {
		t.Errorf("MeanKinetic(nil) = %v, want NaN", got)
	}
}

// TestDetectorMKT feeds the known-answer series as readings every 5 min
// over 24 h (the reading at 24 h closes the last span) and checks the MKT
// the detector reports continuously, and the mkt alarm (limit 8 °C, 12 h of
// known time needed).
func TestDetectorMKT(t *testing.T) {
	tests := []struct {
		name    string
		in      []r
		wantMKT float64
		want    []string
	}{
		{
			name:    "constant 5 °C",
			in:      every(0, 1440, 5, 5, ""),
			wantMKT: 5.00,
			want:    []string{},
		},
		{
			// Readings at 15 °C from 22 h: spans [0,22h) at 5, [22h,24h) at 15.
			name:    "22 h at 5 °C + 2 h at 15 °C",
			in:      join(every(0, 1315, 5, 5, ""), every(1320, 1440, 5, 15, "")),
			wantMKT: 6.46,
			want:    []string{},
		},
		{
			// 14 °C from 18 h. After h hours at 14 °C the mean weight
			// e^(10⁴(1/278.15 − 1/T)) is (18 + 3.0858·h)/(18 + h), and 8 °C
			// needs 1.4676, so the MKT passes 8 °C after h = 5.38 h. The
			// readings are 5 min apart: the MKT is 7.987 at 23 h 10 min and
			// 8.018 at 23 h 15 min (f above with [(5,18),(14,5.1667)] and
			// [(5,18),(14,5.25)]), so the alarm opens at minute 1395.
			name:    "18 h at 5 °C + 6 h at 14 °C fails the 8 °C limit",
			in:      join(every(0, 1075, 5, 5, ""), every(1080, 1440, 5, 14, "")),
			wantMKT: 8.29,
			want:    []string{"opened mkt [1395,1395) at 1395 beyond 0s"},
		},
		{
			// A day at 15 °C, then a day at 5 °C: the first day has left
			// the window entirely, so the MKT is 5 again. The alarm that
			// opened once 12 h were known cleared 10 min after the MKT fell
			// to 7.5 or below.
			name:    "the window slides",
			in:      join(every(0, 1435, 5, 15, ""), every(1440, 2880, 5, 5, "")),
			wantMKT: 5.00,
			want:    []string{"opened mkt [720,720) at 720 beyond 0s", "cleared mkt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDetector(t, DefaultProfile(), DefaultConfig())
			evs := feed(t, d, "dev", tt.in)
			got, known, _ := d.MKT("dev")
			if math.Abs(got-tt.wantMKT) > 0.005 {
				t.Errorf("MKT = %.4f °C, want %.2f", got, tt.wantMKT)
			}
			if known != 24*time.Hour {
				t.Errorf("known time = %v, want 24h", known)
			}
			var sums []string
			for _, e := range evs {
				if e.Rule != MKT {
					continue
				}
				s := summary(e)
				if e.Transition == Cleared {
					s = "cleared mkt" // its time depends on the decay; checked below
					if e.PeakC < 14.9 || e.End <= e.Start {
						t.Errorf("cleared: %s", summary(e))
					}
				} else {
					s = trimPeak(s)
				}
				sums = append(sums, s)
			}
			if sums == nil {
				sums = []string{}
			}
			if !slices.Equal(sums, tt.want) {
				t.Errorf("mkt events:\n got %q\nwant %q", sums, tt.want)
			}
		})
	}
}

// trimPeak drops " peak …" from a summary: an MKT peak is not a round number.
func trimPeak(s string) string {
	for i := 0; i+6 <= len(s); i++ {
		if s[i:i+6] == " peak " {
			return s[:i]
		}
	}
	return s
}

// TestKineticMatchesReference cross-checks the bucketed MKT against the
// literal formula over the exact trailing window, at every reading, for
// random temperatures that are constant within each hour (the bucket
// width), where the bucket proration is exact.
func TestKineticMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	hourly := make([]float64, 60)
	for i := range hourly {
		hourly[i] = 2 + 12*rng.Float64()
	}
	d := newDetector(t, DefaultProfile(), DefaultConfig())
	for m := 0.0; m < 60*60; m += 5 {
		if _, _, err := d.Observe(nil, r{m, hourly[int(m)/60], ""}.sample("dev")); err != nil {
			t.Fatal(err)
		}
		var spans []Span
		for h := range hourly {
			lo, hi := max(float64(h*60), m-1440), min(float64(h*60+60), m)
			if hi > lo {
				spans = append(spans, Span{hourly[h], time.Duration((hi - lo) * float64(time.Minute))})
			}
		}
		want := MeanKinetic(spans, 10000)
		got, _, _ := d.MKT("dev")
		if m == 0 {
			if !math.IsNaN(got) {
				t.Fatalf("MKT with no known time = %v, want NaN", got)
			}
			continue
		}
		if math.Abs(got-want) > 0.001 {
			t.Fatalf("minute %g: MKT = %.5f, reference %.5f", m, got, want)
		}
	}
}
