package excursion

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"time"
)

// noTime marks an unset device time in a tracker.
const noTime = math.MinInt64

// kind is how a rule turns readings into an alert.
type kind uint8

const (
	// point rules open on one reading beyond the threshold (pre-alarm, instant).
	point kind = iota + 1
	// run rules open after continuous device time beyond the limit (single event).
	run
	// budget rules open when the shipment's total time beyond the limit reaches the budget (cumulative).
	budget
	// kineticKind is the MKT rule: a point rule on the MKT instead of the reading.
	kineticKind
)

// spec is one compiled rule of a profile.
type spec struct {
	kind  kind
	high  bool
	incl  bool    // beyond includes equality (instant_low: ≤)
	thr   float64 // threshold, °C
	clr   float64 // clear level: thr ∓ deadband, °C
	delay int64   // run: continuous time beyond, ns
	total int64   // budget: cumulative budget, ns
	dir   int     // budget: index into state.cum (0 high, 1 low)
	sev   Severity
}

// beyond reports whether v is beyond the threshold. NaN never is.
func (s *spec) beyond(v float64) bool {
	if s.high {
		return v > s.thr || (s.incl && v == s.thr)
	}
	return v < s.thr || (s.incl && v == s.thr)
}

// inside reports whether v is back inside by the deadband, so that it counts
// towards clearing. NaN never is.
func (s *spec) inside(v float64) bool {
	if s.high {
		return v <= s.clr
	}
	return v >= s.clr
}

// worse reports whether v is further beyond than peak.
func (s *spec) worse(v, peak float64) bool {
	if s.high {
		return v > peak
	}
	return v < peak
}

// entry is one retained reading. Its value holds over [t, next reading's t)
// unless that spacing exceeds the gap limit.
type entry struct {
	t  int64
	v  float64
	id rid // none in an unused ring slot
	f  Suppression
}

// before orders readings by device time, then ID, so that readings with equal
// times still have one order whatever order they arrive in.
func (e *entry) before(o *entry) bool {
	return e.t < o.t || (e.t == o.t && ridLess(e.id, o.id))
}

// window is the state of one suppression window; since == 0 means none yet.
type window struct {
	since, until int64
	on           bool
}

// tracker follows one rule of one device while something is going on: a run
// beyond the limit that has not yet lasted the delay, or an open alert.
type tracker struct {
	rule   Rule
	open   bool        // the condition was met: the alert exists
	held   Suppression // windows holding its publication; 0 once published
	supp   Suppression // every window that ever held it
	start  int64       // device time the condition began
	mark   int64       // device time the condition was met
	beyond int64       // device time beyond the threshold since start, ns
	clear  int64       // start of the current run inside the band, or noTime
	peak   float64     // extreme reading, °C; for the mkt rule the highest mean weight
	// startID, peakID and clearID are the readings at start, at the peak and
	// at the start of the clear run, for Event.Readings.
	startID, peakID, clearID rid
}

// state is everything the rules know about one device after a prefix of its
// readings. A state is a value: copy it with clone.
type state struct {
	last     entry
	has      bool
	gapOpen  bool     // a data_gap alert opened by Advance is open after last
	cum      [2]int64 // total device time beyond the high, low limit, ns
	win      [2]window
	mk       kinetic
	mktR     float64 // MKT at last as a mean weight (compiled.celsius), NaN when unknown
	mktKnown int64   // known device time the MKT rests on, ns
	alerts   []tracker
}

// clone returns a copy of s that shares nothing mutable with it.
func (s *state) clone() state {
	c := *s
	c.alerts = append([]tracker(nil), s.alerts...)
	return c
}

// find returns the index of r's tracker, or -1.
func (s *state) find(r Rule) int {
	for i := range s.alerts {
		if s.alerts[i].rule == r {
			return i
		}
	}
	return -1
}

// insert adds t keeping alerts ordered by rule and returns its index.
func (s *state) insert(t tracker) int {
	i := 0
	for i < len(s.alerts) && s.alerts[i].rule < t.rule {
		i++
	}
	// One more at a time: a device rarely follows more than two alerts,
	// and each tracker is about 100 bytes.
	if len(s.alerts) == cap(s.alerts) {
		s.alerts = append(make([]tracker, 0, len(s.alerts)+1), s.alerts...)
	}
	s.alerts = s.alerts[:len(s.alerts)+1]
	copy(s.alerts[i+1:], s.alerts[i:])
	s.alerts[i] = t
	return i
}

// remove deletes the tracker at i.
func (s *state) remove(i int) {
	copy(s.alerts[i:], s.alerts[i+1:])
	s.alerts[len(s.alerts)-1] = tracker{}
	s.alerts = s.alerts[:len(s.alerts)-1]
	// A reading far out opens several at once; give the room back when
	// they are over, since a device keeps its state for the shipment.
	switch {
	case len(s.alerts) == 0:
		s.alerts = nil
	case cap(s.alerts) >= 2*len(s.alerts):
		s.alerts = append(make([]tracker, 0, len(s.alerts)), s.alerts...)
	}
}

// stepper applies readings to a state and collects the events they produce.
// quiet steppers (used to advance a device's replay checkpoint) build no events.
type stepper struct {
	c     *compiled
	dev   string
	out   []Event
	quiet bool
	late  bool
}

// step applies the next reading e (in (t, id) order) to s. The previous
// reading's value holds over [last.t, e.t) if that is no longer than the gap
// limit; otherwise the span is unknown device time: a data_gap alert, and no
// time in range or out of range for any other rule.
func (x *stepper) step(s *state, e *entry) {
	if !s.has {
		s.mktR, s.mktKnown = s.mk.value(e.t, x.c)
	} else {
		a, b := s.last.t, e.t
		prev := s.mktR
		known := b-a <= x.c.gap
		if known && b > a {
			s.mk.add(a, b, s.last.v, x.c)
		}
		s.mktR, s.mktKnown = s.mk.value(b, x.c)
		switch {
		case !known:
			x.gap(s, a, b, e)
		case s.gapOpen:
			// Advance opened a gap that device time does not show.
			x.gapEvent(Retracted, s, a, a+x.c.gap, e.t, e.id)
			s.gapOpen = false
		}
		if known && b > a && len(s.alerts) > 0 {
			x.span(s, a, b, prev, e)
		}
	}
	x.point(s, e)
	s.last = *e
	s.has = true
}

// gap handles unknown device time [a, b): it raises (or, if Advance raised it,
// clears) the data_gap alert, breaks every run that has not yet alarmed and
// every clear run, and adds nothing to the cumulative totals or the MKT.
func (x *stepper) gap(s *state, a, b int64, e *entry) {
	if !s.gapOpen {
		x.gapEvent(Opened, s, a, a+x.c.gap, b, e.id)
	}
	x.gapEvent(Cleared, s, a, b, b, e.id)
	s.gapOpen = false
	n := 0
	for _, t := range s.alerts {
		if t.open {
			t.clear = noTime
			s.alerts[n] = t
			n++
		}
	}
	clear(s.alerts[n:])
	s.alerts = s.alerts[:n]
}

// advance raises the data_gap alert when device time now is past the gap
// limit after the last reading; it is how a silent device alarms live.
func (x *stepper) advance(s *state, now int64) {
	if !s.has || s.gapOpen || now-s.last.t <= x.c.gap {
		return
	}
	s.gapOpen = true
	x.gapEvent(Opened, s, s.last.t, s.last.t+x.c.gap, now, 0)
}

// span applies the known device time [a, b) at the last reading's value to the
// cumulative totals and the trackers. prevMKT is the MKT at a, which holds
// over the span for the mkt rule.
func (x *stepper) span(s *state, a, b int64, prevMKT float64, e *entry) {
	c := x.c
	v := s.last.v
	dt := b - a
	before := s.cum
	if c.specs[CumulativeHigh].beyond(v) {
		s.cum[0] += dt
	}
	if c.specs[CumulativeLow].beyond(v) {
		s.cum[1] += dt
	}
	removed := false
	for i := range s.alerts {
		t := &s.alerts[i]
		sp := &c.specs[t.rule]
		val := v
		if sp.kind == kineticKind {
			val = prevMKT
		}
		switch {
		case sp.beyond(val) && t.open:
			t.beyond += dt
		case sp.beyond(val) && sp.kind == run:
			// Single event [issue 1]: continuously beyond for at least the delay.
			if b-t.start >= sp.delay {
				t.beyond = b - t.start
				x.open(s, t, sp, t.start+sp.delay, e)
			}
		case sp.beyond(val) && sp.kind == budget:
			// Cumulative [issue 1]: the shipment total reaches the budget
			// inside this span, at a + (budget − total before).
			if s.cum[sp.dir] >= sp.total {
				m := max(a+sp.total-before[sp.dir], a)
				t.beyond = b - t.start
				x.open(s, t, sp, m, e)
			}
		case t.open && t.clear != noTime && sp.inside(val) && b-t.clear >= c.clearDelay:
			// Hysteresis [issue 1]: inside the deadband-widened band for
			// the clear delay, on known device time.
			x.close(s, t, sp, e)
			t.rule = 0
			removed = true
		}
	}
	if removed {
		n := 0
		for _, t := range s.alerts {
			if t.rule != 0 {
				s.alerts[n] = t
				n++
			}
		}
		clear(s.alerts[n:])
		s.alerts = s.alerts[:n]
	}
}

// point applies reading e at its own device time: suppression windows, the
// release of held alerts, and the rules that look at one value.
func (x *stepper) point(s *state, e *entry) {
	c := x.c
	x.windows(s, e)
	if len(s.alerts) > 0 {
		x.release(s, e)
	}
	v := e.v
	mktOK := s.mktKnown >= c.minKnown && !math.IsNaN(s.mktR)
	if len(s.alerts) == 0 && !c.anyBeyond(v) && !(mktOK && c.specs[MKT].beyond(s.mktR)) {
		return // the common path: nothing is going on
	}
	for r := PreAlarmHigh; r <= MKT; r++ {
		sp := &c.specs[r]
		val := v
		switch sp.kind {
		case 0:
			continue // data_gap has no spec
		case kineticKind:
			if !mktOK {
				continue
			}
			val = s.mktR // the mkt rule compares mean weights: same order as °C
		}
		i := s.find(r)
		if sp.beyond(val) {
			if i >= 0 {
				t := &s.alerts[i]
				if sp.worse(val, t.peak) {
					t.peak, t.peakID = val, e.id
				}
				t.clear = noTime
				continue
			}
			i = s.insert(tracker{rule: r, start: e.t, mark: noTime, peak: val, startID: e.id, peakID: e.id, clear: noTime})
			t := &s.alerts[i]
			switch {
			case sp.kind == point || sp.kind == kineticKind:
				// Pre-alarm, instant and MKT [issue 1]: one value beyond.
				x.open(s, t, sp, e.t, e)
			case sp.kind == budget && s.cum[sp.dir] >= sp.total:
				// The budget is spent: every further excursion alarms at once.
				x.open(s, t, sp, e.t, e)
			}
			continue
		}
		if i < 0 {
			continue
		}
		t := &s.alerts[i]
		switch {
		case !t.open:
			s.remove(i) // the run ended before it alarmed
		case sp.inside(val):
			if t.clear == noTime {
				t.clear, t.clearID = e.t, e.id
			}
		default:
			t.clear = noTime // inside the limit but within the deadband
		}
	}
}

// windows updates the suppression windows with reading e's flags.
func (x *stepper) windows(s *state, e *entry) {
	for k := range s.win {
		cfg := &x.c.win[k]
		if cfg.max == 0 {
			continue
		}
		w := &s.win[k]
		if e.f&(1<<k) != 0 {
			if !w.on {
				*w = window{since: e.t, until: e.t + cfg.max, on: true}
			}
		} else if w.on {
			w.on = false
			w.until = min(e.t+cfg.after, w.since+cfg.max)
		}
	}
}

// covering returns the windows among mask that cover device time t.
func (x *stepper) covering(s *state, mask Suppression, t int64) Suppression {
	var out Suppression
	for k := range s.win {
		w := &s.win[k]
		if mask&(1<<k) != 0 && w.since != 0 && w.since <= t && t < w.until {
			out |= 1 << k
		}
	}
	return out
}

// release publishes held alerts whose windows no longer cover e, or that
// have been held for the longest window.
func (x *stepper) release(s *state, e *entry) {
	for i := range s.alerts {
		t := &s.alerts[i]
		if t.held == 0 {
			continue
		}
		cover := x.covering(s, x.c.suppOf[t.rule], e.t)
		t.supp |= cover
		if cover == 0 || e.t-t.mark >= x.c.holdCap[t.rule] {
			t.held = 0
			x.alertEvent(Opened, s, t, t.mark, t.mark-t.start, e)
		}
	}
}

// open marks t's condition met at device time m, decided by reading e, and
// publishes it unless a suppression window covering m holds it.
func (x *stepper) open(s *state, t *tracker, sp *spec, m int64, e *entry) {
	t.open, t.mark = true, m
	if h := x.covering(s, x.c.suppOf[t.rule], m); h != 0 {
		t.held, t.supp = h, t.supp|h
		return
	}
	x.alertEvent(Opened, s, t, m, m-t.start, e)
}

// close publishes that t cleared, decided by reading e. A held alert is
// published as opened first: suppression never drops an alert.
func (x *stepper) close(s *state, t *tracker, sp *spec, e *entry) {
	if t.held != 0 {
		x.alertEvent(Opened, s, t, t.mark, t.mark-t.start, e)
	}
	x.alertEvent(Cleared, s, t, t.clear, t.beyond, e)
}

// alertEvent appends an event for tracker t.
func (x *stepper) alertEvent(tr Transition, s *state, t *tracker, end, beyond int64, e *entry) {
	if x.quiet {
		return
	}
	ev := Event{
		ID: AlertID(x.dev, t.rule, t.start), Device: x.dev, Rule: t.rule, Severity: x.c.specs[t.rule].sev,
		Transition: tr, Start: t.start, End: end, At: e.t, PeakC: x.c.peakC(t), Beyond: time.Duration(beyond),
		MKTC: x.c.celsius(s.mktR), Suppressed: t.supp, Late: x.late, by: e.id,
	}
	clearID := t.clearID
	if tr != Cleared {
		clearID = 0
	}
	ev.readings(t.startID, t.peakID, clearID, e.id)
	x.out = append(x.out, ev)
}

// gapEvent appends an event for the data_gap alert that starts at the last
// reading before the gap. Its PeakC is that reading's temperature and its
// Beyond is the unknown time, End − Start.
func (x *stepper) gapEvent(tr Transition, s *state, start, end, at int64, by rid) {
	if x.quiet {
		return
	}
	ev := Event{
		ID: AlertID(x.dev, DataGap, start), Device: x.dev, Rule: DataGap, Severity: Alarm,
		Transition: tr, Start: start, End: end, At: at, PeakC: s.last.v, Beyond: time.Duration(end - start),
		MKTC: x.c.celsius(s.mktR), Late: x.late, by: by,
	}
	ev.readings(s.last.id, by)
	x.out = append(x.out, ev)
}

// AlertID returns the deterministic id of the alert of rule r on device that
// began at device time start (Unix ns): the first 16 bytes, in hex, of
// SHA-256(device ‖ 0x00 ‖ rule name ‖ 0x00 ‖ start in decimal). Replays and
// other components derive the same id from the same three values.
func AlertID(device string, r Rule, start int64) string {
	buf := make([]byte, 0, len(device)+40)
	buf = append(buf, device...)
	buf = append(buf, 0)
	buf = append(buf, r.String()...)
	buf = append(buf, 0)
	buf = strconv.AppendInt(buf, start, 10)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:16])
}
