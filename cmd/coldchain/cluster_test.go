package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/merkle"
)

// clusterCLI starts an embedded NATS server and returns a runner of
// `coldchain cluster` against it (exit code, stdout, stderr) and a
// JetStream context on it.
func clusterCLI(t *testing.T) (func(args ...string) (int, string, string), jetstream.JetStream) {
	t.Helper()
	ns, err := natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 1 << 20}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"cluster"}, append(args, "--nats", ns.ClientURL())...), &out, &errb)
		return code, out.String(), errb.String()
	}, js
}

// TestClusterEpochCommands: `coldchain cluster epoch` shows the latest
// cut step, reset-steps refuses without --yes and deletes the log with.
func TestClusterEpochCommands(t *testing.T) {
	cli, js := clusterCLI(t)
	if code, out, _ := cli("epoch"); code != 0 || !strings.Contains(out, "no epoch cut yet") {
		t.Fatalf("epoch on an empty cluster: %d %q", code, out)
	}
	ctx := context.Background()
	steps, err := anchor.OpenStepLog(ctx, js, 1, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := steps.Record(ctx, 0, anchor.Step{Epoch: 1, Root: merkle.Hash{0xab}, Cut: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := cli("epoch"); code != 0 || !strings.Contains(out, "epoch 1 root ab00") || !strings.Contains(out, "by gw-1 at 2026-12-07T10:00:00Z (step 1)") {
		t.Fatalf("epoch: %d %q", code, out)
	}
	if code, _, errOut := cli("reset-steps"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("reset-steps without --yes: %d %q", code, errOut)
	}
	if end, _, err := steps.End(ctx); err != nil || end != seq {
		t.Fatalf("reset-steps without --yes touched the log: end %d %v", end, err)
	}
	state, err := cluster.OpenState(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.ClaimContract(ctx, cluster.ContractRecord{ChainID: 31337, Contract: "0x5FbDB2315678afecb367f032d93F642f64180aa3", Member: "gw-1"}); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := cli("reset-steps", "--yes"); code != 0 || !strings.Contains(out, "deleted the step log") || !strings.Contains(out, "forgot the anchor contract 0x5FbDB") {
		t.Fatalf("reset-steps --yes: %d %q", code, out)
	}
	if code, out, _ := cli("epoch"); code != 0 || !strings.Contains(out, "no epoch cut yet") {
		t.Fatalf("epoch after reset-steps: %d %q", code, out)
	}
	if _, ok, err := state.Contract(ctx); err != nil || ok {
		t.Fatalf("the contract record after reset-steps: %v %v", ok, err)
	}
}

// TestClusterPartitionsCommand: `coldchain cluster partitions` shows the
// recorded count; --set needs --yes and records a new one, which a gateway
// with the old count is then refused by.
func TestClusterPartitionsCommand(t *testing.T) {
	cli, js := clusterCLI(t)
	if code, out, _ := cli("partitions"); code != 0 || !strings.Contains(out, "no partition count recorded yet") {
		t.Fatalf("partitions on an empty cluster: %d %q", code, out)
	}
	ctx := context.Background()
	state, err := cluster.OpenState(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.ClaimPartitions(ctx, 4, "gw-1"); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := cli("partitions"); code != 0 || !strings.Contains(out, "4 partitions (recorded by gw-1)") {
		t.Fatalf("partitions: %d %q", code, out)
	}
	if code, _, errOut := cli("partitions", "--set", "8"); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("partitions --set without --yes: %d %q", code, errOut)
	}
	if code, _, errOut := cli("partitions", "--set", "9999", "--yes"); code != 2 || !strings.Contains(errOut, "at most 256") {
		t.Fatalf("partitions --set 9999: %d %q", code, errOut)
	}
	if err := state.ClaimPartitions(ctx, 4, "gw-2"); err != nil {
		t.Fatalf("a second gateway with the same count: %v", err)
	}
	if code, out, _ := cli("partitions", "--set", "8", "--yes"); code != 0 || !strings.Contains(out, "recorded 8 partitions") {
		t.Fatalf("partitions --set 8 --yes: %d %q", code, out)
	}
	err = state.ClaimPartitions(ctx, 4, "gw-1")
	if !errors.Is(err, cluster.ErrPartitionsDiffer) || !strings.Contains(err.Error(), "set cluster.partitions: 8") {
		t.Fatalf("a gateway with the old count: %v", err)
	}
}
