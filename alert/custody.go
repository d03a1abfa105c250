package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// custodySeverity is the severity each failed custody check raises; the
// checks not listed (customs holds) raise none.
var custodySeverity = map[string]string{
	custody.RuleUnmatchedRelease: "alarm",
	custody.RuleSealMismatch:     "alarm",
	custody.RuleQC:               "alarm",
	custody.RuleTempNotValidated: "warning",
	custody.RuleAfterFinal:       "warning",
}

// custodyAlertID is the id of the alert a finding raises: the same for
// the same check of the same handover and device, whenever it is found.
func custodyAlertID(shipment string, f custody.Finding) string {
	sum := sha256.Sum256([]byte("custody\x00" + shipment + "\x00" + f.Rule + "\x00" + f.Handover + "\x00" + f.Device))
	return hex.EncodeToString(sum[:16])
}

// RaiseCustody turns tl's failed checks into alert transitions, delivered,
// acknowledged and proven like an excursion's: a failure opens an alert
// once (reopens it if it was retracted), and an open custody alert of the
// shipment whose check no longer fails (the readings that validate a
// handover's temp_c arrived late) is retracted. The alert's readings list
// names the handover.
func (s *Service) RaiseCustody(ctx context.Context, tl custody.Timeline) error {
	var out []record.Alert
	failing := map[string]bool{}
	s.mu.Lock()
	for _, f := range tl.Checks {
		sev, ok := custodySeverity[f.Rule]
		if !ok || f.Result != custody.Fail {
			continue
		}
		id := custodyAlertID(tl.Shipment, f)
		failing[id] = true
		v := s.alerts[id]
		if v != nil && v.open() {
			continue
		}
		a := record.Alert{ID: id, Shipment: tl.Shipment, Device: f.Device, Rule: f.Rule, Severity: sev, Transition: "opened",
			Start: f.At.UTC(), End: f.At.UTC(), At: f.At.UTC(), Readings: []string{f.Handover}}
		if v != nil {
			a.Transition, a.At = "reopened", tl.AsOf.UTC()
		}
		out = append(out, a)
	}
	for id, v := range s.alerts {
		first := v.Transitions[0]
		if first.Shipment != tl.Shipment || !v.open() || failing[id] {
			continue
		}
		if _, custodyRule := custodySeverity[first.Rule]; !custodyRule {
			continue
		}
		last := v.last()
		a := *last
		a.Transition, a.At, a.By, a.Comment = "retracted", tl.AsOf.UTC(), "", ""
		out = append(out, a)
	}
	s.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	return s.publish(ctx, out)
}

// CustodySource is what the custody checks read: the time-series store.
type CustodySource interface {
	custody.Source
	Shipments(ctx context.Context) ([]store.Shipment, error)
}

// EnableCustody makes Run check the chain of custody of every shipment
// with handovers whenever its records change (and while a check is
// pending), every cfg.CheckEvery, raising failures as alerts. Call it
// before Run.
func (s *Service) EnableCustody(src CustodySource, cfg custody.Config) {
	s.custodySrc, s.custodyCfg = src, cfg
}

// runCustody is EnableCustody's loop. It reads the store, which the store
// writer fills behind the journal: a shipment's summary changing is what
// says its records did, so a check never runs on records the store does
// not have yet and then forgets them.
func (s *Service) runCustody(ctx context.Context) {
	checked := map[string]store.Shipment{} // the summary at the last check
	pending := map[string]bool{}           // a check may still fail by the clock alone
	s.tick(ctx, s.custodyCfg.CheckEvery, func(ctx context.Context) {
		ships, err := s.custodySrc.Shipments(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("custody checks: cannot list shipments", zap.Error(err))
			}
			return
		}
		for _, sh := range ships {
			if sh.Handovers == 0 || !s.owns(sh.ID) || (checked[sh.ID] == sh && !pending[sh.ID]) {
				continue
			}
			tl, err := custody.Load(ctx, s.custodySrc, sh.ID, s.now(), s.custodyCfg)
			if err == nil {
				err = s.RaiseCustody(ctx, tl)
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("custody checks", zap.String("shipment", sh.ID), zap.Error(err))
				}
				continue
			}
			checked[sh.ID] = sh
			pending[sh.ID] = false
			for _, f := range tl.Checks {
				if f.Result == custody.Pending && f.Rule == custody.RuleUnmatchedRelease {
					pending[sh.ID] = true
				}
			}
		}
	})
}
