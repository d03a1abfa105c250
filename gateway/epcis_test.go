package gateway

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/epcis"
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
