package epcis

import (
	"context"
	"time"

	"github.com/coldchain/coldchain/device"
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

// pageSize is how many readings one query of Load reads.
const pageSize = 10000

// Load reads shipment's handovers and every reading from src, summarises
// the readings per device and o.Interval, and builds the document with
// the alerts, log and calibration records (cals, nil for none) given. It returns store.ErrUnknownShipment for a
// shipment the store does not hold.
func Load(ctx context.Context, src Source, shipment string, alerts []Alert, log *Log, cals func(id string) []device.Calibration, created time.Time, o Options) (Document, error) {
	if _, err := src.Shipment(ctx, shipment); err != nil {
		return Document{}, err
	}
	hos, err := src.Handovers(ctx, shipment)
	if err != nil {
		return Document{}, err
	}
	agg := NewAggregator(o.Interval)
	// Pages in device-time order, ties by device then seq: the next page
	// starts at the last time read, skipping what was read at it.
	q := store.Query{Shipment: shipment, Limit: pageSize}
	var at time.Time
	var seen map[string]bool
	for {
		rs, err := src.Readings(ctx, q)
		if err != nil {
			return Document{}, err
		}
		fresh := 0
		for i := range rs {
			r := &rs[i]
			id := r.ID()
			if r.Time.Equal(at) && seen[id] {
				continue
			}
			if !r.Time.Equal(at) {
				at, seen = r.Time, map[string]bool{}
			}
			seen[id] = true
			agg.Add(r)
			fresh++
		}
		if len(rs) < pageSize {
			break
		}
		if fresh == 0 {
			// A whole page at one instant: more readings at one device
			// time than a page holds. Read on past it.
			at = at.Add(time.Nanosecond)
			seen = nil
		}
		q.From = at
	}
	in := Input{Shipment: shipment, Handovers: hos, Sensors: agg.Intervals(), Alerts: alerts, Log: log, Created: created}
	if cals != nil {
		in.Calibrations = map[string][]device.Calibration{}
		for _, iv := range in.Sensors {
			if _, done := in.Calibrations[iv.Device]; !done {
				in.Calibrations[iv.Device] = cals(iv.Device)
			}
		}
	}
	return Build(in, o), nil
}
