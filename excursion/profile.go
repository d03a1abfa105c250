package excursion

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Profile is one alarm profile: the thresholds, delays and windows that turn
// readings into alerts. Temperatures are in °C, durations are device time.
// A profile file holds exactly one Profile in YAML (see configs/profiles/).
type Profile struct {
	// Name identifies the profile, e.g. "2-8C"; a file's base name must match.
	Name string `yaml:"name"`
	// Interval is the expected spacing of readings.
	Interval time.Duration `yaml:"interval"`
	// Deadband is the hysteresis, °C ≥ 0: an alert over a high threshold
	// clears only at or below threshold − Deadband (low: at or above
	// threshold + Deadband), so it does not flap around 8.0 °C.
	Deadband float64 `yaml:"deadband"`
	// ClearDelay is how long readings must stay inside the deadband-widened
	// band, continuously on known device time, before an alert clears. It must
	// be positive, which also keeps alert ids unique.
	ClearDelay time.Duration `yaml:"clear_delay"`
	// High holds the thresholds above the band.
	High Limits `yaml:"high"`
	// Low holds the thresholds below the band.
	Low Limits `yaml:"low"`
	// Gap configures the data-gap alarm.
	Gap Gap `yaml:"gap"`
	// MKT configures the Mean Kinetic Temperature of USP <1079.2>.
	MKT KineticLimit `yaml:"mkt"`
	// Suppress configures the reefer-defrost and door-open windows.
	Suppress Suppress `yaml:"suppress"`
}

// Limits are the thresholds on one side of the band. For the high side a
// reading is beyond a threshold when it is strictly above it; for the low side
// when it is strictly below it, except Instant, which a low reading reaches when
// it is at or below it (the "≤ 0 °C": freezing starts at 0 °C).
type Limits struct {
	// PreAlarm is the warning threshold, °C.
	PreAlarm float64 `yaml:"pre_alarm"`
	// Limit is the threshold of the single-event and cumulative alarms, °C.
	Limit float64 `yaml:"limit"`
	// Delay is the continuous device time beyond Limit that raises the single-event alarm.
	Delay time.Duration `yaml:"delay"`
	// Budget is the total device time beyond Limit over the shipment that
	// raises the cumulative alarm. The total never resets.
	Budget time.Duration `yaml:"budget"`
	// Instant is the absolute limit that raises the instant alarm on any reading, °C.
	Instant float64 `yaml:"instant"`
}

// Gap configures the data-gap alarm.
type Gap struct {
	// Factor times the profile's Interval is the gap limit: two consecutive
	// readings further apart than that enclose unknown device time.
	Factor float64 `yaml:"factor"`
}

// KineticLimit configures the Mean Kinetic Temperature of USP <1079.2>.
type KineticLimit struct {
	// Limit is the highest acceptable MKT, °C.
	Limit float64 `yaml:"limit"`
	// Window is the trailing device-time window the MKT is computed over.
	Window time.Duration `yaml:"window"`
	// MinKnown is the known (non-gap) device time the window must hold
	// before the MKT can raise an alarm, so the first hot reading of a
	// shipment does not count as a day's worth of heat.
	MinKnown time.Duration `yaml:"min_known"`
	// DeltaHOverR is the activation energy over the gas constant, kelvin;
	// USP <1079.2> uses ΔH = 83.144 kJ/mol, so ΔH/R = 10,000 K.
	DeltaHOverR float64 `yaml:"delta_h_over_r"`
}

// Suppress holds the two suppression windows.
type Suppress struct {
	// Defrost applies while a sample has Defrost set.
	Defrost Window `yaml:"defrost"`
	// DoorOpen applies while a sample has DoorOpen set.
	DoorOpen Window `yaml:"door_open"`
}

// Window is one suppression window. It opens at the first reading with its
// flag set and ends at the earlier of Max after it opened and After past the
// first reading with the flag clear again. An alert of one of Rules whose
// condition is met inside the window is held: it is published when the
// window ends (or, if it clears first, as an Opened and a Cleared event
// together) with the window recorded in Event.Suppressed. Suppression never
// drops an alert and never changes its device-time figures.
type Window struct {
	// Max is the longest a window lasts and the longest it holds an alert;
	// zero disables the window.
	Max time.Duration `yaml:"max"`
	// After extends the window past the end of its flag (recovery time).
	After time.Duration `yaml:"after"`
	// Rules are the rules the window holds: pre-alarms and single-event
	// alarms only. Cumulative, instant, data-gap and MKT alarms count physical
	// exposure and are never suppressed.
	Rules []Rule `yaml:"rules"`
}

// DefaultProfile returns profile "2-8C" with the product issue's defaults.
// The issue leaves three values open; they are chosen here: the low
// cumulative budget is 60 min below 2 °C (mirroring the high side), the clear
// delay is 10 min (two readings at the default interval), and the MKT needs
// 12 h of known time in its 24 h window before it can alarm.
func DefaultProfile() Profile {
	return Profile{
		Name:       "2-8C",
		Interval:   5 * time.Minute,
		Deadband:   0.5,
		ClearDelay: 10 * time.Minute,
		High:       Limits{PreAlarm: 7.5, Limit: 8, Delay: 30 * time.Minute, Budget: 60 * time.Minute, Instant: 25},
		Low:        Limits{PreAlarm: 2.5, Limit: 2, Delay: 15 * time.Minute, Budget: 60 * time.Minute, Instant: 0},
		Gap:        Gap{Factor: 3},
		MKT:        KineticLimit{Limit: 8, Window: 24 * time.Hour, MinKnown: 12 * time.Hour, DeltaHOverR: 10000},
		Suppress: Suppress{
			Defrost:  Window{Max: 45 * time.Minute, After: 15 * time.Minute, Rules: []Rule{PreAlarmHigh, SingleEventHigh}},
			DoorOpen: Window{Max: 15 * time.Minute, After: 5 * time.Minute, Rules: []Rule{PreAlarmHigh, PreAlarmLow, SingleEventHigh, SingleEventLow}},
		},
	}
}

// ParseProfile decodes one YAML profile over DefaultProfile and validates it.
// Unknown keys, a second document and values of the wrong type are errors.
func ParseProfile(data []byte) (Profile, error) {
	p := DefaultProfile()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return Profile{}, fmt.Errorf("%w: empty profile", ErrInvalidConfig)
		}
		return Profile{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Profile{}, fmt.Errorf("%w: more than one YAML document", ErrInvalidConfig)
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// LoadProfiles parses every *.yaml file at the top of fsys, keyed by profile
// name. A file's base name without ".yaml" must equal the profile's name.
// The package does no I/O of its own: the caller chooses fsys, e.g.
// os.DirFS("configs/profiles").
func LoadProfiles(fsys fs.FS) (map[string]Profile, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list profiles: %w", err)
	}
	out := make(map[string]Profile, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read profile %s: %w", name, err)
		}
		p, err := ParseProfile(data)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		if want := strings.TrimSuffix(path.Base(name), ".yaml"); p.Name != want {
			return nil, fmt.Errorf("profile %s: %w", name, &FieldError{Field: "name", Reason: fmt.Sprintf("is %q, file name says %q", p.Name, want)})
		}
		out[p.Name] = p
	}
	return out, nil
}

// maxDuration bounds every configured duration (366 days) so that sums of
// device times never overflow int64.
const maxDuration = 366 * 24 * time.Hour

// Validate checks p and returns every problem as a *FieldError naming the
// YAML field, joined with errors.Join; each wraps ErrInvalidConfig.
func (p Profile) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	finite := func(field string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < -273.15 || v > 1000 {
			bad(field, "must be a temperature between -273.15 and 1000 °C, is %v", v)
			return false
		}
		return true
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 || d > maxDuration {
			bad(field, "must be positive and at most %v, is %v", maxDuration, d)
		}
	}
	if p.Name == "" {
		bad("name", "must not be empty")
	}
	positive("interval", p.Interval)
	if math.IsNaN(p.Deadband) || p.Deadband < 0 || p.Deadband > 100 {
		bad("deadband", "must be between 0 and 100 °C, is %v", p.Deadband)
	}
	positive("clear_delay", p.ClearDelay)
	h, l := p.High, p.Low
	okH := finite("high.pre_alarm", h.PreAlarm) && finite("high.limit", h.Limit) && finite("high.instant", h.Instant)
	okL := finite("low.pre_alarm", l.PreAlarm) && finite("low.limit", l.Limit) && finite("low.instant", l.Instant)
	if okH {
		if !(h.PreAlarm < h.Limit) {
			bad("high.pre_alarm", "must be below high.limit %v, is %v", h.Limit, h.PreAlarm)
		}
		if !(h.Limit < h.Instant) {
			bad("high.instant", "must be above high.limit %v, is %v", h.Limit, h.Instant)
		}
	}
	if okL {
		if !(l.PreAlarm > l.Limit) {
			bad("low.pre_alarm", "must be above low.limit %v, is %v", l.Limit, l.PreAlarm)
		}
		if !(l.Limit > l.Instant) {
			bad("low.instant", "must be below low.limit %v, is %v", l.Limit, l.Instant)
		}
	}
	if okH && okL && !(l.PreAlarm < h.PreAlarm) {
		bad("low.pre_alarm", "must be below high.pre_alarm %v, is %v", h.PreAlarm, l.PreAlarm)
	}
	positive("high.delay", h.Delay)
	positive("high.budget", h.Budget)
	positive("low.delay", l.Delay)
	positive("low.budget", l.Budget)
	if math.IsNaN(p.Gap.Factor) || p.Gap.Factor < 1 || p.Gap.Factor > 1000 {
		bad("gap.factor", "must be between 1 and 1000, is %v", p.Gap.Factor)
	} else if p.Interval > 0 && p.Interval <= maxDuration && time.Duration(p.Gap.Factor*float64(p.Interval)) > maxDuration {
		bad("gap.factor", "makes the gap limit longer than %v", maxDuration)
	}
	finite("mkt.limit", p.MKT.Limit)
	if p.MKT.Window < time.Hour || p.MKT.Window > maxDuration {
		bad("mkt.window", "must be between 1h and %v, is %v", maxDuration, p.MKT.Window)
	}
	if p.MKT.MinKnown < 0 || p.MKT.MinKnown > p.MKT.Window {
		bad("mkt.min_known", "must be between 0 and mkt.window, is %v", p.MKT.MinKnown)
	}
	if math.IsNaN(p.MKT.DeltaHOverR) || p.MKT.DeltaHOverR <= 0 || p.MKT.DeltaHOverR > 1e6 {
		bad("mkt.delta_h_over_r", "must be positive kelvin (USP <1079.2>: 10000), is %v", p.MKT.DeltaHOverR)
	}
	for _, w := range []struct {
		field string
		w     Window
	}{{"suppress.defrost", p.Suppress.Defrost}, {"suppress.door_open", p.Suppress.DoorOpen}} {
		if w.w.Max < 0 || w.w.Max > maxDuration {
			bad(w.field+".max", "must be between 0 (off) and %v, is %v", maxDuration, w.w.Max)
		}
		if w.w.After < 0 || w.w.After > maxDuration {
			bad(w.field+".after", "must be between 0 and %v, is %v", maxDuration, w.w.After)
		}
		seen := map[Rule]bool{}
		for i, r := range w.w.Rules {
			switch {
			case r != PreAlarmHigh && r != PreAlarmLow && r != SingleEventHigh && r != SingleEventLow:
				bad(fmt.Sprintf("%s.rules[%d]", w.field, i), "only pre-alarm and single-event rules can be suppressed, not %v", r)
			case seen[r]:
				bad(fmt.Sprintf("%s.rules[%d]", w.field, i), "lists %v twice", r)
			}
			seen[r] = true
		}
	}
	return errors.Join(errs...)
}

// GapLimit returns Gap.Factor × Interval: readings further apart than this
// enclose unknown device time.
func (p Profile) GapLimit() time.Duration {
	return time.Duration(p.Gap.Factor * float64(p.Interval))
}

// FieldError is a configuration value that failed validation. Field is the
// YAML path, e.g. "high.delay".
type FieldError struct {
	Field  string
	Reason string
}

// Error returns "field: reason".
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes every FieldError match ErrInvalidConfig.
func (e *FieldError) Unwrap() error { return ErrInvalidConfig }
