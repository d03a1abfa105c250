package excursion

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// snapshotMagic starts every snapshot; the digit is the format version.
const snapshotMagic = "CCX1"

// MarshalBinary encodes the state of every device so that a restarted
// gateway resumes exactly where it stopped: a single-event timer that was
// half-way through its delay still alarms at the right device time. It
// stores each device's replay checkpoint, retained readings, published
// alerts and pending Advance, plus a fingerprint of the profile and Config;
// the live state is recomputed on restore by replaying the readings.
// Devices are written in name order, so equal states encode equally.
func (d *Detector) MarshalBinary() ([]byte, error) {
	w := &writer{b: append([]byte(snapshotMagic), d.fp[:]...)}
	// Reading ids are stored as strings, Device:Seq, as they always were.
	names := make([]string, 0, len(d.devs))
	for name := range d.devs {
		names = append(names, name)
	}
	slices.Sort(names)
	w.u(uint64(len(names)))
	for _, name := range names {
		dv := d.devs[name]
		w.dev = name
		w.s(name)
		w.i(dv.silence)
		w.state(&dv.base)
		w.u(uint64(dv.n))
		for i := 0; i < dv.n; i++ {
			w.entry(dv.at(i))
		}
		w.u(uint64(len(dv.ledger)))
		for i := range dv.ledger {
			ev := dv.ledger[i].event(name)
			w.event(&ev)
		}
	}
	return w.b, nil
}

// UnmarshalBinary replaces the detector's devices with those of a snapshot
// from MarshalBinary. It returns ErrSnapshotMismatch if the snapshot was
// taken with another profile or Config and ErrSnapshot if data is not a
// well-formed snapshot; on error the detector is unchanged.
func (d *Detector) UnmarshalBinary(data []byte) error {
	if !strings.HasPrefix(string(data), snapshotMagic) || len(data) < len(snapshotMagic)+32 {
		return fmt.Errorf("%w: bad header", ErrSnapshot)
	}
	if string(data[len(snapshotMagic):len(snapshotMagic)+32]) != string(d.fp[:]) {
		return ErrSnapshotMismatch
	}
	r := &reader{b: data[len(snapshotMagic)+32:]}
	n := r.count(8)
	devs := make(map[string]*device, n)
	for ; n > 0 && r.err == nil; n-- {
		name := r.s()
		if _, dup := devs[name]; dup || name == "" {
			r.fail("device %q", name)
		}
		dv := &device{ring: make([]entry, d.c.history)}
		r.dev = name
		dv.silence = r.i()
		r.state(&dv.base, d.c)
		dv.n = r.count(8)
		if dv.n > d.c.history || (dv.n == 0 && r.err == nil) {
			r.fail("device %q holds %d readings", name, dv.n)
		}
		for i := 0; i < dv.n && r.err == nil; i++ {
			e := r.entry()
			if i > 0 && !dv.ring[i-1].before(&e) || i == 0 && dv.base.has && !dv.base.last.before(&e) {
				r.fail("device %q: readings out of order", name)
			}
			dv.ring[i] = e
		}
		if r.err == nil && dv.silence != 0 && (dv.silence <= dv.ring[dv.n-1].t || dv.silence > maxTime) {
			r.fail("device %q: advance time %d", name, dv.silence)
		}
		m := r.count(16)
		for ; m > 0 && r.err == nil; m-- {
			ev := r.event()
			if r.err == nil && ev.ID != AlertID(name, ev.Rule, ev.Start) {
				r.fail("device %q: alert %q is not the id of its rule and start", name, ev.ID)
			}
			dv.ledger = append(dv.ledger, publishedOf(&ev))
		}
		if r.err != nil {
			break
		}
		// The live state is the checkpoint replayed over the readings.
		dv.live = dv.base.clone()
		x := stepper{c: d.c, quiet: true}
		for i := 0; i < dv.n; i++ {
			x.step(&dv.live, dv.at(i))
		}
		if dv.silence != 0 {
			x.advance(&dv.live, dv.silence)
		}
		devs[name] = dv
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return r.err
	}
	d.devs = devs
	return nil
}

type writer struct {
	b   []byte
	dev string // the device being written, whose reading ids these are
}

func (w *writer) u(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) i(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) f(v float64) { w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v)) }
func (w *writer) s(v string)  { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) bit(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *writer) entry(e *entry) {
	w.i(e.t)
	w.s(idOf(w.dev, e.id))
	w.f(e.v)
	w.u(uint64(e.f))
}

func (w *writer) state(s *state) {
	w.bit(s.has)
	w.bit(s.gapOpen)
	if s.has {
		w.entry(&s.last)
	}
	w.i(s.cum[0])
	w.i(s.cum[1])
	for _, x := range s.win {
		w.i(x.since)
		w.i(x.until)
		w.bit(x.on)
	}
	w.i(s.mk.head)
	w.f(s.mk.sw)
	w.f(s.mk.sk)
	for i := range s.mk.w {
		w.b = binary.LittleEndian.AppendUint32(w.b, math.Float32bits(s.mk.w[i]))
		w.b = binary.LittleEndian.AppendUint32(w.b, math.Float32bits(s.mk.k[i]))
	}
	w.f(s.mktR)
	w.i(s.mktKnown)
	w.u(uint64(len(s.alerts)))
	for i := range s.alerts {
		t := &s.alerts[i]
		w.b = append(w.b, byte(t.rule), byte(t.held), byte(t.supp))
		w.bit(t.open)
		w.i(t.start)
		w.i(t.mark)
		w.i(t.beyond)
		w.i(t.clear)
		w.f(t.peak)
		w.s(idOf(w.dev, t.startID))
		w.s(idOf(w.dev, t.peakID))
		w.s(idOf(w.dev, t.clearID))
	}
}

func (w *writer) event(e *Event) {
	w.s(e.ID)
	w.b = append(w.b, byte(e.Rule), byte(e.Severity), byte(e.Transition), byte(e.Suppressed))
	w.bit(e.Late)
	w.i(e.Start)
	w.i(e.End)
	w.i(e.At)
	w.f(e.PeakC)
	w.i(int64(e.Beyond))
	w.f(e.MKTC)
	w.u(uint64(len(e.Readings)))
	for _, id := range e.Readings {
		w.s(id)
	}
	w.s(idOf(w.dev, e.by))
}

// reader decodes a snapshot; the first problem sticks in err and every
// later read returns zero values.
type reader struct {
	b   []byte
	err error
	dev string // the device being read, whose reading ids these are
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
	}
	r.b = nil
}

func (r *reader) u() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) i() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length whose items take at least minSize bytes each, so a
// corrupt length cannot make the decoder allocate more than the input.
func (r *reader) count(minSize int) int {
	v := r.u()
	if v > uint64(len(r.b)/minSize) {
		r.fail("count %d exceeds input", v)
		return 0
	}
	return int(v)
}

func (r *reader) raw(n int) []byte {
	if len(r.b) < n {
		r.fail("truncated")
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1() byte { return r.raw(1)[0] }
func (r *reader) f() float64  { return math.Float64frombits(binary.LittleEndian.Uint64(r.raw(8))) }
func (r *reader) s() string   { return string(r.raw(r.count(1))) }

// id reads a reading id of r.dev; "" is none.
func (r *reader) id() rid {
	s := r.s()
	if s == "" {
		return 0
	}
	id, ok := parseID(r.dev, s)
	if !ok {
		r.fail("%q is not a reading id of device %q", s, r.dev)
	}
	return id
}

func (r *reader) bit() bool {
	switch r.byte1() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bad bool")
	return false
}

// time reads a device time in (0, maxTime].
func (r *reader) time() int64 {
	t := r.i()
	if t <= 0 || t > maxTime {
		r.fail("time %d out of range", t)
	}
	return t
}

func (r *reader) entry() entry {
	e := entry{t: r.time(), id: r.id(), v: r.f()}
	f := r.u()
	if e.id == 0 || math.IsNaN(e.v) || math.IsInf(e.v, 0) || e.v <= -zeroCelsius || f > uint64(Defrost|DoorOpen) {
		r.fail("bad reading %q", idOf(r.dev, e.id))
	}
	e.f = Suppression(f)
	return e
}

func (r *reader) state(s *state, c *compiled) {
	s.has = r.bit()
	s.gapOpen = r.bit()
	if s.has {
		s.last = r.entry()
	} else if s.gapOpen {
		r.fail("gap without reading")
	}
	for k := range s.cum {
		if s.cum[k] = r.i(); s.cum[k] < 0 {
			r.fail("negative total")
		}
	}
	for k := range s.win {
		w := &s.win[k]
		w.since, w.until, w.on = r.i(), r.i(), r.bit()
		if w.since < 0 || w.since > maxTime || w.until < w.since || w.until > maxTime+int64(maxDuration) {
			r.fail("bad window")
		}
	}
	if s.mk.head = r.i(); s.mk.head < 0 || s.mk.head > maxTime {
		r.fail("bad MKT head")
	}
	s.mk.hi = int(slot(s.mk.head))
	if s.mk.sw, s.mk.sk = r.f(), r.f(); !(s.mk.sw >= 0 && s.mk.sk >= 0) || math.IsInf(s.mk.sw, 0) || math.IsInf(s.mk.sk, 0) {
		r.fail("bad MKT sums")
	}
	for i := range s.mk.w {
		s.mk.w[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.raw(4)))
		s.mk.k[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.raw(4)))
		if !(s.mk.w[i] >= 0 && s.mk.k[i] >= 0) || math.IsInf(float64(s.mk.w[i]), 0) || math.IsInf(float64(s.mk.k[i]), 0) {
			r.fail("bad MKT bucket")
		}
	}
	s.mktR = r.f()
	if s.mktKnown = r.i(); s.mktKnown < 0 {
		r.fail("bad MKT known time")
	}
	n := r.count(16)
	for ; n > 0 && r.err == nil; n-- {
		t := tracker{rule: Rule(r.byte1()), held: Suppression(r.byte1()), supp: Suppression(r.byte1())}
		t.open = r.bit()
		t.start, t.mark, t.beyond, t.clear = r.time(), r.i(), r.i(), r.i()
		t.peak = r.f()
		t.startID, t.peakID, t.clearID = r.id(), r.id(), r.id()
		k := c.specs[t.rule%Rule(numRules)].kind
		switch {
		case !t.rule.Valid() || t.rule == DataGap:
			r.fail("bad rule %d", t.rule)
		case len(s.alerts) > 0 && s.alerts[len(s.alerts)-1].rule >= t.rule:
			r.fail("alerts out of order")
		case t.held > Defrost|DoorOpen || t.supp > Defrost|DoorOpen || (t.held != 0 && !t.open):
			r.fail("bad suppression")
		case !t.open && k != run && k != budget:
			r.fail("%v cannot be pending", t.rule)
		case t.open && (t.mark < t.start || t.mark > maxTime), !t.open && t.mark != noTime:
			r.fail("bad alarm time")
		case t.beyond < 0 || t.beyond > maxTime:
			r.fail("bad time beyond")
		case t.clear != noTime && (t.clear < t.start || t.clear > maxTime):
			r.fail("bad clear time")
		case math.IsNaN(t.peak) || math.IsInf(t.peak, 0):
			r.fail("bad peak")
		}
		s.alerts = append(s.alerts, t)
	}
}

func (r *reader) event() Event {
	e := Event{ID: r.s(), Device: r.dev}
	e.Rule, e.Severity, e.Transition, e.Suppressed = Rule(r.byte1()), Severity(r.byte1()), Transition(r.byte1()), Suppression(r.byte1())
	e.Late = r.bit()
	e.Start, e.End, e.At = r.i(), r.i(), r.i()
	e.PeakC = r.f()
	e.Beyond = time.Duration(r.i())
	e.MKTC = r.f()
	n := r.count(1)
	if n > 4 {
		r.fail("%d reading ids", n)
	}
	var rs []rid
	for ; n > 0 && r.err == nil; n-- {
		rs = append(rs, r.id())
	}
	e.readings(rs...)
	if r.err == nil && len(e.Readings) != len(rs) {
		r.fail("alert %q names a reading twice", e.ID)
	}
	e.by = r.id()
	if !e.Rule.Valid() || (e.Severity != Warning && e.Severity != Alarm) || (e.Transition != Opened && e.Transition != Cleared) || e.Suppressed > Defrost|DoorOpen {
		r.fail("bad alert %q", e.ID)
	}
	return e
}
