package excursion

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"
)

// Sample is one reading of one device: the detector's own input type, so the
// package depends on nothing else in the project.
type Sample struct {
	// Seq is the reading's sequence number on its device: its record id is
	// Device:Seq (record.Reading.ID), which is how the events name it.
	// Samples with a Seq the device's retained history holds are
	// duplicates. Seq 2^64−1 is refused.
	Seq uint64
	// Device identifies the device; all state is per device.
	Device string
	// Time is the device's clock at the reading, Unix nanoseconds.
	Time int64
	// TempC is the temperature, °C.
	TempC float64
	// Defrost is set while the reefer's mode is defrost.
	Defrost bool
	// DoorOpen is set while the door is open.
	DoorOpen bool
}

// maxTime is the latest accepted device time (2^62 ns, in 2116), so that
// device-time arithmetic never overflows.
const maxTime = 1 << 62

// Event is one transition of one alert. Times are device time, Unix ns.
type Event struct {
	// ID is the alert's deterministic id, AlertID(Device, Rule, Start).
	ID       string
	Device   string
	Rule     Rule
	Severity Severity
	// Transition is what happened to the alert.
	Transition Transition
	// Start is the device time the condition began: the first reading of
	// the run beyond the threshold; for data_gap the last reading before the gap.
	Start int64
	// End is the device time the figures run to. For Opened it is the
	// moment the condition was met (Start + delay for a single event, the
	// moment the budget ran out for a cumulative alarm, Start for the others,
	// Start + gap limit for data_gap); for Cleared it is the moment the
	// condition ended (the first reading of the clear run; for data_gap the
	// next reading); for Reopened and Revised it is as for the alert's state.
	// End ≥ Start always.
	End int64
	// At is the device time of the input that decided the transition: a
	// reading, or the now of Advance. At ≥ End, except for Retracted, which
	// repeats the figures of the alert it withdraws.
	At int64
	// PeakC is the highest reading (high rules, MKT: the highest MKT) or the
	// lowest reading (low rules) of the alert so far, °C; for data_gap the
	// last reading before the gap.
	PeakC float64
	// Beyond is the device time beyond the rule's threshold within
	// [Start, End); it is at most End − Start. For data_gap it is the unknown time.
	Beyond time.Duration
	// MKTC is the device's MKT when the transition was decided, °C, NaN
	// while unknown.
	MKTC float64
	// Readings are the ids of the readings that caused the transition, at
	// most four: the first reading, the peak, the first reading of the clear
	// run (Cleared) and the deciding reading.
	Readings []string
	// Suppressed lists the windows that held the alert's publication; an
	// alert that opens and clears in one call with Suppressed set lasted no
	// longer than its window.
	Suppressed Suppression
	// Late is set when the event was decided by a late, out-of-order sample
	// (Outcome.Status == Reordered); the caller marks it detected_late.
	Late bool

	by   rid    // the deciding reading; none when Advance decided
	rids [4]rid // Readings, as rids; none after the last
}

// Outcome is what the detector did with one sample.
type Outcome struct {
	Status Status
	// Known is the known device time the device's MKT rests on.
	Known time.Duration

	ratio float64 // MKT as a mean weight
	c     *compiled
}

// MKT returns the device's MKT at its newest reading, °C, NaN while
// unknown: the continuously reported MKT of USP <1079.2>. It is computed on
// demand (one logarithm), so callers that report it less often than every
// reading do not pay for it.
func (o Outcome) MKT() float64 {
	if o.c == nil {
		return math.NaN()
	}
	return o.c.celsius(o.ratio)
}

// Config configures the detector beyond its profile.
type Config struct {
	// Horizon is how far behind a device's newest reading a late reading
	// may be and still be evaluated; older ones are flagged BeyondHorizon.
	Horizon time.Duration `yaml:"horizon"`
	// History is how many readings per device are retained for re-evaluating
	// late readings exactly; a late reading older than all of them is flagged
	// BeyondHistory. Memory per device grows with it (about 64 bytes each).
	History int `yaml:"history"`
}

// DefaultConfig returns a 7-day horizon and 16 retained readings.
func DefaultConfig() Config {
	return Config{Horizon: 7 * 24 * time.Hour, History: 16}
}

// Validate checks c; errors are *FieldError wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Horizon <= 0 || c.Horizon > maxDuration {
		errs = append(errs, &FieldError{Field: "horizon", Reason: fmt.Sprintf("must be positive and at most %v, is %v", maxDuration, c.Horizon)})
	}
	if c.History < 1 || c.History > 1<<16 {
		errs = append(errs, &FieldError{Field: "history", Reason: fmt.Sprintf("must be between 1 and 65536, is %d", c.History)})
	}
	return errors.Join(errs...)
}

// compiled is a validated profile in the form the hot path wants.
type compiled struct {
	specs      [numRules]spec
	gap        int64 // gap limit, ns
	clearDelay int64
	width      int64 // MKT bucket width, ns
	perWidth   float64
	minKnown   int64
	dhr        float64
	win        [2]struct{ max, after int64 }
	suppOf     [numRules]Suppression // windows that may hold each rule
	holdCap    [numRules]int64       // longest hold of each rule
	horizon    int64
	history    int
	quietLo    float64 // readings in [quietLo, quietHi] are beyond no threshold
	quietHi    float64
	wcache     [1 << weightCacheBits]weightEntry
}

func compile(p Profile, cfg Config) *compiled {
	c := new(compiled)
	for i := range c.wcache {
		c.wcache[i].bits = math.Float64bits(math.NaN())
	}
	h, l, db := p.High, p.Low, p.Deadband
	c.specs[PreAlarmHigh] = spec{kind: point, high: true, thr: h.PreAlarm, clr: h.PreAlarm - db, sev: Warning}
	c.specs[PreAlarmLow] = spec{kind: point, thr: l.PreAlarm, clr: l.PreAlarm + db, sev: Warning}
	c.specs[SingleEventHigh] = spec{kind: run, high: true, thr: h.Limit, clr: h.Limit - db, delay: int64(h.Delay), sev: Alarm}
	c.specs[SingleEventLow] = spec{kind: run, thr: l.Limit, clr: l.Limit + db, delay: int64(l.Delay), sev: Alarm}
	c.specs[CumulativeHigh] = spec{kind: budget, high: true, thr: h.Limit, clr: h.Limit - db, total: int64(h.Budget), dir: 0, sev: Alarm}
	c.specs[CumulativeLow] = spec{kind: budget, thr: l.Limit, clr: l.Limit + db, total: int64(l.Budget), dir: 1, sev: Alarm}
	c.specs[InstantHigh] = spec{kind: point, high: true, thr: h.Instant, clr: h.Instant - db, sev: Alarm}
	c.specs[InstantLow] = spec{kind: point, incl: true, thr: l.Instant, clr: l.Instant + db, sev: Alarm}
	c.gap = int64(p.GapLimit())
	c.clearDelay = int64(p.ClearDelay)
	c.width = int64(p.MKT.Window) / (kineticBuckets - 1)
	c.perWidth = 1 / float64(c.width)
	c.minKnown = int64(p.MKT.MinKnown)
	c.dhr = p.MKT.DeltaHOverR
	// The mkt rule compares mean weights (see kinetic), which order like
	// the MKT in °C, so the hot path needs no logarithm.
	c.specs[MKT] = spec{kind: kineticKind, high: true, thr: c.weight(p.MKT.Limit), clr: c.weight(p.MKT.Limit - db), sev: Alarm}
	for k, w := range []Window{p.Suppress.Defrost, p.Suppress.DoorOpen} {
		c.win[k].max, c.win[k].after = int64(w.Max), int64(w.After)
		if w.Max == 0 {
			continue
		}
		for _, r := range w.Rules {
			c.suppOf[r] |= 1 << k
			c.holdCap[r] = max(c.holdCap[r], int64(w.Max))
		}
	}
	c.horizon, c.history = int64(cfg.Horizon), cfg.History
	c.quietLo = math.Max(l.PreAlarm, l.Limit) // strict: v < these is beyond
	c.quietHi = math.Min(h.PreAlarm, math.Min(h.Limit, h.Instant))
	return c
}

// peakC returns t's peak in °C.
func (c *compiled) peakC(t *tracker) float64 {
	if t.rule == MKT {
		return c.celsius(t.peak)
	}
	return t.peak
}

// anyBeyond reports whether v is beyond any temperature threshold.
func (c *compiled) anyBeyond(v float64) bool {
	return !(v >= c.quietLo && v <= c.quietHi) || c.specs[InstantLow].beyond(v)
}

// Detector evaluates the rules of one profile for any number of devices. It
// is a pure core: it does no I/O, never reads the clock, and returns events
// as values for the caller to publish. It is not safe for concurrent use;
// shard devices across detectors to use more cores.
type Detector struct {
	prof    Profile
	cfg     Config
	c       *compiled
	fp      [32]byte
	devs    map[string]*device
	scratch []Event
}

// device is the state of one device: a replay checkpoint (base), the
// readings after it in (t, id) order (ring), the state after all of them
// (live), and the published alerts a late reading could still change (ledger).
type device struct {
	live, base state
	ring       []entry // circular, len == capacity
	head, n    int
	ledger     []published // last published state of each alert still in reach
	silence    int64       // latest Advance now after the newest reading, or 0
}

func (dv *device) at(i int) *entry {
	j := dv.head + i
	if j >= len(dv.ring) {
		j -= len(dv.ring)
	}
	return &dv.ring[j]
}

// New returns a detector for profile p. Both are validated.
func New(cfg Config, p Profile) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{prof: p, cfg: cfg, c: compile(p, cfg), devs: map[string]*device{}}
	d.fp = sha256.Sum256(fmt.Appendf(nil, "%#v|%#v", p, cfg))
	return d, nil
}

// Profile returns the detector's profile.
func (d *Detector) Profile() Profile { return d.prof }

// Len returns the number of tracked devices.
func (d *Detector) Len() int { return len(d.devs) }

// Forget drops all state of device, e.g. at the end of its shipment.
func (d *Detector) Forget(device string) { delete(d.devs, device) }

// MKT returns the device's MKT at its newest reading, °C (NaN while unknown),
// and the known device time it rests on; ok is false for an unknown device.
func (d *Detector) MKT(device string) (c float64, known time.Duration, ok bool) {
	dv := d.devs[device]
	if dv == nil {
		return math.NaN(), 0, false
	}
	return d.c.celsius(dv.live.mktR), time.Duration(dv.live.mktKnown), true
}

func checkSample(s *Sample) (rid, error) {
	r, ok := ridOf(s.Seq)
	switch {
	case s.Device == "":
		return 0, fmt.Errorf("%w: empty device", ErrInvalidSample)
	case !ok:
		return 0, fmt.Errorf("%w %s:%d: seq 2^64-1 is reserved", ErrInvalidSample, s.Device, s.Seq)
	case s.Time <= 0 || s.Time > maxTime:
		return 0, fmt.Errorf("%w %s:%d: time %d outside (0, 2^62]", ErrInvalidSample, s.Device, s.Seq, s.Time)
	case math.IsNaN(s.TempC) || math.IsInf(s.TempC, 0) || s.TempC <= -zeroCelsius:
		return 0, fmt.Errorf("%w %s:%d: temperature %v", ErrInvalidSample, s.Device, s.Seq, s.TempC)
	}
	return r, nil
}

// Observe evaluates sample s and appends the events it causes to dst.
//
// A sample newer than the device's newest is evaluated in O(1) (Accepted).
// A late one inside the horizon and the retained history is inserted at its
// place and the device re-evaluated from its checkpoint; the events are the
// difference between what was published and what in-order arrival would
// have published, all with Late set (Reordered). Duplicates and samples
// beyond the horizon or history change nothing and are reported in the
// Outcome. An invalid sample returns ErrInvalidSample.
func (d *Detector) Observe(dst []Event, s Sample) ([]Event, Outcome, error) {
	id, err := checkSample(&s)
	if err != nil {
		return dst, Outcome{}, err
	}
	e := entry{t: s.Time, id: id, v: s.TempC}
	if s.Defrost {
		e.f |= Defrost
	}
	if s.DoorOpen {
		e.f |= DoorOpen
	}
	dv := d.devs[s.Device]
	if dv == nil {
		dv = &device{ring: make([]entry, d.c.history)}
		dv.live.mktR, dv.base.mktR = math.NaN(), math.NaN()
		d.devs[s.Device] = dv
	}
	status := Accepted
	if dv.n > 0 {
		newest := dv.at(dv.n - 1)
		for i := range dv.ring { // in any order; unused entries have no id
			if dv.ring[i].id == e.id {
				return dst, d.outcome(dv, Duplicate), nil
			}
		}
		if !newest.before(&e) {
			switch {
			case e.t < newest.t-d.c.horizon:
				status = BeyondHorizon
			case dv.base.has && !dv.base.last.before(&e):
				if dv.base.last.id == e.id {
					status = Duplicate
				} else {
					status = BeyondHistory
				}
			default:
				dst = d.reorder(dst, s.Device, dv, &e)
				status = Reordered
			}
			return dst, d.outcome(dv, status), nil
		}
	}
	k := len(dst)
	x := stepper{c: d.c, dev: s.Device, out: dst}
	x.step(&dv.live, &e)
	dst = x.out
	dv.silence = 0
	if len(dst) > k {
		dv.post(dst[k:])
	}
	d.insert(dv, dv.n, &e)
	return dst, d.outcome(dv, status), nil
}

func (d *Detector) outcome(dv *device, s Status) Outcome {
	return Outcome{Status: s, Known: time.Duration(dv.live.mktKnown), ratio: dv.live.mktR, c: d.c}
}

// Advance tells the detector that device time has reached now (Unix ns)
// with no newer reading from device, and appends the data_gap alert it
// raises if now is more than the gap limit after the newest reading. It is
// how a silent device alarms live; the caller derives now from its own
// clock. The next reading clears the alert, or retracts it if device time
// shows no gap after all. Unknown devices and a now that is not after the
// newest reading change nothing.
func (d *Detector) Advance(dst []Event, device string, now int64) ([]Event, error) {
	if now <= 0 || now > maxTime {
		return dst, fmt.Errorf("%w: advance time %d outside (0, 2^62]", ErrInvalidSample, now)
	}
	dv := d.devs[device]
	if dv == nil || dv.n == 0 || now <= dv.at(dv.n-1).t {
		return dst, nil
	}
	dv.silence = max(dv.silence, now)
	k := len(dst)
	x := stepper{c: d.c, dev: device, out: dst}
	x.advance(&dv.live, now)
	dst = x.out
	if len(dst) > k {
		dv.post(dst[k:])
	}
	return dst, nil
}

// insert puts e at position pos of dv's retained readings. When they are
// full, the oldest reading (which may be e) moves into the checkpoint.
func (d *Detector) insert(dv *device, pos int, e *entry) {
	if dv.n == len(dv.ring) {
		if pos == 0 {
			d.checkpoint(dv, e)
			return
		}
		old := *dv.at(0)
		*dv.at(0) = entry{}
		dv.head = (dv.head + 1) % len(dv.ring)
		dv.n--
		pos--
		d.checkpoint(dv, &old)
	}
	for i := dv.n; i > pos; i-- {
		*dv.at(i) = *dv.at(i - 1)
	}
	*dv.at(pos) = *e
	dv.n++
}

// checkpoint applies e, the oldest retained reading, to the replay
// checkpoint and forgets the cleared alerts it decided: no replay can reach
// them any more.
func (d *Detector) checkpoint(dv *device, e *entry) {
	x := stepper{c: d.c, quiet: true}
	x.step(&dv.base, e)
	if len(dv.ledger) == 0 {
		return
	}
	n := 0
	for _, p := range dv.ledger {
		if p.tr == Cleared && !dv.base.last.before(&entry{t: p.at, id: p.by}) {
			continue
		}
		dv.ledger[n] = p
		n++
	}
	clear(dv.ledger[n:])
	dv.ledger = dv.ledger[:n]
	if n == 0 {
		dv.ledger = nil
	}
}

// published is the last published state of one alert, as the ledger keeps
// it: an Event without what the device and the (rule, start) key already
// say, so about 100 bytes instead of 170 with its id.
type published struct {
	rule           Rule
	sev            Severity
	tr             Transition // Opened or Cleared
	supp           Suppression
	late           bool
	start, end, at int64
	beyond         time.Duration
	peak, mkt      float64
	readings       [4]rid // Event.Readings; none after the last
	by             rid
}

func publishedOf(ev *Event) published {
	return published{rule: ev.Rule, sev: ev.Severity, tr: ev.Transition, supp: ev.Suppressed, late: ev.Late,
		start: ev.Start, end: ev.End, at: ev.At, beyond: ev.Beyond, peak: ev.PeakC, mkt: ev.MKTC, readings: ev.rids, by: ev.by}
}

// event returns p as device's event; it computes the alert's id.
func (p *published) event(device string) Event {
	ev := Event{ID: AlertID(device, p.rule, p.start), Device: device, Rule: p.rule, Severity: p.sev, Transition: p.tr,
		Start: p.start, End: p.end, At: p.at, PeakC: p.peak, Beyond: p.beyond, MKTC: p.mkt,
		Suppressed: p.supp, Late: p.late, by: p.by}
	ev.readings(p.readings[:]...)
	return ev
}

// alertKey identifies an alert of one device: its id is AlertID(device,
// rule, start).
type alertKey struct {
	rule  Rule
	start int64
}

// post records published events in the ledger. The ledger keeps each
// alert's last published state as an Opened or Cleared event; it grows by
// one entry at a time, since a device rarely has more than two alerts in
// reach.
func (dv *device) post(evs []Event) {
	for k := range evs {
		ev := &evs[k]
		i := 0
		for i < len(dv.ledger) && (dv.ledger[i].rule != ev.Rule || dv.ledger[i].start != ev.Start) {
			i++
		}
		p := publishedOf(ev)
		switch ev.Transition {
		case Retracted:
			if i < len(dv.ledger) {
				dv.ledger = append(dv.ledger[:i], dv.ledger[i+1:]...)
				if len(dv.ledger) == 0 {
					dv.ledger = nil
				}
			}
			continue
		case Reopened:
			p.tr = Opened
		case Revised:
			if i < len(dv.ledger) {
				p.tr = dv.ledger[i].tr
			}
		}
		if i < len(dv.ledger) {
			dv.ledger[i] = p
			continue
		}
		grown := make([]published, len(dv.ledger)+1)
		copy(grown, dv.ledger)
		grown[len(dv.ledger)] = p
		dv.ledger = grown
	}
}

// reorder handles late reading e: it replays the checkpoint over the retained
// readings with e in its place, publishes the difference to the ledger, and
// keeps e. Cost: O(History) steps.
func (d *Detector) reorder(dst []Event, name string, dv *device, e *entry) []Event {
	pos := dv.n
	for pos > 0 && e.before(dv.at(pos-1)) {
		pos--
	}
	st := dv.base.clone()
	x := stepper{c: d.c, dev: name, out: d.scratch[:0], late: true}
	for i := 0; i <= dv.n; i++ {
		switch {
		case i < pos:
			x.step(&st, dv.at(i))
		case i == pos:
			x.step(&st, e)
		default:
			x.step(&st, dv.at(i-1))
		}
	}
	if dv.silence != 0 {
		x.advance(&st, dv.silence)
	}
	k := len(dst)
	dst = d.diff(dst, name, dv, x.out, &st, e)
	clear(x.out)
	d.scratch = x.out[:0]
	dv.live = st
	if len(dst) > k {
		dv.post(dst[k:])
	}
	d.insert(dv, pos, e) // after post: e may go straight into the checkpoint
	return dst
}

// diff appends the events that turn the published alerts (the ledger) into
// those of the replayed timeline: replay holds the events in-order arrival
// would have published since the checkpoint, st the state after it, and e is
// the late reading that decided the difference.
func (d *Detector) diff(dst []Event, name string, dv *device, replay []Event, st *state, e *entry) []Event {
	last := make(map[alertKey]int, len(replay))
	for i := range replay {
		last[alertKey{replay[i].Rule, replay[i].Start}] = i
	}
	inLedger := make(map[alertKey]bool, len(dv.ledger))
	for j, old := range dv.ledger {
		key := alertKey{old.rule, old.start}
		inLedger[key] = true
		oldOpen := old.tr == Opened
		if i, ok := last[key]; ok {
			n := replay[i]
			newOpen := n.Transition == Opened
			switch {
			case oldOpen && !newOpen:
				dst = append(dst, n)
			case !oldOpen && newOpen:
				n.Transition = Reopened
				dst = append(dst, n)
			case !same(&old, &n, newOpen):
				n.Transition = Revised
				dst = append(dst, n)
			default:
				// Nothing a consumer sees changed, but the reading that
				// decides it may have: keep the ledger's key current so the
				// checkpoint forgets the alert when it passes that reading.
				dv.ledger[j].at, dv.ledger[j].by = n.At, n.by
			}
			continue
		}
		if t := openTracker(st, key); t != nil {
			if !oldOpen {
				ev := Event{
					ID: AlertID(name, t.rule, t.start), Device: name, Rule: t.rule, Severity: d.c.specs[t.rule].sev, Transition: Reopened,
					Start: t.start, End: st.last.t, At: st.last.t, PeakC: d.c.peakC(t), Beyond: time.Duration(t.beyond),
					MKTC: d.c.celsius(st.mktR), Suppressed: t.supp, Late: true, by: st.last.id,
				}
				ev.readings(t.startID, t.peakID, st.last.id)
				dst = append(dst, ev)
			}
			continue
		}
		ev := old.event(name)
		ev.Transition, ev.Late, ev.At, ev.by = Retracted, true, e.t, e.id
		dst = append(dst, ev)
	}
	for i := range replay {
		if !inLedger[alertKey{replay[i].Rule, replay[i].Start}] {
			dst = append(dst, replay[i])
		}
	}
	return dst
}

// same reports whether two publications of one alert agree on what a
// consumer shows: the interval and severity, and for a cleared alert also
// its peak and time beyond.
func same(a *published, b *Event, open bool) bool {
	if a.start != b.Start || a.end != b.End || a.sev != b.Severity || a.supp != b.Suppressed {
		return false
	}
	return open || (a.peak == b.PeakC && a.beyond == b.Beyond)
}

// openTracker returns st's published open alert with key, or nil.
func openTracker(st *state, key alertKey) *tracker {
	for i := range st.alerts {
		t := &st.alerts[i]
		if t.open && t.held == 0 && t.rule == key.rule && t.start == key.start {
			return t
		}
	}
	return nil
}
