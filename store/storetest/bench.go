package storetest

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// nopJournal is the journal side of a benchmarked writer: batches are
// handed to the handler directly, and nothing is dead-lettered.
type nopJournal struct{}

func (nopJournal) Consume(context.Context, record.Kind, journal.ConsumeOptions, journal.Handler) error {
	return nil
}

func (nopJournal) DeadLetter(context.Context, []journal.DeadLetter) error { return nil }

// benchRun makes every benchmark's shipment ids unique, so runs against a
// shared InfluxDB never overwrite each other's points.
var benchRun atomic.Int64

// JournalBatch returns n readings of one reefer as the journal hands them
// to the writer (canonical encoding), starting at seq from.
func JournalBatch(ship string, from, n int) []journal.Msg {
	out := make([]journal.Msg, n)
	for i := range n {
		seq := from + i
		r := Reading(ship, fmt.Sprintf("reefer-%d", seq%4), uint64(seq), Base.Add(time.Duration(seq)*time.Second), seq)
		out[i] = journal.Msg{Kind: record.KindReading, Seq: uint64(seq), ID: r.ID(),
			Subject: journal.SubjectReading(ship, r.Device), Data: r.AppendCanonical(nil), Stored: Base}
	}
	return out
}

// BenchWriter measures the writer's throughput into s in points/s: batches
// of size canonical readings, decoded and written as the running writer
// does, each acknowledged only after s confirmed it.
func BenchWriter(b *testing.B, s store.BatchWriter, size int) {
	cfg := store.DefaultConfig()
	cfg.BatchSize = size
	w, err := store.NewWriter(cfg, nopJournal{}, s, metrics.New(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	h := w.Handler(record.KindReading)
	ship := fmt.Sprintf("BENCH-%d-%d", time.Now().UnixNano(), benchRun.Add(1))
	// Batches are prepared outside the timer: the journal's cost is not
	// the writer's.
	batches := make([][]journal.Msg, 0, 8)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if len(batches) == 0 {
			for j := range 8 {
				batches = append(batches, JournalBatch(ship, (i+j)*size, size))
			}
		}
		batch := batches[0]
		batches = batches[1:]
		b.StartTimer()
		if err := h(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "points/s")
}

// Month writes a 30-day shipment of one device, one reading a minute
// (43,200 readings), and returns its id.
func Month(b *testing.B, s store.BatchWriter) string {
	ship := fmt.Sprintf("MONTH-%d-%d", time.Now().UnixNano(), benchRun.Add(1))
	var batch []record.Reading
	for i := range 30 * 24 * 60 {
		batch = append(batch, Reading(ship, "reefer-1", uint64(i+1), Base.Add(time.Duration(i)*time.Minute), i))
		if len(batch) == 5000 {
			if err := s.Write(context.Background(), store.Batch{Readings: batch}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Write(context.Background(), store.Batch{Readings: batch}); err != nil {
		b.Fatal(err)
	}
	return ship
}

// BenchQueries measures the 30-day shipment's queries: every raw reading,
// and downsampled to 1 h (720 buckets).
func BenchQueries(b *testing.B, s store.Reader, ship string) {
	q := store.Query{Shipment: ship, Limit: math.MaxInt32}
	b.Run("raw", func(b *testing.B) {
		for range b.N {
			rs, err := s.Readings(context.Background(), q)
			if err != nil || len(rs) != 43200 {
				b.Fatalf("%d readings, %v", len(rs), err)
			}
		}
	})
	b.Run("downsampled-1h", func(b *testing.B) {
		for range b.N {
			bs, err := s.Downsample(context.Background(), q, time.Hour)
			if err != nil || len(bs) != 720 {
				b.Fatalf("%d buckets, %v", len(bs), err)
			}
		}
	})
}
