//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/coldchain/coldchain/pki/pkitest"
)

// peerProc starts bin with args as a peer of this test only, waits until
// addr accepts TCP connections, and kills it by its PID at the end.
func peerProc(t *testing.T, name, addr, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // stopped by PID
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, out.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s:\n%s", name, addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPeersOverTLS runs the gateway with every external peer reached over
// TLS with a private CA: real Mosquitto (ssl://, requiring a client
// certificate), real nats-server (tls://, verifying client certificates),
// real InfluxDB 1.8 (https://) and Hardhat behind a TLS terminator
// (Hardhat serves no TLS itself; the terminator checks the gateway's
// client certificate, and the node behind it is real). Readings published
// over TLS are counted by InfluxDB over HTTPS, anchored through the TLS
// RPC, and the bundle verifies on chain with coldchain verify --rpc-ca.
func TestPeersOverTLS(t *testing.T) {
	mosquitto := need(t, "COLDCHAIN_TEST_MOSQUITTO_BIN")
	natsServer := need(t, "COLDCHAIN_TEST_NATS_BIN")
	influxd := need(t, "COLDCHAIN_TEST_INFLUXD_BIN")
	hardhat := needEVM(t, "COLDCHAIN_TEST_EVM_RPC_URL")
	files := pkitest.New(t, "coldchain-gateway")
	dir := t.TempDir()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}

	mqttAddr := freePort(t)
	mhost, mport, _ := net.SplitHostPort(mqttAddr)
	peerProc(t, "mosquitto", mqttAddr, mosquitto, "-c", writeFile(t, filepath.Join(dir, "mosquitto.conf"), fmt.Sprintf(`per_listener_settings false
listener %s %s
cafile %s
certfile %s
keyfile %s
require_certificate true
allow_anonymous true
user %s
`, mport, mhost, files.CA, files.ServerCert, files.ServerKey, me.Username)))

	natsAddr := freePort(t)
	peerProc(t, "nats-server", natsAddr, natsServer, "-c", writeFile(t, filepath.Join(dir, "nats.conf"), fmt.Sprintf(`listen: %s
max_payload: 8MB
jetstream { store_dir: %q }
tls {
  cert_file: %q
  key_file: %q
  ca_file: %q
  verify: true
  timeout: 5
}
`, natsAddr, filepath.Join(dir, "js"), files.ServerCert, files.ServerKey, files.CA)))

	influxAddr, influxRPC := freePort(t), freePort(t)
	idir := filepath.Join(dir, "influx")
	peerProc(t, "influxd", influxAddr, influxd, "run", "-config", writeFile(t, filepath.Join(dir, "influxdb.conf"), fmt.Sprintf(`reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = %q
  auth-enabled = false
  flux-enabled = true
  log-enabled = false
  https-enabled = true
  https-certificate = %q
  https-private-key = %q
`, influxRPC, idir+"/meta", idir+"/data", idir+"/wal", influxAddr, files.ServerCert, files.ServerKey)))
	clientTLS, err := files.Client().Config("test")
	if err != nil {
		t.Fatal(err)
	}
	influxHTTP := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: 10 * time.Second}
	influxURL := "https://" + influxAddr
	var created bool
	for deadline := time.Now().Add(30 * time.Second); !created && time.Now().Before(deadline); {
		resp, err := influxHTTP.PostForm(influxURL+"/query", url.Values{"q": {"CREATE DATABASE coldchain"}})
		if err == nil {
			created = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
		if !created {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !created {
		t.Fatal("could not create the InfluxDB database over HTTPS")
	}

	// The TLS terminator in front of Hardhat: it asks for a client
	// certificate and counts the requests that came with the gateway's.
	target, err := url.Parse(hardhat)
	if err != nil {
		t.Fatal(err)
	}
	var withCert, without atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	rpc := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName == "coldchain-gateway" {
			withCert.Add(1)
		} else {
			without.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	rpc.TLS = files.Server(t, true)
	rpc.TLS.ClientAuth = tls.VerifyClientCertIfGiven // coldchain verify below comes without one
	rpc.Config.ErrorLog = log.New(io.Discard, "", 0)
	rpc.StartTLS()
	defer rpc.Close()

	httpAddr := freePort(t)
	gw := startProc(t, []string{
		"COLDCHAIN_DATA_DIR=" + t.TempDir(),
		"COLDCHAIN_HTTP_LISTEN=" + httpAddr,
		"COLDCHAIN_HTTP_ALLOW_ANONYMOUS=true", // the API's roles are tested elsewhere
		"COLDCHAIN_DEVICES_UNKNOWN=accept",    // the logger is not in the device registry: no warning in the log of n readings
		"COLDCHAIN_LOG_LEVEL=warn",
		"COLDCHAIN_MQTT_URL=ssl://" + mqttAddr,
		"COLDCHAIN_MQTT_CLIENT_ID=coldchain-tls",
		"COLDCHAIN_MQTT_CLIENT_TLS_CA=" + files.CA,
		"COLDCHAIN_MQTT_CLIENT_TLS_CERT=" + files.ClientCert,
		"COLDCHAIN_MQTT_CLIENT_TLS_KEY=" + files.ClientKey,
		"COLDCHAIN_NATS_URL=tls://" + natsAddr,
		"COLDCHAIN_NATS_TLS_CA=" + files.CA,
		"COLDCHAIN_NATS_TLS_CERT=" + files.ClientCert,
		"COLDCHAIN_NATS_TLS_KEY=" + files.ClientKey,
		"COLDCHAIN_STORE_KIND=influx",
		"COLDCHAIN_STORE_INFLUX_URL=" + influxURL,
		"COLDCHAIN_STORE_INFLUX_ORG=coldchain",
		"COLDCHAIN_STORE_INFLUX_BUCKET=coldchain/autogen",
		"COLDCHAIN_STORE_INFLUX_TLS_CA=" + files.CA,
		"COLDCHAIN_CHAIN_KIND=rpc",
		"COLDCHAIN_CHAIN_RPC_URL=" + rpc.URL,
		"COLDCHAIN_CHAIN_KEY=" + needEVM(t, "COLDCHAIN_TEST_EVM_KEY"),
		"COLDCHAIN_CHAIN_CHAIN_ID=" + needEVM(t, "COLDCHAIN_TEST_EVM_CHAIN_ID"),
		"COLDCHAIN_CHAIN_CONFIRMATIONS=1",
		"COLDCHAIN_CHAIN_TLS_CA=" + files.CA,
		"COLDCHAIN_CHAIN_TLS_CERT=" + files.ClientCert,
		"COLDCHAIN_CHAIN_TLS_KEY=" + files.ClientKey,
		"COLDCHAIN_ANCHOR_EPOCH=2s",
	}, httpAddr)
	defer gw.stop()

	// A logger publishes over TLS with a certificate of the same CA.
	ship := fmt.Sprintf("TLS-%d", time.Now().UnixNano())
	dev := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + mqttAddr).SetClientID("logger-tls").
		SetTLSConfig(clientTLS).SetAutoReconnect(false))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device over TLS: %v", tok.Error())
	}
	defer dev.Disconnect(100)
	const n = 20
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range n {
		payload := fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%.1f}`, i+1, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), 4+float64(i%3)/10)
		if tok := dev.Publish("coldchain/v1/"+ship+"/logger-tls/readings", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}

	// InfluxDB, asked over HTTPS, holds each reading once.
	ic := influxdb2.NewClientWithOptions(influxURL, "", influxdb2.DefaultOptions().SetTLSConfig(clientTLS))
	defer ic.Close()
	count := func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := ic.QueryAPI("coldchain").Query(ctx, fmt.Sprintf(`from(bucket: "coldchain/autogen")
  |> range(start: 2000-01-01T00:00:00Z, stop: 2200-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "reading" and r.shipment == %q and r._field == "seq")
  |> count()`, ship))
		if err != nil {
			return 0, err
		}
		defer res.Close()
		var total int64
		for res.Next() {
			v, _ := res.Record().Value().(int64)
			total += v
		}
		return total, res.Err()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := count()
		if got == n {
			break
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("InfluxDB over HTTPS holds %d readings of %s, want %d (%v)", got, ship, n, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The anchor went through the TLS RPC; the bundle verifies on chain
	// through it, trusting only the private CA.
	var raw []byte
	deadline = time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/v1/shipments/" + ship + "/proof")
		if err == nil {
			raw, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			var b struct {
				TreeSize int `json:"tree_size"`
			}
			if resp.StatusCode == http.StatusOK && json.Unmarshal(raw, &b) == nil && b.TreeSize == n {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no anchored proof of %d records for %s in 90s: %s", n, ship, raw)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if withCert.Load() == 0 {
		t.Fatal("the gateway reached the chain without presenting its client certificate")
	}
	if without.Load() != 0 {
		t.Fatalf("%d RPC requests before coldchain verify came without the client certificate", without.Load())
	}
	path := filepath.Join(dir, "bundle.json")
	writeFile(t, path, string(raw))
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"verify", path, "--rpc", rpc.URL, "--rpc-ca", files.CA}, true},
		{[]string{"verify", path, "--rpc", rpc.URL}, false}, // the system roots do not know the private CA
	} {
		out, err := exec.Command(binary, tc.args...).CombinedOutput()
		if tc.ok != (err == nil) {
			t.Fatalf("coldchain %s: %v\n%s", strings.Join(tc.args, " "), err, out)
		}
		if tc.ok && !strings.Contains(string(out), "on chain   epoch root found") {
			t.Fatalf("coldchain verify did not check the chain:\n%s", out)
		}
	}
}
