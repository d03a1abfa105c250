package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
)

// TestAPITokens runs the gateway with anonymous HTTP access off and checks
// each role and tenant rule through the real API: who may write, read and
// ack, that another org's shipment is a 404, that an ack records the
// token rather than the body's "by", and that every refusal is counted.
func TestAPITokens(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.HTTP.AllowAnonymous = false
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()

	ctx := context.Background()
	dir := authtest.Open(t, gw.g.NATSURL())
	token := func(role auth.Role, org, name string) (string, string) {
		return addToken(t, dir, auth.Principal{Role: role, Org: org, Name: name})
	}
	provider, providerID := token(auth.RoleProvider, "acme", "feed@acme")
	shipper, _ := token(auth.RoleShipper, "acme", "qa@acme")
	rival, _ := token(auth.RoleShipper, "beta", "qa@beta")
	customs, _ := token(auth.RoleCustoms, "acme", "broker@customs")
	rivalFeed, _ := token(auth.RoleProvider, "beta", "feed@beta")
	admin, _ := token(auth.RoleAdmin, "", "ops")
	if err := dir.Grant(ctx, "SHP-A", "acme"); err != nil {
		t.Fatal(err)
	}

	do := func(method, path, tok, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", method, path)
		}
		return resp.StatusCode, string(b)
	}
	expect := func(method, path, tok, body string, want int) string {
		t.Helper()
		code, got := do(method, path, tok, body)
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, got, want)
		}
		return got
	}

	// Open endpoints, and everything else closed without a valid token.
	expect("GET", "/healthz", "", "", 200)
	expect("GET", "/metrics", "", "", 200)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	var items []string
	for m := 0; m <= 60; m += 5 {
		items = append(items, fmt.Sprintf(`{"shipment":"SHP-A","device":"reefer-1","seq":%d,"ts":"%s","temp_c":9.5}`, m, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339)))
	}
	readings := "[" + strings.Join(items, ",") + "]"
	expect("POST", "/v1/readings", "", readings, 401)
	expect("POST", "/v1/readings", "cct_0000000000000000_nope", readings, 401)
	expect("GET", "/v1/shipments", "", "", 401)

	// The provider writes its granted shipment (the grant reaches the
	// gateway through a KV watch: retry the idempotent POST until then).
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := do("POST", "/v1/readings", provider, readings)
		if code == 202 {
			break
		}
		if code != 403 || time.Now().After(deadline) {
			t.Fatalf("provider POST: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body := expect("POST", "/v1/readings", provider, strings.ReplaceAll(readings, "SHP-A", "SHP-B"), 403); !strings.Contains(body, "not_granted") {
		t.Fatalf("write to an ungranted shipment: %s", body)
	}
	expect("POST", "/v1/readings", shipper, readings, 403)
	expect("GET", "/v1/deadletters", shipper, "", 403)
	// A provider lists its own org's dead letters only.
	expect("POST", "/v1/readings", provider, `[{"shipment":"SHP-A","device":"reefer-1","seq":99,"ts":"`+t0.Format(time.RFC3339)+`","temp_c":NaN}]`, 400)
	if body := expect("GET", "/v1/deadletters", provider, "", 200); !strings.Contains(body, `"org": "acme"`) || !strings.Contains(body, "not_finite") {
		t.Fatalf("the provider does not see its dead letter: %s", body)
	}
	if body := expect("GET", "/v1/deadletters", rivalFeed, "", 200); strings.Contains(body, "not_finite") || strings.Contains(body, "acme") {
		t.Fatalf("another org's provider sees acme's dead letters: %s", body)
	}

	// Reads: the org's shipment for its principals, a 404 for others.
	waitFor(t, "SHP-A in the store", func() bool {
		return strings.Contains(expect("GET", "/v1/shipments", shipper, "", 200), `"SHP-A"`)
	})
	if body := expect("GET", "/v1/shipments", rival, "", 200); strings.Contains(body, "SHP-A") {
		t.Fatalf("another org lists SHP-A: %s", body)
	}
	if body := expect("GET", "/v1/shipments", admin, "", 200); strings.Contains(body, "SHP-B") {
		t.Fatalf("the refused write to SHP-B was stored: %s", body)
	}
	for _, p := range []string{"/v1/shipments/SHP-A/readings", "/v1/shipments/SHP-A/status", "/v1/shipments/SHP-A/alerts", "/v1/shipments/SHP-A/anchors", "/v1/shipments/SHP-A/proof", "/v1/alerts/stream?shipment=SHP-A"} {
		if body := expect("GET", p, rival, "", 404); strings.Contains(body, "reefer-1") {
			t.Fatalf("%s leaks to another org: %s", p, body)
		}
	}
	expect("GET", "/v1/shipments/SHP-A/readings", customs, "", 200)
	expect("GET", "/v1/shipments/SHP-NOPE/status", rival, "", 404) // same answer as for SHP-A

	// Acks: by a shipper of the org, recorded as the token.
	var alertID string
	waitFor(t, "single_event_high on SHP-A", func() bool {
		var list struct{ Alerts []struct{ ID, Rule string } }
		if err := json.Unmarshal([]byte(expect("GET", "/v1/shipments/SHP-A/alerts", shipper, "", 200)), &list); err != nil {
			t.Fatal(err)
		}
		for _, a := range list.Alerts {
			if a.Rule == "single_event_high" {
				alertID = a.ID
			}
		}
		return alertID != ""
	})
	ack := `{"by":"attacker@nowhere","comment":"checked"}`
	expect("POST", "/v1/alerts/"+alertID+"/ack", customs, ack, 403)
	expect("POST", "/v1/alerts/"+alertID+"/ack", rival, ack, 404)
	body := expect("POST", "/v1/alerts/"+alertID+"/ack", shipper, ack, 200)
	var acked struct{ By, Comment string }
	if err := json.Unmarshal([]byte(body), &acked); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(acked.By, "qa@acme") || strings.Contains(acked.By, "attacker") || acked.Comment != "checked" {
		t.Fatalf("ack recorded by %q (%q), want the token's name", acked.By, acked.Comment)
	}

	// Revocation takes effect on the next request.
	if err := dir.Remove(ctx, auth.KindToken, providerID); err != nil {
		t.Fatal(err)
	}
	expect("POST", "/v1/readings", provider, readings, 401)

	// An expired token is refused and says so.
	expired, c, err := auth.NewToken(auth.Principal{Role: auth.RoleShipper, Org: "acme", Name: "old@acme"}, time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if body := expect("GET", "/v1/shipments/SHP-A/status", expired, "", 401); !strings.Contains(body, "token expired at") {
		t.Fatalf("expired token answered %s", body)
	}

	m := metricsText(t, gw.g.HTTPAddr())
	for _, reason := range []string{auth.ReasonNoToken, auth.ReasonBadToken, auth.ReasonExpired, auth.ReasonRole, auth.ReasonNotGranted} {
		if !strings.Contains(m, `coldchain_auth_denied_total{surface="http",reason="`+reason+`"}`) {
			t.Errorf("no http denial counted for %s", reason)
		}
	}
}

// addToken registers an API token of p, valid for an hour, and returns
// it and its id.
func addToken(t *testing.T, dir *auth.Directory, p auth.Principal) (string, string) {
	t.Helper()
	return authtest.Token(t, dir, p)
}
