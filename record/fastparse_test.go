package record

import (
	"bytes"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"
)

// generalReading is ParseReading without its fast path.
func generalReading(b []byte) (Reading, error) {
	var r Reading
	err := parseCanonical(b, func(d *item) { d.reading(&r, Scope{}) })
	return r, err
}

// checkFast fails if fastReading accepts b and the general decoder does
// not, or reads something else.
func checkFast(t *testing.T, b []byte) bool {
	t.Helper()
	var fast Reading
	if !fastReading(b, &fast) {
		return false
	}
	general, err := generalReading(b)
	if err != nil {
		t.Fatalf("fast path accepted what the decoder refuses (%v): %s", err, b)
	}
	if !reflect.DeepEqual(fast, general) {
		t.Fatalf("%s\nfast    %+v\ngeneral %+v", b, fast, general)
	}
	return true
}

func randomReading(rng *rand.Rand) Reading {
	opt := func(lo, hi float64) Opt[float64] {
		if rng.IntN(3) == 0 {
			return Opt[float64]{}
		}
		v := lo + rng.Float64()*(hi-lo)
		switch rng.IntN(4) {
		case 0:
			v = float64(int(v))
		case 1:
			v = float64(int(v*10)) / 10
		case 2:
			v *= 1e-9
		}
		return Opt[float64]{V: v, Set: true}
	}
	r := Reading{
		Shipment: "SHP-" + string(rune('A'+rng.IntN(26))), Device: "dev_" + string(rune('a'+rng.IntN(26))),
		Seq: rng.Uint64() >> rng.IntN(64), Time: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)*int64(rng.IntN(2))).UTC(),
		TempC: opt(-100, 100).V, RH: opt(0, 100), Lat: opt(-90, 90), Lon: opt(-180, 180), BatteryV: opt(0, 100),
		Probe: Probe(rng.IntN(len(probeNames))),
	}
	if rng.IntN(2) == 0 {
		r.DoorOpen = Opt[bool]{V: rng.IntN(2) == 0, Set: true}
	}
	if rng.IntN(2) == 0 {
		r.Reefer = Reefer{SetpointC: opt(-100, 100), SupplyC: opt(-100, 100), ReturnC: opt(-100, 100), Mode: Mode(rng.IntN(len(modeNames)))}
	}
	if rng.IntN(5) == 0 {
		r.Ext = []Ext{{Key: "fw", Type: ExtString, Str: "1.2"}}
	}
	if rng.IntN(3) == 0 {
		r.Sig = make([]byte, SigSize)
		for i := range r.Sig {
			r.Sig[i] = byte(rng.Uint32())
		}
	}
	return r
}

// TestFastReadingMatches encodes random readings with every combination of
// members and checks that the fast path reads each as the general decoder
// does, and takes every one without vendor members.
func TestFastReadingMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fast := 0
	for range 20000 {
		r := randomReading(rng)
		b := r.AppendCanonical(nil)
		if checkFast(t, b) {
			fast++
		} else if len(r.Ext) == 0 {
			t.Fatalf("not on the fast path: %s", b)
		}
		// A byte changed anywhere must not make the fast path accept
		// what the decoder refuses or reads differently.
		m := bytes.Clone(b)
		m[rng.IntN(len(m))] = "0123456789-.e+,:{}\"aZ"[rng.IntN(21)]
		checkFast(t, m)
	}
	if fast < 10000 {
		t.Fatalf("only %d of 20000 on the fast path", fast)
	}
	b, err := os.ReadFile("testdata/reading-v1.canonical.json")
	if err != nil {
		t.Fatal(err)
	}
	checkFast(t, b)
}

// FuzzFastReading: whatever the fast path accepts, the general decoder
// accepts with the same reading.
func FuzzFastReading(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		r := randomReading(rng)
		f.Add(r.AppendCanonical(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFast(t, b) })
}

func BenchmarkParseReading(b *testing.B) {
	r := Reading{Shipment: "SHP-1", Device: "reefer-7", Seq: 123456, Time: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC),
		TempC: 5.2, RH: Opt[float64]{V: 61, Set: true}, Lat: Opt[float64]{V: 1.29, Set: true}, Lon: Opt[float64]{V: 103.85, Set: true}}
	c := r.AppendCanonical(nil)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseReading(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := generalReading(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
