package gateway

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/journal"
)

// TestMQTTCredentials runs the gateway as deployed, anonymous access off:
// a device registered in the JetStream registry publishes its readings
// with its password and they are journaled; an anonymous client, a wrong
// password and the device on another device's topic are refused, nothing
// of theirs journaled, and each refusal is counted.
func TestMQTTCredentials(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MQTT.Broker.AllowAnonymous = false
	gw := startGateway(t, cfg)
	defer gw.stop()

	ctx := context.Background()
	dir := authtest.Open(t, gw.g.NATSURL())
	const pw = "reefer-1-password-0001"
	c, err := auth.NewCredential(auth.Principal{Kind: auth.KindDevice, ID: "reefer-1", Org: "acme"}, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := dir.Grant(ctx, "SHP-1", "acme"); err != nil {
		t.Fatal(err)
	}

	connect := func(id, user, pass string) (paho.Client, error) {
		return dialMQTT(t, paho.NewClientOptions().AddBroker("tcp://"+gw.g.MQTTAddr()).SetClientID(id).
			SetUsername(user).SetPassword(pass))
	}
	if _, err := connect("anon", "", ""); err == nil {
		t.Fatal("anonymous client connected")
	}
	if _, err := connect("guess", "reefer-1", "reefer-2-password-0001"); err == nil {
		t.Fatal("wrong password connected")
	}
	// The grant reaches the broker through a KV watch: the first publish
	// may be refused until then, so wait for it on a probe connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		probe, err := connect("reefer-1", "reefer-1", pw)
		if err != nil {
			t.Fatal(err)
		}
		tok := probe.Publish("coldchain/v1/SHP-1/reefer-1/readings", 1, false, readingJSON(1, 5))
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			probe.Disconnect(100)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registered device's reading on its granted shipment was refused: %v", tok.Error())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A logged-in device's dead letters carry its org, so its provider
	// can list them.
	bad, err := connect("reefer-1", "reefer-1", pw)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, bad, "coldchain/v1/SHP-1/reefer-1/readings", `{"seq":`)
	var dead struct {
		DeadLetters []struct{ Reason, Org string } `json:"dead_letters"`
	}
	getJSON(t, "http://"+gw.g.HTTPAddr()+"/v1/deadletters", &dead)
	if len(dead.DeadLetters) != 1 || dead.DeadLetters[0].Reason != "malformed_json" || dead.DeadLetters[0].Org != "acme" {
		t.Fatalf("dead letters %+v, want one malformed_json of org acme", dead.DeadLetters)
	}
	before := deniedCounts(t, gw.g.HTTPAddr())
	// MQTT 3.1.1 has no negative PUBACK: the broker disconnects instead,
	// and paho fails the publish's token.
	for _, topic := range []string{"coldchain/v1/SHP-1/reefer-2/readings", "coldchain/v1/SHP-2/reefer-1/readings"} {
		dev, err := connect("reefer-1", "reefer-1", pw)
		if err != nil {
			t.Fatal(err)
		}
		forged := dev.Publish(topic, 1, false, readingJSON(2, 15))
		if !forged.WaitTimeout(10*time.Second) || forged.Error() == nil {
			t.Fatalf("the publish on %s was not refused (%v)", topic, forged.Error())
		}
	}

	ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	if len(ids) != 1 {
		t.Fatalf("journaled %v, want only reefer-1's reading", ids)
	}
	after := deniedCounts(t, gw.g.HTTPAddr())
	if after["anonymous"] != 1 || after["bad_credentials"] != 1 {
		t.Errorf("refused logins counted %v, want anonymous 1 and bad_credentials 1", after)
	}
	for _, reason := range []string{auth.ReasonNotYourTopic, auth.ReasonNotGranted} {
		if after[reason]-before[reason] != 1 {
			t.Errorf("%s counted %d times for one refused publish", reason, after[reason]-before[reason])
		}
	}
}

// deniedCounts returns coldchain_auth_denied_total{surface="mqtt"} by
// reason.
func deniedCounts(t *testing.T, httpAddr string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range strings.Split(metricsText(t, httpAddr), "\n") {
		rest, ok := strings.CutPrefix(l, `coldchain_auth_denied_total{surface="mqtt",reason="`)
		if !ok {
			continue
		}
		reason, n, _ := strings.Cut(rest, `"} `)
		out[reason], _ = strconv.Atoi(n)
	}
	return out
}

// dialMQTT connects a 3.1.1 client that does not reconnect (so one refusal
// is one refusal) and returns the CONNECT's outcome; a connected client is
// disconnected when the test ends.
func dialMQTT(t *testing.T, opts *paho.ClientOptions) (paho.Client, error) {
	t.Helper()
	cl := paho.NewClient(opts.SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(true).SetConnectTimeout(5 * time.Second))
	tok := cl.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("no CONNACK")
	}
	if tok.Error() == nil {
		t.Cleanup(func() { cl.Disconnect(100) })
	}
	return cl, tok.Error()
}
