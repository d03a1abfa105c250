// Package excursion is the pure rule engine of the excursion detector: it
// turns temperature readings of 2–8 °C health-product shipments into alert
// events.
//
// It does no I/O and never reads the clock. Every duration is device time:
// a reading's value holds from its timestamp until the next reading's,
// unless they are further apart than the profile's gap limit, in which case
// the span is unknown — a data_gap alert, and neither in range nor out of
// range for any other rule. The caller passes Samples to Detector.Observe
// and publishes the Events it returns; Detector.Advance lets a silent
// device raise data_gap live from the caller's clock.
//
// The rules (issue "excursion detector", requirement 1) are, for the high
// and the low side: a pre-alarm warning; a single-event alarm (continuously
// beyond the limit for a delay); a cumulative alarm (total time beyond the
// limit over the shipment reaches a budget, never reset); an instant alarm
// (one reading beyond an absolute limit); plus data_gap and the Mean
// Kinetic Temperature of USP <1079.2> over a trailing 24 h window. Alerts
// clear with hysteresis (a deadband) after a clear delay, so they do not
// flap around 8.0 °C. Defrost and door-open windows hold the publication of
// pre-alarms and single-event alarms, never drop them (see Window).
//
// Each alert has a deterministic id, AlertID(device, rule, start), and a
// lifecycle of events: Opened, then Cleared. Late and out-of-order readings
// (requirement 2) are inserted at their place in a bounded per-device
// history and the device is replayed from a checkpoint; the detector then
// publishes the difference between what it had published and what in-order
// arrival would have published — new Opened and Cleared events, or
// Reopened, Revised and Retracted corrections — all with Event.Late set. So
// any arrival order of the same readings leaves a consumer with the same
// alerts. docs/EXCURSION.md describes the design and its measured cost.
package excursion
