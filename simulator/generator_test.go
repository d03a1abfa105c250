package simulator

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
		// net/http keeps idle client connections for a while.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		// go-ethereum (the gateway's embedded chain) starts a package-level
		// sender cache when it loads.
		goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
	)
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// run generates cfg's whole span and records it.
type run struct {
	cfg  Config
	g    *Generator
	msgs []Message
	tr   Truth
}

func generate(t *testing.T, cfg Config) *run {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(g, DefaultProfile())
	msgs := g.Advance(g.End())
	for i := range msgs {
		rec.Observe(&msgs[i])
	}
	return &run{cfg: cfg, g: g, msgs: msgs, tr: rec.Truth()}
}

// readings returns the valid readings of device dev in send order.
func (r *run) readings(dev string) []item {
	var out []item
	for _, m := range r.msgs {
		if m.Device != dev || m.reject != nil {
			continue
		}
		for _, it := range m.items {
			if it.reject == nil {
				out = append(out, it)
			}
		}
	}
	return out
}

func (r *run) alarms(dev string) map[string][]Alarm {
	out := map[string][]Alarm{}
	for _, a := range r.tr.Alarms {
		if a.Device == dev {
			out[a.Rule] = append(out[a.Rule], a)
		}
	}
	return out
}

func (r *run) rejected(reason string) []Rejected {
	var out []Rejected
	for _, rj := range r.tr.Rejected {
		if rj.Reason == reason {
			out = append(out, rj)
		}
	}
	return out
}

// TestNormalShipmentIn2to8 runs three normal shipments for 30 days. The
// 2–8 °C claim is about what each device reports as temp_c, which is what
// the detector judges: the reefer's return-air probe, the loggers' air
// probes and their buffered (product-simulating) probes. It holds with
// margin — every reading stays inside the pre-alarm band 2.5–7.5 °C, so a
// normal shipment raises no alarm and no warning — through defrost cycles,
// door openings at warehouses, customs inspection and unplugged moves on
// hot quays. The air leaving the evaporator during a defrost is hotter
// (reefer.supply_c, about 13 °C), as on a real unit; it is not temp_c.
func TestNormalShipmentIn2to8(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Start, cfg.Span, cfg.Devices = t0, 30*24*time.Hour, 4
	r := generate(t, cfg)
	if len(r.tr.Alarms) != 0 {
		t.Errorf("normal shipments raised %d alarms, first %+v", len(r.tr.Alarms), r.tr.Alarms[0])
	}
	if len(r.tr.Normal) != 3 || len(r.tr.Rejected) != 0 || r.tr.Counts.Duplicates != 0 {
		t.Errorf("truth: normal %v, rejected %d, duplicates %d", r.tr.Normal, len(r.tr.Rejected), r.tr.Counts.Duplicates)
	}
	spread := map[string]float64{}
	for _, s := range r.g.Shipments() {
		for _, d := range s.Devices {
			rs := r.readings(d.ID)
			if want := int(cfg.Span/cfg.Interval) - 1; len(rs) < want-loggerBatch {
				t.Errorf("%s: %d readings, want about %d", d.ID, len(rs), want)
			}
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, it := range rs {
				lo, hi = min(lo, it.tempC), max(hi, it.tempC)
			}
			if lo < 2.5 || hi > 7.5 {
				t.Errorf("%s (%s probe): %.2f … %.2f °C, want inside 2.5 … 7.5", d.ID, d.Probe, lo, hi)
			}
			spread[d.Probe] = max(spread[d.Probe], hi-lo)
		}
	}
	// The buffered probe lags and damps every spike.
	if spread["buffered"] >= spread["air"]/2 {
		t.Errorf("buffered probes spread %.2f °C, air probes %.2f °C: no damping", spread["buffered"], spread["air"])
	}
	// The spikes the claim includes did happen.
	var defrost, door, off int
	var supplyMax float64
	for _, m := range r.msgs {
		for _, it := range m.items {
			if it.defrost {
				defrost++
				if i := bytes.Index(it.json, []byte(`"supply_c":`)); i > 0 {
					var v float64
					fmt.Sscanf(string(it.json[i+len(`"supply_c":`):]), "%g", &v)
					supplyMax = max(supplyMax, v)
				}
			}
			if it.door {
				door++
			}
			if bytes.Contains(it.json, []byte(`"mode":"off"`)) {
				off++
			}
		}
	}
	if defrost < 3*100*3 || door == 0 || off == 0 || supplyMax < 10 {
		t.Errorf("defrost readings %d (supply up to %.1f °C), door-open readings %d, unplugged readings %d: the spikes are missing", defrost, supplyMax, door, off)
	}
	if r.tr.Counts.Handovers < 3*4 {
		t.Errorf("%d handovers in 30 days of 3 shipments", r.tr.Counts.Handovers)
	}
}

// TestScenarioShapes injects each scenario alone on a shipment and checks
// that the fault has its shape and the ground truth its alarms and
// rejections.
func TestScenarioShapes(t *testing.T) {
	type check func(t *testing.T, r *run, reefer, target string)
	has := func(rules ...string) check {
		return func(t *testing.T, r *run, _, target string) {
			got := r.alarms(target)
			for _, rule := range rules {
				if len(got[rule]) == 0 {
					t.Errorf("%s: no %s (have %v)", target, rule, keys(got))
				}
			}
		}
	}
	hasNot := func(rules ...string) check {
		return func(t *testing.T, r *run, _, target string) {
			got := r.alarms(target)
			for _, rule := range rules {
				if len(got[rule]) != 0 {
					t.Errorf("%s: unexpected %s %+v", target, rule, got[rule][0])
				}
			}
		}
	}
	mode := func(mode string) check {
		return func(t *testing.T, r *run, reefer, _ string) {
			for _, it := range r.readings(reefer) {
				if bytes.Contains(it.json, []byte(`"mode":"`+mode+`"`)) {
					return
				}
			}
			t.Errorf("no reading in mode %s", mode)
		}
	}
	peak := func(lo, hi float64) check {
		return func(t *testing.T, r *run, reefer, _ string) {
			p := math.Inf(-1)
			if lo < 0 {
				p = math.Inf(1)
			}
			for _, it := range r.readings(reefer) {
				if lo < 0 {
					p = min(p, it.tempC)
				} else {
					p = max(p, it.tempC)
				}
			}
			if p < lo || p > hi {
				t.Errorf("extreme reading %.2f °C, want %g … %g", p, lo, hi)
			}
		}
	}
	rejects := func(reason, field string, n int) check {
		return func(t *testing.T, r *run, _, _ string) {
			got := r.rejected(reason)
			if len(got) != n {
				t.Errorf("%d %s rejections, want %d", len(got), reason, n)
			}
			for _, rj := range got {
				if rj.Field != field {
					t.Errorf("%s on field %q, want %q", reason, rj.Field, field)
				}
			}
		}
	}
	onlyAlarms := func(rules ...string) check {
		return func(t *testing.T, r *run, _, target string) {
			for rule := range r.alarms(target) {
				if !slices.Contains(rules, rule) {
					t.Errorf("%s: unexpected %s", target, rule)
				}
			}
		}
	}
	tests := []struct {
		s      Scenario
		checks []check
	}{
		{CompressorFailure, []check{has("pre_alarm_high", "single_event_high", "cumulative_high", "mkt"), hasNot("instant_high"), mode("alarm"), peak(15, 25)}},
		{PowerLoss, []check{has("single_event_high", "cumulative_high"), hasNot("mkt", "instant_high"), mode("off"), peak(9, 15)}},
		{DoorOpen, []check{has("single_event_high", "cumulative_high"), hasNot("mkt"), peak(8.5, 12),
			func(t *testing.T, r *run, reefer, _ string) {
				n := 0
				for _, it := range r.readings(reefer) {
					if it.door {
						n++
					}
				}
				if n < int(doorOpenFor/r.cfg.Interval)-1 {
					t.Errorf("%d door-open readings", n)
				}
			}}},
		{Freezing, []check{has("pre_alarm_low", "single_event_low", "cumulative_low", "instant_low"), hasNot("pre_alarm_high"), peak(-6, -3)}},
		// Each pulse is too short for a single event; together they spend
		// the cumulative budget, after which every pulse alarms at once.
		{ShortExcursions, []check{has("cumulative_high", "pre_alarm_high"), hasNot("single_event_high"),
			func(t *testing.T, r *run, reefer, _ string) {
				if n := len(r.alarms(reefer)["pre_alarm_high"]); n != shortPulses {
					t.Errorf("%d pre-alarms, want one per pulse (%d)", n, shortPulses)
				}
			}}},
		{StuckSensor, []check{onlyAlarms(), func(t *testing.T, r *run, _, target string) {
			rs := r.readings(target)
			run, best := 1, 1
			for i := 1; i < len(rs); i++ {
				if rs[i].tempC == rs[i-1].tempC {
					run++
					best = max(best, run)
				} else {
					run = 1
				}
			}
			if best < int(stuckFor/r.cfg.Interval) {
				t.Errorf("longest run of one value: %d readings", best)
			}
		}}},
		{OutOfRange, []check{rejects("out_of_range", "temp_c", 2), has("instant_high", "pre_alarm_high")}},
		{NaN, []check{rejects("not_finite", "temp_c", 2), onlyAlarms(), func(t *testing.T, r *run, _, target string) {
			for _, m := range r.msgs {
				if m.Device == target && m.Scenario == NaN && len(m.items) > 1 {
					return
				}
			}
			t.Error("no batch that mixes a NaN with valid readings")
		}}},
		{Dropout, []check{onlyAlarms("data_gap"), func(t *testing.T, r *run, _, target string) {
			g := r.alarms(target)["data_gap"]
			if len(g) != 1 || g[0].End.Sub(g[0].Start) < dropoutFor || g[0].End.Sub(g[0].Start) > dropoutFor+r.cfg.Interval {
				t.Errorf("data gaps %+v, want one of about %v", g, dropoutFor)
			}
		}}},
		{OfflineBurst, []check{has("single_event_high"), func(t *testing.T, r *run, reefer, target string) {
			var burst *Message
			for i := range r.msgs {
				if r.msgs[i].Scenario == OfflineBurst {
					burst = &r.msgs[i]
				}
			}
			if burst == nil || len(burst.items) < int(offlineFor/r.cfg.Interval)-1 {
				t.Fatalf("no burst upload")
			}
			for i := 1; i < len(burst.items); i++ {
				if !burst.items[i].ts.Before(burst.items[i-1].ts) {
					t.Fatalf("burst not newest first at %d", i)
				}
			}
			if a := r.alarms(target)["single_event_high"]; !a[0].Late {
				t.Errorf("the offline logger's alarm is not marked late: %+v", a[0])
			}
			if a := r.alarms(reefer)["single_event_high"]; len(a) != 1 || a[0].Late {
				t.Errorf("the online reefer's alarm: %+v", a)
			}
		}}},
		{ClockSkew, []check{rejects("future_timestamp", "ts", 3), rejects("bad_timestamp", "ts", 2), onlyAlarms("data_gap"),
			func(t *testing.T, r *run, _, target string) {
				for _, it := range r.readings(target) {
					if off := it.ts.Sub(r.cfg.Start) % r.cfg.Interval; off != clockSkew%r.cfg.Interval+(time.Duration(len(r.g.ships[0].devs)-1)*7*time.Second)%r.cfg.Interval {
						t.Fatalf("reading at %v is not %v ahead", it.ts, clockSkew)
					}
				}
			}}},
		{Duplicates, []check{onlyAlarms(), func(t *testing.T, r *run, _, _ string) {
			if c := r.tr.Counts; c.Duplicates < int(reuploadSpan/r.cfg.Interval)-loggerBatch || c.Readings != c.DistinctReadings+c.Duplicates {
				t.Errorf("counts %+v", c)
			}
		}}},
		{Malformed, []check{onlyAlarms(), func(t *testing.T, r *run, _, _ string) {
			var got []string
			for _, rj := range r.tr.Rejected {
				got = append(got, rj.Reason+":"+rj.Field)
			}
			slices.Sort(got)
			want := []string{"bad_timestamp:ts", "bad_value:kind", "bad_value:reefer.mode", "duplicate_field:temp_c", "invalid_id:topic",
				"malformed_json:", "missing_field:ts", "topic_mismatch:device", "unknown_field:temp_f", "unknown_topic:", "wrong_type:rh", "wrong_type:seq"}
			if !slices.Equal(got, want) {
				t.Errorf("rejections\n got %v\nwant %v", got, want)
			}
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.s.String(), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Start, cfg.Span, cfg.Shipments, cfg.Scenarios = t0, 4*24*time.Hour, 1, []Scenario{tc.s}
			r := generate(t, cfg)
			devs := r.g.Shipments()[0].Devices
			reefer, target := devs[0].ID, devs[len(devs)-1].ID
			if in := r.tr.Injections; len(in) != 1 || in[0].Name != tc.s.String() {
				t.Fatalf("injections %+v", in)
			}
			if len(r.tr.Normal) != 0 {
				t.Errorf("normal shipments %v", r.tr.Normal)
			}
			for _, a := range r.tr.Alarms {
				if a.Scenario != tc.s.String() {
					t.Errorf("alarm not attributed to the scenario: %+v", a)
				}
			}
			// Container faults show on the reefer's return air; device
			// faults on the last logger.
			dev := target
			switch tc.s {
			case CompressorFailure, PowerLoss, DoorOpen, Freezing, ShortExcursions:
				dev = reefer
			}
			for _, c := range tc.checks {
				c(t, r, reefer, dev)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDeterministic: the same seed gives byte-identical messages however
// device time is cut into Advance calls; another seed gives others.
func TestDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Start, cfg.Span, cfg.Shipments, cfg.Seed = t0, 3*24*time.Hour, 13, 42
	cfg.Scenarios = Scenarios()
	dump := func(cfg Config, step time.Duration) []byte {
		g, err := NewGenerator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for at := cfg.Start; at.Before(g.End()); at = at.Add(step) {
			for _, m := range g.Advance(at.Add(step)) {
				fmt.Fprintf(&b, "%s %s %s\n", m.SendAt.Format(time.RFC3339), m.Topic(), m.Payload())
			}
		}
		return b.Bytes()
	}
	a := dump(cfg, cfg.Span)
	if b := dump(cfg, 7*time.Minute+13*time.Second); !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different messages")
	}
	cfg.Seed = 43
	if c := dump(cfg, cfg.Span); bytes.Equal(a, c) || len(a) < 1e6 {
		t.Fatalf("seeds 42 and 43 gave the same %d bytes", len(a))
	}
}

// TestGatewayAgrees decodes every generated message as the gateway does:
// each valid record decodes, and each one the ground truth says must be
// rejected is rejected with the named reason and field.
func TestGatewayAgrees(t *testing.T) {
	for _, tc := range []struct {
		tr     Transport
		signed bool
	}{{TransportMQTT, false}, {TransportHTTP, false}, {TransportMQTT, true}, {TransportHTTP, true}} {
		tr := tc.tr
		name := tr.String()
		if tc.signed {
			name += "-signed"
		}
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Start, cfg.Span, cfg.Shipments, cfg.Transport = t0, 3*24*time.Hour, 13, tr
			cfg.Scenarios = Scenarios()
			lim := record.DefaultLimits()
			if tc.signed {
				// Every device signs with a key of its own, and the
				// gateway knows each: every valid reading must verify.
				key := func(device string) ed25519.PrivateKey {
					seed := sha256.Sum256([]byte(device))
					return ed25519.NewKeyFromSeed(seed[:])
				}
				cfg.Sign = key
				lim.DeviceKey = func(device string) ed25519.PublicKey { return key(device).Public().(ed25519.PublicKey) }
			}
			r := generate(t, cfg)
			now := r.g.End().Add(time.Minute)
			signedMsgs := 0
			for _, m := range r.msgs {
				if bytes.Contains(m.Payload(), []byte(`"sig":"`)) {
					signedMsgs++
				}
			}
			if tc.signed != (signedMsgs > 0) {
				t.Fatalf("%d of %d messages carry a signature, signing %v", signedMsgs, len(r.msgs), tc.signed)
			}
			decode := func(kind record.Kind, payload []byte, scope record.Scope) (int, []record.Reject, *record.Error) {
				if kind == record.KindHandover {
					hs, rj, err := record.DecodeHandovers(payload, scope, lim, now)
					return len(hs), rj, err
				}
				rs, rj, err := record.DecodeReadings(payload, scope, lim, now)
				return len(rs), rj, err
			}
			var rejected, valid int
			for _, m := range r.msgs {
				if tr == TransportHTTP {
					for _, q := range m.HTTPRequests() {
						n, rj, err := decode(m.Kind, q.Body, record.Scope{})
						switch {
						case q.Reject == nil && (err != nil || len(rj) > 0 || n != q.Records):
							t.Fatalf("%s refused (%v %v): %s", q.Path, err, rj, q.Body)
						case q.Reject != nil:
							got := err
							if got == nil && len(rj) == 1 {
								got = rj[0].Err
							}
							if got == nil || got.Reason.String() != q.Reject.Reason || got.Field != q.Reject.Field {
								t.Fatalf("%s: got %v, want %+v: %s", q.Path, got, q.Reject, q.Body)
							}
							rejected++
						default:
							valid += n
						}
					}
					continue
				}
				kind, scope, terr := ingest.ParseTopic(m.Topic())
				var n int
				var rj []record.Reject
				err := terr
				if err == nil {
					n, rj, err = decode(kind, m.Payload(), scope)
				}
				if m.reject != nil {
					if err == nil || err.Reason.String() != m.reject.Reason || err.Field != m.reject.Field {
						t.Fatalf("%s: got %v, want %+v", m.Topic(), err, m.reject)
					}
					rejected++
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v: %s", m.Topic(), err, m.Payload())
				}
				var want []record.Reject
				for _, it := range m.items {
					if it.reject != nil {
						want = append(want, record.Reject{Err: &record.Error{Reason: reasonOf(t, it.reject.Reason), Field: it.reject.Field}, Raw: it.json})
					}
				}
				if len(rj) != len(want) || n != len(m.items)-len(want) {
					t.Fatalf("%s: %d valid, rejects %v; want %d valid, %d rejects: %s", m.Topic(), n, rj, len(m.items)-len(want), len(want), m.Payload())
				}
				for i := range rj {
					if rj[i].Err.Reason != want[i].Err.Reason || rj[i].Err.Field != want[i].Err.Field || !bytes.Equal(rj[i].Raw, want[i].Raw) {
						t.Fatalf("%s: reject %v, want %v", m.Topic(), rj[i].Err, want[i].Err)
					}
				}
				rejected += len(rj)
				valid += n
			}
			c := r.tr.Counts
			if rejected != len(r.tr.Rejected) || rejected != c.Rejected || valid != c.Readings+c.Handovers {
				t.Errorf("decoded %d valid and %d rejected; truth %+v with %d rejections", valid, rejected, c, len(r.tr.Rejected))
			}
			if tr == TransportHTTP {
				for _, rj := range r.tr.Rejected {
					if strings.HasPrefix(rj.Topic, "coldchain/") {
						t.Errorf("HTTP truth names an MQTT topic: %+v", rj)
					}
				}
			}
		})
	}
}

func reasonOf(t *testing.T, s string) record.Reason {
	r, ok := record.ParseReason(s)
	if !ok {
		t.Fatalf("%q is not a rejection reason", s)
	}
	return r
}
