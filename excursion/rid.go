package excursion

import (
	"math"
	"slices"
	"strconv"
)

// rid is how the detector keeps a reading's id Device:Seq: Seq + 1, so
// that 0 means none. A device's retained readings, its trackers and its
// ledger hold these 8 bytes instead of a string each; the strings are
// made only for the events.
type rid uint64

// ridOf returns seq's rid; ok is false for the one seq that has none.
func ridOf(seq uint64) (rid, bool) {
	if seq == math.MaxUint64 {
		return 0, false
	}
	return rid(seq + 1), true
}

// appendID appends device's reading id of r to b.
func (r rid) appendID(b []byte, device string) []byte {
	b = append(b, device...)
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(r-1), 10)
}

// idOf returns device's reading id of r, "" for none.
func idOf(device string, r rid) string {
	if r == 0 {
		return ""
	}
	return string(r.appendID(make([]byte, 0, len(device)+21), device))
}

// parseID returns the rid of id, a reading id of device; ok is false
// unless id is device:seq with seq in decimal, as idOf writes it.
func parseID(device, id string) (rid, bool) {
	if len(id) < len(device)+2 || id[:len(device)] != device || id[len(device)] != ':' {
		return 0, false
	}
	digits := id[len(device)+1:]
	if len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil { // ParseUint takes no sign
		return 0, false
	}
	return ridOf(seq)
}

// ridLess orders two readings of one device by id, as strings compare:
// the ids share the device prefix, so by the decimal digits of their
// seqs, "10" before "9".
func ridLess(a, b rid) bool {
	if a == 0 || b == 0 {
		return a < b
	}
	x, y := uint64(a-1), uint64(b-1)
	if digits(x) == digits(y) {
		return x < y
	}
	var bx, by [20]byte
	return string(strconv.AppendUint(bx[:0], x, 10)) < string(strconv.AppendUint(by[:0], y, 10))
}

// digits returns the number of decimal digits of v.
func digits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// readings sets ev.Readings to the ids of up to four readings of
// ev.Device, leaving out none and repeats, and keeps them as rids too for
// the ledger.
func (ev *Event) readings(rs ...rid) {
	ev.rids = [4]rid{}
	n := 0
	for _, r := range rs {
		if r != 0 && !slices.Contains(ev.rids[:n], r) {
			ev.rids[n] = r
			n++
		}
	}
	ev.Readings = make([]string, n)
	for i, r := range ev.rids[:n] {
		ev.Readings[i] = idOf(ev.Device, r)
	}
}
