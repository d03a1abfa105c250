package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/journal"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
		// net/http keeps idle client connections for a while.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		// go-ethereum starts a package-level sender cache when it loads.
		goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
		// The embedded geth node's p2p database (goleveldb) stops its
		// mpool drain goroutine a moment after Close returns; seen
		// intermittently under -race, it is not ours to wait for.
		goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"),
	)
}

type running struct {
	t      *testing.T
	g      *Gateway
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func testConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.MQTT.Broker.Listen = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Chain.Listen = "127.0.0.1:0"
	cfg.NATS.Streams.DuplicateWindow = time.Second
	// Publishers connect anonymously (tests of credentials turn this off).
	cfg.MQTT.Broker.AllowAnonymous = true
	cfg.HTTP.AllowAnonymous = true
	// Test devices are not in the device registry; the tests of
	// devices.unknown set flag and reject themselves.
	cfg.Devices.Unknown = device.UnknownAccept
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func startGateway(t *testing.T, cfg config.Config) *running {
	t.Helper()
	return startGatewayLog(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

// startGatewayLog is startGateway logging to log.
func startGatewayLog(t *testing.T, cfg config.Config, log *zap.Logger) *running {
	t.Helper()
	g, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, g: g, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-r.done:
		t.Fatalf("gateway exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not ready in 30s")
	}
	return r
}

// stop stops the gateway and waits for it; a second call does nothing.
func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			r.t.Errorf("gateway run: %v", err)
		}
	})
}

func publisher(t *testing.T, addr, id string) paho.Client {
	t.Helper()
	// No reconnecting: a test that stops the gateway first would leave
	// Disconnect's goroutine waiting for a reconnect loop to give up.
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(true).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// publish sends QoS 1 and waits for the PUBACK, which the embedded broker
// sends only once the message is durable.
func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// base is the device time of seq 0: fixed for the whole run, so a resend
// carries exactly the bytes of the original.
var base = time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

func ts(i int) string {
	return base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
}

func readingJSON(seq int, temp float64) string {
	return fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, seq, ts(seq), temp)
}

// streamIDs returns the message ids in a stream, in order.
func streamIDs(t *testing.T, natsURL, stream string) []string {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	if err := journal.ReadStream(ctx, js, stream, "", func(m journal.Msg) error { ids = append(ids, m.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	return ids
}

// waitWindowPassed waits until JetStream's duplicate window has passed for
// everything sent so far, proven by a probe message, in a stream of its own
// with the same window, being accepted twice with one id.
func waitWindowPassed(t *testing.T, natsURL string, window time.Duration) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "TEST_PROBE", Subjects: []string{"test.probe"}, Duplicates: window}); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	if _, err := js.Publish(ctx, "test.probe", nil, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		ack, err := js.Publish(ctx, "test.probe", nil, jetstream.WithMsgID(id))
		if err == nil && !ack.Duplicate {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("duplicate window never passed")
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, b)
	}
	return resp.StatusCode
}

// TestEndToEndExactlyOnce is the in-process integration test of the ingest
// issue: readings over the embedded MQTT broker, some resent within and
// after JetStream's duplicate window and after a restart, some invalid.
// Exactly the distinct valid ones end up in the stream; every invalid one
// is in the dead letters with its reason.
func TestEndToEndExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	gw := startGateway(t, cfg)
	pub := publisher(t, gw.g.MQTTAddr(), "logger-pub")

	// 50 single readings of reefer-1 and a 100-reading burst of logger-2
	// uploaded newest first, as a logger does after hours offline.
	for i := 1; i <= 50; i++ {
		publish(t, pub, "coldchain/v1/SHP-1/reefer-1/readings", readingJSON(i, 5))
	}
	var burst []string
	for i := 100; i >= 1; i-- {
		burst = append(burst, readingJSON(i, 4))
	}
	burstJSON := "[" + strings.Join(burst, ",") + "]"
	publish(t, pub, "coldchain/v1/SHP-1/logger-2/readings", burstJSON)
	publish(t, pub, "coldchain/v1/SHP-1/handovers",
		`{"id":"HO-1","ts":"`+ts(0)+`","site":"SIN-FTZ","kind":"release","from_party":"A","to_party":"B"}`)

	// Resends inside the window.
	for i := 1; i <= 10; i++ {
		publish(t, pub, "coldchain/v1/SHP-1/reefer-1/readings", readingJSON(i, 5))
	}

	// Invalid input, one of each reason the product promises.
	invalid := map[string][2]string{
		"malformed_json":   {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":1,`},
		"not_finite":       {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":900,"ts":"` + ts(0) + `","temp_c":NaN}`},
		"bad_timestamp":    {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":901,"ts":"2026-03-01T10:00:00","temp_c":5}`},
		"missing_field":    {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":902,"temp_c":5}`},
		"future_timestamp": {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":903,"ts":"` + time.Now().UTC().Add(time.Hour).Format(time.RFC3339) + `","temp_c":5}`},
		"out_of_range":     {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":904,"ts":"` + ts(0) + `","temp_c":140}`},
		"wrong_type":       {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":"905","ts":"` + ts(0) + `","temp_c":5}`},
		"unknown_field":    {"coldchain/v1/SHP-1/reefer-1/readings", `{"seq":906,"ts":"` + ts(0) + `","temp_c":5,"tmp":1}`},
		"topic_mismatch":   {"coldchain/v1/SHP-1/reefer-1/readings", `{"device":"reefer-9","seq":907,"ts":"` + ts(0) + `","temp_c":5}`},
		"invalid_id":       {"coldchain/v1/SHP 1/reefer-1/readings", `{"seq":908,"ts":"` + ts(0) + `","temp_c":5}`},
		"unknown_topic":    {"coldchain/v1/SHP-1/reefer-1/telemetry", `{}`},
		"oversize":         {"coldchain/v1/SHP-1/reefer-1/readings", "[" + strings.Repeat(" ", cfg.Ingest.MaxPayload) + "]"},
	}
	for _, in := range invalid {
		publish(t, pub, in[0], in[1])
	}

	// Resends after the window: only the dedup index can tell.
	waitWindowPassed(t, gw.g.NATSURL(), cfg.NATS.Streams.DuplicateWindow)
	publish(t, pub, "coldchain/v1/SHP-1/logger-2/readings", burstJSON)
	for i := 40; i <= 50; i++ {
		publish(t, pub, "coldchain/v1/SHP-1/reefer-1/readings", readingJSON(i, 5))
	}
	// Same id, different content: a conflict, dead-lettered.
	publish(t, pub, "coldchain/v1/SHP-1/reefer-1/readings", readingJSON(7, 9.5))
	invalid["conflict"] = [2]string{}

	check := func(stage string) {
		t.Helper()
		ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%s: %s stored twice", stage, id)
			}
			seen[id] = true
		}
		if len(ids) != 150 {
			t.Fatalf("%s: %d readings stored, want 150", stage, len(ids))
		}
		for i := 1; i <= 100; i++ {
			if !seen[fmt.Sprintf("logger-2:%d", i)] || i <= 50 && !seen[fmt.Sprintf("reefer-1:%d", i)] {
				t.Fatalf("%s: reading %d missing", stage, i)
			}
		}
		if h := streamIDs(t, gw.g.NATSURL(), journal.StreamHandovers); len(h) != 1 || h[0] != "HO-1" {
			t.Fatalf("%s: handovers %v", stage, h)
		}
	}
	check("before restart")

	var dl struct {
		DeadLetters []journal.DeadLetterEntry `json:"dead_letters"`
	}
	if code := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/deadletters?limit=100", &dl); code != 200 {
		t.Fatalf("dead letters: %d", code)
	}
	reasons := map[string]journal.DeadLetterEntry{}
	for _, d := range dl.DeadLetters {
		reasons[d.Reason] = d
	}
	for reason, in := range invalid {
		d, ok := reasons[reason]
		if !ok {
			t.Errorf("no dead letter with reason %s (have %d)", reason, len(dl.DeadLetters))
			continue
		}
		if d.Detail == "" || d.Source == "" {
			t.Errorf("%s: dead letter without detail or source: %+v", reason, d)
		}
		if reason != "conflict" && reason != "oversize" && d.Payload != in[1] {
			t.Errorf("%s: payload %q, want the original %q", reason, d.Payload, in[1])
		}
	}
	if len(dl.DeadLetters) != len(invalid) {
		t.Errorf("%d dead letters, want %d", len(dl.DeadLetters), len(invalid))
	}
	gw.stop()

	// After a restart, resends are still recognised.
	gw = startGateway(t, cfg)
	defer gw.stop()
	pub = publisher(t, gw.g.MQTTAddr(), "logger-pub-2")
	publish(t, pub, "coldchain/v1/SHP-1/logger-2/readings", burstJSON)
	publish(t, pub, "coldchain/v1/SHP-1/reefer-1/readings", readingJSON(1, 5))
	check("after restart")

	var metrics strings.Builder
	resp, err := http.Get("http://" + gw.g.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&metrics, resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), `coldchain_ingest_duplicates_total{kind="reading"} 101`) {
		t.Fatalf("duplicates not counted after restart:\n%s", metrics.String())
	}
}

// TestHTTPIngest posts batches: 202 once stored, 400 naming the field for
// an invalid batch (nothing stored), 413 for an oversize body.
func TestHTTPIngest(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Ingest.MaxPayload = 4096
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, v
	}
	good := `[{"shipment":"S1","device":"D1","seq":1,"ts":"` + ts(1) + `","temp_c":5},{"shipment":"S1","device":"D1","seq":2,"ts":"` + ts(2) + `","temp_c":5}]`
	if code, v := post("/v1/readings", good); code != 202 || v["accepted"] != 2.0 {
		t.Fatalf("%d %v", code, v)
	}
	if code, v := post("/v1/readings", good); code != 202 || v["duplicates"] != 2.0 || v["accepted"] != 0.0 {
		t.Fatalf("resend: %d %v", code, v)
	}
	code, v := post("/v1/readings", `[{"shipment":"S1","device":"D1","seq":3,"ts":"`+ts(3)+`","temp_c":5},{"shipment":"S1","seq":4,"ts":"`+ts(4)+`","temp_c":5}]`)
	if code != 400 {
		t.Fatalf("invalid batch: %d %v", code, v)
	}
	rej := v["rejected"].([]any)[0].(map[string]any)
	if rej["field"] != "device" || rej["reason"] != "missing_field" || rej["index"] != 1.0 {
		t.Fatalf("rejection %v", rej)
	}
	if code, v := post("/v1/handovers", `[{"id":"H1","shipment":"S1","ts":"`+ts(0)+`","site":"X","kind":"receive","from_party":"A","to_party":"B"}]`); code != 202 || v["accepted"] != 1.0 {
		t.Fatalf("handover: %d %v", code, v)
	}
	if code, v := post("/v1/readings", "["+strings.Repeat(" ", 5000)+"]"); code != 413 || !strings.Contains(v["error"].(string), "oversize") {
		t.Fatalf("oversize: %d %v", code, v)
	}
	if code, _ := post("/v1/readings", `{"shipment":"S1"`); code != 400 {
		t.Fatalf("malformed: %d", code)
	}
	if ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings); len(ids) != 2 {
		t.Fatalf("stored %v, want D1:1 and D1:2 only", ids)
	}
	var ready map[string]any
	if code := getJSON(t, base+"/readyz", &ready); code != 200 || ready["ready"] != true {
		t.Fatalf("readyz %d %v", code, ready)
	}
	var dl map[string]any
	if code := getJSON(t, base+"/v1/deadletters?limit=0", &dl); code != 400 {
		t.Fatalf("limit=0 accepted: %d", code)
	}
}

// TestNoLossUnderLoad has four publishers send QoS 1 readings as fast as
// paho allows (many in flight each) through the embedded broker: every
// PUBACKed reading is in JetStream, exactly once. mochi with default limits
// was seen dropping up to 90 % of QoS 1 messages to a subscriber in this
// setup; ingest through the broker hook has no subscriber to drop for.
func TestNoLossUnderLoad(t *testing.T) {
	gw := startGateway(t, testConfig(t.TempDir()))
	defer gw.stop()
	const publishers, each = 4, 2000
	errs := make(chan error, publishers)
	for p := range publishers {
		go func() {
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + gw.g.MQTTAddr()).SetClientID(fmt.Sprintf("load-%d", p)))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				errs <- fmt.Errorf("connect: %v", tok.Error())
				return
			}
			defer c.Disconnect(100)
			topic := fmt.Sprintf("coldchain/v1/LOAD/dev-%d/readings", p)
			toks := make([]paho.Token, 0, each)
			for i := range each {
				toks = append(toks, c.Publish(topic, 1, false, readingJSON(i, 5)))
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("publish: %v", tok.Error())
					return
				}
			}
			errs <- nil
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("%s stored twice", id)
		}
		seen[id] = true
	}
	if len(ids) != publishers*each {
		t.Fatalf("%d readings stored, %d were acknowledged", len(ids), publishers*each)
	}
}
