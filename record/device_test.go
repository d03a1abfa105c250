package record

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDeviceRecordCanonical: a device record's canonical encoding has its
// members in JCS order (what encoding/json writes for a map), parses back
// to the same record and re-encodes to the same bytes; a record with an
// unknown member or without its identity is refused.
func TestDeviceRecordCanonical(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	d := DeviceRecord{Shipment: "SHP-1", Device: "L1", Serial: "SN \"1\"", Model: "TempTale 4", Revision: 42, Updated: at("2026-12-01T10:00:00.5Z"),
		Calibrations: []Calibration{{Lab: "SGS", Accreditation: "ISO/IEC 17025, CNAS L0599", Reference: "PRT", CertSHA256: strings.Repeat("ab", 32),
			CalibratedAt: at("2026-01-10T00:00:00Z"), DueAt: at("2027-01-10T00:00:00Z"), UncertaintyC: 0.15}}}
	b := d.AppendCanonical(nil)
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	sorted, _ := json.Marshal(generic)
	if string(sorted) != string(b) {
		t.Errorf("not in JCS order:\n%s\nwant\n%s", b, sorted)
	}
	if generic["type"] != "device" || generic["v"] != float64(1) {
		t.Errorf("type/v: %v %v", generic["type"], generic["v"])
	}
	back, err := ParseDeviceRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("parsed %+v, want %+v", back, d)
	}
	if again := back.AppendCanonical(nil); string(again) != string(b) {
		t.Errorf("re-encoded %s", again)
	}
	if d.EventID() != "device:SHP-1:L1:42" {
		t.Errorf("event id %s", d.EventID())
	}
	for name, bad := range map[string]string{
		"unknown member": strings.Replace(string(b), `"device":`, `"colour":"red","device":`, 1),
		"no serial":      strings.Replace(string(b), `"serial":"SN \"1\""`, `"serial":""`, 1),
		"no revision":    strings.Replace(string(b), `"revision":42`, `"revision":0`, 1),
		"another type":   strings.Replace(string(b), `"type":"device"`, `"type":"reading"`, 1),
	} {
		if _, err := ParseDeviceRecord([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
}
