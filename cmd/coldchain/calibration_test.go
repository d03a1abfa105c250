package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coldchain/coldchain/auth/authtest"
)

// TestDevicesCalibrate registers a sensor, adds a calibration from its
// certificate file, shows it, and refuses a second serial and bad records
// with what to fix.
func TestDevicesCalibrate(t *testing.T) {
	url, _ := authtest.Start(t)
	devices := func(args ...string) (int, string, string) {
		t.Helper()
		var o, e bytes.Buffer
		code := run(append([]string{"devices"}, append(args, "--nats", url)...), &o, &e)
		return code, o.String(), e.String()
	}
	if code, out, errOut := devices("register", "L1", "--serial", "TT-0042", "--model", "TempTale Ultra"); code != 0 || !strings.Contains(out, "serial TT-0042") {
		t.Fatalf("register: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := devices("register", "L1", "--serial", "TT-9999"); code != 1 || !strings.Contains(errOut, "another serial") {
		t.Fatalf("second serial: %d %s", code, errOut)
	}
	cert := filepath.Join(t.TempDir(), "cert.pdf")
	if err := os.WriteFile(cert, []byte("%PDF-1.7 calibration certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("%PDF-1.7 calibration certificate"))
	calibrate := []string{"calibrate", "L1", "--lab", "SGS Metrology", "--accreditation", "ISO/IEC 17025, CNAS L0599", "--reference", "Fluke 1524 PRT",
		"--cert-file", cert, "--calibrated-at", "2026-01-10", "--due-at", "2099-01-10", "--uncertainty", "0.1"}
	if code, out, errOut := devices(calibrate...); code != 0 || !strings.Contains(out, "1 calibration records; now calibrated 2026-01-10") {
		t.Fatalf("calibrate: %d %s %s", code, out, errOut)
	}
	if code, out, _ := devices(calibrate...); code != 0 || !strings.Contains(out, "1 calibration records") {
		t.Fatalf("the same certificate again: %d %s", code, out)
	}
	code, out, errOut := devices("show", "L1")
	if code != 0 || !strings.Contains(out, "TempTale Ultra") || !strings.Contains(out, hex.EncodeToString(sum[:])) || !strings.Contains(out, "CNAS L0599") {
		t.Fatalf("show: %d %s %s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"calibrate", "L1", "--lab", "X", "--accreditation", "A", "--reference", "R", "--cert-sha256", "abc", "--calibrated-at", "2026-01-10", "--due-at", "2027-01-10", "--uncertainty", "0.1"}, "64 lowercase hex"},
		{[]string{"calibrate", "L1", "--lab", "X", "--accreditation", "A", "--reference", "R", "--cert-file", cert, "--calibrated-at", "10/01/2026", "--due-at", "2027-01-10", "--uncertainty", "0.1"}, "give a date as"},
		{[]string{"calibrate", "L2", "--lab", "X", "--accreditation", "A", "--reference", "R", "--cert-file", cert, "--calibrated-at", "2026-01-10", "--due-at", "2027-01-10", "--uncertainty", "0.1"}, "devices register L2"},
		{[]string{"show", "L9"}, "not registered"},
		{[]string{"register", "L3"}, "needs --serial"},
	} {
		if code, _, errOut := devices(tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
