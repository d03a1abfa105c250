package anchor

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// thirtyDays is a 30-day shipment at one reading a minute.
const thirtyDays = 30 * 24 * 60

// benchReading is a reefer's reading with the members a real unit sends
// (about 290 bytes canonical).
func benchReading(ship string, seq uint64) []byte {
	r := record.Reading{Shipment: ship, Device: "reefer-7", Seq: seq,
		Time:  time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Minute),
		TempC: 4 + float64(seq%17)/10, RH: record.Some(61.5), Lat: record.Some(1.2644 + float64(seq)/1e5), Lon: record.Some(103.822),
		DoorOpen: record.Some(false), BatteryV: record.Some(3.61), Probe: record.ProbeBuffered,
		Reefer: record.Reefer{SetpointC: record.Some(5.0), SupplyC: record.Some(3.9), ReturnC: record.Some(5.6), Mode: record.ModeCooling}}
	return r.AppendCanonical(nil)
}

func benchMsgs(ship string, from, to, base uint64) []journal.Msg {
	out := make([]journal.Msg, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, journal.Msg{Kind: record.KindReading, Seq: base + i, ID: fmt.Sprintf("reefer-7:%d", i),
			Subject: journal.SubjectReading(ship, "reefer-7"), Data: benchReading(ship, i)})
	}
	return out
}

// BenchmarkHashIntoTree is the pure hashing rate: canonical readings into
// a shipment's RFC 6962 tree, on one core.
func BenchmarkHashIntoTree(b *testing.B) {
	recs := make([][]byte, 1024)
	for i := range recs {
		recs[i] = benchReading("SHP-2026-0042", uint64(i))
	}
	b.SetBytes(int64(len(recs[0])))
	b.ReportAllocs()
	var t merkle.Tree
	i := 0
	for b.Loop() {
		t.AppendData(recs[i&1023])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkApply is the logging rate of the Service: journal batches of
// 1,000 readings hashed, written to Pebble and synced, as the journal
// delivers them.
func BenchmarkApply(b *testing.B) {
	s := openService(b, b.TempDir(), testConfig(), newFakeChain(), newClock())
	defer s.Close()
	batches := make([][]journal.Msg, 16)
	for i := range batches {
		batches[i] = benchMsgs("SHP-2026-0042", uint64(i)*1000, uint64(i+1)*1000, 1)
	}
	n, seq := 0, uint64(0)
	for b.Loop() {
		batch := batches[n%len(batches)]
		for i := range batch { // fresh stream sequences: nothing is skipped
			seq++
			batch[i].Seq = seq
		}
		if err := s.apply(context.Background(), record.KindReading, batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n*1000)/b.Elapsed().Seconds(), "records/s")
}

// thirtyDayService logs a 30-day shipment beside 999 one-record shipments,
// all in one anchored epoch of 1,000 entries.
func thirtyDayService(b *testing.B) (*Service, *fakeChain) {
	clk, chain := newClock(), newFakeChain()
	s := openService(b, b.TempDir(), testConfig(), chain, clk)
	b.Cleanup(func() { _ = s.Close() })
	for from := uint64(0); from < thirtyDays; from += 1000 {
		if err := s.apply(context.Background(), record.KindReading, benchMsgs("SHP-2026-0042", from, min(from+1000, thirtyDays), 1)); err != nil {
			b.Fatal(err)
		}
	}
	var others []journal.Msg
	for i := range 999 {
		m := benchMsgs(fmt.Sprintf("SHP-OTHER-%03d", i), 0, 1, 0)[0]
		m.Seq = thirtyDays + 1 + uint64(i)
		others = append(others, m)
	}
	if err := s.apply(context.Background(), record.KindReading, others); err != nil {
		b.Fatal(err)
	}
	anchorNow(b, s, clk)
	return s, chain
}

// BenchmarkBundle30Days serves the full bundle of a 30-day shipment.
func BenchmarkBundle30Days(b *testing.B) {
	s, _ := thirtyDayService(b)
	var size int
	for b.Loop() {
		bd, err := s.Proof("SHP-2026-0042", ProofOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		_ = bundle.Encode(&buf, bd)
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "bundle-bytes")
}

// BenchmarkVerify30Days decodes and verifies the full bundle of a 30-day
// shipment offline, as coldchain verify does.
func BenchmarkVerify30Days(b *testing.B) {
	s, _ := thirtyDayService(b)
	bd, err := s.Proof("SHP-2026-0042", ProofOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	_ = bundle.Encode(&buf, bd)
	raw := buf.Bytes()
	for b.Loop() {
		d, err := bundle.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bundle.Verify(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "bundle-bytes")
}

// BenchmarkRecordProof30Days serves and verifies the proof of one reading
// of a 30-day shipment in an epoch of 1,000 shipments.
func BenchmarkRecordProof30Days(b *testing.B) {
	s, _ := thirtyDayService(b)
	var size, hashes int
	for b.Loop() {
		bd, err := s.Proof("SHP-2026-0042", ProofOptions{Record: "reefer-7:20000"})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		_ = bundle.Encode(&buf, bd)
		if _, err := bundle.Verify(bd); err != nil {
			b.Fatal(err)
		}
		size, hashes = buf.Len(), len(bd.Record.Path)+len(bd.Epoch.Path)
		// The same proof without indentation, as a compact transfer would.
		_ = hashes
	}
	b.ReportMetric(float64(size), "proof-bytes")
	b.ReportMetric(float64(hashes), "path-hashes")
}
