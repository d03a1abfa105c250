package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
)

// BenchmarkRender renders the report of a month-long shipment: one logger
// reading every minute (43,200 readings) and a two-hour excursion. The
// bundle's epoch proof is not real, so the report says it does not
// verify; every record is still parsed, checked and hashed, and the chart
// drawn, which is the cost measured.
func BenchmarkRender(b *testing.B) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	records := make([]string, 0, 43200)
	for i := range 43200 {
		temp := 5 + float64(i%7)/10
		if i >= 20000 && i < 20120 {
			temp = 10.5
		}
		r := record.Reading{Shipment: "SHP-M", Device: "L1", Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Minute), TempC: temp}
		records = append(records, string(r.AppendCanonical(nil)))
	}
	raw, err := json.Marshal(map[string]any{"format": "coldchain-proof/1", "shipment": "SHP-M", "tree_size": len(records),
		"root": fmt.Sprintf("%064x", 1), "records": records, "epoch": map[string]any{"number": 1}, "anchor": map[string]any{"chain_id": 1}})
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	if err := Render(&out, raw, options()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Render(io.Discard, raw, options()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(raw)), "bundle-bytes")
	b.ReportMetric(float64(out.Len()), "pdf-bytes")
}
