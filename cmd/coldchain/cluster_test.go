package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/embedded/natsserver"
)

// TestClusterEpochCommands: `coldchain cluster epoch` shows the record,
// forget-epochs refuses without --yes and deletes it with.
func TestClusterEpochCommands(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"cluster"}, append(args, "--nats", ns.ClientURL())...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := cli("epoch"); code != 0 || !strings.Contains(out, "no epoch recorded") {
		t.Fatalf("epoch on an empty cluster: %d %q", code, out)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	ep, err := cluster.OpenEpochs(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ep.Take(ctx, "gw-1", 5, 0, [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Record(ctx, 1, [32]byte{0xab}); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := cli("epoch"); code != 0 || !strings.Contains(out, "epoch 1 root ab00") || !strings.Contains(out, "by gw-1 (term 5)") {
		t.Fatalf("epoch: %d %q", code, out)
	}
	if code, _, errOut := cli("forget-epochs"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("forget-epochs without --yes: %d %q", code, errOut)
	}
	if _, _, ok, _ := ep.Latest(ctx); !ok {
		t.Fatal("forget-epochs without --yes deleted the record")
	}
	if code, out, _ := cli("forget-epochs", "--yes"); code != 0 || !strings.Contains(out, "forgot epoch 1") {
		t.Fatalf("forget-epochs --yes: %d %q", code, out)
	}
	if _, _, ok, _ := ep.Latest(ctx); ok {
		t.Fatal("the record is still there")
	}
	// The old anchorer is fenced out too: its next record fails.
	if err := f.Record(ctx, 2, [32]byte{0xcd}); err == nil {
		t.Fatal("an anchorer recorded an epoch after the record was forgotten")
	}
}
