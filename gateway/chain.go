package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/cluster"
)

// errChainNotReady is what the anchorer sees while the chain is not open
// yet; it retries, and the shipment logs keep growing meanwhile.
var errChainNotReady = errors.New("chain not connected yet")

// lazyChain opens the chain in the background, retrying with backoff, so
// that an unreachable EVM node never holds up ingest: anchoring trouble
// only delays anchors.
type lazyChain struct {
	mu   sync.Mutex
	a    *evm.Anchorer
	err  error
	done chan struct{}
}

var _ anchor.Chain = (*lazyChain)(nil)

// sharedContract is the cluster's record of its anchor contract (cluster
// mode, cluster.State).
type sharedContract interface {
	Contract(ctx context.Context) (cluster.ContractRecord, bool, error)
	ClaimContract(ctx context.Context, rec cluster.ContractRecord) (cluster.ContractRecord, error)
}

// openShared opens the chain on the cluster's anchor contract when one is
// recorded, and records the one it opened when none is, so that every
// member anchors to one contract. With chain.contract set, or shared nil,
// it is evm.Open.
func openShared(ctx context.Context, cfg evm.Config, dataDir string, shared sharedContract, member string, log *zap.Logger) (*evm.Anchorer, error) {
	if shared == nil || cfg.Kind != evm.KindRPC || cfg.Contract != "" {
		return evm.Open(ctx, cfg, dataDir, log)
	}
	rec, ok, err := shared.Contract(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's anchor contract: %w", err)
	}
	if ok {
		cfg.Contract = rec.Contract
	}
	a, err := evm.Open(ctx, cfg, dataDir, log)
	if err != nil {
		return nil, err
	}
	if ok {
		if rec.ChainID != a.ChainID() {
			_ = a.Close()
			return nil, fmt.Errorf("the cluster anchors on chain id %d (contract %s, recorded by %s) and this gateway's chain.rpc_url is chain id %d: point it at the cluster's chain",
				rec.ChainID, rec.Contract, rec.Member, a.ChainID())
		}
		return a, nil
	}
	mine := cluster.ContractRecord{ChainID: a.ChainID(), Contract: a.Contract().Hex(), Member: member}
	got, err := shared.ClaimContract(ctx, mine)
	if err != nil {
		_ = a.Close()
		return nil, fmt.Errorf("recording the cluster's anchor contract: %w", err)
	}
	if cluster.SameContract(got.Contract, mine.Contract) {
		log.Info("recorded this gateway's contract as the cluster's anchor contract", zap.String("contract", mine.Contract))
		return a, nil
	}
	// Another member recorded its contract first: use that one.
	_ = a.Close()
	cfg.Contract = got.Contract
	return evm.Open(ctx, cfg, dataDir, log)
}

func openChain(ctx context.Context, cfg evm.Config, dataDir string, shared sharedContract, member string, log *zap.Logger) *lazyChain {
	c := &lazyChain{err: errChainNotReady, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		backoff := time.Second
		for attempt := 1; ; attempt++ {
			a, err := openShared(ctx, cfg, dataDir, shared, member, log)
			if err == nil {
				c.mu.Lock()
				c.a, c.err = a, nil
				c.mu.Unlock()
				fields := []zap.Field{zap.String("kind", cfg.Kind), zap.Uint64("chain_id", a.ChainID()), zap.Stringer("contract", a.Contract())}
				if n := a.DevChain(); n != nil {
					fields = append(fields, zap.String("rpc", n.URL()))
				}
				log.Info("chain ready for anchoring", fields...)
				return
			}
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			log.Warn("chain unavailable; anchoring waits, ingest does not", zap.Int("attempt", attempt), zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
	}()
	return c
}

func (c *lazyChain) get() (*evm.Anchorer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a, c.err
}

// Ready reports whether the chain is open.
func (c *lazyChain) Ready(context.Context) error {
	_, err := c.get()
	return err
}

func (c *lazyChain) Submit(ctx context.Context, epoch uint64, root [32]byte) error {
	a, err := c.get()
	if err != nil {
		return err
	}
	return a.Submit(ctx, epoch, root)
}

func (c *lazyChain) Status(ctx context.Context, root [32]byte) (anchor.Receipt, error) {
	a, err := c.get()
	if err != nil {
		return anchor.Receipt{}, err
	}
	return a.Status(ctx, root)
}

// RPC returns the embedded chain's JSON-RPC URL, or "" for an external one
// or while it is not open.
func (c *lazyChain) RPC() string {
	a, _ := c.get()
	if a == nil || a.DevChain() == nil {
		return ""
	}
	return a.DevChain().URL()
}

// close waits for the opening goroutine (its ctx must be done) and closes
// the chain.
func (c *lazyChain) close(log *zap.Logger) {
	<-c.done
	if a, _ := c.get(); a != nil {
		if err := a.Close(); err != nil {
			log.Error("close chain", zap.Error(err))
		}
	}
}
