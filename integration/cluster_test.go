//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// TestClusterRealPeers runs three gateways in cluster mode on a real
// three-node nats-server cluster (peers nats-1..3), behind the real
// Mosquitto with a shared subscription, storing into the real InfluxDB and
// anchoring on Hardhat. Mid-load the gateway that holds both leases is
// killed with SIGKILL after it anchored; another takes both, replaying the
// step log, and anchors on. Then one NATS node is stopped and started
// again; the killed gateway comes back at the end. Every reading is in
// JetStream and in the store once, every expected alarm opened once, none
// twice, the epochs form one chain cut by two gateways, and every
// shipment's bundle verifies offline and on the chain.
func TestClusterRealPeers(t *testing.T) {
	urls := need(t, "COLDCHAIN_TEST_NATS_CLUSTER_URLS")
	peers := need(t, "COLDCHAIN_TEST_PEERS_SCRIPT")
	run := fmt.Sprintf("CL%d", time.Now().UnixNano()%1_000_000_000)
	const shipments, minutes = 200, 60

	// Fresh gateways (new data dirs) on a cluster that earlier runs left
	// a step log in: none has those shipment logs, so none could follow
	// it. Reset it, as an operator would (docs/CLUSTER.md).
	resetSteps(t, urls)
	// The store writer's readings in four partitions, spread over the
	// three gateways.
	const partitions = 4
	setPartitions(t, urls, partitions)
	addrs := make([]string, 3)
	gws := make([]*gatewayProc, 3)
	envs := make([][]string, 3)
	for i := range gws {
		addrs[i] = freePort(t)
		// A snapshot of the shipment logs every 2 s, for the member that
		// comes back without its data dir.
		envs[i] = append(clusterEnv(t, i+1, addrs[i], urls), "COLDCHAIN_CLUSTER_LOG_SNAPSHOTS=2s", fmt.Sprintf("COLDCHAIN_CLUSTER_PARTITIONS=%d", partitions))
		gws[i] = startProc(t, envs[i], addrs[i])
	}
	view := viewOf
	holder := func(addr, lease string) string {
		v, _ := view(addr)
		for _, l := range v.Leases {
			if l.Lease == lease {
				return l.Holder
			}
		}
		return ""
	}
	waitWithin(t, 60*time.Second, "a holder of both leases", func() bool {
		h := holder(addrs[0], "consumers")
		return h != "" && h == holder(addrs[0], "anchor")
	})

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(need(t, "COLDCHAIN_TEST_MQTT_URL")).SetClientID(run + "-pub").SetCleanSession(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-6 * time.Hour)
	ship := func(s int) string { return fmt.Sprintf("%s-S%03d", run, s) }
	excursion := func(s int) bool { return s%2 == 0 } // 9 °C from minute 25: the alarm opens at minute 55

	killed := -1
	for m := range minutes {
		switch m {
		case minutes / 3:
			// Kill it once it has anchored: another must continue its
			// shipment logs from the step log.
			waitWithin(t, time.Minute, "a first epoch", func() bool {
				v, _ := view(addrs[0])
				return v.Epoch != nil && v.Epoch.Number >= 1
			})
			h := holder(addrs[0], "consumers")
			var idx int
			fmt.Sscanf(h, "gw-%d", &idx)
			if idx < 1 {
				t.Fatalf("no consumers holder before the kill: %q", h)
			}
			killed = idx - 1
			if a := holder(addrs[0], "anchor"); a != h {
				t.Fatalf("consumers held by %s, anchor by %s: the detector runs next to the anchorer", h, a)
			}
			t.Logf("minute %d: kill -9 %s, which holds both leases", m, h)
			gws[killed].kill9()
		case minutes / 2:
			t.Log("stopping nats-2")
			if out, err := exec.Command(peers, "stop", "nats-2").CombinedOutput(); err != nil {
				t.Fatalf("stop nats-2: %v\n%s", err, out)
			}
		case 2 * minutes / 3:
			t.Log("starting nats-2 again")
			if out, err := exec.Command(peers, "start", "nats-2").CombinedOutput(); err != nil {
				t.Fatalf("start nats-2: %v\n%s", err, out)
			}
		}
		toks := make([]paho.Token, 0, shipments)
		for s := range shipments {
			temp := 5.0
			if excursion(s) && m >= 25 {
				temp = 9
			}
			payload := fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, m, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339), temp)
			toks = append(toks, pub.Publish("coldchain/v1/"+ship(s)+"/"+ship(s)+"-R/readings", 1, false, payload))
		}
		// A minute's readings in flight together, each acknowledged.
		for _, tok := range toks {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	total := shipments * minutes
	live := (killed + 1) % 3
	waitWithin(t, 60*time.Second, "both leases held by one live gateway", func() bool {
		h := holder(addrs[live], "consumers")
		return h != "" && h != fmt.Sprintf("gw-%d", killed+1) && h == holder(addrs[live], "anchor")
	})
	successor := holder(addrs[live], "anchor")
	t.Logf("both leases taken over by %s", successor)
	waitWithin(t, 2*time.Minute, "an epoch cut by "+successor, func() bool {
		v, _ := view(addrs[live])
		return v.Epoch != nil && v.Epoch.Member == successor
	})
	// The killed gateway comes back with its data dir lost: it starts
	// its shipment logs from the successor's snapshot of them.
	var succ int
	fmt.Sscanf(successor, "gw-%d", &succ)
	waitWithin(t, time.Minute, "a shipment-log snapshot by "+successor, func() bool {
		return metricOf(t, addrs[succ-1], snapshotStep+`{snapshot="stored"}`) > 0
	})
	t.Log("the killed gateway comes back with an empty data dir")
	envs[killed] = append(envs[killed], "COLDCHAIN_DATA_DIR="+t.TempDir())
	gws[killed] = startProc(t, envs[killed], addrs[killed])
	if n := metricOf(t, addrs[killed], snapshotStep+`{snapshot="restored"}`); n == 0 {
		t.Fatal("the gateway that came back without its data dir restored no shipment-log snapshot")
	}

	// JetStream: every reading once.
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	readIDs := func(stream, prefix string, fn func(journal.Msg)) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := journal.ReadStream(ctx, js, stream, "", func(m journal.Msg) error {
			if strings.HasPrefix(m.Subject, prefix) {
				fn(m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	waitWithin(t, 2*time.Minute, "every reading in JetStream", func() bool {
		ids = ids[:0]
		readIDs(journal.StreamReadings, "coldchain.readings."+run+"-", func(m journal.Msg) { ids = append(ids, m.ID) })
		return len(ids) >= total
	})
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(ids)))); len(ids) != total || distinct != total {
		t.Fatalf("JetStream holds %d readings, %d distinct; %d were sent", len(ids), distinct, total)
	}

	// The store, read through any gateway: every reading of each shipment.
	for s := range shipments {
		waitWithin(t, 2*time.Minute, ship(s)+" in the store", func() bool {
			resp, err := http.Get("http://" + addrs[live] + "/v1/shipments/" + ship(s) + "/readings?limit=1000")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var out struct{ Count int }
			return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&out) == nil && out.Count == minutes
		})
	}

	// Alerts, against the ground truth: each excursion shipment has one
	// single_event_high alarm standing, which starts at minute 25, and the
	// others none; no alert opened twice, no event stored twice. The share
	// of the readings queued for the killed gateway reaches the detector
	// after later ones (a shipment's consecutive minutes go to different
	// gateways of the shared group). Where it holds a shipment's minute 25,
	// the alarm was first opened from minute 26; the late reading then
	// makes the detector retract it and open the one that starts at 25 (a
	// new alert, docs/EXCURSION.md), unless it comes more than
	// alerts.history (16) readings behind its device's newest: then it is
	// stored, proven and flagged, and the alarm keeps minute 26. Both are
	// counted, not refused.
	type alarm struct {
		ship, last string
		start      time.Time
		opens      int
	}
	var alarms map[string]*alarm // by alert id
	var standing map[string][]*alarm
	var events []string
	retracted, fromLater := 0, 0
	waitWithin(t, 2*time.Minute, "every alarm", func() bool {
		alarms, standing, events, retracted = map[string]*alarm{}, map[string][]*alarm{}, nil, 0
		readIDs(journal.StreamAlerts, "coldchain.alerts."+run+"-", func(m journal.Msg) {
			a, err := record.ParseAlert(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, m.ID)
			if a.Rule != "single_event_high" {
				return
			}
			al := alarms[a.ID]
			if al == nil {
				al = &alarm{ship: a.Shipment, start: a.Start}
				alarms[a.ID] = al
			}
			al.last = a.Transition
			if a.Transition == "opened" {
				al.opens++
			}
		})
		for _, al := range alarms {
			if al.last == "retracted" {
				retracted++
				continue
			}
			standing[al.ship] = append(standing[al.ship], al)
		}
		return len(standing) >= shipments/2
	})
	for s := range shipments {
		got := standing[ship(s)]
		switch {
		case !excursion(s) && len(got) != 0:
			t.Errorf("%s: %d single_event_high alarms without an excursion", ship(s), len(got))
		case excursion(s) && len(got) != 1:
			t.Errorf("%s: %d single_event_high alarms standing, want 1", ship(s), len(got))
		case excursion(s) && got[0].start.Equal(t0.Add(26*time.Minute)):
			fromLater++
		case excursion(s) && !got[0].start.Equal(t0.Add(25*time.Minute)):
			t.Errorf("%s: the alarm starts at %s, want minute 25 (%s), or 26 when 25 came too late", ship(s), got[0].start, t0.Add(25*time.Minute))
		}
	}
	if fromLater > 0 {
		flagged := 0.0
		for _, a := range addrs {
			flagged += metricOf(t, a, `coldchain_detector_flagged_total{status="beyond_history"}`)
		}
		if flagged == 0 {
			t.Errorf("%d alarms start at minute 26, but no gateway flagged a reading beyond its history", fromLater)
		}
	}
	for id, al := range alarms {
		if al.opens != 1 {
			t.Errorf("alert %s of %s opened %d times", id, al.ship, al.opens)
		}
	}
	if d := len(events) - len(slices.Compact(slices.Sorted(slices.Values(events)))); d != 0 {
		t.Errorf("%d alert transitions stored twice", d)
	}

	// One unbroken chain of epochs, cut by the killed gateway and its
	// successor.
	all, number, cutBy := epochChain(t, js)
	if cutBy[fmt.Sprintf("gw-%d", killed+1)] == 0 || cutBy[successor] == 0 {
		t.Errorf("epochs cut per gateway %v: want both gw-%d and %s", cutBy, killed+1, successor)
	}

	// Proofs, through any gateway: every record, verified offline and on
	// Hardhat.
	dir := t.TempDir()
	contracts := map[string]int{}
	for s := range shipments {
		path := filepath.Join(dir, ship(s)+".json")
		want := minutes
		if excursion(s) {
			want += 2 // at least the pre-alarm and the alarm
		}
		waitWithin(t, 3*time.Minute, ship(s)+"'s bundle with every reading", func() bool {
			resp, err := http.Get("http://" + addrs[live] + "/v1/shipments/" + ship(s) + "/proof")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var b struct {
				TreeSize int `json:"tree_size"`
				Anchor   struct {
					Contract string `json:"contract"`
				} `json:"anchor"`
			}
			if resp.StatusCode != 200 || json.Unmarshal(raw, &b) != nil || b.TreeSize < want {
				return false
			}
			contracts[strings.ToLower(b.Anchor.Contract)]++
			return os.WriteFile(path, raw, 0o600) == nil
		})
		out, err := exec.Command(binary, "verify", path, "--rpc", needEVM(t, "COLDCHAIN_TEST_EVM_RPC_URL")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Fatalf("verify %s: %v\n%s", ship(s), err, out)
		}
	}
	if len(contracts) != 1 {
		t.Errorf("bundles name %d anchor contracts %v: every member must anchor to the cluster's one", len(contracts), contracts)
	}
	v, _ := view(addrs[live])
	if v.Epoch == nil || len(v.Members) != 3 {
		t.Fatalf("cluster view: %+v", v)
	}
	// The partitions: spread over the three live gateways again (the
	// killed one's moved to the others, and some back to it when it
	// returned), none waiting for its holder.
	var placement map[string][]int
	waitWithin(t, time.Minute, "the partitions spread over the three gateways, none behind", func() bool {
		placement = map[string][]int{}
		seen := 0
		for _, a := range addrs {
			v, ok := view(a)
			if !ok {
				return false
			}
			for _, l := range v.Leases {
				var p int
				if _, err := fmt.Sscanf(l.Lease, "partition-%d", &p); err == nil && l.Held {
					placement[v.Member] = append(placement[v.Member], p)
					seen++
				}
			}
			for c, lag := range v.Lag {
				if (strings.HasPrefix(c, "coldchain-store-p") || strings.HasPrefix(c, "coldchain-detector-p")) && lag["reading"] != 0 {
					return false
				}
			}
		}
		if seen != partitions || len(placement) != 3 {
			return false
		}
		for _, ps := range placement {
			if len(ps) < 1 || len(ps) > 2 {
				return false
			}
		}
		return true
	})
	t.Logf("partitions held at the end: %v", placement)
	// The gateway that came back follows the step log from its restored
	// logs: its standby replays every epoch cut since, roots checked.
	waitWithin(t, time.Minute, "the restored gateway to follow the step log to the latest epoch", func() bool {
		return metricOf(t, addrs[killed], "coldchain_anchor_epoch") >= float64(v.Epoch.Number)
	})
	t.Logf("cluster: %d readings once in JetStream and the store, %d alarms standing once (%d opened from a later reading first, then retracted; %d start at the next reading, the first flagged late), %d bundles verified; %d steps, epochs 1..%d in one chain, cut per gateway %v; latest epoch %d by %s; members %d; gw-%d restored its logs from a snapshot and followed; partitions %v",
		total, len(standing), retracted, fromLater, shipments, len(all), number, cutBy, v.Epoch.Number, v.Epoch.Member, len(v.Members), killed+1, placement)
	for _, g := range gws {
		g.stop()
	}
}

func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// clusterEnv is the environment of cluster member gw-i in front of the
// real peers: Mosquitto through a shared subscription, the three-node
// cluster at urls, InfluxDB, Hardhat.
func clusterEnv(t *testing.T, i int, httpAddr, urls string) []string {
	t.Helper()
	return []string{
		"COLDCHAIN_MQTT_URL=" + need(t, "COLDCHAIN_TEST_MQTT_URL"),
		fmt.Sprintf("COLDCHAIN_MQTT_CLIENT_ID=coldchain-cluster-it-%d", i),
		"COLDCHAIN_MQTT_SHARED_GROUP=coldchain-cluster-it",
		"COLDCHAIN_NATS_URL=" + urls,
		"COLDCHAIN_NATS_REPLICAS=3",
		"COLDCHAIN_DATA_DIR=" + t.TempDir(),
		"COLDCHAIN_HTTP_LISTEN=" + httpAddr,
		"COLDCHAIN_HTTP_ALLOW_ANONYMOUS=true",
		"COLDCHAIN_LOG_LEVEL=info",
		"COLDCHAIN_LOG_FORMAT=json",
		"COLDCHAIN_STORE_KIND=influx",
		"COLDCHAIN_STORE_INFLUX_URL=" + need(t, "COLDCHAIN_TEST_INFLUX_URL"),
		"COLDCHAIN_STORE_INFLUX_ORG=" + need(t, "COLDCHAIN_TEST_INFLUX_ORG"),
		"COLDCHAIN_STORE_INFLUX_BUCKET=" + need(t, "COLDCHAIN_TEST_INFLUX_BUCKET"),
		"COLDCHAIN_CHAIN_KIND=rpc",
		"COLDCHAIN_CHAIN_RPC_URL=" + needEVM(t, "COLDCHAIN_TEST_EVM_RPC_URL"),
		"COLDCHAIN_CHAIN_KEY=" + needEVM(t, "COLDCHAIN_TEST_EVM_KEY"),
		"COLDCHAIN_CHAIN_CHAIN_ID=" + needEVM(t, "COLDCHAIN_TEST_EVM_CHAIN_ID"),
		"COLDCHAIN_CHAIN_CONFIRMATIONS=1",
		"COLDCHAIN_ANCHOR_EPOCH=2s",
		"COLDCHAIN_CLUSTER_ENABLED=true",
		fmt.Sprintf("COLDCHAIN_CLUSTER_MEMBER=gw-%d", i),
		"COLDCHAIN_CLUSTER_LEASE_TTL=3s",
	}
}

// snapshotStep is the metric of the shipment-log snapshots' steps.
const snapshotStep = "coldchain_anchor_log_snapshot_step"

// metricOf reads one sample of the gateway's /metrics (0 when absent).
func metricOf(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// resetSteps deletes the cluster's anchor step log with the operator's
// command.
func resetSteps(t *testing.T, urls string) {
	t.Helper()
	// A cluster that has just started may not have placed the R3 streams
	// yet: the command fails, and is run again.
	var out []byte
	var err error
	for deadline := time.Now().Add(time.Minute); ; {
		out, err = exec.Command(binary, "cluster", "reset-steps", "--yes", "--nats", urls).CombinedOutput()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("coldchain cluster reset-steps: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// setPartitions records the cluster's partition count with the operator's
// command, as before starting gateways with a new cluster.partitions.
func setPartitions(t *testing.T, urls string, n int) {
	t.Helper()
	out, err := exec.Command(binary, "cluster", "partitions", "--set", strconv.Itoa(n), "--yes", "--nats", urls).CombinedOutput()
	if err != nil {
		t.Fatalf("coldchain cluster partitions --set %d: %v\n%s", n, err, out)
	}
}

// epochChain reads the cluster's anchor step log and returns its steps,
// the last epoch and how many epochs each member cut; it fails the test
// unless the epochs are numbered without a gap, one chain.
func epochChain(t *testing.T, js jetstream.JetStream) ([]anchor.SeqStep, uint64, map[string]int) {
	t.Helper()
	steps, err := anchor.OpenStepLog(context.Background(), js, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	all, err := steps.Steps(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	number, cutBy, err := anchor.EpochCuts(all)
	if err != nil {
		t.Fatalf("the epochs do not form one chain: %v", err)
	}
	return all, number, cutBy
}

// viewOf reads GET /v1/cluster of the gateway at addr.
func viewOf(addr string) (cluster.View, bool) {
	resp, err := http.Get("http://" + addr + "/v1/cluster")
	if err != nil {
		return cluster.View{}, false
	}
	defer resp.Body.Close()
	var v cluster.View
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return cluster.View{}, false
	}
	return v, true
}
