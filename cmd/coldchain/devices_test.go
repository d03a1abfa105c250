package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/pki"
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
	if code != 0 || !regexp.MustCompile(`device\s+L1\s+acme\s+L1\s+-\n`).MatchString(out) || !regexp.MustCompile(`site\s+SG-WH1\s+acme\s+site.SG-WH1\s+-\n`).MatchString(out) {
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
// TestDeviceKeysCommand: keygen writes a key pair the registry takes,
// add --pubkey and add-key register it, list shows its fingerprint, and a
// rotation keeps the old key.
func TestDeviceKeysCommand(t *testing.T) {
	url, dir := authtest.Start(t)
	keys := t.TempDir()
	devices := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var o, e bytes.Buffer
		code = run(append([]string{"devices"}, append(args, "--nats", url)...), &o, &e)
		return code, o.String(), e.String()
	}
	code, out, errOut := devices("keygen", "L1", "--dir", keys)
	if code != 0 || !strings.Contains(out, "fingerprint ") {
		t.Fatalf("keygen: exit %d: %s%s", code, out, errOut)
	}
	fp := regexp.MustCompile(`fingerprint (\S+)`).FindStringSubmatch(out)[1]
	if st, err := os.Stat(filepath.Join(keys, "L1.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, %v; want mode 0600", st, err)
	}
	if code, _, errOut := devices("keygen", "L1", "--dir", keys); code != 1 || !strings.Contains(errOut, "never overwrites") {
		t.Fatalf("second keygen: exit %d: %s", code, errOut)
	}
	if code, out, errOut := devices("add", "L1", "--org", "acme", "--pubkey", filepath.Join(keys, "L1.pub")); code != 0 || !strings.Contains(out, "signing key "+fp) {
		t.Fatalf("add --pubkey: exit %d: %s%s", code, out, errOut)
	}
	if code, out, _ := devices("list"); code != 0 || !regexp.MustCompile(`device\s+L1\s+acme\s+L1\s+`+fp+`\n`).MatchString(out) {
		t.Fatalf("list:\n%s", out)
	}
	// Rotation.
	if code, _, errOut := devices("keygen", "L1-next", "--dir", keys); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := devices("add-key", "L1", "--pubkey", filepath.Join(keys, "L1-next.pub")); code != 0 {
		t.Fatalf("add-key: exit %d: %s", code, errOut)
	}
	dk, err := dir.Keys(context.Background(), "L1")
	if err != nil || len(dk.Keys) != 2 || auth.Fingerprint(dk.Keys[0].PublicKey) != fp {
		t.Fatalf("keys after rotation: %+v, %v", dk, err)
	}
	priv, err := os.ReadFile(filepath.Join(keys, "L1-next.key"))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := auth.ParsePrivateKey(priv); err != nil || !k.Public().(ed25519.PublicKey).Equal(dk.Current()) {
		t.Fatalf("the current key is not keygen's pair: %v", err)
	}
	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"add-key", "L9", "--pubkey", filepath.Join(keys, "L1.pub")}, 1, "register the device first"},
		{[]string{"add-key", "L1", "--pubkey", filepath.Join(keys, "L1.pub")}, 1, "already registered"},
		{[]string{"add-key", "L1"}, 2, "--pubkey"},
		{[]string{"add", "W1", "--kind", "site", "--org", "acme", "--pubkey", filepath.Join(keys, "L1.pub")}, 2, "only devices sign"},
		{[]string{"add", "L2", "--org", "acme", "--pubkey", filepath.Join(keys, "L1.key")}, 1, "not a public key"},
	} {
		if code, _, errOut := devices(bad.args...); code != bad.code || !strings.Contains(errOut, bad.msg) {
			t.Errorf("%v: exit %d: %q; want %d with %q", bad.args, code, errOut, bad.code, bad.msg)
		}
	}
}

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
	// 90 days by default.
	until := regexp.MustCompile(`valid until (\S+)\n`).FindStringSubmatch(out)
	if until == nil {
		t.Fatalf("create did not say until when the token is valid: %q", out)
	}
	if exp, err := time.Parse(time.RFC3339, until[1]); err != nil || exp.Sub(time.Now()) < 89*24*time.Hour || exp.Sub(time.Now()) > 91*24*time.Hour {
		t.Fatalf("token valid until %s, want in 90 days", until[1])
	}
	if code, out, _ := cli("tokens", "create", "--role", "admin", "--name", "ops", "--expires", "0"); code != 0 || !strings.Contains(out, "never expires") {
		t.Fatalf("--expires 0: exit %d: %q", code, out)
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
	if code != 0 || !regexp.MustCompile(p.ID+`\s+shipper\s+acme\s+qa@acme\s+`+until[1]+`\n`).MatchString(out) || !strings.Contains(out, "never") || strings.Contains(out, m[1]) {
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

// TestDevicesAddCert registers a device by its client certificate alone
// (--cert, no password), refuses a certificate naming another identity,
// and pins a site's certificate alongside a password from stdin.
func TestDevicesAddCert(t *testing.T) {
	url, dir := authtest.Start(t)
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile := func(cn string) string {
		t.Helper()
		c, err := ca.Client(cn, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		d := t.TempDir()
		if err := c.Write(d, "c"); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(d, "c.crt")
	}
	devices := func(in string, args ...string) (int, string, string) {
		stdin = strings.NewReader(in)
		defer func() { stdin = nil }()
		var o, e bytes.Buffer
		code := run(append([]string{"devices"}, append(args, "--nats", url)...), &o, &e)
		return code, o.String(), e.String()
	}
	code, out, errOut := devices("", "add", "C1", "--org", "acme", "--cert", certFile("C1"))
	if code != 0 || !strings.Contains(out, "client certificate pinned: SHA-256 ") || !strings.Contains(out, "no password") || strings.Contains(out, "MQTT password:") {
		t.Fatalf("add --cert: exit %d: %s %s", code, out, errOut)
	}
	c, err := dir.Lookup(context.Background(), auth.KindDevice, "C1")
	if err != nil || len(c.CertSHA256) != 1 || len(c.Hash) != 0 {
		t.Fatalf("C1 registered as %+v, %v: want one pinned certificate and no password", c, err)
	}
	if code, _, errOut := devices("", "add", "C2", "--org", "acme", "--cert", certFile("C1")); code != 1 || !strings.Contains(errOut, "common name") {
		t.Fatalf("another identity's certificate: exit %d: %s", code, errOut)
	}
	if code, out, errOut := devices("site-password-from-stdin\n", "add", "WH9", "--kind", "site", "--org", "acme", "--password-stdin", "--cert", certFile("site.WH9")); code != 0 || !strings.Contains(out, "pinned") {
		t.Fatalf("site with a password and a certificate: exit %d: %s %s", code, out, errOut)
	}
	if _, err := dir.Authenticate(context.Background(), "site.WH9", []byte("site-password-from-stdin")); err != nil {
		t.Fatalf("the site's password: %v", err)
	}
	if code, _, errOut := devices("", "list", "--cert", certFile("C1")); code != 2 || !strings.Contains(errOut, "--cert goes with add") {
		t.Fatalf("list --cert: exit %d: %s", code, errOut)
	}
}
