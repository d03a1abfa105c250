//go:build integration

// Package integration runs the coldchain binary against real external
// servers — Mosquitto and nats-server from Debian's packages, started by
// scripts/peers.sh — and kills it mid-stream. `make test-integration` runs
// it; it is not part of `make test`.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/journal"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coldchain-it")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "coldchain")
	build := exec.Command("go", "build", "-o", binary, "../cmd/coldchain")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build coldchain:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func need(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start the peers with `scripts/peers.sh start mosquitto nats` and `eval \"$(scripts/peers.sh env)\"`, or run `make test-integration`", name)
	}
	return v
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// gatewayEnv is the environment of a gateway in front of the external
// Mosquitto and nats-server: its own MQTT session (named after run), its
// own data dir, HTTP on httpAddr, the embedded chain on a free port.
func gatewayEnv(t *testing.T, run, httpAddr string) []string {
	t.Helper()
	return []string{
		"COLDCHAIN_MQTT_URL=" + need(t, "COLDCHAIN_TEST_MQTT_URL"),
		"COLDCHAIN_MQTT_CLIENT_ID=coldchain-" + run,
		"COLDCHAIN_NATS_URL=" + need(t, "COLDCHAIN_TEST_NATS_URL"),
		"COLDCHAIN_DATA_DIR=" + t.TempDir(),
		"COLDCHAIN_HTTP_LISTEN=" + httpAddr,
		"COLDCHAIN_LOG_LEVEL=warn",
		"COLDCHAIN_CHAIN_LISTEN=127.0.0.1:0",
		// These tests read the API back without tokens; the roles are
		// tested in gateway/httpauth_test.go.
		"COLDCHAIN_HTTP_ALLOW_ANONYMOUS=true",
	}
}

// gatewayProc is the coldchain binary running as a child process.
type gatewayProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	http string
	log  *bytes.Buffer
}

func startProc(t *testing.T, env []string, httpAddr string) *gatewayProc {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), env...)
	logBuf := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gatewayProc{t: t, cmd: cmd, http: httpAddr, log: logBuf}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready in 60s:\n%s", logBuf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 kills the gateway with SIGKILL: no drain, no flush.
func (p *gatewayProc) kill9() {
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// dump has the gateway print its goroutines to its log (SIGQUIT: the Go
// runtime prints every goroutine's stack and exits).
func (p *gatewayProc) dump() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	_ = p.cmd.Wait()
}

func (p *gatewayProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("gateway exit: %v\n%s", err, p.log.String())
		}
	case <-time.After(30 * time.Second):
		p.t.Errorf("gateway did not stop on SIGINT within 30s")
		_ = p.cmd.Process.Kill()
	}
}

// stored counts the records of a stream under a subject filter, by subject.
func stored(t *testing.T, js jetstream.JetStream, stream, filter string) (total int, perSubject map[string]uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	perSubject = map[string]uint64{}
	err := journal.ReadStream(ctx, js, stream, filter, func(m journal.Msg) error {
		total++
		perSubject[m.Subject]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, perSubject
}

// TestKill9MidStream publishes 3,000 readings to a real Mosquitto while the
// gateway in front of a real nats-server is killed with SIGKILL and
// restarted, then resends 500 of them after JetStream's duplicate window
// and sends invalid ones. Exactly the 3,000 distinct readings are stored
// and the invalid ones are dead letters.
func TestKill9MidStream(t *testing.T) {
	mqttURL := need(t, "COLDCHAIN_TEST_MQTT_URL")
	natsURL := need(t, "COLDCHAIN_TEST_NATS_URL")
	run := fmt.Sprintf("it%d", time.Now().UnixNano())
	ship := "SHP-" + run
	httpAddr := freePort(t)
	env := append(gatewayEnv(t, run, httpAddr), "COLDCHAIN_NATS_DUPLICATE_WINDOW=2s")
	gw := startProc(t, env, httpAddr)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(mqttURL).SetClientID("pub-" + run).SetCleanSession(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to mosquitto: %v", tok.Error())
	}
	defer pub.Disconnect(250)
	base := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	reading := func(i int) (string, string) {
		dev := fmt.Sprintf("%s-d%d", run, i%3)
		return "coldchain/v1/" + ship + "/" + dev + "/readings",
			fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%.1f}`, i, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 2+float64(i%60)/10)
	}
	send := func(topic, payload string) {
		tok := pub.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	const n = 3000
	for i := range n {
		send(reading(i))
		switch i {
		case 1000:
			// Mid-stream: readings are in flight between Mosquitto, the
			// gateway and JetStream.
			gw.kill9()
			t.Log("gateway killed with SIGKILL after 1,000 publishes")
		case 2000:
			// Mosquitto queued 1,000 readings for the gateway's session.
			gw = startProc(t, env, httpAddr)
			t.Log("gateway restarted after 2,000 publishes")
		}
	}
	// Resends of the first 500, well past the 2 s duplicate window.
	time.Sleep(2500 * time.Millisecond)
	for i := range 500 {
		send(reading(i))
	}
	invalid := []string{`{"seq":1,"ts":"2026-01-01T00:00:00","temp_c":5}`, `{"seq":2,"ts":"2026-01-01T00:00:00Z","temp_c":NaN}`, `not json`}
	for _, p := range invalid {
		send("coldchain/v1/"+ship+"/"+run+"-bad/readings", p)
	}
	// Mosquitto delivers a session's queue in order: once this sentinel is
	// stored, everything before it has reached the gateway.
	send("coldchain/v1/"+ship+"/"+run+"-last/readings", fmt.Sprintf(`{"seq":1,"ts":"%s","temp_c":5}`, base.Format(time.RFC3339)))

	filter := "coldchain.readings." + ship + ".>"
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, subjects := stored(t, js, "COLDCHAIN_READINGS", filter)
		if subjects["coldchain.readings."+ship+"."+run+"-last"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel not stored in 90s; stored: %v", subjects)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Let in-flight redeliveries finish, then the count must be exact.
	time.Sleep(2 * time.Second)
	total, subjects := stored(t, js, "COLDCHAIN_READINGS", filter)
	if total != n+1 {
		t.Fatalf("stored %d readings, want exactly %d (+1 sentinel): %v", total, n+1, subjects)
	}
	for d := range 3 {
		subj := fmt.Sprintf("coldchain.readings.%s.%s-d%d", ship, run, d)
		if subjects[subj] != n/3 {
			t.Fatalf("%s: %d readings, want %d", subj, subjects[subj], n/3)
		}
	}

	resp, err := http.Get("http://" + httpAddr + "/v1/deadletters?limit=200")
	if err != nil {
		t.Fatal(err)
	}
	var dl struct {
		DeadLetters []struct {
			Reason, Source, Payload string
		} `json:"dead_letters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dl); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := map[string]string{}
	for _, d := range dl.DeadLetters {
		if strings.Contains(d.Source, run+"-bad") {
			got[d.Payload] = d.Reason
		}
	}
	want := map[string]string{invalid[0]: "bad_timestamp", invalid[1]: "not_finite", invalid[2]: "malformed_json"}
	for p, r := range want {
		if got[p] != r {
			t.Errorf("dead letter for %q: %q, want %q (all: %v)", p, got[p], r, got)
		}
	}
	gw.stop()
}
