package device

import (
	"fmt"
	"testing"
)

// BenchmarkCalibrationCheck is what the detector adds per reading: find
// the device in the watched registry and the calibration in force at the
// reading's time, for a registered device with three calibrations and for
// one not registered, among 100,000 devices.
func BenchmarkCalibrationCheck(b *testing.B) {
	m := map[string]*Device{}
	for i := range 100000 {
		id := fmt.Sprintf("L%06d", i)
		m[id] = &Device{ID: id, Serial: "S", Calibrations: []Calibration{cal(1, t0, 12), cal(2, t0.AddDate(1, 0, 0), 12), cal(3, t0.AddDate(2, 0, 0), 12)}}
	}
	w := &Watched{}
	w.m.Store(&m)
	at := t0.AddDate(1, 6, 0)
	for _, tc := range []struct{ name, id string }{{"registered", "L050000"}, {"unregistered", "X1"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if d := w.Get(tc.id); d != nil {
					if _, ok := d.At(at); ok {
						n++
					}
				}
			}
			_ = n
		})
	}
}
