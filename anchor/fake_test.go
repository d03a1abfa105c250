package anchor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/merkle"
)

// fakeChain is an in-memory Chain: a submitted root is pending until the
// next Status, which puts it in the next block; the Status after that makes
// it final. failSubmit and failStatus make the next calls fail.
type fakeChain struct {
	mu         sync.Mutex
	chainID    uint64
	contract   string
	block      uint64
	receipts   map[merkle.Hash]*Receipt
	submits    int
	failSubmit int
	failStatus int
}

func newFakeChain() *fakeChain {
	return &fakeChain{chainID: 1337, contract: "0x5fbdb2315678afecb367f032d93f642f64180aa3", block: 100,
		receipts: map[merkle.Hash]*Receipt{}}
}

var errChainDown = errors.New("fake chain: connection refused")

func (c *fakeChain) Submit(ctx context.Context, epoch uint64, root [32]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failSubmit > 0 {
		c.failSubmit--
		return errChainDown
	}
	c.submits++
	if _, ok := c.receipts[root]; ok {
		return nil
	}
	tx := sha256.Sum256(append([]byte(fmt.Sprintf("tx %d ", epoch)), root[:]...))
	c.receipts[root] = &Receipt{State: StatePending, ChainID: c.chainID, Contract: c.contract, TxHash: "0x" + hex.EncodeToString(tx[:])}
	return nil
}

func (c *fakeChain) Status(ctx context.Context, root [32]byte) (Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failStatus > 0 {
		c.failStatus--
		return Receipt{}, errChainDown
	}
	r, ok := c.receipts[root]
	if !ok {
		return Receipt{}, fmt.Errorf("status %x: %w", root[:4], ErrUnknownRoot)
	}
	switch r.State {
	case StatePending:
		c.block++
		r.State, r.Block, r.BlockTime = StateIncluded, c.block, 1772352000+int64(c.block)*12
	case StateIncluded:
		r.State = StateFinal
	}
	return *r, nil
}

// forget drops every root, as a dev chain reset would.
func (c *fakeChain) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.receipts = map[merkle.Hash]*Receipt{}
}

// checker checks a bundle's anchor against what the fake chain holds, as
// evm.VerifyAnchor does against a real one.
func (c *fakeChain) checker() bundle.AnchorChecker {
	return bundle.AnchorCheckerFunc(func(ctx context.Context, a bundle.Anchor, root merkle.Hash) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		r, ok := c.receipts[root]
		switch {
		case !ok:
			return fmt.Errorf("root %s was never anchored", root)
		case a.ChainID != r.ChainID:
			return fmt.Errorf("chain id is %d, the bundle says %d", r.ChainID, a.ChainID)
		case a.Contract != r.Contract:
			return fmt.Errorf("root is in contract %s, the bundle says %s", r.Contract, a.Contract)
		case a.Tx != r.TxHash:
			return fmt.Errorf("root was anchored by %s, the bundle says %s", r.TxHash, a.Tx)
		case a.Block != r.Block:
			return fmt.Errorf("root is in block %d, the bundle says %d", r.Block, a.Block)
		}
		return nil
	})
}
