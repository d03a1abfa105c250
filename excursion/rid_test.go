package excursion

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestRIDs: the detector keeps reading ids as numbers, but orders and
// names them exactly as the strings Device:Seq.
func TestRIDs(t *testing.T) {
	seqs := []uint64{0, 1, 9, 10, 11, 99, 100, 1 << 32, math.MaxUint64 - 1}
	for _, a := range seqs {
		ra, ok := ridOf(a)
		if !ok {
			t.Fatalf("seq %d has no rid", a)
		}
		id := idOf("dev-7", ra)
		if want := "dev-7:" + strconv.FormatUint(a, 10); id != want {
			t.Fatalf("id %q, want %q", id, want)
		}
		if back, ok := parseID("dev-7", id); !ok || back != ra {
			t.Fatalf("parse %q: %d %v, want %d", id, back, ok, ra)
		}
		for _, b := range seqs {
			rb, _ := ridOf(b)
			if got, want := ridLess(ra, rb), idOf("d", ra) < idOf("d", rb); got != want {
				t.Errorf("ridLess(%d, %d) = %v, the ids order %v", a, b, got, want)
			}
		}
	}
	if _, ok := ridOf(math.MaxUint64); ok {
		t.Error("seq 2^64-1 has a rid: it would be none")
	}
	for _, bad := range []string{"", "dev-7", "dev-7:", "dev-8:1", "dev-7:01", "dev-7:+1", "dev-7:-1", "dev-7:1x", "dev-7:18446744073709551616", "dev-7:18446744073709551615"} {
		if r, ok := parseID("dev-7", bad); ok {
			t.Errorf("%q parsed as %d", bad, r)
		}
	}
}

// TestEventReadingIDs checks the ids an alert names: its first reading,
// the peak, the first reading of the clear run and the deciding one. One
// reading every 10 min: above 8 °C from rf-1:101, opened 30 min later
// (rf-1:104), back in range at rf-1:108, cleared after the 10 min clear
// delay (rf-1:109).
func TestEventReadingIDs(t *testing.T) {
	d := newDetector(t, DefaultProfile(), DefaultConfig())
	temps := []float64{5, 9, 12, 9, 9, 9, 9, 9, 5, 5, 5, 5}
	var evs []Event
	for i, c := range temps {
		var err error
		s := Sample{Seq: uint64(100 + i), Device: "rf-1", Time: t0 + int64(i)*int64(10*60e9), TempC: c}
		if evs, _, err = d.Observe(evs, s); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, e := range evs {
		if e.Rule == SingleEventHigh {
			got = append(got, e.Transition.String()+" "+strings.Join(e.Readings, " "))
		}
	}
	want := []string{"opened rf-1:101 rf-1:102 rf-1:104", "cleared rf-1:101 rf-1:102 rf-1:108 rf-1:109"}
	if !slices.Equal(got, want) {
		t.Fatalf("single_event_high events name %q, want %q", got, want)
	}
}

// TestSnapshotFormatKept restores a snapshot written before reading ids
// were kept as numbers (testdata/snapshot-ccx1.bin, the scenario below,
// encoded by the detector of commit 2c5eccd) and checks that today's
// detector writes the same bytes for the same readings: gateways
// upgraded across the change keep their detector state.
func TestSnapshotFormatKept(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot-ccx1.bin")
	if err != nil {
		t.Fatal(err)
	}
	d := newDetector(t, DefaultProfile(), DefaultConfig())
	if err := d.UnmarshalBinary(old); err != nil {
		t.Fatalf("the old snapshot: %v", err)
	}
	again, _ := d.MarshalBinary()
	if string(again) != string(old) {
		t.Fatal("the old snapshot does not encode the same after restore")
	}
	e := newDetector(t, DefaultProfile(), DefaultConfig())
	feed(t, e, "a", join(every(0, 40, 5, 9, "d"), every(45, 100, 5, 5, ""), every(105, 120, 5, 1.5, "o")))
	feed(t, e, "b", every(0, 20, 5, 30, ""))
	feed(t, e, "b", []r{{12, 7, ""}})
	if _, err := e.Advance(nil, "b", at(50)); err != nil {
		t.Fatal(err)
	}
	fresh, _ := e.MarshalBinary()
	if string(fresh) != string(old) {
		t.Fatalf("the same readings encode %d bytes unlike the old snapshot's %d", len(fresh), len(old))
	}
}
