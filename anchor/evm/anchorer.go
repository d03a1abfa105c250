// Package evm anchors epoch roots on an EVM chain: the ColdchainAnchor
// contract (contract/), a transaction manager that implements anchor.Chain
// over any JSON-RPC endpoint or the embedded dev chain, and VerifyAnchor,
// which checks an anchor receipt over JSON-RPC only.
//
// Status is derived from the chain (the contract's storage, the Anchored log
// and the transaction receipt, re-read on the canonical chain) plus the one
// transaction in flight, which is kept in a file so that it survives a
// restart. See docs/CHAIN.md.
package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/evm/contract"
	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rpc"
	"go.uber.org/zap"
)

// Backend is the part of the Ethereum JSON-RPC API the anchorer uses.
// *ethclient.Client and go-ethereum's simulated.Client satisfy it.
type Backend interface {
	ChainID(ctx context.Context) (*big.Int, error)
	BlockNumber(ctx context.Context) (uint64, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	TransactionByHash(ctx context.Context, hash common.Hash) (tx *types.Transaction, isPending bool, err error)
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
	CallContract(ctx context.Context, msg ethereum.CallMsg, block *big.Int) ([]byte, error)
	CodeAt(ctx context.Context, account common.Address, block *big.Int) ([]byte, error)
	NonceAt(ctx context.Context, account common.Address, block *big.Int) (uint64, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	EstimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error)
	FilterLogs(ctx context.Context, q ethereum.FilterQuery) ([]types.Log, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
}

// devChain is what the anchorer needs of the embedded chain: sealing blocks
// on demand (to reach the confirmation depth) and durability.
type devChain interface {
	Seal() error
	Sync() error
}

// feeFunc returns the tip and fee cap (wei per gas) for a new transaction.
type feeFunc func(ctx context.Context) (tip, feeCap *big.Int, err error)

// Anchorer is a transaction manager for the anchor contract. It implements
// anchor.Chain. Submit and Status are safe for concurrent use; they are
// serialised, and each gives up when its context ends.
type Anchorer struct {
	cfg      Config
	log      *zap.Logger
	be       Backend
	key      *ecdsa.PrivateKey
	from     common.Address
	chainID  *big.Int
	signer   types.Signer
	contract common.Address
	abi      *contract.ColdchainAnchor
	eventID  common.Hash
	stateDir string
	maxFee   *big.Int

	// Test hooks and the embedded chain; see New and Open.
	fees feeFunc
	now  func() time.Time
	dev  devChain

	closers []func() error

	sem     chan struct{} // size 1: held by the one Submit or Status running
	pending *inflight     // the anchor transaction not yet final, if any
}

var _ anchor.Chain = (*Anchorer)(nil)

// New returns an anchorer that signs with key on be. It checks the chain id
// (when cfg.ChainID is set), finds or deploys the contract, and reconciles the
// account's nonce with the in-flight transaction kept in stateDir. Deploying
// waits for the contract to be mined, bounded by ctx.
func New(ctx context.Context, cfg Config, be Backend, key *ecdsa.PrivateKey, stateDir string, log *zap.Logger) (*Anchorer, error) {
	a := &Anchorer{
		cfg:      cfg,
		log:      log,
		be:       be,
		key:      key,
		from:     crypto.PubkeyToAddress(key.PublicKey),
		abi:      contract.NewColdchainAnchor(),
		stateDir: stateDir,
		maxFee:   new(big.Int).Mul(big.NewInt(cfg.MaxFeeGwei), big.NewInt(1e9)),
		now:      time.Now,
		sem:      make(chan struct{}, 1),
	}
	a.eventID = a.abi.GetABI().Events["Anchored"].ID
	a.fees = a.suggestFees
	if err := a.start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Anchorer) start(ctx context.Context) error {
	var id *big.Int
	if err := a.call(ctx, "chain id", func(ctx context.Context) (err error) {
		id, err = a.be.ChainID(ctx)
		return err
	}); err != nil {
		return err
	}
	if a.cfg.ChainID != 0 && id.Cmp(big.NewInt(a.cfg.ChainID)) != 0 {
		return fmt.Errorf("%w: node reports %s, chain.chain_id is %d", ErrWrongChainID, id, a.cfg.ChainID)
	}
	a.chainID = id
	a.signer = types.LatestSignerForChainID(id)
	addr, err := a.resolveContract(ctx)
	if err != nil {
		return err
	}
	a.contract = addr
	return a.reconcile(ctx)
}

// reconcile loads the in-flight transaction and compares the account's
// pending and latest nonces.
func (a *Anchorer) reconcile(ctx context.Context) error {
	p, err := loadInflight(a.stateDir)
	if err != nil {
		return err
	}
	if p != nil && (p.ChainID != a.chainID.Uint64() || p.Contract != a.contract) {
		a.log.Warn("dropping in-flight anchor of another chain or contract",
			zap.Uint64("chain_id", p.ChainID), zap.Stringer("contract", p.Contract))
		if err := removeInflight(a.stateDir); err != nil {
			return err
		}
		p = nil
	}
	var latest, pending uint64
	if err := a.call(ctx, "nonce", func(ctx context.Context) (err error) {
		latest, err = a.be.NonceAt(ctx, a.from, nil)
		return err
	}); err != nil {
		return err
	}
	if err := a.call(ctx, "pending nonce", func(ctx context.Context) (err error) {
		pending, err = a.be.PendingNonceAt(ctx, a.from)
		return err
	}); err != nil {
		return err
	}
	a.pending = p
	if p != nil {
		a.log.Info("resuming in-flight anchor", zap.Stringer("root", p.Root), zap.Uint64("epoch", p.Epoch),
			zap.Uint64("nonce", p.Nonce), zap.Stringer("tx", p.last().Hash()), zap.Uint64("latest_nonce", latest))
	}
	known := p != nil && p.Nonce >= latest && pending <= p.Nonce+1
	if pending > latest && !known {
		// Transactions of our account we do not track (another process, or a
		// lost state dir). The next anchor uses nonce `latest` and replaces
		// them, bumping its fees until the node accepts it.
		a.log.Warn("account has pending transactions the anchorer does not track; the next anchor replaces them",
			zap.Stringer("account", a.from), zap.Uint64("latest_nonce", latest), zap.Uint64("pending_nonce", pending))
	}
	a.log.Info("anchorer ready", zap.Stringer("chain_id", a.chainID), zap.Stringer("contract", a.contract),
		zap.Stringer("account", a.from), zap.Uint64("nonce", latest), zap.Int("confirmations", a.cfg.Confirmations))
	return nil
}

// Contract returns the anchor contract's address.
func (a *Anchorer) Contract() common.Address { return a.contract }

// ChainID returns the chain id checked at start.
func (a *Anchorer) ChainID() uint64 { return a.chainID.Uint64() }

// Account returns the address that signs anchor transactions.
func (a *Anchorer) Account() common.Address { return a.from }

// Close releases what Open started (the RPC connection, the embedded chain).
// The in-flight transaction stays in the state dir for the next start.
func (a *Anchorer) Close() error {
	var err error
	for i := len(a.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, a.closers[i]())
	}
	a.closers = nil
	return err
}

func (a *Anchorer) lock(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Anchorer) unlock() { <-a.sem }

// Submit sends the transaction that anchors root as epoch and returns once
// the node accepted it. Submitting the root in flight again makes sure the
// node still has its transaction; submitting a root already anchored does
// nothing. A new root while the previous one is not final is ErrBusy.
func (a *Anchorer) Submit(ctx context.Context, epoch uint64, root [32]byte) error {
	if root == ([32]byte{}) {
		return ErrZeroRoot
	}
	if err := a.lock(ctx); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	defer a.unlock()
	if p := a.pending; p != nil && p.Root == root {
		return a.tend(ctx)
	}
	at, err := a.anchoredAt(ctx, root, nil)
	if err != nil {
		return err
	}
	if at.BlockNumber != 0 {
		return nil
	}
	if p := a.pending; p != nil {
		r, err := a.status(ctx, p.Root)
		if err != nil {
			return fmt.Errorf("submit: previous root %s: %w", p.Root, err)
		}
		if r.State != anchor.StateFinal {
			return fmt.Errorf("%w: root %s is %s", ErrBusy, p.Root, r.State)
		}
	}
	return a.send(ctx, root, epoch)
}

// Status reports where root stands, from the chain and the transaction in
// flight. A root that is neither anchored nor in flight is ErrUnknownRoot.
// Polling Status is also what drives the transaction in flight: it is
// re-broadcast if the node lost it, replaced if stuck, and re-sent if a
// reorg or a revert left its root unanchored.
func (a *Anchorer) Status(ctx context.Context, root [32]byte) (anchor.Receipt, error) {
	if err := a.lock(ctx); err != nil {
		return anchor.Receipt{}, fmt.Errorf("status: %w", err)
	}
	defer a.unlock()
	return a.status(ctx, root)
}

func (a *Anchorer) status(ctx context.Context, root common.Hash) (anchor.Receipt, error) {
	for sealed := 0; ; sealed++ {
		r, found, err := a.onChain(ctx, root)
		if err != nil {
			return anchor.Receipt{}, err
		}
		if !found {
			break
		}
		if r.State == anchor.StateIncluded && a.dev != nil && sealed < a.cfg.Confirmations {
			// The dev chain seals only on demand: seal the blocks that
			// make the anchor deep enough, then look again.
			if err := a.dev.Seal(); err != nil {
				return anchor.Receipt{}, fmt.Errorf("status: seal: %w", err)
			}
			continue
		}
		if a.dev != nil {
			// Report nothing the embedded chain could lose in a crash.
			if err := a.dev.Sync(); err != nil {
				return anchor.Receipt{}, fmt.Errorf("status: sync chain: %w", err)
			}
		}
		if r.State == anchor.StateFinal && a.pending != nil && a.pending.Root == root {
			if err := removeInflight(a.stateDir); err != nil {
				return anchor.Receipt{}, err
			}
			a.pending = nil
		}
		return r, nil
	}
	p := a.pending
	if p == nil || p.Root != root {
		return anchor.Receipt{}, fmt.Errorf("status %s: %w", root, anchor.ErrUnknownRoot)
	}
	if err := a.tend(ctx); err != nil {
		return anchor.Receipt{}, err
	}
	return anchor.Receipt{
		State:    anchor.StatePending,
		ChainID:  a.chainID.Uint64(),
		Contract: a.contract.Hex(),
		TxHash:   a.pending.last().Hash().Hex(),
	}, nil
}

// onChain reads root's anchor from the canonical chain: the contract's
// storage at the head, the canonical header of the block it names, the
// Anchored log in that block and the receipt of the transaction that logged
// it. found is false when the contract does not hold root at the head.
func (a *Anchorer) onChain(ctx context.Context, root common.Hash) (r anchor.Receipt, found bool, err error) {
	var head uint64
	if err := a.call(ctx, "block number", func(ctx context.Context) (err error) {
		head, err = a.be.BlockNumber(ctx)
		return err
	}); err != nil {
		return r, false, err
	}
	at, err := a.anchoredAt(ctx, root, new(big.Int).SetUint64(head))
	if err != nil {
		return r, false, err
	}
	if at.BlockNumber == 0 {
		return r, false, nil
	}
	b := at.BlockNumber
	var hdr *types.Header
	if err := a.call(ctx, "header", func(ctx context.Context) (err error) {
		hdr, err = a.be.HeaderByNumber(ctx, new(big.Int).SetUint64(b))
		return err
	}); err != nil {
		return r, false, err
	}
	hash := hdr.Hash()
	var logs []types.Log
	if err := a.call(ctx, "logs", func(ctx context.Context) (err error) {
		logs, err = a.be.FilterLogs(ctx, ethereum.FilterQuery{
			BlockHash: &hash,
			Addresses: []common.Address{a.contract},
			Topics:    [][]common.Hash{{a.eventID}, {root}},
		})
		return err
	}); err != nil {
		return r, false, err
	}
	if len(logs) == 0 || logs[0].Removed {
		// The chain moved between the reads; the next poll sees it settled.
		return r, false, fmt.Errorf("status %s: contract says block %d but its Anchored log is not in canonical block %s", root, b, hash)
	}
	var rc *types.Receipt
	if err := a.call(ctx, "receipt", func(ctx context.Context) (err error) {
		rc, err = a.receipt(ctx, logs[0].TxHash)
		return err
	}); err != nil {
		return r, false, err
	}
	if rc.Status != types.ReceiptStatusSuccessful || rc.BlockHash != hash {
		return r, false, fmt.Errorf("status %s: receipt of %s is not a success in canonical block %d", root, rc.TxHash, b)
	}
	r = anchor.Receipt{
		State:     anchor.StateIncluded,
		ChainID:   a.chainID.Uint64(),
		Contract:  a.contract.Hex(),
		TxHash:    rc.TxHash.Hex(),
		Block:     b,
		BlockTime: int64(hdr.Time),
	}
	// Depth counts the anchor's block: head == b is depth 1. The receipt and
	// the canonical header above were read after head, so they were
	// re-checked at this depth.
	if head+1 >= b+uint64(a.cfg.Confirmations) {
		r.State = anchor.StateFinal
	}
	return r, true, nil
}

// anchoredAt calls the contract at block (nil: latest).
func (a *Anchorer) anchoredAt(ctx context.Context, root common.Hash, block *big.Int) (contract.AnchoredAtOutput, error) {
	var out []byte
	msg := ethereum.CallMsg{To: &a.contract, Data: a.abi.PackAnchoredAt(root)}
	if err := a.call(ctx, "anchoredAt", func(ctx context.Context) (err error) {
		out, err = a.be.CallContract(ctx, msg, block)
		return err
	}); err != nil {
		return contract.AnchoredAtOutput{}, err
	}
	at, err := a.abi.UnpackAnchoredAt(out)
	if err != nil {
		return at, fmt.Errorf("anchoredAt: %w", err)
	}
	return at, nil
}

// blockReceipter is what ethclient (and the simulated backend's client)
// offer beside Backend to read receipts by block, without the node's
// transaction index.
type blockReceipter interface {
	BlockByNumber(ctx context.Context, number *big.Int) (*types.Block, error)
	BlockReceipts(ctx context.Context, blockNrOrHash rpc.BlockNumberOrHash) ([]*types.Receipt, error)
}

// receiptScanDepth is how many recent blocks receipt looks through when the
// node's transaction index is not ready.
const receiptScanDepth = 256

// receipt returns a transaction's receipt. geth indexes transactions in the
// background and answers "transaction indexing is in progress" until it has
// caught up, which on a busy machine was seen to last over a minute after a
// fresh start; the receipt is then found by scanning recent blocks, which
// needs no index.
func (a *Anchorer) receipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	rc, err := a.be.TransactionReceipt(ctx, hash)
	if err == nil || !strings.Contains(err.Error(), "indexing is in progress") {
		return rc, err
	}
	br, ok := a.be.(blockReceipter)
	if !ok {
		return nil, err
	}
	head, herr := a.be.BlockNumber(ctx)
	if herr != nil {
		return nil, err
	}
	for n := head; n+receiptScanDepth > head; n-- {
		b, berr := br.BlockByNumber(ctx, new(big.Int).SetUint64(n))
		if berr != nil {
			return nil, err
		}
		if b.Transaction(hash) != nil {
			rcs, rerr := br.BlockReceipts(ctx, rpc.BlockNumberOrHashWithHash(b.Hash(), false))
			if rerr != nil {
				return nil, rerr
			}
			for _, r := range rcs {
				if r.TxHash == hash {
					return r, nil
				}
			}
		}
		if n == 0 {
			break
		}
	}
	return nil, ethereum.NotFound
}
