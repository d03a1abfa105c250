package evm

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/embedded/geth"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// anchorFinal submits root on sim and commits until it is final.
func anchorFinal(t *testing.T, sim *simChain, a *Anchorer, epoch uint64, root common.Hash) anchor.Receipt {
	t.Helper()
	if err := a.Submit(ctxT(t), epoch, root); err != nil {
		t.Fatal(err)
	}
	for range a.cfg.Confirmations {
		sim.Commit()
	}
	return mustStatus(t, a, root, anchor.StateFinal)
}

func TestVerifyAnchor(t *testing.T) {
	sim := newSim(t)
	a := newAnchorer(t, sim, testConfig(), t.TempDir())
	ctx := ctxT(t)
	r1, r2 := root("verify-1"), root("verify-2")
	good := anchorFinal(t, sim, a, 1, r1)
	other := anchorFinal(t, sim, a, 2, r2)

	// A reverted transaction: anchoring r1 again (AlreadyAnchored).
	nonce, _ := sim.Client().NonceAt(ctx, a.Account(), nil)
	tip, feeCap, err := a.suggestFees(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Contract()
	revert, err := types.SignNewTx(sim.key, types.LatestSignerForChainID(big.NewInt(geth.ChainID)), &types.DynamicFeeTx{
		ChainID: big.NewInt(geth.ChainID), Nonce: nonce, GasTipCap: tip, GasFeeCap: feeCap, Gas: 100_000,
		To: &addr, Data: a.abi.PackAnchor(r1, 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Client().SendTransaction(ctx, revert); err != nil {
		t.Fatal(err)
	}
	sim.Commit()
	rc, err := sim.Client().TransactionReceipt(ctx, revert.Hash())
	if err != nil || rc.Status != types.ReceiptStatusFailed {
		t.Fatalf("re-anchoring did not revert: %+v, %v", rc, err)
	}
	rh, _ := sim.Client().HeaderByNumber(ctx, rc.BlockNumber)
	reverted := anchor.Receipt{State: anchor.StateIncluded, ChainID: geth.ChainID, Contract: good.Contract,
		TxHash: revert.Hash().Hex(), Block: rc.BlockNumber.Uint64(), BlockTime: int64(rh.Time)}

	if err := verify(ctx, sim.Client(), good, r1); err != nil {
		t.Fatalf("good receipt: %v", err)
	}
	mut := func(f func(r *anchor.Receipt)) anchor.Receipt { r := good; f(&r); return r }
	for _, tc := range []struct {
		name    string
		receipt anchor.Receipt
		root    common.Hash
		want    error
	}{
		{"malformed-contract", mut(func(r *anchor.Receipt) { r.Contract = "0x1234" }), r1, ErrBadReceipt},
		{"malformed-tx-hash", mut(func(r *anchor.Receipt) { r.TxHash = good.TxHash[2:] }), r1, ErrBadReceipt},
		{"pending-no-block", mut(func(r *anchor.Receipt) { r.Block = 0 }), r1, ErrBadReceipt},
		{"wrong-chain-id", mut(func(r *anchor.Receipt) { r.ChainID = 1 }), r1, ErrChainID},
		{"contract-is-an-account", mut(func(r *anchor.Receipt) { r.Contract = a.Account().Hex() }), r1, ErrContractCode},
		{"tx-not-found", mut(func(r *anchor.Receipt) { r.TxHash = common.Hash{1}.Hex() }), r1, ErrTxNotFound},
		{"wrong-block", mut(func(r *anchor.Receipt) { r.Block++ }), r1, ErrWrongBlock},
		{"wrong-block-time", mut(func(r *anchor.Receipt) { r.BlockTime++ }), r1, ErrWrongBlockTime},
		{"other-roots-tx", mut(func(r *anchor.Receipt) { r.TxHash, r.Block, r.BlockTime = other.TxHash, other.Block, other.BlockTime }), r1, ErrRootNotLogged},
		{"wrong-root", good, root("never anchored"), ErrRootNotLogged},
		{"reverted-tx", reverted, r1, ErrTxFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(ctx, sim.Client(), tc.receipt, tc.root)
			if !errors.Is(err, tc.want) {
				t.Fatalf("verify = %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestConfigValidateNamesKey(t *testing.T) {
	key := "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
	rpc := func(f func(c *Config)) Config {
		c := DefaultConfig()
		c.Kind, c.RPCURL, c.Key = KindRPC, "http://127.0.0.1:18545", key
		f(&c)
		return c
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := rpc(func(*Config) {}).Validate(); err != nil {
		t.Fatalf("rpc: %v", err)
	}
	for _, tc := range []struct {
		name, key string
		cfg       Config
	}{
		{"kind", "chain.kind", rpc(func(c *Config) { c.Kind = "ipc" })},
		{"listen", "chain.listen", func() Config { c := DefaultConfig(); c.Listen = "8545"; return c }()},
		{"rpc_url", "chain.rpc_url", rpc(func(c *Config) { c.RPCURL = "127.0.0.1:8545" })},
		{"no-key", "chain.key", rpc(func(c *Config) { c.Key = "" })},
		{"bad-key", "chain.key", rpc(func(c *Config) { c.Key = "zz" + key[2:] })},
		{"two-keys", "chain.key", rpc(func(c *Config) { c.Keystore = "/k.json" })},
		{"contract", "chain.contract", rpc(func(c *Config) { c.Contract = "0x12" })},
		{"confirmations", "chain.confirmations", rpc(func(c *Config) { c.Confirmations = 0 })},
		{"stuck_after", "chain.stuck_after", rpc(func(c *Config) { c.StuckAfter = 0 })},
		{"max_fee_gwei", "chain.max_fee_gwei", rpc(func(c *Config) { c.MaxFeeGwei = 0 })},
		{"rpc_timeout", "chain.rpc_timeout", rpc(func(c *Config) { c.RPCTimeout = 0 })},
		{"embedded-chain-id", "chain.chain_id", func() Config { c := DefaultConfig(); c.ChainID = 1; return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.key) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.key)
			}
			if tc.cfg.Key != "" && len(tc.cfg.Key) > 8 && strings.Contains(err.Error(), tc.cfg.Key[8:]) {
				t.Fatalf("error echoes the key: %v", err)
			}
		})
	}
}
