package record

import (
	"strconv"
	"strings"
)

// Reason classifies why input was rejected. Its String form is a stable
// snake_case token: it names the dead-letter subject
// (coldchain.deadletters.{reason}) and the metrics label.
type Reason uint8

// Rejection reasons. The zero value is not a reason.
const (
	ReasonMalformedJSON Reason = iota + 1
	ReasonWrongType
	ReasonUnknownField
	ReasonDuplicateField
	ReasonMissingField
	ReasonBadTimestamp
	ReasonFutureTimestamp
	ReasonNotFinite
	ReasonOutOfRange
	ReasonBadValue
	ReasonInvalidID
	ReasonTopicMismatch
	ReasonUnknownTopic
	ReasonUnknownDevice
	ReasonOversize
	ReasonTooManyRecords
	ReasonConflict
	// ReasonStoreRejected is a stored record the time-series store refused
	// for good (InfluxDB answered 400, e.g. a field type conflict): it stays
	// in the journal, but not in the history.
	ReasonStoreRejected
	// ReasonNotGranted is a record for a shipment the sender's org was
	// not granted (an API token's org; see coldchain shipments grant).
	ReasonNotGranted
	// ReasonBadSignature is a reading whose sig does not verify with its
	// device's registered Ed25519 key, or a signed reading of a device
	// with no registered key.
	ReasonBadSignature
	// ReasonUnsigned is an unsigned reading of a device that registered a
	// signing key: it must sign every reading.
	ReasonUnsigned
	// ReasonInvalidEPCIS is an EPCIS document posted to capture that fails
	// the EPCIS 2.0 schema, or has an event the capture mapping cannot
	// read as a handover (docs/EPCIS.md).
	ReasonInvalidEPCIS
	// ReasonUnknownShipment is a captured event of a shipment the gateway
	// holds no record of.
	ReasonUnknownShipment
)

var reasonNames = [...]string{
	ReasonMalformedJSON:   "malformed_json",
	ReasonWrongType:       "wrong_type",
	ReasonUnknownField:    "unknown_field",
	ReasonDuplicateField:  "duplicate_field",
	ReasonMissingField:    "missing_field",
	ReasonBadTimestamp:    "bad_timestamp",
	ReasonFutureTimestamp: "future_timestamp",
	ReasonNotFinite:       "not_finite",
	ReasonOutOfRange:      "out_of_range",
	ReasonBadValue:        "bad_value",
	ReasonInvalidID:       "invalid_id",
	ReasonTopicMismatch:   "topic_mismatch",
	ReasonUnknownTopic:    "unknown_topic",
	ReasonUnknownDevice:   "unknown_device",
	ReasonOversize:        "oversize",
	ReasonTooManyRecords:  "too_many_records",
	ReasonConflict:        "conflict",
	ReasonStoreRejected:   "store_rejected",
	ReasonNotGranted:      "not_granted",
	ReasonBadSignature:    "bad_signature",
	ReasonUnsigned:        "unsigned",
	ReasonInvalidEPCIS:    "invalid_epcis",
	ReasonUnknownShipment: "unknown_shipment",
}

// Reasons lists every reason, in order, for metrics that pre-register labels.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonNames)-1)
	for r := ReasonMalformedJSON; int(r) < len(reasonNames); r++ {
		out = append(out, r)
	}
	return out
}

// String returns the reason's token.
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// ParseReason returns the reason whose token is s.
func ParseReason(s string) (Reason, bool) {
	for i, n := range reasonNames {
		if i > 0 && n == s {
			return Reason(i), true
		}
	}
	return 0, false
}

// Error says why one record, or a whole message, was rejected, in terms the
// sender can act on.
type Error struct {
	Reason Reason
	// Field is the JSON path of the offending member ("temp_c",
	// "reefer.mode", "ext.door"), or "" when the message as a whole is at
	// fault.
	Field string
	// Index is the record's position in a batch array, or -1 for a single
	// object or the whole message.
	Index int
	// Detail is a sentence for a person: what was wrong and what is expected.
	Detail string
}

// Error formats as "[index 3] temp_c: out_of_range: must be ...".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		b.WriteString("[index ")
		b.WriteString(strconv.Itoa(e.Index))
		b.WriteString("] ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason.String())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}
