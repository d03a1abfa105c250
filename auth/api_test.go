package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMayDo(t *testing.T) {
	tok := func(r Role) Principal {
		return Principal{Kind: KindToken, ID: "0123456789abcdef", Org: "acme", Role: r, Name: "x"}
	}
	allowed := map[Role][]Action{
		RoleProvider: {ActOpen, ActWrite, ActRead, ActProof, ActDeadLetters},
		RoleShipper:  {ActOpen, ActRead, ActAck, ActProof},
		RoleCustoms:  {ActOpen, ActRead, ActProof},
		RoleAdmin:    {ActOpen, ActWrite, ActRead, ActAck, ActProof, ActDeadLetters, ActMetrics},
		"":           {ActOpen}, // anonymous
	}
	all := []Action{ActOpen, ActWrite, ActRead, ActAck, ActProof, ActDeadLetters, ActMetrics}
	for role, ok := range allowed {
		p := tok(role)
		if role == "" {
			p = Principal{Kind: KindAnonymous}
		}
		for _, a := range all {
			want := false
			for _, x := range ok {
				want = want || x == a
			}
			d := MayDo(p, a)
			if (d == nil) != want {
				t.Errorf("%s %q: MayDo = %v, want allowed %v", p, a, d, want)
			}
			switch {
			case d == nil:
			case role == "" && d.Reason != ReasonNoToken:
				t.Errorf("anonymous %q: reason %s, want %s", a, d.Reason, ReasonNoToken)
			case role != "" && d.Reason != ReasonRole:
				t.Errorf("%s %q: reason %s, want %s", role, a, d.Reason, ReasonRole)
			}
		}
	}
	if d := MayDo(tok(RoleShipper), "frobnicate"); d == nil {
		t.Error("an action with no rule was allowed")
	}
}

func TestScope(t *testing.T) {
	granted := func(ship, org string) bool { return ship == "S1" && org == "acme" }
	shipper := Principal{Kind: KindToken, Org: "acme", Role: RoleShipper, Name: "qa@acme"}
	other := Principal{Kind: KindToken, Org: "beta", Role: RoleShipper, Name: "qa@beta"}
	admin := Principal{Kind: KindToken, Role: RoleAdmin, Name: "ops"}
	for _, tc := range []struct {
		name  string
		scope *Scope
		sees  map[string]bool
	}{
		{"shipper of the granted org", NewScope(shipper, granted), map[string]bool{"S1": true, "S2": false}},
		{"shipper of another org", NewScope(other, granted), map[string]bool{"S1": false, "S2": false}},
		{"admin", NewScope(admin, granted), map[string]bool{"S1": true, "S2": true}},
		{"open API", OpenScope(), map[string]bool{"S1": true, "S2": true}},
		{"no grants known", NewScope(shipper, nil), map[string]bool{"S1": false}},
		{"no scope at all", nil, map[string]bool{"S1": false}},
	} {
		for ship, want := range tc.sees {
			if got := tc.scope.Sees(ship); got != want {
				t.Errorf("%s: Sees(%s) = %v, want %v", tc.name, ship, got, want)
			}
		}
	}
	if a := NewScope(shipper, granted).Actor(); !strings.Contains(a, "qa@acme") || !strings.Contains(a, "acme") {
		t.Errorf("Actor = %q, want the token's name and org", a)
	}
	if a := OpenScope().Actor(); a != "" {
		t.Errorf("anonymous Actor = %q, want empty", a)
	}
	ctx := WithScope(context.Background(), OpenScope())
	if !ScopeFrom(ctx).Sees("x") || ScopeFrom(context.Background()) != nil {
		t.Error("scope does not travel in the context")
	}
}

// TestTokenExpiry: a token is accepted until its expiry, refused from then
// on with ErrExpired, and only for its right secret.
func TestTokenExpiry(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	d, err := OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	token, c, err := NewToken(Principal{Org: "acme", Role: RoleCustoms, Name: "broker"}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AuthenticateToken(ctx, token); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	now = now.Add(time.Hour)
	if _, err := d.AuthenticateToken(ctx, token); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if _, err := d.AuthenticateToken(ctx, token+"x"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("a wrong secret of an expired token: %v, want ErrWrongPassword (expiry is told only to the holder)", err)
	}
	list, err := d.Tokens(ctx)
	if err != nil || len(list) != 1 || !list[0].Expires.Equal(now) || list[0].Hash != nil {
		t.Fatalf("tokens: %+v, %v; want one expiring at %v, without its hash", list, err, now)
	}
}

func TestTokensAndGrants(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	d, err := OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	token, c, err := NewToken(Principal{Org: "acme", Role: RoleShipper, Name: "qa@acme"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(c.Hash), token) {
		t.Fatal("the token is stored in clear")
	}
	p, err := d.AuthenticateToken(ctx, token)
	if err != nil || p.Role != RoleShipper || p.Org != "acme" || p.Kind != KindToken || p.Name != "qa@acme" {
		t.Fatalf("AuthenticateToken: %+v, %v", p, err)
	}
	for _, bad := range []string{"", "Bearer " + token, token[:len(token)-1], token + "x", "cct_zz" + token[6:], strings.Replace(token, "cct_", "cc_", 1)} {
		if _, err := d.AuthenticateToken(ctx, bad); err == nil {
			t.Errorf("%q authenticated", bad)
		}
	}
	if list, err := d.Tokens(ctx); err != nil || len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("Tokens: %v, %v", list, err)
	}
	if list, err := d.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List shows tokens as devices: %v, %v", list, err)
	}

	g, err := d.WatchGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if err := d.Grant(ctx, "S1", "acme"); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	<-g.Ready()
	wait("the grant seen", func() bool { return g.Granted("S1", "acme") })
	if g.Granted("S1", "beta") || g.Granted("S2", "acme") {
		t.Fatal("a grant leaks to another org or shipment")
	}
	// A second watcher (another gateway) starts with the grant loaded.
	g2, err := d.WatchGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Stop()
	<-g2.Ready()
	if !g2.Granted("S1", "acme") {
		t.Fatal("a new watcher does not load the existing grants before Ready")
	}
	if err := d.Revoke(ctx, "S1", "acme"); err != nil {
		t.Fatal(err)
	}
	wait("the revocation seen", func() bool { return !g.Granted("S1", "acme") })
	if err := d.Revoke(ctx, "S1", "acme"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("second revoke: %v, want ErrUnknown", err)
	}
	if err := d.Remove(ctx, KindToken, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AuthenticateToken(ctx, token); !errors.Is(err, ErrUnknown) {
		t.Fatalf("revoked token: %v", err)
	}
}

// TestScopeCheckReportsRefusals: Check passes what the scope sees and
// reports the rest once each, as shipment_not_granted; a nil scope
// refuses without panicking.
func TestScopeCheckReportsRefusals(t *testing.T) {
	granted := func(ship, org string) bool { return ship == "SHP-A" && org == "acme" }
	s := NewScope(Principal{Kind: KindToken, ID: "t1", Org: "acme", Role: RoleShipper}, granted)
	var got []*Denial
	s.OnDenied(func(d *Denial) { got = append(got, d) })
	if !s.Check("SHP-A") || s.Check("SHP-Y") {
		t.Fatal("Check does not follow the grants")
	}
	if len(got) != 1 || got[0].Reason != ReasonNotGranted || !strings.Contains(got[0].Detail, "SHP-Y") {
		t.Fatalf("refusals reported %+v, want one shipment_not_granted naming SHP-Y", got)
	}
	var none *Scope
	if none.Check("SHP-A") {
		t.Fatal("a nil scope sees a shipment")
	}
	none.Refuse(&Denial{})
}
