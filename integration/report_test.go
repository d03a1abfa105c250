//go:build integration

package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/gateway/gatewaytest"
)

// TestReportRenders runs a gateway with everything embedded, posts a
// shipment whose logger rises above 8 °C for two hours and two custody
// handovers, acknowledges the alarm, and fetches
// GET /v1/shipments/{id}/report.pdf once the acknowledgement is anchored.
// poppler (pdftotext, pdftoppm: scripts/peers.sh tools) then reads it as a
// reviewer would: the text names the shipment, the alarm and its
// acknowledgement, the custody holders, the transaction, the verify
// command and the SHA-256 of the very bundle GET .../proof serves; every
// page renders non-blank, and the first shows the chart's band and alarm
// shading.
func TestReportRenders(t *testing.T) {
	pdftotext, err1 := exec.LookPath("pdftotext")
	pdftoppm, err2 := exec.LookPath("pdftoppm")
	if err1 != nil || err2 != nil {
		t.Fatal("pdftotext and pdftoppm are needed (Debian poppler-utils): run scripts/peers.sh tools, or make test-integration")
	}
	cfg := gatewaytest.Config(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	gw := gatewaytest.Start(t, cfg)
	api := "http://" + gw.HTTPAddr()
	ship := fmt.Sprintf("RPT-%d", time.Now().UnixNano())
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-12 * time.Hour)

	var items []string
	for i := range 120 { // ten hours, every five minutes
		temp := 5.0 + float64(i%5)/10
		if i >= 40 && i < 64 {
			temp = 10.5 // two hours above 8 °C: a single-event alarm
		}
		items = append(items, fmt.Sprintf(`{"shipment":%q,"device":"RPT-L1","seq":%d,"ts":%q,"temp_c":%g}`,
			ship, i+1, t0.Add(time.Duration(i)*5*time.Minute).Format(time.RFC3339), temp))
	}
	post(t, api+"/v1/readings", "["+strings.Join(items, ",")+"]")
	post(t, api+"/v1/handovers", fmt.Sprintf(`[
		{"id":"%[1]s-R","shipment":"%[1]s","ts":%[2]q,"site":"SIN-BW1","kind":"release","from_party":"Changi Bonded","to_party":"Gulf Reefer Lines","seal":"SL-77","temp_c":5.1},
		{"id":"%[1]s-V","shipment":"%[1]s","ts":%[2]q,"site":"SIN-BW1","kind":"receive","from_party":"Changi Bonded","to_party":"Gulf Reefer Lines","seal":"SL-77","temp_c":5.1}]`,
		ship, t0.Add(10*time.Minute).Format(time.RFC3339)))

	// Acknowledge the alarm once it is open.
	var alarm string
	waitUntil(t, "the single-event alarm", func() bool {
		var al struct {
			Alerts []struct{ ID, Rule string } `json:"alerts"`
		}
		if getJSONIt(t, api+"/v1/shipments/"+ship+"/alerts", &al) != 200 {
			return false
		}
		for _, a := range al.Alerts {
			if a.Rule == "single_event_high" {
				alarm = a.ID
			}
		}
		return alarm != ""
	})
	post(t, api+"/v1/alerts/"+alarm+"/ack", `{"by":"qa@importer.example","comment":"load inspected, quarantined"}`)

	// The report, once the bundle holds the acknowledgement.
	var bundleRaw []byte
	waitUntil(t, "an anchored bundle with the acknowledgement", func() bool {
		resp, err := http.Get(api + "/v1/shipments/" + ship + "/proof")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		bundleRaw, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && bytes.Contains(bundleRaw, []byte(`\"transition\":\"acknowledged\"`))
	})
	resp, err := http.Get(api + "/v1/shipments/" + ship + "/report.pdf")
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("report.pdf: %s %s: %.200s", resp.Status, resp.Header.Get("Content-Type"), pdf)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}

	if keep := os.Getenv("COLDCHAIN_TEST_REPORT_OUT"); keep != "" {
		// For the README's picture: scripts keep a copy of the report.
		if err := os.WriteFile(keep, pdf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(pdftotext, "-layout", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := string(out)
	sum := sha256.Sum256(bundleRaw)
	var b struct {
		Anchor struct{ Tx string } `json:"anchor"`
	}
	if err := json.Unmarshal(bundleRaw, &b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{ship, "Cold-chain traceability report", "single_event_high", "acknowledged", "qa@importer.example",
		"Gulf Reefer Lines", "SL-77", b.Anchor.Tx, "coldchain verify " + ship + ".bundle.json --rpc http://", hex.EncodeToString(sum[:]), "2.0 … 8.0 °C"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report's text lacks %q", want)
		}
	}
	if strings.Contains(text, "DOES NOT VERIFY") {
		t.Errorf("the report says the bundle does not verify:\n%s", text)
	}

	// Every page renders, none blank; the first shows the band (green) and
	// the alarm span (red).
	if out, err := exec.Command(pdftoppm, "-r", "40", "-png", file, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
	if len(pages) == 0 {
		t.Fatal("pdftoppm rendered no page")
	}
	for i, p := range pages {
		inked, green, red := inkOf(t, p)
		if inked < 0.01 {
			t.Errorf("page %d is blank (%.2f%% inked)", i+1, 100*inked)
		}
		if i == 0 && (green < 0.005 || red < 0.001) {
			t.Errorf("page 1: band %.2f%%, alarm shading %.2f%% of the page; want both drawn", 100*green, 100*red)
		}
	}
	t.Logf("report of %s: %d bytes, %d pages, bundle %x", ship, len(pdf), len(pages), sum[:8])
}

// inkOf returns the share of a page image's pixels that are not white,
// and those of the band's green and the alarm's red.
func inkOf(t *testing.T, path string) (inked, green, red float64) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var n, ink, g, r int
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			n++
			c := toRGB(img, x, y)
			if c[0] < 245 || c[1] < 245 || c[2] < 245 {
				ink++
			}
			if near(c, [3]int{226, 244, 226}) {
				g++
			}
			if near(c, [3]int{250, 215, 215}) || near(c, [3]int{251, 226, 226}) {
				r++
			}
		}
	}
	return float64(ink) / float64(n), float64(g) / float64(n), float64(r) / float64(n)
}

func toRGB(img image.Image, x, y int) [3]int {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
}

func near(a, b [3]int) bool {
	for i := range a {
		if d := a[i] - b[i]; d < -6 || d > 6 {
			return false
		}
	}
	return true
}

func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 90s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
