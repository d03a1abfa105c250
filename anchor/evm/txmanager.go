package evm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"
	"go.uber.org/zap"
)

// Replacement rule: a stuck transaction is replaced with its tip and its fee
// cap each raised by at least bumpNum/bumpDen = 12.5 %. geth's pool asks for
// 10 % (txpool.pricebump), other clients for up to 12.5 %.
const (
	bumpNum = 9
	bumpDen = 8
	// maxUnderpriced bounds the bumps Submit makes to displace a pending
	// transaction of our account it does not track (10x the fees).
	maxUnderpriced = 20
	// gasHeadroom is added to eth_estimateGas, in percent.
	gasHeadroom = 25
)

// Send outcomes that need a decision rather than a retry.
var (
	errNonceTooLow = errors.New("nonce too low")
	errUnderpriced = errors.New("replacement transaction underpriced")
)

// bump returns v raised by 12.5 %, rounded up.
func bump(v *big.Int) *big.Int {
	n := new(big.Int).Mul(v, big.NewInt(bumpNum))
	n.Add(n, big.NewInt(bumpDen-1))
	return n.Div(n, big.NewInt(bumpDen))
}

func maxBig(x, y *big.Int) *big.Int {
	if x.Cmp(y) >= 0 {
		return new(big.Int).Set(x)
	}
	return new(big.Int).Set(y)
}

// suggestFees is the default fee policy: the node's suggested tip, and a fee
// cap of twice the head's base fee plus the tip (room for six full blocks of
// base fee rises), capped at chain.max_fee_gwei.
func (a *Anchorer) suggestFees(ctx context.Context) (tip, feeCap *big.Int, err error) {
	if err := a.call(ctx, "gas tip", func(ctx context.Context) (err error) {
		tip, err = a.be.SuggestGasTipCap(ctx)
		return err
	}); err != nil {
		return nil, nil, err
	}
	var head *types.Header
	if err := a.call(ctx, "head", func(ctx context.Context) (err error) {
		head, err = a.be.HeaderByNumber(ctx, nil)
		return err
	}); err != nil {
		return nil, nil, err
	}
	if head.BaseFee == nil {
		return nil, nil, errors.New("chain has no base fee (pre-London): unsupported")
	}
	feeCap = new(big.Int).Add(new(big.Int).Mul(head.BaseFee, big.NewInt(2)), tip)
	if feeCap.Cmp(a.maxFee) > 0 {
		if head.BaseFee.Cmp(a.maxFee) >= 0 {
			return nil, nil, fmt.Errorf("%w: base fee is %s wei", ErrFeeCap, head.BaseFee)
		}
		feeCap = new(big.Int).Set(a.maxFee)
	}
	if tip.Cmp(feeCap) > 0 {
		tip = new(big.Int).Set(feeCap)
	}
	return tip, feeCap, nil
}

// send signs and sends a new anchor transaction for root at the account's
// latest nonce, and makes it the transaction in flight.
func (a *Anchorer) send(ctx context.Context, root common.Hash, epoch uint64) error {
	var nonce uint64
	if err := a.call(ctx, "nonce", func(ctx context.Context) (err error) {
		nonce, err = a.be.NonceAt(ctx, a.from, nil)
		return err
	}); err != nil {
		return err
	}
	tip, feeCap, err := a.fees(ctx)
	if err != nil {
		return err
	}
	data := a.abi.PackAnchor(root, epoch)
	gas, err := a.estimate(ctx, &a.contract, data)
	if err != nil {
		return fmt.Errorf("anchor %s: %w", root, err)
	}
	tx, err := a.sign(nonce, tip, feeCap, gas, &a.contract, data)
	if err != nil {
		return err
	}
	p := &inflight{Root: root, Epoch: epoch, ChainID: a.chainID.Uint64(), Contract: a.contract, Nonce: nonce, SentAt: a.now().UTC()}
	if err := p.add(tx); err != nil {
		return err
	}
	// Kept before it is sent: a crash after the send must find it.
	if err := saveInflight(a.stateDir, p); err != nil {
		return err
	}
	a.pending = p
	a.log.Info("anchor sent", zap.Stringer("root", root), zap.Uint64("epoch", epoch), zap.Stringer("tx", tx.Hash()),
		zap.Uint64("nonce", nonce), zap.Stringer("tip", tip), zap.Stringer("fee_cap", feeCap), zap.Uint64("gas", gas))
	err = a.broadcast(ctx, tx)
	for i := 0; errors.Is(err, errUnderpriced) && i < maxUnderpriced; i++ {
		// A transaction we do not track holds this nonce.
		err = a.replace(ctx, true)
	}
	if errors.Is(err, errNonceTooLow) {
		// Mined meanwhile (ours, or one we do not track): Status sorts it out.
		return nil
	}
	return err
}

// tend keeps the transaction in flight moving; its root is not anchored at
// the head the caller looked at.
func (a *Anchorer) tend(ctx context.Context) error {
	p := a.pending
	var latest uint64
	if err := a.call(ctx, "nonce", func(ctx context.Context) (err error) {
		latest, err = a.be.NonceAt(ctx, a.from, nil)
		return err
	}); err != nil {
		return err
	}
	if latest > p.Nonce {
		// The nonce is used. If one of our versions was mined successfully,
		// the head moved since the caller looked: wait for the next poll.
		for i := len(p.Txs) - 1; i >= 0; i-- {
			tx := p.txs[i]
			var rc *types.Receipt
			err := a.call(ctx, "receipt", func(ctx context.Context) (err error) {
				rc, err = a.receipt(ctx, tx.Hash())
				return err
			})
			if errors.Is(err, ethereum.NotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if rc.Status == types.ReceiptStatusSuccessful {
				return nil
			}
			a.log.Warn("anchor transaction reverted; sending a new one", zap.Stringer("root", p.Root), zap.Stringer("tx", tx.Hash()))
			break
		}
		// Reverted, or the nonce went to a transaction we did not send.
		return a.send(ctx, p.Root, p.Epoch)
	}
	if a.now().Sub(p.SentAt) >= a.cfg.StuckAfter {
		return a.replace(ctx, false)
	}
	last := p.last()
	err := a.call(ctx, "transaction", func(ctx context.Context) error {
		_, _, err := a.be.TransactionByHash(ctx, last.Hash())
		return err
	})
	if errors.Is(err, ethereum.NotFound) {
		// Dropped by the node (restart, reorg, eviction): send it again.
		a.log.Info("re-broadcasting anchor", zap.Stringer("root", p.Root), zap.Stringer("tx", last.Hash()))
		err = a.broadcast(ctx, last)
		if errors.Is(err, errNonceTooLow) || errors.Is(err, errUnderpriced) {
			return nil // the nonce moved or another version is there; next poll
		}
	}
	return err
}

// replace re-signs the transaction in flight at the same nonce with its tip
// and fee cap both raised by at least 12.5 % (more if the node now suggests
// more), unless that would pass chain.max_fee_gwei. force skips the stuck
// timer (the node refused a send as underpriced).
func (a *Anchorer) replace(ctx context.Context, force bool) error {
	p := a.pending
	old := p.last()
	tip, feeCap, err := a.fees(ctx)
	if err != nil {
		return err
	}
	newTip := maxBig(tip, bump(old.GasTipCap()))
	newCap := maxBig(feeCap, bump(old.GasFeeCap()))
	if newCap.Cmp(newTip) < 0 {
		newCap.Set(newTip)
	}
	if newCap.Cmp(a.maxFee) > 0 {
		a.log.Warn("anchor transaction stuck at the fee cap; waiting", zap.Stringer("root", p.Root),
			zap.Stringer("tx", old.Hash()), zap.Stringer("fee_cap", old.GasFeeCap()), zap.Int64("max_fee_gwei", a.cfg.MaxFeeGwei))
		if force {
			return fmt.Errorf("%w: cannot outbid a pending transaction at nonce %d", ErrFeeCap, p.Nonce)
		}
		p.SentAt = a.now().UTC() // wait another StuckAfter before warning again
		return nil
	}
	tx, err := a.sign(p.Nonce, newTip, newCap, old.Gas(), old.To(), old.Data())
	if err != nil {
		return err
	}
	if err := p.add(tx); err != nil {
		return err
	}
	p.SentAt = a.now().UTC()
	if err := saveInflight(a.stateDir, p); err != nil {
		return err
	}
	a.log.Info("anchor replaced", zap.Stringer("root", p.Root), zap.Stringer("old_tx", old.Hash()), zap.Stringer("tx", tx.Hash()),
		zap.Uint64("nonce", p.Nonce), zap.Stringer("tip", newTip), zap.Stringer("fee_cap", newCap))
	err = a.broadcast(ctx, tx)
	if errors.Is(err, errNonceTooLow) {
		return nil // an earlier version was mined; next poll
	}
	return err
}

func (a *Anchorer) sign(nonce uint64, tip, feeCap *big.Int, gas uint64, to *common.Address, data []byte) (*types.Transaction, error) {
	tx, err := types.SignNewTx(a.key, a.signer, &types.DynamicFeeTx{
		ChainID:   a.chainID,
		Nonce:     nonce,
		GasTipCap: tip,
		GasFeeCap: feeCap,
		Gas:       gas,
		To:        to,
		Data:      data,
	})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return tx, nil
}

func (a *Anchorer) estimate(ctx context.Context, to *common.Address, data []byte) (uint64, error) {
	var gas uint64
	if err := a.call(ctx, "estimate gas", func(ctx context.Context) (err error) {
		gas, err = a.be.EstimateGas(ctx, ethereum.CallMsg{From: a.from, To: to, Data: data})
		return err
	}); err != nil {
		return 0, err
	}
	return gas + gas*gasHeadroom/100, nil
}

// broadcast sends tx. A node that already has it is success; nonce too low
// and underpriced replacements are returned as errNonceTooLow and
// errUnderpriced for the caller to decide.
func (a *Anchorer) broadcast(ctx context.Context, tx *types.Transaction) error {
	err := a.call(ctx, "send transaction", func(ctx context.Context) error {
		return a.be.SendTransaction(ctx, tx)
	})
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "already known"), strings.Contains(msg, "known transaction"):
		return nil
	case strings.Contains(msg, "nonce too low"):
		return fmt.Errorf("%w: %v", errNonceTooLow, err)
	case strings.Contains(msg, "underpriced"):
		return fmt.Errorf("%w: %v", errUnderpriced, err)
	}
	return err
}

// call runs one JSON-RPC call, each attempt bounded by chain.rpc_timeout,
// retrying transient failures (transport errors, timeouts, HTTP 429 and 5xx)
// with exponential backoff until ctx ends. Answers of the node (JSON-RPC
// errors, not found) are returned at once.
func (a *Anchorer) call(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.RPCTimeout)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
		if !transient(err) {
			if errors.Is(err, ethereum.NotFound) {
				return err
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		// A node that stays unreachable is worth a warning (after about 3 s,
		// then about every 100 s), not a line per attempt.
		logf := a.log.Debug
		if attempt == 5 || attempt%20 == 0 {
			logf = a.log.Warn
		}
		fields := []zap.Field{zap.String("call", what), zap.Int("attempt", attempt), zap.Error(err)}
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			fields = append(fields, zap.String("hint", "the node's certificate is not trusted: set chain.tls.ca to the CA that signed it"))
		}
		logf("rpc call failed; retrying", fields...)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// transient reports whether err is worth retrying.
func transient(err error) bool {
	if errors.Is(err, ethereum.NotFound) {
		return false
	}
	var httpErr rpc.HTTPError
	if errors.As(err, &httpErr) {
		return httpErr.StatusCode == 429 || httpErr.StatusCode >= 500
	}
	if strings.Contains(err.Error(), "indexing is in progress") {
		return true // geth's transaction indexer is catching up
	}
	var rpcErr rpc.Error
	if errors.As(err, &rpcErr) {
		return false // the node answered
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true // this attempt's timeout; the caller's ctx is alive
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "connection reset")
}
