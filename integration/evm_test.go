//go:build integration

package integration

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
	"go.uber.org/zap/zaptest"
)

func needEVM(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: start Hardhat with `scripts/peers.sh start hardhat` and `eval \"$(scripts/peers.sh env)\"`", name)
	}
	return v
}

// TestEVMHardhat anchors on Hardhat's network, an EVM node independent of
// go-ethereum: deploy on first use, anchor, reach final, verify over
// JSON-RPC, and find the anchor again from a restarted anchorer.
func TestEVMHardhat(t *testing.T) {
	url := needEVM(t, "COLDCHAIN_TEST_EVM_RPC_URL")
	key := needEVM(t, "COLDCHAIN_TEST_EVM_KEY")
	chainID, err := strconv.ParseInt(needEVM(t, "COLDCHAIN_TEST_EVM_CHAIN_ID"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := evm.DefaultConfig()
	cfg.Kind, cfg.RPCURL, cfg.Key, cfg.ChainID = evm.KindRPC, url, key, chainID
	cfg.Confirmations = 3
	dataDir := t.TempDir()
	log := zaptest.NewLogger(t)

	wrong := cfg
	wrong.ChainID = chainID + 1
	if _, err := evm.Open(ctx, wrong, t.TempDir(), log); err == nil {
		t.Fatal("Open accepted a wrong chain id")
	}

	a, err := evm.Open(ctx, cfg, dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Hardhat mines one block per transaction; evm_mine adds empty ones.
	raw, err := rpc.DialContext(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	mine := func() {
		if err := raw.CallContext(ctx, nil, "evm_mine"); err != nil {
			t.Fatal(err)
		}
	}

	root := crypto.Keccak256Hash([]byte("hardhat " + time.Now().String()))
	if err := a.Submit(ctx, 1, root); err != nil {
		t.Fatal(err)
	}
	var r anchor.Receipt
	for i := 0; ; i++ {
		if r, err = a.Status(ctx, root); err != nil {
			t.Fatal(err)
		}
		if r.State == anchor.StateFinal {
			break
		}
		if i == 10 {
			t.Fatalf("not final after %d blocks: %+v", i, r)
		}
		mine()
	}
	if r.ChainID != uint64(chainID) || r.Block == 0 || r.TxHash == "" {
		t.Fatalf("receipt %+v", r)
	}
	if err := evm.VerifyAnchor(ctx, url, r, root); err != nil {
		t.Fatalf("VerifyAnchor: %v", err)
	}
	bad := r
	bad.ChainID = 1
	if err := evm.VerifyAnchor(ctx, url, bad, root); err == nil {
		t.Fatal("VerifyAnchor accepted a wrong chain id")
	}
	ec, err := ethclient.DialContext(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	rc, err := ec.TransactionReceipt(ctx, common.HexToHash(r.TxHash))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Hardhat: %+v, %d gas", r, rc.GasUsed)

	// A restarted anchorer on the same data dir finds the contract and the
	// anchor again, from the chain alone.
	contract := a.Contract()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := evm.Open(ctx, cfg, dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Contract() != contract {
		t.Fatalf("contract %s after restart, want %s", b.Contract(), contract)
	}
	if got, err := b.Status(ctx, root); err != nil || got != r {
		t.Fatalf("after restart %+v, %v; want %+v", got, err, r)
	}
}
