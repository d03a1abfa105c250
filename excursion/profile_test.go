package excursion

import (
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestProfileFiles loads every file in configs/profiles (STYLE: every file
// in configs/ is loaded by a test) and checks that 2-8C.yaml spells out
// exactly DefaultProfile.
func TestProfileFiles(t *testing.T) {
	ps, err := LoadProfiles(os.DirFS("../configs/profiles"))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := ps["2-8C"]
	if !ok {
		t.Fatalf("no 2-8C profile in %v", ps)
	}
	if !reflect.DeepEqual(p, DefaultProfile()) {
		t.Errorf("2-8C.yaml = %+v\nwant DefaultProfile %+v", p, DefaultProfile())
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		field string // the FieldError's field, or "" for a decoding error
		check func(Profile) bool
	}{
		{name: "overrides keep the other defaults", yaml: "name: x\nhigh:\n  delay: 45m\n",
			check: func(p Profile) bool { return p.High.Delay == 45*time.Minute && p.High.Limit == 8 && p.Name == "x" }},
		{name: "unknown key", yaml: "name: x\nhigh:\n  dealy: 45m\n"},
		{name: "integer duration", yaml: "interval: 300\n"},
		{name: "two documents", yaml: "name: x\n---\nname: y\n"},
		{name: "empty", yaml: ""},
		{name: "unknown rule", yaml: "suppress:\n  defrost:\n    rules: [pre_alarm_hgh]\n"},
		{name: "negative delay", yaml: "low:\n  delay: -5m\n", field: "low.delay"},
		{name: "pre-alarm above limit", yaml: "high:\n  pre_alarm: 8.5\n", field: "high.pre_alarm"},
		{name: "instant below limit", yaml: "low:\n  instant: 3\n", field: "low.instant"},
		{name: "zero clear delay", yaml: "clear_delay: 0s\n", field: "clear_delay"},
		{name: "gap factor below one", yaml: "gap:\n  factor: 0.5\n", field: "gap.factor"},
		{name: "short MKT window", yaml: "mkt:\n  window: 30m\n  min_known: 10m\n", field: "mkt.window"},
		{name: "min_known beyond window", yaml: "mkt:\n  min_known: 25h\n", field: "mkt.min_known"},
		{name: "suppressing a cumulative alarm", yaml: "suppress:\n  door_open:\n    rules: [cumulative_high]\n", field: "suppress.door_open.rules[0]"},
		{name: "suppressing a rule twice", yaml: "suppress:\n  defrost:\n    rules: [pre_alarm_high, pre_alarm_high]\n", field: "suppress.defrost.rules[1]"},
		{name: "no name", yaml: "name: \"\"\n", field: "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProfile([]byte(tt.yaml))
			if tt.check != nil {
				if err != nil || !tt.check(p) {
					t.Fatalf("ParseProfile = %+v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			var fe *FieldError
			if tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field) {
				t.Fatalf("err = %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
}

func TestLoadProfilesNameMustMatchFile(t *testing.T) {
	fsys := fstest.MapFS{"cold.yaml": {Data: []byte("name: warm\n")}}
	_, err := LoadProfiles(fsys)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "name" || !strings.Contains(err.Error(), "cold.yaml") {
		t.Fatalf("err = %v, want a name FieldError naming cold.yaml", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Horizon: 0, History: 16}, "horizon"},
		{Config{Horizon: time.Hour, History: 0}, "history"},
	} {
		var fe *FieldError
		if err := c.cfg.Validate(); !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: err = %v, want field %s", c.cfg, err, c.field)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
}

func TestInvalidSamples(t *testing.T) {
	d := newDetector(t, DefaultProfile(), DefaultConfig())
	good := Sample{Seq: 1, Device: "d", Time: t0, TempC: 5}
	for name, mutate := range map[string]func(*Sample){
		"reserved seq":   func(s *Sample) { s.Seq = math.MaxUint64 },
		"empty device":   func(s *Sample) { s.Device = "" },
		"zero time":      func(s *Sample) { s.Time = 0 },
		"time past 2116": func(s *Sample) { s.Time = maxTime + 1 },
		"NaN":            func(s *Sample) { s.TempC = nan() },
		"absolute zero":  func(s *Sample) { s.TempC = -273.15 },
	} {
		s := good
		mutate(&s)
		if _, _, err := d.Observe(nil, s); !errors.Is(err, ErrInvalidSample) {
			t.Errorf("%s: err = %v, want ErrInvalidSample", name, err)
		}
	}
	if d.Len() != 0 {
		t.Error("an invalid sample created device state")
	}
}

func nan() float64 { var z float64; return z / z }
