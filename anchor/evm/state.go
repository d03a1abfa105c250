package evm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coldchain/coldchain/anchor/evm/contract"
	"github.com/coldchain/coldchain/internal/atomicfile"
	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"go.uber.org/zap"
)

// Files in the anchorer's state dir.
const (
	inflightFile = "inflight.json"
	// contractFile is per chain id: contract-<id>.json.
	contractFile = "contract-%d.json"
)

// inflight is the anchor transaction not yet final, kept on disk so that a
// restarted gateway finds it. Txs holds every signed version sent at Nonce,
// oldest first: any of them may be the one mined.
type inflight struct {
	Root     common.Hash     `json:"root"`
	Epoch    uint64          `json:"epoch"`
	ChainID  uint64          `json:"chain_id"`
	Contract common.Address  `json:"contract"`
	Nonce    uint64          `json:"nonce"`
	SentAt   time.Time       `json:"sent_at"`
	Txs      []hexutil.Bytes `json:"txs"`

	txs []*types.Transaction // decoded Txs
}

func (p *inflight) add(tx *types.Transaction) error {
	raw, err := tx.MarshalBinary()
	if err != nil {
		return err
	}
	p.Txs = append(p.Txs, raw)
	p.txs = append(p.txs, tx)
	return nil
}

// last is the newest version.
func (p *inflight) last() *types.Transaction { return p.txs[len(p.txs)-1] }

func loadInflight(dir string) (*inflight, error) {
	b, err := os.ReadFile(filepath.Join(dir, inflightFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := new(inflight)
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%s: %w", inflightFile, err)
	}
	if len(p.Txs) == 0 {
		return nil, fmt.Errorf("%s: no transaction", inflightFile)
	}
	for i, raw := range p.Txs {
		tx := new(types.Transaction)
		if err := tx.UnmarshalBinary(raw); err != nil {
			return nil, fmt.Errorf("%s: tx %d: %w", inflightFile, i, err)
		}
		p.txs = append(p.txs, tx)
	}
	return p, nil
}

func saveInflight(dir string, p *inflight) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, inflightFile), b, 0o600)
}

func removeInflight(dir string) error {
	err := os.Remove(filepath.Join(dir, inflightFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// deployment is the remembered contract of one chain.
type deployment struct {
	Address common.Address `json:"address"`
	Genesis common.Hash    `json:"genesis"`
	TxHash  common.Hash    `json:"tx"`
}

// resolveContract returns chain.contract if set (it must hold code), else
// the contract remembered for this chain, else a freshly deployed one.
func (a *Anchorer) resolveContract(ctx context.Context) (common.Address, error) {
	if a.cfg.Contract != "" {
		addr := common.HexToAddress(a.cfg.Contract)
		return addr, a.checkCode(ctx, addr)
	}
	var genesis *types.Header
	if err := a.call(ctx, "genesis", func(ctx context.Context) (err error) {
		genesis, err = a.be.HeaderByNumber(ctx, common.Big0)
		return err
	}); err != nil {
		return common.Address{}, err
	}
	path := filepath.Join(a.stateDir, fmt.Sprintf(contractFile, a.chainID.Uint64()))
	var d deployment
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &d); err != nil {
			return common.Address{}, fmt.Errorf("%s: %w", path, err)
		}
		if d.Genesis != genesis.Hash() {
			a.log.Warn("remembered anchor contract is on another chain with the same id (new genesis); deploying again",
				zap.Stringer("contract", d.Address), zap.Stringer("genesis", genesis.Hash()))
			break
		}
		if err := a.checkCode(ctx, d.Address); err != nil {
			a.log.Warn("remembered anchor contract has no code (its deployment was lost); deploying again",
				zap.Stringer("contract", d.Address))
			break
		}
		return d.Address, nil
	case !errors.Is(err, os.ErrNotExist):
		return common.Address{}, err
	}
	d, err = a.deploy(ctx)
	if err != nil {
		return common.Address{}, err
	}
	d.Genesis = genesis.Hash()
	b, err = json.MarshalIndent(d, "", "  ")
	if err != nil {
		return common.Address{}, err
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return common.Address{}, err
	}
	return d.Address, nil
}

func (a *Anchorer) checkCode(ctx context.Context, addr common.Address) error {
	var code []byte
	if err := a.call(ctx, "code", func(ctx context.Context) (err error) {
		code, err = a.be.CodeAt(ctx, addr, nil)
		return err
	}); err != nil {
		return err
	}
	if len(code) == 0 {
		return fmt.Errorf("%w %s", ErrNoContract, addr)
	}
	return nil
}

// deploy sends the contract creation and waits, bounded by ctx, until it is
// mined.
func (a *Anchorer) deploy(ctx context.Context) (deployment, error) {
	var nonce uint64
	if err := a.call(ctx, "nonce", func(ctx context.Context) (err error) {
		nonce, err = a.be.NonceAt(ctx, a.from, nil)
		return err
	}); err != nil {
		return deployment{}, err
	}
	tip, feeCap, err := a.fees(ctx)
	if err != nil {
		return deployment{}, err
	}
	code := common.FromHex(contract.ColdchainAnchorMetaData.Bin)
	gas, err := a.estimate(ctx, nil, code)
	if err != nil {
		return deployment{}, fmt.Errorf("deploy: %w", err)
	}
	tx, err := a.sign(nonce, tip, feeCap, gas, nil, code)
	if err != nil {
		return deployment{}, err
	}
	if err := a.broadcast(ctx, tx); err != nil {
		return deployment{}, fmt.Errorf("deploy: %w", err)
	}
	addr := crypto.CreateAddress(a.from, nonce)
	a.log.Info("deploying anchor contract", zap.Stringer("contract", addr), zap.Stringer("tx", tx.Hash()))
	for {
		var rc *types.Receipt
		err := a.call(ctx, "deploy receipt", func(ctx context.Context) (err error) {
			rc, err = a.receipt(ctx, tx.Hash())
			return err
		})
		switch {
		case err == nil && rc.Status == types.ReceiptStatusSuccessful:
			a.log.Info("anchor contract deployed", zap.Stringer("contract", addr), zap.Uint64("block", rc.BlockNumber.Uint64()),
				zap.Uint64("gas_used", rc.GasUsed))
			return deployment{Address: addr, TxHash: tx.Hash()}, nil
		case err == nil:
			return deployment{}, fmt.Errorf("deploy: transaction %s reverted", tx.Hash())
		case !errors.Is(err, ethereum.NotFound):
			return deployment{}, fmt.Errorf("deploy: %w", err)
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return deployment{}, fmt.Errorf("deploy: waiting for %s: %w", tx.Hash(), ctx.Err())
		}
	}
}
