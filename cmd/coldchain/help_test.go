package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpName is issue 15's second papercut: `coldchain help NAME`
// answers the same as `coldchain NAME --help`, for every command.
func TestHelpName(t *testing.T) {
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			var viaFlag, flagErr, viaHelp, helpErr bytes.Buffer
			if code := run([]string{name, "--help"}, &viaFlag, &flagErr); code != 0 {
				t.Fatalf("%s --help: exit %d", name, code)
			}
			if code := run([]string{"help", name}, &viaHelp, &helpErr); code != 0 {
				t.Fatalf("help %s: exit %d: %s", name, code, helpErr.String())
			}
			want := viaFlag.String() + flagErr.String()
			if !strings.HasPrefix(want, "Usage: coldchain "+name) {
				t.Fatalf("%s --help does not start with its usage line: %q", name, want[:min(len(want), 80)])
			}
			if got := viaHelp.String(); got != want {
				t.Errorf("help %s differs from %s --help:\n%s\n---\n%s", name, name, got, want)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run([]string{"help", "nosuch"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "nosuch"`) {
		t.Errorf("help nosuch: exit %d, stderr %q", code, errb.String())
	}
}
