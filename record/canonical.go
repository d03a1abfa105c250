package record

import (
	"crypto/sha256"
	"encoding/base64"
	"math"
	"strconv"
	"time"
)

// The canonical encoding, version 1, is the RFC 8785 JSON Canonicalization
// Scheme (JCS) applied to the record's normalised JSON object (docs/RECORDS.md):
//
//   - members sorted by key (all keys are ASCII, so byte order is UTF-16
//     order, RFC 8785 §3.2.3), no insignificant whitespace;
//   - every record carries "type" ("reading" or "handover") and "v" (1);
//   - optional members that were not given are omitted, never null;
//   - ts is UTC, "Z", with the fraction of a second only as long as needed;
//   - numbers as ECMAScript Number.prototype.toString (RFC 8785 §3.2.2.3),
//     seq as an integer;
//   - strings with the minimal escaping of RFC 8785 §3.2.2.2.

// AppendCanonical appends the reading's canonical encoding to b.
func (r *Reading) AppendCanonical(b []byte) []byte { return r.appendCanonical(b, true) }

// AppendSigned appends the bytes a signing device signs: the reading's
// canonical encoding without the sig member (docs/RECORDS.md).
func (r *Reading) AppendSigned(b []byte) []byte { return r.appendCanonical(b, false) }

func (r *Reading) appendCanonical(b []byte, withSig bool) []byte {
	b = append(b, '{')
	if r.BatteryV.Set {
		b = appendKey(b, "battery_v")
		b = AppendNumber(b, r.BatteryV.V)
	}
	b = appendKey(b, "device")
	b = AppendString(b, r.Device)
	if r.DoorOpen.Set {
		b = appendKey(b, "door_open")
		b = strconv.AppendBool(b, r.DoorOpen.V)
	}
	if len(r.Ext) > 0 {
		b = appendKey(b, "ext")
		b = append(b, '{')
		for i, e := range r.Ext {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, e.Key)
			b = append(b, ':')
			switch e.Type {
			case ExtString:
				b = AppendString(b, e.Str)
			case ExtNumber:
				b = AppendNumber(b, e.Num)
			case ExtBool:
				b = strconv.AppendBool(b, e.Bool)
			}
		}
		b = append(b, '}')
	}
	b = appendOptNumber(b, "lat", r.Lat)
	b = appendOptNumber(b, "lon", r.Lon)
	if r.Probe != 0 {
		b = appendKey(b, "probe")
		b = AppendString(b, r.Probe.String())
	}
	if !r.Reefer.IsZero() {
		b = appendKey(b, "reefer")
		b = append(b, '{')
		if r.Reefer.Mode != 0 {
			b = appendKey(b, "mode")
			b = AppendString(b, r.Reefer.Mode.String())
		}
		b = appendOptNumber(b, "return_c", r.Reefer.ReturnC)
		b = appendOptNumber(b, "setpoint_c", r.Reefer.SetpointC)
		b = appendOptNumber(b, "supply_c", r.Reefer.SupplyC)
		b = append(b, '}')
	}
	b = appendOptNumber(b, "rh", r.RH)
	b = appendKey(b, "seq")
	b = strconv.AppendUint(b, r.Seq, 10)
	b = appendKey(b, "shipment")
	b = AppendString(b, r.Shipment)
	if withSig && r.Sig != nil {
		b = appendKey(b, "sig")
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, r.Sig)
		b = append(b, '"')
	}
	b = appendKey(b, "temp_c")
	b = AppendNumber(b, r.TempC)
	b = appendKey(b, "ts")
	b = AppendTime(b, r.Time)
	b = appendKey(b, "type")
	b = append(b, `"reading"`...)
	b = appendKey(b, "v")
	b = strconv.AppendInt(b, Version, 10)
	return append(b, '}')
}

// AppendCanonical appends the handover's canonical encoding to b.
func (h *Handover) AppendCanonical(b []byte) []byte {
	b = append(b, '{')
	// Members in byte order; the ones added with the custody kinds are
	// written only when set, so older records keep their bytes (and
	// their digests and Merkle leaves).
	if h.DocSHA256 != "" {
		b = appendKey(b, "doc_sha256")
		b = AppendString(b, h.DocSHA256)
	}
	if h.Final {
		b = appendKey(b, "final")
		b = append(b, "true"...)
	}
	b = appendKey(b, "from_party")
	b = AppendString(b, h.FromParty)
	b = appendKey(b, "id")
	b = AppendString(b, h.ID)
	b = appendKey(b, "kind")
	b = AppendString(b, h.Kind.String())
	b = appendOptNumber(b, "lat", h.Lat)
	b = appendOptNumber(b, "lon", h.Lon)
	if h.Note != "" {
		b = appendKey(b, "note")
		b = AppendString(b, h.Note)
	}
	if h.Owner != "" {
		b = appendKey(b, "owner")
		b = AppendString(b, h.Owner)
	}
	if h.QCResult != "" {
		b = appendKey(b, "qc_result")
		b = AppendString(b, h.QCResult)
	}
	if h.Seal != "" {
		b = appendKey(b, "seal")
		b = AppendString(b, h.Seal)
	}
	b = appendKey(b, "shipment")
	b = AppendString(b, h.Shipment)
	b = appendKey(b, "site")
	b = AppendString(b, h.Site)
	b = appendOptNumber(b, "temp_c", h.TempC)
	b = appendKey(b, "to_party")
	b = AppendString(b, h.ToParty)
	b = appendKey(b, "ts")
	b = AppendTime(b, h.Time)
	b = appendKey(b, "type")
	b = append(b, `"handover"`...)
	b = appendKey(b, "v")
	b = strconv.AppendInt(b, Version, 10)
	return append(b, '}')
}

// Digest is the SHA-256 of a canonical encoding: the content hash that tells
// a resend (same digest) from a conflicting record with the same id.
func Digest(canonical []byte) [32]byte { return sha256.Sum256(canonical) }

// appendKey appends `"key":`, preceded by a comma unless it opens an object.
func appendKey(b []byte, key string) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendOptNumber(b []byte, key string, v Opt[float64]) []byte {
	if !v.Set {
		return b
	}
	b = appendKey(b, key)
	return AppendNumber(b, v.V)
}

// AppendTime appends t in UTC as an RFC 3339 string with a "Z" offset and
// the fraction of a second trimmed of trailing zeros.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendNumber appends f as ECMAScript's Number.prototype.toString does
// (RFC 8785 §3.2.2.3). f must be finite; -0 is written as 0.
func AppendNumber(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0')
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		panic("record: AppendNumber of a non-finite value")
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Go writes e-07 where ECMAScript writes e-7.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// AppendString appends s as a JSON string with RFC 8785 §3.2.2.2 escaping:
// '"' and '\\' escaped, control characters as \b \t \n \f \r or \u00xx, and
// everything else as literal UTF-8. s must be valid UTF-8.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
