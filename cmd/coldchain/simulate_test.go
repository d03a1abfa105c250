package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSimulateHelp: --help explains every flag and every scenario.
func TestSimulateHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"simulate", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := errb.String()
	for _, f := range []string{"mqtt", "http", "shipments", "devices", "interval", "accelerate", "duration", "rate", "batch",
		"connections", "scenarios", "truth", "seed", "in-flight", "token"} {
		if !strings.Contains(help, "\n  -"+f+" ") && !strings.Contains(help, "\n  -"+f+"\n") {
			t.Errorf("--help does not explain --%s", f)
		}
	}
	for _, s := range []string{"compressor_failure", "power_loss", "door_open", "freezing", "short_excursions", "stuck_sensor",
		"out_of_range", "nan", "dropout", "offline_burst", "clock_skew", "duplicates", "malformed"} {
		if !strings.Contains(help, "  "+s+" ") {
			t.Errorf("--help does not explain scenario %s", s)
		}
	}
}

// TestSimulateUsageErrors: bad flag combinations exit 2 before connecting.
func TestSimulateUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--accelerate", "100"},
		{"--accelerate", "0.5", "--duration", "1s"},
		{"--scenarios", "fire"},
		{"--rate", "100", "--truth", "x.json"},
		{"--rate", "100", "--batch", "0"},
		{"--shipments", "0", "--duration", "1s"},
		{"--interval", "1500ms", "--duration", "1s"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"simulate"}, args...), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}
