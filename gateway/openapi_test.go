package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/coldchain/coldchain/api"
)

// servedRoutes are the gateway's routes as OpenAPI writes paths: Go's
// "/{$}" (exactly "/") is "/", and "{file...}" is "{file}".
func servedRoutes() []string {
	var out []string
	for _, r := range api.Routes() {
		r = strings.ReplaceAll(strings.ReplaceAll(r, "{$}", ""), "...}", "}")
		out = append(out, r)
	}
	return out
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("api/openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes: the document names exactly the routes the gateway
// serves, method by method.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	var spec []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			spec = append(spec, method+" "+path)
		}
	}
	slices.Sort(spec)
	served := servedRoutes()
	for _, r := range served {
		if !slices.Contains(spec, r) {
			t.Errorf("route %s is served but not in api/openapi.json", r)
		}
	}
	for _, r := range spec {
		if !slices.Contains(served, r) {
			t.Errorf("api/openapi.json names %s, which the gateway does not serve", r)
		}
	}
}

// TestOpenAPIResponses drives a gateway through every route (readings with
// an excursion, handovers, a device, an acknowledgement, an anchored
// proof) and validates each request and response against the document:
// the status must be one it declares for the operation, and the body must
// match its schema. Error answers (404, 400, 409) are checked too.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()
	ctx := context.Background()

	checked := map[string]bool{}
	call := func(method, path, body string, want int) string {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %.300s", method, path, resp.StatusCode, want, raw)
		}
		// Match against the document's server and path templates.
		vreq, _ := http.NewRequest(method, "http://127.0.0.1:8080"+path, strings.NewReader(body))
		if body != "" {
			vreq.Header.Set("Content-Type", "application/json")
		}
		route, params, err := router.FindRoute(vreq)
		if err != nil {
			t.Fatalf("%s %s: not in the document: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		// A request meant to be refused (malformed on purpose) is not
		// checked against the document; its answer is.
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil && want/100 == 2 {
			t.Errorf("%s %s: the request does not match the document: %v", method, path, err)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(raw)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			out.Options.ExcludeResponseBody = true
		}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("%s %s → %d: the response does not match the document: %v\n%.400s", method, path, resp.StatusCode, err, raw)
		}
		checked[method+" "+route.Path] = true
		return string(raw)
	}

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-6 * time.Hour)
	var items []string
	for i := range 48 {
		temp := 5.0
		if i >= 10 && i < 30 {
			temp = 11
		}
		items = append(items, fmt.Sprintf(`{"shipment":"SHP-O","device":"O1","seq":%d,"ts":%q,"temp_c":%g}`, i+1, t0.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339), temp))
	}
	call("POST", "/v1/readings", "["+strings.Join(items, ",")+"]", 202)
	call("POST", "/v1/readings", `{"shipment":"SHP-O","device":"O1","seq":`, 400)
	ho := fmt.Sprintf(`[{"id":"HO-1","shipment":"SHP-O","ts":%[1]q,"site":"SIN-1","kind":"release","from_party":"A","to_party":"B","seal":"S1"},
		{"id":"HO-2","shipment":"SHP-O","ts":%[1]q,"site":"SIN-1","kind":"receive","from_party":"A","to_party":"B","seal":"S1","owner":"B"}]`, t0.Add(time.Minute).Format(time.RFC3339))
	call("POST", "/v1/handovers", ho, 202)
	call("POST", "/v1/devices", `{"id":"O1","serial":"SN-O1","calibrations":[{"lab":"SGS","accreditation":"ISO/IEC 17025","reference":"PRT","cert_sha256":"`+
		strings.Repeat("ab", 32)+`","calibrated_at":"2026-01-01T00:00:00Z","due_at":"2099-01-01T00:00:00Z","uncertainty_c":0.1}]}`, 200)
	call("POST", "/v1/devices", `{"id":"O1","serial":"OTHER"}`, 409)
	call("GET", "/v1/devices", "", 200)
	call("GET", "/v1/devices/O1", "", 200)
	call("GET", "/v1/devices/NOPE", "", 404)

	var alarm string
	waitFor(t, "the alarm", func() bool {
		body := call("GET", "/v1/shipments/SHP-O/alerts", "", 200)
		if i := strings.Index(body, `"rule": "single_event_high"`); i > 0 {
			j := strings.LastIndex(body[:i], `"id": "`)
			alarm = body[j+7 : j+7+32]
		}
		return alarm != ""
	})
	call("POST", "/v1/alerts/"+alarm+"/ack", `{"by":"qa","comment":"checked"}`, 200)
	call("POST", "/v1/alerts/nope/ack", `{"by":"qa"}`, 404)
	waitFor(t, "the readings in the store", func() bool {
		code, body := apiDo(t, base, "GET", "/v1/shipments/SHP-O/readings", "", "")
		return code == 200 && strings.Contains(body, `"count": 48`)
	})
	call("GET", "/v1/shipments/SHP-O/readings", "", 200)
	call("GET", "/v1/shipments/SHP-O/readings?every=1h", "", 200)
	call("GET", "/v1/shipments/SHP-O/readings?every=1ms", "", 400)
	call("GET", "/v1/shipments/SHP-NONE/readings", "", 404)
	call("GET", "/v1/shipments", "", 200)
	call("GET", "/v1/shipments/SHP-O/handovers", "", 200)
	call("GET", "/v1/shipments/SHP-O/custody", "", 200)
	call("GET", "/v1/shipments/SHP-O/status", "", 200)
	call("GET", "/v1/shipments/SHP-NONE/status", "", 404)
	call("GET", "/v1/deadletters?limit=10", "", 200)
	call("GET", "/v1/deadletters?limit=0", "", 400)
	call("GET", "/v1/cluster", "", 200)
	waitFor(t, "an anchored proof with the acknowledgement", func() bool {
		req, _ := http.NewRequest("GET", base+"/v1/shipments/SHP-O/proof", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && bytes.Contains(raw, []byte("acknowledged"))
	})
	call("GET", "/v1/shipments/SHP-O/proof", "", 200)
	call("GET", "/v1/shipments/SHP-O/proof?record=O1:3", "", 200)
	call("GET", "/v1/shipments/SHP-O/proof?record=O1:3&format=compact", "", 200)
	call("GET", "/v1/shipments/SHP-O/proof?format=compact", "", 400)
	call("GET", "/v1/shipments/SHP-NONE/proof", "", 404)
	call("GET", "/v1/shipments/SHP-O/anchors", "", 200)
	epcisDoc := call("GET", "/v1/shipments/SHP-O/epcis", "", 200)
	call("POST", "/epcis/capture", epcisDoc, 202)
	call("POST", "/epcis/capture", `{"type":"EPCISDocument"}`, 400)
	call("GET", "/v1/shipments/SHP-O/report.pdf", "", 200)
	call("GET", "/v1/shipments/SHP-NONE/report.pdf", "", 404)
	call("GET", "/healthz", "", 200)
	call("GET", "/readyz", "", 200)
	call("GET", "/metrics", "", 200)
	call("GET", "/openapi.json", "", 200)
	call("GET", "/", "", 200)
	call("GET", "/assets/app.js", "", 200)

	// The alert stream: its headers, then the test hangs up.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	req, _ := http.NewRequestWithContext(sctx, "GET", base+"/v1/alerts/stream?shipment=SHP-O", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("alert stream: %v %v", err, resp)
	} else {
		resp.Body.Close()
		checked["GET /v1/alerts/stream"] = true
	}
	cancel()

	for _, r := range servedRoutes() {
		if !checked[r] {
			t.Errorf("route %s was not exercised against the document", r)
		}
	}
}
