package simulator

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Scenario timings, device time.
const (
	compressorFailureFor = 12 * time.Hour
	powerLossFor         = 3 * time.Hour
	doorOpenFor          = 90 * time.Minute
	freezingFor          = 3 * time.Hour
	shortPulses          = 6
	shortPulseEvery      = 3 * time.Hour
	shortPulseFor        = 18 * time.Minute
	shortPulseHeat       = 0.3 // °C per minute
	stuckFor             = 8 * time.Hour
	dropoutFor           = 50 * time.Minute
	offlineFor           = 6 * time.Hour
	offlineHeatAfter     = 2 * time.Hour
	offlineHeatFor       = 50 * time.Minute
	offlineHeat          = 0.2 // °C per minute
	clockSkew            = 150 * time.Second
	clockJumpAhead       = 366 * 24 * time.Hour
	duplicateFor         = 2 * time.Hour
	reuploadAfter        = 4 * time.Hour
	reuploadSpan         = 24 * time.Hour
	malformedEvery       = 10 * time.Minute
	// loggerBatch is how many readings a data logger uploads at once.
	loggerBatch = 3
	// maxBatch is the gateway's limit on records per message.
	maxBatch = 10000
)

// Injection is one scenario placed on a shipment, as the ground truth
// lists it. Times are device time (the true time, before any clock skew).
type Injection struct {
	Scenario Scenario `json:"-"`
	Name     string   `json:"scenario"`
	Shipment string   `json:"shipment"`
	// Device is the faulty device; "" when the whole container is affected.
	Device string    `json:"device,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Detail string    `json:"detail"`
}

// DeviceInfo describes one simulated device.
type DeviceInfo struct {
	ID string `json:"id"`
	// Kind is "reefer" (the unit's controller, return-air probe, GPS) or "logger".
	Kind  string `json:"kind"`
	Probe string `json:"probe"`
}

// ShipmentInfo describes one simulated shipment.
type ShipmentInfo struct {
	ID      string       `json:"id"`
	Devices []DeviceInfo `json:"devices"`
	// Route names the sites in order.
	Route []string `json:"route"`
	// RouteOffset is how far along its route the shipment is at the start.
	RouteOffset string `json:"route_offset"`
}

// Generator produces a fleet's messages in device-time order. It is a pure
// function of its Config and the device times it is advanced to: it does
// no I/O and reads no clock. It is not safe for concurrent use.
type Generator struct {
	cfg   Config
	ships []*shipment
	inj   []Injection
	end   time.Time
}

type shipment struct {
	idx      int
	id       string
	rng      *rand.Rand
	offset   time.Duration // route time at cfg.Start
	th       thermal
	devs     []*device
	t        time.Time // start of the next model step
	leg      int
	seal     string
	faults   []*fault
	out      []Message
	inspects bool // customs inspection at Jebel Ali done
}

type device struct {
	idx     int
	id      string
	reefer  bool
	probe   probe
	rng     *rand.Rand
	seq     uint64
	next    time.Time // device time of the next reading
	pending []item
	offline []item
	history []item // valid readings sent, kept only for the duplicates scenario
	battery float64
	stuck   float64
	isStuck bool
}

type fault struct {
	s     Scenario
	on    time.Time
	dev   int // target device index; -1 for the container
	k     int // events of the fault done so far
	flush bool
}

// NewGenerator returns a generator for cfg.
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{cfg: cfg, end: cfg.Start.Add(cfg.Span)}
	tag := cfg.Start.UTC().Format("060102T1504")
	perShip := make([][]Scenario, cfg.Shipments)
	for i, s := range cfg.Scenarios {
		perShip[i%cfg.Shipments] = append(perShip[i%cfg.Shipments], s)
	}
	for k := range cfg.Shipments {
		id := fmt.Sprintf("SHP-%d-%s-%02d", cfg.Seed, tag, k+1)
		if cfg.Seed < 0 {
			id = fmt.Sprintf("SHP-m%d-%s-%02d", -cfg.Seed, tag, k+1)
		}
		s := &shipment{idx: k, id: id, rng: newRand(cfg.Seed, id), t: cfg.Start}
		s.offset = time.Duration(k*37) * time.Hour % (routeLength - 24*time.Hour)
		s.leg = locate(s.offset, cfg.Start).leg
		s.th = newThermal(cfg.Start, time.Duration(s.rng.Int64N(int64(defrostEvery))))
		s.seal = fmt.Sprintf("CN%07d", s.rng.IntN(10000000))
		for d := range cfg.Devices {
			dv := &device{idx: d, reefer: d == 0, battery: 3.6 - 0.1*s.rng.Float64()}
			if dv.reefer {
				dv.id = fmt.Sprintf("%s-R%d", id, d+1)
				dv.probe = probe{kind: record.ProbeAir}
				dv.battery = 13.6
			} else {
				dv.id = fmt.Sprintf("%s-L%d", id, d+1)
				dv.probe = probe{kind: record.ProbeBuffered, offset: -0.15 + 0.3*s.rng.Float64()}
				if d%2 == 0 {
					dv.probe.kind = record.ProbeAir
				}
			}
			dv.probe.value = setpointC + dv.probe.offset
			dv.rng = newRand(cfg.Seed, dv.id)
			dv.next = cfg.Start.Add(time.Duration(d) * 7 * time.Second % cfg.Interval)
			s.devs = append(s.devs, dv)
		}
		target := cfg.Devices - 1 // the last logger, or the reefer alone
		slot := cfg.Span / time.Duration(max(len(perShip[k]), 1))
		for j, sc := range perShip[k] {
			f := &fault{s: sc, on: cfg.Start.Add(time.Duration(j)*slot + slot/4).Truncate(time.Second), dev: -1}
			switch sc {
			case StuckSensor, OutOfRange, NaN, Dropout, OfflineBurst, ClockSkew, Duplicates, Malformed:
				f.dev = target
			}
			s.faults = append(s.faults, f)
			g.inj = append(g.inj, s.injection(f, cfg.Transport))
		}
		g.ships = append(g.ships, s)
	}
	return g, nil
}

func newRand(seed int64, id string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(id))
	return rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
}

// End returns the device time the simulation ends.
func (g *Generator) End() time.Time { return g.end }

// Injections returns the scenarios placed on the shipments.
func (g *Generator) Injections() []Injection { return slices.Clone(g.inj) }

// Shipments describes the shipments and their devices.
func (g *Generator) Shipments() []ShipmentInfo {
	var out []ShipmentInfo
	var sites []string
	for _, l := range route {
		if l.site != nil {
			sites = append(sites, l.site.id)
		}
	}
	for _, s := range g.ships {
		si := ShipmentInfo{ID: s.id, Route: sites, RouteOffset: s.offset.String()}
		for _, d := range s.devs {
			kind := "logger"
			if d.reefer {
				kind = "reefer"
			}
			si.Devices = append(si.Devices, DeviceInfo{ID: d.id, Kind: kind, Probe: d.probe.kind.String()})
		}
		out = append(out, si)
	}
	return out
}

func (s *shipment) injection(f *fault, tr Transport) Injection {
	in := Injection{Scenario: f.s, Name: f.s.String(), Shipment: s.id, Start: f.on}
	if f.dev >= 0 {
		in.Device = s.devs[f.dev].id
	}
	var d time.Duration
	switch f.s {
	case CompressorFailure:
		d, in.Detail = compressorFailureFor, "compressor failed at sea (reefer mode alarm): slow rise towards ambient, pulled down when repaired"
	case PowerLoss:
		d, in.Detail = powerLossFor, "unplugged on a hot quay (reefer mode off, telematics on battery)"
	case DoorOpen:
		d, in.Detail = doorOpenFor, "doors left open at a 30 °C dock, unit running (door_open true)"
	case Freezing:
		d, in.Detail = freezingFor, "setpoint keyed in as −5 °C"
	case ShortExcursions:
		d, in.Detail = (shortPulses-1)*shortPulseEvery+shortPulseFor, fmt.Sprintf("%d heat pulses of %v every %v (high-pressure cut-outs): each about 15 min above 8 °C", shortPulses, shortPulseFor, shortPulseEvery)
	case StuckSensor:
		d, in.Detail = stuckFor, "the probe repeats one value: no alarm can see it"
	case OutOfRange:
		d, in.Detail = 2*time.Hour+time.Second, "probe short: 150 and −273.15 °C (rejected, out_of_range), then 85 °C (accepted: instant alarm)"
	case NaN:
		d, in.Detail = time.Hour+time.Second, "NaN alone and Infinity inside a batch (rejected, not_finite)"
	case Dropout:
		d, in.Detail = dropoutFor, "no readings taken"
	case OfflineBurst:
		d, in.Detail = offlineFor, fmt.Sprintf("offline, then uploads the %v newest first in one batch; the container has a %v heat pulse %v in", offlineFor, offlineHeatFor, offlineHeatAfter)
	case ClockSkew:
		in.Start = s.devs[f.dev].next
		d, in.Detail = f.on.Sub(in.Start)+6*time.Hour, fmt.Sprintf("clock %v ahead throughout; at %s three readings a year ahead (future_timestamp), then two from 1970 (bad_timestamp)", clockSkew, f.on.Format(time.RFC3339))
	case Duplicates:
		d, in.Detail = reuploadAfter, fmt.Sprintf("every message sent twice for %v, then the last %v re-uploaded: stored once", duplicateFor, reuploadSpan)
	case Malformed:
		d, in.Detail = 12*malformedEvery, "one message of each kind of garbage (see rejected)"
		if tr == TransportHTTP {
			in.Detail += "; the topic faults exist only over MQTT"
		}
	}
	in.End = f.on.Add(d)
	return in
}

// Advance runs the fleet up to device time to and returns the messages
// sent in (previous to, to], in send order. It is deterministic: the same
// Config and the same sequence of to values give the same messages, and
// the messages do not depend on how device time is cut into calls.
func (g *Generator) Advance(to time.Time) []Message {
	to = minTime(to, g.end)
	var out []Message
	for _, s := range g.ships {
		s.out = s.out[:0]
		for !s.t.Add(modelStep).After(to) {
			s.step(g.cfg)
		}
		out = append(out, s.out...)
	}
	slices.SortStableFunc(out, func(a, b Message) int { return a.SendAt.Compare(b.SendAt) })
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s *shipment) active(sc Scenario, t time.Time, d time.Duration) (*fault, bool) {
	for _, f := range s.faults {
		if f.s == sc && !t.Before(f.on) && t.Before(f.on.Add(d)) {
			return f, true
		}
	}
	return nil, false
}

func (s *shipment) faultOn(dev int, sc Scenario) *fault {
	for _, f := range s.faults {
		if f.s == sc && f.dev == dev {
			return f
		}
	}
	return nil
}

// step runs one model step [s.t, s.t+modelStep).
func (s *shipment) step(cfg Config) {
	t := s.t
	w := locate(s.offset+t.Sub(cfg.Start), t)
	if w.leg != s.leg {
		s.handovers(cfg, s.leg, w.leg, t)
		s.leg = w.leg
	}
	f := forcing{ambient: w.ambient, doorAmbient: 20, setpoint: setpointC, powered: true}
	l := &route[w.leg]
	if w.place == atTerminal && (w.sinceArrival < 25*time.Minute || w.untilDeparture >= 0 && w.untilDeparture <= 25*time.Minute) {
		// Moved between vessel and reefer stack by straddle carrier: unplugged in the sun.
		f.powered, f.ambient = false, f.ambient+3
	}
	if w.place == atWarehouse && l.site != nil {
		// Loading check before departure and unloading check on arrival,
		// at an air-conditioned dock.
		if w.untilDeparture > 60*time.Minute && w.untilDeparture <= 70*time.Minute || w.leg == len(route)-1 && w.sinceArrival >= 30*time.Minute && w.sinceArrival < 40*time.Minute {
			f.door = true
		}
	}
	if l.site != nil && l.site.id == "AE-JEA-T2" && w.sinceArrival >= 3*time.Hour && w.sinceArrival < 3*time.Hour+2*time.Minute {
		// Customs inspection in a covered bay: a look inside, a new seal.
		f.door, f.doorAmbient = true, 30
		if !s.inspects {
			s.inspects = true
			old := s.seal
			s.seal = fmt.Sprintf("AE%07d", s.rng.IntN(10000000))
			s.customs(l.site, t, old)
		}
	}
	if _, ok := s.active(CompressorFailure, t, compressorFailureFor); ok {
		f.broken = true
	}
	if _, ok := s.active(PowerLoss, t, powerLossFor); ok {
		f.powered, f.ambient = false, max(f.ambient, 33)+3
	}
	if _, ok := s.active(DoorOpen, t, doorOpenFor); ok {
		f.door, f.doorAmbient = true, 30
	}
	if _, ok := s.active(Freezing, t, freezingFor); ok {
		f.setpoint = -5
	}
	if p, ok := s.active(ShortExcursions, t, shortPulses*shortPulseEvery); ok {
		if t.Sub(p.on)%shortPulseEvery < shortPulseFor {
			f.cutout, f.heat = true, shortPulseHeat
		}
	}
	if p, ok := s.active(OfflineBurst, t, offlineFor); ok {
		if since := t.Sub(p.on); since >= offlineHeatAfter && since < offlineHeatAfter+offlineHeatFor {
			f.cutout, f.heat = true, offlineHeat
		}
	}
	for _, d := range s.devs {
		for d.next.Before(t.Add(modelStep)) {
			s.sample(cfg, d, d.next, w, f)
			d.next = d.next.Add(cfg.Interval)
		}
	}
	for _, f := range s.faults {
		if f.s == Malformed && f.k < len(malformedKinds) && !t.Before(f.on.Add(time.Duration(f.k)*malformedEvery)) {
			s.malformed(cfg, s.devs[f.dev], f, t)
		}
	}
	s.th.step(t, f)
	for _, d := range s.devs {
		d.probe.step(s.th.air)
	}
	s.t = t.Add(modelStep)
}

// handovers emits the custody events of moving from leg a to leg b at
// about device time t. Both sides record each transfer, at the site where
// it happens: leaving a stay, the site releases to the carrier and the
// carrier's receive (the driver's or the line's signature at the gate)
// confirms it; arriving, the carrier releases to the site and the site
// receives. Every release is thus matched within seconds, under the seal
// of the moment, and the custody checks pass on a shipment without a fault.
func (s *shipment) handovers(cfg Config, a, b int, t time.Time) {
	// The exact boundary: route time of leg b's start, in device time.
	var at time.Duration
	for i := range b {
		at += route[i].dur
	}
	when := cfg.Start.Add(at - s.offset)
	temp := math.Round(s.th.air*10) / 10
	for i := a; i <= b; i++ {
		l := &route[i]
		if l.site == nil {
			continue
		}
		var from, to, side string
		switch {
		case i == a && i < len(route)-1:
			from, to, side = l.site.party, route[i+1].carrier, "out"
		case i == b:
			from, to, side = route[i-1].carrier, l.site.party, "in"
		default:
			continue
		}
		s.emit(s.handover(l.site, side, record.HandoverRelease, from, to, when, temp,
			"released to "+to+", seal "+s.seal+" intact"))
		s.emit(s.handover(l.site, side, record.HandoverReceive, from, to, when, temp,
			"received from "+from+", seal "+s.seal+" checked"))
	}
}

// customs emits the customs hold of an inspection at site st from when,
// and its release two minutes later under the new seal.
func (s *shipment) customs(st *site, when time.Time, oldSeal string) {
	temp := math.Round(s.th.air*10) / 10
	s.emit(s.handover(st, "insp", record.HandoverCustomsHold, st.party, customsParty, when, temp,
		"held for inspection, seal "+oldSeal+" cut"))
	s.emit(s.handover(st, "insp", record.HandoverCustomsRelease, customsParty, st.party, when.Add(2*time.Minute), temp,
		"released after inspection, new seal "+s.seal))
}

// customsParty inspects shipments at the Gulf port.
const customsParty = "Dubai Customs"

// emit queues a handover message at its device time.
func (s *shipment) emit(h item) {
	s.out = append(s.out, Message{SendAt: h.ts, Kind: record.KindHandover, Shipment: s.id, items: []item{h}})
}

func (s *shipment) handover(st *site, side string, kind record.HandoverKind, from, to string, when time.Time, temp float64, note string) item {
	id := fmt.Sprintf("%s-%s-%s-%s", s.id, st.id, side, kind)
	b := make([]byte, 0, 320)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, id)
	b = append(b, `,"ts":"`...)
	b = when.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","site":"`...)
	b = append(b, st.id...)
	b = append(b, `","kind":"`...)
	b = append(b, kind.String()...)
	b = append(b, `","from_party":`...)
	b = strconv.AppendQuote(b, from)
	b = append(b, `,"to_party":`...)
	b = strconv.AppendQuote(b, to)
	b = appendNum(append(b, `,"lat":`...), st.lat, 4)
	b = appendNum(append(b, `,"lon":`...), st.lon, 4)
	b = appendNum(append(b, `,"temp_c":`...), temp, 1)
	b = append(b, `,"seal":`...)
	b = strconv.AppendQuote(b, s.seal)
	b = append(b, `,"note":`...)
	b = strconv.AppendQuote(b, note)
	b = append(b, '}')
	return item{json: b, id: id, ts: when}
}

// appendNum appends v rounded to places decimals, in the shortest form.
func appendNum(b []byte, v float64, places int) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "Infinity"...)
	case math.IsInf(v, -1):
		return append(b, "-Infinity"...)
	}
	p := math.Pow10(places)
	v = math.Round(v*p) / p
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// reading is what a device measured, before it is encoded.
type reading struct {
	seq     uint64
	ts      time.Time
	tempC   float64
	places  int
	w       where
	f       forcing
	mode    record.Mode
	supply  float64
	on      bool
	battery float64
	rh      float64
}

// sample takes device d's reading at device time at.
func (s *shipment) sample(cfg Config, d *device, at time.Time, w where, f forcing) {
	if fl := s.faultOn(d.idx, Dropout); fl != nil && !at.Before(fl.on) && at.Before(fl.on.Add(dropoutFor)) {
		return // no reading taken, no seq used
	}
	r := reading{ts: at, w: w, f: f, mode: s.th.mode, supply: s.th.supply, on: s.th.on, places: 2}
	noise := 0.02
	if d.reefer {
		r.places, noise = 1, 0.05
		if f.powered {
			d.battery = 13.6
		} else {
			d.battery = max(d.battery-0.3*cfg.Interval.Hours(), 11.2)
		}
	} else {
		d.battery -= 0.002 * cfg.Interval.Hours() / 24
		r.rh = min(max(68+6*math.Sin(float64(at.Unix())/7200)+d.rng.NormFloat64(), 0), 100)
	}
	r.battery = d.battery
	r.tempC = d.probe.value + noise*d.rng.NormFloat64()
	d.seq++
	r.seq = d.seq
	it := item{}
	var scenario Scenario

	if fl := s.faultOn(d.idx, StuckSensor); fl != nil {
		switch {
		case at.Before(fl.on) || !at.Before(fl.on.Add(stuckFor)):
			d.isStuck = false
		case !d.isStuck:
			d.isStuck, d.stuck = true, r.tempC
		}
		if d.isStuck {
			r.tempC, scenario = d.stuck, StuckSensor
		}
	}
	alone := false
	if fl := s.faultOn(d.idx, OutOfRange); fl != nil && fl.k < 3 && !at.Before(fl.on.Add(time.Duration(fl.k)*time.Hour)) {
		r.tempC = [...]float64{150, -273.15, 85}[fl.k]
		if fl.k < 2 {
			it.reject = &Rejection{Reason: record.ReasonOutOfRange.String(), Field: "temp_c"}
		}
		fl.k++
		scenario = OutOfRange
	}
	if fl := s.faultOn(d.idx, NaN); fl != nil && fl.k < 2 && !at.Before(fl.on.Add(time.Duration(fl.k)*time.Hour)) {
		r.tempC = [...]float64{math.NaN(), math.Inf(1)}[fl.k]
		alone = fl.k == 0
		it.reject = &Rejection{Reason: record.ReasonNotFinite.String(), Field: "temp_c"}
		fl.k++
		scenario = NaN
	}
	if fl := s.faultOn(d.idx, ClockSkew); fl != nil {
		r.ts = at.Add(clockSkew)
		if !at.Before(fl.on) && fl.k < 5 {
			if fl.k < 3 {
				r.ts = at.Add(clockJumpAhead)
				it.reject = &Rejection{Reason: record.ReasonFutureTimestamp.String(), Field: "ts"}
			} else {
				r.ts = time.Unix(0, 0).UTC().Add(at.Sub(fl.on))
				it.reject = &Rejection{Reason: record.ReasonBadTimestamp.String(), Field: "ts"}
			}
			fl.k++
			scenario = ClockSkew
		}
	}
	if !math.IsNaN(r.tempC) && !math.IsInf(r.tempC, 0) {
		// The value as sent: what the gateway stores and the detector judges.
		p := math.Pow10(r.places)
		r.tempC = math.Round(r.tempC*p) / p
	}
	it.json = s.encode(d, &r)
	if cfg.Sign != nil && it.reject == nil {
		if key := cfg.Sign(d.id); key != nil {
			signed, err := record.SignReading(it.json, record.Scope{Shipment: s.id, Device: d.id}, key)
			if err != nil {
				panic(fmt.Sprintf("simulator: signing a valid reading of %s: %v", d.id, err))
			}
			it.json = signed
		}
	}
	it.seq, it.ts, it.tempC, it.scenario = r.seq, r.ts, r.tempC, scenario
	it.defrost = d.reefer && r.mode == record.ModeDefrost
	it.door = d.reefer && f.door

	if fl := s.faultOn(d.idx, OfflineBurst); fl != nil {
		switch {
		case !at.Before(fl.on) && at.Before(fl.on.Add(offlineFor)):
			if !fl.flush {
				s.flush(d, at)
				fl.flush = true
			}
			d.offline = append(d.offline, it)
			return
		case len(d.offline) > 0:
			slices.Reverse(d.offline)
			for chunk := range slices.Chunk(d.offline, maxBatch) {
				s.out = append(s.out, Message{SendAt: at, Kind: record.KindReading, Shipment: s.id, Device: d.id,
					Scenario: OfflineBurst, items: slices.Clone(chunk), array: true})
			}
			d.offline = nil
		}
	}
	if alone {
		s.flush(d, at)
		s.send(d, at, []item{it}, false)
		return
	}
	d.pending = append(d.pending, it)
	if d.reefer || len(d.pending) >= loggerBatch {
		s.flush(d, at)
	}
}

// flush sends device d's pending readings at device time at.
func (s *shipment) flush(d *device, at time.Time) {
	if len(d.pending) == 0 {
		return
	}
	s.send(d, at, d.pending, !d.reefer)
	d.pending = nil
}

func (s *shipment) send(d *device, at time.Time, items []item, array bool) {
	m := Message{SendAt: at, Kind: record.KindReading, Shipment: s.id, Device: d.id, items: items, array: array}
	for _, it := range items {
		if it.scenario != 0 {
			m.Scenario = it.scenario
		}
	}
	s.out = append(s.out, m)
	fl := s.faultOn(d.idx, Duplicates)
	if fl == nil {
		return
	}
	for _, it := range items {
		if it.reject == nil {
			d.history = append(d.history, it)
		}
	}
	if !at.Before(fl.on) && at.Before(fl.on.Add(duplicateFor)) {
		// The PUBACK was lost: the device sends the same message again.
		m.Resend, m.Scenario = true, Duplicates
		s.out = append(s.out, m)
	}
	if fl.k == 0 && !at.Before(fl.on.Add(reuploadAfter)) {
		fl.k++
		var again []item
		for _, it := range d.history {
			if !it.ts.Before(at.Add(-reuploadSpan)) {
				again = append(again, it)
			}
		}
		for chunk := range slices.Chunk(again, maxBatch) {
			s.out = append(s.out, Message{SendAt: at, Kind: record.KindReading, Shipment: s.id, Device: d.id,
				Scenario: Duplicates, Resend: true, items: slices.Clone(chunk), array: true})
		}
	}
	if len(d.history) > 0 && d.history[0].ts.Before(at.Add(-2*reuploadSpan)) {
		d.history = slices.Delete(d.history, 0, len(d.history)/2)
	}
}

// encode writes reading r of device d in the wire format.
func (s *shipment) encode(d *device, r *reading) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.seq, 10)
	b = append(b, `,"ts":"`...)
	b = r.ts.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","temp_c":`...)
	b = appendNum(b, r.tempC, r.places)
	b = append(b, `,"probe":"`...)
	b = append(b, d.probe.kind.String()...)
	b = append(b, '"')
	if d.reefer {
		b = appendNum(append(b, `,"lat":`...), r.w.lat, 4)
		b = appendNum(append(b, `,"lon":`...), r.w.lon, 4)
		b = strconv.AppendBool(append(b, `,"door_open":`...), r.f.door)
		b = appendNum(append(b, `,"battery_v":`...), r.battery, 2)
		b = append(b, `,"reefer":{"mode":"`...)
		b = append(b, r.mode.String()...)
		b = appendNum(append(b, `","setpoint_c":`...), r.f.setpoint, 1)
		if r.f.powered {
			b = appendNum(append(b, `,"supply_c":`...), r.supply+0.05*d.rng.NormFloat64(), 1)
			b = appendNum(append(b, `,"return_c":`...), r.tempC, 1)
		}
		b = strconv.AppendBool(append(b, `},"ext":{"compressor_on":`...), r.on)
		b = append(b, '}')
	} else {
		b = appendNum(append(b, `,"rh":`...), r.rh, 1)
		b = appendNum(append(b, `,"battery_v":`...), r.battery, 3)
	}
	return append(b, '}')
}

// malformedKinds names the garbage the Malformed scenario sends, in order.
var malformedKinds = [...]string{
	"truncated", "missing_ts", "ts_without_offset", "unknown_member", "seq_as_string", "null_member",
	"duplicate_member", "bad_reefer_mode", "bad_handover_kind", "invalid_device_id", "device_contradicts_topic", "unknown_topic",
}

// malformed sends fault f's next garbage message from device d at device time t.
func (s *shipment) malformed(cfg Config, d *device, f *fault, t time.Time) {
	k := f.k
	f.k++
	mqtt := cfg.Transport == TransportMQTT
	if k >= 10 && !mqtt {
		return // no topic over HTTP
	}
	d.seq++
	ts := t.UTC().Format(time.RFC3339)
	head := `{"seq":` + strconv.FormatUint(d.seq, 10) + `,"ts":"` + ts + `"`
	m := Message{SendAt: t, Kind: record.KindReading, Shipment: s.id, Device: d.id, Scenario: Malformed}
	one := func(js string, reason record.Reason, field string) {
		m.items = []item{{json: []byte(js), seq: d.seq, ts: t, scenario: Malformed,
			reject: &Rejection{Reason: reason.String(), Field: field}}}
	}
	switch malformedKinds[k] {
	case "truncated":
		m.raw = []byte(head + `,"temp_c":4.`)
		m.reject = &Rejection{Reason: record.ReasonMalformedJSON.String()}
	case "missing_ts":
		one(`{"seq":`+strconv.FormatUint(d.seq, 10)+`,"temp_c":5.1}`, record.ReasonMissingField, "ts")
	case "ts_without_offset":
		one(`{"seq":`+strconv.FormatUint(d.seq, 10)+`,"ts":"`+t.UTC().Format("2006-01-02T15:04:05")+`","temp_c":5.1}`, record.ReasonBadTimestamp, "ts")
	case "unknown_member":
		one(head+`,"temp_c":5.1,"temp_f":41.2}`, record.ReasonUnknownField, "temp_f")
	case "seq_as_string":
		one(`{"seq":"`+strconv.FormatUint(d.seq, 10)+`","ts":"`+ts+`","temp_c":5.1}`, record.ReasonWrongType, "seq")
	case "null_member":
		one(head+`,"temp_c":5.1,"rh":null}`, record.ReasonWrongType, "rh")
	case "duplicate_member":
		one(head+`,"temp_c":5.1,"temp_c":5.2}`, record.ReasonDuplicateField, "temp_c")
	case "bad_reefer_mode":
		one(head+`,"temp_c":5.1,"reefer":{"mode":"eco"}}`, record.ReasonBadValue, "reefer.mode")
	case "bad_handover_kind":
		m.Kind, m.Device = record.KindHandover, ""
		id := s.id + "-HX-transfer"
		m.items = []item{{json: []byte(`{"id":"` + id + `","ts":"` + ts + `","site":"SG-PSA-PPJ","kind":"transfer","from_party":"Ocean Reefer Line","to_party":"PSA Singapore Pasir Panjang"}`),
			id: id, ts: t, scenario: Malformed, reject: &Rejection{Reason: record.ReasonBadValue.String(), Field: "kind"}}}
	case "invalid_device_id":
		// A logger whose id was typed by hand, with a space.
		m.Device = "logger " + strconv.Itoa(d.idx+1)
		one(head+`,"temp_c":5.1}`, record.ReasonInvalidID, "device")
		if mqtt {
			m.items[0].reject = nil
			m.reject = &Rejection{Reason: record.ReasonInvalidID.String(), Field: "topic"}
		}
	case "device_contradicts_topic":
		one(head+`,"device":"`+s.devs[0].id+`X","temp_c":5.1}`, record.ReasonTopicMismatch, "device")
	case "unknown_topic":
		m.topic = "coldchain/v1/" + s.id + "/" + d.id + "/telemetry"
		one(head+`,"temp_c":5.1}`, 0, "")
		m.items[0].reject = nil
		m.reject = &Rejection{Reason: record.ReasonUnknownTopic.String()}
	}
	s.out = append(s.out, m)
}
