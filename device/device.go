// Package device holds what the gateway knows of a sensor beyond its
// login: its serial and model, and its calibration records (which lab,
// under which accreditation, against which reference, valid from when to
// when, with what uncertainty). A reading is evidence only as good as the
// calibration of the sensor that took it; this is where that is kept.
//
// The core (Device, Calibration, Merge, At) is pure; Registry keeps the
// devices in a JetStream KV bucket so every gateway sees the same ones.
package device

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Device is a sensor or logger as registered.
type Device struct {
	ID     string `json:"id"`
	Serial string `json:"serial"`
	Model  string `json:"model,omitempty"`
	// Calibrations are its calibration records, oldest first.
	Calibrations []Calibration `json:"calibrations"`
	// Updated is when the record last changed (gateway time).
	Updated time.Time `json:"updated"`
	// Revision is the registry's revision of the entry (its KV revision),
	// set when read from the registry; it is not part of the stored JSON.
	Revision uint64 `json:"-"`
}

// Record is d as a device record of shipment: what the shipment's log
// holds of the device at d's registry revision.
func (d *Device) Record(shipment string) record.DeviceRecord {
	cals := d.Calibrations
	if cals == nil {
		cals = []Calibration{}
	}
	return record.DeviceRecord{Shipment: shipment, Device: d.ID, Serial: d.Serial, Model: d.Model,
		Revision: d.Revision, Updated: d.Updated.UTC(), Calibrations: cals}
}

// Calibration is one calibration certificate of a device (the record
// package's type, which device records carry into shipment logs).
type Calibration = record.Calibration

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid device record")

// ErrSerialMismatch is returned when a device is registered again with
// another serial: a new sensor needs a new id.
var ErrSerialMismatch = errors.New("registered with another serial")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Validate checks the device and each calibration.
func (d *Device) Validate() error {
	if !record.ValidID(d.ID) {
		return invalid("id %q must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", d.ID)
	}
	if err := text("serial", d.Serial, true); err != nil {
		return err
	}
	if err := text("model", d.Model, false); err != nil {
		return err
	}
	for i := range d.Calibrations {
		if err := ValidateCalibration(&d.Calibrations[i]); err != nil {
			return fmt.Errorf("calibration %d: %w", i+1, err)
		}
	}
	return nil
}

// ValidateCalibration checks one calibration record.
func ValidateCalibration(c *Calibration) error {
	for _, f := range []struct {
		name, v string
	}{{"lab", c.Lab}, {"accreditation", c.Accreditation}, {"reference", c.Reference}} {
		if err := text(f.name, f.v, true); err != nil {
			return err
		}
	}
	if len(c.CertSHA256) != 64 || strings.Trim(c.CertSHA256, "0123456789abcdef") != "" {
		return invalid("cert_sha256 must be the certificate's SHA-256 as 64 lowercase hex digits (sha256sum cert.pdf), got %q", c.CertSHA256)
	}
	switch {
	case c.CalibratedAt.IsZero() || c.DueAt.IsZero():
		return invalid("calibrated_at and due_at are required")
	case !c.DueAt.After(c.CalibratedAt):
		return invalid("due_at %s must be after calibrated_at %s", stamp(c.DueAt), stamp(c.CalibratedAt))
	case c.CalibratedAt.Year() < 2000:
		return invalid("calibrated_at %s is before 2000", stamp(c.CalibratedAt))
	}
	if math.IsNaN(c.UncertaintyC) || c.UncertaintyC <= 0 || c.UncertaintyC > 10 {
		return invalid("uncertainty_c must be the stated uncertainty in °C, above 0 and at most 10, got %v", c.UncertaintyC)
	}
	return nil
}

func text(name, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid("%s is required", name)
	case len(v) > 200:
		return invalid("%s is %d bytes, at most 200", name, len(v))
	case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' }):
		return invalid("%s has control characters", name)
	}
	return nil
}

// Merge folds a registration of the same device into the registered one:
// the serial must not change (ErrSerialMismatch), a model given replaces
// the old, calibrations are added once (a record with the same
// certificate hash is the same calibration) and kept in calibrated_at
// order. old may be nil for a first registration.
func Merge(old *Device, upd Device, now time.Time) (Device, error) {
	if err := upd.Validate(); err != nil {
		return Device{}, err
	}
	if old == nil {
		out := upd
		out.Calibrations = nil
		for _, c := range upd.Calibrations {
			out.Calibrations = addCal(out.Calibrations, c)
		}
		if out.Calibrations == nil {
			out.Calibrations = []Calibration{}
		}
		out.Updated = now.UTC()
		return out, nil
	}
	if old.ID != upd.ID {
		return Device{}, invalid("merging %s into %s", upd.ID, old.ID)
	}
	if old.Serial != upd.Serial {
		return Device{}, fmt.Errorf("device %s is %w %q, not %q: a new sensor needs a new id", old.ID, ErrSerialMismatch, old.Serial, upd.Serial)
	}
	out := *old
	out.Calibrations = slices.Clone(old.Calibrations)
	if upd.Model != "" {
		out.Model = upd.Model
	}
	for _, c := range upd.Calibrations {
		out.Calibrations = addCal(out.Calibrations, c)
	}
	out.Updated = now.UTC()
	return out, nil
}

func addCal(list []Calibration, c Calibration) []Calibration {
	for _, have := range list {
		if have.CertSHA256 == c.CertSHA256 {
			return list
		}
	}
	c.CalibratedAt, c.DueAt = c.CalibratedAt.UTC(), c.DueAt.UTC()
	list = append(list, c)
	slices.SortStableFunc(list, func(a, b Calibration) int { return a.CalibratedAt.Compare(b.CalibratedAt) })
	return list
}

// At returns the calibration in force at device time t: the latest one
// whose window holds t. ok is false when none does (never calibrated, not
// yet, or expired): a reading taken then is out of calibration.
func (d *Device) At(t time.Time) (c Calibration, ok bool) {
	for i := len(d.Calibrations) - 1; i >= 0; i-- {
		c := d.Calibrations[i]
		if !t.Before(c.CalibratedAt) && t.Before(c.DueAt) {
			return c, true
		}
	}
	return Calibration{}, false
}

// Covers reports whether d's calibrations hold at every instant of
// [from, to], windows joined end to start: a reading taken anywhere in it
// was calibrated.
func (d *Device) Covers(from, to time.Time) bool {
	t := from
	for {
		next, ok := time.Time{}, false
		for _, c := range d.Calibrations {
			if !t.Before(c.CalibratedAt) && t.Before(c.DueAt) && (!ok || c.DueAt.After(next)) {
				next, ok = c.DueAt, true
			}
		}
		if !ok {
			return false
		}
		if next.After(to) {
			return true
		}
		t = next
	}
}

// Status says, in words, how d stands at t.
func (d *Device) Status(t time.Time) string {
	if len(d.Calibrations) == 0 {
		return "never calibrated"
	}
	if c, ok := d.At(t); ok {
		return fmt.Sprintf("calibrated %s by %s, due %s", stamp(c.CalibratedAt), c.Lab, stamp(c.DueAt))
	}
	last := d.Calibrations[len(d.Calibrations)-1]
	if t.Before(d.Calibrations[0].CalibratedAt) {
		return "not calibrated yet (first calibration " + stamp(d.Calibrations[0].CalibratedAt) + ")"
	}
	return "calibration expired (due " + stamp(last.DueAt) + ")"
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
