package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type historyAnswer struct {
	Shipment struct {
		ID        string  `json:"id"`
		Devices   int     `json:"devices"`
		Handovers int     `json:"handovers"`
		LastTempC float64 `json:"last_temp_c"`
	} `json:"shipment"`
	Count   int `json:"count"`
	Buckets []struct {
		Count int64   `json:"count"`
		Mean  float64 `json:"mean"`
	} `json:"buckets"`
	Error string `json:"error"`
}

// waitReadings polls the history API until the shipment has want readings,
// then checks it never has more.
func waitReadings(t *testing.T, httpAddr, ship string, want int) historyAnswer {
	t.Helper()
	url := "http://" + httpAddr + "/v1/shipments/" + ship + "/readings?limit=100000"
	deadline := time.Now().Add(30 * time.Second)
	for {
		var a historyAnswer
		st := getJSON(t, url, &a)
		if st == 200 && a.Count == want {
			return a
		}
		if a.Count > want {
			t.Fatalf("%d readings in the store, want %d", a.Count, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("store has %d readings (status %d %s), want %d after 30s", a.Count, st, a.Error, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHistoryEndToEnd: readings and a handover over MQTT reach the
// embedded store through the writer and the history API serves them;
// resends leave one point each; after a restart the store still has them
// once, and /readyz and /metrics show the store.
func TestHistoryEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	gw := startGateway(t, cfg)
	pub := publisher(t, gw.g.MQTTAddr(), "history-pub")
	for i := 1; i <= 120; i++ {
		publish(t, pub, fmt.Sprintf("coldchain/v1/SHP-H/reefer-%d/readings", i%2), readingJSON(i, 4+float64(i%10)/10))
	}
	// Resends, within JetStream's duplicate window and as a batch.
	for i := 1; i <= 10; i++ {
		publish(t, pub, fmt.Sprintf("coldchain/v1/SHP-H/reefer-%d/readings", i%2), readingJSON(i, 4+float64(i%10)/10))
	}
	publish(t, pub, "coldchain/v1/SHP-H/handovers",
		fmt.Sprintf(`{"id":"HO-1","ts":"%s","site":"SIN-T1","kind":"release","from_party":"Carrier","to_party":"Warehouse"}`, ts(5)))

	waitReadings(t, gw.g.HTTPAddr(), "SHP-H", 120)
	var a historyAnswer
	if st := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-H/readings?every=1h&device=reefer-1", &a); st != 200 ||
		a.Shipment.Devices != 2 || len(a.Buckets) == 0 {
		t.Fatalf("downsampled: %d %+v", st, a)
	}
	deadline := time.Now().Add(10 * time.Second)
	for getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-H/handovers", &a) != 200 || a.Count != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("handover not in the store: %+v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-NONE/readings", &a); st != 404 || a.Error == "" {
		t.Fatalf("unknown shipment: %d %+v", st, a)
	}

	var ready struct {
		Ready  bool
		Checks map[string]string
	}
	if st := getJSON(t, "http://"+gw.g.HTTPAddr()+"/readyz", &ready); st != 200 || ready.Checks["store"] != "ok" {
		t.Fatalf("readyz: %d %+v", st, ready)
	}
	// The writer records its position just after the store confirmed:
	// poll.
	deadline = time.Now().Add(10 * time.Second)
	for _, line := range []string{"coldchain_store_up 1", `coldchain_store_points_total{kind="reading"} 120`, `coldchain_store_pending{kind="reading"} 0`, "coldchain_store_behind_seconds 0"} {
		for body := metricsText(t, gw.g.HTTPAddr()); !strings.Contains(body, line+"\n"); body = metricsText(t, gw.g.HTTPAddr()) {
			if time.Now().After(deadline) {
				t.Fatalf("metrics lack %q:\n%s", line, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pub.Disconnect(100)
	gw.stop()

	// A restart resumes from the writer's durable position: the store
	// still holds each reading once, and new readings are added.
	gw = startGateway(t, cfg)
	defer gw.stop()
	pub = publisher(t, gw.g.MQTTAddr(), "history-pub-2")
	for i := 121; i <= 130; i++ {
		publish(t, pub, "coldchain/v1/SHP-H/reefer-1/readings", readingJSON(i, 5))
	}
	waitReadings(t, gw.g.HTTPAddr(), "SHP-H", 130)
	pub.Disconnect(100)
}

func metricsText(t *testing.T, httpAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
