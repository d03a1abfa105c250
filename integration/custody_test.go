//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/coldchain/coldchain/epcis"
)

// TestCustodyThroughServe runs a shipment's chain of custody through
// `coldchain serve` in front of the real Mosquitto and nats-server:
// loggers publish readings and the sites publish intake, a QC checkpoint,
// the warehouse's release and the carrier's receive, departure, arrival,
// the carrier's release and a final receive under another seal. The
// custody timeline fails seal_mismatch and passes the rest, the failure
// is an alarm, `coldchain epcis` writes a schema-valid EPCIS document,
// and `coldchain proof` + `coldchain verify` check the bundle, on chain,
// with the alarm in it. Logger L1 is registered with a calibration that
// expired the day before: its readings are stored, open one calibration
// warning, and verify names them as out of calibration.
func TestCustodyThroughServe(t *testing.T) {
	mqttURL := need(t, "COLDCHAIN_TEST_MQTT_URL")
	natsURL := need(t, "COLDCHAIN_TEST_NATS_URL")
	run := fmt.Sprintf("cu%d", time.Now().UnixNano())
	ship := "SHP-" + run
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-4 * time.Hour)
	// The registry commands, against the same nats-server, before the
	// gateway starts (it loads the registry before it ingests).
	for _, args := range [][]string{
		{"devices", "register", run + "-L1", "--serial", "TT-" + run, "--model", "TempTale Ultra"},
		{"devices", "calibrate", run + "-L1", "--lab", "SGS Metrology", "--accreditation", "ISO/IEC 17025, CNAS L0599", "--reference", "Fluke 1524 PRT",
			"--cert-sha256", strings.Repeat("5e", 32), "--calibrated-at", t0.AddDate(-1, 0, 0).Format(time.DateOnly), "--due-at", t0.AddDate(0, 0, -1).Format(time.DateOnly), "--uncertainty", "0.1"},
	} {
		if out, err := exec.Command(binary, append(args, "--nats", natsURL)...).CombinedOutput(); err != nil {
			t.Fatalf("coldchain %v: %v\n%s", args, err, out)
		}
	}
	httpAddr, chainAddr := freePort(t), freePort(t)
	env := append(gatewayEnv(t, run, httpAddr),
		"COLDCHAIN_CHAIN_LISTEN="+chainAddr,
		"COLDCHAIN_CUSTODY_CHECK_EVERY=500ms",
		"COLDCHAIN_ANCHOR_EPOCH=2s",
	)
	gw := startProc(t, env, httpAddr)
	defer gw.stop()
	api := "http://" + httpAddr

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mqttURL).SetClientID("pub-" + run).SetCleanSession(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to mosquitto: %v", tok.Error())
	}
	defer pub.Disconnect(250)
	publish := func(topic, payload string) {
		t.Helper()
		if tok := pub.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	at := func(min int) string { return t0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	readings := 0
	for m := 0; m < 200; m += 2 {
		for _, dev := range []string{run + "-L1", run + "-L2"} {
			publish("coldchain/v1/"+ship+"/"+dev+"/readings", fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":5.1}`, m+1, at(m)))
			readings++
		}
	}
	h := func(id, kind string, min int, from, to, site, extra string) {
		publish("coldchain/v1/"+ship+"/handovers", fmt.Sprintf(`{"id":"%s","kind":"%s","ts":"%s","from_party":"%s","to_party":"%s","site":"%s","temp_c":5.0%s}`,
			run+"-"+id, kind, at(min), from, to, site, extra))
	}
	h("I1", "intake", 0, "Maker", "SIN Bonded", "SIN-BW1", "")
	h("Q1", "qc_checkpoint", 10, "SIN Bonded", "SIN Bonded", "SIN-BW1", `,"qc_result":"pass","doc_sha256":"`+strings.Repeat("cd", 32)+`"`)
	h("R1", "release", 20, "SIN Bonded", "Carrier", "SIN-BW1", `,"seal":"SL-1"`)
	h("V1", "receive", 21, "SIN Bonded", "Carrier", "SIN-BW1", `,"seal":"SL-1"`)
	h("D1", "depart", 25, "Carrier", "Carrier", "SIN-BW1", "")
	h("A1", "arrive", 150, "Carrier", "Carrier", "DXB-WH", "")
	h("R2", "release", 160, "Carrier", "Importer", "DXB-WH", `,"seal":"SL-1"`)
	h("V2", "receive", 161, "Carrier", "Importer", "DXB-WH", `,"seal":"SL-9","final":true`)

	var tl struct {
		Status string `json:"status"`
		Holder string `json:"holder"`
		Checks []struct {
			Rule, Result, Handover string
		} `json:"checks"`
	}
	var alarm, calibration bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		code := getJSONIt(t, api+"/v1/shipments/"+ship+"/custody", &tl)
		var al struct {
			Alerts []struct{ Rule, Severity, State string } `json:"alerts"`
		}
		getJSONIt(t, api+"/v1/shipments/"+ship+"/alerts", &al)
		alarm, calibration = false, false
		for _, a := range al.Alerts {
			alarm = alarm || a.Rule == "seal_mismatch" && a.Severity == "alarm" && a.State == "open"
			calibration = calibration || a.Rule == "calibration" && a.Severity == "warning"
		}
		if code == 200 && tl.Status == "failed" && alarm && calibration {
			break
		}
		if time.Now().After(deadline) {
			_, dl := httpText(t, api+"/v1/deadletters?limit=20")
			t.Fatalf("custody %+v, seal_mismatch alarm %v, calibration warning %v after 60s; dead letters: %s", tl, alarm, calibration, dl)
		}
		time.Sleep(200 * time.Millisecond)
	}
	results := map[string]string{}
	for _, c := range tl.Checks {
		// Handover ids are global, like record ids: each run has its own.
		results[c.Rule+" "+strings.TrimPrefix(c.Handover, run+"-")] = c.Result
	}
	for check, want := range map[string]string{
		"seal_mismatch V2": "fail", "seal_mismatch V1": "pass",
		"unmatched_release R1": "pass", "unmatched_release R2": "pass", "qc_failed Q1": "pass",
	} {
		if results[check] != want {
			t.Errorf("%s: %q, want %s (checks %v)", check, results[check], want, results)
		}
	}
	if tl.Holder != "Importer" {
		t.Errorf("holder %q", tl.Holder)
	}

	// The EPCIS document, through the command a customs broker runs.
	dir := t.TempDir()
	doc := filepath.Join(dir, ship+".jsonld")
	if out, err := exec.Command(binary, "epcis", ship, "--api", api, "-o", doc).CombinedOutput(); err != nil {
		t.Fatalf("coldchain epcis: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := epcis.Validate(raw); err != nil {
		t.Fatal(err)
	}
	var d epcis.Document
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for _, e := range d.Body.EventList {
		steps[e.BizStep]++
	}
	if steps["commissioning"] != 1 || steps["inspecting"] != 1 || steps["shipping"] != 2 || steps["receiving"] != 2 || steps["departing"] != 1 || steps["arriving"] != 1 || steps["sensor_reporting"] < 4 {
		t.Errorf("EPCIS events by bizStep %v", steps)
	}

	// The proof bundle: every reading, handover and the alerts, anchored.
	bundle := filepath.Join(dir, "bundle.json")
	want := readings + 8 + 1
	deadline = time.Now().Add(90 * time.Second)
	for {
		out, err := exec.Command(binary, "proof", ship, "--api", api, "-o", bundle).CombinedOutput()
		if err == nil {
			var b struct {
				TreeSize int      `json:"tree_size"`
				Records  []string `json:"records"`
			}
			raw, _ := os.ReadFile(bundle)
			// L1's registry entry joins the log as a device record.
			if json.Unmarshal(raw, &b) == nil && b.TreeSize > want && slices.ContainsFunc(b.Records, func(r string) bool {
				return strings.Contains(r, `"type":"device"`) && strings.Contains(r, run+"-L1")
			}) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bundle with the %d records and the alarm after 90s: %v %s", want, err, out)
		}
		time.Sleep(time.Second)
	}
	out, err := exec.Command(binary, "verify", bundle, "--rpc", "http://"+chainAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("coldchain verify: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "calibrated "+run+"-L1 (serial TT-"+run+"): SGS Metrology") || !strings.Contains(string(out), "(anchored: log record") ||
		!strings.Contains(string(out), fmt.Sprintf("OUT OF CALIBRATION %d readings of %s-L1", readings/2, run)) {
		t.Errorf("verify does not name L1's readings out of calibration against its anchored record:\n%s", out)
	}
	t.Logf("custody: %d checks, status %s; EPCIS %d events; verify:\n%s", len(tl.Checks), tl.Status, len(d.Body.EventList), out)

	// One reading's compact proof: the roots it recomputes from the
	// reading's bytes are the ones anchored on the real chain.
	compact := filepath.Join(filepath.Dir(bundle), "reading.ccp")
	if out, err := exec.Command(binary, "proof", ship, "--api", api, "--record", run+"-L1:1", "--compact", "-o", compact).CombinedOutput(); err != nil {
		t.Fatalf("coldchain proof --compact: %v\n%s", err, out)
	}
	proof, _ := os.ReadFile(compact)
	out, err = exec.Command(binary, "verify", compact, "--rpc", "http://"+chainAddr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "on chain   epoch root found") {
		t.Fatalf("coldchain verify of the compact proof: %v\n%s", err, out)
	}
	t.Logf("compact proof of %s-L1:1: %d bytes, verified on chain", run, len(proof))
}

// getJSONIt GETs url into v and returns the status.
func getJSONIt(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}
