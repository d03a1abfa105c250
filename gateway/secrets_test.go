package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
)

// TestSecretsNeverLogged logs everything the gateway says at debug level
// while devices and tokens log in, right and wrong, and its anchor key's
// chain is unreachable, and checks that no password, token or the key
// appears in any log message or field, in /metrics, /readyz or an error
// answer.
func TestSecretsNeverLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := testConfig(t.TempDir())
	cfg.MQTT.Broker.AllowAnonymous, cfg.HTTP.AllowAnonymous = false, false
	cfg.Log.Level = "debug"
	// An external chain that is down: the anchorer retries and logs why.
	const anchorKey = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63"
	cfg.Chain.Kind, cfg.Chain.RPCURL, cfg.Chain.Key = evm.KindRPC, "http://127.0.0.1:1", anchorKey
	gw := startGatewayLog(t, cfg, zap.New(core))
	defer gw.stop()

	ctx := context.Background()
	reg := authtest.Open(t, gw.g.NATSURL())
	const pw, wrongPW = "secret-device-password-1", "secret-wrong-password-2"
	c, err := auth.NewCredential(auth.Principal{Kind: auth.KindDevice, ID: "L1", Org: "acme"}, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := reg.Grant(ctx, "SHP-1", "acme"); err != nil {
		t.Fatal(err)
	}
	token, tc, err := auth.NewToken(auth.Principal{Role: auth.RoleAdmin, Name: "ops"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(ctx, tc); err != nil {
		t.Fatal(err)
	}
	wrongToken := token[:len(token)-4] + "XXXX"

	mqttDial := func(id, user, pass string) {
		if cl, err := dialMQTT(t, paho.NewClientOptions().AddBroker("tcp://"+gw.g.MQTTAddr()).SetClientID(id).SetUsername(user).SetPassword(pass)); err == nil {
			cl.Publish("coldchain/v1/SHP-1/L1/readings", 1, false, readingJSON(1, 5)).Wait()
		}
	}
	mqttDial("right", "L1", pw)
	mqttDial("wrong", "L1", wrongPW)
	mqttDial("unknown", "L9", wrongPW)
	var answers []string
	get := func(path, tok string) {
		req, _ := http.NewRequest("GET", "http://"+gw.g.HTTPAddr()+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers = append(answers, path+" "+string(b))
		}
	}
	for _, tok := range []string{token, wrongToken} {
		get("/v1/shipments", tok)
	}
	waitFor(t, "the anchorer to retry the chain", func() bool {
		return logs.FilterMessageSnippet("rpc call failed; retrying").Len() > 0
	})
	get("/metrics", "")
	get("/readyz", "")
	get("/v1/deadletters", token)

	nu, err := url.Parse(gw.g.NATSURL())
	if err != nil || nu.User.Username() == "" {
		t.Fatalf("the embedded NATS URL %q carries no token", gw.g.NATSURL())
	}
	natsToken := nu.User.Username()

	refusals := 0
	secret := tc.ID // the token's id may be logged; its secret part may not
	secrets := []string{pw, wrongPW, token, wrongToken, strings.TrimPrefix(token, "cct_"+secret+"_"), strings.TrimPrefix(wrongToken, "cct_"+secret+"_"), anchorKey, natsToken}
	for _, a := range answers {
		for _, s := range secrets {
			if strings.Contains(a, s) {
				t.Errorf("a secret is in an answer: %s", a)
			}
		}
	}
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		line := e.Message + " " + string(b)
		if strings.Contains(e.Message, "refused") {
			refusals++
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("a secret is logged: %s", line)
			}
		}
	}
	if refusals == 0 {
		t.Fatal("no refusal was logged at all: the test logged nothing to search")
	}
}
