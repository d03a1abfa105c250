package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Alert is one transition of an excursion alert: what the detector decided
// (opened, cleared, reopened, revised, retracted) or what a person did
// (acknowledged). Alert transitions are records: they are stored in the
// alerts stream in canonical form and join their shipment's log.
//
// Every member but By, Comment and At of an acknowledgement is a pure
// function of the shipment's readings, so replaying the readings yields the
// same bytes.
type Alert struct {
	ID       string // the alert's id, the same for all its transitions
	Shipment string
	Device   string
	Rule     string // pre_alarm_high, single_event_low, data_gap, mkt, …
	Severity string // warning or alarm
	// Transition is opened, cleared, reopened, revised, retracted or
	// acknowledged.
	Transition string
	Start      time.Time // device time the condition began
	End        time.Time // device time the figures run to
	At         time.Time // device time of the deciding reading; gateway time for acknowledged
	PeakC      Opt[float64]
	Beyond     time.Duration // device time beyond the threshold within [Start, End)
	MKTC       Opt[float64]  // the device's MKT at the transition
	Readings   []string      // ids of the readings that caused it
	Suppressed []string      // suppression windows that held it: defrost, door_open
	// Late is set when a late, out-of-order reading decided the transition;
	// LateBy is then how far, in device time, that reading was behind the
	// newest reading of its device.
	Late   bool
	LateBy time.Duration
	// By and Comment are set on an acknowledgement.
	By      string
	Comment string
}

// EventID is the transition's identity: the alert id, the transition and
// the moment it was decided. It is the JetStream message id, so a replay
// publishes nothing twice.
func (a *Alert) EventID() string {
	return a.ID + ":" + a.Transition + ":" + strconv.FormatInt(a.At.UnixNano(), 10)
}

// AppendCanonical appends the alert's canonical encoding (docs/RECORDS.md:
// RFC 8785 JCS of the normalised object, with "type":"alert" and "v":1).
// Durations are written in seconds.
func (a *Alert) AppendCanonical(b []byte) []byte {
	b = append(b, '{')
	b = appendKey(b, "at")
	b = AppendTime(b, a.At)
	b = appendKey(b, "beyond_s")
	b = AppendNumber(b, a.Beyond.Seconds())
	if a.By != "" {
		b = appendKey(b, "by")
		b = AppendString(b, a.By)
	}
	if a.Comment != "" {
		b = appendKey(b, "comment")
		b = AppendString(b, a.Comment)
	}
	b = appendKey(b, "detected_late")
	b = strconv.AppendBool(b, a.Late)
	b = appendKey(b, "device")
	b = AppendString(b, a.Device)
	b = appendKey(b, "end")
	b = AppendTime(b, a.End)
	b = appendKey(b, "id")
	b = AppendString(b, a.ID)
	if a.Late {
		b = appendKey(b, "late_by_s")
		b = AppendNumber(b, a.LateBy.Seconds())
	}
	b = appendOptNumber(b, "mkt_c", a.MKTC)
	b = appendOptNumber(b, "peak_c", a.PeakC)
	b = appendKey(b, "readings")
	b = appendStrings(b, a.Readings)
	b = appendKey(b, "rule")
	b = AppendString(b, a.Rule)
	if a.Severity != "" {
		b = appendKey(b, "severity")
		b = AppendString(b, a.Severity)
	}
	b = appendKey(b, "shipment")
	b = AppendString(b, a.Shipment)
	b = appendKey(b, "start")
	b = AppendTime(b, a.Start)
	if len(a.Suppressed) > 0 {
		b = appendKey(b, "suppressed")
		b = appendStrings(b, a.Suppressed)
	}
	b = appendKey(b, "transition")
	b = AppendString(b, a.Transition)
	b = appendKey(b, "type")
	b = append(b, `"alert"`...)
	b = appendKey(b, "v")
	b = strconv.AppendInt(b, Version, 10)
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

// alertJSON mirrors the canonical members for decoding.
type alertJSON struct {
	At           time.Time `json:"at"`
	BeyondS      float64   `json:"beyond_s"`
	By           string    `json:"by"`
	Comment      string    `json:"comment"`
	DetectedLate bool      `json:"detected_late"`
	Device       string    `json:"device"`
	End          time.Time `json:"end"`
	ID           string    `json:"id"`
	LateByS      *float64  `json:"late_by_s"`
	MKTC         *float64  `json:"mkt_c"`
	PeakC        *float64  `json:"peak_c"`
	Readings     []string  `json:"readings"`
	Rule         string    `json:"rule"`
	Severity     string    `json:"severity"`
	Shipment     string    `json:"shipment"`
	Start        time.Time `json:"start"`
	Suppressed   []string  `json:"suppressed"`
	Transition   string    `json:"transition"`
	Type         string    `json:"type"`
	V            int       `json:"v"`
}

// ParseAlert decodes an alert transition from its canonical encoding. The
// gateway wrote it, so the decoding is for reading it back, not for
// validating untrusted input.
func ParseAlert(canonical []byte) (Alert, error) {
	var j alertJSON
	dec := json.NewDecoder(bytes.NewReader(canonical))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Alert{}, fmt.Errorf("alert: %w", err)
	}
	if j.Type != KindAlert.String() || j.V != Version {
		return Alert{}, fmt.Errorf("alert: type %q version %d is not an alert of version %d", j.Type, j.V, Version)
	}
	a := Alert{
		ID: j.ID, Shipment: j.Shipment, Device: j.Device, Rule: j.Rule, Severity: j.Severity, Transition: j.Transition,
		Start: j.Start.UTC(), End: j.End.UTC(), At: j.At.UTC(), Beyond: seconds(j.BeyondS),
		Readings: j.Readings, Suppressed: j.Suppressed, Late: j.DetectedLate, By: j.By, Comment: j.Comment,
	}
	if j.PeakC != nil {
		a.PeakC = Some(*j.PeakC)
	}
	if j.MKTC != nil {
		a.MKTC = Some(*j.MKTC)
	}
	if j.LateByS != nil {
		a.LateBy = seconds(*j.LateByS)
	}
	if a.Readings == nil {
		a.Readings = []string{}
	}
	return a, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
