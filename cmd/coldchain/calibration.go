package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/device"
)

const calibrationHelp = `
Device records and calibration (registry KV bucket ` + device.Bucket + `):

  coldchain devices register ID --serial S [--model M]
  coldchain devices calibrate ID --lab L --accreditation A --reference R
        (--cert-sha256 HEX | --cert-file FILE) --calibrated-at DATE --due-at DATE --uncertainty C
  coldchain devices show ID

register records a sensor's serial and model; registering it again with
another serial is refused (a new sensor needs a new id). calibrate adds a
calibration record: the lab, its accreditation (e.g. "ISO/IEC 17025, CNAS
L0599"), the reference standard, the certificate's SHA-256 (the PDF stays
with you: --cert-file hashes it here), the window [calibrated_at, due_at)
(RFC 3339 or YYYY-MM-DD, UTC) and the stated uncertainty in °C. The same
certificate twice counts once. show prints the device, each calibration
and whether it is in calibration now. A reading the device takes outside
every calibration window is stored and opens a calibration warning of the
shipment, once. Each registered device's record joins the log of every
shipment it reports on, and again after each change (a calibration added
later included), so the calibrations in a proof bundle are anchored:
coldchain verify prints them and names the readings taken out of
calibration. A device not registered here: see devices.unknown in the
configuration (flag by default: one unregistered_device warning per
shipment; reject refuses its readings).
`

// calibrationFlags are the flags of register, calibrate and show.
type calibrationFlags struct {
	serial, model, lab, accreditation, reference, certHash, certFile, from, due *string
	uncertainty                                                                 *float64
}

func addCalibrationFlags(fs *flag.FlagSet) calibrationFlags {
	return calibrationFlags{
		serial:        fs.String("serial", "", "the sensor's serial number (register)"),
		model:         fs.String("model", "", "the sensor's model (register)"),
		lab:           fs.String("lab", "", "calibration laboratory (calibrate)"),
		accreditation: fs.String("accreditation", "", `the lab's accreditation, e.g. "ISO/IEC 17025, CNAS L0599" (calibrate)`),
		reference:     fs.String("reference", "", "the reference standard the sensor was compared with (calibrate)"),
		certHash:      fs.String("cert-sha256", "", "SHA-256 of the calibration certificate, 64 hex digits (calibrate)"),
		certFile:      fs.String("cert-file", "", "the calibration certificate `file`, hashed here and not stored (calibrate)"),
		from:          fs.String("calibrated-at", "", "when the calibration was done, RFC 3339 or YYYY-MM-DD (calibrate)"),
		due:           fs.String("due-at", "", "when the next calibration is due, RFC 3339 or YYYY-MM-DD (calibrate)"),
		uncertainty:   fs.Float64("uncertainty", 0, "the stated uncertainty, °C (calibrate)"),
	}
}

func parseDate(name, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: give a date as 2026-01-31 or 2026-01-31T08:00:00Z", name, v)
}

// deviceRecords runs register, calibrate and show on the registry on js.
func deviceRecords(verb, id string, f calibrationFlags, js func() (jetstream.JetStream, int, context.Context, func(), error), stdout io.Writer) error {
	var d device.Device
	switch verb {
	case "register":
		if *f.serial == "" {
			return fmt.Errorf("%w: devices register needs --serial", errUsage)
		}
		d = device.Device{ID: id, Serial: *f.serial, Model: *f.model}
	case "calibrate":
		c := device.Calibration{Lab: *f.lab, Accreditation: *f.accreditation, Reference: *f.reference, CertSHA256: strings.ToLower(*f.certHash), UncertaintyC: *f.uncertainty}
		if *f.certFile != "" {
			if *f.certHash != "" {
				return fmt.Errorf("%w: give --cert-sha256 or --cert-file, not both", errUsage)
			}
			raw, err := os.ReadFile(*f.certFile)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(raw)
			c.CertSHA256 = hex.EncodeToString(sum[:])
		}
		var err error
		if c.CalibratedAt, err = parseDate("calibrated-at", *f.from); err != nil {
			return err
		}
		if c.DueAt, err = parseDate("due-at", *f.due); err != nil {
			return err
		}
		if err := device.ValidateCalibration(&c); err != nil {
			return err
		}
		d = device.Device{ID: id, Calibrations: []device.Calibration{c}}
	}
	stream, replicas, ctx, done, err := js()
	if err != nil {
		return err
	}
	defer done()
	reg, err := device.OpenRegistry(ctx, stream, replicas)
	if err != nil {
		return err
	}
	switch verb {
	case "register":
		out, err := reg.Register(ctx, d)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "registered device %s: serial %s, model %s, %d calibration records\n", out.ID, out.Serial, dash(out.Model), len(out.Calibrations))
		return nil
	case "calibrate":
		have, err := reg.Get(ctx, id)
		if err != nil {
			return err
		}
		d.Serial = have.Serial
		out, err := reg.Register(ctx, d)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s: %d calibration records; now %s\n", out.ID, len(out.Calibrations), out.Status(time.Now()))
		return nil
	}
	have, err := reg.Get(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device   %s\nserial   %s\nmodel    %s\nnow      %s\n", have.ID, have.Serial, dash(have.Model), have.Status(time.Now()))
	return table(stdout, "no calibration records", have.Calibrations, "CALIBRATED\tDUE\tLAB\tACCREDITATION\tREFERENCE\t±°C\tCERTIFICATE SHA-256",
		func(c device.Calibration) []any {
			return []any{c.CalibratedAt.Format(time.RFC3339), c.DueAt.Format(time.RFC3339), c.Lab, c.Accreditation, c.Reference, c.UncertaintyC, c.CertSHA256}
		})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
