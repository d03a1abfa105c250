package simulator

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Profile holds the alarm thresholds the ground truth is computed with. It
// mirrors the excursion detector's profile (issue 4) without importing it,
// so that the simulator checks the detector rather than reuses it.
// Temperatures are °C, durations device time.
type Profile struct {
	Name        string
	Interval    time.Duration // expected spacing of readings
	Deadband    float64
	ClearDelay  time.Duration
	PreHigh     float64 // pre_alarm_high: above
	High        float64 // single_event_high, cumulative_high: above
	HighDelay   time.Duration
	HighBudget  time.Duration
	InstantHigh float64 // instant_high: above
	PreLow      float64 // pre_alarm_low: below
	Low         float64 // single_event_low, cumulative_low: below
	LowDelay    time.Duration
	LowBudget   time.Duration
	InstantLow  float64 // instant_low: at or below
	GapFactor   float64 // data_gap: no reading for more than GapFactor × Interval
	MKTLimit    float64 // mkt: Mean Kinetic Temperature above
	MKTWindow   time.Duration
	MKTMinKnown time.Duration // known time the window needs before it can alarm
	DeltaHOverR float64       // kelvin; USP <1079.2>: 10,000 K
}

// DefaultProfile returns the 2-8C profile of issue 4: pre-alarm 2.5 / 7.5 °C;
// single event above 8 °C for 30 min and below 2 °C for 15 min; cumulative
// 60 min above 8 °C (and, as the detector chose, 60 min below 2 °C); instant
// above 25 °C and at or below 0 °C; deadband 0.5 °C with a 10 min clear
// delay; gap 3 × 5 min; MKT at most 8 °C over 24 h, with 12 h known.
func DefaultProfile() Profile {
	return Profile{
		Name: "2-8C", Interval: 5 * time.Minute, Deadband: 0.5, ClearDelay: 10 * time.Minute,
		PreHigh: 7.5, High: 8, HighDelay: 30 * time.Minute, HighBudget: 60 * time.Minute, InstantHigh: 25,
		PreLow: 2.5, Low: 2, LowDelay: 15 * time.Minute, LowBudget: 60 * time.Minute, InstantLow: 0,
		GapFactor: 3, MKTLimit: 8, MKTWindow: 24 * time.Hour, MKTMinKnown: 12 * time.Hour, DeltaHOverR: 10000,
	}
}

// Truth is the ground truth of a run, written as JSON by --truth: what the
// gateway must store, what it must reject and why, and which alarms the
// excursion detector must raise over which device-time intervals.
type Truth struct {
	Version   int       `json:"version"`
	Seed      int64     `json:"seed"`
	Transport string    `json:"transport"`
	Profile   string    `json:"profile"`
	Interval  string    `json:"interval"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// Rules explains the interval convention in words, for whoever opens the file.
	Rules      string         `json:"rules"`
	Shipments  []ShipmentInfo `json:"shipments"`
	Injections []Injection    `json:"scenarios"`
	// Normal lists the shipments without a scenario: they must raise no
	// alarm and no warning.
	Normal   []string   `json:"normal_shipments"`
	Alarms   []Alarm    `json:"alarms"`
	Rejected []Rejected `json:"rejected"`
	Counts   Counts     `json:"counts"`
}

const rulesText = "Alarms follow the excursion detector's device-time conventions: start is the first reading beyond the threshold " +
	"(data_gap: the last reading before the gap); opened is when the condition was met (start + delay for single events, the moment the " +
	"budget ran out for cumulative, start + gap limit for data_gap, start for the others); end is the first reading of the run that cleared it " +
	"(inside threshold ∓ deadband for the clear delay; data_gap: the next reading), null if still open when the run ended. " +
	"Intervals are [start, end). A reading holds its value until the next one unless they are further apart than the gap limit. " +
	"late marks alarms decided by readings that arrived out of order. tolerance_s (mkt only) allows for the detector's hourly MKT buckets."

// Alarm is one alert the detector must raise.
type Alarm struct {
	Shipment string     `json:"shipment"`
	Device   string     `json:"device"`
	Rule     string     `json:"rule"`
	Severity string     `json:"severity"`
	Start    time.Time  `json:"start"`
	Opened   time.Time  `json:"opened"`
	End      *time.Time `json:"end"`
	// PeakC is the highest (high rules) or lowest (low rules) reading, the
	// highest MKT for mkt, the last reading before the gap for data_gap.
	PeakC      float64 `json:"peak_c"`
	Late       bool    `json:"late,omitempty"`
	Scenario   string  `json:"scenario"`
	ToleranceS int     `json:"tolerance_s,omitempty"`
}

// Rejected is one record or message the gateway must refuse.
type Rejected struct {
	Shipment string `json:"shipment"`
	Device   string `json:"device,omitempty"`
	// Seq is the reading's seq when the record has one.
	Seq *uint64 `json:"seq,omitempty"`
	// Topic is the MQTT topic or HTTP path it was sent to.
	Topic    string `json:"topic"`
	Reason   string `json:"reason"`
	Field    string `json:"field,omitempty"`
	Scenario string `json:"scenario"`
	// WholeMessage is set when the message as a whole is refused; Record
	// then holds the whole payload.
	WholeMessage bool   `json:"whole_message,omitempty"`
	Record       string `json:"record"`
}

// Counts sums up what was sent.
type Counts struct {
	Messages int `json:"messages"`
	Records  int `json:"records"`
	// Readings is every valid reading sent, resends included.
	Readings int `json:"readings"`
	// DistinctReadings is what the gateway must store in COLDCHAIN_READINGS.
	DistinctReadings int `json:"distinct_readings"`
	// Duplicates is Readings − DistinctReadings.
	Duplicates int `json:"duplicates"`
	// Handovers is the distinct valid handovers (COLDCHAIN_HANDOVERS).
	Handovers int `json:"handovers"`
	Rejected  int `json:"rejected"`
}

// Recorder builds the ground truth from the messages actually sent. It is
// not safe for concurrent use.
type Recorder struct {
	cfg       Config
	prof      Profile
	ships     []ShipmentInfo
	inj       []Injection
	devs      map[string]*devLog
	order     []string
	handovers map[string]bool
	rejected  []Rejected
	counts    Counts
}

type devLog struct {
	shipment string
	byID     map[uint64]int // seq → index in rs
	rs       []evReading
}

// NewRecorder returns a recorder for g's fleet, computing alarms with prof.
func NewRecorder(g *Generator, prof Profile) *Recorder {
	return &Recorder{cfg: g.cfg, prof: prof, ships: g.Shipments(), inj: g.Injections(),
		devs: map[string]*devLog{}, handovers: map[string]bool{}}
}

// Observe records that m was sent.
func (r *Recorder) Observe(m *Message) {
	r.counts.Messages++
	r.counts.Records += m.Records()
	topic := m.Topic()
	if r.cfg.Transport == TransportHTTP {
		topic = "/v1/readings"
		if m.Kind == record.KindHandover {
			topic = "/v1/handovers"
		}
	}
	if m.reject != nil {
		rj := Rejected{Shipment: m.Shipment, Device: m.Device, Topic: topic, Reason: m.reject.Reason, Field: m.reject.Field,
			Scenario: m.Scenario.String(), WholeMessage: true, Record: string(m.Payload())}
		if r.cfg.Transport == TransportHTTP {
			rj.Record = string(m.HTTPRequests()[0].Body)
		}
		r.rejected = append(r.rejected, rj)
		r.counts.Rejected++
		return
	}
	var reqs []HTTPRequest
	if r.cfg.Transport == TransportHTTP {
		reqs = m.HTTPRequests()
	}
	for i := range m.items {
		it := &m.items[i]
		if it.reject != nil {
			rj := Rejected{Shipment: m.Shipment, Device: m.Device, Topic: topic, Reason: it.reject.Reason, Field: it.reject.Field,
				Scenario: it.scenario.String(), Record: string(it.json)}
			if m.Kind == record.KindReading {
				seq := it.seq
				rj.Seq = &seq
			}
			if r.cfg.Transport == TransportHTTP {
				for _, q := range reqs {
					if q.Reject == it.reject {
						rj.Record = string(q.Body)
					}
				}
			}
			r.rejected = append(r.rejected, rj)
			r.counts.Rejected++
			continue
		}
		if m.Kind == record.KindHandover {
			r.handovers[it.id] = true
			continue
		}
		r.counts.Readings++
		d := r.devs[m.Device]
		if d == nil {
			d = &devLog{shipment: m.Shipment, byID: map[uint64]int{}}
			r.devs[m.Device] = d
			r.order = append(r.order, m.Device)
		}
		if _, dup := d.byID[it.seq]; dup {
			r.counts.Duplicates++
			continue
		}
		d.byID[it.seq] = len(d.rs)
		d.rs = append(d.rs, evReading{t: it.ts, id: m.Device + ":" + strconv.FormatUint(it.seq, 10), v: it.tempC,
			late: m.Scenario == OfflineBurst && m.array})
	}
}

// Counts returns what has been recorded so far.
func (r *Recorder) Counts() Counts {
	c := r.counts
	c.DistinctReadings = c.Readings - c.Duplicates
	c.Handovers = len(r.handovers)
	return c
}

// Truth evaluates the recorded readings and returns the ground truth.
func (r *Recorder) Truth() Truth {
	t := Truth{Version: 1, Seed: r.cfg.Seed, Transport: r.cfg.Transport.String(), Profile: r.prof.Name,
		Interval: r.cfg.Interval.String(), Start: r.cfg.Start.UTC(), End: r.cfg.Start.Add(r.cfg.Span).UTC(), Rules: rulesText,
		Shipments: r.ships, Injections: r.inj, Rejected: r.rejected, Counts: r.Counts(), Alarms: []Alarm{}}
	if t.Rejected == nil {
		t.Rejected = []Rejected{}
	}
	injected := map[string]bool{}
	for _, in := range r.inj {
		injected[in.Shipment] = true
	}
	t.Normal = []string{}
	for _, s := range r.ships {
		if !injected[s.ID] {
			t.Normal = append(t.Normal, s.ID)
		}
	}
	for _, dev := range r.order {
		d := r.devs[dev]
		for _, a := range evaluate(r.prof, d.rs) {
			a.Shipment, a.Device = d.shipment, dev
			a.Scenario = r.attribute(&a)
			t.Alarms = append(t.Alarms, a)
		}
	}
	return t
}

// attribute names the scenario an alarm comes from: the latest injection on
// its shipment (and device, for a device fault) that began before it.
func (r *Recorder) attribute(a *Alarm) string {
	best := ""
	var at time.Time
	for _, in := range r.inj {
		// An offline logger's container has an excursion that every device sees.
		if in.Shipment != a.Shipment || in.Device != "" && in.Device != a.Device && in.Scenario != OfflineBurst {
			continue
		}
		// A skewed clock stamps readings ahead of the injection's true
		// time; a data gap starts at the reading before the injection.
		if !in.Start.After(a.Start.Add(clockSkew+r.cfg.Interval)) && !in.Start.Before(at) {
			best, at = in.Name, in.Start
		}
	}
	return best
}

// evReading is one valid reading as the reference evaluator sees it.
type evReading struct {
	t    time.Time
	id   string
	v    float64
	late bool // arrived out of order
}

type ruleKind uint8

const (
	kindPoint ruleKind = iota + 1
	kindRun
	kindBudget
	kindMKT
)

type ruleSpec struct {
	name  string
	kind  ruleKind
	high  bool
	incl  bool // beyond includes equality (instant_low)
	thr   float64
	clr   float64
	delay time.Duration // run
	total time.Duration // budget
	dir   int           // budget: 0 high, 1 low
	sev   string
}

func (s *ruleSpec) beyond(v float64) bool {
	if s.high {
		return v > s.thr || s.incl && v == s.thr
	}
	return v < s.thr || s.incl && v == s.thr
}

func (s *ruleSpec) inside(v float64) bool {
	if s.high {
		return v <= s.clr
	}
	return v >= s.clr
}

func (p Profile) specs() []ruleSpec {
	db := p.Deadband
	return []ruleSpec{
		{name: "pre_alarm_high", kind: kindPoint, high: true, thr: p.PreHigh, clr: p.PreHigh - db, sev: "warning"},
		{name: "pre_alarm_low", kind: kindPoint, thr: p.PreLow, clr: p.PreLow + db, sev: "warning"},
		{name: "single_event_high", kind: kindRun, high: true, thr: p.High, clr: p.High - db, delay: p.HighDelay, sev: "alarm"},
		{name: "single_event_low", kind: kindRun, thr: p.Low, clr: p.Low + db, delay: p.LowDelay, sev: "alarm"},
		{name: "cumulative_high", kind: kindBudget, high: true, thr: p.High, clr: p.High - db, total: p.HighBudget, dir: 0, sev: "alarm"},
		{name: "cumulative_low", kind: kindBudget, thr: p.Low, clr: p.Low + db, total: p.LowBudget, dir: 1, sev: "alarm"},
		{name: "instant_high", kind: kindPoint, high: true, thr: p.InstantHigh, clr: p.InstantHigh - db, sev: "alarm"},
		{name: "instant_low", kind: kindPoint, incl: true, thr: p.InstantLow, clr: p.InstantLow + db, sev: "alarm"},
		{name: "mkt", kind: kindMKT, high: true, thr: p.MKTLimit, clr: p.MKTLimit - db, sev: "alarm"},
	}
}

// tracker follows one rule while a run beyond its threshold or an open
// alert is going on.
type tracker struct {
	spec   *ruleSpec
	open   bool
	start  time.Time
	opened time.Time
	clear  time.Time // start of the current clear run; zero when none
	peak   float64
	late   bool
}

// evaluate is the reference implementation of the detector's rules over one
// device's readings: slow and literal, written from issue 4 and the
// detector's documented conventions, to cross-check it.
func evaluate(p Profile, in []evReading) []Alarm {
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b evReading) int {
		return cmp.Or(a.t.Compare(b.t), cmp.Compare(a.id, b.id))
	})
	specs := p.specs()
	gapLimit := time.Duration(p.GapFactor * float64(p.Interval))
	var (
		out   []Alarm
		trs   []*tracker
		cum   [2]time.Duration
		mk    = kinetic{window: p.MKTWindow, dhr: p.DeltaHOverR}
		mktC  = math.NaN()
		known time.Duration
	)
	emit := func(t *tracker, end *time.Time) {
		a := Alarm{Rule: t.spec.name, Severity: t.spec.sev, Start: t.start.UTC(), Opened: t.opened.UTC(), End: end, PeakC: t.peak, Late: t.late}
		if t.spec.kind == kindMKT {
			a.PeakC = math.Round(a.PeakC*100) / 100
			a.ToleranceS = 3600
		}
		out = append(out, a)
	}
	openAt := func(t *tracker, m time.Time, e *evReading) {
		t.open, t.opened = true, m
		t.late = t.late || e.late
	}
	for i := range rs {
		e := &rs[i]
		if i > 0 {
			last := &rs[i-1]
			a, b := last.t, e.t
			prevMKT := mktC
			ok := b.Sub(a) <= gapLimit
			if ok && b.After(a) {
				mk.add(a, b, last.v)
			}
			mktC, known = mk.value(b)
			if !ok {
				end := b.UTC()
				out = append(out, Alarm{Rule: "data_gap", Severity: "alarm", Start: a.UTC(), Opened: a.Add(gapLimit).UTC(), End: &end, PeakC: last.v, Late: e.late})
				trs = slices.DeleteFunc(trs, func(t *tracker) bool { return !t.open })
				for _, t := range trs {
					t.clear = time.Time{}
				}
			}
			if ok && b.After(a) {
				// The span [a, b) at the last reading's value.
				dt := b.Sub(a)
				before := cum
				if specs[4].beyond(last.v) {
					cum[0] += dt
				}
				if specs[5].beyond(last.v) {
					cum[1] += dt
				}
				trs = slices.DeleteFunc(trs, func(t *tracker) bool {
					sp := t.spec
					val := last.v
					if sp.kind == kindMKT {
						val = prevMKT
					}
					switch {
					case sp.beyond(val) && t.open:
					case sp.beyond(val) && sp.kind == kindRun:
						if b.Sub(t.start) >= sp.delay {
							openAt(t, t.start.Add(sp.delay), e)
						}
					case sp.beyond(val) && sp.kind == kindBudget:
						if cum[sp.dir] >= sp.total {
							openAt(t, maxTime(a.Add(sp.total-before[sp.dir]), a), e)
						}
					case t.open && !t.clear.IsZero() && sp.inside(val) && b.Sub(t.clear) >= p.ClearDelay:
						end := t.clear.UTC()
						emit(t, &end)
						return true
					}
					return false
				})
			}
		}
		mktOK := known >= p.MKTMinKnown && !math.IsNaN(mktC)
		for k := range specs {
			sp := &specs[k]
			val := e.v
			if sp.kind == kindMKT {
				if !mktOK {
					continue
				}
				val = mktC
			}
			j := slices.IndexFunc(trs, func(t *tracker) bool { return t.spec == sp })
			if sp.beyond(val) {
				if j >= 0 {
					t := trs[j]
					if sp.high && val > t.peak || !sp.high && val < t.peak {
						t.peak = val
					}
					t.clear = time.Time{}
					continue
				}
				t := &tracker{spec: sp, start: e.t, peak: val, late: e.late}
				trs = append(trs, t)
				switch {
				case sp.kind == kindPoint || sp.kind == kindMKT:
					openAt(t, e.t, e)
				case sp.kind == kindBudget && cum[sp.dir] >= sp.total:
					openAt(t, e.t, e)
				}
				continue
			}
			if j < 0 {
				continue
			}
			t := trs[j]
			switch {
			case !t.open:
				trs = slices.Delete(trs, j, j+1)
			case sp.inside(val):
				if t.clear.IsZero() {
					t.clear = e.t
				}
			default:
				t.clear = time.Time{}
			}
		}
	}
	for _, t := range trs {
		if t.open {
			emit(t, nil)
		}
	}
	slices.SortStableFunc(out, func(a, b Alarm) int { return a.Start.Compare(b.Start) })
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// kinetic is the Mean Kinetic Temperature of USP <1079.2> over a trailing
// device-time window, computed exactly from the known spans in it.
type kinetic struct {
	window time.Duration
	dhr    float64 // ΔH/R, K
	spans  []mspan
}

type mspan struct {
	a, b time.Time
	w    float64 // e^(ΔH/R·(1/Tref − 1/T)), relative to Tref = 5 °C
}

const kelvin = 273.15

func (m *kinetic) add(a, b time.Time, v float64) {
	w := math.Exp(m.dhr * (1/(setpointC+kelvin) - 1/(v+kelvin)))
	m.spans = append(m.spans, mspan{a, b, w})
}

// value returns the MKT over [t − window, t) in °C (NaN without known time)
// and the known time it rests on.
func (m *kinetic) value(t time.Time) (float64, time.Duration) {
	lo := t.Add(-m.window)
	n := 0
	for n < len(m.spans) && !m.spans[n].b.After(lo) {
		n++
	}
	m.spans = m.spans[n:]
	var sw, sk float64
	for _, s := range m.spans {
		d := s.b.Sub(maxTime(s.a, lo)).Seconds()
		sw += s.w * d
		sk += d
	}
	if sk <= 0 {
		return math.NaN(), 0
	}
	return m.dhr/(m.dhr/(setpointC+kelvin)-math.Log(sw/sk)) - kelvin, time.Duration(sk * float64(time.Second))
}
