package epcis

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/coldchain/coldchain/record"
)

// Captured is one ObjectEvent of a captured document as the handover it
// becomes, in our wire format (docs/RECORDS.md), for the same validation
// as every other handover.
type Captured struct {
	EventID  string          `json:"event_id"`
	Shipment string          `json:"shipment"`
	ID       string          `json:"handover"`
	JSON     json.RawMessage `json:"-"`
}

// CaptureError is an event the mapping cannot read.
type CaptureError struct {
	Index   int    `json:"index"` // in epcisBody.eventList
	EventID string `json:"event_id,omitempty"`
	Detail  string `json:"detail"`
}

func (e CaptureError) Error() string {
	if e.EventID != "" {
		return fmt.Sprintf("event %d (%s): %s", e.Index, e.EventID, e.Detail)
	}
	return fmt.Sprintf("event %d: %s", e.Index, e.Detail)
}

// captureEvent is what capture reads of an event.
type captureEvent struct {
	Type                  string                 `json:"type"`
	EventTime             string                 `json:"eventTime"`
	EventID               string                 `json:"eventID"`
	EPCList               []string               `json:"epcList"`
	BizStep               string                 `json:"bizStep"`
	Disposition           string                 `json:"disposition"`
	PersistentDisposition *PersistentDisposition `json:"persistentDisposition"`
	ReadPoint             *Location              `json:"readPoint"`
	BizLocation           *Location              `json:"bizLocation"`
	SourceList            []Party                `json:"sourceList"`
	DestinationList       []Party                `json:"destinationList"`
	SensorElementList     []SensorElement        `json:"sensorElementList"`
	Handover              *HandoverExt           `json:"cc:handover"`
}

// stepKinds reads a CBV bizStep as a handover kind; inspecting is a QC
// checkpoint unless it lifts a customs hold (persistentDisposition unset
// unavailable).
var stepKinds = map[string]record.HandoverKind{
	"commissioning": record.HandoverIntake,
	"inspecting":    record.HandoverQCCheckpoint,
	"shipping":      record.HandoverRelease,
	"receiving":     record.HandoverReceive,
	"departing":     record.HandoverDepart,
	"arriving":      record.HandoverArrive,
	"holding":       record.HandoverCustomsHold,
}

// Result is what Capture made of a document.
type Result struct {
	// Events are the handovers, in document order.
	Events []Captured `json:"events"`
	// Ignored are the sensor_reporting events: sensor data is ingested as
	// readings (MQTT, POST /v1/readings), not from EPCIS.
	Ignored []CaptureError `json:"ignored,omitempty"`
	// Bad are the events the mapping cannot read, each with why.
	Bad []CaptureError `json:"bad,omitempty"`
}

// Capture reads an EPCIS 2.0 document from a warehouse system: it must
// validate against the schema (else the error wraps ErrInvalid), and each
// ObjectEvent becomes a handover of the shipment its epcList names
// (urn:coldchain:epcis:shipment:{id}), or of shipment when its epcList
// names none and shipment is not empty. Events the mapping cannot read
// are listed, each with why; the caller refuses the document when any is.
func Capture(doc []byte, shipment string, o Options) (Result, error) {
	var res Result
	if err := Validate(doc); err != nil {
		return res, err
	}
	var d struct {
		Type string `json:"type"`
		Body struct {
			EventList []json.RawMessage `json:"eventList"`
		} `json:"epcisBody"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return res, errorf("not an EPCIS document: %v", err)
	}
	if d.Type != "EPCISDocument" {
		return res, errorf("type is %q: capture takes an EPCISDocument", d.Type)
	}
	if len(d.Body.EventList) == 0 {
		return res, errorf("epcisBody.eventList is empty: nothing to capture")
	}
	for i, raw := range d.Body.EventList {
		var e captureEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			res.Bad = append(res.Bad, CaptureError{Index: i, Detail: err.Error()})
			continue
		}
		if e.Type == "ObjectEvent" && e.BizStep == "sensor_reporting" && e.Handover == nil {
			res.Ignored = append(res.Ignored, CaptureError{Index: i, EventID: e.EventID,
				Detail: "sensor data is ingested as readings (MQTT or POST /v1/readings), not from EPCIS"})
			continue
		}
		c, err := captureOne(&e, shipment, o)
		if err != "" {
			res.Bad = append(res.Bad, CaptureError{Index: i, EventID: e.EventID, Detail: err})
			continue
		}
		res.Events = append(res.Events, c)
	}
	return res, nil
}

// wireHandover is a handover in our wire format: the members an EPCIS
// event carries as cc:handover, and those it has fields for.
type wireHandover struct {
	HandoverExt
	Shipment string   `json:"shipment"`
	TS       string   `json:"ts"`
	TempC    *float64 `json:"temp_c,omitempty"`
}

// captureOne maps one event, or says why it cannot.
func captureOne(e *captureEvent, shipment string, o Options) (Captured, string) {
	if e.Type != "ObjectEvent" {
		return Captured{}, fmt.Sprintf("a %s: only ObjectEvents become handovers", e.Type)
	}
	if e.EventID == "" {
		return Captured{}, "eventID is required: it is what makes a resent event count once"
	}
	ship := shipment
	for _, epc := range e.EPCList {
		if s, ok := strings.CutPrefix(epc, Namespace+"shipment:"); ok {
			if u, err := url.PathUnescape(s); err == nil {
				ship = u
			}
		}
	}
	if ship == "" {
		return Captured{}, "epcList names no shipment: add " + Namespace + "shipment:{id}, or capture with ?shipment={id}"
	}
	h := wireHandover{Shipment: ship, TS: e.EventTime}
	if x := e.Handover; x != nil {
		// Our own export: the handover as recorded.
		h.HandoverExt = *x
	} else {
		kind, why := o.kindOf(e)
		if why != "" {
			return Captured{}, why
		}
		h.Kind = kind.String()
		loc := e.BizLocation
		if loc == nil {
			loc = e.ReadPoint
		}
		if loc == nil {
			return Captured{}, "bizLocation or readPoint is required: the site of the handover"
		}
		site, ok := o.siteOf(loc.ID)
		if !ok {
			return Captured{}, fmt.Sprintf("site %s is not one this gateway knows: add it to epcis.sites", loc.ID)
		}
		h.Site = site
		from, to := o.partyOf(e.SourceList, false), o.partyOf(e.DestinationList, true)
		switch {
		case from == "" && to == "":
			return Captured{}, "sourceList and destinationList name no possessing_party (nor owning_party): who gave and who took"
		case from == "":
			from = to
		case to == "":
			to = from
		}
		h.FromParty, h.ToParty = from, to
		h.Owner = o.ownerOf(e.DestinationList, true)
		if h.Owner == "" {
			h.Owner = o.ownerOf(e.SourceList, false)
		}
		if kind == record.HandoverQCCheckpoint {
			switch e.Disposition {
			case "conformant":
				h.QCResult = "pass"
			case "non_conformant":
				h.QCResult = "fail"
			default:
				return Captured{}, fmt.Sprintf("an inspecting event needs disposition conformant or non_conformant (the QC result), got %q", e.Disposition)
			}
		}
		h.ID = eventHandoverID(e.EventID, ship)
	}
	t, why := temperature(e.SensorElementList)
	if why != "" {
		return Captured{}, why
	}
	h.TempC = t
	b, err := json.Marshal(h)
	if err != nil {
		return Captured{}, err.Error()
	}
	return Captured{EventID: e.EventID, Shipment: ship, ID: h.ID, JSON: b}, ""
}

// kindOf reads the event's bizStep, bare or as a CBV URI.
func (o Options) kindOf(e *captureEvent) (record.HandoverKind, string) {
	step := e.BizStep
	for _, p := range []string{"urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", "https://gs1.org/voc/BizStep-"} {
		step = strings.TrimPrefix(step, p)
	}
	k, ok := stepKinds[step]
	if !ok {
		return 0, fmt.Sprintf("bizStep %q is not a custody step: commissioning, inspecting, shipping, receiving, departing, arriving or holding", e.BizStep)
	}
	if k == record.HandoverQCCheckpoint && e.PersistentDisposition != nil {
		for _, u := range e.PersistentDisposition.Unset {
			if u == "unavailable" {
				return record.HandoverCustomsRelease, ""
			}
		}
	}
	return k, ""
}

// siteOf maps an SGLN (or other location URI) back to a site id: from
// Sites, or the extension of an SGLN derived under CompanyPrefix.
func (o Options) siteOf(loc string) (string, bool) {
	for site, u := range o.Sites {
		if u == loc {
			return site, true
		}
	}
	prefix := o.CompanyPrefix
	if prefix == "" {
		prefix = DefaultOptions().CompanyPrefix
	}
	base := "urn:epc:id:sgln:" + prefix + "." + strings.Repeat("0", max(0, 12-len(prefix))) + "."
	if ext, ok := strings.CutPrefix(loc, base); ok && ext != "" {
		if s, err := url.PathUnescape(ext); err == nil && record.ValidID(s) {
			return s, true
		}
	}
	return "", false
}

// partyOf picks the possessing party of a list, else the owning party,
// and maps its URI back to a name.
func (o Options) partyOf(list []Party, dest bool) string {
	pick := ""
	for _, want := range []string{"possessing_party", "owning_party"} {
		for _, p := range list {
			id := p.ID
			if dest {
				id = p.Dest
			}
			if p.Type == want && id != "" && pick == "" {
				pick = id
			}
		}
	}
	if pick == "" {
		return ""
	}
	return o.nameOf(pick)
}

// nameOf maps a party URI back to the name it stands for: the name of
// epcis.parties, ours (urn:coldchain:epcis:party:{name}), else the URI.
func (o Options) nameOf(uri string) string {
	for name, u := range o.Parties {
		if u == uri {
			return name
		}
	}
	if s, ok := strings.CutPrefix(uri, Namespace+"party:"); ok {
		if u, err := url.PathUnescape(s); err == nil {
			return u
		}
	}
	return uri
}

// ownerOf returns the owning party a list names, mapped back to a name.
func (o Options) ownerOf(list []Party, dest bool) string {
	for _, p := range list {
		id := p.ID
		if dest {
			id = p.Dest
		}
		if p.Type == "owning_party" && id != "" {
			return o.nameOf(id)
		}
	}
	return ""
}

// eventHandoverID is the handover id of a foreign event: ours when the
// eventID is one of our handover URNs, else derived from the eventID so a
// resent event is the same record.
func eventHandoverID(eventID, shipment string) string {
	if s, ok := strings.CutPrefix(eventID, Namespace+"handover:"+esc(shipment)+":"); ok {
		if u, err := url.PathUnescape(s); err == nil && record.ValidID(u) {
			return u
		}
	}
	sum := sha256.Sum256([]byte(eventID))
	return "EPCIS-" + hex.EncodeToString(sum[:16])
}

// temperature reads the handover's own temperature: a sensorReport of
// type Temperature with a value in CEL (or FAH, converted).
func temperature(els []SensorElement) (*float64, string) {
	for _, se := range els {
		for _, r := range se.Report {
			if r.Type != "Temperature" && r.Type != "gs1:Temperature" || r.Value == nil || r.Exception != "" {
				continue
			}
			v := *r.Value
			switch r.UOM {
			case "CEL", "":
			case "FAH":
				v = roundTo((v-32)*5/9, 100)
			default:
				return nil, fmt.Sprintf("temperature in %q: give it in CEL or FAH", r.UOM)
			}
			return &v, ""
		}
	}
	return nil, ""
}
