package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/pki/pkitest"
	"github.com/coldchain/coldchain/record"
)

// counters returns every series of coldchain_auth_denied_total and
// coldchain_ingest_rejected_total, keyed "auth mqtt REASON", "auth http
// REASON" and "ingest REASON".
func counters(t *testing.T, httpAddr string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range strings.Split(metricsText(t, httpAddr), "\n") {
		if m := deniedLine.FindStringSubmatch(l); m != nil {
			out["auth "+m[1]+" "+m[2]], _ = strconv.Atoi(m[3])
		} else if m := rejectedLine.FindStringSubmatch(l); m != nil {
			out["ingest "+m[1]], _ = strconv.Atoi(m[2])
		}
	}
	return out
}

var (
	deniedLine   = regexp.MustCompile(`^coldchain_auth_denied_total\{surface="(\w+)",reason="(\w+)"\} (\d+)$`)
	rejectedLine = regexp.MustCompile(`^coldchain_ingest_rejected_total\{reason="(\w+)"\} (\d+)$`)
)

// TestAttackSuite runs every attack of the threat model (docs/SECURITY.md)
// against one gateway as deployed: anonymous access off on MQTT and HTTP,
// devices, a site and tokens in the registry, shipments granted to orgs,
// a signing device, mutual TLS on a second MQTT listener and a small
// device rate limit. Each attack must be refused, counted once under its
// reason, and leave nothing behind: at the end the streams hold exactly
// the legitimate records.
func TestAttackSuite(t *testing.T) {
	files := pkitest.New(t, "L-A")
	cfg := testConfig(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	b := &cfg.MQTT.Broker
	b.AllowAnonymous = false
	b.TLSListen, b.TLSCert, b.TLSKey, b.TLSClientCA = "127.0.0.1:0", files.ServerCert, files.ServerKey, files.CA
	b.DeviceRate, b.DeviceBurst = 0.001, 20 // no device below sends 20 messages but the flooder
	cfg.HTTP.AllowAnonymous = false
	gw := startGateway(t, cfg)
	defer gw.stop()
	base := "http://" + gw.g.HTTPAddr()

	ctx := context.Background()
	dir := authtest.Open(t, gw.g.NATSURL())
	passwords := map[string]string{}
	add := func(p auth.Principal) {
		t.Helper()
		pw := p.ID + "-password-0001"
		c, err := auth.NewCredential(p, []byte(pw))
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
		passwords[p.ID] = pw
	}
	for _, id := range []string{"L-A", "L-B", "SIGNER", "FLOOD"} {
		add(auth.Principal{Kind: auth.KindDevice, ID: id, Org: "acme"})
	}
	add(auth.Principal{Kind: auth.KindSite, ID: "WH-1", Org: "acme"})
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	forger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	if err := dir.AddKey(ctx, "SIGNER", signer.Public().(ed25519.PublicKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	for ship, org := range map[string]string{"SHP-A": "acme", "SHP-Y": "beta"} {
		if err := dir.Grant(ctx, ship, org); err != nil {
			t.Fatal(err)
		}
	}
	token := func(role auth.Role, org, name string, expires time.Time) (string, string) {
		t.Helper()
		tok, c, err := auth.NewToken(auth.Principal{Role: role, Org: org, Name: name}, expires)
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
		return tok, c.ID
	}
	hour := time.Now().Add(time.Hour)
	provider, _ := token(auth.RoleProvider, "acme", "feed@acme", hour)
	shipper, _ := token(auth.RoleShipper, "acme", "qa@acme", hour)
	rival, _ := token(auth.RoleShipper, "beta", "qa@beta", hour)
	customs, _ := token(auth.RoleCustoms, "beta", "broker@customs", hour)
	expired, _ := token(auth.RoleShipper, "acme", "old@acme", time.Now().Add(-time.Second))
	revoked, revokedID := token(auth.RoleShipper, "acme", "left@acme", hour)
	if err := dir.Remove(ctx, auth.KindToken, revokedID); err != nil {
		t.Fatal(err)
	}

	mqttAt := func(addr, id, user string) (paho.Client, error) {
		opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id)
		if user != "" {
			opts.SetUsername(user).SetPassword(passwords[strings.TrimPrefix(user, "site.")])
		}
		return dialMQTT(t, opts)
	}
	mqttAs := func(id string) paho.Client {
		t.Helper()
		c, err := mqttAt(gw.g.MQTTAddr(), id+"-"+strconv.FormatInt(time.Now().UnixNano(), 36), id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return c
	}
	// asToken logs in to MQTT with an API token, as a watcher does.
	asToken := func(tok string) (paho.Client, error) {
		return dialMQTT(t, paho.NewClientOptions().AddBroker("tcp://"+gw.g.MQTTAddr()).
			SetClientID("watch-"+strconv.FormatInt(time.Now().UnixNano(), 36)).SetUsername(auth.TokenUsername).SetPassword(tok))
	}
	refusedSubscribe := func(c paho.Client, filter string) bool {
		tok := c.Subscribe(filter, 1, func(paho.Client, paho.Message) {})
		return tok.WaitTimeout(10*time.Second) && tok.(*paho.SubscribeToken).Result()[filter] == 0x80
	}
	// The shipper watches its shipment's alerts over MQTT with its token.
	watcher, err := asToken(shipper)
	if err != nil {
		t.Fatalf("shipper token over MQTT: %v", err)
	}
	watched := make(chan string, 100)
	// The gateway learns grants from a KV watch, a moment after the test
	// wrote them: refused until then, granted within 10 s.
	for deadline := time.Now().Add(10 * time.Second); ; {
		tok := watcher.Subscribe("coldchain/v1/SHP-A/alerts", 1, func(_ paho.Client, m paho.Message) { watched <- string(m.Payload()) })
		if tok.WaitTimeout(10*time.Second) && tok.(*paho.SubscribeToken).Result()["coldchain/v1/SHP-A/alerts"] == 1 {
			break
		}
		if time.Now().After(deadline) || !watcher.IsConnected() {
			t.Fatal("the shipper's token may not watch its shipment's alerts over MQTT")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// refusedPublish publishes at QoS 1 and reports whether the broker
	// refused it (3.1.1 has no negative PUBACK: it disconnects).
	refusedPublish := func(c paho.Client, topic, payload string) bool {
		tok := c.Publish(topic, 1, false, payload)
		return tok.WaitTimeout(10*time.Second) && tok.Error() != nil
	}
	do := func(method, path, tok, body string) (int, string) {
		t.Helper()
		return apiDo(t, base, method, path, tok, body)
	}

	// Legitimate traffic: readings of L-A on SHP-A that raise an alarm
	// (posted by the provider, retried until the grant has reached the
	// gateway), a signed reading, a site's handover.
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	var items []string
	for m := 0; m <= 60; m += 5 {
		items = append(items, fmt.Sprintf(`{"shipment":"SHP-A","device":"L-A","seq":%d,"ts":"%s","temp_c":9.5}`, m+1, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339)))
	}
	waitFor(t, "the provider's readings accepted", func() bool {
		code, _ := do("POST", "/v1/readings", provider, "["+strings.Join(items, ",")+"]")
		return code == http.StatusAccepted
	})
	signedAt := func(key ed25519.PrivateKey, seq int, temp float64) string {
		t.Helper()
		b, err := record.SignReading([]byte(readingJSON(seq, temp)), record.Scope{Shipment: "SHP-A", Device: "SIGNER"}, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	publish(t, mqttAs("SIGNER"), "coldchain/v1/SHP-A/SIGNER/readings", signedAt(signer, 1, 5.0))
	handover := fmt.Sprintf(`{"id":"H-1","kind":"release","ts":"%s","from_party":"acme","to_party":"carrier","site":"WH-1"}`, t0.Format(time.RFC3339))
	publish(t, mqttAs("site.WH-1"), "coldchain/v1/SHP-A/handovers", handover)
	var alertID string
	waitFor(t, "the alarm on SHP-A", func() bool {
		_, body := do("GET", "/v1/shipments/SHP-A/alerts", shipper, "")
		var list struct{ Alerts []struct{ ID, Rule string } }
		_ = json.Unmarshal([]byte(body), &list)
		for _, a := range list.Alerts {
			if a.Rule == "single_event_high" {
				alertID = a.ID
			}
		}
		return alertID != ""
	})
	select {
	case a := <-watched:
		if !strings.Contains(a, "SHP-A") {
			t.Errorf("the shipper's watcher got %s", a)
		}
	case <-time.After(30 * time.Second):
		t.Error("the alarm never reached the shipper watching over MQTT")
	}
	wantReadings := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	wantHandovers := streamIDs(t, gw.g.NATSURL(), journal.StreamHandovers)
	wantAlerts := len(streamIDs(t, gw.g.NATSURL(), journal.StreamAlerts))
	if len(wantReadings) != len(items)+1 || len(wantHandovers) != 1 {
		t.Fatalf("legitimate traffic journaled %v and %v", wantReadings, wantHandovers)
	}

	flood := mqttAs("FLOOD")
	for i := range 20 { // the burst
		publish(t, flood, "coldchain/v1/SHP-A/FLOOD/readings", readingJSON(100+i, 5))
	}
	floodIDs := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)[len(wantReadings):]
	wantReadings = append(wantReadings, floodIDs...)

	for _, a := range []struct {
		name string
		// counted is the series the refusal is counted under.
		counted string
		// refused carries out the attack and reports whether it was
		// refused as it should be.
		refused func(t *testing.T) bool
	}{
		{"wrong password", "auth mqtt bad_credentials", func(t *testing.T) bool {
			_, err := dialMQTT(t, paho.NewClientOptions().AddBroker("tcp://"+gw.g.MQTTAddr()).SetClientID("guess").
				SetUsername("L-A").SetPassword("L-B-password-0001"))
			return err != nil
		}},
		{"anonymous subscribe to #", "auth mqtt anonymous", func(t *testing.T) bool {
			_, err := mqttAt(gw.g.MQTTAddr(), "anon", "")
			return err != nil
		}},
		{"device subscribes to #", "auth mqtt subscribe_not_allowed", func(t *testing.T) bool {
			tok := mqttAs("L-B").Subscribe("#", 1, func(paho.Client, paho.Message) {})
			return tok.WaitTimeout(10*time.Second) && tok.(*paho.SubscribeToken).Result()["#"] == 0x80
		}},
		{"device A on device B's topic", "auth mqtt not_your_topic", func(t *testing.T) bool {
			return refusedPublish(mqttAs("L-B"), "coldchain/v1/SHP-A/L-A/readings", readingJSON(900, 2.0))
		}},
		{"device on an alert topic", "auth mqtt gateway_only", func(t *testing.T) bool {
			return refusedPublish(mqttAs("L-A"), "coldchain/v1/SHP-A/alerts", `{"rule":"forged","state":"closed"}`)
		}},
		{"device on another org's shipment", "auth mqtt shipment_not_granted", func(t *testing.T) bool {
			return refusedPublish(mqttAs("L-A"), "coldchain/v1/SHP-Y/L-A/readings", readingJSON(901, 5.0))
		}},
		{"site forging another org's handover", "auth mqtt shipment_not_granted", func(t *testing.T) bool {
			return refusedPublish(mqttAs("site.WH-1"), "coldchain/v1/SHP-Y/handovers", strings.Replace(handover, "H-1", "H-666", 1))
		}},
		{"device over its rate limit", "auth mqtt rate_limited", func(t *testing.T) bool {
			return refusedPublish(flood, "coldchain/v1/SHP-A/FLOOD/readings", readingJSON(120, 5))
		}},
		{"token of org X watching org Y's alerts over MQTT", "auth mqtt shipment_not_granted", func(t *testing.T) bool {
			c, err := asToken(rival)
			return err == nil && refusedSubscribe(c, "coldchain/v1/SHP-A/alerts")
		}},
		{"shipper token watching readings over MQTT", "auth mqtt subscribe_not_allowed", func(t *testing.T) bool {
			c, err := asToken(shipper)
			return err == nil && refusedSubscribe(c, "coldchain/v1/SHP-A/+/readings")
		}},
		{"expired token over MQTT", "auth mqtt token_expired", func(t *testing.T) bool {
			_, err := asToken(expired)
			return err != nil
		}},
		{"revoked token over MQTT", "auth mqtt bad_credentials", func(t *testing.T) bool {
			_, err := asToken(revoked)
			return err != nil
		}},
		{"plaintext to the TLS port", "", func(t *testing.T) bool {
			_, err := mqttAt(gw.g.MQTTTLSAddr(), "plain", "L-A")
			return err != nil
		}},
		{"forged signature", "ingest bad_signature", func(t *testing.T) bool {
			publish(t, mqttAs("SIGNER"), "coldchain/v1/SHP-A/SIGNER/readings", signedAt(forger, 2, 5.0))
			return true // acknowledged and dead-lettered: the count and the stream say whether it was kept
		}},
		{"signed reading replayed with a changed temperature", "ingest bad_signature", func(t *testing.T) bool {
			replay := strings.Replace(signedAt(signer, 1, 5.0), `"temp_c":5,`, `"temp_c":3,`, 1)
			if !strings.Contains(replay, `"temp_c":3,`) {
				t.Fatalf("the replay did not change the temperature: %s", replay)
			}
			publish(t, mqttAs("SIGNER"), "coldchain/v1/SHP-A/SIGNER/readings", replay)
			return true
		}},
		{"signing device sending unsigned", "ingest unsigned", func(t *testing.T) bool {
			publish(t, mqttAs("SIGNER"), "coldchain/v1/SHP-A/SIGNER/readings", readingJSON(3, 5.0))
			return true
		}},
		{"no token", "auth http no_token", func(t *testing.T) bool {
			code, _ := do("GET", "/v1/shipments", "", "")
			return code == http.StatusUnauthorized
		}},
		{"expired token", "auth http token_expired", func(t *testing.T) bool {
			code, body := do("GET", "/v1/shipments/SHP-A/status", expired, "")
			return code == http.StatusUnauthorized && strings.Contains(body, "token expired at")
		}},
		{"revoked token", "auth http bad_token", func(t *testing.T) bool {
			code, _ := do("GET", "/v1/shipments/SHP-A/status", revoked, "")
			return code == http.StatusUnauthorized
		}},
		{"shipper of org X reading org Y's shipment", "auth http shipment_not_granted", func(t *testing.T) bool {
			code, body := do("GET", "/v1/shipments/SHP-A/readings", rival, "")
			return code == http.StatusNotFound && !strings.Contains(body, "L-A")
		}},
		{"shipper of org X streaming org Y's alerts", "auth http shipment_not_granted", func(t *testing.T) bool {
			code, _ := do("GET", "/v1/alerts/stream?shipment=SHP-A", rival, "")
			return code == http.StatusNotFound
		}},
		{"shipper of org X acking org Y's alert", "auth http shipment_not_granted", func(t *testing.T) bool {
			code, _ := do("POST", "/v1/alerts/"+alertID+"/ack", rival, `{"by":"attacker@nowhere","comment":"fine"}`)
			return code == http.StatusNotFound
		}},
		{"customs fetching a shipment it was not granted", "auth http shipment_not_granted", func(t *testing.T) bool {
			code, _ := do("GET", "/v1/shipments/SHP-A/proof", customs, "")
			return code == http.StatusNotFound
		}},
		{"shipper writing readings", "auth http role_not_allowed", func(t *testing.T) bool {
			code, _ := do("POST", "/v1/readings", shipper, "["+items[0]+"]")
			return code == http.StatusForbidden
		}},
		{"provider writing another org's shipment", "auth http shipment_not_granted", func(t *testing.T) bool {
			code, _ := do("POST", "/v1/readings", provider, strings.ReplaceAll("["+items[0]+"]", "SHP-A", "SHP-Y"))
			return code == http.StatusForbidden
		}},
	} {
		t.Run(a.name, func(t *testing.T) {
			before := counters(t, gw.g.HTTPAddr())
			if !a.refused(t) {
				t.Fatal("not refused")
			}
			if a.counted == "" {
				return
			}
			// Dead letters are counted once the journal has them: wait.
			var after map[string]int
			waitFor(t, a.counted+" counted", func() bool {
				after = counters(t, gw.g.HTTPAddr())
				return after[a.counted] > before[a.counted]
			})
			if d := after[a.counted] - before[a.counted]; d != 1 {
				t.Errorf("%s counted %d times, want once", a.counted, d)
			}
		})
	}

	// Nothing of the attacks was stored, and the ack was not recorded.
	if got := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings); !slices.Equal(got, wantReadings) {
		t.Errorf("readings journaled %v, want only the legitimate %v", got, wantReadings)
	}
	if got := streamIDs(t, gw.g.NATSURL(), journal.StreamHandovers); !slices.Equal(got, wantHandovers) {
		t.Errorf("handovers journaled %v, want only %v", got, wantHandovers)
	}
	if got := len(streamIDs(t, gw.g.NATSURL(), journal.StreamAlerts)); got != wantAlerts {
		t.Errorf("%d alert transitions journaled, want the %d before the attacks (no ack, no forged alert)", got, wantAlerts)
	}
	_, body := do("GET", "/v1/deadletters", provider, "")
	for _, reason := range []string{"bad_signature", "unsigned"} {
		if !strings.Contains(body, reason) {
			t.Errorf("no %s dead letter kept: %s", reason, body)
		}
	}
}

// apiDo sends an API request with a bearer token (none if empty) and
// returns the status and body.
func apiDo(t *testing.T, base, method, path, tok, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
