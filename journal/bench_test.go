package journal

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAppend100 appends 100-record batches of new readings, as one
// 100-reading MQTT message does, with the indexer running beside it: the
// ceiling JetStream's per-message cost puts on ingest (docs/PERFORMANCE.md).
func BenchmarkAppend100(b *testing.B) {
	e := start(&testing.T{}, b.TempDir(), DefaultConfig())
	defer e.stop()
	out := make([]Result, 100)
	seq := uint64(0)
	meta := Meta{Source: "bench", Received: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		entries := make([]Entry, 100)
		for i := range entries {
			seq++
			entries[i] = reading("B1", seq, 5)
		}
		if err := e.j.Append(context.Background(), entries, meta, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}
