//go:build integration

package influx

import (
	"context"
	"fmt"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
	"github.com/coldchain/coldchain/store/storetest"
)

// The InfluxDB benchmarks run against the peer scripts/peers.sh starts:
//
//	scripts/peers.sh start influxdb && eval "$(scripts/peers.sh env influxdb)"
//	go test -tags integration -run '^$' -bench . -benchtime 20x ./store/influx/

// BenchmarkRawClient is the reference: influxdb-client-go's own blocking
// write of the same readings as write.Points, batch by batch, into the
// same InfluxDB. The writer is measured against it.
func BenchmarkRawClient(b *testing.B) {
	cfg := testConfig(b)
	for _, size := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			c := influxdb2.NewClient(cfg.URL, string(cfg.Token))
			defer c.Close()
			w := c.WriteAPIBlocking(cfg.Org, cfg.Bucket)
			ship := fmt.Sprintf("RAW-%d", time.Now().UnixNano())
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				pts := make([]*write.Point, size)
				for j := range size {
					seq := i*size + j
					r := storetest.Reading(ship, fmt.Sprintf("reefer-%d", seq%4), uint64(seq), storetest.Base.Add(time.Duration(seq)*time.Second), seq)
					pts[j] = clientPoint(&r)
				}
				b.StartTimer()
				if err := w.WritePoint(context.Background(), pts...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// clientPoint is the reading as a client user would write it.
func clientPoint(r *record.Reading) *write.Point {
	f := map[string]any{"temp_c": r.TempC, "seq": int64(r.Seq)}
	for k, v := range map[string]record.Opt[float64]{"rh": r.RH, "lat": r.Lat, "lon": r.Lon, "battery_v": r.BatteryV,
		"reefer.setpoint_c": r.Reefer.SetpointC, "reefer.supply_c": r.Reefer.SupplyC, "reefer.return_c": r.Reefer.ReturnC} {
		if v.Set {
			f[k] = v.V
		}
	}
	if r.DoorOpen.Set {
		f["door_open"] = r.DoorOpen.V
	}
	if r.Probe != 0 {
		f["probe"] = r.Probe.String()
	}
	if r.Reefer.Mode != 0 {
		f["reefer.mode"] = r.Reefer.Mode.String()
	}
	for _, e := range r.Ext {
		switch e.Type {
		case record.ExtString:
			f["ext."+e.Key] = e.Str
		case record.ExtNumber:
			f["ext."+e.Key] = e.Num
		case record.ExtBool:
			f["ext."+e.Key] = e.Bool
		}
	}
	return write.NewPoint("reading", map[string]string{"shipment": r.Shipment, "device": r.Device}, f, r.Time.Add(readingNudge(r.Seq)))
}

// BenchmarkWriter is the writer's throughput into InfluxDB: canonical
// records from the journal decoded, written as line protocol, confirmed.
func BenchmarkWriter(b *testing.B) {
	cfg := testConfig(b)
	for _, size := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) {
			s, err := New(cfg, store.Options{}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storetest.BenchWriter(b, s, size)
		})
	}
}

// BenchmarkMonth is the query latency of a 30-day shipment (43,200
// readings) in InfluxDB, raw and downsampled to 1 h.
func BenchmarkMonth(b *testing.B) {
	s, err := New(testConfig(b), store.Options{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchQueries(b, s, storetest.Month(b, s))
}
