package gateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

func clusterConfig(dir, member string, nodes []*natsserver.Server) config.Config {
	cfg := testConfig(dir)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	cfg.NATS.URL = strings.Join(urls, ",")
	cfg.NATS.Streams.Replicas = 3
	cfg.Cluster.Enabled, cfg.Cluster.Member, cfg.Cluster.LeaseTTL = true, member, 2*time.Second
	cfg.Anchor.Epoch = time.Second
	cfg.Cluster.LogSnapshots = time.Second
	return cfg
}

// startNodes starts a three-node JetStream cluster in this process,
// stopped when the test ends.
func startNodes(t *testing.T) []*natsserver.Server {
	t.Helper()
	nodes, err := natsserver.StartCluster(3, t.TempDir(), "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Shutdown()
		}
	})
	return nodes
}

// jetStreamOn connects to url for the test's own reads of the streams,
// closed when the test ends.
func jetStreamOn(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}

func clusterView(t *testing.T, gw *running) cluster.View {
	t.Helper()
	var v cluster.View
	if code := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/cluster", &v); code != 200 {
		t.Fatalf("GET /v1/cluster: %d", code)
	}
	return v
}

// holds reports whether gw's view has it holding every lease named.
func holds(v cluster.View, leases ...string) bool {
	for _, l := range v.Leases {
		if slices.Contains(leases, l.Lease) && !l.Held {
			return false
		}
	}
	return true
}

// TestClusterFailover runs two gateways in cluster mode on a three-node
// JetStream cluster in this process. Both ingest; the store writer and
// detector run on one, next to the anchorer, and a follower forwards the
// requests for their state. When the holder stops, the follower takes over
// both: it replays the step log into shipment logs of its own, serves the
// same proofs and continues the epoch chain, and the detector's alarms keep
// coming, none twice. When the first comes back and the second stops, the
// first takes both back, catching its stale logs up with the second's
// steps.
func TestClusterFailover(t *testing.T) {
	nodes := startNodes(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	cfgA, cfgB := clusterConfig(dirA, "gw-a", nodes), clusterConfig(dirB, "gw-b", nodes)
	logA := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named("gw-a")
	a := startGatewayLog(t, cfgA, logA)
	waitLong(t, "gw-a to hold both leases", func() bool { return holds(clusterView(t, a), "consumers", "anchor") })
	logB := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named("gw-b")
	b := startGatewayLog(t, cfgB, logB)

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Hour)
	sent := 0
	send := func(c paho.Client, ship, dev string, minute int, temp float64) {
		t.Helper()
		publish(t, c, "coldchain/v1/"+ship+"/"+dev+"/readings",
			fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, minute, t0.Add(time.Duration(minute)*time.Minute).Format(time.RFC3339), temp))
		sent++
	}
	// excursion sends an hour of readings, above 8 °C from minute 25: the
	// single-event alarm opens at minute 55.
	excursion := func(c paho.Client, ship, dev string) {
		t.Helper()
		for m := 0; m <= 60; m += 5 {
			temp := 5.0
			if m >= 25 {
				temp = 9
			}
			send(c, ship, dev, m, temp)
		}
	}
	// An excursion through gw-a's broker, in-range readings through
	// gw-b's: both members ingest.
	pubA, pubB := publisher(t, a.g.MQTTAddr(), "pub-a"), publisher(t, b.g.MQTTAddr(), "pub-b")
	excursion(pubA, "SHP-C1", "r1")
	for m := 0; m <= 60; m += 5 {
		send(pubB, "SHP-C1", "r2", m, 5)
	}
	pubA.Disconnect(100)

	// gw-b forwards the alert list to the detector's gateway.
	alertsOf := func(gw *running, ship string) []string {
		var list struct {
			Alerts []struct{ Rule, State string }
		}
		code := getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/"+ship+"/alerts", &list)
		if code != 200 && code != 404 {
			t.Fatalf("alerts of %s from %s: %d", ship, gw.g.cfg.Cluster.Member, code)
		}
		var out []string
		for _, a := range list.Alerts {
			out = append(out, a.Rule)
		}
		return out
	}
	waitLong(t, "the SHP-C1 alarm, read through gw-b", func() bool { return slices.Contains(alertsOf(b, "SHP-C1"), "single_event_high") })
	v := clusterView(t, b)
	if len(v.Members) != 2 || v.Member != "gw-b" {
		t.Fatalf("members %+v (asked %s)", v.Members, v.Member)
	}
	for _, l := range v.Leases {
		if l.Held || l.Holder != "gw-a" {
			t.Errorf("gw-b sees lease %+v, want held by gw-a", l)
		}
	}
	waitLong(t, "an epoch in the cluster", func() bool { return clusterView(t, a).Epoch != nil })
	var proofA bundle.Bundle
	waitLong(t, "the SHP-C1 proof, through gw-b", func() bool { return getJSON(t, "http://"+b.g.HTTPAddr()+"/v1/shipments/SHP-C1/proof", &proofA) == 200 })
	epochA := clusterView(t, a).Epoch

	const readingsRate = "coldchain_detector_readings_total"
	waitLong(t, "gw-a's detector to evaluate every reading", func() bool { return metricValue(t, a.g.HTTPAddr(), readingsRate) == float64(sent) })

	// gw-a stops: gw-b takes the anchorer, replaying the step log, and the
	// detector with it, from the snapshot gw-a left in the cluster's
	// bucket.
	a.stop()
	waitLong(t, "gw-b to hold both leases", func() bool { return holds(clusterView(t, b), "consumers", "anchor") })
	waitLong(t, "gw-b's detector to restore gw-a's snapshot", func() bool {
		return metricValue(t, b.g.HTTPAddr(), "coldchain_detector_snapshot_restored_seq") > 0
	})
	var proofB bundle.Bundle
	waitLong(t, "the SHP-C1 proof from gw-b's own logs", func() bool {
		return getJSON(t, "http://"+b.g.HTTPAddr()+"/v1/shipments/SHP-C1/proof", &proofB) == 200 && proofB.TreeSize >= proofA.TreeSize
	})
	if !slices.Equal(proofB.Records[:len(proofA.Records)], proofA.Records) {
		t.Fatal("gw-b's SHP-C1 log does not start with the records of gw-a's bundle")
	}
	if proofB.TreeSize == proofA.TreeSize && proofB.Root != proofA.Root {
		t.Fatalf("gw-b's SHP-C1 root %s differs from gw-a's %s at the same size", proofB.Root, proofA.Root)
	}
	// A second excursion, detected and anchored by gw-b.
	excursion(pubB, "SHP-C2", "r3")
	waitLong(t, "the SHP-C2 alarm on gw-b", func() bool { return slices.Contains(alertsOf(b, "SHP-C2"), "single_event_high") })
	// Had it replayed the readings gw-a had evaluated, they would be
	// counted first.
	if n := metricValue(t, b.g.HTTPAddr(), readingsRate); n != 13 {
		t.Errorf("gw-b's detector evaluated %v readings, want only SHP-C2's 13", n)
	}
	waitLong(t, "an epoch cut by gw-b", func() bool {
		e := clusterView(t, b).Epoch
		return e != nil && e.Number > epochA.Number && e.Member == "gw-b"
	})
	pubB.Disconnect(100) // before its broker stops

	// gw-a comes back and gw-b stops: gw-a takes both leases again,
	// catching its logs up with gw-b's steps, and detects a third
	// excursion. Its detector runs a second time in the same process.
	a = startGatewayLog(t, cfgA, logA)
	epochB := clusterView(t, b).Epoch.Number
	b.stop()
	waitLong(t, "gw-a to hold both leases again", func() bool { return holds(clusterView(t, a), "consumers", "anchor") })
	pubA = publisher(t, a.g.MQTTAddr(), "pub-a2")
	excursion(pubA, "SHP-C3", "r4")
	waitLong(t, "the SHP-C3 alarm on gw-a", func() bool { return slices.Contains(alertsOf(a, "SHP-C3"), "single_event_high") })
	waitLong(t, "an epoch cut by gw-a after gw-b's", func() bool {
		e := clusterView(t, a).Epoch
		return e != nil && e.Number > epochB && e.Member == "gw-a"
	})
	var proofC2 bundle.Bundle
	waitLong(t, "the SHP-C2 proof from gw-a's caught-up logs", func() bool {
		return getJSON(t, "http://"+a.g.HTTPAddr()+"/v1/shipments/SHP-C2/proof", &proofC2) == 200
	})
	if _, err := bundle.Verify(&proofC2); err != nil {
		t.Fatalf("SHP-C2 bundle from gw-a: %v", err)
	}
	pubA.Disconnect(100)
	defer a.stop()

	// Every reading once; every alert transition once.
	ids := streamIDs(t, nodes[0].ClientURL(), journal.StreamReadings)
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(ids)))); len(ids) != sent || distinct != sent {
		t.Errorf("the readings stream holds %d records, %d distinct; %d were sent", len(ids), distinct, sent)
	}
	// The alerts stream, read until it shows both alarms (a busy
	// replicated stream may answer a new reader late).
	js := jetStreamOn(t, nodes[0].ClientURL())
	var transitions []string
	var opened map[string]int
	waitLong(t, "the three alarms in the alerts stream", func() bool {
		transitions, opened = nil, map[string]int{}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := journal.ReadStream(ctx, js, journal.StreamAlerts, "", func(m journal.Msg) error {
			al, err := record.ParseAlert(m.Data)
			if err != nil {
				return err
			}
			transitions = append(transitions, m.ID)
			if al.Transition == "opened" {
				opened[al.Shipment+"/"+al.Rule]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return opened["SHP-C1/single_event_high"] > 0 && opened["SHP-C2/single_event_high"] > 0 && opened["SHP-C3/single_event_high"] > 0
	})
	// One unbroken chain of epochs, cut by both members.
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
		t.Fatal(err)
	}
	if cutBy["gw-a"] == 0 || cutBy["gw-b"] == 0 {
		t.Errorf("epochs cut per member: %v, want both", cutBy)
	}
	t.Logf("%d steps, epochs 1..%d, cut per member %v", len(all), number, cutBy)
	slices.Sort(transitions)
	if d := len(transitions) - len(slices.Compact(slices.Clone(transitions))); d != 0 {
		t.Errorf("%d alert transitions stored twice", d)
	}
	for _, k := range []string{"SHP-C1/single_event_high", "SHP-C2/single_event_high", "SHP-C3/single_event_high"} {
		if opened[k] != 1 {
			t.Errorf("%s opened %d times, want 1", k, opened[k])
		}
	}

	// gw-c joins with no data dir: it starts its logs from gw-a's last
	// snapshot of them, not from the first step, and takes anchoring
	// over from there when gw-a stops.
	const snapshotStep = "coldchain_anchor_log_snapshot_step"
	waitLong(t, "a shipment-log snapshot by gw-a", func() bool {
		return metricValue(t, a.g.HTTPAddr(), snapshotStep+`{snapshot="stored"}`) > 0
	})
	c := startGatewayLog(t, clusterConfig(t.TempDir(), "gw-c", nodes), zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named("gw-c"))
	defer c.stop()
	if n := metricValue(t, c.g.HTTPAddr(), snapshotStep+`{snapshot="restored"}`); n == 0 {
		t.Fatal("gw-c did not restore the shipment-log snapshot")
	}
	a.stop()
	waitLong(t, "gw-c to hold both leases", func() bool { return holds(clusterView(t, c), "consumers", "anchor") })
	var proofC3 bundle.Bundle
	waitLong(t, "the SHP-C3 proof from gw-c's restored logs", func() bool {
		return getJSON(t, "http://"+c.g.HTTPAddr()+"/v1/shipments/SHP-C3/proof", &proofC3) == 200
	})
	if _, err := bundle.Verify(&proofC3); err != nil {
		t.Fatalf("SHP-C3 bundle from gw-c: %v", err)
	}
}

// waitLong is waitFor with a minute: three JetStream nodes, two gateways
// and two chains share this machine's cores, and a takeover recreates
// replicated consumers.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterPartitions runs three gateways with cluster.partitions 4 on
// a three-node JetStream cluster in this process. Each gateway's embedded
// store holds only what its own store writer wrote, which makes the split
// visible: the partitions are spread over the members, every shipment's
// readings are written by the holder of its partition and by no other,
// each reading once, and evaluated by that holder's detector; any member
// answers for any shipment's alerts and takes any alert's
// acknowledgement. When a member stops, its partitions move to the
// others, whose detectors continue from its snapshots: an alarm it opened
// is cleared by its successor, and nothing is published twice.
func TestClusterPartitions(t *testing.T) {
	nodes := startNodes(t)
	const parts = 4
	var ships []string
	inPart := map[int]int{}
	for i := 1; i <= 8; i++ {
		s := fmt.Sprintf("SHP-P%02d", i)
		ships = append(ships, s)
		inPart[journal.Partition(s, parts)]++
	}
	if len(inPart) != parts {
		t.Fatalf("the test's shipments fall in %d of %d partitions: %v", len(inPart), parts, inPart)
	}
	gws := map[string]*running{}
	for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
		cfg := clusterConfig(t.TempDir(), name, nodes)
		cfg.Cluster.Partitions = parts
		cfg.Alerts.SnapshotEvery = time.Second
		gws[name] = startGatewayLog(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name))
	}
	stopped := map[string]bool{}
	defer func() {
		for name, gw := range gws {
			if !stopped[name] {
				gw.stop()
			}
		}
	}()
	// held returns the partitions each of the named gateways holds by its
	// own view; settled reports whether they hold every partition between
	// them, none twice, each ⌊4÷n⌋ or ⌈4÷n⌉.
	held := func(names ...string) map[string][]int {
		out := map[string][]int{}
		for _, n := range names {
			for _, l := range clusterView(t, gws[n]).Leases {
				var p int
				if _, err := fmt.Sscanf(l.Lease, "partition-%d", &p); err == nil && l.Held {
					out[n] = append(out[n], p)
				}
			}
		}
		return out
	}
	settled := func(names ...string) (map[string][]int, bool) {
		h := held(names...)
		seen := map[int]bool{}
		for _, n := range names {
			if k := len(h[n]); k < parts/len(names) || k > (parts+len(names)-1)/len(names) {
				return h, false
			}
			for _, p := range h[n] {
				if seen[p] {
					return h, false
				}
				seen[p] = true
			}
		}
		return h, len(seen) == parts
	}
	// stable waits until the placement is settled and has stayed the same
	// for a second: a member that joined a moment ago may still be seen
	// by the others with fewer partitions than it holds.
	stable := func(what string, names ...string) map[string][]int {
		t.Helper()
		var last string
		var since time.Time
		var pl map[string][]int
		waitLong(t, what, func() bool {
			var ok bool
			pl, ok = settled(names...)
			if cur := fmt.Sprint(pl); !ok || cur != last {
				last, since = cur, time.Now()
				return false
			}
			return time.Since(since) >= time.Second
		})
		return pl
	}
	placement := stable("the partitions spread over three members", "gw-a", "gw-b", "gw-c")
	t.Logf("partitions held: %v", placement)
	holderOf := func(ship string) string {
		for name, ps := range placement {
			if slices.Contains(ps, journal.Partition(ship, parts)) {
				return name
			}
		}
		return ""
	}

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Hour)
	sent := 0
	// round sends an hour of readings every 5 minutes from minute from to
	// every shipment; hot shipments are at 9 °C from 25 minutes in (the
	// single-event alarm opens 30 minutes later), the others at 5 °C.
	round := func(pub paho.Client, from int, hot func(i int) bool) {
		for i, s := range ships {
			for m := from; m <= from+60; m += 5 {
				temp := 5.0
				if hot(i) && m >= from+25 {
					temp = 9
				}
				publish(t, pub, "coldchain/v1/"+s+"/d-"+s+"/readings",
					fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, m, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339), temp))
				sent++
			}
		}
	}
	const points = `coldchain_store_points_total{kind="reading"}`
	const evaluated = "coldchain_detector_readings_total"
	sum := func(metric string, names ...string) (n float64) {
		for _, name := range names {
			n += metricValue(t, gws[name].g.HTTPAddr(), metric)
		}
		return n
	}
	// stored returns the shipments a gateway's own store holds.
	stored := func(name string) []string {
		var list struct{ Shipments []struct{ ID string } }
		if code := getJSON(t, "http://"+gws[name].g.HTTPAddr()+"/v1/shipments", &list); code != 200 {
			t.Fatalf("GET /v1/shipments on %s: %d", name, code)
		}
		var out []string
		for _, s := range list.Shipments {
			out = append(out, s.ID)
		}
		return out
	}
	type alertJSON struct{ ID, Rule, State string }
	alertsOf := func(gw, ship string) []alertJSON {
		var list struct{ Alerts []alertJSON }
		if code := getJSON(t, "http://"+gws[gw].g.HTTPAddr()+"/v1/shipments/"+ship+"/alerts", &list); code != 200 && code != 404 {
			t.Fatalf("alerts of %s through %s: %d", ship, gw, code)
		}
		return list.Alerts
	}
	alarm := func(gw, ship, state string) (alertJSON, bool) {
		for _, a := range alertsOf(gw, ship) {
			if a.Rule == "single_event_high" && a.State == state {
				return a, true
			}
		}
		return alertJSON{}, false
	}

	// Round 1: the odd shipments (SHP-P01, -P03, …) have an excursion.
	odd := func(i int) bool { return i%2 == 0 }
	pub := publisher(t, gws["gw-a"].g.MQTTAddr(), "pub-parts")
	round(pub, 0, odd)
	pub.Disconnect(100)
	want := float64(sent)
	all := []string{"gw-a", "gw-b", "gw-c"}
	var lastP, lastE float64 = -1, -1
	waitLong(t, "every reading in the stores and evaluated", func() bool {
		p, e := sum(points, all...), sum(evaluated, all...)
		if p != lastP || e != lastE {
			t.Logf("%v readings sent: %v written, %v evaluated", want, p, e)
			lastP, lastE = p, e
		}
		return p >= want && e >= want
	})
	if n := sum(points, all...); n != want {
		t.Fatalf("the three store writers wrote %v readings, want %v: each once", n, want)
	}
	if n := sum(evaluated, all...); n != want {
		t.Fatalf("the three detectors evaluated %v readings, want %v: each once", n, want)
	}
	if now, _ := settled(all...); fmt.Sprint(now) != fmt.Sprint(placement) {
		t.Fatalf("the partitions moved in a settled cluster: %v, then %v", placement, now)
	}
	for name, ps := range placement {
		for _, s := range stored(name) {
			if !slices.Contains(ps, journal.Partition(s, parts)) {
				t.Errorf("%s stored %s, of partition %d, but holds %v", name, s, journal.Partition(s, parts), ps)
			}
		}
		if len(stored(name)) == 0 {
			t.Errorf("%s holds partitions %v but stored no shipment", name, ps)
		}
	}
	// Each shipment's alarm, asked through a member that does not hold
	// its partition: forwarded to the one that does.
	var acked string
	for i, s := range ships {
		other := all[(slices.Index(all, holderOf(s))+1)%3]
		if !odd(i) {
			if a, ok := alarm(other, s, "open"); ok {
				t.Errorf("%s: an alarm %s without an excursion", s, a.ID)
			}
			continue
		}
		var a alertJSON
		waitLong(t, s+"'s alarm through "+other, func() (ok bool) { a, ok = alarm(other, s, "open"); return ok })
		if acked == "" {
			// Acknowledged through a member that knows nothing of it.
			acked = a.ID
			body := strings.NewReader(`{"by":"qa@shipper","comment":"seen"}`)
			resp, err := http.Post("http://"+gws[other].g.HTTPAddr()+"/v1/alerts/"+a.ID+"/ack", "application/json", body)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("ack of %s (%s, held by %s) through %s: %d", a.ID, s, holderOf(s), other, resp.StatusCode)
			}
		}
	}
	resp, err := http.Post("http://"+gws["gw-a"].g.HTTPAddr()+"/v1/alerts/00000000000000000000000000000000/ack", "application/json", strings.NewReader(`{"by":"qa"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("ack of an alert no member has: %d, want 404", resp.StatusCode)
	}

	// The holder of SHP-P01's partition stops: its partitions move to the
	// other two, whose detectors start from its snapshots. Round 2: the
	// odd shipments are back in range (their alarms clear, SHP-P01's by
	// the successor), the even ones have an excursion.
	victim := holderOf(ships[0])
	var left []string
	for _, n := range all {
		if n != victim {
			left = append(left, n)
		}
	}
	gws[victim].stop()
	stopped[victim] = true
	placement = stable("the partitions spread over the two left", left...)
	t.Logf("%s stopped; partitions held: %v", victim, placement)
	beforePoints, beforeEvaluated := sum(points, left...), sum(evaluated, left...)
	pub = publisher(t, gws[left[0]].g.MQTTAddr(), "pub-parts-2")
	round(pub, 65, func(i int) bool { return !odd(i) })
	pub.Disconnect(100)
	want2 := float64(sent) - want
	waitLong(t, "the second round in the stores and detectors left", func() bool {
		return sum(points, left...)-beforePoints >= want2 && sum(evaluated, left...)-beforeEvaluated >= want2
	})
	if n := sum(points, left...) - beforePoints; n != want2 {
		t.Errorf("%v wrote %v readings of the second round, want %v", left, n, want2)
	}
	if n := sum(evaluated, left...) - beforeEvaluated; n != want2 {
		t.Errorf("%v evaluated %v readings of the second round, want %v (only those: %s's snapshots)", left, n, want2, victim)
	}
	for i, s := range ships {
		state := "open"
		if odd(i) {
			state = "cleared"
		}
		waitLong(t, s+"'s alarm "+state, func() bool { _, ok := alarm(left[0], s, state); return ok })
	}

	// The alerts stream: each alarm opened once, no transition twice, the
	// acknowledgement once.
	js := jetStreamOn(t, nodes[0].ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var opened, events map[string]int
	var acks int
	// Read until the stream shows every alarm and the acknowledgement: a
	// replicated stream may answer a new reader with an end it has not
	// caught up to.
	waitLong(t, "every alarm in the alerts stream", func() bool {
		opened, events, acks = map[string]int{}, map[string]int{}, 0
		if err := journal.ReadStream(ctx, js, journal.StreamAlerts, "", func(m journal.Msg) error {
			a, err := record.ParseAlert(m.Data)
			if err != nil {
				return err
			}
			events[m.ID]++
			switch {
			case a.Rule == "single_event_high" && a.Transition == "opened":
				opened[a.Shipment]++
			case a.Transition == "acknowledged" && a.ID == acked:
				acks++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return len(opened) == len(ships) && acks >= 1
	})
	for _, s := range ships {
		if opened[s] != 1 {
			t.Errorf("%s: single_event_high opened %d times, want 1", s, opened[s])
		}
	}
	for id, n := range events {
		if n != 1 {
			t.Errorf("alert event %s stored %d times", id, n)
		}
	}
	if acks != 1 {
		t.Errorf("the acknowledgement of %s stored %d times, want 1", acked, acks)
	}
	// Every reading once in the stream, under its partition's subject.
	ids := map[string]int{}
	if err := journal.ReadStream(ctx, js, journal.StreamReadings, "", func(m journal.Msg) error {
		ids[m.ID]++
		r, err := record.ParseReading(m.Data)
		if err != nil {
			return err
		}
		if want := journal.SubjectReadingIn(r.Shipment, r.Device, parts); m.Subject != want {
			t.Errorf("%s stored under %s, want %s", m.ID, m.Subject, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if len(ids) != sent {
		t.Errorf("the readings stream holds %d distinct readings; %d were sent", len(ids), sent)
	}
}

// TestClusterPartitionsTurnedOn: a cluster that ran without partitions is
// stopped, given four (coldchain cluster partitions --set) and started
// again. The partition detectors start from the whole detector's last
// snapshot, so an excursion running across the change still opens its
// alarm on time, once.
func TestClusterPartitionsTurnedOn(t *testing.T) {
	nodes := startNodes(t)
	dir := t.TempDir()
	cfg := clusterConfig(dir, "gw-a", nodes)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("gw-a")
	gw := startGatewayLog(t, cfg, log)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Hour)
	send := func(pub paho.Client, from, to int) {
		for m := from; m <= to; m += 5 {
			temp := 5.0
			if m >= 25 {
				temp = 9 // the single-event alarm opens 30 minutes later, at 55
			}
			publish(t, pub, "coldchain/v1/SHP-T1/d-T1/readings",
				fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, m, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339), temp))
		}
	}
	pub := publisher(t, gw.g.MQTTAddr(), "pub-t1")
	send(pub, 0, 40)
	pub.Disconnect(100)
	waitLong(t, "the detector to evaluate minutes 0-40", func() bool {
		return metricValue(t, gw.g.HTTPAddr(), "coldchain_detector_readings_total") == 9
	})
	// And to publish what they opened: a detector stopped with a
	// transition unpublished keeps no snapshot (the next start replays).
	waitLong(t, "the pre-alarm published", func() bool {
		var list struct {
			Alerts []struct{ Rule, State string }
		}
		getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-T1/alerts", &list)
		for _, a := range list.Alerts {
			if a.Rule == "pre_alarm_high" && a.State == "open" {
				return true
			}
		}
		return false
	})
	gw.stop()

	js := jetStreamOn(t, nodes[0].ClientURL())
	state, err := cluster.OpenState(context.Background(), js, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.SetPartitions(context.Background(), 4, "test"); err != nil {
		t.Fatal(err)
	}
	cfg.Cluster.Partitions = 4
	gw = startGatewayLog(t, cfg, log)
	defer gw.stop()
	pub = publisher(t, gw.g.MQTTAddr(), "pub-t1b")
	send(pub, 45, 60)
	pub.Disconnect(100)
	var alerts struct {
		Alerts []struct{ Rule, State string }
	}
	waitLong(t, "the alarm of the excursion that began before partitions", func() bool {
		getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-T1/alerts", &alerts)
		for _, a := range alerts.Alerts {
			if a.Rule == "single_event_high" && a.State == "open" {
				return true
			}
		}
		return false
	})
	// Read until the stream shows it: a replicated stream may answer a
	// new reader with an end it has not caught up to.
	opened := 0
	waitLong(t, "the alarm in the alerts stream", func() bool {
		opened = 0
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := journal.ReadStream(ctx, js, journal.StreamAlerts, "", func(m journal.Msg) error {
			a, err := record.ParseAlert(m.Data)
			if err == nil && a.Rule == "single_event_high" && a.Transition == "opened" {
				opened++
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return opened >= 1
	})
	if opened != 1 {
		t.Fatalf("single_event_high opened %d times, want 1", opened)
	}
}

// TestPartitionFollowsForeignTransitions: a transition of one of its
// shipments that another member stores after this partition's detector
// loaded its views (an acknowledgement the previous holder took as it
// handed the partition over) reaches the views at once, not at the next
// start.
func TestPartitionFollowsForeignTransitions(t *testing.T) {
	nodes := startNodes(t)
	cfg := clusterConfig(t.TempDir(), "gw-a", nodes)
	cfg.Cluster.Partitions = 2
	gw := startGatewayLog(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("gw-a"))
	defer gw.stop()
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Hour)
	pub := publisher(t, gw.g.MQTTAddr(), "pub-f")
	for m := 0; m <= 60; m += 5 {
		temp := 5.0
		if m >= 25 {
			temp = 9
		}
		publish(t, pub, "coldchain/v1/SHP-F1/d-F1/readings",
			fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, m, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339), temp))
	}
	pub.Disconnect(100)
	type view struct {
		ID, Rule, State string
		Acknowledged    bool
	}
	alarm := func() (view, bool) {
		var list struct{ Alerts []view }
		getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/shipments/SHP-F1/alerts", &list)
		for _, a := range list.Alerts {
			if a.Rule == "single_event_high" && a.State == "open" {
				return a, true
			}
		}
		return view{}, false
	}
	var a view
	waitLong(t, "the alarm", func() (ok bool) { a, ok = alarm(); return ok })
	if a.Acknowledged {
		t.Fatal("acknowledged before anyone did")
	}
	// Another member's acknowledgement, stored straight into the alerts
	// stream as its detector would.
	ack := record.Alert{ID: a.ID, Shipment: "SHP-F1", Device: "d-F1", Rule: "single_event_high", Severity: "alarm",
		Transition: "acknowledged", Start: t0.Add(25 * time.Minute), At: time.Now().UTC(), Readings: []string{}, By: "gw-b", Comment: "seen"}
	js := jetStreamOn(t, nodes[0].ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: journal.SubjectAlert("SHP-F1"), Data: ack.AppendCanonical(nil),
		Header: nats.Header{jetstream.MsgIDHeader: []string{ack.EventID()}}}); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "the acknowledgement in the views", func() bool { a, _ := alarm(); return a.Acknowledged })
}
