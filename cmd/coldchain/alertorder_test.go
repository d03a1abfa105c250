package main

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
)

func alertAt(dev, rule string, at time.Time) record.Alert {
	return record.Alert{Shipment: "SHP-1", Device: dev, Rule: rule, Transition: "opened", Severity: "warning", At: at}
}

func TestAlertOrderReleasesInDeviceTime(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	var want []record.Alert
	for i := range 20 {
		dev := []string{"R1", "R2", "L1"}[i%3]
		want = append(want, alertAt(dev, "pre_alarm_high", t0.Add(time.Duration(i)*time.Minute)))
	}
	in := append([]record.Alert(nil), want...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })

	var q alertOrder
	for _, a := range in {
		q.add(a)
	}
	// Up to minute 9: the first ten, in order; the rest are held.
	got := q.release(t0.Add(9 * time.Minute))
	if len(got) != 10 {
		t.Fatalf("released %d alerts up to minute 9, want 10", len(got))
	}
	got = append(got, q.flush()...)
	if len(got) != len(want) {
		t.Fatalf("released %d alerts in all, want %d", len(got), len(want))
	}
	for i, a := range got {
		if !a.At.Equal(want[i].At) || a.Device != want[i].Device {
			t.Errorf("alert %d: %s at %v, want %s at %v", i, a.Device, a.At, want[i].Device, want[i].At)
		}
		if a.late {
			t.Errorf("alert %d marked late although nothing later was printed before it", i)
		}
	}
	if rest := q.flush(); len(rest) != 0 {
		t.Errorf("flush after flush returned %d alerts", len(rest))
	}
}

func TestAlertOrderTiesAreStable(t *testing.T) {
	at := time.Date(2026, 11, 21, 7, 1, 0, 0, time.UTC)
	var q alertOrder
	q.add(alertAt("R2", "single_event_high", at))
	q.add(alertAt("R1", "single_event_high", at))
	q.add(alertAt("R1", "pre_alarm_high", at))
	got := q.flush()
	var order []string
	for _, a := range got {
		order = append(order, a.Device+"/"+a.Rule)
	}
	if s := strings.Join(order, " "); s != "R1/pre_alarm_high R1/single_event_high R2/single_event_high" {
		t.Errorf("equal device times released as %s", s)
	}
}

func TestAlertOrderMarksLateArrivals(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	var q alertOrder
	q.add(alertAt("R1", "pre_alarm_high", t0.Add(30*time.Minute)))
	if got := q.release(t0.Add(time.Hour)); len(got) != 1 || got[0].late {
		t.Fatalf("first release: %+v", got)
	}
	// Decided at minute 10 but arriving after minute 30 was printed.
	q.add(alertAt("R2", "data_gap", t0.Add(10*time.Minute)))
	q.add(alertAt("R2", "pre_alarm_high", t0.Add(40*time.Minute)))
	got := q.release(t0.Add(time.Hour))
	if len(got) != 2 {
		t.Fatalf("second release: %d alerts, want 2", len(got))
	}
	if got[0].Rule != "data_gap" || !got[0].late {
		t.Errorf("late alert not first or not marked: %+v", got[0])
	}
	if got[1].late {
		t.Errorf("alert at minute 40 marked late: %+v", got[1])
	}
	line, ok := alertLine(got[0])
	if !ok || !strings.Contains(line, "reported late") {
		t.Errorf("late alert printed as %q", line)
	}
	// An acknowledgement carries gateway time; it is never late and moves
	// nothing.
	ack := alertAt("R1", "pre_alarm_high", t0.Add(-time.Hour))
	ack.Transition, ack.By = "acknowledged", "qa@shipper"
	q.add(ack)
	got = q.flush()
	if len(got) != 1 || got[0].late {
		t.Fatalf("acknowledgement released as %+v", got)
	}
	if line, _ := alertLine(got[0]); !strings.Contains(line, "by qa@shipper") {
		t.Errorf("acknowledgement printed as %q", line)
	}
}

func TestAlertLineSkipsRevisions(t *testing.T) {
	a := orderedAlert{Alert: alertAt("R1", "mkt", time.Now())}
	a.Transition = "revised"
	if line, ok := alertLine(a); ok {
		t.Errorf("revision printed: %q", line)
	}
	a.Transition = "opened"
	a.PeakC = record.Opt[float64]{V: 9.04, Set: true}
	line, ok := alertLine(a)
	if !ok || !strings.Contains(line, "peak 9.0 °C") || !strings.HasPrefix(line, "ALERT opened    mkt") {
		t.Errorf("opened printed as %q", line)
	}
}
