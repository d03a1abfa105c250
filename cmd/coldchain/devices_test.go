package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
)

// TestDevicesCommand registers a device with a generated password and a
// site with one from standard input against a real NATS server, checks the
// registry authenticates exactly those, lists them, refuses a second add,
// and removes one.
func TestDevicesCommand(t *testing.T) {
	url, dir := authtest.Start(t)
	devices := func(in string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		stdin = strings.NewReader(in)
		defer func() { stdin = nil }()
		var o, e bytes.Buffer
		code = run(append([]string{"devices"}, append(args, "--nats", url)...), &o, &e)
		return code, o.String(), e.String()
	}

	code, out, errOut := devices("", "add", "L1", "--org", "acme")
	if code != 0 {
		t.Fatalf("add L1: exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`MQTT password: (\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "MQTT username: L1") {
		t.Fatalf("add printed %q: no username and generated password", out)
	}
	generated := m[1]
	if code, out, errOut := devices("site-password-from-stdin\n", "add", "SG-WH1", "--kind", "site", "--org", "acme", "--password-stdin"); code != 0 {
		t.Fatalf("add site: exit %d: %s", code, errOut)
	} else if strings.Contains(out, "site-password-from-stdin") || !strings.Contains(out, "MQTT username: site.SG-WH1") {
		t.Fatalf("add site printed %q", out)
	}
	if code, _, errOut := devices("", "add", "L1", "--org", "acme"); code != 1 || !strings.Contains(errOut, "already registered") || !strings.Contains(errOut, "devices remove L1") {
		t.Fatalf("second add of L1: exit %d: %q", code, errOut)
	}
	if code, _, errOut := devices("short\n", "add", "L2", "--org", "acme", "--password-stdin"); code != 1 || !strings.Contains(errOut, "too short") {
		t.Fatalf("short password: exit %d: %q", code, errOut)
	}

	ctx := context.Background()
	if p, err := dir.Authenticate(ctx, "L1", []byte(generated)); err != nil || p.Org != "acme" || p.Kind != auth.KindDevice {
		t.Fatalf("L1 with the printed password: %v, %v", p, err)
	}
	if _, err := dir.Authenticate(ctx, "site.SG-WH1", []byte("site-password-from-stdin")); err != nil {
		t.Fatalf("site with its password: %v", err)
	}
	if _, err := dir.Authenticate(ctx, "L2", []byte("short")); !errors.Is(err, auth.ErrUnknown) {
		t.Fatalf("L2 registered despite a short password: %v", err)
	}

	code, out, _ = devices("", "list")
	if code != 0 || !regexp.MustCompile(`device\s+L1\s+acme\s+L1\n`).MatchString(out) || !regexp.MustCompile(`site\s+SG-WH1\s+acme\s+site.SG-WH1\n`).MatchString(out) {
		t.Fatalf("list: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "$2a$") {
		t.Fatalf("list shows a hash:\n%s", out)
	}
	if code, _, errOut := devices("", "remove", "L1"); code != 0 {
		t.Fatalf("remove: exit %d: %s", code, errOut)
	}
	if _, err := dir.Authenticate(ctx, "L1", []byte(generated)); !errors.Is(err, auth.ErrUnknown) {
		t.Fatalf("removed L1 still authenticates: %v", err)
	}
	if code, _, errOut := devices("", "add", "L3"); code != 2 || !strings.Contains(errOut, "--org") {
		t.Fatalf("add without an org: exit %d: %q", code, errOut)
	}
	if code, _, _ := devices("", "frobnicate"); code != 2 {
		t.Fatalf("unknown verb: exit %d, want 2", code)
	}
}

// TestTokensCommand creates a token and a grant through the CLI against a
// real NATS server and checks the registry answers for them, then revokes
// both.
func TestTokensCommand(t *testing.T) {
	url, dir := authtest.Start(t)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		var o, e bytes.Buffer
		code := run(append(args, "--nats", url), &o, &e)
		return code, o.String(), e.String()
	}
	if code, _, errOut := cli("tokens", "create", "--role", "shipper", "--name", "qa@acme"); code != 2 || !strings.Contains(errOut, "--org") {
		t.Fatalf("shipper token without an org: exit %d: %s", code, errOut)
	}
	if code, _, errOut := cli("tokens", "create", "--role", "pilot", "--org", "acme", "--name", "x"); code != 2 || !strings.Contains(errOut, "provider, shipper, customs or admin") {
		t.Fatalf("unknown role: exit %d: %s", code, errOut)
	}
	code, out, errOut := cli("tokens", "create", "--role", "shipper", "--org", "acme", "--name", "qa@acme")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	m := regexp.MustCompile(`token: (cct_\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create printed no token: %q", out)
	}
	if code, _, errOut := cli("shipments", "grant", "SHP-A", "--org", "acme"); code != 0 {
		t.Fatalf("grant: exit %d: %s", code, errOut)
	}

	ctx := context.Background()
	p, err := dir.AuthenticateToken(ctx, m[1])
	if err != nil || p.Role != auth.RoleShipper || p.Org != "acme" || p.Name != "qa@acme" {
		t.Fatalf("the printed token: %+v, %v", p, err)
	}
	g, err := dir.WatchGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	<-g.Ready()
	if !g.Granted("SHP-A", "acme") {
		t.Fatal("the grant is not in the registry")
	}
	code, out, _ = cli("tokens", "list")
	if code != 0 || !regexp.MustCompile(p.ID+`\s+shipper\s+acme\s+qa@acme`).MatchString(out) || strings.Contains(out, m[1]) {
		t.Fatalf("list: exit %d:\n%s", code, out)
	}
	if code, _, errOut := cli("tokens", "revoke", p.ID); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errOut)
	}
	if _, err := dir.AuthenticateToken(ctx, m[1]); !errors.Is(err, auth.ErrUnknown) {
		t.Fatalf("revoked token: %v", err)
	}
	if code, _, errOut := cli("shipments", "revoke", "SHP-A", "--org", "acme"); code != 0 {
		t.Fatalf("revoke grant: exit %d: %s", code, errOut)
	}
	if code, _, _ := cli("shipments", "revoke", "SHP-A", "--org", "acme"); code != 1 {
		t.Fatalf("second revoke of the grant: exit %d, want 1", code)
	}
}
