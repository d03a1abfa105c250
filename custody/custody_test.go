package custody

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func at(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }

// ho builds a handover; mods set the optional members.
func ho(id string, kind record.HandoverKind, hour float64, from, to, site string, mods ...func(*record.Handover)) record.Handover {
	h := record.Handover{ID: id, Shipment: "S1", Kind: kind, Time: at(hour), FromParty: from, ToParty: to, Site: site}
	for _, m := range mods {
		m(&h)
	}
	return h
}

func seal(s string) func(*record.Handover) { return func(h *record.Handover) { h.Seal = s } }
func temp(c float64) func(*record.Handover) {
	return func(h *record.Handover) { h.TempC = record.Some(c) }
}
func final(h *record.Handover)               { h.Final = true }
func qc(r string) func(*record.Handover)     { return func(h *record.Handover) { h.QCResult = r } }
func rd(dev string, hour, c float64) Reading { return Reading{Device: dev, Time: at(hour), TempC: c} }

// find returns the findings of rule.
func find(tl Timeline, rule string) []Finding {
	var out []Finding
	for _, f := range tl.Checks {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

// one returns the single finding of rule, failing the test otherwise.
func one(t *testing.T, tl Timeline, rule string) Finding {
	t.Helper()
	fs := find(tl, rule)
	if len(fs) != 1 {
		t.Fatalf("%d %s findings, want 1: %+v", len(fs), rule, tl.Checks)
	}
	return fs[0]
}

func TestUnmatchedRelease(t *testing.T) {
	cfg := DefaultConfig()
	rel := ho("R1", record.HandoverRelease, 0, "WH-SIN", "carrier", "SIN-1")
	for _, tc := range []struct {
		name   string
		hs     []record.Handover
		asOf   float64
		result Result
		at     float64
	}{
		{"received within max_transit", []record.Handover{rel, ho("V1", record.HandoverReceive, 30, "WH-SIN", "carrier", "SIN-1")}, 100, Pass, 0},
		{"received at the same instant", []record.Handover{rel, ho("V1", record.HandoverReceive, 0, "WH-SIN", "carrier", "SIN-1")}, 1, Pass, 0},
		{"not received, deadline not reached", []record.Handover{rel}, 71.9, Pending, 0},
		{"not received, deadline passed", []record.Handover{rel}, 72, Fail, 72},
		{"received after max_transit", []record.Handover{rel, ho("V1", record.HandoverReceive, 80, "WH-SIN", "carrier", "X")}, 100, Fail, 72},
		{"received by another party", []record.Handover{rel, ho("V1", record.HandoverReceive, 5, "WH-SIN", "someone-else", "X")}, 100, Fail, 72},
		{"a receive before the release does not match it", []record.Handover{rel, ho("V0", record.HandoverReceive, -1, "WH-SIN", "carrier", "X")}, 100, Fail, 72},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := one(t, Build("S1", tc.hs, nil, at(tc.asOf), cfg), RuleUnmatchedRelease)
			if f.Result != tc.result || !f.At.Equal(at(tc.at)) || f.Handover != "R1" || f.Detail == "" {
				t.Fatalf("got %+v, want %s at %v", f, tc.result, at(tc.at))
			}
		})
	}
	t.Run("two releases, one receive each", func(t *testing.T) {
		hs := []record.Handover{rel, ho("V1", record.HandoverReceive, 1, "WH-SIN", "carrier", "X"),
			ho("R2", record.HandoverRelease, 2, "WH-SIN", "carrier", "SIN-1")}
		fs := find(Build("S1", hs, nil, at(100), cfg), RuleUnmatchedRelease)
		if len(fs) != 2 || fs[0].Result != Pass || fs[1].Result != Fail || fs[1].Handover != "R2" {
			t.Fatalf("one receive matched two releases: %+v", fs)
		}
	})
}

func TestSealMismatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rel, rec string
		result   Result // "" for no finding
	}{
		{"same seal", "SL-1", "SL-1", Pass},
		{"different seal", "SL-1", "SL-2", Fail},
		{"seal only at the release", "SL-1", "", Unverified},
		{"seal only at the receive", "", "SL-2", Unverified},
		{"no seals", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := []record.Handover{ho("R1", record.HandoverRelease, 0, "A", "B", "S", seal(tc.rel)), ho("V1", record.HandoverReceive, 10, "A", "B", "T", seal(tc.rec))}
			fs := find(Build("S1", hs, nil, at(20), DefaultConfig()), RuleSealMismatch)
			if tc.result == "" {
				if len(fs) != 0 {
					t.Fatalf("findings %+v, want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Result != tc.result || fs[0].Handover != "V1" || !fs[0].At.Equal(at(10)) {
				t.Fatalf("findings %+v, want one %s on V1", fs, tc.result)
			}
			if tc.result == Fail && (!strings.Contains(fs[0].Detail, "SL-1") || !strings.Contains(fs[0].Detail, "SL-2")) {
				t.Fatalf("the detail does not name both seals: %s", fs[0].Detail)
			}
		})
	}
}

func TestTempNotValidated(t *testing.T) {
	cfg := DefaultConfig()
	readings := []Reading{rd("L1", -1, 20), rd("L1", -0.1, 5.0), rd("L1", 0.2, 5.4), rd("L2", 0.05, 3.0), rd("L1", 2, 30)}
	for _, tc := range []struct {
		name   string
		temp   float64
		rs     []Reading
		result Result
		device string
	}{
		{"agrees with the nearest reading", 5.5, readings, Pass, "L1"},
		{"exactly at the tolerance", 2.0, readings, Pass, "L2"},
		{"agrees with one logger of two", 3.2, readings, Pass, "L2"},
		{"disagrees with every logger", 9.0, readings, Fail, "L1"},
		{"no reading within the window", 5.0, []Reading{rd("L1", -1, 5), rd("L1", 1, 5)}, Unverified, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := []record.Handover{ho("H1", record.HandoverReceive, 0, "A", "B", "S", temp(tc.temp))}
			f := one(t, Build("S1", hs, tc.rs, at(1), cfg), RuleTempNotValidated)
			if f.Result != tc.result || f.Device != tc.device {
				t.Fatalf("got %+v, want %s by %q", f, tc.result, tc.device)
			}
		})
	}
	t.Run("a handover without temp_c is not checked", func(t *testing.T) {
		hs := []record.Handover{ho("H1", record.HandoverReceive, 0, "A", "B", "S")}
		if fs := find(Build("S1", hs, readings, at(1), cfg), RuleTempNotValidated); len(fs) != 0 {
			t.Fatalf("%+v", fs)
		}
	})
}

func TestReadingsAfterFinal(t *testing.T) {
	hs := []record.Handover{ho("R1", record.HandoverRelease, 0, "A", "B", "S"), ho("V1", record.HandoverReceive, 10, "A", "B", "DEST", final)}
	rs := []Reading{rd("L1", 9, 5), rd("L1", 10, 5), rd("L1", 11, 5), rd("L1", 12, 5), rd("L2", 10.5, 5), rd("L3", 9.5, 5)}
	tl := Build("S1", hs, rs, at(12), DefaultConfig())
	fs := find(tl, RuleAfterFinal)
	if tl.Final != "V1" || len(fs) != 2 {
		t.Fatalf("final %q, findings %+v: want L1 and L2 flagged", tl.Final, fs)
	}
	if fs[0].Device != "L2" || !fs[0].At.Equal(at(10.5)) || fs[1].Device != "L1" || !fs[1].At.Equal(at(11)) || !strings.Contains(fs[1].Detail, "2 reading(s)") {
		t.Fatalf("findings %+v", fs)
	}
	if fs := find(Build("S1", hs[:1], rs, at(12), DefaultConfig()), RuleAfterFinal); len(fs) != 0 {
		t.Fatalf("no final receive, yet %+v", fs)
	}
}

func TestQCAndCustoms(t *testing.T) {
	hs := []record.Handover{
		ho("I1", record.HandoverIntake, 0, "supplier", "plant", "P1"),
		ho("Q1", record.HandoverQCCheckpoint, 1, "plant", "plant", "P1", qc("pass")),
		ho("Q2", record.HandoverQCCheckpoint, 2, "plant", "plant", "P1", qc("fail"), func(h *record.Handover) { h.DocSHA256 = strings.Repeat("ab", 32) }),
		ho("C1", record.HandoverCustomsHold, 3, "customs", "customs", "P1"),
		ho("C2", record.HandoverCustomsRelease, 5, "customs", "customs", "P1"),
		ho("C3", record.HandoverCustomsHold, 6, "customs", "customs", "P1"),
	}
	tl := Build("S1", hs, nil, at(7), DefaultConfig())
	q := find(tl, RuleQC)
	if len(q) != 2 || q[0].Result != Pass || q[1].Result != Fail || !strings.Contains(q[1].Detail, "abab") {
		t.Fatalf("qc findings %+v", q)
	}
	c := find(tl, RuleCustomsHold)
	if len(c) != 2 || c[0].Result != Pass || c[1].Result != Pending {
		t.Fatalf("customs findings %+v", c)
	}
	if len(tl.Custody) != 1 || !tl.Custody[0].Held || tl.Holder != "plant" {
		t.Fatalf("custody %+v, holder %q: want the plant, held by customs", tl.Custody, tl.Holder)
	}
}

// TestTimeline follows intake → QC → release → depart → arrive → receive
// at the final site, and checks the periods it cuts.
func TestTimeline(t *testing.T) {
	lat, lon := 1.29, 103.85
	hs := []record.Handover{
		ho("I1", record.HandoverIntake, 0, "maker", "WH-SIN", "SIN-BW1", func(h *record.Handover) { h.Lat, h.Lon = record.Some(lat), record.Some(lon) }),
		ho("Q1", record.HandoverQCCheckpoint, 1, "WH-SIN", "WH-SIN", "SIN-BW1", qc("pass")),
		ho("R1", record.HandoverRelease, 2, "WH-SIN", "carrier", "SIN-BW1", seal("SL-7")),
		ho("D1", record.HandoverDepart, 2.5, "carrier", "carrier", "SIN-BW1"),
		ho("A1", record.HandoverArrive, 20, "carrier", "carrier", "DXB-T1"),
		ho("V1", record.HandoverReceive, 21, "carrier", "importer", "DXB-WH", seal("SL-7"), final),
	}
	tl := Build("S1", hs, nil, at(80), DefaultConfig())
	type p struct {
		party, site      string
		from, to         float64 // to < 0: open
		confirmed        bool
		openedBy, closed string
	}
	want := []p{
		{"WH-SIN", "SIN-BW1", 0, 2, true, "I1", "R1"},
		{"carrier", "", 2, 2.5, false, "R1", "D1"},
		{"carrier", "", 2.5, 20, false, "D1", "A1"},
		{"carrier", "DXB-T1", 20, 21, false, "A1", "V1"},
		{"importer", "DXB-WH", 21, -1, false, "V1", ""},
	}
	if len(tl.Custody) != len(want) {
		t.Fatalf("%d periods, want %d: %+v", len(tl.Custody), len(want), tl.Custody)
	}
	for i, w := range want {
		g := tl.Custody[i]
		to := -1.0
		if g.To != nil {
			to = g.To.Sub(t0).Hours()
		}
		if g.Party != w.party || g.Site != w.site || !g.From.Equal(at(w.from)) || to != w.to || g.Confirmed != w.confirmed || g.OpenedBy != w.openedBy || g.ClosedBy != w.closed {
			t.Errorf("period %d: %+v (to %v), want %+v", i, g, to, w)
		}
	}
	if tl.Custody[0].Lat == nil || *tl.Custody[0].Lat != lat || tl.Holder != "importer" || tl.Final != "V1" {
		t.Errorf("geotag %v, holder %q, final %q", tl.Custody[0].Lat, tl.Holder, tl.Final)
	}
	// Title: the maker owns the goods until the importer's receive, which
	// names the importer; a QC check that names the owner again opens no
	// period.
	hs[0].Owner, hs[1].Owner, hs[5].Owner = "maker", "maker", "importer"
	tl = Build("S1", hs, nil, at(80), DefaultConfig())
	var owners []string
	for _, p := range tl.Custody {
		owners = append(owners, p.Owner)
	}
	if fmt.Sprint(owners) != "[maker maker maker maker importer]" || tl.Owner != "importer" || len(tl.Custody) != len(want) {
		t.Errorf("owners %v, now %q", owners, tl.Owner)
	}
	// The release to the carrier is never received by the carrier: the
	// importer's receive is another transfer.
	if f := one(t, tl, RuleUnmatchedRelease); f.Result != Fail {
		t.Errorf("release to the carrier: %+v", f)
	}
}

// TestConfirmedTransfer: the taker's receive confirms the custody the
// giver's release gave it, within one period.
func TestConfirmedTransfer(t *testing.T) {
	hs := []record.Handover{
		ho("R1", record.HandoverRelease, 0, "A", "B", "S-A", seal("SL-1")),
		ho("V1", record.HandoverReceive, 3, "A", "B", "S-B", seal("SL-1")),
	}
	tl := Build("S1", hs, nil, at(4), DefaultConfig())
	if len(tl.Custody) != 1 || !tl.Custody[0].Confirmed || tl.Custody[0].Site != "S-B" || !tl.Custody[0].From.Equal(at(0)) {
		t.Fatalf("custody %+v: want one confirmed period of B from the release", tl.Custody)
	}
	if len(tl.Failed()) != 0 {
		t.Fatalf("failed %+v", tl.Failed())
	}
	// A receive that names a new owner changes the owner of the period it
	// confirms.
	hs[1].Owner = "B"
	if tl := Build("S1", hs, nil, at(4), DefaultConfig()); len(tl.Custody) != 1 || tl.Custody[0].Owner != "B" || tl.Owner != "B" {
		t.Errorf("owner after the confirming receive: %+v", tl.Custody)
	}
	// Through a departure and an arrival, the receive confirms every
	// stretch since the release, and the seal carries over.
	hs = []record.Handover{
		ho("R1", record.HandoverRelease, 0, "A", "B", "S-A", seal("SL-1")),
		ho("D1", record.HandoverDepart, 1, "B", "B", "S-A"),
		ho("A1", record.HandoverArrive, 5, "B", "B", "S-B"),
		ho("V1", record.HandoverReceive, 6, "A", "B", "S-B", seal("SL-1")),
	}
	tl = Build("S1", hs, nil, at(7), DefaultConfig())
	if len(tl.Custody) != 3 {
		t.Fatalf("custody %+v", tl.Custody)
	}
	for i, p := range tl.Custody {
		if !p.Confirmed || p.Party != "B" || p.Seal != "SL-1" {
			t.Errorf("period %d: %+v, want B's, confirmed, under SL-1", i, p)
		}
	}
}

// TestShuffled: any order of the same handovers and readings, with
// duplicates, gives the same timeline.
func TestShuffled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []record.HandoverKind{record.HandoverRelease, record.HandoverReceive, record.HandoverIntake, record.HandoverDepart, record.HandoverArrive, record.HandoverCustomsHold, record.HandoverCustomsRelease}
	parties := []string{"A", "B", "C"}
	for trial := range 200 {
		var hs []record.Handover
		for i := range 2 + rng.IntN(10) {
			k := kinds[rng.IntN(len(kinds))]
			h := ho("H"+string(rune('a'+i)), k, float64(rng.IntN(48)), parties[rng.IntN(3)], parties[rng.IntN(3)], "S"+string(rune('0'+rng.IntN(3))))
			if rng.IntN(3) == 0 {
				h.Seal = "SL-" + string(rune('0'+rng.IntN(2)))
			}
			if rng.IntN(3) == 0 {
				h.TempC = record.Some(float64(rng.IntN(10)))
			}
			if k == record.HandoverReceive && rng.IntN(4) == 0 {
				h.Final = true
			}
			hs = append(hs, h)
		}
		var rs []Reading
		for range rng.IntN(40) {
			rs = append(rs, rd("L"+string(rune('1'+rng.IntN(2))), float64(rng.IntN(96))/2, float64(rng.IntN(10))))
		}
		want := Build("S1", hs, rs, at(100), DefaultConfig())
		for range 5 {
			sh := append([]record.Handover(nil), hs...)
			sh = append(sh, hs[rng.IntN(len(hs))]) // a resend
			rng.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
			srs := append([]Reading(nil), rs...)
			rng.Shuffle(len(srs), func(i, j int) { srs[i], srs[j] = srs[j], srs[i] })
			got := Build("S1", sh, srs, at(100), DefaultConfig())
			if !reflect.DeepEqual(got, want) {
				a, _ := json.Marshal(got)
				b, _ := json.Marshal(want)
				t.Fatalf("trial %d: shuffled handovers gave\n%s\nwant\n%s", trial, a, b)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{MaxTransit: 0, TempToleranceC: 1, TempWindow: time.Minute, CheckEvery: time.Second},
		{MaxTransit: time.Hour, TempToleranceC: 0, TempWindow: time.Minute, CheckEvery: time.Second},
		{MaxTransit: time.Hour, TempToleranceC: 1, TempWindow: 0, CheckEvery: time.Second},
		{MaxTransit: time.Hour, TempToleranceC: 1, TempWindow: time.Minute},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
