package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/journal"
)

// TestJournalFull runs a gateway whose record streams are bounded by
// nats.max_bytes until the readings stream is full: HTTP answers 503 with
// Retry-After and the reason, an MQTT publish gets no PUBACK, /readyz
// names the full stream, nothing stored is dropped; after the operator
// raises the bound the refused readings go in, each once.
func TestJournalFull(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.NATS.Streams.MaxBytes = journal.MinMaxBytes
	cfg.HTTP.IngestTimeout = 2 * time.Second
	gw := startGateway(t, cfg)
	t.Cleanup(func() {
		if gw != nil {
			gw.stop()
		}
	})

	// body holds readings first … first+n-1 of L1, 50 ms apart.
	body := func(first, n int) string {
		var b strings.Builder
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			seq := first + i
			at := base.Add(time.Duration(seq) * 50 * time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
			fmt.Fprintf(&b, `{"shipment":"SHP-F","device":"L1","seq":%d,"ts":"%s","temp_c":5}`, seq, at)
		}
		b.WriteByte(']')
		return b.String()
	}
	post := func(addr, payload string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/v1/readings", "application/json", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// Fill the stream to the brim: posts of 2,000 readings until one is
	// refused, then of 100, 10 and 1.
	next, accepted := 1, 0
	var refused []string // bodies refused, posted again after the bound is raised
	for _, size := range []int{2000, 100, 10, 1} {
		for n := 0; n < 20; n++ {
			payload := body(next, size)
			next += size
			resp, text := post(gw.g.HTTPAddr(), payload)
			if resp.StatusCode == http.StatusAccepted {
				accepted += size
				continue
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("post of %d readings: %d %s", size, resp.StatusCode, text)
			}
			if !strings.Contains(text, "journal is full") || resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 of a full journal: Retry-After %q, body %s; want Retry-After and the reason", resp.Header.Get("Retry-After"), text)
			}
			refused = append(refused, payload)
			break
		}
	}
	if len(refused) != 4 {
		t.Fatalf("%d of 4 post sizes were refused: nats.max_bytes (%d) is not applied", len(refused), journal.MinMaxBytes)
	}
	stored := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	if len(stored) < accepted || stored[0] != "L1:1" {
		t.Errorf("the full stream holds %d readings from %v, want at least the %d accepted from L1:1: nothing may be dropped", len(stored), stored[:1], accepted)
	}

	resp, err := http.Get("http://" + gw.g.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(ready.Checks["nats"], journal.StreamReadings+" is full") {
		t.Errorf("/readyz of a full journal: %d %+v, want 503 naming %s as full", resp.StatusCode, ready, journal.StreamReadings)
	}

	resp, err = http.Get("http://" + gw.g.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	gauge := func(name string) float64 {
		prefix := fmt.Sprintf("%s{stream=%q} ", name, journal.StreamReadings)
		for line := range strings.Lines(string(scrape)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return f
			}
		}
		t.Fatalf("/metrics has no %s for %s", name, journal.StreamReadings)
		return 0
	}
	if max, used := gauge("coldchain_journal_stream_max_bytes"), gauge("coldchain_journal_stream_bytes"); max != journal.MinMaxBytes || used < 0.9*max {
		t.Errorf("/metrics says %v of %v bytes used, want nats.max_bytes %d nearly all used", used, max, journal.MinMaxBytes)
	}

	// MQTT: no PUBACK for what the journal did not take.
	pub := publisher(t, gw.g.MQTTAddr(), "L2")
	tok := pub.Publish("coldchain/v1/SHP-F/L2/readings", 1, false, readingJSON(1, 5))
	if tok.WaitTimeout(3 * time.Second) {
		t.Errorf("a publish into a full journal was acknowledged (err %v)", tok.Error())
	}
	pub.Disconnect(100)
	gw.stop()
	gw = nil

	// The operator raises the bound.
	cfg.NATS.Streams.MaxBytes = 64 << 20
	gw = startGateway(t, cfg)
	for _, payload := range refused {
		if resp, text := post(gw.g.HTTPAddr(), payload); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("a refused post after raising nats.max_bytes: %d %s", resp.StatusCode, text)
		}
	}
	publish(t, publisher(t, gw.g.MQTTAddr(), "L2b"), "coldchain/v1/SHP-F/L2/readings", readingJSON(1, 5))
	ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if want := next - 1 + 1; len(seen) != want {
		t.Errorf("%d distinct readings stored, want %d (every reading posted once, and the MQTT one)", len(seen), want)
	}
	t.Logf("a %d-byte stream took %d readings and refused posts of 2,000, 100, 10 and 1", journal.MinMaxBytes, accepted)
}
