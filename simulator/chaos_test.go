//go:build integration && chaos

package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rpc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
)

// TestChaos is `make chaos` (issue 14): the simulated fleet, with every
// scenario twice and normal shipments, published through the real
// Mosquitto into a gateway (a child process) with the real nats-server,
// InfluxDB as the store and Hardhat as the chain, while a seeded schedule
// injects faults: kill -9 of the gateway at five points, a restart of
// nats-server, InfluxDB down and the chain's RPC cut (both for
// COLDCHAIN_CHAOS_OUTAGE, 2 min by default), and a restart of Mosquitto
// once the fleet has sent everything. At the end it checks, and prints:
// readings acknowledged vs stored (by JetStream and by InfluxDB itself),
// alerts vs the ground truth (missing, doubled, different), every
// shipment's bundle offline and on chain, anchors final, and dead letters
// against the invalid inputs.
//
// COLDCHAIN_CHAOS_SEED (1), COLDCHAIN_CHAOS_READINGS (500000),
// COLDCHAIN_CHAOS_WALL (3m: how long the fleet publishes) and
// COLDCHAIN_CHAOS_OUTAGE (2m) size it.
func TestChaos(t *testing.T) {
	mqttURL, natsURL := needEnv(t, "COLDCHAIN_TEST_MQTT_URL"), needEnv(t, "COLDCHAIN_TEST_NATS_URL")
	influxURL, bucket := needEnv(t, "COLDCHAIN_TEST_INFLUX_URL"), needEnv(t, "COLDCHAIN_TEST_INFLUX_BUCKET")
	evmURL, evmKey := needEnv(t, "COLDCHAIN_TEST_EVM_RPC_URL"), needEnv(t, "COLDCHAIN_TEST_EVM_KEY")
	seed := envInt(t, "COLDCHAIN_CHAOS_SEED", 1)
	target := envInt(t, "COLDCHAIN_CHAOS_READINGS", 500_000)
	wall := envDur(t, "COLDCHAIN_CHAOS_WALL", 3*time.Minute)
	outage := envDur(t, "COLDCHAIN_CHAOS_OUTAGE", 2*time.Minute)
	rng := rand.New(rand.NewPCG(uint64(seed), 14))
	dir := t.TempDir()
	t0 := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("%6.1fs  %s", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}

	// Whatever happens, leave the peers running for the next test.
	t.Cleanup(func() { peerCmd(t, "start", "mosquitto", "nats", "influxdb") })

	bin := filepath.Join(dir, "coldchain")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/coldchain").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	chain := startProxy(t, strings.TrimPrefix(evmURL, "http://"))
	httpAddr := freeTCP(t)
	base := "http://" + httpAddr
	run := strconv.FormatInt(time.Now().Unix(), 36)
	env := append(os.Environ(),
		"COLDCHAIN_DATA_DIR="+filepath.Join(dir, "gateway"),
		"COLDCHAIN_HTTP_LISTEN="+httpAddr,
		"COLDCHAIN_HTTP_ALLOW_ANONYMOUS=true",
		"COLDCHAIN_MQTT_URL="+mqttURL,
		"COLDCHAIN_MQTT_CLIENT_ID=coldchain-chaos-"+run,
		"COLDCHAIN_NATS_URL="+natsURL,
		"COLDCHAIN_STORE_KIND=influx",
		"COLDCHAIN_STORE_INFLUX_URL="+influxURL,
		"COLDCHAIN_STORE_INFLUX_ORG=coldchain",
		"COLDCHAIN_STORE_INFLUX_BUCKET="+bucket,
		"COLDCHAIN_STORE_MAX_BACKOFF=2s",
		"COLDCHAIN_CHAIN_KIND=rpc",
		"COLDCHAIN_CHAIN_RPC_URL=http://"+chain.addr,
		"COLDCHAIN_CHAIN_KEY="+evmKey,
		"COLDCHAIN_ANCHOR_EPOCH=20s",
		"COLDCHAIN_DEVICES_UNKNOWN=accept",
		"COLDCHAIN_LOG_LEVEL=warn",
	)
	gw := startGatewayProc(t, bin, env, base)
	defer func() { gw.kill() }()

	// Hardhat mines a block per transaction; a live chain grows anyway.
	mineCtx, stopMining := context.WithCancel(context.Background())
	defer stopMining()
	go mine(mineCtx, evmURL)

	// The fleet: every scenario twice, each on a shipment of its own, and
	// two normal shipments, over six days of device time (every scenario
	// runs its course, as in TestDetectorAcceptance); the readings' spacing
	// gives the number asked for, between 30 s and the profile's 5 min.
	sc := DefaultConfig()
	sc.Seed, sc.Devices, sc.Transport = int64(seed), 3, TransportMQTT
	sc.Scenarios = append(Scenarios(), Scenarios()...)
	sc.Shipments = len(sc.Scenarios) + 2
	sc.Span = 6 * 24 * time.Hour
	sc.Interval = min(5*time.Minute, max(30*time.Second, sc.Span*time.Duration(sc.Shipments*sc.Devices)/time.Duration(target))).Truncate(time.Second)
	sc.Start = time.Now().UTC().Truncate(time.Second).Add(-sc.Span)
	g, err := NewGenerator(sc)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(g, DefaultProfile())
	stats := &Stats{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := DialMQTT(ctx, MQTTConfig{URL: mqttURL, ClientID: "chaos-" + run, Connections: 8, InFlight: 1024, AckTimeout: time.Minute}, stats)
	if err != nil {
		t.Fatal(err)
	}
	dlBefore := streamCount(t, natsURL, journal.StreamDeadLetters)
	simDone := make(chan error, 1)
	var rep Report
	go func() {
		var err error
		rep, err = Run(ctx, g, pub, rec, stats, RunConfig{Accelerate: float64(sc.Span) / float64(wall), Tick: 50 * time.Millisecond, FlushTimeout: 2 * time.Minute}, time.Now)
		pub.Close()
		simDone <- err
	}()
	logf("fleet: %d shipments × %d devices, a reading every %v for %v of device time, in %v (seed %d)", sc.Shipments, sc.Devices, sc.Interval, sc.Span, wall, seed)

	// The schedule, seeded: five kill -9 spread over the run, nats-server
	// restarted once, InfluxDB down and the chain cut for the outage.
	type fault struct {
		at   time.Duration
		name string
		do   func()
	}
	var faults []fault
	for i := range 5 {
		at := wall/10 + time.Duration(i)*wall*16/100 + time.Duration(rng.Int64N(int64(wall/20)))
		faults = append(faults, fault{at, "kill -9 of the gateway, restarted after 1 s", func() {
			gw.kill()
			time.Sleep(time.Second)
			gw = startGatewayProc(t, bin, env, "")
		}})
	}
	faults = append(faults,
		fault{wall/5 + time.Duration(rng.Int64N(int64(wall/10))), "InfluxDB stopped for the outage", func() {
			peerCmd(t, "stop", "influxdb")
			time.AfterFunc(outage, func() { peerCmd(t, "start", "influxdb"); logf("InfluxDB started again") })
		}},
		fault{wall/3 + time.Duration(rng.Int64N(int64(wall/10))), "chain RPC cut for the outage", func() {
			chain.cut(true)
			time.AfterFunc(outage, func() { chain.cut(false); logf("chain RPC back") })
		}},
		fault{wall/2 + time.Duration(rng.Int64N(int64(wall/10))), "nats-server restarted (down 5 s)", func() {
			peerCmd(t, "stop", "nats")
			time.Sleep(5 * time.Second)
			peerCmd(t, "start", "nats")
		}},
	)
	slices.SortFunc(faults, func(a, b fault) int { return int(a.at - b.at) })
	for _, f := range faults {
		if d := f.at - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
		logf("fault: %s", f.name)
		f.do()
	}
	if err := <-simDone; err != nil {
		t.Fatalf("fleet: %v", err)
	}
	truth := rec.Truth()
	logf("fleet done: %d messages, %d acknowledged by Mosquitto, %d errors; %d distinct readings, %d handovers, %d rejected, %d alarms in the ground truth",
		stats.Messages.Load(), rep.Acked, rep.Errors, truth.Counts.DistinctReadings, truth.Counts.Handovers, truth.Counts.Rejected, len(truth.Alarms))
	if rep.Errors != 0 || rep.Acked != stats.Messages.Load() {
		t.Fatalf("the fleet's report: %+v (last error %q)", rep, rep.LastError)
	}
	// Mosquitto restarted while the gateway still drains its queue: the
	// persistent session and its queued messages survive.
	logf("fault: Mosquitto restarted")
	peerCmd(t, "stop", "mosquitto")
	time.Sleep(2 * time.Second)
	peerCmd(t, "start", "mosquitto")

	// Wait for everything: stored, evaluated, written to InfluxDB,
	// logged, anchored and final.
	ships := make([]string, len(truth.Shipments))
	for i, s := range truth.Shipments {
		ships[i] = s.ID
	}
	ours := map[string]bool{}
	for _, s := range ships {
		ours[s] = true
	}
	// The shipment of a subject coldchain.<kind>.<shipment>[.<device>].
	shipOf := func(subject string) string {
		parts := strings.SplitN(subject, ".", 4)
		if len(parts) < 3 {
			return ""
		}
		return parts[2]
	}
	deadline := time.Now().Add(outage + 10*time.Minute)
	var inInflux int
	for {
		inInflux = influxTotal(t, influxURL, bucket, ships)
		idle := consumersIdle(t, natsURL)
		final := anchorsFinal(base, ships)
		if inInflux >= truth.Counts.DistinctReadings && idle && final {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up: InfluxDB %d of %d distinct readings; consumers idle %t; anchors final %t",
				inInflux, truth.Counts.DistinctReadings, idle, final)
		}
		time.Sleep(3 * time.Second)
	}
	stored := 0
	readStream(t, natsURL, journal.StreamReadings, "coldchain.readings.>", func(m journal.Msg) {
		if ours[shipOf(m.Subject)] {
			stored++
		}
	})
	logf("caught up: JetStream %d and InfluxDB %d readings, %d distinct sent; anchors final", stored, inInflux, truth.Counts.DistinctReadings)

	// Readings: nothing lost, nothing doubled (JetStream counts every
	// record it holds; InfluxDB counts points, which a replay would
	// overwrite, so both are compared).
	lost, doubled := truth.Counts.DistinctReadings-stored, 0
	if lost < 0 {
		lost, doubled = 0, -lost
	}
	if lost != 0 || doubled != 0 || inInflux != truth.Counts.DistinctReadings {
		t.Errorf("readings: %d distinct sent, %d in JetStream, %d in InfluxDB", truth.Counts.DistinctReadings, stored, inInflux)
	}
	// Alerts against the ground truth, and no transition stored twice.
	var got []Alert
	for _, s := range ships {
		got = append(got, shipmentAlerts(t, base, s)...)
	}
	diffs := CompareAlerts(truth, got)
	missing, unexpected := 0, 0
	for _, d := range diffs {
		switch {
		case strings.HasPrefix(d, "missed"):
			missing++
		case strings.HasPrefix(d, "unexpected"):
			unexpected++
		}
		t.Error(d)
	}
	twice := 0
	ids := map[string]int{}
	readStream(t, natsURL, journal.StreamAlerts, "coldchain.alerts.>", func(m journal.Msg) {
		if ours[shipOf(m.Subject)] {
			ids[m.ID]++
		}
	})
	for id, n := range ids {
		if n > 1 {
			twice++
			t.Errorf("alert transition %s stored %d times", id, n)
		}
	}
	// Dead letters: exactly the invalid inputs.
	// Over an external broker the gateway subscribes to the ingest topics
	// only, so a message to any other topic (the malformed scenario's
	// coldchain/v1/…/telemetry) never reaches it and cannot be
	// dead-lettered: Mosquitto's ACL is where such topics are refused.
	invalid := truth.Counts.Rejected
	for _, r := range truth.Rejected {
		if r.Reason == "unknown_topic" {
			invalid--
		}
	}
	dl := streamCount(t, natsURL, journal.StreamDeadLetters) - dlBefore
	if dl != invalid {
		t.Errorf("dead letters: %d, the ground truth rejects %d that reach the gateway", dl, invalid)
		byReason, n := map[string]int{}, 0
		readStream(t, natsURL, journal.StreamDeadLetters, "", func(m journal.Msg) {
			if n++; n > dlBefore {
				byReason[strings.TrimPrefix(m.Subject, "coldchain.deadletters.")]++
			}
		})
		want := map[string]int{}
		for _, r := range truth.Rejected {
			want[r.Reason]++
		}
		t.Errorf("dead letters by reason: %v; the ground truth: %v", byReason, want)
	}
	// Every shipment's bundle, offline and on chain.
	verified := 0
	for _, s := range ships {
		raw := httpGet(t, base+"/v1/shipments/"+s+"/proof")
		b, err := bundle.Decode(raw)
		if err != nil {
			t.Errorf("bundle of %s: %v", s, err)
			continue
		}
		if _, err := bundle.Verify(b); err != nil {
			t.Errorf("bundle of %s offline: %v", s, err)
			continue
		}
		err = bundle.CheckAnchor(context.Background(), b, bundle.AnchorCheckerFunc(func(ctx context.Context, a bundle.Anchor, root merkle.Hash) error {
			return evm.VerifyAnchor(ctx, evmURL, anchor.Receipt{ChainID: a.ChainID, Contract: a.Contract, TxHash: a.Tx, Block: a.Block, BlockTime: a.BlockTime}, root)
		}))
		if err != nil {
			t.Errorf("bundle of %s on chain: %v", s, err)
			continue
		}
		verified++
	}
	t.Logf("CHAOS seed %d, %v: readings sent %d distinct (%d with resends), stored %d (JetStream) / %d (InfluxDB): lost %d, doubled %d; "+
		"alerts %d in the ground truth, %d listed: missing %d, unexpected %d, other differences %d, transitions stored twice %d; "+
		"bundles verified offline and on chain %d of %d; dead letters %d of %d invalid inputs that reach the gateway (%d in all)",
		seed, time.Since(t0).Round(time.Second), truth.Counts.DistinctReadings, truth.Counts.Readings, stored, inInflux, lost, doubled,
		len(truth.Alarms), len(got), missing, unexpected, len(diffs)-missing-unexpected, twice, verified, len(ships), dl, invalid, truth.Counts.Rejected)
	gw.stop()
}

func needEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run `make chaos`, or start the peers with scripts/peers.sh start and eval \"$(scripts/peers.sh env)\"", name)
	}
	return v
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return def
}

func envDur(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return d
	}
	return def
}

func peerCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("../scripts/peers.sh", args...).CombinedOutput(); err != nil {
		t.Errorf("peers.sh %v: %v\n%s", args, err, out)
	}
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// gatewayProc is `coldchain serve` as a child process.
type gatewayProc struct {
	t   *testing.T
	cmd *exec.Cmd
	log *lockedBuffer
}

func startGatewayProc(t *testing.T, bin string, env []string, waitReady string) *gatewayProc {
	t.Helper()
	p := &gatewayProc{t: t, cmd: exec.Command(bin, "serve"), log: &lockedBuffer{}}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log (pid %d):\n%s", p.cmd.Process.Pid, p.log.tail(8000))
		}
	})
	if waitReady == "" {
		return p
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get(waitReady + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready in 2 minutes:\n%s", p.log.tail(4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *gatewayProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

func (p *gatewayProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("gateway exit: %v", err)
		}
	case <-time.After(time.Minute):
		p.t.Error("gateway did not stop within a minute of SIGINT")
		_ = p.cmd.Process.Kill()
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b[max(0, len(l.b)-n):])
}

// proxy forwards TCP connections to a target; cut(true) closes them and
// refuses new ones until cut(false), as an unreachable RPC endpoint is.
type proxy struct {
	addr  string
	down  atomic.Bool
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String(), conns: map[net.Conn]bool{}}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *proxy) cut(down bool) {
	p.down.Store(down)
	if !down {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// mine asks Hardhat for an empty block every second until ctx ends.
func mine(ctx context.Context, url string) {
	c, err := rpc.DialContext(ctx, url)
	if err != nil {
		return
	}
	defer c.Close()
	for ctx.Err() == nil {
		_ = c.CallContext(ctx, nil, "evm_mine")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// influxTotal counts, in InfluxDB itself, the reading points of ships.
func influxTotal(t *testing.T, influxURL, bucket string, ships []string) int {
	t.Helper()
	db, rp, _ := strings.Cut(bucket, "/")
	re := strings.Join(ships, "|")
	q := fmt.Sprintf(`SELECT count("seq") FROM %q.%q."reading" WHERE "shipment" =~ /^(%s)$/`, db, rp, re)
	resp, err := http.Get(strings.TrimRight(influxURL, "/") + "/query?" + url.Values{"db": {db}, "q": {q}}.Encode())
	if err != nil {
		return -1 // InfluxDB is down: not caught up
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]json.RawMessage `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 || len(r.Results[0].Series[0].Values) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(r.Results[0].Series[0].Values[0][1]))
	return n
}

// consumersIdle reports whether the gateway's durable consumers of the
// readings stream have nothing pending or unacknowledged.
func consumersIdle(t *testing.T, natsURL string) bool {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return false
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, journal.StreamReadings)
	if err != nil {
		return false
	}
	for _, name := range []string{"coldchain-store", "coldchain-detector", "coldchain-anchor"} {
		c, err := s.Consumer(ctx, name)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			return false
		}
	}
	return true
}

// anchorsFinal reports whether every shipment's whole log is in a final
// epoch.
func anchorsFinal(base string, ships []string) bool {
	for _, s := range ships {
		resp, err := http.Get(base + "/v1/shipments/" + s + "/anchors")
		if err != nil {
			return false
		}
		var a struct {
			Size    uint64 `json:"size"`
			Anchors []struct {
				Size  uint64 `json:"size"`
				State string `json:"state"`
			} `json:"anchors"`
		}
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || len(a.Anchors) == 0 {
			return false
		}
		last := a.Anchors[len(a.Anchors)-1]
		if last.Size != a.Size || last.State != "final" {
			return false
		}
	}
	return true
}

func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}
