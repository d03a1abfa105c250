package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/alert"
	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// sseClient collects the alert transitions streamed by the gateway.
type sseClient struct {
	mu     sync.Mutex
	events []record.Alert
	cancel context.CancelFunc
	done   chan struct{}
}

func subscribeSSE(t *testing.T, url string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("sse: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				a, err := record.ParseAlert([]byte(data))
				if err != nil {
					t.Errorf("sse data: %v: %s", err, data)
					continue
				}
				c.mu.Lock()
				c.events = append(c.events, a)
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *sseClient) close() { c.cancel(); <-c.done }

func (c *sseClient) find(rule, transition string) (record.Alert, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e.Rule == rule && e.Transition == transition {
			return e, true
		}
	}
	return record.Alert{}, false
}

// webhookSink is an HTTP endpoint that checks each body's signature.
type webhookSink struct {
	mu     sync.Mutex
	events []record.Alert
	ids    map[string]bool // X-Coldchain-Event values received
	bad    int
}

func (w *webhookSink) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	if r.Header.Get("X-Coldchain-Signature") != alert.Signature("s3cret", body) {
		w.bad++
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	a, err := record.ParseAlert(body)
	if err != nil {
		w.bad++
		rw.WriteHeader(http.StatusBadRequest)
		return
	}
	w.events = append(w.events, a)
	if w.ids == nil {
		w.ids = map[string]bool{}
	}
	w.ids[r.Header.Get("X-Coldchain-Event")] = true
}

func (w *webhookSink) find(rule, transition string) (record.Alert, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.Rule == rule && e.Transition == transition {
			return e, true
		}
	}
	return record.Alert{}, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAlertsEndToEnd publishes a reefer going above 8 °C over MQTT and
// restarts the gateway in the middle of the 30-minute single-event delay:
// the alarm still opens at the right device time (the 30th minute beyond
// the limit), and arrives over SSE and over a signed webhook; the status
// and alert APIs show it, and an acknowledgement is recorded.
//
// Without a snapshot the detector replays every reading instead; the
// transitions published before the restart are not published again.
func TestAlertsEndToEnd(t *testing.T) {
	t.Run("snapshot", func(t *testing.T) { alertsEndToEnd(t, false) })
	t.Run("replay without snapshot", func(t *testing.T) { alertsEndToEnd(t, true) })
}

func alertsEndToEnd(t *testing.T, dropSnapshot bool) {
	sink := &webhookSink{}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Alerts.Webhooks = []alert.WebhookConfig{{URL: hook.URL, Secret: "s3cret"}}
	gw := startGateway(t, cfg)

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	pub := publisher(t, gw.g.MQTTAddr(), "reefer-pub")
	send := func(c paho.Client, minute int, temp float64) {
		t.Helper()
		publish(t, c, "coldchain/v1/SHP-HOT/reefer-9/readings",
			fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, minute, t0.Add(time.Duration(minute)*time.Minute).Format(time.RFC3339), temp))
	}
	// In range for 20 minutes, then 9 °C from minute 25: beyond 8 °C.
	for m := 0; m <= 20; m += 5 {
		send(pub, m, 5)
	}
	for m := 25; m <= 40; m += 5 {
		send(pub, m, 9)
	}
	// 404 until the detector has read the shipment's first reading: a
	// PUBACK means the journal has it, not that every consumer has.
	status := func() map[string]any {
		var st map[string]any
		switch code := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-HOT/status", &st); code {
		case 200:
		case 404:
			return nil
		default:
			t.Fatalf("status %d", code)
		}
		return st
	}
	waitFor(t, "pre-alarm", func() bool { return status()["status"] == "warning" })
	// 15 minutes beyond the limit: no single-event alarm yet. Restart.
	pub.Disconnect(100)
	gw.stop()
	if dropSnapshot {
		if err := os.Remove(filepath.Join(dir, "detector", "snapshot.json")); err != nil {
			t.Fatal(err)
		}
	}
	gw = startGateway(t, cfg)
	defer gw.stop()
	sse := subscribeSSE(t, "http://"+gw.g.HTTPAddr()+"/v1/alerts/stream?shipment=SHP-HOT")
	defer sse.close()
	pub = publisher(t, gw.g.MQTTAddr(), "reefer-pub-2")
	defer pub.Disconnect(100)
	for m := 45; m <= 60; m += 5 {
		send(pub, m, 9.5)
	}

	var opened record.Alert
	waitFor(t, "single_event_high over SSE", func() bool {
		var ok bool
		opened, ok = sse.find("single_event_high", "opened")
		return ok
	})
	// The condition began with the first reading above 8 °C (minute 25)
	// and the alarm is due 30 minutes of device time later (minute 55).
	if !opened.Start.Equal(t0.Add(25*time.Minute)) || !opened.End.Equal(t0.Add(55*time.Minute)) || opened.Severity != "alarm" {
		t.Fatalf("alarm at the wrong device time: start %s end %s (t0 %s)", opened.Start, opened.End, t0)
	}
	if opened.Beyond != 30*time.Minute || !opened.PeakC.Set || opened.PeakC.V != 9.5 {
		t.Fatalf("figures: beyond %s peak %+v", opened.Beyond, opened.PeakC)
	}
	waitFor(t, "single_event_high over the webhook", func() bool {
		_, ok := sink.find("single_event_high", "opened")
		return ok
	})
	if _, ok := sink.find("pre_alarm_high", "opened"); !ok {
		t.Fatal("the pre-alarm published before the restart was not delivered to the webhook")
	}
	var list0 struct {
		Alerts []struct {
			Rule        string
			Transitions []json.RawMessage
		}
	}
	getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-HOT/alerts", &list0)
	for _, a := range list0.Alerts {
		if a.Rule == "pre_alarm_high" && len(a.Transitions) != 1 {
			t.Fatalf("pre_alarm_high published %d times across the restart", len(a.Transitions))
		}
	}
	// Webhook delivery is at least once (a transition in flight at the
	// restart is posted again, with the same X-Coldchain-Event): every
	// stored transition arrives.
	stored := streamIDs(t, gw.g.NATSURL(), "COLDCHAIN_ALERTS")
	waitFor(t, "every stored transition at the webhook", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		for _, id := range stored {
			if !sink.ids[id] {
				return false
			}
		}
		return true
	})
	if sink.bad != 0 {
		t.Fatalf("%d webhook bodies failed the signature check", sink.bad)
	}
	if st := status(); st["status"] != "excursion" || st["beyond_high_s"].(float64) < 30*60 {
		t.Fatalf("status %v", st)
	}

	// The alerts API lists it once with its transitions; acknowledge it.
	var list struct {
		Alerts []struct {
			ID, Rule, State string
			Acknowledged    bool
			Transitions     []json.RawMessage
		}
	}
	getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-HOT/alerts", &list)
	n := 0
	for _, a := range list.Alerts {
		if a.Rule == "single_event_high" {
			n++
			if a.ID != opened.ID || a.State != "open" {
				t.Fatalf("listed %+v", a)
			}
		}
	}
	if n != 1 {
		t.Fatalf("single_event_high listed %d times: %+v", n, list.Alerts)
	}
	resp, err := http.Post("http://"+gw.g.HTTPAddr()+"/v1/alerts/"+opened.ID+"/ack", "application/json",
		strings.NewReader(`{"by":"qa@shipper.example","comment":"reefer checked, setpoint corrected"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ack: %d", resp.StatusCode)
	}
	waitFor(t, "acknowledgement over SSE", func() bool {
		a, ok := sse.find("single_event_high", "acknowledged")
		return ok && a.By == "qa@shipper.example"
	})
	var again map[string]any
	if code := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/NOPE/status", &again); code != 404 {
		t.Fatalf("unknown shipment: %d", code)
	}
}

// TestDetectorRepublishSkipped restarts the detector with neither a
// snapshot nor a consumer position (at worst what a cluster member sees
// when it takes over from a holder that published and stopped before
// acknowledging), after JetStream's duplicate window has passed: it
// recomputes every transition and must store none a second time.
func TestDetectorRepublishSkipped(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 8 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.NATS.URL = ns.ClientURL()
	gw := startGateway(t, cfg)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	pub := publisher(t, gw.g.MQTTAddr(), "reefer-re")
	for m := 0; m <= 60; m += 5 {
		temp := 5.0
		if m >= 25 {
			temp = 9
		}
		publish(t, pub, "coldchain/v1/SHP-RE/reefer-re/readings",
			fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, m, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339), temp))
	}
	pub.Disconnect(100)
	waitFor(t, "the alarm", func() bool {
		var list struct{ Alerts []struct{ Rule string } }
		getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-RE/alerts", &list)
		return slices.ContainsFunc(list.Alerts, func(a struct{ Rule string }) bool { return a.Rule == "single_event_high" })
	})
	before := streamIDs(t, ns.ClientURL(), journal.StreamAlerts)
	if len(before) < 2 { // the pre-alarm and the alarm
		t.Fatalf("the alerts stream holds %v", before)
	}
	gw.stop()

	// Forget where the detector stood: its snapshot and its consumer.
	if err := os.Remove(filepath.Join(dir, "detector", "snapshot.json")); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteConsumer(context.Background(), journal.StreamReadings, alert.Durable); err != nil {
		t.Fatal(err)
	}
	waitWindowPassed(t, ns.ClientURL(), cfg.NATS.Streams.DuplicateWindow)

	gw = startGateway(t, cfg)
	defer gw.stop()
	metric := func(name string) float64 { return metricValue(t, gw.g.HTTPAddr(), name) }
	waitFor(t, "the detector to evaluate every reading again", func() bool {
		return metric("coldchain_detector_readings_total") >= 13
	})
	// The transitions of the last batch are published (or skipped) after
	// its readings are counted.
	waitFor(t, "the recomputed transitions to be handled", func() bool {
		return metric("coldchain_alerts_republish_skipped_total") >= float64(len(before)) ||
			len(streamIDs(t, ns.ClientURL(), journal.StreamAlerts)) > len(before)
	})
	if after := streamIDs(t, ns.ClientURL(), journal.StreamAlerts); !slices.Equal(after, before) {
		t.Fatalf("the alerts stream went from %v to %v", before, after)
	}
}

// metricValue reads an unlabelled metric of the gateway at httpAddr (0
// when it is not there).
func metricValue(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(metricsText(t, httpAddr), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
