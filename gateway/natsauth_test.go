package gateway

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/coldchain/coldchain/embedded/natsserver"
)

// TestEmbeddedNATSRequiresToken checks that the embedded NATS server, which
// holds the streams the gateway treats as the source of truth and the
// identity registry, refuses a local process without its token, that the
// token the gateway made is kept owner-only in the data dir, and that a
// restart keeps the same token, so the registry commands keep working.
func TestEmbeddedNATSRequiresToken(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	gw := startGateway(t, cfg)

	u, err := url.Parse(gw.g.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	token := u.User.Username()
	if token == "" {
		t.Fatalf("NATSURL %q carries no token", gw.g.NATSURL())
	}
	bare := *u
	bare.User = nil
	for name, opts := range map[string][]nats.Option{
		"no token":    nil,
		"wrong token": {nats.Token(strings.Repeat("x", len(token)))},
	} {
		nc, err := nats.Connect(bare.String(), append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: a client connected to the embedded NATS server", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: refused, but not for authorization: %v", name, err)
		}
	}
	nc, err := nats.Connect(gw.g.NATSURL())
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()

	fi, err := os.Stat(cfg.NATSTokenFile())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if got, err := natsserver.ReadToken(cfg.NATSTokenFile()); err != nil || got != token {
		t.Errorf("token file holds %q (%v), the server uses another", got, err)
	}
	gw.stop()

	gw2 := startGateway(t, cfg)
	defer gw2.stop()
	if !strings.Contains(gw2.g.NATSURL(), "//"+token+"@") {
		t.Errorf("a restart changed the token")
	}
}

// TestEmbeddedNATSConfiguredToken checks that nats.token, when set, is the
// token the embedded server requires and no token file is made.
func TestEmbeddedNATSConfiguredToken(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NATS.Token = "configured-nats-token-0123456789"
	gw := startGateway(t, cfg)
	defer gw.stop()
	u, err := url.Parse(gw.g.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	if got := u.User.Username(); got != cfg.NATS.Token {
		t.Errorf("server token %q, want the configured one", got)
	}
	if _, err := os.Stat(cfg.NATSTokenFile()); !os.IsNotExist(err) {
		t.Errorf("a token file was made though nats.token is set: %v", err)
	}
}
