// Package simulator generates a fleet of refrigerated containers (reefers)
// and data loggers on shipments between bonded warehouses and terminals, as
// the gateway would see it: readings with a compressor saw-tooth, defrost
// spikes, door openings and hot quays, custody handovers with seals, and
// injected faults whose right answer — which alarm the excursion detector
// must raise over which device-time interval, which message the gateway must
// reject and why — is written down as ground truth.
//
// The generator (Generator) is a pure function of the Config (seed included)
// and device time: it does no I/O and never reads the clock, so the same
// seed and start give byte-identical messages. The publishers (MQTT, HTTP)
// and Run, which maps wall time to device time, are separate. Load mode
// (Load) is a second, simpler generator built for rate rather than realism.
package simulator

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Transport is how messages reach the gateway. It changes what the
// generator produces only where a fault exists on one transport alone (an
// MQTT topic naming an invalid device, for instance).
type Transport uint8

// Transports. The zero value is not a transport.
const (
	TransportMQTT Transport = iota + 1
	TransportHTTP
)

// String returns "mqtt" or "http".
func (t Transport) String() string {
	switch t {
	case TransportMQTT:
		return "mqtt"
	case TransportHTTP:
		return "http"
	}
	return "unknown"
}

// Scenario names one injected fault. Its String form is the name used in
// --scenarios and in the ground truth.
type Scenario uint8

// Scenarios, in the order they are listed by Scenarios. The zero value is not
// a scenario.
const (
	// CompressorFailure: the reefer's compressor fails at sea for 12 h
	// (mode "alarm"); the cargo warms slowly towards ambient, to about 19 °C,
	// and is pulled down when the unit is repaired.
	CompressorFailure Scenario = iota + 1
	// PowerLoss: the reefer is left unplugged on a hot quay for 3 h (mode
	// "off", its telematics battery draining).
	PowerLoss
	// DoorOpen: the doors are left open for 90 min at a warm dock while the
	// unit keeps running.
	DoorOpen
	// Freezing: the setpoint is keyed in as −5 °C instead of 5 °C for 3 h.
	Freezing
	// ShortExcursions: six heat pulses 3 h apart (high-pressure cut-outs on a
	// hot quay), each about 15 min above 8 °C: never a single-event alarm,
	// but together more than the 60 min cumulative budget.
	ShortExcursions
	// StuckSensor: a logger repeats one value for 8 h.
	StuckSensor
	// OutOfRange: a logger's probe shorts: 150 °C and −273.15 °C (rejected
	// as out_of_range) and 85 °C (accepted: an instant alarm).
	OutOfRange
	// NaN: a logger reports NaN and Infinity (rejected as not_finite), one
	// alone and one inside a batch whose other readings are accepted.
	NaN
	// Dropout: a logger takes no readings for 50 min (a data gap).
	Dropout
	// OfflineBurst: a logger is offline for 6 h, during which the container
	// has a 50 min excursion, then uploads the six hours in one batch,
	// newest first.
	OfflineBurst
	// ClockSkew: a logger's clock runs 150 s ahead all along (accepted);
	// once it jumps a year ahead (future_timestamp) and then resets to 1970
	// (bad_timestamp) before it is set right again.
	ClockSkew
	// Duplicates: a logger sends every message twice for 2 h, then
	// re-uploads its last 24 h: all duplicates, stored once.
	Duplicates
	// Malformed: one message of each kind of garbage a field fleet sends:
	// truncated JSON, no ts, ts without offset, unknown member, seq as a
	// string, null member, duplicate member, bad reefer mode, a handover of
	// an unknown kind, and (MQTT) an invalid device id in the topic, a
	// device member that contradicts the topic and an unknown topic.
	Malformed
	numScenarios = iota
)

var scenarioNames = [...]string{
	CompressorFailure: "compressor_failure",
	PowerLoss:         "power_loss",
	DoorOpen:          "door_open",
	Freezing:          "freezing",
	ShortExcursions:   "short_excursions",
	StuckSensor:       "stuck_sensor",
	OutOfRange:        "out_of_range",
	NaN:               "nan",
	Dropout:           "dropout",
	OfflineBurst:      "offline_burst",
	ClockSkew:         "clock_skew",
	Duplicates:        "duplicates",
	Malformed:         "malformed",
}

// String returns the scenario's name, e.g. "compressor_failure".
func (s Scenario) String() string {
	if s > 0 && int(s) < len(scenarioNames) {
		return scenarioNames[s]
	}
	return fmt.Sprintf("scenario(%d)", uint8(s))
}

// Scenarios returns every scenario in order.
func Scenarios() []Scenario {
	out := make([]Scenario, 0, numScenarios)
	for s := CompressorFailure; int(s) <= numScenarios; s++ {
		out = append(out, s)
	}
	return out
}

// ErrUnknownScenario is returned by ParseScenarios for a name that is not a scenario.
var ErrUnknownScenario = errors.New("unknown scenario")

// ParseScenarios parses a comma-separated list of scenario names; "all"
// stands for every scenario and "" for none.
func ParseScenarios(list string) ([]Scenario, error) {
	var out []Scenario
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "":
			continue
		case "all":
			out = append(out, Scenarios()...)
			continue
		}
		i := slices.Index(scenarioNames[:], name)
		if i <= 0 {
			return nil, fmt.Errorf("%w %q (one of %s, or all)", ErrUnknownScenario, name, strings.Join(scenarioNames[1:], ", "))
		}
		out = append(out, Scenario(i))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Config describes a fleet. Everything the generator produces is a function
// of it and of device time.
type Config struct {
	// Seed selects the fleet's randomness: offsets, phases, noise, seals.
	Seed int64
	// Shipments is the number of shipments (containers), at least 1.
	Shipments int
	// Devices is the number of devices per shipment: the reefer unit first,
	// then data loggers, alternately with a buffered and an air probe.
	Devices int
	// Interval is the device-time spacing of one device's readings.
	Interval time.Duration
	// Start is the device time the simulation begins. Each shipment is at a
	// different point of its route then.
	Start time.Time
	// Span is the device-time length of the simulation. Scenarios are
	// placed inside it.
	Span time.Duration
	// Scenarios are injected on shipments in turn: scenario i on shipment
	// i mod Shipments, so with more shipments than scenarios the last ones
	// run normally.
	Scenarios []Scenario
	// Transport decides the few transport-specific faults.
	Transport Transport
	// Sign, when set, returns a device's Ed25519 signing key, or nil: the
	// device then signs each valid reading it sends (record.SignReading),
	// as a device that registered its public key must.
	Sign func(device string) ed25519.PrivateKey
}

// DefaultConfig returns 3 shipments of 3 devices reading every 5 minutes.
// Start and Span must still be set.
func DefaultConfig() Config {
	return Config{Seed: 1, Shipments: 3, Devices: 3, Interval: 5 * time.Minute, Transport: TransportMQTT}
}

// Validate reports the first invalid setting, naming the flag that sets it.
func (c Config) Validate() error {
	switch {
	case c.Shipments < 1 || c.Shipments > 10000:
		return fmt.Errorf("shipments: must be 1 to 10000, got %d", c.Shipments)
	case c.Devices < 1 || c.Devices > 100:
		return fmt.Errorf("devices: must be 1 to 100 per shipment, got %d", c.Devices)
	case c.Interval < time.Second || c.Interval > 24*time.Hour:
		return fmt.Errorf("interval: must be 1s to 24h, got %v", c.Interval)
	case c.Interval%time.Second != 0:
		return fmt.Errorf("interval: must be whole seconds, got %v", c.Interval)
	case c.Start.Before(time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)):
		return fmt.Errorf("start: %v is before 2000, which the gateway rejects", c.Start)
	case c.Span <= 0:
		return fmt.Errorf("span: must be positive, got %v", c.Span)
	case c.Transport != TransportMQTT && c.Transport != TransportHTTP:
		return fmt.Errorf("transport: must be mqtt or http")
	}
	for _, s := range c.Scenarios {
		if s < 1 || int(s) > numScenarios {
			return fmt.Errorf("scenarios: %w %d", ErrUnknownScenario, s)
		}
	}
	return nil
}
