package gateway

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
)

// TestRemovalClosesSessions: removing a device from the registry closes
// its open MQTT session, and revoking a token closes its MQTT watcher and
// its alert stream, not only their next login; others stay connected.
func TestRemovalClosesSessions(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MQTT.Broker.AllowAnonymous, cfg.HTTP.AllowAnonymous = false, false
	gw := startGateway(t, cfg)
	defer gw.stop()
	ctx := context.Background()
	dir := authtest.Open(t, gw.g.NATSURL())
	for _, id := range []string{"L1", "L2"} {
		c, err := auth.NewCredential(auth.Principal{Kind: auth.KindDevice, ID: id, Org: "acme"}, []byte(id+"-password-00001"))
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := dir.Grant(ctx, "SHP-1", "acme"); err != nil {
		t.Fatal(err)
	}
	token, tc, err := auth.NewToken(auth.Principal{Role: auth.RoleShipper, Org: "acme", Name: "qa@acme"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Add(ctx, tc); err != nil {
		t.Fatal(err)
	}
	mqttAs := func(user, pass string) paho.Client {
		t.Helper()
		c, err := dialMQTT(t, paho.NewClientOptions().AddBroker("tcp://"+gw.g.MQTTAddr()).
			SetClientID(user+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)).SetUsername(user).SetPassword(pass))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		return c
	}
	l1, l2 := mqttAs("L1", "L1-password-00001"), mqttAs("L2", "L2-password-00001")
	watcher := mqttAs(auth.TokenUsername, token)
	if tok := watcher.Subscribe("coldchain/v1/SHP-1/alerts", 1, func(paho.Client, paho.Message) {}); !tok.WaitTimeout(10*time.Second) || tok.(*paho.SubscribeToken).Result()["coldchain/v1/SHP-1/alerts"] != 1 {
		t.Fatal("the watcher could not subscribe")
	}

	req, _ := http.NewRequest("GET", "http://"+gw.g.HTTPAddr()+"/v1/alerts/stream?shipment=SHP-1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %s", resp.Status)
	}
	streamEnded := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
		close(streamEnded)
	}()

	if err := dir.Remove(ctx, auth.KindDevice, "L1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "L1's session closed", func() bool { return !l1.IsConnectionOpen() })
	if !l2.IsConnectionOpen() || !watcher.IsConnectionOpen() {
		t.Fatal("removing L1 closed other sessions")
	}
	select {
	case <-streamEnded:
		t.Fatal("removing L1 ended the token's stream")
	default:
	}

	if err := dir.Remove(ctx, auth.KindToken, tc.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoked token's MQTT session closed", func() bool { return !watcher.IsConnectionOpen() })
	select {
	case <-streamEnded:
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked token's alert stream is still open")
	}
	if !l2.IsConnectionOpen() {
		t.Fatal("revoking the token closed L2's session")
	}
	if _, err := dialMQTT(t, paho.NewClientOptions().AddBroker("tcp://"+gw.g.MQTTAddr()).SetClientID("L1-again").SetUsername("L1").SetPassword("L1-password-00001")); err == nil {
		t.Fatal("the removed device logged in again")
	}
}
