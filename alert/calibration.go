package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

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
	id := s.cachedDeviceAlertID(rule, r.Shipment, r.Device)
	if opened[id] {
		return out
	}
	// The common case, a device whose warning is open already, returns
	// here without building anything.
	t := r.Time.UTC()
	v := s.alerts[id]
	if v != nil && v.open() && !t.Before(v.last().Start) {
		return out
	}
	a := record.Alert{ID: id, Shipment: r.Shipment, Device: r.Device, Rule: rule, Severity: "warning",
		Transition: "opened", Start: t, End: t, At: t, Readings: []string{r.ID()}}
	switch {
	case v == nil:
	case !v.open():
		// Retracted by a calibration that covered the readings then; this
		// one is outside it.
		a.Transition = "reopened"
	default:
		// A late reading, earlier than the first one flagged: the warning
		// now starts there (what a later calibration must cover).
		a = *v.last()
		a.Transition, a.Start, a.At, a.By, a.Comment, a.Readings = "revised", t, t, "", "", []string{r.ID()}
	}
	opened[id] = true
	return append(out, a)
}

// devAlert names a device warning: its rule, shipment and device.
type devAlert struct {
	rule string
	shipDevice
}

// maxDevAlertIDs bounds the cache of device warning ids (about 150 bytes
// an entry); past it the cache starts again.
const maxDevAlertIDs = 1 << 18

// cachedDeviceAlertID is deviceAlertID remembered: every reading of an
// unregistered or uncalibrated device asks for it, and a SHA-256 and two
// allocations a reading were 3 % of the batch ingest profile.
func (s *Service) cachedDeviceAlertID(rule, shipment, dev string) string {
	k := devAlert{rule, shipDevice{shipment, dev}}
	if id, ok := s.devAlertIDs[k]; ok {
		return id
	}
	if s.devAlertIDs == nil || len(s.devAlertIDs) >= maxDevAlertIDs {
		s.devAlertIDs = map[devAlert]string{}
	}
	id := deviceAlertID(rule, shipment, dev)
	s.devAlertIDs[k] = id
	return id
}

// reviewDeviceAlerts, after a registry change, retracts each open
// calibration warning whose device's calibrations now cover every reading
// it flagged (from its start to the device's newest reading), and each
// open unregistered_device warning whose device is now registered,
// opening a calibration warning in its place when the device's
// calibrations do not cover those readings. s.mu is held.
func (s *Service) reviewDeviceAlerts() []record.Alert {
	var out []record.Alert
	for _, v := range s.alerts {
		if !v.open() {
			continue
		}
		last := v.last()
		if last.Rule != RuleCalibration && last.Rule != RuleUnregistered {
			continue
		}
		d := s.calibration(last.Device)
		if d == nil {
			continue
		}
		to := last.Start
		if dev := s.devices[last.Device]; dev != nil && dev.Newest > to.UnixNano() {
			to = time.Unix(0, dev.Newest).UTC()
		}
		covered := d.Covers(last.Start, to)
		if last.Rule == RuleCalibration && !covered {
			continue
		}
		// The registry change decided it: its time (gateway clock) is the
		// transition's, the same on every replay of this revision.
		at := d.Updated.UTC()
		a := *last
		a.Transition, a.At, a.By, a.Comment = "retracted", at, "", ""
		out = append(out, a)
		if last.Rule == RuleCalibration || covered {
			continue
		}
		id := deviceAlertID(RuleCalibration, last.Shipment, last.Device)
		cv := s.alerts[id]
		if cv != nil && cv.open() {
			continue
		}
		c := record.Alert{ID: id, Shipment: last.Shipment, Device: last.Device, Rule: RuleCalibration, Severity: "warning",
			Transition: "opened", Start: last.Start, End: last.Start, At: last.Start, Readings: last.Readings}
		if cv != nil {
			c.Transition, c.At = "reopened", at
		}
		out = append(out, c)
	}
	return out
}
