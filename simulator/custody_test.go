package simulator

import (
	"testing"
	"time"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/record"
)

// TestCustodyChecksPass decodes the handovers and readings of normal
// shipments along the whole route, as the gateway would, and checks their
// custody timeline: every release matched by its taker's receive under the
// same seal, the customs inspection held and released, each handover's
// temperature borne out by the loggers. The gateway raises an alert for
// each failure, so a failure here is a false alarm in `make run` and in
// the acceptance test.
func TestCustodyChecksPass(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Start, cfg.Span, cfg.Devices = t0, 30*24*time.Hour, 4
	r := generate(t, cfg)
	now := r.g.End().Add(time.Minute)
	hos := map[string][]record.Handover{}
	rs := map[string][]custody.Reading{}
	for _, m := range r.msgs {
		kind, scope, err := ingest.ParseTopic(m.Topic())
		if err != nil {
			t.Fatal(err)
		}
		if kind == record.KindHandover {
			hs, rj, err := record.DecodeHandovers(m.Payload(), scope, record.DefaultLimits(), now)
			if err != nil || len(rj) > 0 {
				t.Fatalf("%s: %v %v: %s", m.Topic(), err, rj, m.Payload())
			}
			hos[m.Shipment] = append(hos[m.Shipment], hs...)
			continue
		}
		got, _, err := record.DecodeReadings(m.Payload(), scope, record.DefaultLimits(), now)
		if err != nil {
			t.Fatalf("%s: %v", m.Topic(), err)
		}
		for _, x := range got {
			rs[m.Shipment] = append(rs[m.Shipment], custody.Reading{Device: x.Device, Time: x.Time, TempC: x.TempC})
		}
	}
	if len(hos) != 3 {
		t.Fatalf("handovers of %d shipments, want 3", len(hos))
	}
	cc := custody.DefaultConfig()
	passed := map[string]int{}
	kinds := map[record.HandoverKind]int{}
	for ship, hs := range hos {
		for _, h := range hs {
			kinds[h.Kind]++
		}
		// Long after the end: a release still unmatched would have failed.
		tl := custody.Build(ship, hs, rs[ship], now.Add(2*cc.MaxTransit), cc)
		for _, f := range tl.Checks {
			switch f.Result {
			case custody.Fail, custody.Pending:
				t.Errorf("%s: %s %s %s: %s", ship, f.Rule, f.Result, f.Handover, f.Detail)
			case custody.Pass:
				passed[f.Rule]++
			}
		}
	}
	// The checks did run: transfers matched, seals compared, temperatures
	// validated, and at least one shipment inspected at the Gulf port.
	if passed[custody.RuleUnmatchedRelease] < 3*4 || passed[custody.RuleSealMismatch] < 3*4 || passed[custody.RuleTempNotValidated] < 3*8 {
		t.Errorf("passed checks %v: too few to mean anything", passed)
	}
	if kinds[record.HandoverCustomsHold] == 0 || kinds[record.HandoverCustomsHold] != kinds[record.HandoverCustomsRelease] {
		t.Errorf("handover kinds %v: want the customs inspections held and released", kinds)
	}
}
