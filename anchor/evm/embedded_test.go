package evm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/ethereum/go-ethereum/common"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func embeddedConfig() Config {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:0"
	return c
}

func openEmbedded(t *testing.T, dir string) *Anchorer {
	t.Helper()
	a, err := Open(ctxT(t), embeddedConfig(), dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a
}

// waitState polls Status until root reaches want (the embedded chain seals
// on demand, so this takes a few polls at most).
func waitState(ctx context.Context, a *Anchorer, root common.Hash, want anchor.State) (anchor.Receipt, error) {
	for {
		r, err := a.Status(ctx, root)
		if err == nil && r.State >= want {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("waiting for %s: %w (last: %+v, %v)", want, ctx.Err(), r, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestEmbeddedCleanRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	r1, r2 := root("embedded-1"), root("embedded-2")

	a := openEmbedded(t, dir)
	if err := a.Submit(ctx, 1, r1); err != nil {
		t.Fatal(err)
	}
	fin, err := waitState(ctx, a, r1, anchor.StateFinal)
	if err != nil {
		t.Fatal(err)
	}
	url := a.DevChain().URL()
	if err := VerifyAnchor(ctx, url, fin, r1); err != nil {
		t.Fatalf("VerifyAnchor over %s: %v", url, err)
	}
	contract := a.Contract()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := openEmbedded(t, dir)
	defer b.Close()
	if b.Contract() != contract {
		t.Fatalf("contract %s after restart, want the remembered %s", b.Contract(), contract)
	}
	got, err := b.Status(ctx, r1)
	if err != nil || got != fin {
		t.Fatalf("after restart %+v, %v; want %+v", got, err, fin)
	}
	if err := VerifyAnchor(ctx, b.DevChain().URL(), fin, r1); err != nil {
		t.Fatalf("VerifyAnchor after restart: %v", err)
	}
	if err := b.Submit(ctx, 2, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := waitState(ctx, b, r2, anchor.StateFinal); err != nil {
		t.Fatal(err)
	}
}

// childEnv makes the test binary act as the gateway process that anchors
// and is then killed (TestEmbeddedChild).
const childEnv = "COLDCHAIN_EVM_CHILD"

// TestEmbeddedChild is not a test on its own: run by TestEmbeddedKill9 in a
// child process, it opens the embedded chain in $COLDCHAIN_EVM_CHILD, anchors
// a root, prints the receipt as one JSON line once the state asked for in
// $COLDCHAIN_EVM_CHILD_STATE is reached ("sent" right after Submit), and
// waits to be killed.
func TestEmbeddedChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("run by TestEmbeddedKill9")
	}
	ctx := context.Background()
	a, err := Open(ctx, embeddedConfig(), dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	r := root(os.Getenv(childEnv + "_ROOT"))
	if err := a.Submit(ctx, 1, r); err != nil {
		t.Fatal(err)
	}
	var rc anchor.Receipt
	if os.Getenv(childEnv+"_STATE") != "sent" {
		if rc, err = waitState(ctx, a, r, anchor.StateIncluded); err != nil {
			t.Fatal(err)
		}
	}
	json.NewEncoder(os.Stdout).Encode(rc)
	select {} // killed here
}

func TestEmbeddedKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, state := range []string{"sent", "included"} {
		t.Run("after-"+state, func(t *testing.T) {
			dir := t.TempDir()
			ctx := ctxT(t)
			name := "kill9-" + state
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEmbeddedChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+dir, childEnv+"_ROOT="+name, childEnv+"_STATE="+state)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadBytes('\n')
			// SIGKILL at once: no shutdown, nothing flushed by go-ethereum.
			if kerr := cmd.Process.Signal(syscall.SIGKILL); kerr != nil {
				t.Fatal(kerr)
			}
			_ = cmd.Wait()
			if err != nil {
				t.Fatalf("child said nothing: %v", err)
			}
			var before anchor.Receipt
			if err := json.Unmarshal(line, &before); err != nil {
				t.Fatalf("child output %q: %v", line, err)
			}

			a := openEmbedded(t, dir)
			defer a.Close()
			r := root(name)
			fin, err := waitState(ctx, a, r, anchor.StateFinal)
			if err != nil {
				t.Fatal(err)
			}
			if state == "included" && (fin.TxHash != before.TxHash || fin.Block != before.Block || fin.BlockTime != before.BlockTime) {
				t.Fatalf("after kill -9: %+v, the child saw %+v", fin, before)
			}
			if err := VerifyAnchor(ctx, a.DevChain().URL(), fin, r); err != nil {
				t.Fatalf("VerifyAnchor after kill -9: %v", err)
			}
			t.Logf("after kill -9 (%s): %+v", state, fin)
		})
	}
}
