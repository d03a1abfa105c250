//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/gateway/gatewaytest"
)

// TestDashboardInBrowser opens the dashboard in headless Chromium (Debian's
// chromium: scripts/peers.sh tools) against a gateway that wants tokens: a
// shipper's token is pasted in the form; the fleet lists the shipment;
// readings that rise above 8 °C are posted and the alarm appears in the
// page without a reload, through the live stream; the shipment view draws
// the chart (an SVG path per device and the band); the ack form
// acknowledges the alarm and the API then says so. Screenshots go to
// COLDCHAIN_TEST_SCREENSHOTS when set (docs/img for the README).
func TestDashboardInBrowser(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Fatal("headless Chromium is needed (Debian package chromium): run scripts/peers.sh tools, or make test-integration")
	}
	cfg := gatewaytest.Config(t.TempDir())
	cfg.HTTP.AllowAnonymous = false
	cfg.Anchor.Epoch = time.Second
	gw := gatewaytest.Start(t, cfg)
	api := "http://" + gw.HTTPAddr()
	dir := authtest.Open(t, gw.NATSURL())
	ctx := context.Background()
	ship := fmt.Sprintf("WEB-%d", time.Now().UnixNano()%1e9)
	if err := dir.Grant(ctx, ship, "acme"); err != nil {
		t.Fatal(err)
	}
	shipperTok, _ := authtest.Token(t, dir, auth.Principal{Role: auth.RoleShipper, Org: "acme", Name: "qa@acme"})
	providerTok, _ := authtest.Token(t, dir, auth.Principal{Role: auth.RoleProvider, Org: "acme", Name: "feed@acme"})

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-8 * time.Hour)
	reading := func(i int, temp float64) string {
		return fmt.Sprintf(`{"shipment":%q,"device":"WEB-L1","seq":%d,"ts":%q,"temp_c":%g}`, ship, i+1, t0.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339), temp)
	}
	var normal []string
	for i := range 24 {
		normal = append(normal, reading(i, 5+float64(i%3)/10))
	}
	postAuth(t, api+"/v1/readings", providerTok, "["+strings.Join(normal, ",")+"]")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 2*time.Minute)
	defer cancelT()
	shots := os.Getenv("COLDCHAIN_TEST_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	row := `tr[data-shipment="` + ship + `"]`

	// The fleet, with the shipper's token.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(api+"/"),
		chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", shipperTok),
		chromedp.Click(`#token-form button`),
		chromedp.WaitVisible(row+` .badge`),
		chromedp.WaitVisible(`#live.on`),
	); err != nil {
		t.Fatalf("fleet view: %v", err)
	}
	if status, err := chromedp.Run(bctx, chromedp.Text(row+` .status`)); err != nil || status != "ok" {
		t.Fatalf("fleet status %q (%v), want ok", status, err)
	}

	// An excursion arrives: the alarm shows up live, no reload.
	var hot []string
	for i := 24; i < 48; i++ {
		hot = append(hot, reading(i, 10.5))
	}
	postAuth(t, api+"/v1/readings", providerTok, "["+strings.Join(hot, ",")+"]")
	if err := chromedp.Do(bctx, chromedp.WaitVisible(`#latest li .badge.alarm`), chromedp.WaitVisible(row+` .badge.excursion`)); err != nil {
		t.Fatalf("the alarm did not appear live: %v", err)
	}
	latest, err := chromedp.Run(bctx, chromedp.Text(`#latest`))
	if err != nil || !strings.Contains(latest, "single_event_high") || !strings.Contains(latest, ship) {
		t.Errorf("latest alerts %q (%v)", latest, err)
	}
	shot("dashboard-fleet.png")

	// The shipment view: chart, alerts, ack; once the store has all 48
	// readings (the live alert can come before the store writer's batch).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var h struct {
			Count int `json:"count"`
		}
		getAuthJSON(t, api+"/v1/shipments/"+ship+"/readings", shipperTok, &h)
		if h.Count == 48 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store holds %d of the 48 readings after 30s", h.Count)
		}
		time.Sleep(200 * time.Millisecond)
	}
	form := `#alert-table tr[data-rule="single_event_high"] form.ack`
	if err := chromedp.Do(bctx,
		chromedp.Navigate(api+"/#/shipment/"+ship),
		chromedp.WaitVisible(`#chart path.series`),
		chromedp.WaitVisible(form),
	); err != nil {
		t.Fatalf("shipment view: %v", err)
	}
	paths, err1 := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart path.series").length`))
	bands, err2 := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#chart rect.band").length`))
	segments, err3 := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelector("#chart path.series").getAttribute("d").split("L").length - 1`))
	if err1 != nil || err2 != nil || err3 != nil || paths != 1 || bands != 1 || segments < 40 {
		t.Errorf("chart: %d series, %d bands, a path of %d segments (%v %v %v)", paths, bands, segments, err1, err2, err3)
	}
	shot("dashboard-shipment.png")
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(form+` input[name="by"]`, "qa@acme"),
		chromedp.SendKeys(form+` input[name="comment"]`, "pallet moved to the cold room"),
		chromedp.Click(form+` button`),
		chromedp.WaitNotPresent(form),
	); err != nil {
		t.Fatalf("ack form: %v", err)
	}
	var al struct {
		Alerts []struct {
			Rule         string
			Acknowledged bool
			Transitions  []struct{ Transition, By, Comment string }
		} `json:"alerts"`
	}
	getAuthJSON(t, api+"/v1/shipments/"+ship+"/alerts", shipperTok, &al)
	acked := false
	for _, a := range al.Alerts {
		for _, tr := range a.Transitions {
			acked = acked || a.Rule == "single_event_high" && a.Acknowledged && tr.Transition == "acknowledged" && strings.HasPrefix(tr.By, "qa@acme") && tr.Comment == "pallet moved to the cold room"
		}
	}
	if !acked {
		t.Errorf("the API does not show the acknowledgement made in the page: %+v", al.Alerts)
	}
}

func postAuth(t *testing.T, url, token, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
}

func getAuthJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
