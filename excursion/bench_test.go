package excursion

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkObserve is the hot path (issue requirement 4): an in-order
// reading that changes nothing, on devices whose histories are full, so
// every reading also advances the device's replay checkpoint. With one
// device its state stays in the CPU cache: that is the evaluation cost.
// With 10,000 devices (about 20 MB of state) most of a reading's state comes
// from main memory, which is what a busy gateway sees. Temperatures repeat
// (seven values, as a 0.1 °C sensor's do) except in "distinct", where every
// reading misses the MKT weight cache and pays two math.Exp.
// Goal: < 200 ns/op and 0 allocs/op.
func BenchmarkObserve(b *testing.B) {
	for _, tc := range []struct {
		name     string
		devices  int
		distinct bool
	}{{"devices=1", 1, false}, {"devices=1/distinct", 1, true}, {"devices=1000", 1000, false}, {"devices=10000", 10000, false}} {
		devices := tc.devices
		b.Run(tc.name, func(b *testing.B) {
			d := newDetector(b, DefaultProfile(), DefaultConfig())
			names := make([]string, devices)
			for i := range names {
				names[i] = "dev-" + strconv.Itoa(i)
			}
			// One reading a minute: 2^62 ns leaves room for 48 million
			// readings per device after t0.
			step := int64(time.Minute)
			var evs []Event
			observe := func(i int) {
				dev := i % devices
				k := i / devices
				s := Sample{Seq: uint64(k % 64), Device: names[dev], Time: t0 + int64(k)*step, TempC: 4.5 + float64(k%7)*0.2}
				if tc.distinct {
					s.TempC = 4.5 + float64(k%1000000)*1e-6
				}
				var err error
				if evs, _, err = d.Observe(evs[:0], s); err != nil {
					b.Fatal(err)
				}
				if len(evs) != 0 {
					b.Fatalf("unexpected event %s", summary(evs[0]))
				}
			}
			warm := devices * 40
			for i := range warm {
				observe(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				observe(warm + i)
			}
		})
	}
}

// BenchmarkObserveExcursion cycles each device through excursions (35 min
// at 9 °C, then 35 min at 5 °C), so readings open and clear alerts: the
// path that builds events and allocates.
func BenchmarkObserveExcursion(b *testing.B) {
	const devices = 1000
	d := newDetector(b, DefaultProfile(), DefaultConfig())
	names := make([]string, devices)
	for i := range names {
		names[i] = "dev-" + strconv.Itoa(i)
	}
	var evs []Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		dev, k := i%devices, i/devices
		c := 5.0
		if k%14 < 7 {
			c = 9
		}
		s := Sample{Seq: uint64(k % 64), Device: names[dev], Time: t0 + int64(k)*int64(5*time.Minute), TempC: c}
		evs, _, _ = d.Observe(evs[:0], s)
	}
}

// BenchmarkObserveLate measures the out-of-order path: each op is one
// in-order reading and one reading 7.5 min late, inserted into a full
// 16-reading history and replayed from the checkpoint.
func BenchmarkObserveLate(b *testing.B) {
	const devices = 100
	d := newDetector(b, DefaultProfile(), DefaultConfig())
	names := make([]string, devices)
	for i := range names {
		names[i] = "dev-" + strconv.Itoa(i)
	}
	step := int64(5 * time.Minute)
	for i := range devices * 40 {
		dev, k := i%devices, i/devices
		d.Observe(nil, Sample{Seq: uint64(2 * k % 128), Device: names[dev], Time: t0 + int64(k)*step, TempC: 5})
	}
	var evs []Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		dev, k := i%devices, 40+i/devices
		evs, _, _ = d.Observe(evs[:0], Sample{Seq: uint64(2 * k % 128), Device: names[dev], Time: t0 + int64(k)*step, TempC: 5})
		_, out, _ := d.Observe(evs[:0], Sample{Seq: uint64((2*k + 1) % 128), Device: names[dev], Time: t0 + int64(k)*step - 3*step/2, TempC: 5})
		if out.Status != Reordered {
			b.Fatalf("status %v", out.Status)
		}
	}
}

// BenchmarkMemoryPerDevice measures retained heap per tracked device
// (goal ≤ 2 KiB, alerts in reach included) with runtime.MemStats over
// 100,000 devices that each sent
// 100 readings, so every history is full. The figure includes the
// device map, both rule states, the history and the reading ids it keeps
// alive. "excursion" devices end with an open warning and a cleared
// instant alarm in their ledger.
func BenchmarkMemoryPerDevice(b *testing.B) {
	for _, tc := range []struct {
		name string
		temp func(k int) float64
	}{
		{"in range", func(k int) float64 { return 5 }},
		{"excursion", func(k int) float64 {
			switch {
			case k == 90:
				return 30
			case k > 95:
				return 7.6
			}
			return 5
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const devices = 100000
			for range b.N {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				d := newDetector(b, DefaultProfile(), DefaultConfig())
				for dev := range devices {
					name := "dev-" + strconv.Itoa(100000+dev)
					for k := range 100 {
						s := Sample{Seq: uint64(k), Device: name, Time: t0 + int64(k)*int64(5*time.Minute), TempC: tc.temp(k)}
						if _, _, err := d.Observe(nil, s); err != nil {
							b.Fatal(err)
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/devices, "bytes/device")
				runtime.KeepAlive(d)
			}
		})
	}
}
