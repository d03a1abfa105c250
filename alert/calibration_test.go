package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/record"
)

// TestDeviceWarnings walks the calibration and unregistered_device
// warnings through a registry's changes: a late reading earlier than the
// first flagged one revises the start; a calibration that covers the
// flagged readings (start to the device's newest) retracts the warning,
// one that does not leaves it; registering a device retracts its
// unregistered_device warning and, when its calibrations do not cover the
// readings, opens a calibration warning instead; a reading out of
// calibration reopens a retracted one.
func TestDeviceWarnings(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	cal := func(from, to time.Time) device.Calibration {
		return device.Calibration{Lab: "L", Accreditation: "A", Reference: "R", CertSHA256: strings.Repeat("ab", 32), CalibratedAt: from, DueAt: to, UncertaintyC: 0.1}
	}
	devs := map[string]*device.Device{}
	s := &Service{alerts: map[string]*alertView{}, devices: map[string]*deviceState{}, flagUnregistered: true,
		calibration: func(id string) *device.Device { return devs[id] }}
	reading := func(dev string, seq uint64, h float64) record.Reading {
		return record.Reading{Shipment: "S1", Device: dev, Seq: seq, Time: t0.Add(time.Duration(h * float64(time.Hour))), TempC: 5}
	}
	// step runs readings through the check and applies what they raise,
	// as publish would; it returns the transitions.
	step := func(out []record.Alert) string {
		var got []string
		for i := range out {
			s.apply(&out[i])
			a := out[i]
			got = append(got, fmt.Sprintf("%s %s %s %s", a.Device, a.Rule, a.Transition, a.Start.Sub(t0)))
		}
		return fmt.Sprint(got)
	}
	check := func(rs ...record.Reading) string {
		var out []record.Alert
		opened := map[string]bool{}
		for i := range rs {
			out = s.checkCalibration(out, &rs[i], opened)
			s.devices[rs[i].Device] = &deviceState{Newest: max(rs[i].Time.UnixNano(), s.deviceNewest(rs[i].Device))}
		}
		return step(out)
	}
	devs["K1"] = &device.Device{ID: "K1", Serial: "S", Calibrations: []device.Calibration{cal(t0.Add(-24*time.Hour), t0.Add(time.Hour))}, Revision: 1, Updated: t0}
	for _, tc := range []struct{ name, got, want string }{
		{"out of calibration", check(reading("K1", 1, 0.5), reading("K1", 2, 2), reading("K1", 3, 3)), "[K1 calibration opened 2h0m0s]"},
		{"unregistered", check(reading("U1", 1, 2), reading("U1", 2, 3)), "[U1 unregistered_device opened 2h0m0s]"},
		{"late, earlier", check(reading("K1", 4, 1.5)), "[K1 calibration revised 1h30m0s]"},
		{"late, later", check(reading("K1", 5, 2.5)), "[]"},
		{"no change", step(s.reviewDeviceAlerts()), "[]"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	// A calibration up to 2h59m does not cover the reading at 3h; one
	// joined to it up to a year does.
	devs["K1"] = &device.Device{ID: "K1", Serial: "S", Revision: 2, Updated: t0.Add(10 * time.Hour),
		Calibrations: append(devs["K1"].Calibrations, cal(t0.Add(time.Hour), t0.Add(179*time.Minute)))}
	if got := step(s.reviewDeviceAlerts()); got != "[]" {
		t.Errorf("partial cover: %s", got)
	}
	devs["K1"].Calibrations = append(devs["K1"].Calibrations, cal(t0.Add(179*time.Minute), t0.AddDate(1, 0, 0)))
	// U1 registered, never calibrated: its warning becomes a calibration
	// warning from the same start.
	devs["U1"] = &device.Device{ID: "U1", Serial: "S", Revision: 3, Updated: t0.Add(11 * time.Hour)}
	review := s.reviewDeviceAlerts()
	if len(review) != 3 {
		t.Errorf("review: %d transitions, want 3", len(review))
	}
	got := step(review)
	for _, want := range []string{"K1 calibration retracted 1h30m0s", "U1 unregistered_device retracted 2h0m0s", "U1 calibration opened 2h0m0s"} {
		if !strings.Contains(got, want) {
			t.Errorf("review: %s, want %s in it", got, want)
		}
	}
	if got := step(s.reviewDeviceAlerts()); got != "[]" {
		t.Errorf("a second review: %s", got)
	}
	// A reading before the first calibration reopens K1's warning.
	if got := check(reading("K1", 6, -30)); got != "[K1 calibration reopened -30h0m0s]" {
		t.Errorf("reopen: %s", got)
	}
}

func (s *Service) deviceNewest(id string) int64 {
	if d := s.devices[id]; d != nil {
		return d.Newest
	}
	return 0
}
