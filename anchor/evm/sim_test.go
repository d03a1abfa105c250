package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/embedded/geth"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// simChain is go-ethereum's simulated backend on mainnet rules (see
// geth.ChainConfig), with a funded key and a miner that takes any tip.
type simChain struct {
	*simulated.Backend
	key *ecdsa.PrivateKey
}

func newSim(t testing.TB) *simChain {
	t.Helper()
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	alloc := types.GenesisAlloc{crypto.PubkeyToAddress(key.PublicKey): {Balance: new(big.Int).Mul(eth, big.NewInt(1000))}}
	sim := simulated.NewBackend(alloc,
		simulated.WithMinerMinTip(big.NewInt(1)),
		func(_ *node.Config, ec *ethconfig.Config) { ec.Genesis.Config = geth.ChainConfig() },
	)
	t.Cleanup(func() { sim.Close() })
	return &simChain{Backend: sim, key: key}
}

func testConfig() Config {
	c := DefaultConfig()
	c.Kind = KindRPC
	c.RPCURL = "sim://"
	c.Key = "00"
	c.Confirmations = 3
	c.StuckAfter = time.Minute
	c.RPCTimeout = 5 * time.Second
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newAnchorer opens an anchorer on sim, deploying the contract (blocks are
// committed while New waits for it) unless cfg.Contract is set.
func newAnchorer(t testing.TB, sim *simChain, cfg Config, stateDir string) *Anchorer {
	t.Helper()
	var (
		a    *Anchorer
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		level := zap.InfoLevel
		if _, bench := t.(*testing.B); bench {
			level = zap.WarnLevel
		}
		a, err = New(ctxT(t), cfg, sim.Client(), sim.key, stateDir, zaptest.NewLogger(t, zaptest.Level(level)))
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			if cfg.Contract == "" {
				sim.Commit()
			}
		}
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// fakeClock is a settable clock for the stuck-transaction timer.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mustStatus(t *testing.T, a *Anchorer, root common.Hash, want anchor.State) anchor.Receipt {
	t.Helper()
	r, err := a.Status(ctxT(t), root)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if r.State != want {
		t.Fatalf("Status = %s (%+v), want %s", r.State, r, want)
	}
	return r
}

func root(s string) common.Hash { return crypto.Keccak256Hash([]byte(s)) }

func TestAnchorReachesFinal(t *testing.T) {
	sim := newSim(t)
	a := newAnchorer(t, sim, testConfig(), t.TempDir())
	ctx := ctxT(t)
	r1 := root("epoch-1")

	if _, err := a.Status(ctx, r1); !errors.Is(err, anchor.ErrUnknownRoot) {
		t.Fatalf("Status before Submit = %v, want ErrUnknownRoot", err)
	}
	if err := a.Submit(ctx, 1, [32]byte{}); !errors.Is(err, ErrZeroRoot) {
		t.Fatalf("Submit(zero) = %v, want ErrZeroRoot", err)
	}
	if err := a.Submit(ctx, 1, r1); err != nil {
		t.Fatal(err)
	}
	p := mustStatus(t, a, r1, anchor.StatePending)
	if p.TxHash == "" || p.Block != 0 || p.ChainID != geth.ChainID || p.Contract != a.Contract().Hex() {
		t.Fatalf("pending receipt %+v", p)
	}
	// Submitting the same root again sends nothing new.
	if err := a.Submit(ctx, 1, r1); err != nil {
		t.Fatal(err)
	}
	// The pool takes a sent transaction in asynchronously: wait for it,
	// and count the block's transactions below.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, _ := sim.Client().PendingNonceAt(ctx, a.Account())
		if n == 2 { // deploy + anchor
			break
		}
		if n > 2 || time.Now().After(deadline) {
			t.Fatalf("pending nonce %d after a repeated Submit, want 2", n)
		}
	}
	// A new root while r1 is not final is refused.
	if err := a.Submit(ctx, 2, root("epoch-2")); !errors.Is(err, ErrBusy) {
		t.Fatalf("Submit of a second root = %v, want ErrBusy", err)
	}

	sim.Commit()
	if blk, err := sim.Client().BlockByNumber(ctx, nil); err != nil {
		t.Fatal(err)
	} else if n := blk.Transactions().Len(); n != 1 {
		t.Fatalf("the block after a repeated Submit holds %d transactions, want the one anchor transaction", n)
	}
	inc := mustStatus(t, a, r1, anchor.StateIncluded)
	if inc.TxHash != p.TxHash || inc.Block == 0 || inc.BlockTime == 0 {
		t.Fatalf("included receipt %+v (pending was %+v)", inc, p)
	}
	sim.Commit()
	mustStatus(t, a, r1, anchor.StateIncluded) // depth 2 of 3
	sim.Commit()
	fin := mustStatus(t, a, r1, anchor.StateFinal)
	if fin.TxHash != inc.TxHash || fin.Block != inc.Block || fin.BlockTime != inc.BlockTime {
		t.Fatalf("final %+v differs from included %+v", fin, inc)
	}
	rc, err := sim.Client().TransactionReceipt(ctx, common.HexToHash(fin.TxHash))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("anchor transaction: %d gas", rc.GasUsed)
	if rc.GasUsed < 44_000 || rc.GasUsed > 48_000 {
		t.Errorf("anchor used %d gas, want about 46,000", rc.GasUsed)
	}
	if err := verify(ctx, sim.Client(), fin, r1); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// Status survives a restart: a new anchorer on the same chain, with an
	// empty state dir, derives it from the contract and its log.
	cfg := testConfig()
	cfg.Contract = a.Contract().Hex()
	b := newAnchorer(t, sim, cfg, t.TempDir())
	if got := mustStatus(t, b, r1, anchor.StateFinal); got != fin {
		t.Fatalf("after restart %+v, want %+v", got, fin)
	}
	// The next root goes through once r1 is final; re-submitting r1 does nothing.
	if err := a.Submit(ctx, 2, root("epoch-2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Submit(ctx, 1, r1); err != nil {
		t.Fatal(err)
	}
}

func TestReorgDropsAnchorBlock(t *testing.T) {
	sim := newSim(t)
	a := newAnchorer(t, sim, testConfig(), t.TempDir())
	ctx := ctxT(t)
	r1 := root("reorged")

	parent, err := sim.Client().HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Submit(ctx, 7, r1); err != nil {
		t.Fatal(err)
	}
	sim.Commit()
	sim.Commit()
	before := mustStatus(t, a, r1, anchor.StateIncluded) // depth 2 of 3
	orig, err := sim.Client().HeaderByNumber(ctx, new(big.Int).SetUint64(before.Block))
	if err != nil {
		t.Fatal(err)
	}

	// Reorg to the anchor block's parent (the simulated beacon makes the
	// parent canonical at once; the pool takes the transaction back).
	if err := sim.Fork(parent.Hash()); err != nil {
		t.Fatal(err)
	}
	if h, err := sim.Client().HeaderByNumber(ctx, new(big.Int).SetUint64(before.Block)); err == nil && h.Hash() == orig.Hash() {
		t.Fatalf("the fork kept block %d", before.Block)
	}
	after := mustStatus(t, a, r1, anchor.StatePending)
	if after.Block != 0 || after.TxHash != before.TxHash {
		t.Fatalf("pending receipt %+v, want no block and the same transaction %s", after, before.TxHash)
	}
	// The same transaction (same nonce) goes into the new chain.
	sim.Commit()
	again := mustStatus(t, a, r1, anchor.StateIncluded)
	h, err := sim.Client().HeaderByNumber(ctx, new(big.Int).SetUint64(again.Block))
	if err != nil {
		t.Fatal(err)
	}
	if h.Hash() == orig.Hash() {
		t.Fatal("re-anchored in the dropped block")
	}
	sim.Commit()
	sim.Commit()
	fin := mustStatus(t, a, r1, anchor.StateFinal)
	if err := verify(ctx, sim.Client(), fin, r1); err != nil {
		t.Fatalf("verify re-anchored root: %v", err)
	}
	if fin.Block != before.Block || fin.BlockTime != before.BlockTime {
		if err := verify(ctx, sim.Client(), before, r1); err == nil {
			t.Fatal("the receipt of the dropped block still verifies")
		}
	}
}

func TestStuckTransactionReplaced(t *testing.T) {
	sim := newSim(t)
	a := newAnchorer(t, sim, testConfig(), t.TempDir())
	ctx := ctxT(t)
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	a.now = clock.Now

	head, err := sim.Client().HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Fees the node will not mine: a fee cap at a third of the base fee.
	lowCap := new(big.Int).Div(head.BaseFee, big.NewInt(3))
	a.fees = func(context.Context) (*big.Int, *big.Int, error) { return big.NewInt(1), new(big.Int).Set(lowCap), nil }

	r1 := root("stuck")
	if err := a.Submit(ctx, 3, r1); err != nil {
		t.Fatal(err)
	}
	first := a.pending.last()
	var sent []*types.Transaction
	for i := 0; i < 30; i++ {
		sim.Commit()
		r, err := a.Status(ctx, r1)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != anchor.StatePending {
			break
		}
		clock.Add(time.Minute) // stuck_after
		sent = a.pending.txs
	}
	if len(sent) < 2 {
		t.Fatalf("no replacement sent (%d versions)", len(sent))
	}
	for i := 1; i < len(sent); i++ {
		prev, cur := sent[i-1], sent[i]
		if cur.Nonce() != first.Nonce() {
			t.Fatalf("replacement %d has nonce %d, want %d", i, cur.Nonce(), first.Nonce())
		}
		if !atLeastBump(cur.GasTipCap(), prev.GasTipCap()) || !atLeastBump(cur.GasFeeCap(), prev.GasFeeCap()) {
			t.Fatalf("replacement %d: tip %s -> %s, fee cap %s -> %s: want both raised by >= 12.5%%",
				i, prev.GasTipCap(), cur.GasTipCap(), prev.GasFeeCap(), cur.GasFeeCap())
		}
	}
	t.Logf("%d versions; fee cap %s -> %s wei", len(sent), first.GasFeeCap(), sent[len(sent)-1].GasFeeCap())
	sim.Commit()
	sim.Commit()
	fin := mustStatus(t, a, r1, anchor.StateFinal)
	if fin.TxHash == first.Hash().Hex() {
		t.Fatalf("the underpriced original was mined")
	}
	if err := verify(ctx, sim.Client(), fin, r1); err != nil {
		t.Fatal(err)
	}
}

// atLeastBump reports whether cur >= prev * 1.125.
func atLeastBump(cur, prev *big.Int) bool {
	return new(big.Int).Mul(cur, big.NewInt(8)).Cmp(new(big.Int).Mul(prev, big.NewInt(9))) >= 0
}

func TestBump(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{0, 0}, {1, 2}, {8, 9}, {9, 11}, {1_000_000_000, 1_125_000_000}, {1_000_000_001, 1_125_000_002},
	} {
		if got := bump(big.NewInt(tc.in)); got.Int64() != tc.want {
			t.Errorf("bump(%d) = %s, want %d", tc.in, got, tc.want)
		}
	}
}

func TestNonceReconciledAtStart(t *testing.T) {
	t.Run("untracked-pending-replaced", func(t *testing.T) {
		sim := newSim(t)
		a := newAnchorer(t, sim, testConfig(), t.TempDir())
		ctx := ctxT(t)
		// A transaction of our account the anchorer does not know, stuck
		// below the base fee: pending nonce 2, latest 1.
		stray, err := types.SignNewTx(sim.key, types.LatestSignerForChainID(big.NewInt(geth.ChainID)), &types.DynamicFeeTx{
			ChainID: big.NewInt(geth.ChainID), Nonce: 1, GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(2),
			Gas: 21000, To: &common.Address{1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.Client().SendTransaction(ctx, stray); err != nil {
			t.Fatal(err)
		}
		sim.Commit()
		if p, _ := sim.Client().PendingNonceAt(ctx, a.Account()); p != 2 {
			t.Fatalf("pending nonce %d, want 2", p)
		}
		cfg := testConfig()
		cfg.Contract = a.Contract().Hex()
		b := newAnchorer(t, sim, cfg, t.TempDir())
		r1 := root("after-stray")
		if err := b.Submit(ctx, 1, r1); err != nil {
			t.Fatal(err)
		}
		if got := b.pending.Nonce; got != 1 {
			t.Fatalf("anchor used nonce %d, want the latest nonce 1", got)
		}
		for range 3 {
			sim.Commit()
		}
		mustStatus(t, b, r1, anchor.StateFinal)
		if _, _, err := sim.Client().TransactionByHash(ctx, stray.Hash()); err == nil {
			t.Fatal("the stray transaction is still known")
		}
	})
	t.Run("in-flight-resumed", func(t *testing.T) {
		sim := newSim(t)
		dir := t.TempDir()
		a := newAnchorer(t, sim, testConfig(), dir)
		ctx := ctxT(t)
		head, _ := sim.Client().HeaderByNumber(ctx, nil)
		a.fees = func(context.Context) (*big.Int, *big.Int, error) {
			return big.NewInt(1), new(big.Int).Div(head.BaseFee, big.NewInt(3)), nil
		}
		r1 := root("resumed")
		if err := a.Submit(ctx, 9, r1); err != nil {
			t.Fatal(err)
		}
		stuck := a.pending.last()
		sim.Commit()
		mustStatus(t, a, r1, anchor.StatePending)

		// Restart: the same state dir, normal fees. The new anchorer knows
		// the stuck transaction and replaces it once stuck_after passed.
		cfg := testConfig()
		cfg.Contract = a.Contract().Hex()
		cfg.StuckAfter = time.Millisecond
		b := newAnchorer(t, sim, cfg, dir)
		if b.pending == nil || b.pending.Root != r1 || b.pending.last().Hash() != stuck.Hash() {
			t.Fatalf("in-flight transaction not resumed: %+v", b.pending)
		}
		time.Sleep(2 * time.Millisecond)
		mustStatus(t, b, r1, anchor.StatePending) // replaced here
		if len(b.pending.txs) != 2 {
			t.Fatalf("%d versions, want the stuck one and its replacement", len(b.pending.txs))
		}
		for range 3 {
			sim.Commit()
		}
		fin := mustStatus(t, b, r1, anchor.StateFinal)
		if fin.TxHash == stuck.Hash().Hex() {
			t.Fatal("the underpriced original was mined")
		}
		if p, err := loadInflight(dir); err != nil || p != nil {
			t.Fatalf("in-flight file after final: %+v, %v", p, err)
		}
	})
}
