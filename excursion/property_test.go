package excursion

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// propertyProfile is the default profile with the MKT allowed to alarm after
// 1 h of known time, so that short random series reach every rule.
func propertyProfile() Profile {
	p := DefaultProfile()
	p.MKT.MinKnown = time.Hour
	return p
}

// temps are the values random series draw from: each side of every
// threshold of the default profile, and exactly on some of them.
var temps = []float64{-1, 0, 0.3, 1.5, 2, 2.2, 2.7, 3, 5, 5, 6.9, 7.2, 7.6, 7.9, 8, 8.4, 9, 12, 26}

// randomSeries returns n readings 1–20 min apart (so some spacings are
// gaps), temperatures in runs, and occasional defrost and door flags.
func randomSeries(rng *rand.Rand, n int) []r {
	steps := []float64{1, 3, 5, 5, 5, 5, 7, 10, 16, 20}
	out := make([]r, 0, n)
	m, c := 0.0, 5.0
	for range n {
		if rng.IntN(10) < 4 {
			c = temps[rng.IntN(len(temps))]
		}
		flags := ""
		switch rng.IntN(12) {
		case 0:
			flags = "d"
		case 1:
			flags = "o"
		}
		out = append(out, r{m, c, flags})
		m += steps[rng.IntN(len(steps))]
	}
	return out
}

// TestPermutationsGiveSameAlerts is the property of issue requirement 2:
// readings that arrive late or out of order produce exactly the alerts they
// would have produced live. For random series, the alerts a consumer holds
// after applying every event (ids, rules, device-time intervals, and for
// cleared alerts the end, peak and time beyond) are the same for in-order
// arrival and for each arrival order below.
func TestPermutationsGiveSameAlerts(t *testing.T) {
	orders := []struct {
		name    string
		history int
		permute func(rng *rand.Rand, rs []r) []r
	}{
		{"shuffled", 64, func(rng *rand.Rand, rs []r) []r {
			rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
			return rs
		}},
		{"reversed", 64, func(_ *rand.Rand, rs []r) []r { slices.Reverse(rs); return rs }},
		{
			// A device offline for a while sends its newest reading, then
			// its backlog oldest first: exact even with a small history.
			"store and forward", 8, func(rng *rand.Rand, rs []r) []r {
				i := rng.IntN(len(rs) - 1)
				j := i + 1 + rng.IntN(len(rs)-i-1)
				out := slices.Concat(rs[:i], rs[j:j+1], rs[i:j], rs[j+1:])
				return out
			},
		},
	}
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(o.name))))
			cfg := Config{Horizon: 30 * 24 * time.Hour, History: o.history}
			opened := map[Rule]int{}
			for iter := range 300 {
				series := randomSeries(rng, 48)
				live := newDetector(t, propertyProfile(), cfg)
				want := feed(t, live, "dev", series)
				for _, e := range want {
					opened[e.Rule]++
				}
				perm := o.permute(rng, slices.Clone(series))
				d := newDetector(t, propertyProfile(), cfg)
				var got []Event
				for _, x := range perm {
					var out Outcome
					var err error
					got, out, err = d.Observe(got, x.sample("dev"))
					if err != nil {
						t.Fatal(err)
					}
					if out.Status.Flagged() || out.Status == Duplicate {
						t.Fatalf("iteration %d: reading at %g was %v", iter, x.m, out.Status)
					}
				}
				if err := checkLifecycle(got, map[string]int{}); err != nil {
					t.Fatalf("iteration %d: %v", iter, err)
				}
				if diff := diffViews(view(want), view(got)); diff != "" {
					t.Fatalf("iteration %d: alerts differ:\n%s\nseries %v\norder %v", iter, diff, series, perm)
				}
				wantMKT, _, _ := live.MKT("dev")
				gotMKT, _, _ := d.MKT("dev")
				if fmt.Sprint(wantMKT) != fmt.Sprint(gotMKT) {
					t.Fatalf("iteration %d: MKT %v, in order %v", iter, gotMKT, wantMKT)
				}
			}
			// The series must reach every rule, or the property says little.
			for rule := PreAlarmHigh; rule <= MKT; rule++ {
				if opened[rule] == 0 {
					t.Errorf("no %v event in any series", rule)
				}
			}
		})
	}
}
