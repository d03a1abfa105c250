// Package authtest opens identity registries for tests: on a fresh
// embedded NATS, or on a running gateway's.
package authtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/embedded/natsserver"
)

// Start runs an embedded NATS server for the test and returns its client
// URL and the registry on it; both go away when the test ends.
func Start(t testing.TB) (url string, dir *auth.Directory) {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL(), Open(t, ns.ClientURL())
}

// Open returns the registry on the NATS server at url (a gateway's),
// closing its connection when the test ends.
func Open(t testing.TB, url string) *auth.Directory {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := auth.OpenDirectory(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Token adds an API token of p, valid for an hour, and returns it and its
// id.
func Token(t testing.TB, dir *auth.Directory, p auth.Principal) (token, id string) {
	t.Helper()
	tok, c, err := auth.NewToken(p, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Add(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return tok, c.ID
}
