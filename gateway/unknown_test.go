package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/journal"
)

// registerDevice registers id, calibrated until 2099, over the API
// (anonymous is an admin in testConfig) and waits until the running
// gateway's ingest and detector see it.
func registerDevice(t *testing.T, gw *running, id string) {
	t.Helper()
	cal := `{"lab":"SGS","accreditation":"ISO/IEC 17025, CNAS L0599","reference":"PRT","cert_sha256":"` + strings.Repeat("ab", 32) +
		`","calibrated_at":"2026-01-10T00:00:00Z","due_at":"2099-01-10T00:00:00Z","uncertainty_c":0.1}`
	code, body := apiDo(t, "http://"+gw.g.HTTPAddr(), "POST", "/v1/devices", "", `{"id":"`+id+`","serial":"SN-`+id+`","calibrations":[`+cal+`]}`)
	if code != 200 {
		t.Fatalf("registering %s: %d %s", id, code, body)
	}
	waitFor(t, id+" in the gateway's registry", func() bool { return gw.g.Device(id) != nil })
}

// TestUnknownDevicesFlagged: with devices.unknown: flag (the default),
// readings of a device not in the registry are stored and open one
// unregistered_device warning per device and shipment, however many
// readings follow and after a restart; a registered device raises none,
// and the shipment's status names the unregistered device.
func TestUnknownDevicesFlagged(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Devices = device.DefaultConfig()
	if cfg.Devices.Unknown != device.UnknownFlag {
		t.Fatalf("default devices.unknown %q, want flag", cfg.Devices.Unknown)
	}
	gw := startGateway(t, cfg)
	defer func() { gw.stop() }()
	registerDevice(t, gw, "U1")
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	reading := func(ship, dev string, seq int) string {
		return fmt.Sprintf(`{"shipment":"%s","device":"%s","seq":%d,"ts":"%s","temp_c":5}`, ship, dev, seq, t0.Add(time.Duration(seq)*time.Minute).Format(time.RFC3339))
	}
	api := "http://" + gw.g.HTTPAddr()
	postItems(t, api, "/v1/readings", []string{reading("SHP-U", "U1", 1), reading("SHP-U", "U1", 2),
		reading("SHP-U", "U2", 1), reading("SHP-U", "U2", 2), reading("SHP-U", "U2", 3), reading("SHP-V", "U2", 10)})

	warnings := func() []string {
		var out []string
		for _, ship := range []string{"SHP-U", "SHP-V"} {
			var al struct {
				Alerts []struct{ Device, Rule, Severity, State string } `json:"alerts"`
			}
			getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/"+ship+"/alerts", &al)
			for _, a := range al.Alerts {
				out = append(out, ship+" "+a.Device+" "+a.Rule+" "+a.Severity+" "+a.State)
			}
		}
		slices.Sort(out)
		return out
	}
	want := "[SHP-U U2 unregistered_device warning open SHP-V U2 unregistered_device warning open]"
	waitFor(t, "two unregistered_device warnings", func() bool { return len(warnings()) >= 2 })
	waitReadings(t, gw.g.HTTPAddr(), "SHP-U", 5)
	waitReadings(t, gw.g.HTTPAddr(), "SHP-V", 1)
	if got := fmt.Sprint(warnings()); got != want {
		t.Errorf("alerts %s, want %s", got, want)
	}
	var st struct {
		Status       string   `json:"status"`
		Unregistered []string `json:"unregistered_devices"`
	}
	getJSON(t, api+"/v1/shipments/SHP-U/status", &st)
	if st.Status != "warning" || fmt.Sprint(st.Unregistered) != "[U2]" {
		t.Errorf("status %+v, want warning naming U2", st)
	}

	// After a restart, more readings of U2 open nothing new.
	gw.stop()
	gw = startGateway(t, cfg)
	api = "http://" + gw.g.HTTPAddr()
	postItems(t, api, "/v1/readings", []string{reading("SHP-U", "U2", 4), reading("SHP-U", "U1", 3)})
	var seen struct {
		Readings int `json:"readings"`
	}
	waitFor(t, "the detector to see SHP-U's 7 readings", func() bool {
		getJSON(t, api+"/v1/shipments/SHP-U/status", &seen)
		return seen.Readings == 7
	})
	if got := fmt.Sprint(warnings()); got != want {
		t.Errorf("after a restart: alerts %s, want %s", got, want)
	}
	// Once U2 is registered, calibrated over its readings, both warnings
	// are retracted and no calibration warning takes their place.
	registerDevice(t, gw, "U2")
	want = "[SHP-U U2 unregistered_device warning retracted SHP-V U2 unregistered_device warning retracted]"
	waitFor(t, "the unregistered_device warnings retracted", func() bool { return fmt.Sprint(warnings()) == want })
}

// TestUnknownDevicesRejected: with devices.unknown: reject, a reading of a
// device not in the registry is refused as unknown_device over HTTP and
// MQTT, with a detail that says how to register it, and kept as a dead
// letter; once registered, the device's readings are accepted.
func TestUnknownDevicesRejected(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Devices.Unknown = device.UnknownReject
	gw := startGateway(t, cfg)
	defer gw.stop()
	api := "http://" + gw.g.HTTPAddr()
	registerDevice(t, gw, "R1")
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	reading := func(dev string, seq int) string {
		return fmt.Sprintf(`{"shipment":"SHP-R","device":"%s","seq":%d,"ts":"%s","temp_c":5}`, dev, seq, t0.Add(time.Duration(seq)*time.Minute).Format(time.RFC3339))
	}
	if code, body := apiDo(t, api, "POST", "/v1/readings", "", reading("R1", 1)); code != 202 {
		t.Fatalf("registered R1: %d %s", code, body)
	}
	code, body := apiDo(t, api, "POST", "/v1/readings", "", reading("R2", 1))
	if code != 400 || !strings.Contains(body, "unknown_device") || !strings.Contains(body, "coldchain devices register") {
		t.Errorf("unregistered R2 over HTTP: %d %s; want 400 unknown_device saying how to register it", code, body)
	}
	c := publisher(t, gw.g.MQTTAddr(), "r-feed")
	publish(t, c, "coldchain/v1/SHP-R/R3/readings", fmt.Sprintf(`{"seq":1,"ts":"%s","temp_c":5}`, t0.Format(time.RFC3339)))
	c.Disconnect(100) // before the gateway stops

	var dl struct {
		DeadLetters []journal.DeadLetterEntry `json:"dead_letters"`
	}
	waitFor(t, "two dead letters", func() bool {
		getJSON(t, api+"/v1/deadletters?limit=100", &dl)
		return len(dl.DeadLetters) >= 2
	})
	var got []string
	for _, d := range dl.DeadLetters {
		b, _ := json.Marshal(d)
		if d.Reason != "unknown_device" || !strings.Contains(d.Detail, "register it in the device registry") {
			t.Errorf("dead letter %s", b)
		}
		got = append(got, d.Field)
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[device topic]" {
		t.Errorf("dead letters' fields %v, want the payload's device (HTTP) and the topic's (MQTT)", got)
	}

	registerDevice(t, gw, "R2")
	if code, body := apiDo(t, api, "POST", "/v1/readings", "", reading("R2", 1)); code != 202 {
		t.Errorf("R2 once registered: %d %s", code, body)
	}
	waitReadings(t, gw.g.HTTPAddr(), "SHP-R", 2)
}
