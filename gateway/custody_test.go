package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCustodyEndpoint posts a shipment's handovers (intake, QC, a sealed
// release, departure, arrival and a receive at the final site under
// another seal, with a temp_c the loggers contradict) and its readings,
// and reads GET /v1/shipments/{id}/custody back: the periods, and each
// check failed or passed as the handovers and readings say.
func TestCustodyEndpoint(t *testing.T) {
	cfg := testConfig(t.TempDir())
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	post := func(path string, items []string) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader("["+strings.Join(items, ",")+"]"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	var readings []string
	for m := 0; m <= 130; m += 5 {
		readings = append(readings, fmt.Sprintf(`{"shipment":"SHP-C","device":"L1","seq":%d,"ts":"%s","temp_c":5.0}`, m+1, at(m)))
	}
	post("/v1/readings", readings)
	h := func(id, kind string, min int, from, to, site, extra string) string {
		return fmt.Sprintf(`{"id":"%s","shipment":"SHP-C","kind":"%s","ts":"%s","from_party":"%s","to_party":"%s","site":"%s"%s}`, id, kind, at(min), from, to, site, extra)
	}
	post("/v1/handovers", []string{
		h("I1", "intake", 0, "maker", "WH-SIN", "SIN-BW1", `,"lat":1.29,"lon":103.85`),
		h("Q1", "qc_checkpoint", 10, "WH-SIN", "WH-SIN", "SIN-BW1", `,"qc_result":"pass","doc_sha256":"`+strings.Repeat("ab", 32)+`"`),
		h("R1", "release", 20, "WH-SIN", "importer", "SIN-BW1", `,"seal":"SL-1","temp_c":5.2`),
		h("D1", "depart", 25, "WH-SIN", "importer", "SIN-BW1", ""),
		h("A1", "arrive", 100, "importer", "importer", "DXB-WH", ""),
		h("V1", "receive", 110, "WH-SIN", "importer", "DXB-WH", `,"seal":"SL-2","temp_c":9.0,"final":true`),
	})

	var got struct {
		Shipment string `json:"shipment"`
		Status   string `json:"status"`
		Failed   int    `json:"failed"`
		Holder   string `json:"holder"`
		Final    string `json:"final"`
		Custody  []struct {
			Party, Site string
			Confirmed   bool
			OpenedBy    string `json:"opened_by"`
		} `json:"custody"`
		Checks []struct {
			Rule, Result, Handover, Device, Detail string
		} `json:"checks"`
		Handovers []json.RawMessage `json:"handovers"`
	}
	waitFor(t, "the custody timeline of all six handovers and the readings", func() bool {
		if code := getJSON(t, base+"/v1/shipments/SHP-C/custody", &got); code != 200 {
			return false
		}
		return len(got.Handovers) == 6 && got.Failed == 3
	})
	if got.Status != "failed" || got.Holder != "importer" || got.Final != "V1" {
		t.Fatalf("status %q, holder %q, final %q", got.Status, got.Holder, got.Final)
	}
	results := map[string]string{}
	for _, c := range got.Checks {
		results[c.Rule+" "+c.Handover+" "+c.Device] = c.Result
	}
	for k, want := range map[string]string{
		"unmatched_release R1 ":      "pass",
		"seal_mismatch V1 ":          "fail",
		"temp_not_validated R1 L1":   "pass",
		"temp_not_validated V1 L1":   "fail",
		"readings_after_final V1 L1": "fail",
		"qc_failed Q1 ":              "pass",
	} {
		if results[k] != want {
			t.Errorf("%s: %q, want %q (checks %v)", k, results[k], want, results)
		}
	}
	// WH-SIN at its site; the importer's custody from the release, in
	// transit and at its site, confirmed by its receive.
	if len(got.Custody) != 4 || got.Custody[0].Party != "WH-SIN" || got.Custody[1].Party != "importer" || !got.Custody[1].Confirmed || !got.Custody[3].Confirmed || got.Custody[3].Site != "DXB-WH" || got.Custody[3].OpenedBy != "A1" {
		t.Errorf("custody %+v", got.Custody)
	}
	var qc bytes.Buffer
	if err := json.Compact(&qc, got.Handovers[1]); err != nil || !strings.Contains(qc.String(), `"qc_result":"pass"`) {
		t.Errorf("the QC handover lost its result: %s", got.Handovers[1])
	}
	if code := getJSON(t, base+"/v1/shipments/SHP-NONE/custody", &struct{}{}); code != http.StatusNotFound {
		t.Errorf("an unknown shipment: %d, want 404", code)
	}
}
