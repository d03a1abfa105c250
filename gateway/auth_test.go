package gateway

import (
	"context"
	"errors"
	"slices"
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

	connect := func(id, user, pass string) (paho.Client, error) {
		opts := paho.NewClientOptions().AddBroker("tcp://" + gw.g.MQTTAddr()).SetClientID(id).
			SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
			SetAutoReconnect(false).SetCleanSession(true)
		cl := paho.NewClient(opts)
		tok := cl.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return nil, errors.New("no CONNACK")
		}
		if tok.Error() == nil {
			t.Cleanup(func() { cl.Disconnect(100) })
		}
		return cl, tok.Error()
	}
	if _, err := connect("anon", "", ""); err == nil {
		t.Fatal("anonymous client connected")
	}
	if _, err := connect("guess", "reefer-1", "reefer-2-password-0001"); err == nil {
		t.Fatal("wrong password connected")
	}
	dev, err := connect("reefer-1", "reefer-1", pw)
	if err != nil {
		t.Fatalf("registered device: %v", err)
	}
	publish(t, dev, "coldchain/v1/SHP-1/reefer-1/readings", readingJSON(1, 5))
	forged := dev.Publish("coldchain/v1/SHP-1/reefer-2/readings", 1, false, readingJSON(1, 15))
	// MQTT 3.1.1 has no negative PUBACK: the broker disconnects instead,
	// and paho fails the publish's token.
	if !forged.WaitTimeout(10*time.Second) || forged.Error() == nil {
		t.Fatalf("the publish on another device's topic was not refused (%v)", forged.Error())
	}

	ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings)
	if len(ids) != 1 {
		t.Fatalf("journaled %v, want only reefer-1's reading", ids)
	}
	want := []string{
		`coldchain_auth_denied_total{surface="mqtt",reason="anonymous"} 1`,
		`coldchain_auth_denied_total{surface="mqtt",reason="bad_credentials"} 1`,
		`coldchain_auth_denied_total{surface="mqtt",reason="not_your_topic"} 1`,
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = got[:0]
		for _, l := range strings.Split(metricsText(t, gw.g.HTTPAddr()), "\n") {
			if strings.HasPrefix(l, "coldchain_auth_denied_total{") {
				got = append(got, l)
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}
