// Package custody is the pure core of the chain of custody: it derives a
// shipment's custody timeline from its handovers, on device time, and runs
// the checks a regulator asks of it.
//
// Like package excursion it does no I/O and never reads the clock: the
// caller passes the handovers, the readings the checks compare against and
// asOf, the latest device time it knows of (a release is overdue only once
// device time has passed its deadline). The result depends on the set of
// handovers, never on their order of arrival.
//
// A transfer of custody is recorded by both sides: the giver's release
// (from A to B) and the taker's receive (from A to B). Custody of B starts
// at the earliest of the two; depart and arrive move the holder between
// sites and transit; intake opens custody at a site; customs_hold and
// customs_release, and qc_checkpoint, are events within a period.
package custody

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/coldchain/coldchain/record"
)

// Config holds the checks' limits (custody.* in the configuration).
type Config struct {
	// MaxTransit is how long a release may wait for the matching receive.
	MaxTransit time.Duration `yaml:"max_transit"`
	// TempToleranceC is how far a handover's temp_c may be from the
	// shipment's logger readings at that time and still be validated.
	TempToleranceC float64 `yaml:"temp_tolerance_c"`
	// TempWindow is how near in device time a reading must be to a
	// handover to validate its temp_c.
	TempWindow time.Duration `yaml:"temp_window"`
	// CheckEvery is how often the gateway re-checks the shipments whose
	// records changed and raises failures as alerts.
	CheckEvery time.Duration `yaml:"check_every"`
}

// DefaultConfig is 72 h of transit, 1.0 °C of tolerance, readings within
// 15 min, a check every 10 s.
func DefaultConfig() Config {
	return Config{MaxTransit: 72 * time.Hour, TempToleranceC: 1.0, TempWindow: 15 * time.Minute, CheckEvery: 10 * time.Second}
}

// Validate says what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.MaxTransit <= 0:
		return fmt.Errorf("custody.max_transit must be positive, got %v", c.MaxTransit)
	case !(c.TempToleranceC > 0) || c.TempToleranceC > 10:
		return fmt.Errorf("custody.temp_tolerance_c must be in (0, 10] °C, got %v", c.TempToleranceC)
	case c.TempWindow <= 0 || c.TempWindow > 24*time.Hour:
		return fmt.Errorf("custody.temp_window must be in (0, 24h], got %v", c.TempWindow)
	case c.CheckEvery < 10*time.Millisecond:
		return fmt.Errorf("custody.check_every must be at least 10ms, got %v", c.CheckEvery)
	}
	return nil
}

// Reading is what the checks need of a logger reading.
type Reading struct {
	Device string
	Time   time.Time
	TempC  float64
}

// Result is a check's outcome.
type Result string

const (
	// Pass: the check holds.
	Pass Result = "pass"
	// Fail: it does not; the gateway raises an alert.
	Fail Result = "fail"
	// Pending: it cannot fail yet (a receive may still come).
	Pending Result = "pending"
	// Unverified: nothing to check against (no readings near a handover,
	// a seal recorded on one side only).
	Unverified Result = "unverified"
)

// The rules, the names of the alerts a failure raises.
const (
	RuleUnmatchedRelease = "unmatched_release"
	RuleSealMismatch     = "seal_mismatch"
	RuleTempNotValidated = "temp_not_validated"
	RuleAfterFinal       = "readings_after_final"
	RuleQC               = "qc_failed"
	RuleCustomsHold      = "customs_hold"
)

// Finding is one check of one handover (or device).
type Finding struct {
	Rule     string    `json:"rule"`
	Result   Result    `json:"result"`
	Handover string    `json:"handover,omitempty"`
	Device   string    `json:"device,omitempty"`
	At       time.Time `json:"at"` // the device time the finding is about
	Detail   string    `json:"detail"`
}

// Period is one stretch of custody: who held the shipment, where, from
// when to when.
type Period struct {
	Party string `json:"party"`
	// Site is where the party held it; empty while in transit.
	Site string    `json:"site,omitempty"`
	Lat  *float64  `json:"lat,omitempty"`
	Lon  *float64  `json:"lon,omitempty"`
	From time.Time `json:"from"`
	// To is when the period ended; nil while it lasts.
	To   *time.Time `json:"to,omitempty"`
	Seal string     `json:"seal,omitempty"`
	// Owner is who owned the goods (title) in the period, where the
	// handovers said (their owner member).
	Owner string `json:"owner,omitempty"`
	// OpenedBy and ClosedBy are the handovers that began and ended it.
	OpenedBy string `json:"opened_by"`
	ClosedBy string `json:"closed_by,omitempty"`
	// Confirmed is false for custody taken by a release the taker has
	// not (yet) confirmed with its receive, or a receive the giver did not
	// release.
	Confirmed bool `json:"confirmed"`
	// Held is set while customs holds the shipment in this period.
	Held bool `json:"customs_hold,omitempty"`
	// giver is the releasing party of a period a release opened.
	giver string
}

// Timeline is a shipment's custody as its handovers tell it.
type Timeline struct {
	Shipment  string            `json:"shipment"`
	Handovers []record.Handover `json:"-"`
	Custody   []Period          `json:"custody"`
	Checks    []Finding         `json:"checks"`
	// Holder is who holds the shipment now; empty before any handover.
	Holder string `json:"holder,omitempty"`
	// Owner is who owns it now, by the latest handover that said.
	Owner string `json:"owner,omitempty"`
	// Final is the handover at the final site, if there was one.
	Final string `json:"final,omitempty"`
	// AsOf is the device time the timeline was derived at.
	AsOf time.Time `json:"as_of"`
}

// Failed returns the failed findings.
func (t Timeline) Failed() []Finding {
	var out []Finding
	for _, f := range t.Checks {
		if f.Result == Fail {
			out = append(out, f)
		}
	}
	return out
}

// Sort orders handovers as the timeline reads them: device time, then
// kind (a release before the receive at the same instant), then id.
func Sort(hs []record.Handover) {
	slices.SortFunc(hs, func(a, b record.Handover) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Kind, b.Kind), strings.Compare(a.ID, b.ID))
	})
}

// Build derives the timeline of shipment from its handovers (any order,
// duplicates by id ignored) and checks it against readings (any order),
// as of device time asOf.
func Build(shipment string, handovers []record.Handover, readings []Reading, asOf time.Time, cfg Config) Timeline {
	hs := slices.Clone(handovers)
	Sort(hs)
	hs = slices.CompactFunc(hs, func(a, b record.Handover) bool { return a.ID == b.ID })
	rs := slices.Clone(readings)
	slices.SortFunc(rs, func(a, b Reading) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Device, b.Device), cmp.Compare(a.TempC, b.TempC))
	})
	t := Timeline{Shipment: shipment, Handovers: hs, AsOf: asOf, Custody: []Period{}, Checks: []Finding{}}
	t.periods()
	t.transfers(cfg)
	t.temperatures(rs, cfg)
	t.afterFinal(rs)
	t.events()
	slices.SortStableFunc(t.Checks, func(a, b Finding) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Rule, b.Rule), strings.Compare(a.Handover, b.Handover), strings.Compare(a.Device, b.Device))
	})
	if n := len(t.Custody); n > 0 && t.Custody[n-1].To == nil {
		t.Holder = t.Custody[n-1].Party
	}
	return t
}

// periods walks the handovers in order and cuts the custody periods.
func (t *Timeline) periods() {
	open := func(h *record.Handover, party, site string, confirmed bool) {
		t.close(h)
		p := Period{Party: party, Site: site, From: h.Time, Seal: h.Seal, Owner: t.Owner, OpenedBy: h.ID, Confirmed: confirmed}
		if h.Lat.Set && h.Lon.Set {
			lat, lon := h.Lat.V, h.Lon.V
			p.Lat, p.Lon = &lat, &lon
		}
		t.Custody = append(t.Custody, p)
	}
	for i := range t.Handovers {
		h := &t.Handovers[i]
		if h.Final && t.Final == "" {
			t.Final = h.ID
		}
		cur := t.current()
		if h.Owner != "" {
			// Periods opened from here on are the new owner's; one this
			// handover does not close changes owner now (below).
			t.Owner = h.Owner
		}
		n := len(t.Custody)
		switch h.Kind {
		case record.HandoverIntake:
			open(h, h.ToParty, h.Site, true)
		case record.HandoverRelease:
			// Custody passes to the taker now; its receive confirms it.
			open(h, h.ToParty, "", false)
			t.Custody[len(t.Custody)-1].giver = h.FromParty
		case record.HandoverReceive:
			if cur != nil && cur.Party == h.ToParty && !cur.Confirmed && cur.giver == h.FromParty {
				// The taker confirms the custody the release gave it,
				// over every stretch since (departures, arrivals).
				cur.Site = h.Site
				if h.Seal != "" && cur.Seal == "" {
					cur.Seal = h.Seal
				}
				for j := len(t.Custody) - 1; j >= 0; j-- {
					p := &t.Custody[j]
					if p.Party != h.ToParty || p.giver != h.FromParty || p.Confirmed {
						break
					}
					p.Confirmed = true
				}
				if h.Owner != "" {
					cur.Owner = h.Owner
				}
				continue
			}
			open(h, h.ToParty, h.Site, false)
		case record.HandoverDepart, record.HandoverArrive:
			// The holder moves: into transit, or to a site.
			site := ""
			if h.Kind == record.HandoverArrive {
				site = h.Site
			}
			if cur == nil {
				party := h.FromParty
				if h.Kind == record.HandoverArrive {
					party = h.ToParty
				}
				open(h, party, site, false)
				break
			}
			party, confirmed, giver, seal := cur.Party, cur.Confirmed, cur.giver, cur.Seal
			open(h, party, site, confirmed)
			p := &t.Custody[len(t.Custody)-1]
			p.giver = giver
			if p.Seal == "" {
				p.Seal = seal
			}
		case record.HandoverCustomsHold:
			if cur != nil {
				cur.Held = true
			}
		case record.HandoverCustomsRelease:
			if cur != nil {
				cur.Held = false
			}
		}
		if h.Owner != "" && len(t.Custody) == n && cur != nil {
			cur.Owner = h.Owner
		}
	}
}

func (t *Timeline) current() *Period {
	if n := len(t.Custody); n > 0 && t.Custody[n-1].To == nil {
		return &t.Custody[n-1]
	}
	return nil
}

func (t *Timeline) close(h *record.Handover) {
	if cur := t.current(); cur != nil {
		at := h.Time
		cur.To, cur.ClosedBy = &at, h.ID
	}
}

// transfers matches each release with the taker's receive: unmatched
// releases and seal mismatches.
func (t *Timeline) transfers(cfg Config) {
	used := map[string]bool{}
	for _, rel := range t.Handovers {
		if rel.Kind != record.HandoverRelease {
			continue
		}
		deadline := rel.Time.Add(cfg.MaxTransit)
		var rec *record.Handover
		for i := range t.Handovers {
			h := &t.Handovers[i]
			if h.Kind == record.HandoverReceive && !used[h.ID] && h.FromParty == rel.FromParty && h.ToParty == rel.ToParty && !h.Time.Before(rel.Time) {
				rec = h
				break
			}
		}
		f := Finding{Rule: RuleUnmatchedRelease, Handover: rel.ID, At: rel.Time}
		switch {
		case rec == nil && !t.AsOf.Before(deadline):
			f.Result, f.At = Fail, deadline
			f.Detail = fmt.Sprintf("%s released to %s at %s; no receive by %s within %v", rel.FromParty, rel.ToParty, stamp(rel.Time), rel.ToParty, cfg.MaxTransit)
		case rec == nil:
			f.Result = Pending
			f.Detail = fmt.Sprintf("%s released to %s at %s; a receive is due by %s", rel.FromParty, rel.ToParty, stamp(rel.Time), stamp(deadline))
		case rec.Time.After(deadline):
			used[rec.ID] = true
			f.Result, f.At = Fail, deadline
			f.Detail = fmt.Sprintf("received by %s at %s (%s), %v after the release: more than %v in transit", rel.ToParty, stamp(rec.Time), rec.ID, rec.Time.Sub(rel.Time), cfg.MaxTransit)
		default:
			used[rec.ID] = true
			f.Result = Pass
			f.Detail = fmt.Sprintf("received by %s at %s (%s), %v after the release", rel.ToParty, stamp(rec.Time), rec.ID, rec.Time.Sub(rel.Time))
		}
		t.Checks = append(t.Checks, f)
		if rec == nil {
			continue
		}
		s := Finding{Rule: RuleSealMismatch, Handover: rec.ID, At: rec.Time}
		switch {
		case rel.Seal == "" && rec.Seal == "":
			continue // unsealed: nothing to compare
		case rel.Seal == "" || rec.Seal == "":
			s.Result = Unverified
			s.Detail = fmt.Sprintf("seal recorded on one side only (release %q, receive %q)", rel.Seal, rec.Seal)
		case rel.Seal != rec.Seal:
			s.Result = Fail
			s.Detail = fmt.Sprintf("released under seal %q (%s), received under seal %q (%s)", rel.Seal, rel.ID, rec.Seal, rec.ID)
		default:
			s.Result = Pass
			s.Detail = fmt.Sprintf("seal %q intact from %s to %s", rec.Seal, rel.ID, rec.ID)
		}
		t.Checks = append(t.Checks, s)
	}
}

// temperatures checks each handover's temp_c against the nearest reading
// of each device within the window: validated if any agrees.
func (t *Timeline) temperatures(rs []Reading, cfg Config) {
	for _, h := range t.Handovers {
		if !h.TempC.Set {
			continue
		}
		nearest := map[string]Reading{}
		lo := h.Time.Add(-cfg.TempWindow)
		start, _ := slices.BinarySearchFunc(rs, lo, func(r Reading, at time.Time) int { return r.Time.Compare(at) })
		for _, r := range rs[start:] {
			if r.Time.After(h.Time.Add(cfg.TempWindow)) {
				break
			}
			if n, ok := nearest[r.Device]; !ok || dist(r.Time, h.Time) < dist(n.Time, h.Time) {
				nearest[r.Device] = r
			}
		}
		f := Finding{Rule: RuleTempNotValidated, Handover: h.ID, At: h.Time}
		if len(nearest) == 0 {
			f.Result = Unverified
			f.Detail = fmt.Sprintf("temp_c %.1f °C: no logger reading within %v to validate it", h.TempC.V, cfg.TempWindow)
			t.Checks = append(t.Checks, f)
			continue
		}
		devices := make([]string, 0, len(nearest))
		for d := range nearest {
			devices = append(devices, d)
		}
		slices.Sort(devices)
		best := nearest[devices[0]]
		for _, d := range devices {
			if r := nearest[d]; math.Abs(r.TempC-h.TempC.V) < math.Abs(best.TempC-h.TempC.V) {
				best = r
			}
		}
		diff := math.Abs(best.TempC - h.TempC.V)
		f.Device = best.Device
		if diff <= cfg.TempToleranceC {
			f.Result = Pass
			f.Detail = fmt.Sprintf("temp_c %.1f °C agrees with %s's %.1f °C at %s (within %.1f °C)", h.TempC.V, best.Device, best.TempC, stamp(best.Time), cfg.TempToleranceC)
		} else {
			f.Result = Fail
			f.Detail = fmt.Sprintf("temp_c %.1f °C but the loggers read %.1f °C (%s at %s): %.1f °C apart, more than %.1f °C — not sensor-validated", h.TempC.V, best.TempC, best.Device, stamp(best.Time), diff, cfg.TempToleranceC)
		}
		t.Checks = append(t.Checks, f)
	}
}

// afterFinal flags, per device, readings taken after the receive at the
// final site.
func (t *Timeline) afterFinal(rs []Reading) {
	if t.Final == "" {
		return
	}
	var final record.Handover
	for _, h := range t.Handovers {
		if h.ID == t.Final {
			final = h
		}
	}
	first := map[string]Reading{}
	count := map[string]int{}
	for _, r := range rs {
		if !r.Time.After(final.Time) {
			continue
		}
		if _, ok := first[r.Device]; !ok {
			first[r.Device] = r
		}
		count[r.Device]++
	}
	for d, r := range first {
		t.Checks = append(t.Checks, Finding{Rule: RuleAfterFinal, Result: Fail, Handover: final.ID, Device: d, At: r.Time,
			Detail: fmt.Sprintf("%d reading(s) of %s after the shipment was received at its final site %s at %s (%s): the logger still reports on a closed shipment", count[d], d, final.Site, stamp(final.Time), final.ID)})
	}
}

// events reports QC results and customs holds.
func (t *Timeline) events() {
	for i, h := range t.Handovers {
		switch h.Kind {
		case record.HandoverQCCheckpoint:
			f := Finding{Rule: RuleQC, Handover: h.ID, At: h.Time, Result: Pass, Detail: "quality check passed at " + h.Site}
			if h.QCResult == "fail" {
				f.Result, f.Detail = Fail, "quality check failed at "+h.Site
			}
			if h.DocSHA256 != "" {
				f.Detail += " (report SHA-256 " + h.DocSHA256 + ")"
			}
			t.Checks = append(t.Checks, f)
		case record.HandoverCustomsHold:
			f := Finding{Rule: RuleCustomsHold, Handover: h.ID, At: h.Time, Result: Pending, Detail: "held by customs at " + h.Site + " since " + stamp(h.Time)}
			for _, later := range t.Handovers[i+1:] {
				if later.Kind == record.HandoverCustomsRelease {
					f.Result = Pass
					f.Detail = fmt.Sprintf("held by customs at %s from %s to %s (%s)", h.Site, stamp(h.Time), stamp(later.Time), later.ID)
					break
				}
			}
			t.Checks = append(t.Checks, f)
		}
	}
}

func dist(a, b time.Time) time.Duration {
	if d := a.Sub(b); d >= 0 {
		return d
	}
	return b.Sub(a)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
