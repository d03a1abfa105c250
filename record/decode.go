package record

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Scope is what the transport already says about a message's records: the
// shipment and device that an MQTT topic names. An empty member constrains
// nothing; a record that repeats a scoped member must agree with it.
type Scope struct {
	Shipment string
	Device   string
}

// Limits bound what the decoders accept.
type Limits struct {
	// MaxRecords is the largest batch array accepted.
	MaxRecords int
	// MaxFuture is how far a record's ts may be ahead of the gateway clock.
	MaxFuture time.Duration
	// Earliest is the earliest plausible device time: a device whose clock
	// was never set reports 1970 or 2000.
	Earliest time.Time
	// KnownDevice, when set, reports whether a device is registered with
	// the gateway; readings of other devices are rejected.
	KnownDevice func(device string) bool
	// UnknownDeviceHint tells the sender of an unknown device's reading
	// what to do; empty, "ask the operator to add it to ingest.devices".
	UnknownDeviceHint string
	// DeviceKey, when set, returns a device's registered Ed25519 public
	// key, or nil if it registered none. A device with a key must sign
	// every reading (else ReasonUnsigned); a signature must verify (else
	// ReasonBadSignature). When DeviceKey is nil, signatures are decoded
	// and kept but not checked.
	DeviceKey func(device string) ed25519.PublicKey
}

func (l *Limits) unknownHint() string {
	if l.UnknownDeviceHint != "" {
		return l.UnknownDeviceHint
	}
	return "ask the operator to add it to ingest.devices"
}

// UnknownDeviceDetail is the detail of an unknown_device refusal of
// device under l.
func (l Limits) UnknownDeviceDetail(device string) string {
	return quote(device) + " is not registered with this gateway: " + l.unknownHint()
}

// DefaultLimits returns the limits the product promises: 10,000 records a
// message, ts at most 5 minutes in the future, nothing before 2000.
func DefaultLimits() Limits {
	return Limits{
		MaxRecords: 10000,
		MaxFuture:  5 * time.Minute,
		Earliest:   time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// Reject is one record of a message that failed validation.
type Reject struct {
	Err *Error
	// Raw is the record's original bytes; it aliases the payload.
	Raw []byte
}

// DecodeReadings decodes a payload that holds one reading object or an array
// of them. Valid readings come back in payload order; each invalid one comes
// back as a Reject with its original bytes, so one bad reading never costs
// the good ones. A non-nil *Error means the message as a whole is unusable
// (malformed JSON, too many records) and nothing in it was accepted. now is
// the gateway clock, used only for the future-timestamp check.
func DecodeReadings(payload []byte, scope Scope, lim Limits, now time.Time) ([]Reading, []Reject, *Error) {
	return decodeBatch(payload, lim, func(s *scanner, idx int, r *Reading) *Error {
		d := item{s: s, idx: idx, lim: lim, now: now}
		d.reading(r, scope)
		return d.err
	})
}

// DecodeHandovers is DecodeReadings for custody handovers.
func DecodeHandovers(payload []byte, scope Scope, lim Limits, now time.Time) ([]Handover, []Reject, *Error) {
	return decodeBatch(payload, lim, func(s *scanner, idx int, h *Handover) *Error {
		d := item{s: s, idx: idx, lim: lim, now: now}
		d.handover(h, scope)
		return d.err
	})
}

// ParseReading decodes a reading from its canonical encoding, as stored in
// JetStream. It applies the same validation as the wire decoder except the
// clock checks, which held when the reading was accepted.
func ParseReading(canonical []byte) (Reading, error) {
	var r Reading
	if fastReading(canonical, &r) {
		return r, nil
	}
	r = Reading{}
	err := parseCanonical(canonical, func(d *item) { d.reading(&r, Scope{}) })
	return r, err
}

// ParseHandover decodes a handover from its canonical encoding.
func ParseHandover(canonical []byte) (Handover, error) {
	var h Handover
	err := parseCanonical(canonical, func(d *item) { d.handover(&h, Scope{}) })
	return h, err
}

func parseCanonical(b []byte, fn func(*item)) error {
	s := &scanner{b: b}
	d := item{s: s, idx: -1, canonical: true}
	fn(&d)
	s.ws()
	if s.fatal == nil && s.i != len(s.b) {
		s.syntax("trailing data after the record")
	}
	if s.fatal != nil {
		return s.fatal
	}
	if d.err != nil {
		return d.err
	}
	return nil
}

func decodeBatch[T any](payload []byte, lim Limits, one func(*scanner, int, *T) *Error) ([]T, []Reject, *Error) {
	s := &scanner{b: payload}
	var (
		recs    []T
		rejects []Reject
	)
	decodeOne := func(idx int) {
		s.ws()
		start := s.i
		var rec T
		err := one(s, idx, &rec)
		if s.fatal != nil {
			return
		}
		if err != nil {
			rejects = append(rejects, Reject{Err: err, Raw: payload[start:s.i]})
			return
		}
		recs = append(recs, rec)
	}
	switch c := s.peek(); c {
	case '[':
		// A burst is usually whole: size the slice once.
		recs = make([]T, 0, min(estimateElems(payload), lim.MaxRecords))
		s.array(func(i int) {
			if i >= lim.MaxRecords {
				s.fatal = &Error{Reason: ReasonTooManyRecords, Index: -1,
					Detail: fmt.Sprintf("a message may hold at most %d records: split the batch", lim.MaxRecords)}
				s.i = len(s.b)
				return
			}
			if s.peek() != '{' {
				start := s.i
				c := s.peek()
				s.skip()
				if s.fatal == nil {
					rejects = append(rejects, Reject{Raw: payload[start:s.i], Err: &Error{Reason: ReasonWrongType, Index: i,
						Detail: "each element of the array must be a record object, found " + describe(c)}})
				}
				return
			}
			decodeOne(i)
		})
	case '{':
		decodeOne(-1)
	case 0:
		return nil, nil, &Error{Reason: ReasonMalformedJSON, Index: -1, Detail: "empty payload: send a JSON object or an array of objects"}
	default:
		return nil, nil, &Error{Reason: ReasonMalformedJSON, Index: -1,
			Detail: "expected a JSON object or an array of objects, found " + describeAt(s.b[s.i:])}
	}
	if s.fatal == nil {
		s.ws()
		if s.i != len(s.b) {
			s.syntax("trailing data after the JSON value")
		}
	}
	if s.fatal != nil {
		return nil, nil, s.fatal
	}
	return recs, rejects, nil
}

// estimateElems guesses the number of records in an array payload from its
// size, to size the result slice once; a reading is about 100 bytes or more.
func estimateElems(b []byte) int { return len(b)/100 + 1 }

// item decodes and validates one record object, keeping the first semantic
// error while the scanner goes on checking syntax to the object's end.
type item struct {
	s         *scanner
	err       *Error
	idx       int
	lim       Limits
	now       time.Time
	canonical bool
}

func (d *item) fail(reason Reason, field, format string, args ...any) {
	if d.err == nil {
		d.err = &Error{Reason: reason, Field: field, Index: d.idx, Detail: fmt.Sprintf(format, args...)}
	}
}

// wrongType records a type error for field and consumes the value.
func (d *item) wrongType(field, want string) {
	c := d.s.peek()
	if c == 'n' {
		d.fail(ReasonWrongType, field, "must be %s, got null: omit the member instead", want)
	} else {
		d.fail(ReasonWrongType, field, "must be %s, got %s", want, describe(c))
	}
	d.s.skip()
}

func (d *item) float(field string, lo, hi float64, unit string) (float64, bool) {
	c := d.s.peek()
	if c != '-' && (c < '0' || c > '9') {
		if d.s.nonFinite() {
			d.fail(ReasonNotFinite, field, "NaN and Infinity are not numbers: send a finite value or omit the member")
			return 0, false
		}
		d.wrongType(field, "a number")
		return 0, false
	}
	if c == '-' && d.s.nonFinite() {
		d.fail(ReasonNotFinite, field, "NaN and Infinity are not numbers: send a finite value or omit the member")
		return 0, false
	}
	tok := d.s.number()
	if d.s.fatal != nil {
		return 0, false
	}
	// The string header aliases the payload only for the duration of the
	// call; the error (which would retain it) is discarded.
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil || math.IsInf(v, 0) {
		d.fail(ReasonOutOfRange, field, "must be between %g and %g%s, got %s", lo, hi, unit, string(tok))
		return 0, false
	}
	if v < lo || v > hi {
		d.fail(ReasonOutOfRange, field, "must be between %g and %g%s, got %s", lo, hi, unit, string(tok))
		return 0, false
	}
	if v == 0 {
		v = 0 // Normalise -0.
	}
	return v, true
}

func (d *item) str(field string) (string, bool) {
	if d.s.peek() != '"' {
		d.wrongType(field, "a string")
		return "", false
	}
	b := d.s.str()
	if d.s.fatal != nil {
		return "", false
	}
	return string(b), true
}

func (d *item) boolean(field string) (bool, bool) {
	switch d.s.peek() {
	case 't':
		if d.s.literal("true") {
			return true, true
		}
	case 'f':
		if d.s.literal("false") {
			return false, true
		}
	default:
		d.wrongType(field, "true or false")
		return false, false
	}
	d.s.syntax("bad literal")
	return false, false
}

func (d *item) uint(field string) (uint64, bool) {
	c := d.s.peek()
	if c != '-' && (c < '0' || c > '9') {
		d.wrongType(field, "a non-negative integer")
		return 0, false
	}
	tok := d.s.number()
	if d.s.fatal != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(unsafe.String(unsafe.SliceData(tok), len(tok)), 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			d.fail(ReasonOutOfRange, field, "must be at most %d, got %s", uint64(math.MaxUint64), string(tok))
		} else {
			d.fail(ReasonWrongType, field, "must be a non-negative integer, got %s", string(tok))
		}
		return 0, false
	}
	return v, true
}

// id reads an identifier: 1–64 characters of [A-Za-z0-9_-], safe as an MQTT
// topic level and a NATS subject token.
func (d *item) id(field string) (string, bool) {
	v, ok := d.str(field)
	if !ok {
		return "", false
	}
	if !ValidID(v) {
		d.fail(ReasonInvalidID, field, "must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-', got %s", quote(v))
		return "", false
	}
	return v, true
}

// ValidID reports whether s is a valid shipment, device, site or handover id.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// text reads free text of at most max bytes; newlines and tabs are allowed
// only where multiline is true.
func (d *item) text(field string, minLen, max int, multiline bool) (string, bool) {
	v, ok := d.str(field)
	if !ok {
		return "", false
	}
	if len(v) < minLen || len(v) > max {
		d.fail(ReasonBadValue, field, "must be %d to %d bytes long, got %d", minLen, max, len(v))
		return "", false
	}
	for _, r := range v {
		if r < 0x20 && !(multiline && (r == '\n' || r == '\t')) || r == 0x7f {
			d.fail(ReasonBadValue, field, "must not contain control characters")
			return "", false
		}
	}
	return v, true
}

func (d *item) timestamp(field string) (time.Time, bool) {
	if d.s.peek() != '"' {
		d.wrongType(field, "a string")
		return time.Time{}, false
	}
	raw := d.s.str()
	if d.s.fatal != nil {
		return time.Time{}, false
	}
	t, ok := parseRFC3339(raw)
	if ok && d.canonical {
		return t, true
	}
	var err error
	if !ok {
		t, err = time.Parse(time.RFC3339Nano, string(raw))
	}
	if err != nil {
		v := string(raw)
		if _, err2 := time.Parse("2006-01-02T15:04:05.999999999", v); err2 == nil {
			d.fail(ReasonBadTimestamp, field, "%s has no UTC offset: append Z or ±hh:mm (RFC 3339), e.g. %sZ", quote(v), v)
		} else {
			d.fail(ReasonBadTimestamp, field, "must be an RFC 3339 timestamp with an offset, e.g. 2026-03-01T08:00:00Z or 2026-03-01T16:00:00+08:00, got %s", quote(v))
		}
		return time.Time{}, false
	}
	t = t.UTC()
	if d.canonical {
		return t, true
	}
	if t.Before(d.lim.Earliest) {
		d.fail(ReasonBadTimestamp, field, "%s is before %s: the device clock is probably not set", quote(string(raw)), d.lim.Earliest.Format(time.DateOnly))
		return time.Time{}, false
	}
	if ahead := t.Sub(d.now); ahead > d.lim.MaxFuture {
		d.fail(ReasonFutureTimestamp, field, "%s is %s ahead of the gateway clock (at most %s allowed): check the device clock",
			quote(string(raw)), ahead.Round(time.Second), d.lim.MaxFuture)
		return time.Time{}, false
	}
	return t, true
}

// scoped reads an id member that the transport may already name, checking
// that both agree.
func (d *item) scoped(field, scope string) (string, bool) {
	v, ok := d.id(field)
	if ok && scope != "" && v != scope {
		d.fail(ReasonTopicMismatch, field, "is %s but the topic names %s", quote(v), quote(scope))
		return "", false
	}
	return v, ok
}

// header reads the "type" and "v" members of a canonical encoding.
func (d *item) header(key string, want Kind) {
	switch key {
	case "type":
		if v, ok := d.str("type"); ok && v != want.String() {
			d.fail(ReasonBadValue, "type", "is %s, expected %s", quote(v), quote(want.String()))
		}
	case "v":
		if v, ok := d.uint("v"); ok && v != Version {
			d.fail(ReasonBadValue, "v", "encoding version %d is not supported (this build reads %d)", v, Version)
		}
	}
}

// seen tracks which members an object had, to catch duplicates and
// missing required members. Bit i is member i of the record's field list.
type seen uint32

func (d *item) member(set *seen, fields []string, key []byte) (int, bool) {
	for i, f := range fields {
		if f == string(key) {
			if *set&(1<<i) != 0 {
				d.fail(ReasonDuplicateField, f, "appears twice in the object")
				d.s.skip()
				return -1, false
			}
			*set |= 1 << i
			return i, true
		}
	}
	d.fail(ReasonUnknownField, string(key), "is not a member of this record (%s)", strings.Join(fields, ", "))
	d.s.skip()
	return -1, false
}

func (d *item) require(set seen, fields []string, required ...int) {
	for _, i := range required {
		if set&(1<<i) == 0 {
			d.fail(ReasonMissingField, fields[i], "is required")
			return
		}
	}
}

var readingFields = []string{"shipment", "device", "seq", "ts", "temp_c", "rh", "lat", "lon", "door_open", "battery_v", "probe", "reefer", "ext", "sig", "type", "v"}

const (
	rShipment = iota
	rDevice
	rSeq
	rTs
	rTemp
	rRH
	rLat
	rLon
	rDoor
	rBattery
	rProbe
	rReefer
	rExt
	rSig
	rType
	rV
)

func (d *item) reading(r *Reading, scope Scope) {
	var set seen
	fields := readingFields
	if !d.canonical {
		fields = fields[:rType]
	}
	d.s.object(func(key []byte) {
		i, ok := d.member(&set, fields, key)
		if !ok {
			return
		}
		switch i {
		case rShipment:
			r.Shipment, _ = d.scoped("shipment", scope.Shipment)
		case rDevice:
			r.Device, _ = d.scoped("device", scope.Device)
		case rSeq:
			r.Seq, _ = d.uint("seq")
		case rTs:
			r.Time, _ = d.timestamp("ts")
		case rTemp:
			r.TempC, _ = d.float("temp_c", -100, 100, " °C")
		case rRH:
			r.RH.V, r.RH.Set = d.float("rh", 0, 100, " %")
		case rLat:
			r.Lat.V, r.Lat.Set = d.float("lat", -90, 90, "°")
		case rLon:
			r.Lon.V, r.Lon.Set = d.float("lon", -180, 180, "°")
		case rDoor:
			r.DoorOpen.V, r.DoorOpen.Set = d.boolean("door_open")
		case rBattery:
			r.BatteryV.V, r.BatteryV.Set = d.float("battery_v", 0, 100, " V")
		case rProbe:
			if v, ok := d.str("probe"); ok {
				if r.Probe = Probe(enumIndex(probeNames[:], v)); r.Probe == 0 {
					d.fail(ReasonBadValue, "probe", "must be \"air\" or \"buffered\", got %s", quote(v))
				}
			}
		case rReefer:
			d.reefer(&r.Reefer)
		case rExt:
			r.Ext = d.ext()
		case rSig:
			r.Sig = d.sig()
		case rType, rV:
			d.header(fields[i], KindReading)
		}
	})
	if d.s.fatal != nil {
		return
	}
	if set&(1<<rShipment) == 0 && scope.Shipment != "" {
		r.Shipment, set = scope.Shipment, set|1<<rShipment
	}
	if set&(1<<rDevice) == 0 && scope.Device != "" {
		r.Device, set = scope.Device, set|1<<rDevice
	}
	req := []int{rShipment, rDevice, rSeq, rTs, rTemp}
	if d.canonical {
		req = append(req, rType, rV)
	}
	d.require(set, fields, req...)
	if d.err == nil && !d.canonical && d.lim.KnownDevice != nil && !d.lim.KnownDevice(r.Device) {
		d.fail(ReasonUnknownDevice, "device", "%s is not registered with this gateway: %s", quote(r.Device), d.lim.unknownHint())
	}
	if d.err == nil && !d.canonical && d.lim.DeviceKey != nil {
		d.checkSig(r, d.lim.DeviceKey(r.Device))
	}
}

// SigSize is the size of a reading's Ed25519 signature.
const SigSize = ed25519.SignatureSize

// sig decodes a signature: base64 of SigSize bytes, standard (RFC 4648 §4,
// padded, as the canonical encoding writes it) or URL-safe unpadded (§5).
func (d *item) sig() []byte {
	v, ok := d.str("sig")
	if !ok {
		return nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil && !d.canonical {
		b, err = base64.RawURLEncoding.Strict().DecodeString(v)
	}
	if err != nil || len(b) != SigSize {
		d.fail(ReasonBadSignature, "sig", "must be the base64 of a %d-byte Ed25519 signature, got %d characters", SigSize, len(v))
		return nil
	}
	return b
}

// checkSig checks a decoded reading's signature against its device's
// registered key (nil: the device registered none).
func (d *item) checkSig(r *Reading, key ed25519.PublicKey) {
	switch {
	case key == nil && r.Sig == nil:
	case key == nil:
		d.fail(ReasonBadSignature, "sig", "device %s registered no signing key, so its signature cannot be checked: register the public key (coldchain devices add-key %s --pubkey FILE) or send readings without sig", r.Device, r.Device)
	case r.Sig == nil:
		d.fail(ReasonUnsigned, "sig", "device %s registered a signing key: every reading it sends must carry sig, the Ed25519 signature of its canonical bytes (docs/RECORDS.md)", r.Device)
	default:
		var buf [512]byte
		if !verifySig(key, r.AppendSigned(buf[:0]), r.Sig) {
			d.fail(ReasonBadSignature, "sig", "does not verify with device %s's registered key: the reading was altered after signing, or signed by another key or over other bytes than its canonical encoding without sig (docs/RECORDS.md)", r.Device)
		}
	}
}

var reeferFields = []string{"setpoint_c", "supply_c", "return_c", "mode"}

func (d *item) reefer(r *Reefer) {
	if d.s.peek() != '{' {
		d.wrongType("reefer", "an object")
		return
	}
	var set seen
	d.s.object(func(key []byte) {
		i, ok := d.member(&set, reeferFields, key)
		if !ok {
			if d.err != nil && d.err.Field == string(key) {
				d.err.Field = "reefer." + d.err.Field
			}
			return
		}
		switch i {
		case 0:
			r.SetpointC.V, r.SetpointC.Set = d.float("reefer.setpoint_c", -100, 100, " °C")
		case 1:
			r.SupplyC.V, r.SupplyC.Set = d.float("reefer.supply_c", -100, 100, " °C")
		case 2:
			r.ReturnC.V, r.ReturnC.Set = d.float("reefer.return_c", -100, 100, " °C")
		case 3:
			if v, ok := d.str("reefer.mode"); ok {
				if r.Mode = Mode(enumIndex(modeNames[:], v)); r.Mode == 0 {
					d.fail(ReasonBadValue, "reefer.mode", "must be one of cooling, defrost, off, pretrip, alarm; got %s", quote(v))
				}
			}
		}
	})
}

// Ext limits: a flat object of at most 32 scalars.
const (
	maxExt       = 32
	maxExtString = 256
)

func validExtKey(k []byte) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (d *item) ext() []Ext {
	if d.s.peek() != '{' {
		d.wrongType("ext", "an object of vendor-specific scalars")
		return nil
	}
	var out []Ext
	d.s.object(func(key []byte) {
		field := "ext." + string(key)
		if !validExtKey(key) {
			d.fail(ReasonBadValue, field, "ext keys must be 1–64 characters of A–Z, a–z, 0–9, '_', '-' or '.'")
			d.s.skip()
			return
		}
		for _, e := range out {
			if e.Key == string(key) {
				d.fail(ReasonDuplicateField, field, "appears twice in the object")
				d.s.skip()
				return
			}
		}
		if len(out) == maxExt {
			d.fail(ReasonBadValue, "ext", "may hold at most %d members", maxExt)
			d.s.skip()
			return
		}
		e := Ext{Key: string(key)}
		ok := false
		switch c := d.s.peek(); {
		case c == '"':
			e.Type = ExtString
			if e.Str, ok = d.str(field); ok && len(e.Str) > maxExtString {
				d.fail(ReasonBadValue, field, "strings in ext may be at most %d bytes", maxExtString)
				ok = false
			}
		case c == 't' || c == 'f':
			e.Type = ExtBool
			e.Bool, ok = d.boolean(field)
		case c == '-' || c >= '0' && c <= '9' || c == 'N' || c == 'I':
			e.Type = ExtNumber
			e.Num, ok = d.float(field, -math.MaxFloat64, math.MaxFloat64, "")
		default:
			d.wrongType(field, "a string, number or boolean (ext is flat)")
		}
		if ok {
			out = append(out, e)
		}
	})
	slices.SortFunc(out, func(a, b Ext) int { return strings.Compare(a.Key, b.Key) })
	return out
}

var handoverFields = []string{"id", "shipment", "ts", "site", "kind", "from_party", "to_party", "lat", "lon", "temp_c", "seal", "note", "qc_result", "doc_sha256", "final", "owner", "type", "v"}

const (
	hID = iota
	hShipment
	hTs
	hSite
	hKind
	hFrom
	hTo
	hLat
	hLon
	hTemp
	hSeal
	hNote
	hQC
	hDoc
	hFinal
	hOwner
	hType
	hV
)

func (d *item) handover(h *Handover, scope Scope) {
	var set seen
	fields := handoverFields
	if !d.canonical {
		fields = fields[:hType]
	}
	d.s.object(func(key []byte) {
		i, ok := d.member(&set, fields, key)
		if !ok {
			return
		}
		switch i {
		case hID:
			h.ID, _ = d.id("id")
		case hShipment:
			h.Shipment, _ = d.scoped("shipment", scope.Shipment)
		case hTs:
			h.Time, _ = d.timestamp("ts")
		case hSite:
			h.Site, _ = d.id("site")
		case hKind:
			if v, ok := d.str("kind"); ok {
				if h.Kind = HandoverKind(enumIndex(handoverKindNames[:], v)); h.Kind == 0 {
					d.fail(ReasonBadValue, "kind", "must be one of %s, got %s", strings.Join(handoverKindNames[1:], ", "), quote(v))
				}
			}
		case hFrom:
			h.FromParty, _ = d.text("from_party", 1, 128, false)
		case hTo:
			h.ToParty, _ = d.text("to_party", 1, 128, false)
		case hLat:
			h.Lat.V, h.Lat.Set = d.float("lat", -90, 90, "°")
		case hLon:
			h.Lon.V, h.Lon.Set = d.float("lon", -180, 180, "°")
		case hTemp:
			h.TempC.V, h.TempC.Set = d.float("temp_c", -100, 100, " °C")
		case hSeal:
			h.Seal, _ = d.text("seal", 1, 64, false)
		case hNote:
			h.Note, _ = d.text("note", 1, 1024, true)
		case hQC:
			if v, ok := d.str("qc_result"); ok {
				if v != "pass" && v != "fail" {
					d.fail(ReasonBadValue, "qc_result", "must be \"pass\" or \"fail\", got %s", quote(v))
				}
				h.QCResult = v
			}
		case hDoc:
			if v, ok := d.str("doc_sha256"); ok {
				if !isHexSHA256(v) {
					d.fail(ReasonBadValue, "doc_sha256", "must be 64 lowercase hex digits (the SHA-256 of the document), got %s", quote(v))
				}
				h.DocSHA256 = v
			}
		case hFinal:
			h.Final, _ = d.boolean("final")
		case hOwner:
			h.Owner, _ = d.text("owner", 1, 128, false)
		case hType, hV:
			d.header(fields[i], KindHandover)
		}
	})
	if d.s.fatal != nil {
		return
	}
	switch {
	case h.Kind == HandoverQCCheckpoint && set&(1<<hQC) == 0:
		d.fail(ReasonMissingField, "qc_result", "is required on a qc_checkpoint: \"pass\" or \"fail\"")
	case h.Kind != 0 && h.Kind != HandoverQCCheckpoint && set&(1<<hQC) != 0:
		d.fail(ReasonBadValue, "qc_result", "goes only with kind qc_checkpoint, not %s", h.Kind)
	case h.Final && h.Kind != HandoverReceive && h.Kind != HandoverArrive:
		d.fail(ReasonBadValue, "final", "marks a receive or arrive at the final site, not a %s", h.Kind)
	}
	if set&(1<<hShipment) == 0 && scope.Shipment != "" {
		h.Shipment, set = scope.Shipment, set|1<<hShipment
	}
	req := []int{hID, hShipment, hTs, hSite, hKind, hFrom, hTo}
	if d.canonical {
		req = append(req, hType, hV)
	}
	d.require(set, fields, req...)
}

// isHexSHA256 reports whether s is 64 lowercase hex digits.
func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// enumIndex returns the position of v among names, whose first entry is the
// unset zero value, or 0 when v is not a name.
func enumIndex(names []string, v string) uint8 {
	if i := slices.Index(names, v); i > 0 {
		return uint8(i)
	}
	return 0
}

// quote quotes a value for an error message, shortened so a hostile value
// cannot bloat logs.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.Quote(s)
}
