package epcis

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// pagedSource answers like a store: readings in time order, ties by
// device then seq, at most q.Limit from q.From.
type pagedSource struct {
	rs      []record.Reading
	hs      []record.Handover
	queries int
}

func (p *pagedSource) Shipment(_ context.Context, id string) (store.Shipment, error) {
	if id != "SHP-1" {
		return store.Shipment{}, store.ErrUnknownShipment
	}
	return store.Shipment{ID: id}, nil
}

func (p *pagedSource) Handovers(context.Context, string) ([]record.Handover, error) { return p.hs, nil }

func (p *pagedSource) Readings(_ context.Context, q store.Query) ([]record.Reading, error) {
	p.queries++
	var out []record.Reading
	for _, r := range p.rs {
		if q.Contains(r.Time) && len(out) < q.Limit {
			out = append(out, r)
		}
	}
	return out, nil
}

// TestLoadPages reads more readings than a page, with pages cut between
// readings of the same instant, and counts each reading once.
func TestLoadPages(t *testing.T) {
	src := &pagedSource{hs: handovers()}
	devs := []string{"SHP-1-L2", "SHP-1-L3", "SHP-1-R1"}
	for i := range 4001 { // 12003 readings: pages end mid-instant
		for _, d := range devs {
			src.rs = append(src.rs, record.Reading{Shipment: "SHP-1", Device: d, Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Minute), TempC: 5})
		}
	}
	slices.SortFunc(src.rs, func(a, b record.Reading) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Device, b.Device)
	})
	doc, err := Load(context.Background(), src, "SHP-1", nil, nil, nil, t0, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, e := range doc.Body.EventList {
		if e.BizStep == "sensor_reporting" {
			for _, se := range e.SensorElementList {
				total += se.Report[0].Count
			}
		}
	}
	if total != len(src.rs) || src.queries != 2 {
		t.Errorf("counted %d of %d readings in %d queries", total, len(src.rs), src.queries)
	}
	if _, err := Load(context.Background(), src, "SHP-2", nil, nil, nil, t0, DefaultOptions()); err != store.ErrUnknownShipment {
		t.Errorf("unknown shipment: %v", err)
	}
}
