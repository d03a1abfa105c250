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
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
)

// peers runs scripts/peers.sh with args.
func peers(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../scripts/peers.sh", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peers.sh %v: %v\n%s", args, err, out)
	}
}

// influxCounts returns, per device, how many readings of ship InfluxDB
// holds, asked of InfluxDB itself in Flux (the seq field: one per point).
func influxCounts(t *testing.T, ship string) (map[string]int64, error) {
	t.Helper()
	c := influxdb2.NewClient(need(t, "COLDCHAIN_TEST_INFLUX_URL"), os.Getenv("COLDCHAIN_TEST_INFLUX_TOKEN"))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.QueryAPI(need(t, "COLDCHAIN_TEST_INFLUX_ORG")).Query(ctx, fmt.Sprintf(`from(bucket: %q)
  |> range(start: 2000-01-01T00:00:00Z, stop: 2200-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "reading" and r.shipment == %q and r._field == "seq")
  |> count()`, need(t, "COLDCHAIN_TEST_INFLUX_BUCKET"), ship))
	if err != nil {
		return nil, err
	}
	defer res.Close()
	out := map[string]int64{}
	for res.Next() {
		dev, _ := res.Record().ValueByKey("device").(string)
		n, _ := res.Record().Value().(int64)
		out[dev] += n
	}
	return out, res.Err()
}

func total(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// waitInflux polls InfluxDB until it holds want readings of ship, and
// fails if it ever holds more.
func waitInflux(t *testing.T, ship string, want int64, within time.Duration) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := influxCounts(t, ship)
		if err == nil && total(got) == want {
			return got
		}
		if total(got) > want {
			t.Fatalf("InfluxDB holds %d readings of %s, want %d: %v", total(got), ship, want, got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("InfluxDB holds %d readings of %s after %s, want %d (%v)", total(got), ship, within, want, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func httpText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestInfluxOutageAndKill9 runs the gateway in front of real Mosquitto,
// nats-server and InfluxDB 1.8 with the InfluxDB store. Readings published
// over MQTT are read back from InfluxDB itself. InfluxDB is stopped while
// a third of them arrive: ingest goes on, /readyz and /metrics show the
// outage and the lag, and the writer catches up by itself once InfluxDB is
// back. Then the gateway is killed with SIGKILL mid-stream and restarted.
// In the end InfluxDB holds every reading exactly once, and the history
// API answers from it.
func TestInfluxOutageAndKill9(t *testing.T) {
	mqttURL := need(t, "COLDCHAIN_TEST_MQTT_URL")
	run := fmt.Sprintf("ix%d", time.Now().UnixNano())
	ship := "SHP-" + run
	httpAddr := freePort(t)
	env := append(gatewayEnv(t, run, httpAddr),
		"COLDCHAIN_STORE_KIND=influx",
		"COLDCHAIN_STORE_INFLUX_URL="+need(t, "COLDCHAIN_TEST_INFLUX_URL"),
		"COLDCHAIN_STORE_INFLUX_ORG="+need(t, "COLDCHAIN_TEST_INFLUX_ORG"),
		"COLDCHAIN_STORE_INFLUX_BUCKET="+need(t, "COLDCHAIN_TEST_INFLUX_BUCKET"),
		"COLDCHAIN_STORE_INFLUX_TOKEN="+os.Getenv("COLDCHAIN_TEST_INFLUX_TOKEN"),
		"COLDCHAIN_STORE_BATCH_SIZE=500",
		"COLDCHAIN_STORE_MAX_BACKOFF=1s",
	)
	// Whatever happens, leave InfluxDB running for the next test.
	t.Cleanup(func() { peers(t, "start", "influxdb") })
	gw := startProc(t, env, httpAddr)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mqttURL).SetClientID("pub-" + run).SetCleanSession(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to mosquitto: %v", tok.Error())
	}
	defer pub.Disconnect(250)
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			// Device ids are global (a reading's id is device:seq): one
			// set per run.
			dev := fmt.Sprintf("%s-d%d", run, i%3)
			p := fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%.1f}`, i, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 2+float64(i%60)/10)
			tok := pub.Publish("coldchain/v1/"+ship+"/"+dev+"/readings", 1, false, p)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}

	send(0, 1000)
	waitInflux(t, ship, 1000, 60*time.Second)
	t.Log("1,000 readings in InfluxDB")

	// InfluxDB down: ingest goes on, the journal keeps the readings.
	peers(t, "stop", "influxdb")
	send(1000, 2000)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, ready := httpText(t, "http://"+httpAddr+"/readyz")
		_, m := httpText(t, "http://"+httpAddr+"/metrics")
		if st == 200 && strings.Contains(ready, "writes failing since") && strings.Contains(m, "coldchain_store_up 0\n") &&
			!strings.Contains(m, `coldchain_store_pending{kind="reading"} 0`+"\n") {
			t.Logf("while InfluxDB is down, /readyz says: %s", ready)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outage not shown in 30s:\n%s\n%s", ready, m)
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // Down for a while: several retries and redeliveries.
	peers(t, "start", "influxdb")
	waitInflux(t, ship, 2000, 90*time.Second)
	t.Log("2,000 readings in InfluxDB after it came back")

	// SIGKILL mid-stream, with writes in flight; Mosquitto queues the rest.
	send(2000, 2400)
	gw.kill9()
	send(2400, 3000)
	gw = startProc(t, env, httpAddr)
	counts := waitInflux(t, ship, 3000, 90*time.Second)
	for d := range 3 {
		if n := counts[fmt.Sprintf("%s-d%d", run, d)]; n != 1000 {
			t.Fatalf("device %s-d%d: %d readings in InfluxDB, want 1,000 (%v)", run, d, n, counts)
		}
	}
	// Still exactly 3,000 once every redelivery is done.
	time.Sleep(2 * time.Second)
	waitInflux(t, ship, 3000, time.Second)

	// The history API answers from InfluxDB.
	var a struct {
		Count   int `json:"count"`
		Buckets []struct {
			Count int `json:"count"`
		} `json:"buckets"`
	}
	st, body := httpText(t, "http://"+httpAddr+"/v1/shipments/"+ship+"/readings?limit=100000")
	if err := json.Unmarshal([]byte(body), &a); err != nil || st != 200 || a.Count != 3000 {
		t.Fatalf("history API: %d %d %v", st, a.Count, err)
	}
	st, body = httpText(t, "http://"+httpAddr+"/v1/shipments/"+ship+"/readings?every=10m")
	if err := json.Unmarshal([]byte(body), &a); err != nil || st != 200 {
		t.Fatalf("history API every=10m: %d %v", st, err)
	}
	n := 0
	for _, b := range a.Buckets {
		n += b.Count
	}
	if n != 3000 {
		t.Fatalf("downsampled counts add up to %d, want 3,000", n)
	}
	gw.stop()
}
