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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/simulator"
)

// The simulated fleet of TestClusterFleet: every scenario twice, each on a
// shipment of its own, and normal shipments up to fleetShipments, a reefer
// and a logger each, over a day of device time played in fleetWall.
const (
	fleetShipments = 200
	fleetDevices   = 2
	fleetSpan      = 24 * time.Hour
	fleetWall      = 150 * time.Second
	fleetParts     = 4
)

// TestClusterFleet is issue 13's acceptance test: the simulator drives a
// few hundred shipments with known excursions through the real Mosquitto,
// shared by three gateways in cluster mode with four partitions on the
// real three-node nats-server cluster, storing into InfluxDB and anchoring
// on Hardhat. Mid-run the gateway that holds the anchor lease is killed
// with SIGKILL and started again a second later, and nats-2 is stopped
// for 5 s and started again. At the end, every distinct reading is in
// JetStream once; the alerts, read through any gateway, are the
// simulator's ground truth; no alert transition is stored twice; every
// shipment's bundle verifies offline and on Hardhat; the epochs form one
// chain.
//
// One difference from the ground truth is allowed, and counted: an alert
// the truth has decided on time may be flagged as decided late. The
// killed gateway's share of the shared subscription waits in Mosquitto
// until it is back, and reaches the detector after later readings of the
// same devices; the detector then decides on the late reading, as
// docs/EXCURSION.md says. Every other difference fails the test.
func TestClusterFleet(t *testing.T) {
	if os.Getenv("COLDCHAIN_TEST_CLUSTER_FLEET") == "" {
		t.Skip("make test-cluster-fleet runs it (COLDCHAIN_TEST_CLUSTER_FLEET=1): not in make test-integration while a partition detector can diverge after a handover (docs/CLUSTER.md)")
	}
	urls := need(t, "COLDCHAIN_TEST_NATS_CLUSTER_URLS")
	peers := need(t, "COLDCHAIN_TEST_PEERS_SCRIPT")
	mqttURL := need(t, "COLDCHAIN_TEST_MQTT_URL")
	evmURL := needEVM(t, "COLDCHAIN_TEST_EVM_RPC_URL")
	t0 := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("%6.1fs  %s", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}
	// A seed of its own per run: the shipment ids carry it, so runs on
	// the same cluster do not mix.
	seed := time.Now().Unix() % 1_000_000

	resetSteps(t, urls)
	setPartitions(t, urls, fleetParts)
	addrs := make([]string, 3)
	gws := make([]*gatewayProc, 3)
	envs := make([][]string, 3)
	for i := range gws {
		addrs[i] = freePort(t)
		envs[i] = append(clusterEnv(t, i+1, addrs[i], urls),
			// A session and a shared group of this test's own (later
			// entries win).
			fmt.Sprintf("COLDCHAIN_MQTT_CLIENT_ID=coldchain-fleet-it-%d", i+1),
			"COLDCHAIN_MQTT_SHARED_GROUP=coldchain-fleet-it",
			fmt.Sprintf("COLDCHAIN_CLUSTER_PARTITIONS=%d", fleetParts),
			"COLDCHAIN_DEVICES_UNKNOWN=accept")
		gws[i] = startProc(t, envs[i], addrs[i])
	}
	holder := func(lease string) (int, bool) {
		for _, a := range addrs {
			v, ok := viewOf(a)
			if !ok {
				continue
			}
			for _, l := range v.Leases {
				var i int
				if l.Lease == lease && l.Holder != "" {
					if _, err := fmt.Sscanf(l.Holder, "gw-%d", &i); err == nil {
						return i - 1, true
					}
				}
			}
		}
		return 0, false
	}
	waitWithin(t, time.Minute, "an anchor leader", func() bool { _, ok := holder("anchor"); return ok })

	sc := simulator.DefaultConfig()
	sc.Seed, sc.Devices, sc.Transport = seed, fleetDevices, simulator.TransportMQTT
	sc.Scenarios = append(simulator.Scenarios(), simulator.Scenarios()...)
	sc.Shipments = fleetShipments
	sc.Span = fleetSpan
	sc.Start = time.Now().UTC().Truncate(time.Second).Add(-sc.Span)
	g, err := simulator.NewGenerator(sc)
	if err != nil {
		t.Fatal(err)
	}
	rec := simulator.NewRecorder(g, simulator.DefaultProfile())
	stats := &simulator.Stats{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := simulator.DialMQTT(ctx, simulator.MQTTConfig{URL: mqttURL, ClientID: fmt.Sprintf("fleet-%d", seed), Connections: 4, InFlight: 256, AckTimeout: time.Minute}, stats)
	if err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	var rep simulator.Report
	go func() {
		var err error
		rep, err = simulator.Run(ctx, g, pub, rec, stats, simulator.RunConfig{Accelerate: float64(sc.Span) / float64(fleetWall), Tick: 50 * time.Millisecond, FlushTimeout: 2 * time.Minute}, time.Now)
		pub.Close()
		simDone <- err
	}()
	logf("fleet (seed %d): %d shipments × %d devices, %d scenario shipments, a reading every %v for %v of device time, in %v",
		seed, sc.Shipments, sc.Devices, len(sc.Scenarios), sc.Interval, sc.Span, fleetWall)

	time.Sleep(fleetWall / 3)
	killed, ok := holder("anchor")
	if !ok {
		t.Fatal("no anchor leader to kill")
	}
	var killEpoch uint64
	if v, ok := viewOf(addrs[killed]); ok && v.Epoch != nil {
		killEpoch = v.Epoch.Number
	}
	logf("kill -9 gw-%d, the anchor leader at epoch %d; started again after 1 s", killed+1, killEpoch)
	gws[killed].kill9()
	time.Sleep(time.Second)
	gws[killed] = startProc(t, envs[killed], addrs[killed])
	if d := fleetWall/2 - time.Since(t0); d > 0 {
		time.Sleep(d)
	}
	logf("stopping nats-2 for 5 s")
	if out, err := exec.Command(peers, "stop", "nats-2").CombinedOutput(); err != nil {
		t.Fatalf("stop nats-2: %v\n%s", err, out)
	}
	time.Sleep(5 * time.Second)
	if out, err := exec.Command(peers, "start", "nats-2").CombinedOutput(); err != nil {
		t.Fatalf("start nats-2: %v\n%s", err, out)
	}
	logf("nats-2 started again")
	if err := <-simDone; err != nil {
		t.Fatalf("fleet: %v", err)
	}
	truth := rec.Truth()
	logf("fleet done: %d messages, %d acknowledged by Mosquitto; %d distinct readings, %d handovers, %d rejected, %d alerts in the ground truth",
		stats.Messages.Load(), rep.Acked, truth.Counts.DistinctReadings, truth.Counts.Handovers, truth.Counts.Rejected, len(truth.Alarms))
	if rep.Errors != 0 || rep.Acked != stats.Messages.Load() {
		t.Fatalf("the fleet's report: %+v (last error %q)", rep, rep.LastError)
	}
	ours := map[string]bool{}
	for _, s := range truth.Shipments {
		ours[s.ID] = true
	}
	shipOf := func(subject string) string { // coldchain.<kind>.<shipment>…
		if parts := strings.SplitN(subject, ".", 4); len(parts) >= 3 {
			return parts[2]
		}
		return ""
	}

	// JetStream: every distinct reading once.
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	read := func(stream string, fn func(journal.Msg)) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := journal.ReadStream(ctx, js, stream, "", func(m journal.Msg) error {
			if ours[shipOf(m.Subject)] {
				fn(m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var readings map[string]int // per shipment
	stored, distinct := 0, 0
	waitWithin(t, 3*time.Minute, "every distinct reading in JetStream", func() bool {
		readings, stored = map[string]int{}, 0
		ids := map[string]bool{}
		read(journal.StreamReadings, func(m journal.Msg) {
			readings[shipOf(m.Subject)]++
			ids[m.ID] = true
			stored++
		})
		distinct = len(ids)
		return stored >= truth.Counts.DistinctReadings
	})
	if stored != truth.Counts.DistinctReadings || distinct != stored {
		t.Fatalf("JetStream holds %d readings of the fleet, %d distinct; the ground truth has %d distinct", stored, distinct, truth.Counts.DistinctReadings)
	}
	logf("JetStream holds the fleet's %d distinct readings, each once", stored)

	// Alerts against the ground truth, once the partitions' detectors are
	// idle, each shipment read through the gateways in turn (most forward
	// to the partition's holder).
	// The lag of every partition's consumers, as the gateways report it;
	// "" once all are idle.
	behind := func() string {
		var out []string
		for _, a := range addrs {
			v, ok := viewOf(a)
			if !ok {
				return "a gateway does not answer GET /v1/cluster"
			}
			for c, lag := range v.Lag {
				if (strings.HasPrefix(c, "coldchain-store-p") || strings.HasPrefix(c, "coldchain-detector-p")) && lag["reading"] != 0 {
					out = append(out, fmt.Sprintf("%s %d (seen by %s)", c, lag["reading"], v.Member))
				}
			}
		}
		slices.Sort(out)
		return strings.Join(slices.Compact(out), ", ")
	}
	for deadline, report := time.Now().Add(3*time.Minute), time.Now(); ; time.Sleep(500 * time.Millisecond) {
		b := behind()
		if b == "" {
			break
		}
		if time.Now().After(deadline) {
			// Each gateway's goroutines, in its log, for whoever reads
			// the failure.
			for _, g := range gws {
				g.dump()
			}
			t.Fatalf("the partitions' consumers are still behind after 3 min: %s", b)
		}
		if time.Since(report) > 20*time.Second {
			logf("behind: %s", b)
			report = time.Now()
		}
	}
	logf("every partition's store writer and detector idle")
	var diffs []string
	lateOnly := 0
	var got []simulator.Alert
	compare := func() bool {
		got = nil
		for i, s := range truth.Shipments {
			a, err := simulator.FetchAlerts(context.Background(), http.DefaultClient, "http://"+addrs[i%3], s.ID)
			if err != nil {
				t.Logf("alerts of %s: %v", s.ID, err)
				return false
			}
			got = append(got, a...)
		}
		diffs, lateOnly = nil, 0
		for _, d := range simulator.CompareAlerts(truth, got) {
			if strings.HasPrefix(d, simulator.DiffDiffers) && strings.Contains(d, ": late: want false, got true [alert ") {
				lateOnly++
				continue
			}
			diffs = append(diffs, d)
		}
		return len(diffs) == 0
	}
	// The views follow the alerts stream: give the last transitions a
	// moment to arrive before calling a difference one.
	deadline := time.Now().Add(30 * time.Second)
	for !compare() && time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
	}
	flagged := 0.0
	for _, a := range addrs {
		flagged += metricOf(t, a, `coldchain_detector_flagged_total{status="beyond_history"}`)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	// What the detector of each differing shipment has seen, against what
	// JetStream holds: whether it missed readings or decided otherwise.
	seen := map[string]bool{}
	for _, d := range diffs {
		f := strings.Fields(d)
		if len(f) < 2 || seen[f[1]] || !ours[f[1]] {
			continue
		}
		seen[f[1]] = true
		var st struct {
			LastReading time.Time `json:"last_reading"`
			Readings    int       `json:"readings"`
		}
		if code := getJSONStatus(fmt.Sprintf("http://%s/v1/shipments/%s/status", addrs[0], f[1]), &st); code != http.StatusOK {
			t.Logf("%s: status %d", f[1], code)
			continue
		}
		holderOf, _ := holder(fmt.Sprintf("partition-%d", journal.Partition(f[1], fleetParts)))
		t.Logf("%s (partition %d, held by gw-%d): its detector has evaluated %d readings, the last of %s; JetStream holds %d",
			f[1], journal.Partition(f[1], fleetParts), holderOf+1, st.Readings, st.LastReading.Format(time.RFC3339), readings[f[1]])
	}
	if len(diffs) > 0 && flagged > 0 {
		t.Logf("the gateways flagged %g readings as beyond the detector's history: stored, not evaluated", flagged)
	}
	twice := 0
	transitions := map[string]int{}
	read(journal.StreamAlerts, func(m journal.Msg) { transitions[m.ID]++ })
	for id, n := range transitions {
		if n > 1 {
			twice++
			t.Errorf("alert transition %s stored %d times", id, n)
		}
	}
	logf("alerts: %d in the ground truth, %d listed by the gateways; %d differences, %d decided late instead of on time; %d transitions, %d stored twice",
		len(truth.Alarms), len(got), len(diffs), lateOnly, len(transitions), twice)

	// One unbroken chain of epochs.
	_, number, cutBy := epochChain(t, js)
	// Whoever leads after the kill (another member, or the killed one
	// back before its lease expired) continues the same chain.
	if number <= killEpoch {
		t.Errorf("the last epoch is %d, and the killed leader had cut %d: the chain did not go on", number, killEpoch)
	}

	// Every shipment's bundle, with every reading, offline and on Hardhat.
	verified := 0
	for i, s := range truth.Shipments {
		var b *bundle.Bundle
		waitWithin(t, 3*time.Minute, s.ID+"'s anchored bundle with every reading", func() bool {
			resp, err := http.Get("http://" + addrs[i%3] + "/v1/shipments/" + s.ID + "/proof")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return false
			}
			if b, err = bundle.Decode(raw); err != nil {
				t.Fatalf("bundle of %s: %v", s.ID, err)
			}
			return b.TreeSize >= uint64(readings[s.ID])
		})
		if _, err := bundle.Verify(b); err != nil {
			t.Errorf("bundle of %s offline: %v", s.ID, err)
			continue
		}
		err = bundle.CheckAnchor(context.Background(), b, bundle.AnchorCheckerFunc(func(ctx context.Context, a bundle.Anchor, root merkle.Hash) error {
			return evm.VerifyAnchor(ctx, evmURL, anchor.Receipt{ChainID: a.ChainID, Contract: a.Contract, TxHash: a.Tx, Block: a.Block, BlockTime: a.BlockTime}, root)
		}))
		if err != nil {
			t.Errorf("bundle of %s on Hardhat: %v", s.ID, err)
			continue
		}
		verified++
	}
	logf("CLUSTER FLEET seed %d: %d shipments, %d distinct readings once in JetStream; alerts %d in the ground truth, %d differences, %d decided late; "+
		"bundles verified offline and on Hardhat %d of %d; epochs 1..%d in one chain, cut per gateway %v; gw-%d killed and restarted, nats-2 restarted",
		seed, len(truth.Shipments), stored, len(truth.Alarms), len(diffs), lateOnly, verified, len(truth.Shipments), number, cutBy, killed+1)
	for _, g := range gws {
		g.stop()
	}
}

// getJSONStatus decodes the JSON body of GET u into v and returns the
// status code (0 when the request failed).
func getJSONStatus(u string, v any) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(v) != nil {
		return 0
	}
	return resp.StatusCode
}
