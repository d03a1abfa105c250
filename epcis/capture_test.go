package epcis

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
)

// TestCaptureRoundTrip captures our own export: every handover comes
// back with the same canonical bytes, and sensor and alert events are
// refused (they are not handovers).
func TestCaptureRoundTrip(t *testing.T) {
	hs := handovers()
	b, err := json.Marshal(Build(Input{Shipment: "SHP-1", Handovers: hs, Created: t0}, DefaultOptions()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Capture(b, "", DefaultOptions())
	got, bad := res.Events, res.Bad
	if err != nil || len(bad) != 0 || len(got) != len(hs) {
		t.Fatalf("captured %d of %d, bad %v, err %v", len(got), len(hs), bad, err)
	}
	for i, c := range got {
		dec, rj, derr := record.DecodeHandovers(c.JSON, record.Scope{}, record.DefaultLimits(), t0.Add(6*time.Hour))
		if derr != nil || len(rj) != 0 || len(dec) != 1 {
			t.Fatalf("%s: %v %v: %s", c.ID, derr, rj, c.JSON)
		}
		if want := hs[i].AppendCanonical(nil); !bytes.Equal(dec[0].AppendCanonical(nil), want) {
			t.Errorf("round trip changed %s:\n got %s\nwant %s", hs[i].ID, dec[0].AppendCanonical(nil), want)
		}
	}
	// The full export also has sensor and alert events: ignored, each said.
	b, _ = json.Marshal(Build(input(), DefaultOptions()))
	res, err = Capture(b, "", DefaultOptions())
	if err != nil || len(res.Events) != len(hs) || len(res.Bad) != 0 || len(res.Ignored) != 8+2 || !strings.Contains(res.Ignored[0].Detail, "as readings") {
		t.Fatalf("captured %d, ignored %v, bad %v, err %v", len(res.Events), res.Ignored, res.Bad, err)
	}
}

// TestCaptureForeign reads a warehouse system's event with GS1 ids and
// no members of ours.
func TestCaptureForeign(t *testing.T) {
	o := DefaultOptions()
	o.Sites = map[string]string{"SIN-BW1": "urn:epc:id:sgln:0614141.00001.0"}
	o.Parties = map[string]string{"Changi Bonded": "urn:epc:id:pgln:0614141.00001"}
	ev := `{"type":"ObjectEvent","eventTime":"2026-11-02T16:00:00.000+08:00","eventTimeZoneOffset":"+08:00",
		"eventID":"ni:///sha-256;4c6f9d?ver=CBV2.0","epcList":["urn:epc:id:sgtin:0614141.107346.2018"],
		"action":"OBSERVE","bizStep":"https://ref.gs1.org/cbv/BizStep-receiving","disposition":"in_progress",
		"bizLocation":{"id":"urn:epc:id:sgln:0614141.00001.0"},
		"sourceList":[{"type":"possessing_party","source":"urn:epc:id:pgln:0614141.99999"}],
		"destinationList":[{"type":"possessing_party","destination":"urn:epc:id:pgln:0614141.00001"},{"type":"owning_party","destination":"urn:epc:id:pgln:0614141.00001"}],
		"sensorElementList":[{"sensorReport":[{"type":"Temperature","value":41,"uom":"FAH"}]}]}`
	doc := `{"@context":["` + ContextURL + `"],"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-11-02T08:00:00Z","epcisBody":{"eventList":[` + ev + `]}}`
	res, err := Capture([]byte(doc), "SHP-9", o)
	got := res.Events
	if err != nil || len(res.Bad) != 0 || len(got) != 1 {
		t.Fatalf("captured %v, bad %v, err %v", got, res.Bad, err)
	}
	hs, rj, derr := record.DecodeHandovers(got[0].JSON, record.Scope{}, record.DefaultLimits(), t0.Add(24*time.Hour))
	if derr != nil || len(rj) != 0 {
		t.Fatalf("%v %v: %s", derr, rj, got[0].JSON)
	}
	h := hs[0]
	if h.Shipment != "SHP-9" || h.Kind != record.HandoverReceive || h.Site != "SIN-BW1" || h.FromParty != "urn:epc:id:pgln:0614141.99999" ||
		h.ToParty != "Changi Bonded" || h.Owner != "Changi Bonded" || !h.TempC.Set || h.TempC.V != 5 || !h.Time.Equal(time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("handover %+v", h)
	}
	// The same event again is the same record: its id comes from the eventID.
	again, _ := Capture([]byte(doc), "SHP-9", o)
	if again.Events[0].ID != got[0].ID || !strings.HasPrefix(got[0].ID, "EPCIS-") {
		t.Errorf("ids %s and %s", got[0].ID, again.Events[0].ID)
	}
}

// TestCaptureRefuses names what is wrong with each unreadable event, and
// refuses documents that fail the schema.
func TestCaptureRefuses(t *testing.T) {
	ok := `"type":"ObjectEvent","eventTime":"2026-11-02T08:00:00Z","eventTimeZoneOffset":"+00:00","action":"OBSERVE","epcList":["urn:coldchain:epcis:shipment:SHP-1"]`
	loc := `,"bizLocation":{"id":"urn:epc:id:sgln:0000000.00000.SIN-BW1"}`
	parties := `,"sourceList":[{"type":"possessing_party","source":"urn:coldchain:epcis:party:A"}]`
	for _, tc := range []struct{ name, event, want string }{
		{"no event id", `{` + ok + `,"bizStep":"shipping"` + loc + parties + `}`, "eventID is required"},
		{"not custody", `{` + ok + `,"eventID":"urn:x:1","bizStep":"packing"` + loc + parties + `}`, `bizStep "packing" is not a custody step`},
		{"no site", `{` + ok + `,"eventID":"urn:x:1","bizStep":"shipping"` + parties + `}`, "bizLocation or readPoint is required"},
		{"unknown site", `{` + ok + `,"eventID":"urn:x:1","bizStep":"shipping","readPoint":{"id":"urn:epc:id:sgln:0614141.00001.0"}` + parties + `}`, "add it to epcis.sites"},
		{"no parties", `{` + ok + `,"eventID":"urn:x:1","bizStep":"shipping"` + loc + `}`, "who gave and who took"},
		{"qc without result", `{` + ok + `,"eventID":"urn:x:1","bizStep":"inspecting"` + loc + parties + `}`, "conformant or non_conformant"},
		{"kelvin", `{` + ok + `,"eventID":"urn:x:1","bizStep":"shipping"` + loc + parties + `,"sensorElementList":[{"sensorReport":[{"type":"Temperature","value":278,"uom":"KEL"}]}]}`, "CEL or FAH"},
		{"no shipment", `{"type":"ObjectEvent","eventTime":"2026-11-02T08:00:00Z","eventTimeZoneOffset":"+00:00","action":"OBSERVE","epcList":["urn:epc:id:sgtin:0614141.107346.2018"],"eventID":"urn:x:1","bizStep":"shipping"` + loc + parties + `}`, "names no shipment"},
		{"aggregation", `{"type":"AggregationEvent","eventTime":"2026-11-02T08:00:00Z","eventTimeZoneOffset":"+00:00","action":"ADD","eventID":"urn:x:1","parentID":"urn:epc:id:sscc:0614141.1234567890","childEPCs":["urn:epc:id:sgtin:0614141.107346.2018"]}`, "only ObjectEvents"},
	} {
		doc := `{"@context":["` + ContextURL + `"],"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-11-02T08:00:00Z","epcisBody":{"eventList":[` + tc.event + `]}}`
		res, err := Capture([]byte(doc), "", DefaultOptions())
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(res.Events) != 0 || len(res.Bad) != 1 || !strings.Contains(res.Bad[0].Detail, tc.want) {
			t.Errorf("%s: captured %v, bad %v; want %q", tc.name, res.Events, res.Bad, tc.want)
		}
	}
	// Schema failures, not JSON, and nothing to capture.
	for name, doc := range map[string]string{
		"bad action": `{"@context":["` + ContextURL + `"],"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-11-02T08:00:00Z","epcisBody":{"eventList":[{"type":"ObjectEvent","action":"LOOK","eventTime":"2026-11-02T08:00:00Z","eventTimeZoneOffset":"+00:00"}]}}`,
		"not JSON":   `{"type":`,
		"empty":      `{"@context":["` + ContextURL + `"],"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"2026-11-02T08:00:00Z","epcisBody":{"eventList":[]}}`,
	} {
		if _, err := Capture([]byte(doc), "", DefaultOptions()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCaptureOfficialExamples runs GS1's sensor examples through capture
// for a shipment: they validate, and their events (inspections with no
// QC result, at a site this gateway does not know) are refused with why,
// never a crash.
func TestCaptureOfficialExamples(t *testing.T) {
	for _, f := range []string{"schema/SensorDataExample1.jsonld", "schema/SensorDataExample2.jsonld"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Capture(b, "SHP-1", DefaultOptions())
		if err != nil || len(res.Events) != 0 || len(res.Bad) == 0 {
			t.Fatalf("%s: captured %v, bad %v, err %v", f, res.Events, res.Bad, err)
		}
		for _, e := range res.Bad {
			if e.Detail == "" || e.Index < 0 {
				t.Errorf("%s: %+v", f, e)
			}
		}
	}
}
