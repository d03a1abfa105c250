package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/journal"
)

// TestCustodyEndpoint posts a shipment's handovers (intake, QC, a sealed
// release, departure, arrival and a receive at the final site under
// another seal, with a temp_c the loggers contradict) and its readings,
// and reads GET /v1/shipments/{id}/custody back: the periods, and each
// check failed or passed as the handovers and readings say.
func TestCustodyEndpoint(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Custody.CheckEvery = 50 * time.Millisecond
	gw := startGateway(t, cfg)
	stopped := false
	defer func() {
		if !stopped {
			gw.stop()
		}
	}()
	base := "http://" + gw.g.HTTPAddr()
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	post := func(path string, items []string) { t.Helper(); postItems(t, base, path, items) }
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

	// The failures are alerts, listed with the excursions, once each.
	type alertList struct {
		Alerts []struct {
			ID, Rule, Severity, State, Device string
			Transitions                       []json.RawMessage
		}
	}
	custodyAlerts := func() map[string]string {
		var l alertList
		getJSON(t, base+"/v1/shipments/SHP-C/alerts", &l)
		out := map[string]string{}
		for _, a := range l.Alerts {
			switch a.Rule {
			case "seal_mismatch", "temp_not_validated", "readings_after_final", "unmatched_release", "qc_failed":
				out[a.Rule] = fmt.Sprintf("%s %s %d", a.Severity, a.State, len(a.Transitions))
			}
		}
		return out
	}
	want := map[string]string{"seal_mismatch": "alarm open 1", "temp_not_validated": "warning open 1", "readings_after_final": "warning open 1"}
	waitFor(t, "the three custody alerts", func() bool { return len(custodyAlerts()) == 3 })
	if got := custodyAlerts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("custody alerts %v, want %v", got, want)
	}
	// A second logger's reading near the receive agrees with its temp_c:
	// the handover is sensor-validated after all, and its alert retracted.
	post("/v1/readings", []string{fmt.Sprintf(`{"shipment":"SHP-C","device":"L2","seq":1,"ts":"%s","temp_c":8.6}`, at(111))})
	waitFor(t, "the temperature alert retracted", func() bool { return custodyAlerts()["temp_not_validated"] == "warning retracted 2" })

	// A restart checks every shipment again: nothing is published twice.
	before := len(streamIDs(t, gw.g.NATSURL(), journal.StreamAlerts))
	gw.stop()
	stopped = true
	gw = startGateway(t, cfg)
	defer gw.stop()
	base = "http://" + gw.g.HTTPAddr()
	time.Sleep(10 * cfg.Custody.CheckEvery) // several checks; nothing may change
	if after := len(streamIDs(t, gw.g.NATSURL(), journal.StreamAlerts)); after != before {
		t.Fatalf("the restart published %d more alert transitions", after-before)
	}
	want["temp_not_validated"] = "warning retracted 2"
	if got := custodyAlerts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the restart: %v, want %v", got, want)
	}
}

// postItems posts a JSON array of items to the API at base and fails
// unless it is accepted.
func postItems(t *testing.T, base, path string, items []string) {
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
