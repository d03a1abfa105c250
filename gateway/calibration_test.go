package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/journal"
)

// TestCalibrationWarning registers a logger calibrated for one hour of
// device time and posts readings inside and after it: every reading is
// stored, the first one out of calibration opens one calibration warning
// for the device and shipment (however many follow, and after a
// restart), the shipment's status says which device, and a device not in
// the registry is not flagged.
func TestCalibrationWarning(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	gw := startGateway(t, cfg)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	nc, err := nats.Connect(gw.g.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	reg, err := device.OpenRegistry(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Register(context.Background(), device.Device{ID: "K1", Serial: "SN-K1", Calibrations: []device.Calibration{{
		Lab: "Lab", Accreditation: "ISO/IEC 17025", Reference: "PRT", CertSHA256: strings.Repeat("ab", 32),
		CalibratedAt: t0.Add(-24 * time.Hour), DueAt: t0.Add(time.Hour), UncertaintyC: 0.1}}})
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The registry is read at start: restart to be sure it is loaded
	// (changes later are followed, but a test cannot wait on that).
	gw.stop()
	gw = startGateway(t, cfg)
	stopped := false
	defer func() {
		if !stopped {
			gw.stop()
		}
	}()
	base := "http://" + gw.g.HTTPAddr()
	reading := func(dev string, seq, min int) string {
		return fmt.Sprintf(`{"shipment":"SHP-K","device":"%s","seq":%d,"ts":"%s","temp_c":5}`, dev, seq, t0.Add(time.Duration(min)*time.Minute).Format(time.RFC3339))
	}
	postItems(t, base, "/v1/readings", []string{reading("K1", 1, 10), reading("K1", 2, 70), reading("K1", 3, 80), reading("K2", 1, 70)})

	type alertList struct {
		Alerts []struct {
			ID, Device, Rule, Severity, State string
		} `json:"alerts"`
	}
	calibrationAlerts := func() []string {
		var al alertList
		getJSON(t, base+"/v1/shipments/SHP-K/alerts", &al)
		var out []string
		for _, a := range al.Alerts {
			if a.Rule == "calibration" {
				out = append(out, a.Device+" "+a.Severity+" "+a.State)
			}
		}
		return out
	}
	waitFor(t, "the calibration warning", func() bool { return len(calibrationAlerts()) > 0 })
	postItems(t, base, "/v1/readings", []string{reading("K1", 4, 90)})
	waitFor(t, "the fifth reading", func() bool { return len(streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)) == 5 })
	var st struct {
		Status           string   `json:"status"`
		Readings         int      `json:"readings"`
		OutOfCalibration []string `json:"out_of_calibration"`
	}
	waitFor(t, "the detector to see five readings", func() bool {
		getJSON(t, base+"/v1/shipments/SHP-K/status", &st)
		return st.Readings == 5
	})
	if got := calibrationAlerts(); fmt.Sprint(got) != "[K1 warning open]" {
		t.Errorf("calibration alerts %v, want one open warning for K1", got)
	}
	if st.Status != "warning" || fmt.Sprint(st.OutOfCalibration) != "[K1]" {
		t.Errorf("status %+v", st)
	}
	// The history lists the readings taken out of calibration beside
	// them: K1's after its due date, not the unregistered K2's.
	expired := func() string {
		var h struct {
			Count   int      `json:"count"`
			Expired []string `json:"calibration_expired"`
		}
		getJSON(t, base+"/v1/shipments/SHP-K/readings", &h)
		return fmt.Sprint(h.Count, " ", h.Expired)
	}
	waitFor(t, "five readings in the store", func() bool { return strings.HasPrefix(expired(), "5 ") })
	if got := expired(); got != "5 [K1:2 K1:3 K1:4]" {
		t.Errorf("history: %s, want 5 readings, K1:2–4 flagged calibration_expired", got)
	}
	gw.stop()
	stopped = true
	gw = startGateway(t, cfg)
	stopped = false
	base = "http://" + gw.g.HTTPAddr()
	postItems(t, base, "/v1/readings", []string{reading("K1", 5, 100)})
	waitFor(t, "the sixth reading", func() bool {
		getJSON(t, base+"/v1/shipments/SHP-K/status", &st)
		return st.Readings == 6
	})
	if got := calibrationAlerts(); fmt.Sprint(got) != "[K1 warning open]" {
		t.Errorf("after a restart: calibration alerts %v", got)
	}

	// The proof bundle carries K1's calibration record, and the offline
	// verifier names its readings taken out of calibration.
	var b *bundle.Bundle
	waitFor(t, "a bundle of the six readings", func() bool {
		resp, err := http.Get(base + "/v1/shipments/SHP-K/proof")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return false
		}
		b, err = bundle.Decode(raw)
		return err == nil && b.TreeSize >= 7 && deviceRecords(b) == 1 // six readings, the warning and K1's device record
	})
	s, err := bundle.Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Calibrations) != 1 || b.Calibrations[0].Device != "K1" || b.Calibrations[0].Serial != "SN-K1" || b.Calibrations[0].CertSHA256 != strings.Repeat("ab", 32) {
		t.Errorf("bundle calibrations %+v", b.Calibrations)
	}
	if fmt.Sprint(s.OutOfCalibration) != "map[K1:4]" || s.FirstOut["K1"] != "K1:2" {
		t.Errorf("verifier: out of calibration %v, first %v; want K1's 4 readings from K1:2", s.OutOfCalibration, s.FirstOut)
	}
	// K1's registry entry is a record of the shipment's log, written once
	// (not again after the restart, nor for the unregistered K2), and the
	// verifier checks the readings against that anchored copy.
	if s.Kinds["device"] != 1 || len(s.Calibrations) != 1 || !s.Calibrations[0].Anchored || len(s.Differs) != 0 {
		t.Errorf("device records %d, calibrations used %+v, differs %v; want K1's one anchored record", s.Kinds["device"], s.Calibrations, s.Differs)
	}
	if n := len(streamIDs(t, gw.g.NATSURL(), journal.StreamDevices)); n != 1 {
		t.Errorf("%d device records in the stream, want 1", n)
	}

	// A later calibration that covers the readings reaches the shipment's
	// log as a second device record, though K1 sends nothing more.
	nc, err = nats.Connect(gw.g.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ = jetstream.New(nc)
	reg, err = device.OpenRegistry(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Register(context.Background(), device.Device{ID: "K1", Serial: "SN-K1", Calibrations: []device.Calibration{{
		Lab: "Lab", Accreditation: "ISO/IEC 17025", Reference: "PRT", CertSHA256: strings.Repeat("cd", 32),
		CalibratedAt: t0.Add(time.Hour), DueAt: t0.Add(365 * 24 * time.Hour), UncertaintyC: 0.1}}})
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "K1's second device record", func() bool { return len(streamIDs(t, gw.g.NATSURL(), journal.StreamDevices)) == 2 })
	waitFor(t, "a bundle with both device records", func() bool {
		resp, err := http.Get(base + "/v1/shipments/SHP-K/proof")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		b, err = bundle.Decode(raw)
		return resp.StatusCode == http.StatusOK && err == nil && deviceRecords(b) == 2
	})
	if s, err = bundle.Verify(b); err != nil {
		t.Fatal(err)
	}
	if s.Kinds["device"] != 2 || len(s.Calibrations) != 2 || !s.Calibrations[0].Anchored || !s.Calibrations[1].Anchored ||
		len(s.OutOfCalibration) != 0 || len(s.Differs) != 0 {
		t.Errorf("after the new calibration: device records %d, used %+v, out %v, differs %v", s.Kinds["device"], s.Calibrations, s.OutOfCalibration, s.Differs)
	}
	if got := expired(); got != "6 []" {
		t.Errorf("history after the new calibration: %s, want nothing flagged", got)
	}
	// A bundle whose unanchored copy was edited (the new calibration
	// removed) is still checked against the anchored records, and says so.
	b.Calibrations = b.Calibrations[:1]
	if s, err = bundle.Verify(b); err != nil || fmt.Sprint(s.Differs) != "[K1]" || len(s.OutOfCalibration) != 0 {
		t.Errorf("edited bundle calibrations: %v, differs %v, out %v; want the anchored ones used and K1 named", err, s.Differs, s.OutOfCalibration)
	}
	// The new calibration covers every reading the warning flagged: it is
	// retracted, and the status no longer names K1. A late reading from
	// before the first calibration reopens it.
	waitFor(t, "the calibration warning retracted", func() bool { return fmt.Sprint(calibrationAlerts()) == "[K1 warning retracted]" })
	getJSON(t, base+"/v1/shipments/SHP-K/status", &st)
	if len(st.OutOfCalibration) != 0 {
		t.Errorf("after the retraction, status %+v", st)
	}
	postItems(t, base, "/v1/readings", []string{reading("K1", 6, -25*60)})
	waitFor(t, "the calibration warning reopened", func() bool { return fmt.Sprint(calibrationAlerts()) == "[K1 warning open]" })
}

// deviceRecords counts the device records in a bundle's records.
func deviceRecords(b *bundle.Bundle) int {
	n := 0
	for _, r := range b.Records {
		if strings.Contains(string(r), `"type":"device"`) {
			n++
		}
	}
	return n
}
