package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestReportEndpoint: GET /v1/shipments/{id}/report.pdf is a 404 for a
// shipment the gateway does not know and a PDF once the shipment's log is
// anchored. (Its pages are read by integration/report_test.go.)
func TestReportEndpoint(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	gw := startGateway(t, cfg)
	defer gw.stop()
	api := "http://" + gw.g.HTTPAddr()
	if code, body := apiDo(t, api, "GET", "/v1/shipments/SHP-NONE/report.pdf", "", ""); code != 404 {
		t.Errorf("unknown shipment: %d %s", code, body)
	}
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	var items []string
	for i := range 6 {
		items = append(items, fmt.Sprintf(`{"shipment":"SHP-P","device":"P1","seq":%d,"ts":%q,"temp_c":5}`, i+1, t0.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339)))
	}
	postItems(t, api, "/v1/readings", items)
	var body string
	waitFor(t, "the report", func() bool {
		var code int
		code, body = apiDo(t, api, "GET", "/v1/shipments/SHP-P/report.pdf", "", "")
		return code == 200
	})
	if !strings.HasPrefix(body, "%PDF-1.") {
		t.Errorf("report.pdf is not a PDF: %.40q", body)
	}
}
