// Package storetest is the conformance suite every store.Store passes: the
// embedded store always, InfluxDB under the integration build tag. Each
// answer is checked against model, a slow and literal reference
// implementation of the query semantics the store package documents, so
// two stores that pass give the same answers for the same records.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// Factory opens a store for one test. Stores that share a backend (one
// InfluxDB bucket) need no cleaning: every test uses shipment ids of its
// own, and the suite only looks at those.
type Factory func(t *testing.T, opts store.Options) store.Store

// Base is the device time of the suite's first reading.
var Base = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open Factory) {
	// Shipment ids unique to this run, so a shared InfluxDB bucket holds
	// many runs side by side.
	run := fmt.Sprintf("T%d", time.Now().UnixNano())
	tests := []struct {
		name string
		fn   func(t *testing.T, open Factory, ship string)
	}{
		{"RoundTrip", testRoundTrip},
		{"RawQueries", testRawQueries},
		{"Downsample", testDownsample},
		{"IdempotentRewrite", testIdempotent},
		{"OutOfOrder", testOutOfOrder},
		{"SameTimeDifferentSeq", testSameTime},
		{"Handovers", testHandovers},
		{"Shipments", testShipments},
		{"Retention", testRetention},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open, run+"-"+tc.name) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// Reading returns a reading of device dev with every member set as i
// varies: optional members come and go, ext has each value type.
func Reading(ship, dev string, seq uint64, at time.Time, i int) record.Reading {
	r := record.Reading{Shipment: ship, Device: dev, Seq: seq, Time: at,
		TempC: math.Round((4+3*math.Sin(float64(i)/37)+float64(i%7)/10)*100) / 100}
	if i%2 == 0 {
		r.RH = record.Some(55 + float64(i%20)/4)
	}
	if i%3 == 0 {
		r.Lat, r.Lon = record.Some(1.2644+float64(i)/1e4), record.Some(103.822-float64(i)/1e4)
	}
	if i%5 == 0 {
		r.DoorOpen = record.Some(i%10 == 0)
		r.BatteryV = record.Some(3.6 - float64(i%50)/1000)
	}
	switch i % 4 {
	case 1:
		r.Probe = record.ProbeAir
	case 2:
		r.Probe = record.ProbeBuffered
	}
	if i%6 == 0 {
		r.Reefer = record.Reefer{SetpointC: record.Some(5.0), SupplyC: record.Some(2.5 + float64(i%3)), ReturnC: record.Some(6.25), Mode: record.Mode(1 + i%5)}
	}
	if i%7 == 0 {
		r.Reefer.Mode = record.ModeDefrost
	}
	if i%8 == 0 {
		r.Ext = []record.Ext{
			{Key: "alarm", Type: record.ExtBool, Bool: i%16 == 0},
			{Key: "compressor_hz", Type: record.ExtNumber, Num: 52 + float64(i%9)},
			{Key: "vendor.fw", Type: record.ExtString, Str: "2.4.1\tβ \"q\" \\ x=y,z"},
		}
	}
	return r
}

// series returns n readings per device, one a minute from start, seq
// from 1.
func series(ship string, devs []string, start time.Time, n int) []record.Reading {
	var out []record.Reading
	for d, dev := range devs {
		for i := range n {
			out = append(out, Reading(ship, dev, uint64(i+1), start.Add(time.Duration(i)*time.Minute+time.Duration(d)*time.Second), i+d))
		}
	}
	return out
}

func handover(ship, id string, at time.Time, site string, kind record.HandoverKind) record.Handover {
	h := record.Handover{ID: id, Shipment: ship, Time: at, Site: site, Kind: kind, FromParty: "Carrier A", ToParty: "Warehouse B"}
	if strings.HasSuffix(id, "1") {
		h.Lat, h.Lon, h.TempC = record.Some(1.29), record.Some(103.85), record.Some(4.5)
		h.Seal, h.Note = "SL-991", "seal intact\nsecond line, \"quoted\" \\ x=y"
	}
	return h
}

// write writes rs in batches of size n.
func write(t *testing.T, s store.Store, rs []record.Reading, hs []record.Handover, n int) {
	t.Helper()
	for len(rs) > 0 {
		k := min(n, len(rs))
		if err := s.Write(ctx(t), store.Batch{Readings: rs[:k]}); err != nil {
			t.Fatalf("write: %v", err)
		}
		rs = rs[k:]
	}
	if len(hs) > 0 {
		if err := s.Write(ctx(t), store.Batch{Handovers: hs}); err != nil {
			t.Fatalf("write handovers: %v", err)
		}
	}
}

func shuffled[T any](seed uint64, xs []T) []T {
	out := slices.Clone(xs)
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// ---------------------------------------------------------------- model

// model is the reference: the literal meaning of every query.
type model struct {
	readings  []record.Reading
	handovers []record.Handover
	cutoff    time.Time
}

func newModel(rs []record.Reading, hs []record.Handover, cutoff time.Time) *model {
	m := &model{cutoff: cutoff}
	seen := map[string]bool{}
	for _, r := range rs {
		if id := r.Shipment + "/" + r.ID(); !seen[id] && !r.Time.Before(cutoff) {
			seen[id] = true
			m.readings = append(m.readings, r)
		}
	}
	for _, h := range hs {
		if id := h.Shipment + "/" + h.ID; !seen[id] && !h.Time.Before(cutoff) {
			seen[id] = true
			m.handovers = append(m.handovers, h)
		}
	}
	slices.SortFunc(m.readings, func(a, b record.Reading) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Device, b.Device), cmp.Compare(a.Seq, b.Seq))
	})
	slices.SortFunc(m.handovers, func(a, b record.Handover) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	return m
}

func (m *model) query(q store.Query) []record.Reading {
	var out []record.Reading
	for _, r := range m.readings {
		if r.Shipment == q.Shipment && q.Contains(r.Time) && (q.Device == "" || r.Device == q.Device) && len(out) < q.Limit {
			out = append(out, r)
		}
	}
	return out
}

func (m *model) downsample(q store.Query, every time.Duration) []store.Bucket {
	q.Limit = math.MaxInt
	var out []store.Bucket
	for _, r := range m.query(q) {
		// Buckets align on the Unix epoch (time.Truncate aligns on year 1).
		start := time.Unix(0, r.Time.UnixNano()-r.Time.UnixNano()%int64(every)).UTC()
		if n := len(out); n > 0 && out[n-1].Start.Equal(start) {
			b := &out[n-1]
			b.Min, b.Max, b.Mean = min(b.Min, r.TempC), max(b.Max, r.TempC), b.Mean+r.TempC
			b.Count++
			continue
		}
		out = append(out, store.Bucket{Start: start, Min: r.TempC, Max: r.TempC, Mean: r.TempC, Count: 1})
	}
	for i := range out {
		out[i].Mean /= float64(out[i].Count)
	}
	return out
}

func (m *model) shipment(id string) (store.Shipment, bool) {
	sh := store.Shipment{ID: id}
	devs := map[string]bool{}
	for _, r := range m.readings {
		if r.Shipment != id {
			continue
		}
		devs[r.Device] = true
		if sh.FirstReading.IsZero() || r.Time.Before(sh.FirstReading) {
			sh.FirstReading = r.Time
		}
		// Readings are sorted by time, device, seq: the last one wins.
		sh.LastReading, sh.LastTempC, sh.LastDevice = r.Time, r.TempC, r.Device
	}
	sh.Devices = len(devs)
	for _, h := range m.handovers {
		if h.Shipment == id {
			sh.Handovers++
		}
	}
	return sh, sh.Devices > 0 || sh.Handovers > 0
}

// ---------------------------------------------------------------- checks

func canonical(r record.Reading) string   { return string(r.AppendCanonical(nil)) }
func canonicalH(h record.Handover) string { return string(h.AppendCanonical(nil)) }

func checkReadings(t *testing.T, what string, got, want []record.Reading) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d readings, want %d", what, len(got), len(want))
	}
	for i := range got {
		if g, w := canonical(got[i]), canonical(want[i]); g != w {
			t.Fatalf("%s: reading %d:\n got %s\nwant %s", what, i, g, w)
		}
	}
}

func checkBuckets(t *testing.T, what string, got, want []store.Bucket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d buckets, want %d\n got %v\nwant %v", what, len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Start.Equal(w.Start) || g.Count != w.Count || g.Min != w.Min || g.Max != w.Max || math.Abs(g.Mean-w.Mean) > 1e-9 {
			t.Fatalf("%s: bucket %d: got %+v, want %+v", what, i, g, w)
		}
	}
}

func checkShipment(t *testing.T, got, want store.Shipment) {
	t.Helper()
	if got.ID != want.ID || !got.FirstReading.Equal(want.FirstReading) || !got.LastReading.Equal(want.LastReading) ||
		got.Devices != want.Devices || got.LastTempC != want.LastTempC || got.LastDevice != want.LastDevice || got.Handovers != want.Handovers {
		t.Fatalf("shipment %s:\n got %+v\nwant %+v", want.ID, got, want)
	}
}

func all(ship string) store.Query { return store.Query{Shipment: ship, Limit: math.MaxInt32} }

// ---------------------------------------------------------------- tests

// testRoundTrip: every member of a reading and a handover comes back as it
// went in (same canonical bytes).
func testRoundTrip(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	rs := series(ship, []string{"reefer-7"}, Base, 48)
	rs = append(rs, Reading(ship, "big-seq", math.MaxUint64, Base.Add(250*time.Millisecond), 0),
		Reading(ship, "big-seq", 1<<63, Base.Add(time.Second+123456789), 8))
	hs := []record.Handover{handover(ship, ship+"-h1", Base.Add(time.Hour), "SIN-T1", record.HandoverRelease)}
	write(t, s, rs, hs, 1000)
	m := newModel(rs, hs, time.Time{})
	got, err := s.Readings(ctx(t), all(ship))
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, "all", got, m.query(all(ship)))
	gh, err := s.Handovers(ctx(t), ship)
	if err != nil {
		t.Fatal(err)
	}
	if len(gh) != 1 || canonicalH(gh[0]) != canonicalH(hs[0]) {
		t.Fatalf("handover:\n got %v\nwant %s", gh, canonicalH(hs[0]))
	}
}

// testRawQueries: time ranges (half-open), one device, limits.
func testRawQueries(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	devs := []string{"a", "b", "logger-3"}
	rs := series(ship, devs, Base, 180)
	write(t, s, rs, nil, 100)
	m := newModel(rs, nil, time.Time{})
	at := func(min int) time.Time { return Base.Add(time.Duration(min) * time.Minute) }
	for _, q := range []struct {
		name string
		q    store.Query
	}{
		{"everything", all(ship)},
		{"from", store.Query{Shipment: ship, From: at(60), Limit: 1e6}},
		{"to (exclusive)", store.Query{Shipment: ship, To: at(30), Limit: 1e6}},
		{"from-to", store.Query{Shipment: ship, From: at(10), To: at(20), Limit: 1e6}},
		{"from-to on device b's offset", store.Query{Shipment: ship, From: at(10).Add(time.Second), To: at(11).Add(time.Second), Limit: 1e6}},
		{"device", store.Query{Shipment: ship, Device: "b", Limit: 1e6}},
		{"device range", store.Query{Shipment: ship, Device: "logger-3", From: at(100), To: at(110), Limit: 1e6}},
		{"limit", store.Query{Shipment: ship, Limit: 7}},
		{"limit in range", store.Query{Shipment: ship, From: at(50), Limit: 4}},
		{"empty range", store.Query{Shipment: ship, From: at(500), Limit: 10}},
		{"unknown device", store.Query{Shipment: ship, Device: "nope", Limit: 10}},
		{"other shipment", store.Query{Shipment: ship + "-other", Limit: 10}},
	} {
		t.Run(q.name, func(t *testing.T) {
			got, err := s.Readings(ctx(t), q.q)
			if err != nil {
				t.Fatal(err)
			}
			checkReadings(t, q.name, got, m.query(q.q))
		})
	}
}

// testDownsample: buckets aligned on the epoch, across devices or for one,
// within a range, with an interval that does not divide an hour.
func testDownsample(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	rs := series(ship, []string{"a", "b"}, Base.Add(-7*time.Minute), 300)
	write(t, s, rs, nil, 1000)
	m := newModel(rs, nil, time.Time{})
	at := func(min int) time.Time { return Base.Add(time.Duration(min) * time.Minute) }
	for _, c := range []struct {
		name  string
		q     store.Query
		every time.Duration
	}{
		{"1h all devices", all(ship), time.Hour},
		{"5m all devices", all(ship), 5 * time.Minute},
		{"7m (not dividing an hour)", all(ship), 7 * time.Minute},
		{"1m one device", store.Query{Shipment: ship, Device: "a"}, time.Minute},
		{"15m in range", store.Query{Shipment: ship, From: at(33), To: at(151)}, 15 * time.Minute},
		{"1d", all(ship), 24 * time.Hour},
		{"empty", store.Query{Shipment: ship, From: at(10000)}, time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Downsample(ctx(t), c.q, c.every)
			if err != nil {
				t.Fatal(err)
			}
			checkBuckets(t, c.name, got, m.downsample(c.q, c.every))
		})
	}
}

// testIdempotent: a batch written twice, and a batch overlapping an
// earlier one, leave one point per record.
func testIdempotent(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	rs := series(ship, []string{"a", "b"}, Base, 100)
	hs := []record.Handover{handover(ship, ship+"-h1", Base, "S1", record.HandoverRelease)}
	write(t, s, rs, hs, 1000)
	write(t, s, rs, hs, 1000)
	write(t, s, rs[50:150], hs, 37)
	m := newModel(rs, hs, time.Time{})
	got, err := s.Readings(ctx(t), all(ship))
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, "after rewrites", got, m.query(all(ship)))
	gh, err := s.Handovers(ctx(t), ship)
	if err != nil || len(gh) != 1 {
		t.Fatalf("handovers after rewrites: %d, %v", len(gh), err)
	}
	sh, err := s.Shipment(ctx(t), ship)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.shipment(ship)
	checkShipment(t, sh, want)
	b, err := s.Downsample(ctx(t), all(ship), 24*time.Hour)
	if err != nil || len(b) != 1 || b[0].Count != int64(len(rs)) {
		t.Fatalf("count after rewrites: %+v, %v; want %d", b, err, len(rs))
	}
}

// testOutOfOrder: readings arrive shuffled across batches, and a late
// reading older than everything moves the shipment's first reading.
func testOutOfOrder(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	rs := series(ship, []string{"a", "b", "c"}, Base, 120)
	write(t, s, shuffled(42, rs), nil, 50)
	late := Reading(ship, "a", 1000, Base.Add(-3*time.Hour), 3)
	write(t, s, []record.Reading{late}, nil, 1)
	rs = append(rs, late)
	m := newModel(rs, nil, time.Time{})
	got, err := s.Readings(ctx(t), all(ship))
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, "shuffled", got, m.query(all(ship)))
	if !got[0].Time.Equal(late.Time) {
		t.Fatalf("late reading not first: %v", got[0].Time)
	}
	sh, err := s.Shipment(ctx(t), ship)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.shipment(ship)
	checkShipment(t, sh, want)
	gb, err := s.Downsample(ctx(t), all(ship), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkBuckets(t, "shuffled", gb, m.downsample(all(ship), 30*time.Minute))
}

// testSameTime: two readings of one device with the same time and
// different seqs are two readings; both are kept, in seq order. (InfluxDB
// keeps them apart by nudging the point time by seq mod 1000 ns: seqs
// equal mod 1000 at the same time would still collide there; see
// store/influx.)
func testSameTime(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	at := Base.Add(time.Hour)
	rs := []record.Reading{
		Reading(ship, "a", 8, at, 1), Reading(ship, "a", 7, at, 2), Reading(ship, "a", 1006, at, 3),
		Reading(ship, "b", 7, at, 4), Reading(ship, "a", 9, at.Add(time.Second), 5),
	}
	write(t, s, rs, nil, 2)
	m := newModel(rs, nil, time.Time{})
	got, err := s.Readings(ctx(t), all(ship))
	if err != nil {
		t.Fatal(err)
	}
	checkReadings(t, "same time", got, m.query(all(ship)))
	gb, err := s.Downsample(ctx(t), all(ship), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkBuckets(t, "same time", gb, m.downsample(all(ship), time.Minute))
	sh, err := s.Shipment(ctx(t), ship)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.shipment(ship)
	checkShipment(t, sh, want)
}

// testHandovers: the custody chain in time order, ties by id, written out
// of order.
func testHandovers(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	hs := []record.Handover{
		handover(ship, ship+"-h3", Base.Add(3*time.Hour), "NRT-W", record.HandoverReceive),
		handover(ship, ship+"-h1", Base, "SIN-T1", record.HandoverRelease),
		handover(ship, ship+"-h2b", Base.Add(2*time.Hour), "HKG-T", record.HandoverRelease),
		handover(ship, ship+"-h2a", Base.Add(2*time.Hour), "HKG-T", record.HandoverReceive),
	}
	// The custody kinds and their members.
	qc := handover(ship, ship+"-h0", Base.Add(-time.Hour), "SIN-T1", record.HandoverQCCheckpoint)
	qc.QCResult, qc.DocSHA256 = "fail", strings.Repeat("0f", 32)
	final := handover(ship, ship+"-h4", Base.Add(4*time.Hour), "NRT-W", record.HandoverArrive)
	final.Final, final.Owner = true, "Consignee GmbH"
	hs = append(hs, qc, final, handover(ship, ship+"-h5", Base.Add(5*time.Hour), "NRT-W", record.HandoverCustomsRelease))
	write(t, s, nil, hs[:2], 1)
	write(t, s, nil, hs[2:], 1)
	m := newModel(nil, hs, time.Time{})
	got, err := s.Handovers(ctx(t), ship)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(m.handovers) {
		t.Fatalf("%d handovers, want %d", len(got), len(m.handovers))
	}
	for i := range got {
		if g, w := canonicalH(got[i]), canonicalH(m.handovers[i]); g != w {
			t.Fatalf("handover %d:\n got %s\nwant %s", i, g, w)
		}
	}
	if got, err := s.Handovers(ctx(t), ship+"-none"); err != nil || len(got) != 0 {
		t.Fatalf("handovers of an unknown shipment: %v, %v", got, err)
	}
	sh, err := s.Shipment(ctx(t), ship)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.shipment(ship)
	checkShipment(t, sh, want)
}

// testShipments: the list holds every shipment with readings or handovers
// (only this test's are looked at), and an unknown one is an error.
func testShipments(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	var rs []record.Reading
	rs = append(rs, series(ship+"-1", []string{"a", "b"}, Base, 30)...)
	rs = append(rs, series(ship+"-2", []string{"z"}, Base.Add(time.Hour), 10)...)
	// A tie at the last time: the greater device wins.
	last := Base.Add(2 * time.Hour)
	rs = append(rs, Reading(ship+"-2", "y", 1000, last, 1), Reading(ship+"-2", "z", 1000, last, 2))
	hs := []record.Handover{
		handover(ship+"-1", ship+"-h1", Base, "S1", record.HandoverRelease),
		handover(ship+"-3", ship+"-h2", Base, "S1", record.HandoverRelease),
	}
	write(t, s, shuffled(7, rs), hs, 1000)
	m := newModel(rs, hs, time.Time{})
	list, err := s.Shipments(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var mine []store.Shipment
	for _, sh := range list {
		if strings.HasPrefix(sh.ID, ship+"-") {
			mine = append(mine, sh)
		}
	}
	if len(mine) != 3 {
		t.Fatalf("shipments: %+v", mine)
	}
	for i, id := range []string{ship + "-1", ship + "-2", ship + "-3"} {
		want, _ := m.shipment(id)
		checkShipment(t, mine[i], want)
		one, err := s.Shipment(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		checkShipment(t, one, want)
	}
	if _, err := s.Shipment(ctx(t), ship+"-none"); !errors.Is(err, store.ErrUnknownShipment) {
		t.Fatalf("unknown shipment: %v, want ErrUnknownShipment", err)
	}
}

// testRetention: nothing older than the retention is returned, whether the
// store has pruned yet or not; a shipment with nothing left is unknown.
func testRetention(t *testing.T, open Factory, ship string) {
	now := Base.Add(10 * 24 * time.Hour)
	clock := func() time.Time { return now }
	s := open(t, store.Options{Retention: 5 * 24 * time.Hour, Now: clock})
	old := series(ship+"-old", []string{"a"}, Base, 20)
	mixed := append(series(ship+"-mixed", []string{"a"}, Base.Add(4*24*time.Hour), 20),
		series(ship+"-mixed", []string{"a", "b"}, Base.Add(6*24*time.Hour), 20)...)
	hs := []record.Handover{
		handover(ship+"-mixed", ship+"-h1", Base.Add(4*24*time.Hour), "S1", record.HandoverRelease),
		handover(ship+"-mixed", ship+"-h2", Base.Add(7*24*time.Hour), "S1", record.HandoverReceive),
		handover(ship+"-old", ship+"-h3", Base, "S1", record.HandoverRelease),
	}
	write(t, s, append(old, mixed...), hs, 1000)
	m := newModel(append(old, mixed...), hs, now.Add(-5*24*time.Hour))
	check := func(t *testing.T) {
		for _, id := range []string{ship + "-old"} {
			if _, err := s.Shipment(ctx(t), id); !errors.Is(err, store.ErrUnknownShipment) {
				t.Fatalf("aged-out shipment: %v, want ErrUnknownShipment", err)
			}
		}
		id := ship + "-mixed"
		got, err := s.Readings(ctx(t), all(id))
		if err != nil {
			t.Fatal(err)
		}
		checkReadings(t, "kept", got, m.query(all(id)))
		gb, err := s.Downsample(ctx(t), all(id), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		checkBuckets(t, "kept", gb, m.downsample(all(id), time.Hour))
		gh, err := s.Handovers(ctx(t), id)
		if err != nil || len(gh) != 1 || gh[0].ID != ship+"-h2" {
			t.Fatalf("kept handovers: %v, %v", gh, err)
		}
		sh, err := s.Shipment(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := m.shipment(id)
		checkShipment(t, sh, want)
		list, err := s.Shipments(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range list {
			if sh.ID == ship+"-old" {
				t.Fatalf("aged-out shipment listed: %+v", sh)
			}
		}
	}
	t.Run("before pruning", check)
	if p, ok := s.(store.Pruner); ok {
		if err := p.Prune(ctx(t), now.Add(-5*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		t.Run("after pruning", check)
		if err := p.Prune(ctx(t), now.Add(-5*24*time.Hour)); err != nil {
			t.Fatalf("prune again: %v", err)
		}
	}
}

// testCanceled: a canceled context fails a write and a query.
func testCanceled(t *testing.T, open Factory, ship string) {
	s := open(t, store.Options{})
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(c, store.Batch{Readings: series(ship, []string{"a"}, Base, 1)}); err == nil {
		t.Fatal("write with a canceled context succeeded")
	}
	if _, err := s.Readings(c, all(ship)); err == nil {
		t.Fatal("query with a canceled context succeeded")
	}
}
