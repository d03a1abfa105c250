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

// RuleUnregistered is the warning a reading raises when its device is not
// in the device registry and devices.unknown is flag: nobody has said
// which sensor it is or how it was calibrated.
const RuleUnregistered = "unregistered_device"

// EnableCalibration makes the detector check each reading against its
// device's calibration records: devices returns the registered device, or
// nil for one not in the device registry (not checked). A reading taken
// out of calibration is stored and proven like any other (it is still
// evidence) and opens a calibration warning once per device and
// shipment. Call it before Run.
func (s *Service) EnableCalibration(devices func(id string) *device.Device) {
	s.calibration = devices
}

// FlagUnregistered makes a reading of a device not in the registry open
// an unregistered_device warning, once per device and shipment
// (devices.unknown: flag). It needs EnableCalibration. Call it before Run.
func (s *Service) FlagUnregistered() { s.flagUnregistered = true }

// deviceAlertID is the id of the rule's warning (calibration or
// unregistered_device) of a device on a shipment: one, however many
// readings raise it.
func deviceAlertID(rule, shipment, dev string) string {
	sum := sha256.Sum256([]byte(rule + "\x00" + shipment + "\x00" + dev))
	return hex.EncodeToString(sum[:16])
}

// checkCalibration appends the calibration or unregistered_device warning
// r opens, if any; s.mu is held. opened holds the ids opened earlier in
// the batch.
func (s *Service) checkCalibration(out []record.Alert, r *record.Reading, opened map[string]bool) []record.Alert {
	rule := RuleCalibration
	if d := s.calibration(r.Device); d == nil {
		if !s.flagUnregistered {
			return out
		}
		rule = RuleUnregistered
	} else {
		if s.registryVersion != nil {
			s.noteDevice(r, d)
		}
		if _, ok := d.At(r.Time); ok {
			return out
		}
	}
	id := deviceAlertID(rule, r.Shipment, r.Device)
	if opened[id] || s.alerts[id] != nil {
		return out
	}
	opened[id] = true
	t := r.Time.UTC()
	return append(out, record.Alert{ID: id, Shipment: r.Shipment, Device: r.Device, Rule: rule, Severity: "warning",
		Transition: "opened", Start: t, End: t, At: t, Readings: []string{r.ID()}})
}
