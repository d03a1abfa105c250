package epcis

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// TestOfficialExamplesValidate checks the validator with GS1's own
// examples: they must pass.
func TestOfficialExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("schema/*.jsonld")
	if len(files) < 2 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestValidateRejects shows the validator can fail, and says where.
func TestValidateRejects(t *testing.T) {
	b, err := os.ReadFile("schema/SensorDataExample1.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"bad action", `"action": "OBSERVE"`, `"action": "LOOK"`, "/epcisBody/eventList/0/action"},
		{"no event time", `"eventTime": "2019-04-02T15:00:00.000+01:00",`, ``, "eventTime"},
		{"bad time", `"eventTime": "2019-04-02T15:00:00.000+01:00"`, `"eventTime": "yesterday"`, "/epcisBody/eventList/0/eventTime"},
		{"unknown member", `"bizStep": "inspecting",`, `"bizStep": "inspecting", "colour": "red",`, "colour"},
		{"bad document type", `"type": "EPCISDocument"`, `"type": "EPCISDocument", "schemaVersion2": 1`, "schemaVersion2"},
		// A CBV URI that is not a CBV term: the schema's negative lookahead.
		{"CBV URI not in the CBV", `"bizStep": "inspecting"`, `"bizStep": "urn:epcglobal:cbv:bizstep:peeking"`, "/epcisBody/eventList/0/bizStep"},
	} {
		doc := strings.Replace(string(b), tc.from, tc.to, 1)
		if doc == string(b) {
			t.Fatalf("%s: the example has no %s", tc.name, tc.from)
		}
		err := Validate([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	// A private URI is a valid bizStep.
	if err := Validate([]byte(strings.Replace(string(b), `"bizStep": "inspecting"`, `"bizStep": "https://example.org/steps/peeking"`, 1))); err != nil {
		t.Errorf("private bizStep: %v", err)
	}
	if err := Validate([]byte(`{"type":`)); err == nil {
		t.Error("truncated JSON validated")
	}
}

func handovers() []record.Handover {
	h := func(id string, min int, kind record.HandoverKind, site, from, to string) record.Handover {
		return record.Handover{ID: id, Shipment: "SHP-1", Time: t0.Add(time.Duration(min) * time.Minute), Site: site, Kind: kind,
			FromParty: from, ToParty: to, Lat: record.Some(22.5), Lon: record.Some(113.9), TempC: record.Some(4.8), Seal: "CN1234567"}
	}
	hs := []record.Handover{
		h("HO-1", 0, record.HandoverIntake, "CN-QHBZ-CW1", "Supplier GmbH", "Qianhai Cold Chain"),
		h("HO-2", 30, record.HandoverQCCheckpoint, "CN-QHBZ-CW1", "Qianhai Cold Chain", "Qianhai Cold Chain"),
		h("HO-3", 60, record.HandoverQCCheckpoint, "CN-QHBZ-CW1", "Qianhai Cold Chain", "Qianhai Cold Chain"),
		h("HO-4", 90, record.HandoverDepart, "CN-QHBZ-CW1", "Qianhai Cold Chain", "Qianhai Cold Chain"),
		h("HO-5", 120, record.HandoverRelease, "CN-QHBZ-CW1", "Qianhai Cold Chain", "Reefer Haulage"),
		h("HO-6", 121, record.HandoverReceive, "CN-QHBZ-CW1", "Qianhai Cold Chain", "Reefer Haulage"),
		h("HO-7", 300, record.HandoverArrive, "AE-JEA-T2", "Reefer Haulage", "Reefer Haulage"),
		h("HO-8", 310, record.HandoverCustomsHold, "AE-JEA-T2", "Reefer Haulage", "Dubai Customs"),
		h("HO-9", 320, record.HandoverCustomsRelease, "AE-JEA-T2", "Dubai Customs", "Reefer Haulage"),
	}
	hs[1].QCResult, hs[1].DocSHA256 = "pass", strings.Repeat("ab", 32)
	hs[2].QCResult = "fail"
	hs[8].Final = false
	hs[6].TempC = record.Opt[float64]{}
	// Title: the importer owns the goods from intake; it passes to the
	// distributor at the receive.
	hs[0].Owner, hs[5].Owner = "Pharma Importer Pte", "Distributor FZE"
	return hs
}

func readings() []record.Reading {
	var rs []record.Reading
	for i := range 240 {
		for _, d := range []string{"SHP-1-R1", "SHP-1-L2"} {
			rs = append(rs, record.Reading{Shipment: "SHP-1", Device: d, Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * 2 * time.Minute), TempC: 4 + float64(i%7)/10})
		}
	}
	return rs
}

func input() Input {
	agg := NewAggregator(time.Hour)
	for _, r := range readings() {
		agg.Add(&r)
	}
	peak := 9.4
	return Input{
		Shipment: "SHP-1", Handovers: handovers(), Sensors: agg.Intervals(),
		Alerts: []Alert{
			{ID: "a1", Device: "SHP-1-R1", Rule: "single_event_high", Severity: "alarm", State: "cleared", Start: t0.Add(200 * time.Minute), End: t0.Add(260 * time.Minute), PeakC: &peak, Beyond: 40 * time.Minute, Acked: true},
			{ID: "a2", Device: "SHP-1-L2", Rule: "data_gap", Severity: "warning", State: "open", Start: t0.Add(400 * time.Minute)},
		},
		Log:     &Log{Size: 489, Anchors: []Anchor{{Epoch: 3, Size: 480, Root: strings.Repeat("cd", 32), State: "final", ChainID: 1337, Contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3", Tx: "0x" + strings.Repeat("ef", 32), Block: 12}}},
		Created: t0.Add(24 * time.Hour),
	}
}

// TestBuildValidates builds a document with every handover kind, sensor
// intervals and both kinds of exception, and validates it against the
// official schema.
func TestBuildValidates(t *testing.T) {
	doc := Build(input(), DefaultOptions())
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(b); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	// 9 handovers, 8 hours of readings, 2 alerts.
	if n := len(doc.Body.EventList); n != 9+8+2 {
		t.Fatalf("%d events", n)
	}
	for i := 1; i < len(doc.Body.EventList); i++ {
		if doc.Body.EventList[i].EventTime < doc.Body.EventList[i-1].EventTime {
			t.Errorf("event %d at %s before event %d at %s", i, doc.Body.EventList[i].EventTime, i-1, doc.Body.EventList[i-1].EventTime)
		}
	}
	ids := map[string]bool{}
	for _, e := range doc.Body.EventList {
		if ids[e.EventID] {
			t.Errorf("event id %s twice", e.EventID)
		}
		ids[e.EventID] = true
	}
}

// TestHandoverMapping checks each kind's CBV terms (docs/EPCIS.md) and
// that each event names the Merkle leaf of its handover.
func TestHandoverMapping(t *testing.T) {
	hs := handovers()
	doc := Build(Input{Shipment: "SHP-1", Handovers: hs, Created: t0}, DefaultOptions())
	want := []struct{ step, action, disp string }{
		{"commissioning", "ADD", "active"},
		{"inspecting", "OBSERVE", "conformant"},
		{"inspecting", "OBSERVE", "non_conformant"},
		{"departing", "OBSERVE", "in_transit"},
		{"shipping", "OBSERVE", "in_transit"},
		{"receiving", "OBSERVE", "in_progress"},
		{"arriving", "OBSERVE", "in_progress"},
		{"holding", "OBSERVE", "sellable_not_accessible"},
		{"inspecting", "OBSERVE", "conformant"},
	}
	if len(doc.Body.EventList) != len(want) {
		t.Fatalf("%d events for %d handovers", len(doc.Body.EventList), len(hs))
	}
	for i, e := range doc.Body.EventList {
		w := want[i]
		if e.BizStep != w.step || e.Action != w.action || e.Disposition != w.disp {
			t.Errorf("%s (%s): %s %s %s, want %s %s %s", hs[i].ID, hs[i].Kind, e.BizStep, e.Action, e.Disposition, w.step, w.action, w.disp)
		}
		leaf := merkle.LeafHash(hs[i].AppendCanonical(nil))
		if e.LeafHash != hex.EncodeToString(leaf[:]) || e.Handover.ID != hs[i].ID {
			t.Errorf("%s: leaf %s", hs[i].ID, e.LeafHash)
		}
		if e.ReadPoint.ID != "urn:epc:id:sgln:0000000.00000."+hs[i].Site {
			t.Errorf("%s: read point %s", hs[i].ID, e.ReadPoint.ID)
		}
	}
	if p := doc.Body.EventList[7].PersistentDisposition; p == nil || p.Set[0] != "unavailable" {
		t.Errorf("customs hold: persistent disposition %+v", p)
	}
	if p := doc.Body.EventList[8].PersistentDisposition; p == nil || p.Unset[0] != "unavailable" {
		t.Errorf("customs release: persistent disposition %+v", p)
	}
	rel := doc.Body.EventList[4]
	if len(rel.SourceList) != 1 || rel.SourceList[0].ID != Namespace+"party:Qianhai%20Cold%20Chain" || rel.DestinationList[0].Dest != Namespace+"party:Reefer%20Haulage" {
		t.Errorf("release parties %+v → %+v", rel.SourceList, rel.DestinationList)
	}
	// Owning parties: the same before and after at intake; the importer
	// before and the distributor after at the receive that moves title.
	owning := func(ps []Party, dest bool) []string {
		var out []string
		for _, p := range ps {
			if p.Type == "owning_party" {
				out = append(out, map[bool]string{false: p.ID, true: p.Dest}[dest])
			}
		}
		return out
	}
	imp, dist := Namespace+"party:Pharma%20Importer%20Pte", Namespace+"party:Distributor%20FZE"
	if e := doc.Body.EventList[0]; fmt.Sprint(owning(e.SourceList, false), owning(e.DestinationList, true)) != fmt.Sprint([]string{imp}, []string{imp}) {
		t.Errorf("intake owning parties %+v → %+v", e.SourceList, e.DestinationList)
	}
	if e := doc.Body.EventList[5]; fmt.Sprint(owning(e.SourceList, false), owning(e.DestinationList, true)) != fmt.Sprint([]string{imp}, []string{dist}) {
		t.Errorf("receive owning parties %+v → %+v", e.SourceList, e.DestinationList)
	}
	if e := doc.Body.EventList[4]; len(owning(e.SourceList, false)) != 0 {
		t.Errorf("a handover without an owner names one: %+v", e.SourceList)
	}
	if doc.Body.EventList[6].SensorElementList != nil || doc.Body.EventList[0].SensorElementList[0].Report[0].Value == nil {
		t.Error("a handover's temp_c is its sensor report, and only when set")
	}
	// Known sites and parties take their GS1 identifiers.
	o := DefaultOptions()
	o.Sites = map[string]string{"CN-QHBZ-CW1": "urn:epc:id:sgln:0614141.00001.0"}
	o.Parties = map[string]string{"Reefer Haulage": "urn:epc:id:pgln:0614141.00002"}
	doc = Build(Input{Shipment: "SHP-1", Handovers: hs[4:5], Created: t0}, o)
	if e := doc.Body.EventList[0]; e.ReadPoint.ID != "urn:epc:id:sgln:0614141.00001.0" || e.DestinationList[0].Dest != "urn:epc:id:pgln:0614141.00002" {
		t.Errorf("mapped ids not used: %+v %+v", e.ReadPoint, e.DestinationList)
	}
}

// TestSensorsAndExceptions checks the interval summaries and the alert
// reports.
func TestSensorsAndExceptions(t *testing.T) {
	doc := Build(input(), DefaultOptions())
	var intervals, alarms, errs int
	for _, e := range doc.Body.EventList {
		if e.BizStep != "sensor_reporting" {
			continue
		}
		for _, se := range e.SensorElementList {
			r := se.Report[0]
			switch {
			case r.Exception == "ALARM_CONDITION":
				alarms++
				if *r.Value != 9.4 || r.Rule != "single_event_high" || *r.BeyondS != 2400 || se.Metadata.EndTime == "" || !*r.Acked {
					t.Errorf("alarm report %+v %+v", r, se.Metadata)
				}
			case r.Exception == "ERROR_CONDITION":
				errs++
				if r.Value != nil || se.Metadata.EndTime != "" || r.State != "open" {
					t.Errorf("data gap report %+v %+v", r, se.Metadata)
				}
			default:
				intervals++
				// 30 readings an hour per device, temp_c 4.0 … 4.6 in a cycle of 7.
				if r.Count != 30 || *r.MinValue != 4 || *r.MaxValue != 4.6 || *r.MeanValue < 4.2 || *r.MeanValue > 4.4 || r.UOM != "CEL" {
					t.Errorf("%s %s: %+v", se.Metadata.DeviceID, se.Metadata.StartTime, r)
				}
			}
		}
	}
	if intervals != 2*8 || alarms != 1 || errs != 1 {
		t.Errorf("%d interval reports, %d alarms, %d errors", intervals, alarms, errs)
	}
}

// TestAggregatorOrder checks that the order readings arrive in does not
// change the summaries.
func TestAggregatorOrder(t *testing.T) {
	rs := readings()
	a := NewAggregator(15 * time.Minute)
	for i := range rs {
		a.Add(&rs[i])
	}
	want, _ := json.Marshal(a.Intervals())
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		rng.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
		b := NewAggregator(15 * time.Minute)
		for i := range rs {
			b.Add(&rs[i])
		}
		if got, _ := json.Marshal(b.Intervals()); string(got) != string(want) {
			t.Fatal("shuffled readings gave other summaries")
		}
	}
	if n := len(a.Intervals()); n != 2*32 {
		t.Errorf("%d intervals, want 64", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{CompanyPrefix: "12345", Interval: time.Hour},
		{CompanyPrefix: "06141x1", Interval: time.Hour},
		{CompanyPrefix: "0614141", Interval: time.Second},
		{CompanyPrefix: "0614141", Interval: time.Hour, Sites: map[string]string{"A": "not a uri"}},
		{CompanyPrefix: "0614141", Interval: time.Hour, Parties: map[string]string{"A": ""}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v validated", o)
		}
	}
	if got := (Options{CompanyPrefix: "0614141"}).SGLN("SG.PSA/1"); got != "urn:epc:id:sgln:0614141.00000.SG%2EPSA%2F1" {
		t.Errorf("derived SGLN %s", got)
	}
}

// TestCalibrationReference names, in each sensor report's metadata, the
// calibration its device was under: in force, none in force, or no
// records at all.
func TestCalibrationReference(t *testing.T) {
	in := input()
	in.Calibrations = map[string][]device.Calibration{"SHP-1-R1": {{Lab: "SGS", Accreditation: "ISO/IEC 17025", Reference: "PRT",
		CertSHA256: strings.Repeat("ab", 32), CalibratedAt: t0.AddDate(-1, 0, 0), DueAt: t0.Add(4 * time.Hour), UncertaintyC: 0.1}}}
	doc := Build(in, DefaultOptions())
	b, _ := json.Marshal(doc)
	if err := Validate(b); err != nil {
		t.Fatal(err)
	}
	var in4, out4, none int
	for _, e := range doc.Body.EventList {
		if e.BizStep != "sensor_reporting" || e.SensorElementList[0].Report[0].Exception != "" {
			continue
		}
		for _, se := range e.SensorElementList {
			c := se.Metadata.Calibration
			switch {
			case se.Metadata.DeviceID == DeviceURI("SHP-1-L2"):
				if c != nil {
					t.Errorf("L2 has no records, got %+v", c)
				}
				none++
			case c != nil && c.InCalibration && c.Calibration.CertSHA256 == strings.Repeat("ab", 32):
				in4++
			case c != nil && !c.InCalibration && c.Calibration == nil:
				out4++
			default:
				t.Errorf("%s at %s: %+v", se.Metadata.DeviceID, se.Metadata.StartTime, c)
			}
		}
	}
	if in4 != 4 || out4 != 4 || none != 8 {
		t.Errorf("R1 in calibration %d, out %d; L2 without records %d", in4, out4, none)
	}
}
