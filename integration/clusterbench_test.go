//go:build integration && clusterbench

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestClusterBench is `make bench-cluster`: the same MQTT load through the
// real Mosquitto into 1, 2 and 3 gateways in cluster mode on the real
// three-node nats-server cluster (InfluxDB store, detector and anchorer
// on), printing readings/s until every reading is in JetStream and until
// the store writer and detector have caught up, and the CPU each reading
// cost the gateways and the NATS nodes. It is a benchmark, not a test of
// speed: it fails only if readings are lost.
func TestClusterBench(t *testing.T) {
	urls := need(t, "COLDCHAIN_TEST_NATS_CLUSTER_URLS")
	peersDir := need(t, "COLDCHAIN_TEST_PEERS_DIR")
	readings := 20000
	if v := os.Getenv("COLDCHAIN_BENCH_READINGS"); v != "" {
		readings, _ = strconv.Atoi(v)
	}
	// COLDCHAIN_BENCH_PARTITIONS splits the store writer's readings over
	// the gateways (cluster.partitions; 0, the default: one writes all).
	partitions := 0
	if v := os.Getenv("COLDCHAIN_BENCH_PARTITIONS"); v != "" {
		partitions, _ = strconv.Atoi(v)
	}
	const devices, publishers = 100, 4
	natsPIDs := make([]int, 3)
	for i := range natsPIDs {
		b, err := os.ReadFile(filepath.Join(peersDir, fmt.Sprintf("nats-%d", i+1), fmt.Sprintf("nats-%d.pid", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		natsPIDs[i], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	type result struct {
		n                        int
		ingest, caughtUp, logged float64 // readings/s
		gatewayCPU, natsCPU, sum float64 // CPU µs per reading
		conflicts                float64 // appends decided again, per reading
	}
	var results []result
	for n := 1; n <= 3; n++ {
		run := fmt.Sprintf("B%d-%d", n, time.Now().UnixNano()%1_000_000)
		resetSteps(t, urls)
		setPartitions(t, urls, partitions)
		gws := make([]*gatewayProc, n)
		addrs := make([]string, n)
		for i := range gws {
			addrs[i] = freePort(t)
			env := clusterEnv(t, i+1, addrs[i], urls)
			// A group and sessions of this run only: Mosquitto queues a
			// share for every subscribed session, live or not.
			env = append(env, "COLDCHAIN_MQTT_SHARED_GROUP=bench-"+run, fmt.Sprintf("COLDCHAIN_MQTT_CLIENT_ID=bench-%s-%d", run, i+1),
				"COLDCHAIN_LOG_LEVEL=warn", fmt.Sprintf("COLDCHAIN_CLUSTER_PARTITIONS=%d", partitions))
			if os.Getenv("COLDCHAIN_BENCH_LOG_DIR") != "" {
				env = append(env, "COLDCHAIN_LOG_LEVEL=info")
			}
			gws[i] = startProc(t, env, addrs[i])
		}
		// Publishers connect before the clock starts: Mosquitto can take
		// seconds to accept them right after the previous run's sessions
		// went, and that is not the gateways' rate.
		connectStart := time.Now()
		pubs := make([]paho.Client, publishers)
		for p := range pubs {
			pubs[p] = paho.NewClient(paho.NewClientOptions().AddBroker(need(t, "COLDCHAIN_TEST_MQTT_URL")).
				SetClientID(fmt.Sprintf("%s-pub-%d", run, p)).SetCleanSession(true).SetOrderMatters(false).SetAutoReconnect(false))
			if tok := pubs[p].Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("publisher %d: connect: %v", p, tok.Error())
			}
		}
		if d := time.Since(connectStart); d > time.Second {
			t.Logf("%d gateways: the publishers took %v to connect to Mosquitto (not counted)", n, d.Round(time.Millisecond))
		}
		cpu0 := cpuOf(t, gws, natsPIDs)
		start := time.Now()
		var wg sync.WaitGroup
		perPub := readings / publishers
		for p := range publishers {
			wg.Go(func() {
				c := pubs[p]
				defer c.Disconnect(100)
				t0 := time.Now().UTC().Add(-48 * time.Hour)
				var toks []paho.Token
				for k := range perPub {
					dev := p*devices/publishers + k%(devices/publishers)
					seq := k / (devices / publishers)
					topic := fmt.Sprintf("coldchain/v1/%s-S%03d/%s-D%03d/readings", run, dev, run, dev)
					toks = append(toks, c.Publish(topic, 1, false, fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":5}`, seq,
						t0.Add(time.Duration(seq)*time.Second).Format(time.RFC3339))))
				}
				for _, tok := range toks {
					if !tok.WaitTimeout(5*time.Minute) || tok.Error() != nil {
						t.Error("publish:", tok.Error())
						return
					}
				}
			})
		}
		wg.Wait()
		accepted := func() int {
			sum := 0
			for _, a := range addrs {
				sum += int(metricOf(t, a, `coldchain_ingest_accepted_total{kind="reading"}`))
			}
			return sum
		}
		waitWithin(t, 10*time.Minute, "every reading in JetStream", func() bool { return accepted() >= readings })
		ingestDone := time.Since(start)
		waitWithin(t, 10*time.Minute, "the store writer and detector to catch up", func() bool {
			v, ok := viewOf(addrs[0])
			if !ok || v.Lag == nil || v.Lag["coldchain-detector"]["reading"] != 0 || len(v.LagUnknown) > 0 {
				return false
			}
			for c, lag := range v.Lag {
				if (strings.HasPrefix(c, "coldchain-store") || strings.HasPrefix(c, "coldchain-detector")) && lag["reading"] != 0 {
					return false
				}
			}
			return true
		})
		caught := time.Since(start)
		cpu1 := cpuOf(t, gws, natsPIDs)
		// The shipment logs (each batch a step in the R3 step log) after.
		waitWithin(t, 10*time.Minute, "the shipment logs to catch up", func() bool {
			v, ok := viewOf(addrs[0])
			return ok && v.Lag != nil && v.Lag["coldchain-anchor"]["reading"] == 0
		})
		logged := time.Since(start)
		if got := accepted(); got != readings {
			t.Errorf("%d gateways: %d readings accepted, %d sent", n, got, readings)
		}
		conflicts := 0.0
		for _, a := range addrs {
			conflicts += metricOf(t, a, "coldchain_journal_append_conflicts_total")
		}
		r := result{n: n, ingest: float64(readings) / ingestDone.Seconds(), caughtUp: float64(readings) / caught.Seconds(),
			logged:     float64(readings) / logged.Seconds(),
			gatewayCPU: (cpu1[0] - cpu0[0]) / float64(readings) * 1e6, natsCPU: (cpu1[1] - cpu0[1]) / float64(readings) * 1e6}
		r.sum = r.gatewayCPU + r.natsCPU
		r.conflicts = conflicts / float64(readings)
		results = append(results, r)
		for i, g := range gws {
			g.stop()
			// COLDCHAIN_BENCH_LOG_DIR keeps each gateway's log, to see what
			// a slow run spent its time on.
			if d := os.Getenv("COLDCHAIN_BENCH_LOG_DIR"); d != "" {
				name := filepath.Join(d, fmt.Sprintf("%s-gw-%d.log", run, i+1))
				if err := os.WriteFile(name, g.log.Bytes(), 0o644); err != nil {
					t.Error(err)
				}
			}
		}
		// Drop this run's sessions so they queue nothing more.
		for i := range gws {
			c := paho.NewClient(paho.NewClientOptions().AddBroker(need(t, "COLDCHAIN_TEST_MQTT_URL")).
				SetClientID(fmt.Sprintf("bench-%s-%d", run, i+1)).SetCleanSession(true))
			if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				c.Disconnect(100)
			}
		}
	}
	fmt.Printf("\ncluster mode, %d single-reading QoS 1 messages from %d publishers, %d devices, %d partitions; 3 nats-server nodes (R3), Mosquitto, InfluxDB, Hardhat on this machine\n", readings, publishers, devices, partitions)
	fmt.Printf("%-9s %16s %20s %18s %18s %15s %14s %16s\n", "gateways", "ingest r/s", "caught up r/s", "logs caught up r/s", "gateway CPU µs/r", "NATS CPU µs/r", "total µs/r", "conflicts/r")
	for _, r := range results {
		fmt.Printf("%-9d %16.0f %20.0f %18.0f %18.1f %15.1f %14.1f %16.3f\n", r.n, r.ingest, r.caughtUp, r.logged, r.gatewayCPU, r.natsCPU, r.sum, r.conflicts)
	}
}

// cpuOf returns the CPU seconds (user + system) used so far by the
// gateways and by the NATS nodes.
func cpuOf(t *testing.T, gws []*gatewayProc, nats []int) [2]float64 {
	t.Helper()
	var out [2]float64
	for _, g := range gws {
		out[0] += procCPU(t, g.cmd.Process.Pid)
	}
	for _, pid := range nats {
		out[1] += procCPU(t, pid)
	}
	return out
}

// procCPU reads utime + stime of pid from /proc, in seconds (USER_HZ 100).
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}
