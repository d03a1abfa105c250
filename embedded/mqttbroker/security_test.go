package mqttbroker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/metrics"
)

// users is a fake registry: username → password and principal.
type users map[string]struct {
	pw string
	p  auth.Principal
}

func (u users) Authenticate(_ context.Context, user string, pw []byte) (auth.Principal, error) {
	e, ok := u[user]
	switch {
	case !ok:
		return auth.Principal{}, fmt.Errorf("%s: %w", user, auth.ErrUnknown)
	case e.pw != string(pw):
		return auth.Principal{}, fmt.Errorf("%s: %w", user, auth.ErrWrongPassword)
	}
	return e.p, nil
}

func (u users) Identify(_ context.Context, user string, _ []byte) (auth.Principal, error) {
	e, ok := u[user]
	if !ok {
		return auth.Principal{}, fmt.Errorf("%s: %w", user, auth.ErrUnknown)
	}
	return e.p, nil
}

var registry = users{
	"L1":          {"password-of-L1-0001", auth.Principal{Kind: auth.KindDevice, ID: "L1", Org: "acme"}},
	"L2":          {"password-of-L2-0001", auth.Principal{Kind: auth.KindDevice, ID: "L2", Org: "acme"}},
	"site.SG-WH1": {"password-of-WH1-0001", auth.Principal{Kind: auth.KindSite, ID: "SG-WH1", Org: "acme"}},
}

// startSecureBroker starts a broker ingesting into a fake, with the
// registry above and anonymous access as given.
func startSecureBroker(t *testing.T, anonymous bool) (*Broker, *fakeIngester, *wire, *metrics.Registry) {
	t.Helper()
	reg := metrics.New()
	cfg := Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20, AllowAnonymous: anonymous}
	b, f, w := serve(t, cfg, &Security{Users: registry, Denied: auth.DeniedCounter(reg)})
	return b, f, w, reg
}

// dial connects a paho (MQTT 3.1.1) client with the given credentials and
// returns the CONNECT's outcome.
func dial(t *testing.T, b *Broker, id, user, pw string) (paho.Client, <-chan struct{}, error) {
	t.Helper()
	lost := make(chan struct{})
	opts := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID(id).
		SetUsername(user).SetPassword(pw).SetProtocolVersion(4). // no retry as 3.1, which would count twice
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetWriteTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("connect %s: no answer", id)
	}
	if tok.Error() == nil {
		t.Cleanup(func() {
			if c.IsConnectionOpen() {
				c.Disconnect(100)
			}
		})
	}
	return c, lost, tok.Error()
}

// denied returns coldchain_auth_denied_total's series for the mqtt
// surface, "reason count" each.
func denied(reg *metrics.Registry) []string {
	var buf bytes.Buffer
	reg.Write(&buf)
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, `coldchain_auth_denied_total{surface="mqtt",reason="`); ok {
			out = append(out, strings.Replace(rest, `"} `, " ", 1))
		}
	}
	slices.Sort(out)
	return out
}

// TestConnectNeedsCredentials: with anonymous access off, only a
// registered username with its password connects.
func TestConnectNeedsCredentials(t *testing.T) {
	b, _, _, reg := startSecureBroker(t, false)
	for _, tc := range []struct{ name, user, pw string }{
		{"anonymous", "", ""},
		{"wrong password", "L1", "password-of-L2-0001"},
		{"unknown device", "L9", "password-of-L1-0001"},
		{"site without its prefix", "SG-WH1", "password-of-WH1-0001"},
	} {
		if _, _, err := dial(t, b, "c-"+strings.ReplaceAll(tc.name, " ", "-"), tc.user, tc.pw); err == nil {
			t.Errorf("%s: connected", tc.name)
		} else if !strings.Contains(err.Error(), "username or password") && !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("%s: refused with %q, want a bad-credentials CONNACK", tc.name, err)
		}
	}
	if _, _, err := dial(t, b, "dev-L1", "L1", "password-of-L1-0001"); err != nil {
		t.Fatalf("L1 with its password: %v", err)
	}
	if _, _, err := dial(t, b, "site", "site.SG-WH1", "password-of-WH1-0001"); err != nil {
		t.Fatalf("site with its password: %v", err)
	}
	if got, want := denied(reg), []string{"anonymous 1", "bad_credentials 3"}; !slices.Equal(got, want) {
		t.Fatalf("denials %v, want %v", got, want)
	}
}

// TestDevicePublishesOnlyItsReadings: a device's own readings are
// ingested and acknowledged; another device's topic, a handover topic and
// an alert topic are refused, nothing of them ingested, and the 3.1.1
// client disconnected (it has no negative PUBACK).
func TestDevicePublishesOnlyItsReadings(t *testing.T) {
	b, f, _, reg := startSecureBroker(t, false)
	c, _, err := dial(t, b, "dev-L1", "L1", "password-of-L1-0001")
	if err != nil {
		t.Fatal(err)
	}
	tok := publish(c, readingTopic("L1"), 1, `{"own":true}`)
	eventually(t, "own reading started", func() bool { return len(f.started()) == 1 })
	f.started()[0].finish(nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("own reading not acknowledged: %v", tok.Error())
	}

	for i, topic := range []string{readingTopic("L2"), "coldchain/v1/S1/handovers", "coldchain/v1/S1/alerts", "elsewhere/x"} {
		c, lost, err := dial(t, b, fmt.Sprintf("dev-L1-%d", i), "L1", "password-of-L1-0001")
		if err != nil {
			t.Fatal(err)
		}
		tok := publish(c, topic, 1, `{"forged":true}`)
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still connected after a refused publish", topic)
		}
		if done(tok) && tok.Error() == nil {
			t.Fatalf("%s: refused publish acknowledged", topic)
		}
	}
	if n := len(f.started()); n != 1 {
		t.Fatalf("%d messages ingested, want only the device's own", n)
	}
	if got, want := denied(reg), []string{"gateway_only 1", "not_your_topic 3"}; !slices.Equal(got, want) {
		t.Fatalf("denials %v, want %v", got, want)
	}
}

// TestRefusalAnsweredInTurn: an MQTT 5 device gets PUBACK "not authorized"
// (0x87) for a publish on another device's topic, after the PUBACK of its
// earlier publish still being journaled [MQTT-4.6.0-2], stays connected,
// and nothing of the refused one is ingested.
func TestRefusalAnsweredInTurn(t *testing.T) {
	b, f, w, _ := startSecureBroker(t, false)
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(pk packets.Packet) {
		t.Helper()
		var buf bytes.Buffer
		var err error
		if pk.FixedHeader.Type == packets.Connect {
			err = pk.ConnectEncode(&buf)
		} else {
			err = pk.PublishEncode(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "v5-L1",
			UsernameFlag: true, Username: []byte("L1"), PasswordFlag: true, Password: []byte("password-of-L1-0001")}})
	pub := func(id uint16, topic string) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
			PacketID: id, TopicName: topic, Payload: []byte(`{}`)}
	}
	send(pub(1, readingTopic("L1")))
	send(pub(2, readingTopic("L2")))
	send(pub(3, readingTopic("L1")))
	eventually(t, "both own readings started", func() bool { return len(f.started()) == 2 })
	still(t, "an answer before the first publish is durable", func() bool { return len(w.acks("v5-L1")) == 0 })
	for _, tk := range f.started() {
		tk.finish(nil)
	}
	if got, want := w.waitAcks(t, "v5-L1", 3), []string{"puback 1", "puback 0x87 2", "puback 3"}; !slices.Equal(got, want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	for _, tk := range f.started() {
		if tk.msg.Topic != readingTopic("L1") {
			t.Fatalf("ingested %s", tk.msg.Topic)
		}
	}
}

// TestSubscriptions: devices and sites subscribe to nothing; an anonymous
// client (demo mode) may watch alert topics only, gets the gateway's
// alerts, and cannot inject a forged alert that watchers would see.
func TestSubscriptions(t *testing.T) {
	b, f, _, reg := startSecureBroker(t, true)
	subscribe := func(c paho.Client, filter string, got func(string)) byte {
		t.Helper()
		return subscribe(t, c, filter, got)
	}
	dev, _, err := dial(t, b, "dev-L1", "L1", "password-of-L1-0001")
	if err != nil {
		t.Fatal(err)
	}
	for _, filter := range []string{"#", "coldchain/v1/S1/alerts", readingTopic("L1")} {
		if q := subscribe(dev, filter, ignore); q != 0x80 {
			t.Errorf("device subscribed to %s (granted %#x)", filter, q)
		}
	}
	watcher, _, err := dial(t, b, "watcher", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, filter := range []string{"#", "coldchain/#", "coldchain/v1/+/+/readings", "coldchain/v1/S1/handovers", "$SYS/#"} {
		if q := subscribe(watcher, filter, ignore); q != 0x80 {
			t.Errorf("anonymous client subscribed to %s (granted %#x)", filter, q)
		}
	}
	var mu sync.Mutex
	var seen []string
	if q := subscribe(watcher, "coldchain/v1/+/alerts", func(p string) { mu.Lock(); seen = append(seen, p); mu.Unlock() }); q != 1 {
		t.Fatalf("anonymous watcher refused coldchain/v1/+/alerts (%#x)", q)
	}

	forger, lost, err := dial(t, b, "forger", "", "")
	if err != nil {
		t.Fatal(err)
	}
	publish(forger, "coldchain/v1/S1/alerts", 1, `{"forged":true}`)
	<-lost
	if err := b.Publish("coldchain/v1/S1/alerts", []byte(`{"real":true}`), 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gateway's alert delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })
	still(t, "the forged alert delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != `{"real":true}` {
		t.Fatalf("watcher got %s", seen[0])
	}
	if n := len(f.started()); n != 0 {
		t.Fatalf("%d messages ingested", n)
	}
	if got, want := denied(reg), []string{"gateway_only 1", "subscribe_not_allowed 8"}; !slices.Equal(got, want) {
		t.Fatalf("denials %v, want %v", got, want)
	}
}

// subscribe subscribes c to filter at QoS 1, handing got each payload,
// and returns the SUBACK's code (0x80 for refused).
func subscribe(t *testing.T, c paho.Client, filter string, got func(string)) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { got(string(m.Payload())) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func ignore(string) {}

// inbox collects the payloads a subscription receives.
type inbox struct {
	mu  sync.Mutex
	got []string
}

func (i *inbox) add(p string) { i.mu.Lock(); i.got = append(i.got, p); i.mu.Unlock() }
func (i *inbox) n() int       { i.mu.Lock(); defer i.mu.Unlock(); return len(i.got) }

// TestTokensWatchAlerts: an API token logs in as username "token" and
// watches the alerts of the shipments granted to its org, one topic each;
// an admin token may watch all of them. Nothing else: no readings, no
// wildcard, no publishing, no token without a reading role, and a revoked
// grant stops the next delivery.
func TestTokensWatchAlerts(t *testing.T) {
	reg := metrics.New()
	var grantedS1 atomic.Bool
	grantedS1.Store(true)
	granted := func(ship, org string) bool { return ship == "S1" && org == "shipco" && grantedS1.Load() }
	b, f, _ := serve(t, Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20}, &Security{Users: registry, Granted: granted, Denied: auth.DeniedCounter(reg)})

	for _, tc := range []struct{ name, pw, reason string }{
		{"wrong token", "cct_0000000000000000_wrong", "bad_credentials"},
		{"not a token", "password-of-L1-0001", "bad_credentials"},
		{"expired token", tokExpired, "token_expired"},
	} {
		if _, _, err := dial(t, b, "w-"+strings.ReplaceAll(tc.name, " ", "-"), auth.TokenUsername, tc.pw); err == nil {
			t.Errorf("%s: connected", tc.name)
		}
	}
	shipper, lost, err := dial(t, b, "shipper", auth.TokenUsername, tokShipper)
	if err != nil {
		t.Fatalf("shipper token: %v", err)
	}
	for _, filter := range []string{"#", "coldchain/v1/+/alerts", "coldchain/v1/S2/alerts", "coldchain/v1/S1/L1/readings", "coldchain/v1/S1/handovers", "coldchain/v1/S1/#"} {
		if q := subscribe(t, shipper, filter, ignore); q != 0x80 {
			t.Errorf("shipper token subscribed to %s (granted %#x)", filter, q)
		}
	}
	var seen, all inbox
	if q := subscribe(t, shipper, "coldchain/v1/S1/alerts", seen.add); q != 1 {
		t.Fatalf("shipper token refused its shipment's alerts (%#x)", q)
	}
	admin, _, err := dial(t, b, "admin", auth.TokenUsername, tokAdmin)
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	if q := subscribe(t, admin, "coldchain/v1/+/alerts", all.add); q != 1 {
		t.Fatalf("admin token refused coldchain/v1/+/alerts (%#x)", q)
	}
	if c, _, err := dial(t, b, "metrics-only", auth.TokenUsername, tokNoRead); err != nil {
		t.Fatalf("a token without a reading role: %v", err)
	} else if subscribe(t, c, "coldchain/v1/S1/alerts", ignore) != 0x80 {
		t.Errorf("a token whose role reads nothing subscribed to alerts")
	}

	for _, ship := range []string{"S1", "S2"} {
		if err := b.Publish("coldchain/v1/"+ship+"/alerts", []byte(`{"alert":"`+ship+`"}`), 1); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both alerts at the admin, S1's at the shipper", func() bool { return all.n() == 2 && seen.n() == 1 })
	grantedS1.Store(false) // coldchain shipments revoke S1 --org shipco
	if err := b.Publish("coldchain/v1/S1/alerts", []byte(`{"alert":"after revoke"}`), 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the admin's third alert", func() bool { return all.n() == 3 })
	still(t, "an alert delivered after the grant was revoked", func() bool { return seen.n() == 1 })

	publish(shipper, "coldchain/v1/S1/alerts", 1, `{"forged":true}`)
	<-lost
	if n := len(f.started()); n != 0 {
		t.Fatalf("%d messages ingested", n)
	}
	want := []string{"bad_credentials 2", "gateway_only 1", "role_not_allowed 1", "shipment_not_granted 2", "subscribe_not_allowed 5", "token_expired 1"}
	if got := denied(reg); !slices.Equal(got, want) {
		t.Fatalf("denials %v, want %v", got, want)
	}
}

// The fake registry's API tokens.
const (
	tokShipper = "cct_00000000000000a1_shipper-secret"
	tokAdmin   = "cct_00000000000000a2_admin-secret"
	tokNoRead  = "cct_00000000000000a3_metrics-secret"
	tokExpired = "cct_00000000000000a4_expired-secret"
)

func (u users) AuthenticateToken(_ context.Context, token string) (auth.Principal, error) {
	switch token {
	case tokShipper:
		return auth.Principal{Kind: auth.KindToken, ID: "00000000000000a1", Role: auth.RoleShipper, Org: "shipco"}, nil
	case tokAdmin:
		return auth.Principal{Kind: auth.KindToken, ID: "00000000000000a2", Role: auth.RoleAdmin}, nil
	case tokNoRead:
		return auth.Principal{Kind: auth.KindToken, ID: "00000000000000a3", Role: "metrics", Org: "shipco"}, nil
	case tokExpired:
		return auth.Principal{}, fmt.Errorf("token 00000000000000a4: %w", auth.ErrExpired)
	}
	if !strings.HasPrefix(token, "cct_") {
		return auth.Principal{}, auth.ErrMalformedToken
	}
	return auth.Principal{}, fmt.Errorf("token: %w", auth.ErrUnknown)
}

// TestFailedLoginsThrottled: after ten bad passwords for one username from
// one address, even the right one is refused without a check, and counted
// as throttled; another device behind the same address still logs in.
func TestFailedLoginsThrottled(t *testing.T) {
	b, _, _, reg := startSecureBroker(t, false)
	for i := range 10 {
		if _, _, err := dial(t, b, fmt.Sprintf("guess-%d", i), "L1", fmt.Sprintf("wrong-password-%04d", i)); err == nil {
			t.Fatal("a wrong password connected")
		}
	}
	if _, _, err := dial(t, b, "dev-L1", "L1", "password-of-L1-0001"); err == nil {
		t.Fatal("the right password was checked while the address is throttled")
	}
	if _, _, err := dial(t, b, "dev-L2", "L2", "password-of-L2-0001"); err != nil {
		t.Fatalf("another device from the same address: %v", err)
	}
	if got, want := denied(reg), []string{"bad_credentials 10", "too_many_failures 1"}; !slices.Equal(got, want) {
		t.Fatalf("denials %v, want %v", got, want)
	}
}

// rawV5 is an MQTT 5 connection written packet by packet, to see the
// broker's answers exactly (paho.mqtt.golang speaks 3.1.1 only).
type rawV5 struct {
	t    *testing.T
	conn net.Conn
}

func dialV5(t *testing.T, b *Broker, id, user, pw string) *rawV5 {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawV5{t: t, conn: conn}
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pw)}})
	return r
}

func (r *rawV5) send(pk packets.Packet) {
	r.t.Helper()
	var buf bytes.Buffer
	var err error
	if pk.FixedHeader.Type == packets.Connect {
		err = pk.ConnectEncode(&buf)
	} else {
		err = pk.PublishEncode(&buf)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.Write(buf.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawV5) publish(id uint16, topic string) {
	r.t.Helper()
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		PacketID: id, TopicName: topic, Payload: []byte(`{}`)})
}

// TestDeviceRateLimit: a device over mqtt.device_rate is disconnected
// with 0x96 "message rate too high" in the publish's turn, saying its
// limit; what came before is acknowledged, the publish over the limit
// and what follows are neither answered nor ingested (the device sends
// them again later: nothing is lost). The limit is the device's over all
// its connections; another device is not affected.
func TestDeviceRateLimit(t *testing.T) {
	reg := metrics.New()
	// 3 at once, then one per 1,000 s: no token comes back during the test.
	cfg := Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20, DeviceRate: 0.001, DeviceBurst: 3}
	b, f, w := serve(t, cfg, &Security{Users: registry, Denied: auth.DeniedCounter(reg)})

	c := dialV5(t, b, "v5-L1", "L1", "password-of-L1-0001")
	for id := uint16(1); id <= 5; id++ {
		c.publish(id, readingTopic("L1"))
	}
	eventually(t, "the burst started", func() bool { return len(f.started()) == 3 })
	for _, tk := range f.started() {
		tk.finish(nil)
	}
	if got, want := w.waitAcks(t, "v5-L1", 3), []string{"puback 1", "puback 2", "puback 3"}; !slices.Equal(got, want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	if got := w.disconnected(t, "v5-L1"); !strings.HasPrefix(got, "0x96 ") || !strings.Contains(got, "device L1") || !strings.Contains(got, "0.001 a second, 3 at once") {
		t.Fatalf("disconnect %q, want 0x96 naming the device and its limit", got)
	}
	still(t, "nothing more answered or ingested", func() bool { return len(w.acks("v5-L1")) == 3 && len(f.started()) == 3 })

	// Reconnecting does not refill the bucket.
	again := dialV5(t, b, "v5-L1-again", "L1", "password-of-L1-0001")
	again.publish(1, readingTopic("L1"))
	if got := w.disconnected(t, "v5-L1-again"); !strings.HasPrefix(got, "0x96 ") {
		t.Fatalf("after reconnecting: disconnect %q, want 0x96", got)
	}
	// Another device has its own budget.
	other := dialV5(t, b, "v5-L2", "L2", "password-of-L2-0001")
	other.publish(1, readingTopic("L2"))
	eventually(t, "L2's reading started", func() bool { return len(f.started()) == 4 })
	f.started()[3].finish(nil)
	if got := w.waitAcks(t, "v5-L2", 1); !slices.Equal(got, []string{"puback 1"}) {
		t.Fatalf("L2: %v, want puback 1", got)
	}
	if got, want := denied(reg), []string{"rate_limited 2"}; !slices.Equal(got, want) {
		t.Fatalf("denials %v, want %v", got, want)
	}
}

// TestDeviceRateLimitV3: an MQTT 3.1.1 device over its limit, with QoS 0
// or 1, loses its connection; the publish over the limit is not ingested.
func TestDeviceRateLimitV3(t *testing.T) {
	cfg := Config{Listen: "127.0.0.1:0", MaxPacketSize: 1 << 20, DeviceRate: 0.001, DeviceBurst: 1}
	b, f, _ := serve(t, cfg, &Security{Users: registry})
	for _, qos := range []byte{0, 1} {
		before := len(f.started())
		c, lost, err := dial(t, b, fmt.Sprintf("v3-qos%d", qos), "L1", "password-of-L1-0001")
		if err != nil {
			t.Fatal(err)
		}
		if qos == 0 {
			publish(c, readingTopic("L1"), 0, "{}") // the burst of 1
			eventually(t, "the first reading started", func() bool { return len(f.started()) == 1 })
			f.started()[0].finish(nil)
		}
		publish(c, readingTopic("L1"), qos, "{}")
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("QoS %d over the limit: still connected", qos)
		}
		if n := len(f.started()); n != max(before, 1) {
			t.Fatalf("QoS %d: %d publishes ingested, want only the burst", qos, n)
		}
	}
}
