package alert

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/record"
)

// RuleCalibration is the warning a reading raises when its device time is
// outside every calibration window of its registered device.
const RuleCalibration = "calibration"

// EnableCalibration makes the detector check each reading against its
// device's calibration records: devices returns the registered device, or
// nil for one not in the device registry (not checked). A reading taken
// out of calibration is stored and proven like any other (it is still
// evidence) and opens a calibration warning once per device and
// shipment. Call it before Run.
func (s *Service) EnableCalibration(devices func(id string) *device.Device) {
	s.calibration = devices
}

// calibrationAlertID is the id of the calibration warning of a device on
// a shipment: one, however many readings are out of calibration.
func calibrationAlertID(shipment, dev string) string {
	sum := sha256.Sum256([]byte("calibration\x00" + shipment + "\x00" + dev))
	return hex.EncodeToString(sum[:16])
}

// checkCalibration appends the calibration warning r opens, if any; s.mu
// is held. opened holds the ids opened earlier in the batch.
func (s *Service) checkCalibration(out []record.Alert, r *record.Reading, opened map[string]bool) []record.Alert {
	d := s.calibration(r.Device)
	if d == nil {
		return out
	}
	if _, ok := d.At(r.Time); ok {
		return out
	}
	id := calibrationAlertID(r.Shipment, r.Device)
	if opened[id] || s.alerts[id] != nil {
		return out
	}
	opened[id] = true
	t := r.Time.UTC()
	return append(out, record.Alert{ID: id, Shipment: r.Shipment, Device: r.Device, Rule: RuleCalibration, Severity: "warning",
		Transition: "opened", Start: t, End: t, At: t, Readings: []string{r.ID()}})
}
