package custody

import (
	"context"
	"time"

	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// Source is where Load reads a shipment's records: the time-series store
// (store.Reader).
type Source interface {
	Shipment(ctx context.Context, id string) (store.Shipment, error)
	Handovers(ctx context.Context, shipment string) ([]record.Handover, error)
	Readings(ctx context.Context, q store.Query) ([]record.Reading, error)
}

// maxReadings bounds the readings one query of Load returns.
const maxReadings = 100000

// Load reads shipment's handovers and the readings the checks need (those
// within the window of each handover's temp_c, and those after the
// receive at the final site) from src and builds the timeline. It is as
// of the later of now and the shipment's latest device time: a release
// nobody received is overdue once max_transit has passed on either
// clock, and the failure is dated at its deadline whichever noticed it.
func Load(ctx context.Context, src Source, shipment string, now time.Time, cfg Config) (Timeline, error) {
	sh, err := src.Shipment(ctx, shipment)
	if err != nil {
		return Timeline{}, err
	}
	hos, err := src.Handovers(ctx, shipment)
	if err != nil {
		return Timeline{}, err
	}
	asOf := sh.LastReading
	if now.After(asOf) {
		asOf = now
	}
	var final *record.Handover
	var qs []store.Query
	for i := range hos {
		h := &hos[i]
		if h.Time.After(asOf) {
			asOf = h.Time
		}
		if h.Final && (final == nil || h.Time.Before(final.Time)) {
			final = h
		}
		if h.TempC.Set {
			qs = append(qs, store.Query{Shipment: shipment, From: h.Time.Add(-cfg.TempWindow), To: h.Time.Add(cfg.TempWindow + time.Nanosecond), Limit: maxReadings})
		}
	}
	if final != nil {
		qs = append(qs, store.Query{Shipment: shipment, From: final.Time.Add(time.Nanosecond), Limit: maxReadings})
	}
	type key struct {
		device string
		seq    uint64
	}
	seen := map[key]bool{} // the windows may overlap
	var rs []Reading
	for _, q := range qs {
		got, err := src.Readings(ctx, q)
		if err != nil {
			return Timeline{}, err
		}
		for _, g := range got {
			if k := (key{g.Device, g.Seq}); !seen[k] {
				seen[k] = true
				rs = append(rs, Reading{Device: g.Device, Time: g.Time, TempC: g.TempC})
			}
		}
	}
	return Build(shipment, hos, rs, asOf, cfg), nil
}
