package excursion

import (
	"slices"
	"testing"
	"time"
)

// TestLate covers single late readings: each case feeds `in` in order, then
// the late reading, and compares the late reading's status and events.
func TestLate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		in     []r
		late   r
		status Status
		want   []string
	}{
		{
			// 5 → 25 was a 20 min gap, published as opened and cleared
			// [5,25). The reading at 15 splits it into 10 + 10 min: no gap
			// at all, so the cleared alert is withdrawn with its figures.
			name:   "late reading fills a gap",
			in:     []r{{0, 5, ""}, {5, 5, ""}, {25, 5, ""}},
			late:   r{15, 5, ""},
			status: Reordered,
			want:   []string{"retracted data_gap [5,25) at 15 beyond 20m0s peak 5 late"},
		},
		{
			// Published: warning from 0, clear run from 5, cleared at 15.
			// 7.6 at 12 breaks the clear run; the new one starts at 15 and
			// has not lasted 10 min yet, so the warning is open after all.
			// Reopened carries the alert as in-order arrival would have
			// published it: opened at 0, decided at 0.
			name:   "late reading reopens a cleared warning",
			in:     []r{{0, 7.6, ""}, {5, 7.0, ""}, {10, 7.0, ""}, {15, 7.0, ""}},
			late:   r{12, 7.6, ""},
			status: Reordered,
			want:   []string{"reopened pre_alarm_high [0,0) at 0 beyond 0s peak 7.6 late"},
		},
		{
			// Published: cleared [0,5) with peak 7.6. 7.8 at 2 raises the
			// peak; the interval and the 5 min beyond stay.
			name:   "late reading revises a peak",
			in:     []r{{0, 7.6, ""}, {5, 7.0, ""}, {10, 7.0, ""}, {15, 7.0, ""}},
			late:   r{2, 7.8, ""},
			status: Reordered,
			want:   []string{"revised pre_alarm_high [0,5) at 15 beyond 5m0s peak 7.8 late"},
		},
		{
			// 9 °C readings at 0–25 and 35–40 with the one at 30 missing:
			// [25,35) at 9 is still known time (10 min ≤ 15), so the single
			// event alarmed at 30 from the reading at 35. The late 30 at 9
			// changes nothing.
			name:   "late reading that changes nothing",
			in:     join(every(0, 25, 5, 9, ""), every(35, 40, 5, 9, "")),
			late:   r{30, 9, ""},
			status: Reordered,
			want:   []string{},
		},
		{
			// 26 °C at 12 opens the warning and the instant alarm at 12
			// (in rule order); 5 °C from 15 starts their clear runs, which
			// end them at 25 with [12,15) = 3 min beyond. The 3 min above 8
			// make no single event.
			name:   "late reading raises new alerts",
			in:     every(0, 30, 5, 5, ""),
			late:   r{12, 26, ""},
			status: Reordered,
			want: []string{
				"opened pre_alarm_high [12,12) at 12 beyond 0s peak 26 late",
				"opened instant_high [12,12) at 12 beyond 0s peak 26 late",
				"cleared pre_alarm_high [12,15) at 25 beyond 3m0s peak 26 late",
				"cleared instant_high [12,15) at 25 beyond 3m0s peak 26 late",
			},
		},
		{
			// The newest reading is at 120; 9 is 111 min behind it, more
			// than the 1 h horizon, so it is flagged, not evaluated.
			name:   "beyond horizon",
			cfg:    Config{Horizon: time.Hour, History: 64},
			in:     every(0, 120, 5, 5, ""),
			late:   r{9, 30, ""},
			status: BeyondHorizon,
			want:   []string{},
		},
		{
			// History 4 keeps 35, 40, 45, 50; 30 is the checkpoint. A reading
			// at 12 cannot be replayed exactly.
			name:   "beyond history",
			cfg:    Config{Horizon: 7 * 24 * time.Hour, History: 4},
			in:     every(0, 50, 5, 5, ""),
			late:   r{12, 30, ""},
			status: BeyondHistory,
			want:   []string{},
		},
		{
			name:   "duplicate id",
			in:     every(0, 50, 5, 5, ""),
			late:   r{45, 5, ""},
			status: Duplicate,
			want:   []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.History == 0 {
				cfg = DefaultConfig()
			}
			d := newDetector(t, DefaultProfile(), cfg)
			evs := feed(t, d, "dev", tt.in)
			late, out, err := d.Observe(nil, tt.late.sample("dev"))
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != tt.status {
				t.Errorf("status = %v, want %v", out.Status, tt.status)
			}
			if err := checkLifecycle(append(evs, late...), map[string]int{}); err != nil {
				t.Error(err)
			}
			if got := summaries(late); !slices.Equal(got, tt.want) {
				t.Errorf("late events:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
