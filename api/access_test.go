package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/epcis"
	"github.com/coldchain/coldchain/metrics"
)

// TestRouteWithoutRuleRefused: registering an endpoint with no access
// rule panics at start, so none is ever served unguarded.
func TestRouteWithoutRuleRefused(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second}, nil, nil, metrics.New(), nil, 1<<20, nil, zaptest.NewLogger(t))
	defer func() {
		if recover() == nil {
			t.Fatal("a route without an access rule was registered")
		}
	}()
	s.HandleFunc("GET /v1/secrets", func(http.ResponseWriter, *http.Request) {})
}

// TestUnserved lists the rules whose routes a server did not register:
// the API's own are registered by New, EnableHistory, EnableCustody and
// EnableEPCIS, EnableReport and EnableDevices; the alert, proof and
// dashboard routes by their packages, the cluster view by the gateway (the gateway refuses to start while any
// rule is unserved).
func TestUnserved(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second}, nil, nil, metrics.New(), nil, 1<<20, nil, zaptest.NewLogger(t))
	s.EnableHistory(nil)
	s.EnableCustody(nil, custody.DefaultConfig())
	s.EnableEPCIS(nil, EPCISSources{}, epcis.DefaultOptions())
	s.EnableReport(ReportSources{})
	s.EnableDevices(nil, nil)
	want := []string{
		"GET /assets/{file...}", "GET /v1/alerts/stream", "GET /v1/cluster", "GET /v1/shipments/{id}/alerts", "GET /v1/shipments/{id}/anchors",
		"GET /v1/shipments/{id}/proof", "GET /v1/shipments/{id}/status", "GET /{$}", "POST /v1/alerts/{id}/ack",
	}
	if got := s.Unserved(); !slices.Equal(got, want) {
		t.Fatalf("Unserved = %v, want %v", got, want)
	}
}

func TestShipmentOf(t *testing.T) {
	for path, want := range map[string]string{
		"/v1/shipments/SHP-1/status":  "SHP-1",
		"/v1/shipments/SHP%2D1/proof": "SHP-1",
		"/v1/shipments/":              "",
		"/v1/alerts/x/ack":            "",
	} {
		if got := shipmentOf(httptest.NewRequest("GET", path, nil)); got != want {
			t.Errorf("shipmentOf(%s) = %q, want %q", path, got, want)
		}
	}
}

// tokens is a fake registry knowing two tokens.
type tokens struct{}

func (tokens) AuthenticateToken(_ context.Context, tok string) (auth.Principal, error) {
	switch tok {
	case "cct_good":
		return auth.Principal{Kind: auth.KindToken, ID: "tok-ops", Role: auth.RoleAdmin, Name: "ops"}, nil
	case "cct_other":
		return auth.Principal{Kind: auth.KindToken, ID: "tok-qa", Role: auth.RoleAdmin, Name: "qa"}, nil
	}
	return auth.Principal{}, auth.ErrUnknown
}

// TestBadTokensThrottled: after Max invalid tokens from one address the
// API answers 429 with Retry-After, even for a valid token, and counts it.
func TestBadTokensThrottled(t *testing.T) {
	reg := metrics.New()
	s := New(Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second}, nil, nil, reg, nil, 1<<20,
		&Access{Tokens: tokens{}, Denied: auth.DeniedCounter(reg)}, zaptest.NewLogger(t))
	get := func(tok string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		s.ServeHTTP(rec, req)
		return rec
	}
	s.cfg.ProtectMetrics = true
	if rec := get("cct_good"); rec.Code != 200 {
		t.Fatalf("valid token: %d", rec.Code)
	}
	for i := range s.throttle.Max {
		if rec := get(fmt.Sprintf("cct_bad%d", i)); rec.Code != 401 {
			t.Fatalf("bad token %d: %d", i, rec.Code)
		}
	}
	rec := get("cct_good")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("after %d bad tokens: %d, Retry-After %q; want 429 with Retry-After", s.throttle.Max, rec.Code, rec.Header().Get("Retry-After"))
	}
	var buf bytes.Buffer
	reg.Write(&buf)
	if !strings.Contains(buf.String(), `coldchain_auth_denied_total{surface="http",reason="too_many_failures"} 1`) ||
		!strings.Contains(buf.String(), `coldchain_auth_denied_total{surface="http",reason="bad_token"} `+strconv.Itoa(s.throttle.Max)) {
		t.Fatalf("denials not counted:\n%s", buf.String())
	}
}

// TestTokenRateLimit: a token over http.token_rate is answered 429 with a
// Retry-After in whole seconds, rounded up, and a reason; the refusal is
// counted; another token has its own budget.
func TestTokenRateLimit(t *testing.T) {
	reg := metrics.New()
	// 2 at once, then one per 1,000 s: no token comes back during the test.
	cfg := Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second, TokenRate: 0.001, TokenBurst: 2}
	s := New(cfg, nil, nil, reg, nil, 1<<20, &Access{Tokens: tokens{}, Denied: auth.DeniedCounter(reg)}, zaptest.NewLogger(t))
	get := func(tok string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		s.ServeHTTP(rec, req)
		return rec
	}
	for i := range 2 {
		if rec := get("cct_good"); rec.Code != 200 {
			t.Fatalf("request %d of a burst of 2: %d", i+1, rec.Code)
		}
	}
	rec := get("cct_good")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", rec.Code)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "1000" {
		t.Errorf("Retry-After %q, want 1000 (one request per 1,000 s)", ra)
	}
	body := rec.Body.String()
	for _, want := range []string{`"reason": "rate_limited"`, "token tok-ops", "0.001 a second, 2 at once"} {
		if !strings.Contains(body, want) {
			t.Errorf("body %s lacks %s", body, want)
		}
	}
	if rec := get("cct_other"); rec.Code != 200 {
		t.Fatalf("another token: %d", rec.Code)
	}
	var buf bytes.Buffer
	reg.Write(&buf)
	if !strings.Contains(buf.String(), `coldchain_auth_denied_total{surface="http",reason="rate_limited"} 1`) {
		t.Fatalf("refusal not counted:\n%s", buf.String())
	}
}
