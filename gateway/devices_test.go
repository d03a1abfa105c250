package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
)

// TestDevicesAPI: an admin registers devices and calibrations over
// POST /v1/devices; a provider reads its org's devices and gets 404 for
// another org's; a second serial is a conflict, a bad record a 400, and
// nobody but an admin changes the registry.
func TestDevicesAPI(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.HTTP.AllowAnonymous = false
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()
	ctx := context.Background()
	dir := authtest.Open(t, gw.g.NATSURL())
	token := func(role auth.Role, org string) string {
		tok, _ := addToken(t, dir, auth.Principal{Role: role, Org: org, Name: string(role) + "@" + org})
		return tok
	}
	admin, provider, shipper := token(auth.RoleAdmin, ""), token(auth.RoleProvider, "acme"), token(auth.RoleShipper, "acme")
	for id, org := range map[string]string{"L1": "acme", "L2": "beta"} {
		c, err := auth.NewCredential(auth.Principal{Kind: auth.KindDevice, ID: id, Org: org}, []byte("a-long-enough-password"))
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	do := func(method, path, tok, body string) (int, string) {
		t.Helper()
		code, b := apiDo(t, base, method, path, tok, body)
		var c bytes.Buffer
		if json.Compact(&c, []byte(b)) == nil {
			b = c.String()
		}
		return code, b
	}
	cal := `{"lab":"SGS","accreditation":"ISO/IEC 17025, CNAS L0599","reference":"PRT","cert_sha256":"` + strings.Repeat("ab", 32) +
		`","calibrated_at":"2026-01-10T00:00:00Z","due_at":"2099-01-10T00:00:00Z","uncertainty_c":0.1}`
	for _, tc := range []struct {
		name, method, path, tok, body string
		want                          int
		says                          string
	}{
		{"admin registers L1", "POST", "/v1/devices", admin, `{"id":"L1","serial":"SN-1","model":"TempTale","calibrations":[` + cal + `]}`, 200, `"in_calibration":true`},
		{"admin registers L2", "POST", "/v1/devices", admin, `{"id":"L2","serial":"SN-2"}`, 200, `"status":"never calibrated"`},
		{"second serial", "POST", "/v1/devices", admin, `{"id":"L1","serial":"SN-9"}`, 409, "another serial"},
		{"bad record", "POST", "/v1/devices", admin, `{"id":"L3","serial":"S","calibrations":[{"lab":"X"}]}`, 400, "accreditation is required"},
		{"unknown member", "POST", "/v1/devices", admin, `{"id":"L3","serial":"S","colour":"red"}`, 400, "unknown field"},
		{"provider may not register", "POST", "/v1/devices", provider, `{"id":"L4","serial":"S"}`, 403, "role"},
		{"no token", "GET", "/v1/devices", "", "", 401, ""},
		{"provider reads its device", "GET", "/v1/devices/L1", provider, "", 200, `"cert_sha256":"abab`},
		{"provider: another org's device is unknown", "GET", "/v1/devices/L2", provider, "", 404, "not registered"},
		{"shipper may not list devices", "GET", "/v1/devices", shipper, "", 403, "role"},
		{"admin reads any", "GET", "/v1/devices/L2", admin, "", 200, `"serial":"SN-2"`},
		{"unregistered", "GET", "/v1/devices/L9", admin, "", 404, "not registered"},
	} {
		code, body := do(tc.method, tc.path, tc.tok, tc.body)
		if code != tc.want || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.want, tc.says)
		}
	}
	if code, body := do("GET", "/v1/devices", provider, ""); code != 200 || !strings.Contains(body, `"id":"L1"`) || strings.Contains(body, `"id":"L2"`) {
		t.Errorf("provider's list: %d %s, want L1 only", code, body)
	}
	if code, body := do("GET", "/v1/devices", admin, ""); code != 200 || !strings.Contains(body, `"id":"L1"`) || !strings.Contains(body, `"id":"L2"`) {
		t.Errorf("admin's list: %d %s", code, body)
	}
}
