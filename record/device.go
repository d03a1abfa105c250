package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Calibration is one calibration certificate of a device. The PDF stays
// with the owner; its SHA-256 ties the record to it. The device registry
// keeps these (device.Calibration is this type) and device records carry
// them into shipment logs.
type Calibration struct {
	// Lab is the calibration laboratory.
	Lab string `json:"lab"`
	// Accreditation is the lab's accreditation, e.g. "ISO/IEC 17025,
	// CNAS L1234".
	Accreditation string `json:"accreditation"`
	// Reference is the reference standard the sensor was compared with.
	Reference string `json:"reference"`
	// CertSHA256 is the SHA-256 of the certificate document, 64 hex digits.
	CertSHA256 string `json:"cert_sha256"`
	// CalibratedAt and DueAt bound the window in which the calibration
	// holds, half-open: [CalibratedAt, DueAt).
	CalibratedAt time.Time `json:"calibrated_at"`
	DueAt        time.Time `json:"due_at"`
	// UncertaintyC is the stated expanded uncertainty, °C.
	UncertaintyC float64 `json:"uncertainty_c"`
}

// DeviceRecord is a device's entry in the device registry as it stood at
// one registry revision, recorded in the log of a shipment the device
// reports on. Like every record it is anchored, so the calibrations a
// proof bundle shows for a device are proven, not only asserted by the
// gateway that built the bundle.
type DeviceRecord struct {
	Shipment string
	Device   string
	Serial   string
	Model    string
	// Revision is the registry's revision of the device's entry: a later
	// record of the same device has a higher one.
	Revision uint64
	// Updated is when the entry last changed (gateway time).
	Updated      time.Time
	Calibrations []Calibration
}

// EventID is the record's identity, its JetStream message id: one record
// per shipment, device and registry revision.
func (d *DeviceRecord) EventID() string {
	return "device:" + d.Shipment + ":" + d.Device + ":" + strconv.FormatUint(d.Revision, 10)
}

// AppendCanonical appends the record's canonical encoding (docs/RECORDS.md:
// RFC 8785 JCS, with "type":"device" and "v":1).
func (d *DeviceRecord) AppendCanonical(b []byte) []byte {
	b = append(b, '{')
	b = appendKey(b, "calibrations")
	b = append(b, '[')
	for i := range d.Calibrations {
		c := &d.Calibrations[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendKey(b, "accreditation")
		b = AppendString(b, c.Accreditation)
		b = appendKey(b, "calibrated_at")
		b = AppendTime(b, c.CalibratedAt)
		b = appendKey(b, "cert_sha256")
		b = AppendString(b, c.CertSHA256)
		b = appendKey(b, "due_at")
		b = AppendTime(b, c.DueAt)
		b = appendKey(b, "lab")
		b = AppendString(b, c.Lab)
		b = appendKey(b, "reference")
		b = AppendString(b, c.Reference)
		b = appendKey(b, "uncertainty_c")
		b = AppendNumber(b, c.UncertaintyC)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = appendKey(b, "device")
	b = AppendString(b, d.Device)
	if d.Model != "" {
		b = appendKey(b, "model")
		b = AppendString(b, d.Model)
	}
	b = appendKey(b, "revision")
	b = strconv.AppendUint(b, d.Revision, 10)
	b = appendKey(b, "serial")
	b = AppendString(b, d.Serial)
	b = appendKey(b, "shipment")
	b = AppendString(b, d.Shipment)
	b = appendKey(b, "type")
	b = AppendString(b, KindDevice.String())
	b = appendKey(b, "updated")
	b = AppendTime(b, d.Updated)
	b = appendKey(b, "v")
	b = strconv.AppendInt(b, Version, 10)
	return append(b, '}')
}

type deviceJSON struct {
	Calibrations []Calibration `json:"calibrations"`
	Device       string        `json:"device"`
	Model        string        `json:"model"`
	Revision     uint64        `json:"revision"`
	Serial       string        `json:"serial"`
	Shipment     string        `json:"shipment"`
	Type         string        `json:"type"`
	Updated      time.Time     `json:"updated"`
	V            int           `json:"v"`
}

// ParseDeviceRecord decodes a device record. The result's AppendCanonical
// gives back data only when data was canonical: a verifier compares the
// two.
func ParseDeviceRecord(data []byte) (DeviceRecord, error) {
	var j deviceJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return DeviceRecord{}, fmt.Errorf("device record: %w", err)
	}
	if j.Type != KindDevice.String() || j.V != Version {
		return DeviceRecord{}, fmt.Errorf("device record: type %q version %d is not a device record of version %d", j.Type, j.V, Version)
	}
	if !ValidID(j.Shipment) || !ValidID(j.Device) || j.Serial == "" || j.Revision == 0 {
		return DeviceRecord{}, fmt.Errorf("device record: shipment, device, serial and revision are required")
	}
	d := DeviceRecord{Shipment: j.Shipment, Device: j.Device, Serial: j.Serial, Model: j.Model, Revision: j.Revision,
		Updated: j.Updated.UTC(), Calibrations: j.Calibrations}
	if d.Calibrations == nil {
		d.Calibrations = []Calibration{}
	}
	for i := range d.Calibrations {
		c := &d.Calibrations[i]
		c.CalibratedAt, c.DueAt = c.CalibratedAt.UTC(), c.DueAt.UTC()
	}
	return d, nil
}
