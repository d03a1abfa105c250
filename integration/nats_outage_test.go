//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/journal"
)

// TestNATSOutage stops the real nats-server under a gateway in front of
// real Mosquitto while readings arrive over MQTT and HTTP. While JetStream
// is gone nothing is acknowledged as stored: the gateway withholds its
// PUBACKs to Mosquitto, which keeps the readings for the gateway's
// session; an HTTP upload answers 503 with Retry-After; /readyz fails on
// nats. Once nats-server is back, every reading is stored exactly once,
// with no restart of the gateway.
func TestNATSOutage(t *testing.T) {
	mqttURL := need(t, "COLDCHAIN_TEST_MQTT_URL")
	natsURL := need(t, "COLDCHAIN_TEST_NATS_URL")
	run := fmt.Sprintf("no%d", time.Now().UnixNano())
	ship := "SHP-" + run
	httpAddr := freePort(t)
	env := append(gatewayEnv(t, run, httpAddr), "COLDCHAIN_HTTP_INGEST_TIMEOUT=3s")
	// Whatever happens, leave nats-server running for the next test.
	t.Cleanup(func() { peers(t, "start", "nats") })
	gw := startProc(t, env, httpAddr)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mqttURL).SetClientID("pub-" + run).SetCleanSession(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to mosquitto: %v", tok.Error())
	}
	defer pub.Disconnect(250)
	base := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	at := func(i int) string { return base.Add(time.Duration(i) * time.Second).Format(time.RFC3339) }
	send := func(from, to int) {
		for i := from; i < to; i++ {
			p := fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":5}`, i, at(i))
			if tok := pub.Publish("coldchain/v1/"+ship+"/"+run+"-m/readings", 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	post := func(from, to int) (int, string, string) {
		var b strings.Builder
		b.WriteByte('[')
		for i := from; i < to; i++ {
			if i > from {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"shipment":"%s","device":"%s-h","seq":%d,"ts":"%s","temp_c":5}`, ship, run, i, at(i))
		}
		b.WriteByte(']')
		resp, err := http.Post("http://"+httpAddr+"/v1/readings", "application/json", strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(raw)
	}

	send(0, 300)
	if st, _, body := post(0, 300); st != http.StatusAccepted {
		t.Fatalf("post before the outage: %d %s", st, body)
	}

	peers(t, "stop", "nats")
	t.Log("nats-server stopped")
	send(300, 600) // Mosquitto acknowledges and keeps them for the gateway's session.
	st, retry, body := post(300, 600)
	if st != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "nothing was acknowledged") {
		t.Errorf("post while JetStream is down: %d, Retry-After %q, %s; want 503 with Retry-After", st, retry, body)
	}
	if st, ready := httpText(t, "http://"+httpAddr+"/readyz"); st != http.StatusServiceUnavailable || !strings.Contains(ready, `"nats"`) {
		t.Errorf("/readyz while JetStream is down: %d %s", st, ready)
	}
	time.Sleep(3 * time.Second) // several retries of the withheld appends
	peers(t, "start", "nats")
	t.Log("nats-server started again")
	if st, _, body := post(300, 600); st != http.StatusAccepted {
		t.Fatalf("the refused post again after the outage: %d %s", st, body)
	}
	send(600, 700)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(90 * time.Second)
	for {
		total, per := stored(t, js, journal.StreamReadings, "coldchain.readings."+ship+".>")
		m, h := per["coldchain.readings."+ship+"."+run+"-m"], per["coldchain.readings."+ship+"."+run+"-h"]
		if m == 700 && h == 600 && total == 1300 {
			t.Logf("after the outage: %d MQTT and %d HTTP readings stored, each once", m, h)
			break
		}
		if m > 700 || h > 600 {
			t.Fatalf("doubled: %d MQTT readings (want 700), %d HTTP (want 600)", m, h)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: %d MQTT readings of 700, %d HTTP of 600 stored", m, h)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st, ready := httpText(t, "http://"+httpAddr+"/readyz"); st != http.StatusOK {
		t.Errorf("/readyz after the outage: %d %s", st, ready)
	}
	gw.stop()
}
