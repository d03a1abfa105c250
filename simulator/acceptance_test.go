//go:build integration

package simulator

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/gateway/gatewaytest"
	"github.com/coldchain/coldchain/journal"
)

// Acceptance run: every scenario twice, each on a shipment of its own (so
// each fault is seen at two points of the route), plus normal shipments,
// over six days of device time played in about 40 seconds.
const (
	acceptanceSeed    = 11
	acceptanceDevices = 3 // the reefer, a buffered logger, an air logger (the faulty device)
	acceptanceNormal  = 2 // shipments without a scenario
	acceptanceSpan    = 6 * 24 * time.Hour
	acceptanceWall    = 40 * time.Second
)

// scenarioRules lists, per scenario, the rules docs/SIMULATOR.md promises
// in its ground truth (on at least one device of the shipment). It keeps
// the comparison from passing on an empty truth.
var scenarioRules = map[Scenario][]string{
	CompressorFailure: {"pre_alarm_high", "single_event_high", "cumulative_high", "mkt"},
	PowerLoss:         {"pre_alarm_high", "single_event_high", "cumulative_high"},
	DoorOpen:          {"pre_alarm_high", "single_event_high", "cumulative_high"},
	Freezing:          {"pre_alarm_low", "single_event_low", "cumulative_low", "instant_low"},
	ShortExcursions:   {"pre_alarm_high", "cumulative_high"},
	OutOfRange:        {"instant_high", "pre_alarm_high", "mkt"},
	Dropout:           {"data_gap"},
	OfflineBurst:      {"pre_alarm_high", "single_event_high"},
	ClockSkew:         {"data_gap"},
}

// TestDetectorAcceptance is the excursion detector's end-to-end acceptance
// test (issue 6, issue 4): the simulator plays every scenario through an
// in-process gateway over MQTT, and once the detector has caught up, the
// alerts the gateway lists (GET /v1/shipments/{id}/alerts) must be exactly
// the ground truth's, warnings included: for each alert the shipment,
// device, rule, severity, device-time start, the moment it opened, the end
// (or still open), the peak and whether it was decided late.
//
// Tolerances: none on device times except the truth's own tolerance_s
// (mkt, for the detector's hourly MKT buckets), which applies to start,
// opened and end alike; mkt peaks are compared to within 0.05 °C for the
// same reason. Every other peak is a reading value and must match exactly.
func TestDetectorAcceptance(t *testing.T) {
	wall0 := time.Now()
	gw := gatewaytest.Start(t, gatewaytest.Config(t.TempDir()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stats := &Stats{}
	pub, err := DialMQTT(ctx, MQTTConfig{URL: "tcp://" + gw.MQTTAddr(), ClientID: "sim-acceptance", Connections: 4, InFlight: 256}, stats)
	if err != nil {
		t.Fatal(err)
	}
	sc := DefaultConfig()
	sc.Seed, sc.Devices, sc.Transport = acceptanceSeed, acceptanceDevices, TransportMQTT
	sc.Scenarios = append(Scenarios(), Scenarios()...)
	sc.Shipments = len(sc.Scenarios) + acceptanceNormal
	sc.Span = acceptanceSpan
	sc.Start = time.Now().UTC().Truncate(time.Second).Add(-sc.Span)
	g, err := NewGenerator(sc)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(g, DefaultProfile())
	rep, err := Run(ctx, g, pub, rec, stats, RunConfig{Accelerate: float64(sc.Span) / float64(acceptanceWall), Tick: 50 * time.Millisecond}, time.Now)
	pub.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DeviceTime.Equal(g.End()) || rep.Errors != 0 || rep.Acked != stats.Messages.Load() {
		t.Fatalf("report %+v; stats: %d sent; last error %q", rep, stats.Messages.Load(), rep.LastError)
	}
	truth := rec.Truth()
	t.Logf("simulated %v of device time in %v: %d messages, %d distinct readings, %d ground-truth alerts",
		sc.Span, rep.Wall.Round(time.Millisecond), truth.Counts.Messages, truth.Counts.DistinctReadings, len(truth.Alarms))
	checkTruthCoverage(t, truth)

	base := "http://" + gw.HTTPAddr()
	waitCaughtUp(t, base, gw.NATSURL(), truth.Counts.DistinctReadings)
	if n := scrapeMetrics(t, base)["coldchain_detector_flagged_total"]; n > 0 {
		// Not a failure by itself: the alerts below say what it cost.
		t.Logf("the detector flagged %g late readings as beyond its history or horizon: they were stored but not evaluated", n)
	}

	var got []Alert
	for _, s := range truth.Shipments {
		got = append(got, shipmentAlerts(t, base, s.ID)...)
	}
	for _, m := range CompareAlerts(truth, got) {
		t.Error(m)
	}
	t.Logf("compared %d ground-truth alerts with %d alerts listed by the gateway; wall time so far %v",
		len(truth.Alarms), len(got), time.Since(wall0).Round(time.Millisecond))
}

// checkTruthCoverage fails when the ground truth lacks an alarm
// docs/SIMULATOR.md promises for a scenario, or lists any alert on a
// normal shipment: the comparison would then prove less than it claims.
func checkTruthCoverage(t *testing.T, truth Truth) {
	t.Helper()
	have := map[string]bool{} // shipment/rule
	for _, a := range truth.Alarms {
		have[a.Shipment+"/"+a.Rule] = true
	}
	for _, in := range truth.Injections {
		for _, rule := range scenarioRules[in.Scenario] {
			if !have[in.Shipment+"/"+rule] {
				t.Errorf("ground truth: %s on %s has no %s alert, which docs/SIMULATOR.md promises", in.Name, in.Shipment, rule)
			}
		}
	}
	for _, s := range truth.Normal {
		for _, a := range truth.Alarms {
			if a.Shipment == s {
				t.Errorf("ground truth: normal shipment %s has %s %s on %s from %s", s, a.Severity, a.Rule, a.Device, a.Start.Format(time.RFC3339))
			}
		}
	}
	if len(truth.Normal) == 0 {
		t.Error("ground truth: no normal shipment")
	}
}

// waitCaughtUp polls the gateway until JetStream holds every distinct
// reading, the detector has evaluated as many and its consumer is idle,
// and none of these figures nor the alert transitions (stored, and
// counted as published) has moved for three polls 300 ms apart: longer
// than the consumer's 200 ms fetch wait and than publishing a batch's
// transitions takes. Stored and published transitions are not compared
// with each other: a transition published again with the same event id is
// counted but stored once.
func waitCaughtUp(t *testing.T, base, natsURL string, distinct int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var prev string
	stable := 0
	for {
		stored := streamCount(t, natsURL, journal.StreamReadings)
		alerts := streamCount(t, natsURL, journal.StreamAlerts)
		m := scrapeMetrics(t, base)
		evaluated, pending, published := m["coldchain_detector_readings_total"], m["coldchain_detector_pending"], m["coldchain_alerts_total"]
		cur := fmt.Sprintf("stored %d of %d readings, detector evaluated %g, pending %g; %d transitions stored, %g published",
			stored, distinct, evaluated, pending, alerts, published)
		if stored == distinct && evaluated == float64(distinct) && pending == 0 && cur == prev {
			stable++
		} else {
			stable = 0
		}
		if stable == 2 {
			t.Logf("caught up: %s", cur)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detector did not catch up in 60s: %s", cur)
		}
		prev = cur
		time.Sleep(300 * time.Millisecond)
	}
}

// scrapeMetrics returns each metric family of /metrics summed over its labels.
func scrapeMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			_, rest, ok = strings.Cut(line[strings.LastIndexByte(line, '}')+1:], " ")
			rest = strings.TrimSpace(rest)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// shipmentAlerts lists a shipment's alerts as the gateway at base tells
// them (FetchAlerts).
func shipmentAlerts(t *testing.T, base, shipment string) []Alert {
	t.Helper()
	got, err := FetchAlerts(context.Background(), http.DefaultClient, base, shipment)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
