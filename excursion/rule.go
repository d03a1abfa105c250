package excursion

import "fmt"

// Rule names one alarm rule of a profile. The zero value is not a rule; the
// names returned by String are the wire names of the product issue.
type Rule uint8

// The rules, in evaluation order. Every rule but DataGap and MKT exists once
// for the high and once for the low side of the 2–8 °C band.
const (
	// PreAlarmHigh is the warning above the high pre-alarm threshold.
	PreAlarmHigh Rule = iota + 1
	// PreAlarmLow is the warning below the low pre-alarm threshold.
	PreAlarmLow
	// SingleEventHigh is continuous device time above the high limit for at least the high delay.
	SingleEventHigh
	// SingleEventLow is continuous device time below the low limit for at least the low delay.
	SingleEventLow
	// CumulativeHigh is total device time above the high limit over the shipment reaching the high budget.
	CumulativeHigh
	// CumulativeLow is total device time below the low limit over the shipment reaching the low budget.
	CumulativeLow
	// InstantHigh is any reading above the absolute high limit.
	InstantHigh
	// InstantLow is any reading at or below the absolute low limit.
	InstantLow
	// DataGap is device time without readings longer than the gap limit.
	DataGap
	// MKT is the Mean Kinetic Temperature of USP <1079.2> above its limit.
	MKT
)

// numRules is one more than the largest Rule, so a [numRules]T is indexed by Rule.
const numRules = int(MKT) + 1

var ruleNames = [numRules]string{
	PreAlarmHigh:    "pre_alarm_high",
	PreAlarmLow:     "pre_alarm_low",
	SingleEventHigh: "single_event_high",
	SingleEventLow:  "single_event_low",
	CumulativeHigh:  "cumulative_high",
	CumulativeLow:   "cumulative_low",
	InstantHigh:     "instant_high",
	InstantLow:      "instant_low",
	DataGap:         "data_gap",
	MKT:             "mkt",
}

// Valid reports whether r is one of the declared rules.
func (r Rule) Valid() bool { return r >= PreAlarmHigh && r <= MKT }

// String returns the rule's wire name, e.g. "single_event_high".
func (r Rule) String() string {
	if !r.Valid() {
		return fmt.Sprintf("rule(%d)", uint8(r))
	}
	return ruleNames[r]
}

// MarshalText encodes r as its wire name, so profiles and JSON carry names.
func (r Rule) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, fmt.Errorf("%w: rule %d", ErrInvalidConfig, uint8(r))
	}
	return []byte(ruleNames[r]), nil
}

// UnmarshalText decodes a wire name; unknown names wrap ErrInvalidConfig.
func (r *Rule) UnmarshalText(b []byte) error {
	for i := PreAlarmHigh; i <= MKT; i++ {
		if ruleNames[i] == string(b) {
			*r = i
			return nil
		}
	}
	return fmt.Errorf("%w: unknown rule %q", ErrInvalidConfig, b)
}

// Severity is how urgent an alert is.
type Severity uint8

const (
	// Warning is the severity of the pre-alarms.
	Warning Severity = iota + 1
	// Alarm is the severity of every other rule.
	Alarm
)

// String returns "warning" or "alarm".
func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Alarm:
		return "alarm"
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// Transition is what happened to an alert. Live, in-order readings only ever
// produce Opened and Cleared; the other three are corrections that late,
// out-of-order readings make to alerts already published.
type Transition uint8

const (
	// Opened is the first publication of an alert.
	Opened Transition = iota + 1
	// Cleared ends an open alert.
	Cleared
	// Reopened says that a cleared alert is open after all: a late reading
	// showed that the excursion had not ended when it was cleared.
	Reopened
	// Revised corrects the figures (end, peak, time beyond) of a published
	// alert without changing whether it is open.
	Revised
	// Retracted withdraws a published alert that, given a late reading, would
	// never have been raised. The same alert id may be opened again later.
	Retracted
)

var transitionNames = [...]string{Opened: "opened", Cleared: "cleared", Reopened: "reopened", Revised: "revised", Retracted: "retracted"}

// String returns the transition's lower-case name.
func (t Transition) String() string {
	if t < Opened || t > Retracted {
		return fmt.Sprintf("transition(%d)", uint8(t))
	}
	return transitionNames[t]
}

// Open reports whether an alert is open after this transition. Revised keeps
// the state it had, so Open cannot tell and returns false for it; use the
// alert's previous state.
func (t Transition) Open() bool { return t == Opened || t == Reopened }

// Suppression is a set of suppression windows, as bits.
type Suppression uint8

const (
	// Defrost is the window around a reefer defrost cycle (reefer mode == defrost).
	Defrost Suppression = 1 << iota
	// DoorOpen is the window around an open door.
	DoorOpen
)

// String lists the windows, e.g. "defrost|door_open", or "" for none.
func (s Suppression) String() string {
	switch s {
	case 0:
		return ""
	case Defrost:
		return "defrost"
	case DoorOpen:
		return "door_open"
	case Defrost | DoorOpen:
		return "defrost|door_open"
	}
	return fmt.Sprintf("suppression(%d)", uint8(s))
}

// Status says what the detector did with one sample.
type Status uint8

const (
	// Accepted is a sample newer than every other of its device, evaluated live.
	Accepted Status = iota + 1
	// Reordered is a late or out-of-order sample inside the retained history:
	// the device was re-evaluated from the sample's place, and any events it
	// produced have Late set.
	Reordered
	// Duplicate is a sample whose ID the device's retained history already
	// holds; it was ignored.
	Duplicate
	// BeyondHorizon is a sample older than the configured horizon behind the
	// device's newest reading. It was flagged, not evaluated.
	BeyondHorizon
	// BeyondHistory is a late sample inside the horizon but older than the
	// oldest reading the device still retains, so it cannot be replayed
	// exactly. It was flagged, not evaluated.
	BeyondHistory
)

var statusNames = [...]string{Accepted: "accepted", Reordered: "reordered", Duplicate: "duplicate", BeyondHorizon: "beyond_horizon", BeyondHistory: "beyond_history"}

// String returns the status's snake-case name.
func (s Status) String() string {
	if s < Accepted || s > BeyondHistory {
		return fmt.Sprintf("status(%d)", uint8(s))
	}
	return statusNames[s]
}

// Flagged reports whether the sample was reported but not evaluated.
func (s Status) Flagged() bool { return s == BeyondHorizon || s == BeyondHistory }
