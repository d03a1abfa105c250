// Package record holds the records the gateway carries — sensor readings and
// custody handovers — with their strict wire decoding, their validation and
// their canonical byte encoding.
//
// The canonical encoding (docs/RECORDS.md) is what JetStream stores, what the
// Merkle trees hash and what third parties re-verify years later: it never
// changes for a given record version.
package record

import (
	"strconv"
	"time"
)

// Kind tells which record a canonical encoding holds.
type Kind uint8

// Record kinds. The zero value is not a kind.
const (
	KindReading Kind = iota + 1
	KindHandover
	// KindAlert is an excursion alert transition, which joins its
	// shipment's log like any other record.
	KindAlert
	// KindDevice is a device's registry record (serial, model,
	// calibrations) as it stood for a shipment: one in the shipment's log
	// when the device first reports on it and one after each change, so
	// the calibrations a proof shows are anchored with the readings.
	KindDevice
)

// String returns the kind's name as it appears in the canonical "type" member.
func (k Kind) String() string {
	switch k {
	case KindReading:
		return "reading"
	case KindHandover:
		return "handover"
	case KindAlert:
		return "alert"
	case KindDevice:
		return "device"
	}
	return "unknown"
}

// Version is the canonical encoding version written in every record's "v"
// member. A change to the encoding is a new version, never an edit of this one.
const Version = 1

// Opt is an optional scalar: Set reports whether the sender gave a value.
type Opt[T any] struct {
	V   T
	Set bool
}

// Some returns an Opt holding v.
func Some[T any](v T) Opt[T] { return Opt[T]{V: v, Set: true} }

// Probe is where a temperature probe sits. The zero value means not given.
type Probe uint8

// Probe positions.
const (
	ProbeAir Probe = iota + 1
	ProbeBuffered
)

var probeNames = [...]string{ProbeAir: "air", ProbeBuffered: "buffered"}

// String returns the wire name, or "" for an unset probe.
func (p Probe) String() string {
	if int(p) < len(probeNames) {
		return probeNames[p]
	}
	return ""
}

// Mode is a reefer unit's operating mode. The zero value means not given.
type Mode uint8

// Reefer modes.
const (
	ModeCooling Mode = iota + 1
	ModeDefrost
	ModeOff
	ModePretrip
	ModeAlarm
)

var modeNames = [...]string{ModeCooling: "cooling", ModeDefrost: "defrost", ModeOff: "off", ModePretrip: "pretrip", ModeAlarm: "alarm"}

// String returns the wire name, or "" for an unset mode.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return ""
}

// HandoverKind is the custody event a handover records.
type HandoverKind uint8

// Handover kinds. The zero value is not a kind. release and receive keep
// their values: records stored before the others existed decode the same.
const (
	// HandoverRelease: from_party gives custody to to_party.
	HandoverRelease HandoverKind = iota + 1
	// HandoverReceive: to_party takes custody from from_party.
	HandoverReceive
	// HandoverIntake: goods or raw material taken in at a site.
	HandoverIntake
	// HandoverQCCheckpoint: an in-process quality check, with qc_result
	// (pass or fail) and optionally doc_sha256 of its report.
	HandoverQCCheckpoint
	// HandoverDepart: the shipment left a site (a bonded warehouse).
	HandoverDepart
	// HandoverArrive: the shipment reached a site.
	HandoverArrive
	// HandoverCustomsHold: customs stopped the shipment.
	HandoverCustomsHold
	// HandoverCustomsRelease: customs let it go.
	HandoverCustomsRelease
)

var handoverKindNames = [...]string{HandoverRelease: "release", HandoverReceive: "receive", HandoverIntake: "intake",
	HandoverQCCheckpoint: "qc_checkpoint", HandoverDepart: "depart", HandoverArrive: "arrive",
	HandoverCustomsHold: "customs_hold", HandoverCustomsRelease: "customs_release"}

// HandoverKindNames lists the kinds' wire names, in order.
func HandoverKindNames() []string { return append([]string(nil), handoverKindNames[1:]...) }

// String returns the wire name.
func (k HandoverKind) String() string {
	if int(k) < len(handoverKindNames) {
		return handoverKindNames[k]
	}
	return ""
}

// Reefer is the state a refrigerated container's controller reports beside
// the probe temperature. Temperatures are in °C.
type Reefer struct {
	SetpointC Opt[float64]
	SupplyC   Opt[float64]
	ReturnC   Opt[float64]
	Mode      Mode
}

// IsZero reports whether no reefer member was given.
func (r Reefer) IsZero() bool {
	return !r.SetpointC.Set && !r.SupplyC.Set && !r.ReturnC.Set && r.Mode == 0
}

// Ext is one vendor-specific scalar: exactly one of Str, Num or Bool is
// meaningful, as Type says.
type Ext struct {
	Key  string
	Type ExtType
	Str  string
	Num  float64
	Bool bool
}

// ExtType is the JSON type of an Ext value.
type ExtType uint8

// Ext value types.
const (
	ExtString ExtType = iota + 1
	ExtNumber
	ExtBool
)

// Reading is one sensor reading of one device, in device time.
type Reading struct {
	Shipment string
	Device   string
	// Seq increases at the source, per device; with Device it is the
	// reading's identity.
	Seq uint64
	// Time is the device's clock at measurement, normalised to UTC.
	Time time.Time
	// TempC is the probe temperature in °C, in [-100, 100].
	TempC    float64
	RH       Opt[float64] // relative humidity, % in [0, 100]
	Lat      Opt[float64] // WGS 84 degrees in [-90, 90]
	Lon      Opt[float64] // WGS 84 degrees in [-180, 180]
	DoorOpen Opt[bool]
	BatteryV Opt[float64] // volts in [0, 100]
	Probe    Probe
	Reefer   Reefer
	// Ext holds vendor-specific scalars sorted by key.
	Ext []Ext
	// Sig, when set, is the device's Ed25519 signature (SigSize bytes) over
	// the reading's SignedBytes: the canonical encoding without sig.
	Sig []byte
}

// ID returns the reading's identity "device:seq", used as the JetStream
// message id and the dedup key.
func (r *Reading) ID() string {
	b := make([]byte, 0, len(r.Device)+21)
	return string(r.AppendID(b))
}

// AppendID appends the reading's id to b.
func (r *Reading) AppendID(b []byte) []byte {
	b = append(b, r.Device...)
	b = append(b, ':')
	return strconv.AppendUint(b, r.Seq, 10)
}

// Handover is one custody event at a bonded warehouse or terminal.
type Handover struct {
	// ID identifies the handover globally; it is the dedup key.
	ID        string
	Shipment  string
	Time      time.Time
	Site      string
	Kind      HandoverKind
	FromParty string
	ToParty   string
	Lat       Opt[float64]
	Lon       Opt[float64]
	TempC     Opt[float64] // measured at the handover, °C in [-100, 100]
	Seal      string       // optional seal number
	Note      string       // optional free text
	// QCResult is a qc_checkpoint's outcome: "pass" or "fail" (required
	// there, refused on other kinds).
	QCResult string
	// DocSHA256 is the hex SHA-256 of a document the event refers to (a QC
	// report, a customs declaration); the document stays with its owner.
	DocSHA256 string
	// Final marks a receive or arrive at the shipment's final site: a
	// device's readings after it are flagged by the custody checks.
	Final bool
	// Owner is the party that owns the goods (holds title) after the
	// event, where the sender knows it; possession is FromParty/ToParty.
	Owner string
}
