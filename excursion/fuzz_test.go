package excursion

import (
	"cmp"
	"slices"
	"testing"
	"time"
)

// FuzzObserve drives a detector with arbitrary operations on two devices:
// in-order, late and duplicate readings, Advance, and snapshot round trips.
// It checks that nothing panics, that the event stream keeps its
// invariants (checkLifecycle: cleared never before opened, End ≥ Start,
// time beyond ≤ elapsed device time), and that the alerts it leaves are
// those of a fresh detector fed the accepted readings in order.
func FuzzObserve(f *testing.F) {
	f.Add([]byte{0, 5, 8, 0, 0, 5, 16, 0, 0, 5, 16, 0, 10, 3, 16, 0, 14, 30, 0, 0, 15, 0, 0, 0})
	f.Add([]byte{0, 5, 0, 1, 1, 5, 14, 1, 2, 7, 14, 1, 11, 2, 18, 0, 13, 1, 0, 0})
	f.Add([]byte{0, 1, 17, 0x80, 0, 1, 17, 0x80, 0, 24, 17, 0x80, 12, 30, 3, 0x80, 15, 0, 0, 0, 12, 9, 0, 0})
	f.Fuzz(runObserveFuzz)
}

var debugFuzz = false

// runObserveFuzz is FuzzObserve's body.
func runObserveFuzz(t *testing.T, data []byte) {
	p := propertyProfile()
	p.MKT.MinKnown = 30 * time.Minute
	cfg := Config{Horizon: 6 * time.Hour, History: 8}
	{
		d := newDetector(t, p, cfg)
		var evs []Event
		var accepted []Sample
		var sent []Sample
		newest := map[string]int64{}
		silence := map[string]int64{}
		seq := 0
		for len(data) >= 4 {
			op, a, b, c := data[0]%16, int64(data[1]), data[2], data[3]
			data = data[4:]
			dev := "a"
			if c&0x80 != 0 {
				dev = "b"
			}
			seq++
			s := Sample{
				Seq: uint64(seq), Device: dev, TempC: temps[int(b)%len(temps)] + float64(b/32)*0.05,
				Defrost: c&1 != 0, DoorOpen: c&2 != 0,
			}
			base := max(newest[dev], t0)
			var err error
			var out Outcome
			switch {
			case op < 10:
				s.Time = base + a%25*int64(time.Minute)
			case op < 13:
				s.Time = base - a%90*int64(time.Minute) - int64(c&0x7c)*int64(time.Second)
			case op == 13 && len(sent) > 0:
				s = sent[int(a)%len(sent)]
			case op == 14:
				now := base + a*int64(time.Minute)
				if evs, err = d.Advance(evs, dev, now); err != nil {
					t.Fatal(err)
				}
				if newest[dev] != 0 && now > newest[dev] {
					silence[dev] = max(silence[dev], now)
				}
				continue
			case op == 15:
				snap, err := d.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				d = newDetector(t, p, cfg)
				if err := d.UnmarshalBinary(snap); err != nil {
					t.Fatal(err)
				}
				again, _ := d.MarshalBinary()
				if string(again) != string(snap) {
					t.Fatal("snapshot does not round-trip")
				}
				continue
			default:
				continue
			}
			if evs, out, err = d.Observe(evs, s); err != nil {
				t.Fatal(err)
			}
			if debugFuzz {
				t.Log("observe", s.Device, s.Seq, mins(s.Time), s.TempC, out.Status, len(evs))
			}
			sent = append(sent, s)
			switch out.Status {
			case Accepted:
				silence[dev] = 0
				newest[dev] = s.Time
				fallthrough
			case Reordered:
				accepted = append(accepted, s)
			}
		}
		if err := checkLifecycle(evs, map[string]int{}); err != nil {
			t.Fatal(err)
		}
		if debugFuzz {
			for _, e := range evs {
				t.Log(e.Device, summary(e))
			}
		}
		ref := newDetector(t, p, cfg)
		slices.SortFunc(accepted, func(x, y Sample) int {
			return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Time, y.Time), cmp.Compare(sampleID(x), sampleID(y)))
		})
		var want []Event
		for _, s := range accepted {
			var out Outcome
			var err error
			if want, out, err = ref.Observe(want, s); err != nil || out.Status != Accepted {
				t.Fatalf("reference: %v %v", out.Status, err)
			}
		}
		for dev, now := range silence {
			if now != 0 {
				want, _ = ref.Advance(want, dev, now)
			}
		}
		if diff := diffViews(view(want), view(evs)); diff != "" {
			t.Fatalf("alerts differ from in-order arrival:\n%s", diff)
		}
	}
}

// FuzzUnmarshalBinary feeds arbitrary bytes to the snapshot decoder: it must
// return an error or a detector that keeps working, never panic.
func FuzzUnmarshalBinary(f *testing.F) {
	d := newDetector(f, DefaultProfile(), DefaultConfig())
	feed(f, d, "dev", join(every(0, 40, 5, 9, ""), []r{{20.5, 30, ""}}))
	snap, _ := d.MarshalBinary()
	f.Add(snap)
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDetector(t, DefaultProfile(), DefaultConfig())
		if err := d.UnmarshalBinary(data); err != nil {
			return
		}
		for name := range d.devs {
			evs := feed(t, d, name, every(1e6, 1e6+30, 5, 9, ""))
			evs, _ = d.Advance(evs, name, at(2e6))
			_ = evs
		}
		if _, err := d.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseProfile feeds arbitrary YAML to the profile decoder: it must
// return an error or a profile that validates and builds a detector.
func FuzzParseProfile(f *testing.F) {
	f.Add([]byte("name: x\nhigh:\n  limit: 9\n"))
	f.Add([]byte("name: 2-8C\nsuppress:\n  defrost:\n    rules: [mkt]\n"))
	f.Add([]byte("mkt: {window: 48h, min_known: 1h}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile(data)
		if err != nil {
			return
		}
		if _, err := New(DefaultConfig(), p); err != nil {
			t.Fatalf("parsed profile does not build a detector: %v", err)
		}
	})
}
