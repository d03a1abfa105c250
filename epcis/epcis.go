// Package epcis speaks GS1 EPCIS 2.0, the standard warehouse systems and
// regulators exchange: it turns a shipment's handovers, readings and
// excursion alerts into an EPCISDocument (JSON-LD) that validates against
// the official schema (Validate), and links it back to the shipment's
// Merkle log and anchor transactions so a consumer can check it.
//
// Like custody/ and excursion/, the core is pure: no I/O, no clock. The
// mapping from our records to EPCIS fields is docs/EPCIS.md.
package epcis

import (
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// ContextURL is the EPCIS 2.0 JSON-LD context.
const ContextURL = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

// Namespace is the IRI our extension members ("cc:…") expand to.
const Namespace = "urn:coldchain:epcis:"

// Options map our identifiers to GS1 ones.
type Options struct {
	// Sites maps a handover's site id to its SGLN URN
	// (urn:epc:id:sgln:…) where the operator knows it.
	Sites map[string]string `yaml:"sites"`
	// Parties maps a party name (a handover's from_party, to_party) to its
	// PGLN URN (urn:epc:id:pgln:…) or another URI.
	Parties map[string]string `yaml:"parties"`
	// CompanyPrefix is the GS1 company prefix SGLNs are derived under for
	// sites not in Sites: urn:epc:id:sgln:{prefix}.{location}.{site id}.
	// The default, 0000000, is a placeholder that says "not a real GLN".
	CompanyPrefix string `yaml:"company_prefix"`
	// Interval is the length of one sensor report of min, max and mean
	// temperature per device (default 1h).
	Interval time.Duration `yaml:"interval"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{CompanyPrefix: "0000000", Interval: time.Hour}
}

// Validate checks the options.
func (o Options) Validate() error {
	if len(o.CompanyPrefix) < 6 || len(o.CompanyPrefix) > 12 || strings.Trim(o.CompanyPrefix, "0123456789") != "" {
		return errorf("epcis.company_prefix must be a GS1 company prefix of 6 to 12 digits, got %q", o.CompanyPrefix)
	}
	if o.Interval < time.Minute || o.Interval > 24*time.Hour {
		return errorf("epcis.interval must be between 1m and 24h, got %v", o.Interval)
	}
	for site, u := range o.Sites {
		if !isURI(u) {
			return errorf("epcis.sites[%s] must be a URI such as urn:epc:id:sgln:0614141.00001.0, got %q", site, u)
		}
	}
	for party, u := range o.Parties {
		if !isURI(u) {
			return errorf("epcis.parties[%s] must be a URI such as urn:epc:id:pgln:0614141.00001, got %q", party, u)
		}
	}
	return nil
}

// Alert is an excursion alert of the shipment in its current state.
type Alert struct {
	ID       string
	Device   string
	Rule     string
	Severity string // warning or alarm
	State    string // open, cleared or retracted
	Start    time.Time
	End      time.Time // zero while open
	PeakC    *float64
	Beyond   time.Duration
	Acked    bool
}

// Anchor is an epoch of the shipment's log and where it stands on chain.
type Anchor struct {
	Epoch    uint64 `json:"epoch"`
	Size     uint64 `json:"size"`
	Root     string `json:"root"`
	State    string `json:"state"`
	ChainID  uint64 `json:"chain_id,omitempty"`
	Contract string `json:"contract,omitempty"`
	Tx       string `json:"tx,omitempty"`
	Block    uint64 `json:"block,omitempty"`
}

// Log is where the shipment's records are proven: its Merkle log's size
// and the epochs that anchor it.
type Log struct {
	Size    uint64   `json:"size"`
	Anchors []Anchor `json:"anchors"`
	// Proof is how to fetch and check the bundle.
	Proof string `json:"proof,omitempty"`
}

// Input is what a document is built from.
type Input struct {
	Shipment  string
	Handovers []record.Handover
	// Sensors is the per-device, per-interval temperature summary
	// (Aggregate).
	Sensors []Interval
	Alerts  []Alert
	Log     *Log
	// Calibrations are the calibration records of the devices, by device
	// id (the device registry); a device absent has none on record.
	Calibrations map[string][]device.Calibration
	// Created is the document's creationDate.
	Created time.Time
}

// CalibrationRef is the calibration a sensor report was taken under: the
// record in force at the start of its interval, or InCalibration false
// when the device has records and none holds then.
type CalibrationRef struct {
	InCalibration bool `json:"in_calibration"`
	*device.Calibration
}

// Document is an EPCISDocument.
type Document struct {
	Context       []any  `json:"@context"`
	Type          string `json:"type"`
	SchemaVersion string `json:"schemaVersion"`
	CreationDate  string `json:"creationDate"`
	Shipment      string `json:"cc:shipment"`
	Log           *Log   `json:"cc:log,omitempty"`
	Body          Body   `json:"epcisBody"`
}

// Body holds the events.
type Body struct {
	EventList []Event `json:"eventList"`
}

// Event is an ObjectEvent: a handover, an interval of sensor data or an
// excursion.
type Event struct {
	Type                  string                 `json:"type"`
	EventTime             string                 `json:"eventTime"`
	EventTimeZoneOffset   string                 `json:"eventTimeZoneOffset"`
	EventID               string                 `json:"eventID"`
	EPCList               []string               `json:"epcList"`
	Action                string                 `json:"action"`
	BizStep               string                 `json:"bizStep"`
	Disposition           string                 `json:"disposition,omitempty"`
	PersistentDisposition *PersistentDisposition `json:"persistentDisposition,omitempty"`
	ReadPoint             *Location              `json:"readPoint,omitempty"`
	BizLocation           *Location              `json:"bizLocation,omitempty"`
	SourceList            []Party                `json:"sourceList,omitempty"`
	DestinationList       []Party                `json:"destinationList,omitempty"`
	SensorElementList     []SensorElement        `json:"sensorElementList,omitempty"`

	// Our members: the handover as recorded, and the leaf of the
	// shipment's Merkle log that proves it.
	Handover *HandoverExt `json:"cc:handover,omitempty"`
	LeafHash string       `json:"cc:leafHash,omitempty"`
}

// HandoverExt is what an EPCIS event has no field for.
type HandoverExt struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Site      string   `json:"site"`
	FromParty string   `json:"from_party"`
	ToParty   string   `json:"to_party"`
	Lat       *float64 `json:"lat,omitempty"`
	Lon       *float64 `json:"lon,omitempty"`
	Seal      string   `json:"seal,omitempty"`
	Note      string   `json:"note,omitempty"`
	QCResult  string   `json:"qc_result,omitempty"`
	DocSHA256 string   `json:"doc_sha256,omitempty"`
	Final     bool     `json:"final,omitempty"`
	Owner     string   `json:"owner,omitempty"`
}

// PersistentDisposition sets or unsets dispositions that stay until
// changed.
type PersistentDisposition struct {
	Set   []string `json:"set,omitempty"`
	Unset []string `json:"unset,omitempty"`
}

// Location is a readPoint or bizLocation.
type Location struct {
	ID string `json:"id"`
}

// Party is an entry of a sourceList or destinationList.
type Party struct {
	Type string `json:"type"`
	ID   string `json:"source,omitempty"`
	Dest string `json:"destination,omitempty"`
}

// SensorElement is one device's report.
type SensorElement struct {
	Metadata SensorMetadata `json:"sensorMetadata"`
	Report   []SensorReport `json:"sensorReport"`
}

// SensorMetadata says which device and over which time.
type SensorMetadata struct {
	DeviceID             string `json:"deviceID,omitempty"`
	StartTime            string `json:"startTime,omitempty"`
	EndTime              string `json:"endTime,omitempty"`
	DataProcessingMethod string `json:"dataProcessingMethod,omitempty"`
	// Calibration is ours: the device's calibration in force, from the
	// device registry; absent for a device with no records.
	Calibration *CalibrationRef `json:"cc:calibration,omitempty"`
}

// SensorReport is one measurement summary or exception.
type SensorReport struct {
	Type      string   `json:"type"`
	Exception string   `json:"exception,omitempty"`
	Time      string   `json:"time,omitempty"`
	Value     *float64 `json:"value,omitempty"`
	MinValue  *float64 `json:"minValue,omitempty"`
	MaxValue  *float64 `json:"maxValue,omitempty"`
	MeanValue *float64 `json:"meanValue,omitempty"`
	UOM       string   `json:"uom,omitempty"`
	// Our members: how many readings, and for an exception the alert.
	Count    int    `json:"cc:count,omitempty"`
	AlertID  string `json:"cc:alertID,omitempty"`
	Rule     string `json:"cc:rule,omitempty"`
	Severity string `json:"cc:severity,omitempty"`
	State    string `json:"cc:state,omitempty"`
	BeyondS  *int64 `json:"cc:beyondS,omitempty"`
	Acked    *bool  `json:"cc:acknowledged,omitempty"`
}

// The processing methods named in sensorMetadata.
const (
	methodInterval = Namespace + "interval-min-max-mean"
	methodDetector = Namespace + "excursion-detector"
)

// mapping is how a handover kind reads in CBV terms.
type mapping struct {
	bizStep     string
	action      string
	disposition string
	persistent  *PersistentDisposition
}

// kinds maps every handover kind (docs/EPCIS.md).
var kinds = map[record.HandoverKind]mapping{
	record.HandoverIntake:         {"commissioning", "ADD", "active", nil},
	record.HandoverQCCheckpoint:   {"inspecting", "OBSERVE", "", nil}, // conformant or non_conformant by qc_result
	record.HandoverRelease:        {"shipping", "OBSERVE", "in_transit", nil},
	record.HandoverReceive:        {"receiving", "OBSERVE", "in_progress", nil},
	record.HandoverDepart:         {"departing", "OBSERVE", "in_transit", nil},
	record.HandoverArrive:         {"arriving", "OBSERVE", "in_progress", nil},
	record.HandoverCustomsHold:    {"holding", "OBSERVE", "sellable_not_accessible", &PersistentDisposition{Set: []string{"unavailable"}}},
	record.HandoverCustomsRelease: {"inspecting", "OBSERVE", "conformant", &PersistentDisposition{Unset: []string{"unavailable"}}},
}

// Build returns the shipment's document: one event per handover, one per
// interval with sensor data, one per excursion alert, in time order.
func Build(in Input, o Options) Document {
	doc := Document{
		Context:       []any{ContextURL, map[string]string{"cc": Namespace}},
		Type:          "EPCISDocument",
		SchemaVersion: "2.0",
		CreationDate:  stamp(in.Created),
		Shipment:      in.Shipment,
		Log:           in.Log,
		Body:          Body{EventList: []Event{}},
	}
	epc := []string{ShipmentURI(in.Shipment)}
	type timed struct {
		t time.Time
		e Event
	}
	var evs []timed
	owner := "" // the owning party so far, in device-time order
	for i := range in.Handovers {
		h := &in.Handovers[i]
		evs = append(evs, timed{h.Time, handoverEvent(h, owner, epc, o)})
		if h.Owner != "" {
			owner = h.Owner
		}
	}
	for _, iv := range groupIntervals(in.Sensors) {
		evs = append(evs, timed{iv.last, intervalEvent(in.Shipment, iv, epc, in.Calibrations)})
	}
	for _, a := range in.Alerts {
		evs = append(evs, timed{a.Start, alertEvent(in.Shipment, a, epc)})
	}
	// Stable by time: handovers, then intervals, then alerts at one instant.
	sortStable(evs, func(a, b timed) int { return a.t.Compare(b.t) })
	for _, e := range evs {
		doc.Body.EventList = append(doc.Body.EventList, e.e)
	}
	return doc
}

// handoverEvent maps one handover; owner is the owning party before it
// (the latest earlier handover's owner), "" when none was recorded.
func handoverEvent(h *record.Handover, owner string, epc []string, o Options) Event {
	m := kinds[h.Kind]
	loc := &Location{ID: o.SGLN(h.Site)}
	e := Event{
		Type: "ObjectEvent", EventTime: stamp(h.Time), EventTimeZoneOffset: "+00:00",
		EventID: Namespace + "handover:" + esc(h.Shipment) + ":" + esc(h.ID),
		EPCList: epc, Action: m.action, BizStep: m.bizStep, Disposition: m.disposition,
		PersistentDisposition: m.persistent, ReadPoint: loc, BizLocation: loc,
		Handover: &HandoverExt{ID: h.ID, Kind: h.Kind.String(), Site: h.Site, FromParty: h.FromParty, ToParty: h.ToParty,
			Seal: h.Seal, Note: h.Note, QCResult: h.QCResult, DocSHA256: h.DocSHA256, Final: h.Final, Owner: h.Owner},
	}
	if h.Kind == record.HandoverQCCheckpoint {
		e.Disposition = "conformant"
		if h.QCResult == "fail" {
			e.Disposition = "non_conformant"
		}
	}
	if h.Lat.Set {
		e.Handover.Lat = &h.Lat.V
	}
	if h.Lon.Set {
		e.Handover.Lon = &h.Lon.V
	}
	// Who had it and who has it: possessing parties. A transfer moves
	// possession; the other kinds record it with the holder.
	switch h.Kind {
	case record.HandoverRelease, record.HandoverReceive, record.HandoverIntake, record.HandoverCustomsHold, record.HandoverCustomsRelease:
		e.SourceList = []Party{{Type: "possessing_party", ID: o.Party(h.FromParty)}}
		e.DestinationList = []Party{{Type: "possessing_party", Dest: o.Party(h.ToParty)}}
	}
	// Who owns it: the owning party before (the source) and after (the
	// destination); the same party when title did not change.
	if h.Owner != "" {
		before := owner
		if before == "" {
			before = h.Owner
		}
		e.SourceList = append(e.SourceList, Party{Type: "owning_party", ID: o.Party(before)})
		e.DestinationList = append(e.DestinationList, Party{Type: "owning_party", Dest: o.Party(h.Owner)})
	}
	if h.TempC.Set {
		v := h.TempC.V
		e.SensorElementList = []SensorElement{{
			// Measured by the site at the handover, not by a registered device.
			Metadata: SensorMetadata{StartTime: stamp(h.Time), EndTime: stamp(h.Time)},
			Report:   []SensorReport{{Type: "Temperature", Time: stamp(h.Time), Value: &v, UOM: "CEL"}},
		}}
	}
	leaf := merkle.LeafHash(h.AppendCanonical(nil))
	e.LeafHash = hex.EncodeToString(leaf[:])
	return e
}

// interval is every device's summary over one interval.
type interval struct {
	start, end, last time.Time
	devs             []Interval
}

func groupIntervals(ivs []Interval) []interval {
	var out []interval
	idx := map[time.Time]int{}
	for _, iv := range ivs {
		i, ok := idx[iv.Start]
		if !ok {
			i = len(out)
			idx[iv.Start] = i
			out = append(out, interval{start: iv.Start, end: iv.End})
		}
		out[i].devs = append(out[i].devs, iv)
		if iv.Last.After(out[i].last) {
			out[i].last = iv.Last
		}
	}
	sortStable(out, func(a, b interval) int { return a.start.Compare(b.start) })
	for i := range out {
		sortStable(out[i].devs, func(a, b Interval) int { return strings.Compare(a.Device, b.Device) })
	}
	return out
}

func intervalEvent(shipment string, iv interval, epc []string, cals map[string][]device.Calibration) Event {
	e := Event{
		Type: "ObjectEvent", EventTime: stamp(iv.last), EventTimeZoneOffset: "+00:00",
		EventID: Namespace + "sensors:" + esc(shipment) + ":" + strconv.FormatInt(iv.start.Unix(), 10) + "-" + strconv.FormatInt(iv.end.Unix(), 10),
		EPCList: epc, Action: "OBSERVE", BizStep: "sensor_reporting",
	}
	for _, d := range iv.devs {
		lo, hi, mean := d.Min, d.Max, d.Mean
		e.SensorElementList = append(e.SensorElementList, SensorElement{
			Metadata: SensorMetadata{DeviceID: DeviceURI(d.Device), StartTime: stamp(d.Start), EndTime: stamp(d.End), DataProcessingMethod: methodInterval,
				Calibration: calibrationAt(cals[d.Device], d.Start)},
			Report: []SensorReport{{Type: "Temperature", MinValue: &lo, MaxValue: &hi, MeanValue: &mean, UOM: "CEL", Count: d.Count}},
		})
	}
	return e
}

func alertEvent(shipment string, a Alert, epc []string) Event {
	r := SensorReport{Type: "Temperature", Exception: "ALARM_CONDITION", Time: stamp(a.Start), UOM: "CEL",
		AlertID: a.ID, Rule: a.Rule, Severity: a.Severity, State: a.State, Acked: &a.Acked}
	if a.Rule == "data_gap" {
		// Not a temperature out of bounds: the sensor said nothing.
		r.Exception, r.UOM = "ERROR_CONDITION", ""
	}
	if a.PeakC != nil {
		v := *a.PeakC
		r.Value = &v
	}
	if a.Beyond > 0 {
		s := int64(a.Beyond / time.Second)
		r.BeyondS = &s
	}
	md := SensorMetadata{DeviceID: DeviceURI(a.Device), StartTime: stamp(a.Start), DataProcessingMethod: methodDetector}
	if !a.End.IsZero() {
		md.EndTime = stamp(a.End)
	}
	return Event{
		Type: "ObjectEvent", EventTime: stamp(a.Start), EventTimeZoneOffset: "+00:00",
		EventID: Namespace + "alert:" + esc(shipment) + ":" + esc(a.ID),
		EPCList: epc, Action: "OBSERVE", BizStep: "sensor_reporting",
		SensorElementList: []SensorElement{{Metadata: md, Report: []SensorReport{r}}},
	}
}

// calibrationAt is the calibration in force at t among cals (the latest
// whose window holds t); nil when there are no records.
func calibrationAt(cals []device.Calibration, t time.Time) *CalibrationRef {
	if len(cals) == 0 {
		return nil
	}
	var in *device.Calibration
	for i := range cals {
		c := &cals[i]
		if !t.Before(c.CalibratedAt) && t.Before(c.DueAt) && (in == nil || c.CalibratedAt.After(in.CalibratedAt)) {
			in = c
		}
	}
	return &CalibrationRef{InCalibration: in != nil, Calibration: in}
}

// SGLN returns site's SGLN: from Sites, else derived under CompanyPrefix
// with the site id as the extension.
func (o Options) SGLN(site string) string {
	if u, ok := o.Sites[site]; ok {
		return u
	}
	prefix := o.CompanyPrefix
	if prefix == "" {
		prefix = DefaultOptions().CompanyPrefix
	}
	// The company prefix and location reference are 12 digits together.
	return "urn:epc:id:sgln:" + prefix + "." + strings.Repeat("0", max(0, 12-len(prefix))) + "." + gs3a3(site)
}

// Party returns a party's URI: from Parties, else ours.
func (o Options) Party(name string) string {
	if u, ok := o.Parties[name]; ok {
		return u
	}
	return Namespace + "party:" + esc(name)
}

// ShipmentURI is the EPC of a shipment in our documents.
func ShipmentURI(id string) string { return Namespace + "shipment:" + esc(id) }

// DeviceURI is a device's deviceID in our documents.
func DeviceURI(id string) string { return Namespace + "device:" + esc(id) }

// esc percent-encodes s for a URN component.
func esc(s string) string { return url.PathEscape(s) }

// gs3a3 escapes s for an EPC URN component: letters, digits and - _ stay,
// everything else is %-encoded.
func gs3a3(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func isURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != ""
}
