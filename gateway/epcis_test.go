package gateway

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/epcis"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
)

// TestEPCISEndpoint posts a shipment's handovers and readings with an
// excursion, and reads GET /v1/shipments/{id}/epcis: the document
// validates against the official EPCIS 2.0 schema, has an event per
// handover, sensor reports per hour and device, the excursion as an
// ALARM_CONDITION, and links to the anchored log: each handover event's
// leaf hash is a leaf of the shipment's proof bundle, and the anchors are
// the ones the anchors endpoint lists.
func TestEPCISEndpoint(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	post := func(path string, items []string) { t.Helper(); postItems(t, base, path, items) }
	var readings []string
	for m := 0; m < 150; m += 2 {
		temp := 5.0
		if m >= 60 && m < 100 {
			temp = 11.5 // 40 minutes above 8 °C: single_event_high
		}
		readings = append(readings, fmt.Sprintf(`{"shipment":"SHP-E","device":"L1","seq":%d,"ts":"%s","temp_c":%g}`, m+1, at(m), temp))
	}
	post("/v1/readings", readings)
	h := func(id, kind string, min int, from, to, site, extra string) string {
		return fmt.Sprintf(`{"id":"%s","shipment":"SHP-E","kind":"%s","ts":"%s","from_party":"%s","to_party":"%s","site":"%s"%s}`, id, kind, at(min), from, to, site, extra)
	}
	post("/v1/handovers", []string{
		h("I1", "intake", 0, "maker", "WH-SIN", "SIN-BW1", `,"temp_c":5.0`),
		h("Q1", "qc_checkpoint", 10, "WH-SIN", "WH-SIN", "SIN-BW1", `,"qc_result":"pass"`),
		h("R1", "release", 20, "WH-SIN", "importer", "SIN-BW1", `,"seal":"SL-1"`),
		h("V1", "receive", 21, "WH-SIN", "importer", "SIN-BW1", `,"seal":"SL-1"`),
	})

	var doc epcis.Document
	var raw []byte
	waitFor(t, "an EPCIS document with the alert and an anchor", func() bool {
		resp, err := http.Get(base + "/v1/shipments/SHP-E/epcis")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &doc) != nil {
			return false
		}
		alarms := 0
		for _, e := range doc.Body.EventList {
			for _, se := range e.SensorElementList {
				if se.Report[0].Exception == "ALARM_CONDITION" {
					alarms++
				}
			}
		}
		// 75 readings, 4 handovers and the alerts' transitions, all anchored.
		return alarms > 0 && doc.Log != nil && len(doc.Log.Anchors) > 0 && doc.Log.Size > 75+4 && doc.Log.Anchors[len(doc.Log.Anchors)-1].Size == doc.Log.Size
	})
	if err := epcis.Validate(raw); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	leaves := map[string]string{}
	var hourly, samples int
	rules := map[string]bool{}
	for _, e := range doc.Body.EventList {
		switch {
		case e.Handover != nil:
			kinds[e.BizStep]++
			leaves[e.Handover.ID] = e.LeafHash
		case e.SensorElementList[0].Report[0].Exception != "":
			r := e.SensorElementList[0].Report[0]
			rules[r.Rule] = true
			if r.Value == nil || *r.Value != 11.5 || r.UOM != "CEL" {
				t.Errorf("excursion report %+v", r)
			}
		default:
			hourly++
			samples += e.SensorElementList[0].Report[0].Count
		}
	}
	if fmt.Sprint(kinds) != "map[commissioning:1 inspecting:1 receiving:1 shipping:1]" || hourly != 3 || samples != 75 {
		t.Errorf("handover events %v, %d hourly reports of %d readings", kinds, hourly, samples)
	}
	if !rules["single_event_high"] {
		t.Errorf("excursion reports of %v, want single_event_high among them", rules)
	}

	// The anchors are the anchorer's, and each handover is a leaf of the
	// shipment's log as the proof bundle holds it.
	var anchors struct {
		Anchors []struct {
			Epoch uint64 `json:"epoch"`
			Root  string `json:"root"`
			Tx    string `json:"tx"`
		} `json:"anchors"`
	}
	getJSON(t, base+"/v1/shipments/SHP-E/anchors", &anchors)
	if len(anchors.Anchors) < len(doc.Log.Anchors) || anchors.Anchors[0].Root != doc.Log.Anchors[0].Root || anchors.Anchors[0].Tx != doc.Log.Anchors[0].Tx {
		t.Errorf("document anchors %+v, anchorer %+v", doc.Log.Anchors, anchors.Anchors)
	}
	var b *bundle.Bundle
	waitFor(t, "the shipment's proof bundle", func() bool {
		resp, err := http.Get(base + "/v1/shipments/SHP-E/proof")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return false
		}
		b, err = bundle.Decode(body)
		return err == nil
	})
	inLog := map[string]bool{}
	for _, r := range b.Records {
		l := merkle.LeafHash([]byte(r))
		inLog[hex.EncodeToString(l[:])] = true
	}
	for id, leaf := range leaves {
		if !inLog[leaf] {
			t.Errorf("handover %s: leaf %s is not in the proof bundle", id, leaf)
		}
	}

	// Clear errors: an unknown shipment, a bad interval, an unknown parameter.
	for path, want := range map[string]int{
		"/v1/shipments/SHP-NONE/epcis":            http.StatusNotFound,
		"/v1/shipments/SHP-E/epcis?interval=5s":   http.StatusBadRequest,
		"/v1/shipments/SHP-E/epcis?format=xml":    http.StatusBadRequest,
		"/v1/shipments/SHP-E/epcis?interval=15m":  http.StatusOK,
		"/v1/shipments/SHP-E/epcis?interval=abcd": http.StatusBadRequest,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}

// TestEPCISCapture posts EPCIS documents to POST /epcis/capture: the
// gateway's own export comes back as the same handovers (all duplicates),
// a warehouse system's event becomes a handover once however often it is
// sent, and a document that fails the schema, an event of an unknown
// shipment and an event the mapping cannot read are refused whole with
// their reason, the original bytes dead-lettered, nothing stored.
func TestEPCISCapture(t *testing.T) {
	gw := startGateway(t, testConfig(t.TempDir()))
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	postItems(t, base, "/v1/readings", []string{fmt.Sprintf(`{"shipment":"SHP-X","device":"L1","seq":1,"ts":"%s","temp_c":5}`, at(0))})
	postItems(t, base, "/v1/handovers", []string{
		fmt.Sprintf(`{"id":"R1","shipment":"SHP-X","kind":"release","ts":"%s","from_party":"WH","to_party":"Truck","site":"SIN-BW1","seal":"S1"}`, at(5)),
	})
	capture := func(query, doc string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(base+"/epcis/capture"+query, "application/ld+json", strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	var export []byte
	waitFor(t, "the export of SHP-X", func() bool {
		resp, err := http.Get(base + "/v1/shipments/SHP-X/epcis")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		export, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(export), `"cc:handover"`)
	})
	if code, out := capture("", string(export)); code != http.StatusAccepted || out["accepted"] != 0.0 || out["duplicates"] != 1.0 {
		t.Fatalf("capturing the export: %d %v", code, out)
	}

	doc := func(events ...string) string {
		return `{"@context":["` + epcis.ContextURL + `"],"type":"EPCISDocument","schemaVersion":"2.0","creationDate":"` + at(60) + `","epcisBody":{"eventList":[` + strings.Join(events, ",") + `]}}`
	}
	receive := `{"type":"ObjectEvent","eventTime":"` + at(30) + `","eventTimeZoneOffset":"+00:00","eventID":"urn:uuid:6c1b4d8e-2f0a-4c1e-9a57-3e1f0b2d9c44",
		"epcList":["urn:epc:id:sgtin:0614141.107346.2018"],"action":"OBSERVE","bizStep":"receiving",
		"bizLocation":{"id":"urn:epc:id:sgln:0000000.00000.SIN-BW1"},
		"sourceList":[{"type":"possessing_party","source":"urn:coldchain:epcis:party:WH"}],
		"destinationList":[{"type":"possessing_party","destination":"urn:coldchain:epcis:party:Truck"}]}`
	for i, want := range []float64{1, 0} { // sent twice: stored once
		code, out := capture("?shipment=SHP-X", doc(receive))
		if code != http.StatusAccepted || out["accepted"] != want || out["duplicates"] != 1-want {
			t.Fatalf("capture %d: %d %v", i, code, out)
		}
	}
	handovers := func() []string { return streamIDs(t, gw.g.NATSURL(), journal.StreamHandovers) }
	want := handovers()
	if len(want) != 2 || want[0] != "R1" || !strings.HasPrefix(want[1], "EPCIS-") {
		t.Fatalf("handovers journaled %v", want)
	}

	bad := map[string]struct {
		query, doc, reason string
		status             int
	}{
		"schema":   {"?shipment=SHP-X", strings.Replace(doc(receive), `"action":"OBSERVE"`, `"action":"LOOK"`, 1), "invalid_epcis", http.StatusBadRequest},
		"unknown":  {"?shipment=SHP-NONE", doc(strings.Replace(receive, "6c1b4d8e", "7c1b4d8e", 1)), "unknown_shipment", http.StatusNotFound},
		"unmapped": {"?shipment=SHP-X", doc(strings.Replace(receive, "6c1b4d8e", "8c1b4d8e", 1), strings.Replace(receive, `"receiving"`, `"packing"`, 1)), "invalid_epcis", http.StatusBadRequest},
	}
	for name, tc := range bad {
		code, out := capture(tc.query, tc.doc)
		if code != tc.status || !strings.Contains(fmt.Sprint(out), tc.reason) {
			t.Errorf("%s: %d %v, want %d %s", name, code, out, tc.status, tc.reason)
		}
	}
	if got := handovers(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refused documents stored handovers: %v", got)
	}
	var dl struct {
		DeadLetters []journal.DeadLetterEntry `json:"dead_letters"`
	}
	getJSON(t, base+"/v1/deadletters?limit=100", &dl)
	originals := map[string]string{}
	for _, d := range dl.DeadLetters {
		originals[d.Payload] = d.Reason
	}
	for name, tc := range bad {
		if originals[tc.doc] != tc.reason {
			t.Errorf("%s: no dead letter of reason %s with the original document (dead letters %d)", name, tc.reason, len(dl.DeadLetters))
		}
	}
}
