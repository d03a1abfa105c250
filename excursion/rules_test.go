package excursion

import (
	"slices"
	"testing"
)

// TestRules runs the default 2-8C profile over hand-made reading series. Each
// case's comment works the expectation out by hand; times are minutes after
// t0, a reading's value holds until the next one, the gap limit is
// 3 × 5 min = 15 min, the deadband 0.5 °C and the clear delay 10 min.
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule // events of these rules are compared
		in    []r
		want  []string
	}{
		{
			// 5 °C is beyond no threshold: nothing happens.
			name:  "in range",
			rules: nil,
			in:    every(0, 60, 5, 5, ""),
			want:  []string{},
		},
		{
			// 7.6 > 7.5 at minute 5 opens the warning at once ([5,5)). 7.0 ≤
			// 7.5 − 0.5 at 10 starts the clear run; at 20 it has lasted 10 min,
			// so it clears with End = 10 and [5,10) = 5 min beyond.
			name:  "pre_alarm_high opens at once and clears after the clear delay",
			rules: []Rule{PreAlarmHigh},
			in:    []r{{0, 5, ""}, {5, 7.6, ""}, {10, 7.0, ""}, {15, 7.0, ""}, {20, 7.0, ""}},
			want: []string{
				"opened pre_alarm_high [5,5) at 5 beyond 0s peak 7.6",
				"cleared pre_alarm_high [5,10) at 20 beyond 5m0s peak 7.6",
			},
		},
		{
			// Hysteresis: 7.2 is not beyond 7.5 but not ≤ 7.0 either, so
			// the warning opened at 0 stays open through 5–10 and 15–20 and
			// 7.6 at 10 does not open a second one. The clear run starts at
			// 20 and completes at 30. Beyond: [0,5) and [10,15) = 10 min.
			name:  "deadband keeps one pre_alarm_high open around 7.5",
			rules: []Rule{PreAlarmHigh},
			in:    []r{{0, 7.6, ""}, {5, 7.2, ""}, {10, 7.6, ""}, {15, 7.2, ""}, {20, 7.0, ""}, {25, 7.0, ""}, {30, 7.0, ""}},
			want: []string{
				"opened pre_alarm_high [0,0) at 0 beyond 0s peak 7.6",
				"cleared pre_alarm_high [0,20) at 30 beyond 10m0s peak 7.6",
			},
		},
		{
			// 2.4 < 2.5 at 5 opens; 3.0 ≥ 2.5 + 0.5 from 10 clears at 20.
			name:  "pre_alarm_low",
			rules: []Rule{PreAlarmLow},
			in:    []r{{0, 5, ""}, {5, 2.4, ""}, {10, 3.0, ""}, {15, 3.0, ""}, {20, 3.0, ""}},
			want: []string{
				"opened pre_alarm_low [5,5) at 5 beyond 0s peak 2.4",
				"cleared pre_alarm_low [5,10) at 20 beyond 5m0s peak 2.4",
			},
		},
		{
			// 9 °C from 5 to 35: at 35 the span [30,35) closes 30 min of
			// continuous time above 8, so the alarm opens with End = 5 + 30.
			// 5 °C from 40 (≤ 7.5) clears at 50: End 40, beyond [5,40) = 35 min.
			name:  "single_event_high after 30 min above 8",
			rules: []Rule{SingleEventHigh},
			in:    join([]r{{0, 5, ""}}, every(5, 35, 5, 9, ""), every(40, 50, 5, 5, "")),
			want: []string{
				"opened single_event_high [5,35) at 35 beyond 30m0s peak 9",
				"cleared single_event_high [5,40) at 50 beyond 35m0s peak 9",
			},
		},
		{
			// 9 °C from 5 until 34 is 29 min: one short of the delay.
			name:  "single_event_high needs the whole delay",
			rules: []Rule{SingleEventHigh},
			in:    join([]r{{0, 5, ""}}, every(5, 30, 5, 9, ""), []r{{34, 5, ""}, {40, 5, ""}}),
			want:  []string{},
		},
		{
			// 8.0 is not above 8, so the run from 0 ends at 15; the next run
			// starts at 20 and reaches 30 min at 50.
			name:  "a reading at the limit breaks the run",
			rules: []Rule{SingleEventHigh},
			in:    join(every(0, 10, 5, 9, ""), []r{{15, 8.0, ""}}, every(20, 50, 5, 9, "")),
			want:  []string{"opened single_event_high [20,50) at 50 beyond 30m0s peak 9"},
		},
		{
			// Opens at 30 ([0,30)). Then 7.9, 8.1, 7.9 stay above 7.5, so
			// the alarm neither clears nor reopens; 7.5 from 50 clears it at
			// 60. Beyond: [0,35) at 9 and [40,45) at 8.1 = 40 min.
			name:  "flapping around 8.0 is one single_event_high",
			rules: []Rule{SingleEventHigh},
			in:    join(every(0, 30, 5, 9, ""), []r{{35, 7.9, ""}, {40, 8.1, ""}, {45, 7.9, ""}}, every(50, 60, 5, 7.5, "")),
			want: []string{
				"opened single_event_high [0,30) at 30 beyond 30m0s peak 9",
				"cleared single_event_high [0,50) at 60 beyond 40m0s peak 9",
			},
		},
		{
			// [5,25) is 20 min > 15 min without a reading: unknown time, so
			// the run restarts at 25 and alarms at 55, not at 30.
			name:  "a data gap breaks the run",
			rules: []Rule{SingleEventHigh},
			in:    join([]r{{0, 9, ""}, {5, 9, ""}}, every(25, 55, 5, 9, "")),
			want:  []string{"opened single_event_high [25,55) at 55 beyond 30m0s peak 9"},
		},
		{
			// 1.5 < 2 from 0: 15 min at 15. 3.0 ≥ 2.5 from 20 clears at 30:
			// End 20, beyond [0,20) = 20 min, minimum 1.5.
			name:  "single_event_low after 15 min below 2",
			rules: []Rule{SingleEventLow},
			in:    join(every(0, 15, 5, 1.5, ""), every(20, 30, 5, 3, "")),
			want: []string{
				"opened single_event_low [0,15) at 15 beyond 15m0s peak 1.5",
				"cleared single_event_low [0,20) at 30 beyond 20m0s peak 1.5",
			},
		},
		{
			// Three excursions above 8 of 25 min each (none reaches the
			// 30 min single-event delay): [0,25), [40,65) → 50 min. The third
			// has readings 12 min apart: at 92 the span [80,92) brings the
			// total from 50 to 62 min, so the budget ran out at 80 + 10 = 90.
			// 5 °C from 95 clears at 105 (beyond [80,95) = 15 min). The budget
			// never resets: 9 °C at 120 alarms at once.
			name:  "cumulative_high reaches its 60 min budget and never resets",
			rules: []Rule{CumulativeHigh, SingleEventHigh},
			in: join(every(0, 20, 5, 9, ""), every(25, 35, 5, 5, ""), every(40, 60, 5, 9, ""), every(65, 75, 5, 5, ""),
				[]r{{80, 9, ""}, {92, 9, ""}}, every(95, 115, 5, 5, ""), []r{{120, 9, ""}}),
			want: []string{
				"opened cumulative_high [80,90) at 92 beyond 10m0s peak 9",
				"cleared cumulative_high [80,95) at 105 beyond 15m0s peak 9",
				"opened cumulative_high [120,120) at 120 beyond 0s peak 9",
			},
		},
		{
			// Known time above 8: [0,15) and, after the gap [15,40), [40,55)
			// and [55,70) = 45 min; [70,85) makes 60 at 85. The run that spent
			// the budget started at 40, so the alert is [40,85) with 45 min
			// beyond inside it. The gap counted neither way.
			name:  "cumulative_high does not count a gap",
			rules: []Rule{CumulativeHigh},
			in:    []r{{0, 9, ""}, {15, 9, ""}, {40, 9, ""}, {55, 9, ""}, {70, 9, ""}, {85, 9, ""}},
			want:  []string{"opened cumulative_high [40,85) at 85 beyond 45m0s peak 9"},
		},
		{
			// 1.5 < 2 from 0; the total reaches the 60 min low budget at 60.
			name:  "cumulative_low",
			rules: []Rule{CumulativeLow},
			in:    every(0, 60, 5, 1.5, ""),
			want:  []string{"opened cumulative_low [0,60) at 60 beyond 1h0m0s peak 1.5"},
		},
		{
			// 26 > 25 at 5 alarms at once; ≤ 24.5 from 10 clears at 20.
			name:  "instant_high",
			rules: []Rule{InstantHigh},
			in:    []r{{0, 5, ""}, {5, 26, ""}, {10, 5, ""}, {15, 5, ""}, {20, 5, ""}},
			want: []string{
				"opened instant_high [5,5) at 5 beyond 0s peak 26",
				"cleared instant_high [5,10) at 20 beyond 5m0s peak 26",
			},
		},
		{
			// 0.0 ≤ 0 alarms (the "≤ 0 °C"). 0.4 is no longer beyond
			// but below 0 + 0.5, so the clear run starts at 15 and ends at 25.
			// Beyond: [5,10) only.
			name:  "instant_low includes 0 °C",
			rules: []Rule{InstantLow},
			in:    []r{{0, 5, ""}, {5, 0, ""}, {10, 0.4, ""}, {15, 0.5, ""}, {20, 3, ""}, {25, 3, ""}},
			want: []string{
				"opened instant_low [5,5) at 5 beyond 0s peak 0",
				"cleared instant_low [5,15) at 25 beyond 5m0s peak 0",
			},
		},
		{
			// 0.1 is above 0: no instant alarm.
			name:  "instant_low not above 0",
			rules: []Rule{InstantLow},
			in:    []r{{0, 0.1, ""}, {5, 0.1, ""}},
			want:  []string{},
		},
		{
			// 5 → 20 is exactly 15 min, not longer than the limit: no gap.
			// 20 → 36 is 16 min: the gap [20,36) opens with End 20 + 15 and
			// clears with the reading at 36; Beyond is the unknown time.
			name:  "data_gap",
			rules: []Rule{DataGap},
			in:    []r{{0, 5, ""}, {5, 5, ""}, {20, 5, ""}, {36, 5, ""}},
			want: []string{
				"opened data_gap [20,35) at 36 beyond 15m0s peak 5",
				"cleared data_gap [20,36) at 36 beyond 16m0s peak 5",
			},
		},
		{
			// Defrost from 5 to 15 (window [5, min(20 + 15, 5 + 45)) =
			// [5,35)). The warning at 5 is held; it clears at 30, inside the
			// window, so it is published then as opened and cleared, both
			// marked: suppressed, never dropped. 15 min above 8 makes no
			// single event.
			name:  "defrost holds a short pre_alarm_high",
			rules: []Rule{PreAlarmHigh, SingleEventHigh},
			in:    join([]r{{0, 5, ""}}, every(5, 15, 5, 9, "d"), every(20, 30, 5, 5, "")),
			want: []string{
				"opened pre_alarm_high [5,5) at 30 beyond 0s peak 9 held defrost",
				"cleared pre_alarm_high [5,20) at 30 beyond 15m0s peak 9 held defrost",
			},
		},
		{
			// Defrost stuck on from 5: the window lasts 45 min, [5,50). The
			// warning (met at 5) and the single event (met at 5 + 30 = 35)
			// are held and published at 50 with their device-time figures
			// unchanged.
			name:  "defrost window ends while still too warm",
			rules: []Rule{PreAlarmHigh, SingleEventHigh},
			in:    join([]r{{0, 5, ""}}, every(5, 55, 5, 9, "d")),
			want: []string{
				"opened pre_alarm_high [5,5) at 50 beyond 0s peak 9 held defrost",
				"opened single_event_high [5,35) at 50 beyond 30m0s peak 9 held defrost",
			},
		},
		{
			// Door open at 5 only: window [5, min(10 + 5, 5 + 15)) = [5,15).
			// The warning held at 5 is published at 15, the first reading
			// outside the window, still open.
			name:  "door_open holds pre_alarm_high for its window",
			rules: []Rule{PreAlarmHigh},
			in:    []r{{0, 5, ""}, {5, 7.8, "o"}, {10, 7.8, ""}, {15, 7.8, ""}},
			want:  []string{"opened pre_alarm_high [5,5) at 15 beyond 0s peak 7.8 held door_open"},
		},
		{
			// Cumulative and instant alarms are never suppressed: 26 °C
			// during defrost alarms at once.
			name:  "defrost does not hold instant_high",
			rules: []Rule{InstantHigh},
			in:    []r{{0, 5, ""}, {5, 26, "d"}},
			want:  []string{"opened instant_high [5,5) at 5 beyond 0s peak 26"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDetector(t, DefaultProfile(), DefaultConfig())
			evs := feed(t, d, "dev", tt.in)
			if err := checkLifecycle(evs, map[string]int{}); err != nil {
				t.Error(err)
			}
			got := summaries(evs, tt.rules...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("events:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestAdvance covers the live data-gap alarm of a silent device.
func TestAdvance(t *testing.T) {
	tests := []struct {
		name string
		now  float64 // minutes; Advance is called after the readings
		next r       // then this reading arrives
		want []string
	}{
		{
			// Silent from 5: at 21 the gap is 16 min > 15, so it opens
			// (End 5 + 15); the reading at 30 clears it with End 30.
			name: "silence opens and the next reading clears",
			now:  21, next: r{30, 5, ""},
			want: []string{
				"opened data_gap [5,20) at 21 beyond 15m0s peak 5",
				"cleared data_gap [5,30) at 30 beyond 25m0s peak 5",
			},
		},
		{
			// The caller's clock ran ahead: the reading at 18 shows the
			// device was 13 min apart, no gap, so the alert is withdrawn.
			name: "device time shows no gap",
			now:  21, next: r{18, 5, ""},
			want: []string{
				"opened data_gap [5,20) at 21 beyond 15m0s peak 5",
				"retracted data_gap [5,20) at 18 beyond 15m0s peak 5",
			},
		},
		{
			// 15 min of silence is not longer than the limit.
			name: "not yet a gap",
			now:  20, next: r{20, 5, ""},
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDetector(t, DefaultProfile(), DefaultConfig())
			evs := feed(t, d, "dev", []r{{0, 5, ""}, {5, 5, ""}})
			evs, err := d.Advance(evs, "dev", at(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, feed(t, d, "dev", []r{tt.next})...)
			if err := checkLifecycle(evs, map[string]int{}); err != nil {
				t.Error(err)
			}
			if got := summaries(evs); !slices.Equal(got, tt.want) {
				t.Errorf("events:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestAlertID pins the alert id recipe, which other components may
// recompute. Vector:
//
//	printf 'dev-1\x00single_event_high\x001735689600000000000' | sha256sum | cut -c1-32
func TestAlertID(t *testing.T) {
	if got, want := AlertID("dev-1", SingleEventHigh, t0), "3a41b8c63dc18c5556e2fdec2367ef4b"; got != want {
		t.Errorf("AlertID = %s, want %s", got, want)
	}
	if AlertID("dev-1", SingleEventHigh, t0) == AlertID("dev-1", SingleEventLow, t0) {
		t.Error("rule does not change the id")
	}
}
