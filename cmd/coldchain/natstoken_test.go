package main

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/natsserver"
)

// TestRegistryCommandsReadEmbeddedToken checks that the registry commands,
// pointed at a configuration whose NATS is the embedded server, read the
// token the gateway keeps in its data dir, and say what to do when there
// is none yet.
func TestRegistryCommandsReadEmbeddedToken(t *testing.T) {
	data := t.TempDir()
	tokenFile := filepath.Join(data, "nats.token")
	writeConfig := func(listen string) string {
		p := filepath.Join(t.TempDir(), "coldchain.yaml")
		if err := os.WriteFile(p, []byte("data_dir: "+data+"\nnats:\n  listen: "+listen+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	list := func(cfgPath string) (int, string, string) {
		var o, e bytes.Buffer
		code := run([]string{"devices", "list", "--config", cfgPath}, &o, &e)
		return code, o.String(), e.String()
	}

	if code, _, errOut := list(writeConfig("127.0.0.1:4222")); code != 1 || !strings.Contains(errOut, tokenFile) || !strings.Contains(errOut, "start the gateway with this configuration first") {
		t.Fatalf("no token file yet: exit %d: %q", code, errOut)
	}

	token, err := natsserver.TokenFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20, Token: token}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	u, err := url.Parse(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(u.Host)
	if code, out, errOut := list(cfgPath); code != 0 {
		t.Fatalf("with the token file: exit %d: %s %s", code, out, errOut)
	}

	if err := os.WriteFile(tokenFile, []byte("not-the-servers-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := list(cfgPath); code != 1 || !strings.Contains(strings.ToLower(errOut), "authorization") {
		t.Fatalf("with a wrong token: exit %d: %q", code, errOut)
	}
}
