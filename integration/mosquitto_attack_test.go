//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/pki/pkitest"
	"github.com/coldchain/coldchain/record"
)

// TestAttackSuiteMosquitto runs the MQTT attacks of the threat model
// (docs/SECURITY.md) against a deployment with external peers: the
// coldchain binary behind a real Mosquitto configured by `coldchain
// devices export-mosquitto` (anonymous off, a TLS listener) and a real
// nats-server holding the registry. Mosquitto refuses logins, publishes
// and relays, and says so in its log, one line each; the gateway refuses
// what only it can judge (signatures) and counts those. At the end the
// streams hold exactly the legitimate records.
func TestAttackSuiteMosquitto(t *testing.T) {
	bin := need(t, "COLDCHAIN_TEST_MOSQUITTO_BIN")
	natsURL := need(t, "COLDCHAIN_TEST_NATS_URL")
	ctx := context.Background()
	dir := authtest.Open(t, natsURL)
	// The peers outlive the test: names of this run only.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	org, rival := "acme-"+run, "beta-"+run
	ship, other := "SHP-MA-"+run, "SHP-MY-"+run
	devA, devB, signerID, site := "MA-A-"+run, "MA-B-"+run, "MA-S-"+run, "MW-"+run
	pw := func(id string) string { return id + "-password" }
	for _, p := range []auth.Principal{
		{Kind: auth.KindDevice, ID: devA, Org: org}, {Kind: auth.KindDevice, ID: devB, Org: org},
		{Kind: auth.KindDevice, ID: signerID, Org: org}, {Kind: auth.KindSite, ID: site, Org: org},
	} {
		c, err := auth.NewCredential(p, []byte(pw(p.ID)))
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	forger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{6}, ed25519.SeedSize))
	if err := dir.AddKey(ctx, signerID, signer.Public().(ed25519.PublicKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	for s, o := range map[string]string{ship: org, other: rival} {
		if err := dir.Grant(ctx, s, o); err != nil {
			t.Fatal(err)
		}
	}

	// The registry commands against Debian's nats-server (2.9), which
	// refuses a consumer with several filter subjects.
	if b, err := exec.Command(binary, "devices", "list", "--nats", natsURL).CombinedOutput(); err != nil || !strings.Contains(string(b), devA) || !strings.Contains(string(b), site) {
		t.Fatalf("devices list: %v\n%s", err, b)
	}

	out := t.TempDir()
	gwUser, gwPW := "gw-"+run, "gateway-password-0001"
	export := exec.Command(binary, "devices", "export-mosquitto", "--nats", natsURL, "--dir", out, "--gateway-user", gwUser, "--password-stdin")
	export.Stdin = strings.NewReader(gwPW + "\n")
	if b, err := export.CombinedOutput(); err != nil {
		t.Fatalf("export-mosquitto: %v\n%s", err, b)
	}
	files := pkitest.New(t, devA)
	addr, tlsAddr := freePort(t), freePort(t)
	mlog := startMosquitto(t, bin, out, addr, tlsAddr+"|"+files.ServerCert+"|"+files.ServerKey)

	httpAddr := freePort(t)
	gw := startProc(t, []string{
		"COLDCHAIN_MQTT_URL=tcp://" + addr,
		"COLDCHAIN_MQTT_USERNAME=" + gwUser,
		"COLDCHAIN_MQTT_PASSWORD=" + gwPW,
		"COLDCHAIN_MQTT_CLIENT_ID=coldchain-" + run,
		"COLDCHAIN_NATS_URL=" + natsURL,
		"COLDCHAIN_DATA_DIR=" + t.TempDir(),
		"COLDCHAIN_HTTP_LISTEN=" + httpAddr,
		"COLDCHAIN_LOG_LEVEL=warn",
		"COLDCHAIN_CHAIN_LISTEN=127.0.0.1:0",
	}, httpAddr)
	defer gw.stop()

	dial := func(at, id, user, pass string) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + at).SetClientID(id + "-" + run).
			SetUsername(user).SetPassword(pass).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true).
			SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return nil, fmt.Errorf("%s: no CONNACK", id)
		}
		if tok.Error() == nil {
			t.Cleanup(func() { c.Disconnect(100) })
		}
		return c, tok.Error()
	}
	as := func(id string) paho.Client {
		t.Helper()
		user := id
		if id == site {
			user = "site." + id
		}
		c, err := dial(addr, id+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), user, pw(id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return c
	}
	pub := func(c paho.Client, topic, payload string) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	reading := func(seq int, temp float64) string {
		return fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":%g}`, seq, t0.Add(time.Duration(seq)*time.Minute).Format(time.RFC3339), temp)
	}
	signed := func(key ed25519.PrivateKey, seq int) string {
		t.Helper()
		b, err := record.SignReading([]byte(reading(seq, 5)), record.Scope{Shipment: ship, Device: signerID}, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readings := func(s, d string) string { return "coldchain/v1/" + s + "/" + d + "/readings" }

	// An auditor with the gateway's rights sees everything Mosquitto
	// relays under coldchain/.
	auditor, err := dial(addr, "auditor", gwUser, gwPW)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	relayed := map[string][]string{}
	if tok := auditor.Subscribe("coldchain/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		relayed[m.Topic()] = append(relayed[m.Topic()], string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal("auditor subscribe")
	}
	// A device that subscribed to everything must receive nothing.
	snoop := as(devB)
	var snooped sync.Map
	if tok := snoop.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { snooped.Store(m.Topic(), true) }); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("snoop subscribe")
	}

	// Legitimate traffic.
	a := as(devA)
	for seq := 1; seq <= 3; seq++ {
		pub(a, readings(ship, devA), reading(seq, 5))
	}
	pub(as(signerID), readings(ship, signerID), signed(signer, 1))
	pub(as(site), "coldchain/v1/"+ship+"/handovers", fmt.Sprintf(`{"id":"H-%s","kind":"release","ts":"%s","from_party":"%s","to_party":"carrier","site":"%s"}`, run, t0.Format(time.RFC3339), org, site))

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	count := func(stream, filter string) int {
		n, _ := stored(t, js, stream, filter)
		return n
	}
	eventually(t, "the legitimate records journaled", func() bool {
		return count(journal.StreamReadings, "coldchain.readings."+ship+".>") == 4 && count(journal.StreamHandovers, journal.SubjectHandover(ship)) == 1
	})

	ingestRejected := func(reason string) int {
		resp, err := http.Get("http://" + httpAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^coldchain_ingest_rejected_total\{reason="` + reason + `"\} (\d+)$`).FindSubmatch(b)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}

	for _, at := range []struct {
		name string
		// logged is the Mosquitto log line each refusal adds; ingest the
		// gateway's coldchain_ingest_rejected_total reason.
		logged, ingest string
		attack         func(t *testing.T) bool // reports whether it was refused
	}{
		{"wrong password", "disconnected, not authorised", "", func(t *testing.T) bool {
			_, err := dial(addr, "guess", devA, pw(devB))
			return err != nil
		}},
		{"anonymous", "disconnected, not authorised", "", func(t *testing.T) bool {
			_, err := dial(addr, "anon", "", "")
			return err != nil
		}},
		{"device A on device B's topic", "Denied PUBLISH from", "", func(t *testing.T) bool {
			pub(as(devA), readings(ship, devB), reading(900, 5))
			return true // Mosquitto answers a 3.1.1 PUBACK and drops it: the log and the streams say
		}},
		{"device on an alert topic", "Denied PUBLISH from", "", func(t *testing.T) bool {
			pub(as(devA), "coldchain/v1/"+ship+"/alerts", `{"rule":"forged","state":"closed"}`)
			return true
		}},
		{"device on another org's shipment", "Denied PUBLISH from", "", func(t *testing.T) bool {
			pub(as(devA), readings(other, devA), reading(901, 5))
			return true
		}},
		{"site forging another org's handover", "Denied PUBLISH from", "", func(t *testing.T) bool {
			pub(as(site), "coldchain/v1/"+other+"/handovers", `{"id":"H-666","kind":"receive","ts":"`+t0.Format(time.RFC3339)+`","from_party":"x","to_party":"y"}`)
			return true
		}},
		{"plaintext to the TLS port", "", "", func(t *testing.T) bool {
			_, err := dial(tlsAddr, "plain", devA, pw(devA))
			return err != nil
		}},
		{"forged signature", "", "bad_signature", func(t *testing.T) bool {
			pub(as(signerID), readings(ship, signerID), signed(forger, 2))
			return true
		}},
		{"signed reading replayed with a changed temperature", "", "bad_signature", func(t *testing.T) bool {
			replay := strings.Replace(signed(signer, 1), `"temp_c":5,`, `"temp_c":3,`, 1)
			if !strings.Contains(replay, `"temp_c":3,`) {
				t.Fatalf("the replay did not change the temperature: %s", replay)
			}
			pub(as(signerID), readings(ship, signerID), replay)
			return true
		}},
		{"signing device sending unsigned", "", "unsigned", func(t *testing.T) bool {
			pub(as(signerID), readings(ship, signerID), reading(3, 5))
			return true
		}},
	} {
		t.Run(at.name, func(t *testing.T) {
			logged, rejected := 0, 0
			if at.logged != "" {
				logged = mlog.count(t, at.logged)
			}
			if at.ingest != "" {
				rejected = ingestRejected(at.ingest)
			}
			if !at.attack(t) {
				t.Fatal("not refused")
			}
			if at.logged != "" {
				eventually(t, "Mosquitto logging "+at.logged, func() bool { return mlog.count(t, at.logged) > logged })
				if d := mlog.count(t, at.logged) - logged; d != 1 {
					t.Errorf("Mosquitto logged %q %d times, want once", at.logged, d)
				}
			}
			if at.ingest != "" {
				eventually(t, at.ingest+" counted", func() bool { return ingestRejected(at.ingest) > rejected })
				if d := ingestRejected(at.ingest) - rejected; d != 1 {
					t.Errorf("%s counted %d times, want once", at.ingest, d)
				}
			}
		})
	}

	// A last legitimate reading: Mosquitto relays one client's messages in
	// order, so once it is journaled anything the attacks slipped through
	// would be too.
	pub(a, readings(ship, devA), reading(4, 5))
	eventually(t, "the last reading journaled", func() bool {
		return count(journal.StreamReadings, "coldchain.readings."+ship+".>") >= 5
	})
	if n := count(journal.StreamReadings, "coldchain.readings."+ship+".>"); n != 5 {
		t.Errorf("%d readings journaled for %s, want the 5 legitimate ones", n, ship)
	}
	if n := count(journal.StreamReadings, "coldchain.readings."+other+".>") + count(journal.StreamHandovers, journal.SubjectHandover(other)); n != 0 {
		t.Errorf("%d records journaled for the other org's shipment", n)
	}
	if n := count(journal.StreamHandovers, journal.SubjectHandover(ship)); n != 1 {
		t.Errorf("%d handovers journaled, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for topic, payloads := range relayed {
		for _, p := range payloads {
			if strings.Contains(p, "forged") || strings.Contains(p, "H-666") || strings.Contains(p, `"seq":90`) {
				t.Errorf("Mosquitto relayed an attack on %s: %s", topic, p)
			}
		}
	}
	snooped.Range(func(k, _ any) bool {
		t.Errorf("a device subscribed to # received %v", k)
		return true
	})
}

// eventually waits up to 30 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
