package auth

import (
	"context"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/pki"
)

var (
	gateway = Principal{Kind: KindGateway}
	anon    = Principal{Kind: KindAnonymous}
	devA    = Principal{Kind: KindDevice, ID: "L1", Org: "acme"}
	siteW   = Principal{Kind: KindSite, ID: "SG-WH1", Org: "acme"}
)

func TestCanPublish(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Principal
		topic  string
		reason string // "" when allowed
	}{
		{"device on its own readings", devA, "coldchain/v1/S1/L1/readings", ""},
		{"device on another device's readings", devA, "coldchain/v1/S1/L2/readings", ReasonNotYourTopic},
		{"device on a wildcard shipment", devA, "coldchain/v1/+/L1/readings", ReasonNotYourTopic},
		{"device on handovers", devA, "coldchain/v1/S1/handovers", ReasonNotYourTopic},
		{"device on an alert topic", devA, "coldchain/v1/S1/alerts", ReasonGatewayOnly},
		{"device outside coldchain", devA, "other/topic", ReasonNotYourTopic},
		{"device on a longer topic", devA, "coldchain/v1/S1/L1/readings/x", ReasonNotYourTopic},
		{"site on handovers", siteW, "coldchain/v1/S1/handovers", ""},
		{"site on readings", siteW, "coldchain/v1/S1/L1/readings", ReasonNotYourTopic},
		{"site on an alert topic", siteW, "coldchain/v1/S1/alerts", ReasonGatewayOnly},
		{"anonymous on readings", anon, "coldchain/v1/S1/L1/readings", ""},
		{"anonymous on an alert topic", anon, "coldchain/v1/S1/alerts", ReasonGatewayOnly},
		{"gateway on an alert topic", gateway, "coldchain/v1/S1/alerts", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := CanPublish(tc.p, tc.topic)
			check(t, d, tc.reason)
		})
	}
}

func TestCanPublishGranted(t *testing.T) {
	granted := func(ship, org string) bool { return ship == "S1" && org == "acme" }
	noOrg := Principal{Kind: KindDevice, ID: "L1"}
	for _, tc := range []struct {
		name   string
		p      Principal
		topic  string
		reason string
	}{
		{"device on a shipment granted to its org", devA, "coldchain/v1/S1/L1/readings", ""},
		{"device on a shipment not granted", devA, "coldchain/v1/S2/L1/readings", ReasonNotGranted},
		{"device with no org", noOrg, "coldchain/v1/S1/L1/readings", ReasonNotGranted},
		{"site on a granted shipment", siteW, "coldchain/v1/S1/handovers", ""},
		{"site on a shipment not granted", siteW, "coldchain/v1/S2/handovers", ReasonNotGranted},
		{"the topic rule still first", devA, "coldchain/v1/S1/L2/readings", ReasonNotYourTopic},
		{"anonymous is not bound", anon, "coldchain/v1/S2/L1/readings", ""},
		{"the gateway is not bound", gateway, "coldchain/v1/S2/alerts", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, CanPublishGranted(tc.p, tc.topic, granted), tc.reason) })
	}
}

func TestCanSubscribe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Principal
		filter string
		reason string
	}{
		{"anonymous to everything", anon, "#", ReasonNoSubscribe},
		{"anonymous to all coldchain", anon, "coldchain/#", ReasonNoSubscribe},
		{"anonymous to readings", anon, "coldchain/v1/+/+/readings", ReasonNoSubscribe},
		{"anonymous to one shipment's alerts", anon, "coldchain/v1/S1/alerts", ""},
		{"anonymous to all alerts", anon, "coldchain/v1/+/alerts", ""},
		{"anonymous to a multi-level alerts filter", anon, "coldchain/v1/#/alerts", ReasonNoSubscribe},
		{"device to its own readings", devA, "coldchain/v1/S1/L1/readings", ReasonNoSubscribe},
		{"device to alerts", devA, "coldchain/v1/S1/alerts", ReasonNoSubscribe},
		{"site to alerts", siteW, "coldchain/v1/+/alerts", ReasonNoSubscribe},
		{"gateway to everything", gateway, "#", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, CanSubscribe(tc.p, tc.filter), tc.reason)
		})
	}
}

func TestCanSubscribeGranted(t *testing.T) {
	granted := func(ship, org string) bool { return ship == "S1" && org == "shipco" }
	shipper := Principal{Kind: KindToken, ID: "a1", Role: RoleShipper, Org: "shipco"}
	customs := Principal{Kind: KindToken, ID: "a2", Role: RoleCustoms, Org: "shipco"}
	provider := Principal{Kind: KindToken, ID: "a3", Role: RoleProvider, Org: "shipco"}
	admin := Principal{Kind: KindToken, ID: "a4", Role: RoleAdmin}
	orgless := Principal{Kind: KindToken, ID: "a5", Role: RoleShipper}
	for _, tc := range []struct {
		name    string
		p       Principal
		filter  string
		granted func(string, string) bool
		reason  string
	}{
		{"shipper to a granted shipment's alerts", shipper, "coldchain/v1/S1/alerts", granted, ""},
		{"customs to a granted shipment's alerts", customs, "coldchain/v1/S1/alerts", granted, ""},
		{"provider to a granted shipment's alerts", provider, "coldchain/v1/S1/alerts", granted, ""},
		{"shipper to another shipment's alerts", shipper, "coldchain/v1/S2/alerts", granted, ReasonNotGranted},
		{"shipper to every shipment's alerts", shipper, "coldchain/v1/+/alerts", granted, ReasonNoSubscribe},
		{"shipper to its shipment's readings", shipper, "coldchain/v1/S1/L1/readings", granted, ReasonNoSubscribe},
		{"shipper to its shipment's handovers", shipper, "coldchain/v1/S1/handovers", granted, ReasonNoSubscribe},
		{"shipper to everything", shipper, "#", granted, ReasonNoSubscribe},
		{"shipper to a multi-level filter", shipper, "coldchain/v1/#", granted, ReasonNoSubscribe},
		{"a token of no org", orgless, "coldchain/v1/S1/alerts", granted, ReasonNotGranted},
		{"a shipper when grants are not known", shipper, "coldchain/v1/S1/alerts", nil, ReasonNotGranted},
		{"admin to every shipment's alerts", admin, "coldchain/v1/+/alerts", granted, ""},
		{"admin to a shipment granted to nobody", admin, "coldchain/v1/S9/alerts", nil, ""},
		{"admin to readings", admin, "coldchain/v1/+/+/readings", granted, ReasonNoSubscribe},
		{"admin to everything", admin, "#", granted, ReasonNoSubscribe},
		{"a token of an unknown role", Principal{Kind: KindToken, ID: "a6", Role: "metrics", Org: "shipco"}, "coldchain/v1/S1/alerts", granted, ReasonRole},
		{"other principals keep CanSubscribe's rule", anon, "coldchain/v1/+/alerts", nil, ""},
		{"devices still subscribe to nothing", devA, "coldchain/v1/S1/alerts", granted, ReasonNoSubscribe},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, CanSubscribeGranted(tc.p, tc.filter, tc.granted), tc.reason) })
	}
	if d := CanPublish(shipper, "coldchain/v1/S1/L1/readings"); d == nil {
		t.Error("a token may publish readings over MQTT")
	}
}

func TestPinCertificate(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) []byte {
		t.Helper()
		c, err := ca.Client(cn, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c.CertPEM
	}
	der := func(certPEM []byte) []byte { b, _ := pem.Decode(certPEM); return b.Bytes }
	mine, twin := issue("L1"), issue("L1")

	c := Credential{Principal: devA}
	if !c.acceptsCert(der(twin)) {
		t.Fatal("an unpinned credential refused a certificate its CA issued")
	}
	if _, err := c.PinCertificate(issue("L2")); err == nil || !strings.Contains(err.Error(), "common name") {
		t.Fatalf("pinning another device's certificate: %v", err)
	}
	if _, err := c.PinCertificate([]byte("not pem")); err == nil {
		t.Fatal("pinning garbage succeeded")
	}
	fp, err := c.PinCertificate(mine)
	if err != nil {
		t.Fatal(err)
	}
	if fp != CertFingerprint(der(mine)) || len(c.CertSHA256) != 1 {
		t.Fatalf("pinned %v, fingerprint %s", c.CertSHA256, fp)
	}
	if !c.acceptsCert(der(mine)) || c.acceptsCert(der(twin)) {
		t.Fatal("a pinned credential must accept its certificate and no other")
	}
	site := Credential{Principal: siteW}
	if _, err := site.PinCertificate(issue("site.SG-WH1")); err != nil {
		t.Fatalf("a site's certificate names site.ID: %v", err)
	}
	if c.Check([]byte("")) || c.Check([]byte("any-password-at-all")) {
		t.Fatal("a certificate-only credential accepted a password")
	}
}

func check(t *testing.T, d *Denial, reason string) {
	t.Helper()
	switch {
	case reason == "" && d != nil:
		t.Fatalf("refused (%v), want allowed", d)
	case reason != "" && d == nil:
		t.Fatalf("allowed, want refused as %s", reason)
	case d != nil && d.Reason != reason:
		t.Fatalf("refused as %s (%s), want %s", d.Reason, d.Detail, reason)
	}
}

func TestCredential(t *testing.T) {
	if _, err := NewCredential(devA, []byte("short")); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short password: %v, want a too-short error", err)
	}
	if _, err := NewCredential(devA, []byte(strings.Repeat("x", 73))); err == nil {
		t.Fatal("73-byte password accepted; bcrypt would cut it")
	}
	pw := []byte("correct horse battery staple")
	c, err := NewCredential(devA, pw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(c.Hash), string(pw)) {
		t.Fatal("hash contains the password")
	}
	if !c.Check(pw) {
		t.Fatal("the right password is refused")
	}
	if c.Check([]byte("correct horse battery stapler")) {
		t.Fatal("a wrong password is accepted")
	}
}

// startJetStream runs an embedded NATS server for the test
// (package authtest cannot be used here: it imports auth).
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestDirectory(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	d, err := OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if empty, err := d.Empty(ctx); err != nil || !empty {
		t.Fatalf("new registry: Empty = %v, %v; want true", empty, err)
	}
	pw := []byte("device-L1-password-0001")
	c, err := NewCredential(devA, pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if empty, err := d.Empty(ctx); err != nil || empty {
		t.Fatalf("registry with L1: Empty = %v, %v; want false", empty, err)
	}
	if rc, err := NewCredential(Principal{Kind: KindDevice, ID: TokenUsername}, pw); err != nil {
		t.Fatal(err)
	} else if err := d.Add(ctx, rc); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("a device named %q: %v, want refused as reserved", TokenUsername, err)
	}
	if err := d.Add(ctx, c); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v, want ErrExists", err)
	}
	sc, _ := NewCredential(siteW, []byte("site-SG-WH1-password"))
	if err := d.Add(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(ctx, Credential{Principal: Principal{Kind: KindDevice, ID: "bad id"}}); err == nil {
		t.Fatal("an invalid id was registered")
	}

	// A second registry on the same bucket (another gateway) sees it.
	d2, err := OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d2.Authenticate(ctx, "L1", pw)
	if err != nil || p != devA {
		t.Fatalf("authenticate L1: %v, %v; want %v", p, err, devA)
	}
	if p, err := d2.Authenticate(ctx, "site.SG-WH1", []byte("site-SG-WH1-password")); err != nil || p != siteW {
		t.Fatalf("authenticate site: %v, %v", p, err)
	}
	for _, bad := range []struct {
		user, pw string
		want     error
	}{
		{"L1", "device-L1-password-0002", ErrWrongPassword},
		{"L2", "device-L1-password-0001", ErrUnknown},
		{"SG-WH1", "site-SG-WH1-password", ErrUnknown}, // a site without its prefix
		{"site.L1", "device-L1-password-0001", ErrUnknown},
	} {
		if _, err := d2.Authenticate(ctx, bad.user, []byte(bad.pw)); !errors.Is(err, bad.want) {
			t.Errorf("%s/%s: %v, want %v", bad.user, bad.pw, err, bad.want)
		} else if strings.Contains(err.Error(), bad.pw) {
			t.Errorf("the error %q repeats the password", err)
		}
	}
	list, err := d2.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v, %v; want 2 identities", list, err)
	}
	if err := d2.Remove(ctx, KindDevice, "L1"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, "L1", pw); !errors.Is(err, ErrUnknown) {
		t.Fatalf("removed device authenticates: %v", err)
	}
}

func TestSampler(t *testing.T) {
	s := NewSampler(time.Second)
	t0 := time.Unix(1000, 0)
	type step struct {
		key        string
		at         time.Duration
		ok         bool
		suppressed int
	}
	for i, st := range []step{
		{"a", 0, true, 0},
		{"a", 100 * time.Millisecond, false, 0},
		{"b", 200 * time.Millisecond, true, 0}, // keys are independent
		{"a", 900 * time.Millisecond, false, 0},
		{"a", 1000 * time.Millisecond, true, 2}, // stands for the two held back
		{"a", 1500 * time.Millisecond, false, 0},
		{"a", 5 * time.Second, true, 1},
		{"b", 5 * time.Second, true, 0},
	} {
		ok, n := s.Allow(st.key, t0.Add(st.at))
		if ok != st.ok || n != st.suppressed {
			t.Errorf("step %d (%s at %v): Allow = %v, %d; want %v, %d", i, st.key, st.at, ok, n, st.ok, st.suppressed)
		}
	}
}

func TestThrottle(t *testing.T) {
	th := &Throttle{Max: 3, Window: time.Minute, Cap: 4}
	t0 := time.Unix(5000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for i := range 2 {
		th.Fail("a", at(time.Duration(i)*time.Second))
	}
	if b, _ := th.Blocked("a", at(3*time.Second)); b {
		t.Fatal("blocked after 2 failures, Max 3")
	}
	th.Fail("a", at(4*time.Second))
	b, wait := th.Blocked("a", at(10*time.Second))
	if !b || wait != 50*time.Second {
		t.Fatalf("after 3 failures: blocked %v, retry in %v; want true, 50s", b, wait)
	}
	if b, _ := th.Blocked("b", at(10*time.Second)); b {
		t.Fatal("another source is blocked")
	}
	if b, _ := th.Blocked("a", at(time.Minute)); b {
		t.Fatal("still blocked once the window has passed")
	}
	// Tracking is bounded: many sources never grow the map past Cap.
	for i := range 100 {
		th.Fail(string(rune('A'+i)), at(2*time.Minute+time.Duration(i)*time.Millisecond))
	}
	th.mu.Lock()
	n := len(th.sources)
	th.mu.Unlock()
	if n > th.Cap {
		t.Fatalf("%d sources tracked, cap %d", n, th.Cap)
	}
}
