package alert

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/record"
)

// BenchmarkDeviceChecks is what the registry costs the detector per
// reading: the calibration check and the device-record bookkeeping of a
// registered device already recorded in its shipment's log (the steady
// state), with 100,000 devices registered.
func BenchmarkDeviceChecks(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	devs := map[string]*device.Device{}
	s := &Service{alerts: map[string]*alertView{}, recorded: map[shipDevice]uint64{}, pendingDevs: map[shipDevice]bool{},
		registryVersion: func() uint64 { return 1 }}
	for i := range 100000 {
		id := fmt.Sprintf("L%06d", i)
		devs[id] = &device.Device{ID: id, Serial: "S", Revision: 7, Calibrations: []device.Calibration{{Lab: "L", Accreditation: "A", Reference: "R",
			CertSHA256: strings.Repeat("ab", 32), CalibratedAt: t0, DueAt: t0.AddDate(1, 0, 0), UncertaintyC: 0.1}}}
		s.recorded[shipDevice{"SHP-" + id, id}] = 7
	}
	s.calibration = func(id string) *device.Device { return devs[id] }
	r := record.Reading{Shipment: "SHP-L050000", Device: "L050000", Seq: 1, Time: t0.AddDate(0, 6, 0), TempC: 5}
	opened := map[string]bool{}
	b.ReportAllocs()
	var out []record.Alert
	for b.Loop() {
		out = s.checkCalibration(out[:0], &r, opened)
	}
	if len(out) != 0 || len(s.pendingDevs) != 0 {
		b.Fatalf("a calibrated, recorded device raised %v and queued %v", out, s.pendingDevs)
	}
}

// BenchmarkUnregisteredChecks is the same for a device not in the
// registry under devices.unknown: flag, whose unregistered_device warning
// is already open: every reading asks whether it opens one.
func BenchmarkUnregisteredChecks(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Service{alerts: map[string]*alertView{}, recorded: map[shipDevice]uint64{}, pendingDevs: map[shipDevice]bool{},
		registryVersion: func() uint64 { return 1 }, flagUnregistered: true}
	s.calibration = func(string) *device.Device { return nil }
	r := record.Reading{Shipment: "SHP-1", Device: "L1", Seq: 1, Time: t0, TempC: 5}
	first := s.checkCalibration(nil, &r, map[string]bool{})
	if len(first) != 1 || first[0].Rule != RuleUnregistered {
		b.Fatalf("the first reading raised %v, want one unregistered_device warning", first)
	}
	s.alerts[first[0].ID] = &alertView{Transitions: first}
	r.Seq, r.Time = 2, t0.Add(time.Minute)
	opened := map[string]bool{}
	b.ReportAllocs()
	var out []record.Alert
	for b.Loop() {
		out = s.checkCalibration(out[:0], &r, opened)
	}
	if len(out) != 0 {
		b.Fatalf("a reading of a device whose warning is open raised %v", out)
	}
}
