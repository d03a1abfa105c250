package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

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
// the API's own are registered by New and EnableHistory; the alert and
// proof routes by their packages (the gateway refuses to start while any
// rule is unserved).
func TestUnserved(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second}, nil, nil, metrics.New(), nil, 1<<20, nil, zaptest.NewLogger(t))
	s.EnableHistory(nil)
	want := []string{
		"GET /v1/alerts/stream", "GET /v1/shipments/{id}/alerts", "GET /v1/shipments/{id}/anchors",
		"GET /v1/shipments/{id}/proof", "GET /v1/shipments/{id}/status", "POST /v1/alerts/{id}/ack",
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
