package main

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/coldchain/coldchain/record"
)

// alertOrder puts the alerts the demo narrates back into device-time
// order. The detector decides each device's alerts in that device's own
// time, but devices publish side by side and their transitions reach the
// demo interleaved; holding them until the simulation's device clock is
// safely past them, then releasing them sorted, prints them in the order
// they happened on the shipments.
//
// An alert that arrives after an alert with a later device time was
// released can no longer be put in its place; release returns it first in
// the next batch with late set, and the demo says so rather than pretend.
type alertOrder struct {
	mu      sync.Mutex
	pending []record.Alert
	printed time.Time // latest device time released so far
}

// orderedAlert is an alert released by alertOrder.
type orderedAlert struct {
	record.Alert
	// late is set when an alert with a later device time had already been
	// released before this one arrived.
	late bool
}

func (q *alertOrder) add(a record.Alert) {
	q.mu.Lock()
	q.pending = append(q.pending, a)
	q.mu.Unlock()
}

// release returns, in device-time order, the held alerts decided at or
// before upTo, and keeps the rest.
func (q *alertOrder) release(upTo time.Time) []orderedAlert {
	q.mu.Lock()
	defer q.mu.Unlock()
	slices.SortStableFunc(q.pending, compareAlerts)
	n := 0
	for n < len(q.pending) && !q.pending[n].At.After(upTo) {
		n++
	}
	out := make([]orderedAlert, n)
	for i, a := range q.pending[:n] {
		out[i] = orderedAlert{Alert: a}
		if a.Transition == "acknowledged" {
			// Stamped with gateway time, not device time: it is
			// printed when it comes and orders nothing.
			continue
		}
		out[i].late = a.At.Before(q.printed)
		if a.At.After(q.printed) {
			q.printed = a.At
		}
	}
	q.pending = slices.Delete(q.pending, 0, n)
	return out
}

// flush releases every held alert, in device-time order.
func (q *alertOrder) flush() []orderedAlert {
	return q.release(time.Unix(1<<62, 0))
}

// compareAlerts orders alerts by the device time of their transition,
// then by device, rule and transition so equal times print the same way
// on every run.
func compareAlerts(a, b record.Alert) int {
	return cmp.Or(
		a.At.Compare(b.At),
		cmp.Compare(a.Shipment, b.Shipment),
		cmp.Compare(a.Device, b.Device),
		cmp.Compare(a.Rule, b.Rule),
		cmp.Compare(a.Transition, b.Transition),
	)
}
