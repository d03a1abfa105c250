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
		return err == nil && b.TreeSize >= 7 // six readings and the warning
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
}
