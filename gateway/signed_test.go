package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// TestSignedReadings runs a device that registered an Ed25519 key: its
// signed readings are journaled with their signature, over MQTT and HTTP;
// a forged signature, a signed reading replayed with another temperature
// and an unsigned reading are refused with their reason and dead-lettered
// with the original bytes; and the shipment's proof bundle carries the
// device's key so the signatures verify offline.
func TestSignedReadings(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Anchor.Epoch = time.Second
	gw := startGateway(t, cfg)
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	forger := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	dir := authtest.Open(t, gw.g.NATSURL())
	if err := dir.AddKey(context.Background(), "logger-9", priv.Public().(ed25519.PublicKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	// A gateway loads the key ring before it takes a message: after a
	// restart the key holds from the first reading.
	gw.stop()
	gw = startGateway(t, cfg)
	defer gw.stop()

	scope := record.Scope{Shipment: "SHP-S", Device: "logger-9"}
	sign := func(key ed25519.PrivateKey, seq int, temp float64) string {
		t.Helper()
		b, err := record.SignReading([]byte(readingJSON(seq, temp)), scope, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	const topic = "coldchain/v1/SHP-S/logger-9/readings"
	pub := publisher(t, gw.g.MQTTAddr(), "logger-9")
	publish(t, pub, topic, sign(priv, 1, 5.0))
	publish(t, pub, topic, sign(priv, 2, 5.5))
	refused := map[string]string{
		"forged":   sign(forger, 3, 5.1),
		"replayed": strings.Replace(sign(priv, 1, 5.0), `"temp_c":5,`, `"temp_c":4,`, 1),
		"unsigned": readingJSON(4, 5.2),
	}
	if !strings.Contains(refused["replayed"], `"temp_c":4,`) {
		t.Fatalf("the replay did not change the temperature: %s", refused["replayed"])
	}
	for _, p := range refused {
		publish(t, pub, topic, p)
	}
	pub.Disconnect(100)

	// HTTP: a signed reading is taken, a forged one refused with the reason.
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+gw.g.HTTPAddr()+"/v1/readings", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	withScope := func(obj string) string {
		return `{"shipment":"SHP-S","device":"logger-9",` + obj[1:]
	}
	if code, body := post(withScope(sign(priv, 5, 5.3))); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("signed reading over HTTP: %d %s", code, body)
	}
	if code, body := post(withScope(sign(forger, 6, 5.3))); code < 400 || !strings.Contains(body, "bad_signature") {
		t.Fatalf("forged reading over HTTP: %d %s", code, body)
	}

	ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	if fmt.Sprint(ids) != "[logger-9:1 logger-9:2 logger-9:5]" {
		t.Fatalf("journaled %v, want the three validly signed readings", ids)
	}
	var dl struct {
		DeadLetters []journal.DeadLetterEntry `json:"dead_letters"`
	}
	getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/deadletters?limit=100", &dl)
	got := map[string]int{}
	for _, d := range dl.DeadLetters {
		got[d.Reason]++
		if d.Reason == "unsigned" && d.Payload != refused["unsigned"] ||
			d.Reason == "bad_signature" && d.Payload != refused["forged"] && d.Payload != refused["replayed"] && !strings.Contains(d.Payload, `"seq":6`) {
			t.Errorf("%s dead letter holds %q, not the original bytes", d.Reason, d.Payload)
		}
	}
	if got["bad_signature"] != 3 || got["unsigned"] != 1 || len(dl.DeadLetters) != 4 {
		t.Fatalf("dead letters by reason %v, want bad_signature 3 and unsigned 1", got)
	}
	m := metricsText(t, gw.g.HTTPAddr())
	for _, want := range []string{`reason="bad_signature"} 3`, `reason="unsigned"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The proof bundle proves the sensor signed each reading.
	var raw []byte
	waitFor(t, "the shipment's proof", func() bool {
		resp, err := http.Get("http://" + gw.g.HTTPAddr() + "/v1/shipments/SHP-S/proof")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return false
		}
		b, err := bundle.Decode(raw)
		return err == nil && b.TreeSize == 3
	})
	b, err := bundle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, err := bundle.Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Signed != 3 || s.Unsigned != 0 || len(b.DeviceKeys) != 1 || !bytes.Equal(b.DeviceKeys[0].PublicKey, priv.Public().(ed25519.PublicKey)) {
		t.Fatalf("bundle: %d signed, %d unsigned, keys %+v; want 3 signed by logger-9's key", s.Signed, s.Unsigned, b.DeviceKeys)
	}
}
