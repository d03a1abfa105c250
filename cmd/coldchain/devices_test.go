package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/embedded/natsserver"
)

// TestDevicesCommand registers a device with a generated password and a
// site with one from standard input against a real NATS server, checks the
// registry authenticates exactly those, lists them, refuses a second add,
// and removes one.
func TestDevicesCommand(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	url := ns.ClientURL()
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
	} else if strings.Contains(out, "site-password-from-stdin") || !strings.Contains(out, "MQTT username: site:SG-WH1") {
		t.Fatalf("add site printed %q", out)
	}
	if code, _, errOut := devices("", "add", "L1"); code != 1 || !strings.Contains(errOut, "already registered") || !strings.Contains(errOut, "devices remove L1") {
		t.Fatalf("second add of L1: exit %d: %q", code, errOut)
	}
	if code, _, errOut := devices("short\n", "add", "L2", "--password-stdin"); code != 1 || !strings.Contains(errOut, "too short") {
		t.Fatalf("short password: exit %d: %q", code, errOut)
	}

	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	dir, err := auth.OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := dir.Authenticate(ctx, "L1", []byte(generated)); err != nil || p.Org != "acme" || p.Kind != auth.KindDevice {
		t.Fatalf("L1 with the printed password: %v, %v", p, err)
	}
	if _, err := dir.Authenticate(ctx, "site:SG-WH1", []byte("site-password-from-stdin")); err != nil {
		t.Fatalf("site with its password: %v", err)
	}
	if _, err := dir.Authenticate(ctx, "L2", []byte("short")); !errors.Is(err, auth.ErrUnknown) {
		t.Fatalf("L2 registered despite a short password: %v", err)
	}

	code, out, _ = devices("", "list")
	if code != 0 || !regexp.MustCompile(`device\s+L1\s+acme\s+L1\n`).MatchString(out) || !regexp.MustCompile(`site\s+SG-WH1\s+acme\s+site:SG-WH1\n`).MatchString(out) {
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
	if code, _, _ := devices("", "frobnicate"); code != 2 {
		t.Fatalf("unknown verb: exit %d, want 2", code)
	}
}
