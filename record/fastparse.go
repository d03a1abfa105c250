package record

import (
	"encoding/base64"
	"strconv"
	"unsafe"
)

// fastReading decodes a reading's canonical encoding as AppendCanonical
// writes it: members in their fixed order, ASCII strings without escapes,
// numbers in ECMAScript form. Every consumer of the journal decodes every
// reading, so this is worth its own path. It reports false, having maybe
// filled part of r, for anything else (an ext object, an escape, a value
// out of range, a byte it does not expect), and ParseReading then runs the
// general decoder, which decides and explains. Whatever it accepts, the
// general decoder accepts with the same result (TestFastReadingMatches,
// FuzzFastReading).
func fastReading(b []byte, r *Reading) bool {
	p := fastParser{b: b}
	if !p.byte('{') {
		return false
	}
	if !p.optFloat("battery_v", &r.BatteryV, 0, 100) {
		return false
	}
	if !p.member("device") || !p.id(&r.Device) {
		return false
	}
	if p.member("door_open") {
		if !p.boolean(&r.DoorOpen.V) {
			return false
		}
		r.DoorOpen.Set = true
	}
	if p.member("ext") {
		return false // vendor members: the general decoder
	}
	if !p.optFloat("lat", &r.Lat, -90, 90) || !p.optFloat("lon", &r.Lon, -180, 180) {
		return false
	}
	if p.member("probe") {
		v, ok := p.str()
		if !ok {
			return false
		}
		if r.Probe = Probe(enumIndex(probeNames[:], string(v))); r.Probe == 0 {
			return false
		}
	}
	if p.member("reefer") {
		if !p.reefer(&r.Reefer) {
			return false
		}
	}
	if !p.optFloat("rh", &r.RH, 0, 100) {
		return false
	}
	if !p.member("seq") || !p.uint(&r.Seq) {
		return false
	}
	if !p.member("shipment") || !p.id(&r.Shipment) {
		return false
	}
	if p.member("sig") {
		v, ok := p.str()
		if !ok || len(v) != base64.StdEncoding.EncodedLen(SigSize) {
			return false
		}
		sig := make([]byte, base64.StdEncoding.DecodedLen(len(v)))
		n, err := base64.StdEncoding.Strict().Decode(sig, v)
		if err != nil || n != SigSize {
			return false
		}
		r.Sig = sig[:n:n]
	}
	if !p.member("temp_c") || !p.float(&r.TempC, -100, 100) {
		return false
	}
	if !p.member("ts") {
		return false
	}
	ts, ok := p.str()
	if !ok {
		return false
	}
	if r.Time, ok = parseRFC3339(ts); !ok {
		return false
	}
	if !p.member("type") {
		return false
	}
	if v, ok := p.str(); !ok || string(v) != "reading" {
		return false
	}
	if !p.member("v") || !p.lit("1") {
		return false
	}
	return p.byte('}') && p.i == len(p.b)
}

func (p *fastParser) reefer(r *Reefer) bool {
	if !p.byte('{') {
		return false
	}
	p.first = true
	any := false
	if p.member("mode") {
		v, ok := p.str()
		if !ok {
			return false
		}
		if r.Mode = Mode(enumIndex(modeNames[:], string(v))); r.Mode == 0 {
			return false
		}
		any = true
	}
	for _, f := range []struct {
		name string
		v    *Opt[float64]
	}{{"return_c", &r.ReturnC}, {"setpoint_c", &r.SetpointC}, {"supply_c", &r.SupplyC}} {
		if !p.optFloat(f.name, f.v, -100, 100) {
			return false
		}
		any = any || f.v.Set
	}
	// An empty reefer object is never written: the general decoder decides.
	if !any || !p.byte('}') {
		return false
	}
	p.first = false
	return true
}

type fastParser struct {
	b     []byte
	i     int
	first bool // no member read yet in the current object
}

func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		if c == '{' {
			p.first = true
		}
		return true
	}
	return false
}

func (p *fastParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// member consumes `"name":` (after a comma unless it is the object's
// first member) if it comes next.
func (p *fastParser) member(name string) bool {
	i := p.i
	if !p.first {
		if i >= len(p.b) || p.b[i] != ',' {
			return false
		}
		i++
	}
	n := len(name)
	if len(p.b)-i < n+3 || p.b[i] != '"' || string(p.b[i+1:i+1+n]) != name || p.b[i+1+n] != '"' || p.b[i+2+n] != ':' {
		return false
	}
	p.i, p.first = i+n+3, false
	return true
}

// str reads a string of printable ASCII without escapes.
func (p *fastParser) str() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			return p.b[start:j], true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false
		}
	}
	return nil, false
}

func (p *fastParser) id(dst *string) bool {
	v, ok := p.str()
	if !ok || len(v) == 0 || len(v) > 64 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	*dst = string(v)
	return true
}

func (p *fastParser) boolean(dst *bool) bool {
	switch {
	case p.lit("true"):
		*dst = true
	case p.lit("false"):
		*dst = false
	default:
		return false
	}
	return true
}

func (p *fastParser) uint(dst *uint64) bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - start
	if n == 0 || n > 20 || n > 1 && p.b[start] == '0' ||
		n == 20 && string(p.b[start:p.i]) > "18446744073709551615" {
		return false // past uint64: the general decoder explains
	}
	var v uint64
	for _, c := range p.b[start:p.i] {
		v = v*10 + uint64(c-'0')
	}
	*dst = v
	return true
}

// float reads a number in the form AppendNumber writes,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?(e[+-][0-9]+)?, within [lo, hi].
func (p *fastParser) float(dst *float64, lo, hi float64) bool {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	if !p.digits() || p.i-intStart > 1 && p.b[intStart] == '0' {
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return false
		}
	}
	if p.i < len(p.b) && p.b[p.i] == 'e' {
		p.i++
		if p.i >= len(p.b) || p.b[p.i] != '+' && p.b[p.i] != '-' {
			return false
		}
		p.i++
		if !p.digits() {
			return false
		}
	}
	tok := p.b[start:p.i]
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 64)
	if err != nil || v < lo || v > hi {
		return false
	}
	*dst = v
	return true
}

func (p *fastParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

func (p *fastParser) optFloat(name string, dst *Opt[float64], lo, hi float64) bool {
	if !p.member(name) {
		return true
	}
	if !p.float(&dst.V, lo, hi) {
		return false
	}
	dst.Set = true
	return true
}
