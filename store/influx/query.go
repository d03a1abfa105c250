package influx

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api/query"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// Flux range bounds when a query leaves a side open: records are never
// before 2000 (docs/RECORDS.md), and a far stop keeps readings a device
// clock put ahead of the server's now().
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// fluxString quotes s as a Flux string literal.
func fluxString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"', '\\', '$':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

func fluxTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// bounds returns the Flux range of q, with retention applied. The stop is a
// microsecond later than q.To so readings nudged past it are found; rows
// are filtered again by device time after the nudge is taken off.
func (s *Store) bounds(q store.Query) (start, stop string) {
	q = q.Clamp(s.opts.Cutoff())
	from, to := minTime, maxTime
	if !q.From.IsZero() {
		from = q.From
	}
	if !q.To.IsZero() {
		to = q.To.Add(time.Microsecond)
	}
	return fluxTime(from), fluxTime(to)
}

// filter returns the Flux predicate selecting q's readings.
func readingFilter(q store.Query, extra string) string {
	f := `r._measurement == "reading" and r.shipment == ` + fluxString(q.Shipment)
	if q.Device != "" {
		f += " and r.device == " + fluxString(q.Device)
	}
	if extra != "" {
		f += " and " + extra
	}
	return f
}

func (s *Store) run(ctx context.Context, flux string, fn func(*query.FluxRecord) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	s.log.Debug("flux query", zap.String("flux", flux))
	res, err := s.query.Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("influx query: %w", err)
	}
	defer res.Close()
	for res.Next() {
		if err := fn(res.Record()); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("influx query: %w", err)
	}
	return nil
}

// Readings returns up to q.Limit readings in device-time order.
func (s *Store) Readings(ctx context.Context, q store.Query) ([]record.Reading, error) {
	start, stop := s.bounds(q)
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> limit(n: %d)`, fluxString(s.cfg.Bucket), start, stop, readingFilter(q, ""), q.Limit+1)
	// One table per device, in time order, each cut at the limit (plus the
	// one a reading nudged past q.To may take): the merge is done here.
	// Flux could group and sort, but the Flux of InfluxDB 1.8 (v0.65)
	// turns nulls of boolean columns into false when it sorts.
	cutoff := s.opts.Cutoff()
	var out []record.Reading
	err := s.run(ctx, flux, func(rec *query.FluxRecord) error {
		r, err := readingOf(rec)
		if err != nil {
			return err
		}
		if q.Contains(r.Time) && (cutoff.IsZero() || !r.Time.Before(cutoff)) {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The nudge can reorder readings less than a microsecond apart.
	slices.SortStableFunc(out, func(a, b record.Reading) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Device, b.Device), cmp.Compare(a.Seq, b.Seq))
	})
	return out[:min(len(out), q.Limit)], nil
}

// readingOf rebuilds a reading from a pivoted row.
func readingOf(rec *query.FluxRecord) (record.Reading, error) {
	v := rec.Values()
	r := record.Reading{}
	r.Shipment, _ = v["shipment"].(string)
	r.Device, _ = v["device"].(string)
	seq, ok := v["seq"].(int64)
	if !ok {
		return r, fmt.Errorf("influx: reading of %s at %s has no seq field", r.Device, rec.Time())
	}
	r.Seq = uint64(seq)
	r.Time = rec.Time().Add(-readingNudge(r.Seq)).UTC()
	if r.TempC, ok = v["temp_c"].(float64); !ok {
		return r, fmt.Errorf("influx: reading %s:%d has no temp_c field", r.Device, r.Seq)
	}
	r.RH = optFloat(v["rh"])
	r.Lat = optFloat(v["lat"])
	r.Lon = optFloat(v["lon"])
	r.BatteryV = optFloat(v["battery_v"])
	if d, ok := v["door_open"].(bool); ok {
		r.DoorOpen = record.Some(d)
	}
	if p, ok := v["probe"].(string); ok {
		r.Probe = record.Probe(enumOf(p, record.ProbeAir.String(), record.ProbeBuffered.String()))
	}
	r.Reefer.SetpointC = optFloat(v["reefer.setpoint_c"])
	r.Reefer.SupplyC = optFloat(v["reefer.supply_c"])
	r.Reefer.ReturnC = optFloat(v["reefer.return_c"])
	if m, ok := v["reefer.mode"].(string); ok {
		r.Reefer.Mode = record.Mode(enumOf(m, record.ModeCooling.String(), record.ModeDefrost.String(),
			record.ModeOff.String(), record.ModePretrip.String(), record.ModeAlarm.String()))
	}
	for k, val := range v {
		key, ok := strings.CutPrefix(k, "ext.")
		if !ok || val == nil {
			continue
		}
		switch x := val.(type) {
		case string:
			r.Ext = append(r.Ext, record.Ext{Key: key, Type: record.ExtString, Str: x})
		case float64:
			r.Ext = append(r.Ext, record.Ext{Key: key, Type: record.ExtNumber, Num: x})
		case bool:
			r.Ext = append(r.Ext, record.Ext{Key: key, Type: record.ExtBool, Bool: x})
		}
	}
	slices.SortFunc(r.Ext, func(a, b record.Ext) int { return strings.Compare(a.Key, b.Key) })
	return r, nil
}

func optFloat(v any) record.Opt[float64] {
	if f, ok := v.(float64); ok {
		return record.Some(f)
	}
	return record.Opt[float64]{}
}

// enumOf returns the 1-based position of s in names, 0 if absent.
func enumOf(s string, names ...string) uint8 {
	for i, n := range names {
		if n == s {
			return uint8(i + 1)
		}
	}
	return 0
}

// Downsample returns min, max, mean and count of temp_c per interval of
// length every, aligned on the Unix epoch, computed by the server with
// aggregateWindow.
func (s *Store) Downsample(ctx context.Context, q store.Query, every time.Duration) ([]store.Bucket, error) {
	if every <= 0 {
		return nil, fmt.Errorf("downsample: every must be positive")
	}
	// Exact bounds: a reading at q.To (a whole minute, typically) is
	// nudged past it and stays out, as it must.
	start, stop := s.bounds(q)
	if !q.To.IsZero() {
		stop = fluxTime(q.To)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `data = from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> group()
`, fluxString(s.cfg.Bucket), start, stop, readingFilter(q, `r._field == "temp_c"`))
	for _, fn := range []string{"min", "max", "mean", "count"} {
		fmt.Fprintf(&b, "data |> aggregateWindow(every: %dns, fn: %s, createEmpty: false, timeSrc: \"_start\") |> yield(name: %q)\n",
			every.Nanoseconds(), fn, fn)
	}
	buckets := map[int64]*store.Bucket{}
	step := every.Nanoseconds()
	err := s.run(ctx, b.String(), func(rec *query.FluxRecord) error {
		// A window cut by the range start reports that start: align it.
		ns := rec.Time().UnixNano()
		ns -= ((ns % step) + step) % step
		bk := buckets[ns]
		if bk == nil {
			bk = &store.Bucket{Start: time.Unix(0, ns).UTC()}
			buckets[ns] = bk
		}
		switch rec.Result() {
		case "min":
			bk.Min, _ = rec.Value().(float64)
		case "max":
			bk.Max, _ = rec.Value().(float64)
		case "mean":
			bk.Mean, _ = rec.Value().(float64)
		case "count":
			bk.Count, _ = rec.Value().(int64)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.Bucket, 0, len(buckets))
	for _, bk := range buckets {
		out = append(out, *bk)
	}
	slices.SortFunc(out, func(a, b store.Bucket) int { return a.Start.Compare(b.Start) })
	return out, nil
}

// Handovers returns the shipment's handovers in time order, ties by id.
func (s *Store) Handovers(ctx context.Context, shipment string) ([]record.Handover, error) {
	start, stop := s.bounds(store.Query{})
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == "handover" and r.shipment == %s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()`, fluxString(s.cfg.Bucket), start, stop, fluxString(shipment))
	cutoff := s.opts.Cutoff()
	var out []record.Handover
	err := s.run(ctx, flux, func(rec *query.FluxRecord) error {
		v := rec.Values()
		h := record.Handover{}
		h.ID, _ = v["id"].(string)
		h.Shipment, _ = v["shipment"].(string)
		h.Site, _ = v["site"].(string)
		kind, _ := v["kind"].(string)
		h.Kind = record.HandoverKind(enumOf(kind, record.HandoverKindNames()...))
		h.FromParty, _ = v["from_party"].(string)
		h.ToParty, _ = v["to_party"].(string)
		h.Lat, h.Lon, h.TempC = optFloat(v["lat"]), optFloat(v["lon"]), optFloat(v["temp_c"])
		h.Seal, _ = v["seal"].(string)
		h.Note, _ = v["note"].(string)
		h.QCResult, _ = v["qc_result"].(string)
		h.DocSHA256, _ = v["doc_sha256"].(string)
		h.Owner, _ = v["owner"].(string)
		h.Final, _ = v["final"].(bool)
		h.Time = rec.Time().Add(-handoverNudge(h.ID)).UTC()
		if cutoff.IsZero() || !h.Time.Before(cutoff) {
			out = append(out, h)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b record.Handover) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.ID, b.ID))
	})
	return out, err
}

// Shipments lists every shipment with a kept reading or handover, by id.
func (s *Store) Shipments(ctx context.Context) ([]store.Shipment, error) {
	m, err := s.summaries(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]store.Shipment, 0, len(m))
	for _, sh := range m {
		out = append(out, *sh)
	}
	slices.SortFunc(out, func(a, b store.Shipment) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Shipment returns one shipment's summary, or store.ErrUnknownShipment.
func (s *Store) Shipment(ctx context.Context, id string) (store.Shipment, error) {
	m, err := s.summaries(ctx, id)
	if err != nil {
		return store.Shipment{}, err
	}
	sh, ok := m[id]
	if !ok {
		return store.Shipment{}, store.ErrUnknownShipment
	}
	return *sh, nil
}

// summaries computes shipment summaries (of one shipment, or all when id
// is ""): each device's first and last reading (temp_c and seq, the
// latter to take the nudge off), and the handover count.
func (s *Store) summaries(ctx context.Context, id string) (map[string]*store.Shipment, error) {
	start, stop := s.bounds(store.Query{})
	ship := ""
	if id != "" {
		ship = " and r.shipment == " + fluxString(id)
	}
	flux := fmt.Sprintf(`readings = from(bucket: %[1]s)
  |> range(start: %[2]s, stop: %[3]s)
  |> filter(fn: (r) => r._measurement == "reading"%[4]s and (r._field == "temp_c" or r._field == "seq"))
readings |> first() |> yield(name: "first")
readings |> last() |> yield(name: "last")
from(bucket: %[1]s)
  |> range(start: %[2]s, stop: %[3]s)
  |> filter(fn: (r) => r._measurement == "handover"%[4]s and r._field == "id")
  |> group(columns: ["shipment"])
  |> count()
  |> yield(name: "handovers")`, fluxString(s.cfg.Bucket), start, stop, ship)
	// One row per device, result and field; the fields of a row pair share
	// its time.
	type key struct{ ship, dev, result string }
	type pair struct {
		t    time.Time
		temp float64
		seq  int64
	}
	rows := map[key]*pair{}
	out := map[string]*store.Shipment{}
	get := func(id string) *store.Shipment {
		if out[id] == nil {
			out[id] = &store.Shipment{ID: id}
		}
		return out[id]
	}
	err := s.run(ctx, flux, func(rec *query.FluxRecord) error {
		shipID, _ := rec.ValueByKey("shipment").(string)
		if rec.Result() == "handovers" {
			n, _ := rec.Value().(int64)
			get(shipID).Handovers = int(n)
			return nil
		}
		dev, _ := rec.ValueByKey("device").(string)
		k := key{shipID, dev, rec.Result()}
		p := rows[k]
		if p == nil {
			p = &pair{t: rec.Time()}
			rows[k] = p
		}
		switch rec.Field() {
		case "temp_c":
			p.temp, _ = rec.Value().(float64)
		case "seq":
			p.seq, _ = rec.Value().(int64)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, p := range rows {
		if k.result != "last" {
			continue
		}
		first := rows[key{k.ship, k.dev, "first"}]
		if first == nil {
			continue
		}
		get(k.ship).Merge(store.Shipment{
			FirstReading: first.t.Add(-readingNudge(uint64(first.seq))).UTC(),
			LastReading:  p.t.Add(-readingNudge(uint64(p.seq))).UTC(),
			LastTempC:    p.temp, LastDevice: k.dev, Devices: 1,
		})
	}
	return out, nil
}
