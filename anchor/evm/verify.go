package evm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/evm/contract"
	"github.com/coldchain/coldchain/pki"
	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
)

// verifyBackend is the JSON-RPC surface VerifyAnchor reads.
type verifyBackend interface {
	ChainID(ctx context.Context) (*big.Int, error)
	CodeAt(ctx context.Context, account common.Address, block *big.Int) ([]byte, error)
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	CallContract(ctx context.Context, msg ethereum.CallMsg, block *big.Int) ([]byte, error)
}

// VerifyAnchor checks over JSON-RPC alone that want, the receipt of an
// anchored root, holds on the chain at rpcURL. In order, the first failing
// check names the error it wraps:
//
//  1. want is well formed (ErrBadReceipt);
//  2. the node's chain id is want.ChainID (ErrChainID);
//  3. want.Contract holds the ColdchainAnchor runtime bytecode
//     (ErrContractCode);
//  4. the transaction has a receipt (ErrTxNotFound), in block want.Block
//     (ErrWrongBlock), and that block is the canonical one at that height
//     (ErrNotCanonical) with timestamp want.BlockTime (ErrWrongBlockTime);
//  5. the transaction succeeded (ErrTxFailed) and the contract logged
//     Anchored(root) in it (ErrRootNotLogged);
//  6. an eth_call of anchoredAt(root) on the latest block returns want.Block
//     and want.BlockTime (ErrNotAnchored, ErrWrongBlock, ErrWrongBlockTime).
//
// It does not judge depth: want.State is not checked.
func VerifyAnchor(ctx context.Context, rpcURL string, want anchor.Receipt, root [32]byte) error {
	return VerifyAnchorTLS(ctx, rpcURL, pki.ClientTLS{}, want, root)
}

// VerifyAnchorTLS is VerifyAnchor through an https:// endpoint checked
// against tls's CA (and presenting its client certificate if set).
func VerifyAnchorTLS(ctx context.Context, rpcURL string, tls pki.ClientTLS, want anchor.Receipt, root [32]byte) error {
	c, err := Dial(ctx, rpcURL, tls)
	if err != nil {
		return err
	}
	defer c.Close()
	return verify(ctx, c, want, root)
}

func verify(ctx context.Context, be verifyBackend, want anchor.Receipt, root common.Hash) error {
	if !common.IsHexAddress(want.Contract) {
		return fmt.Errorf("%w: contract %q is not an address", ErrBadReceipt, want.Contract)
	}
	if b := common.FromHex(want.TxHash); len(b) != common.HashLength || !has0x(want.TxHash) {
		return fmt.Errorf("%w: transaction hash %q is not 0x and 32 bytes of hex", ErrBadReceipt, want.TxHash)
	}
	if want.Block == 0 {
		return fmt.Errorf("%w: block 0 (the root is still pending)", ErrBadReceipt)
	}
	addr := common.HexToAddress(want.Contract)
	txHash := common.HexToHash(want.TxHash)

	id, err := be.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("chain id: %w", err)
	}
	if !id.IsUint64() || id.Uint64() != want.ChainID {
		return fmt.Errorf("%w: node reports %s, receipt says %d", ErrChainID, id, want.ChainID)
	}

	code, err := be.CodeAt(ctx, addr, nil)
	if err != nil {
		return fmt.Errorf("contract code: %w", err)
	}
	if len(code) == 0 {
		return fmt.Errorf("%w: no code at %s", ErrContractCode, addr)
	}
	if !bytes.Equal(code, contract.RuntimeCode()) {
		return fmt.Errorf("%w: code at %s differs from ColdchainAnchor", ErrContractCode, addr)
	}

	rc, err := be.TransactionReceipt(ctx, txHash)
	if errors.Is(err, ethereum.NotFound) {
		return fmt.Errorf("%w: %s", ErrTxNotFound, txHash)
	}
	if err != nil {
		return fmt.Errorf("receipt %s: %w", txHash, err)
	}
	if rc.BlockNumber == nil || rc.BlockNumber.Uint64() != want.Block {
		return fmt.Errorf("%w: transaction %s is in block %v, receipt says %d", ErrWrongBlock, txHash, rc.BlockNumber, want.Block)
	}
	hdr, err := be.HeaderByNumber(ctx, new(big.Int).SetUint64(want.Block))
	if err != nil {
		return fmt.Errorf("header %d: %w", want.Block, err)
	}
	if hdr.Hash() != rc.BlockHash {
		return fmt.Errorf("%w: transaction %s is in block %s, canonical block %d is %s", ErrNotCanonical, txHash, rc.BlockHash, want.Block, hdr.Hash())
	}
	if int64(hdr.Time) != want.BlockTime {
		return fmt.Errorf("%w: block %d has time %d, receipt says %d", ErrWrongBlockTime, want.Block, hdr.Time, want.BlockTime)
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return fmt.Errorf("%w: transaction %s reverted", ErrTxFailed, txHash)
	}
	abi := contract.NewColdchainAnchor()
	logged := false
	for _, l := range rc.Logs {
		if l.Address != addr {
			continue
		}
		ev, err := abi.UnpackAnchoredEvent(l)
		if err == nil && ev.Root == root {
			logged = true
			break
		}
	}
	if !logged {
		return fmt.Errorf("%w: transaction %s has no Anchored(%s) log from %s", ErrRootNotLogged, txHash, root, addr)
	}

	out, err := be.CallContract(ctx, ethereum.CallMsg{To: &addr, Data: abi.PackAnchoredAt(root)}, nil)
	if err != nil {
		return fmt.Errorf("eth_call anchoredAt: %w", err)
	}
	at, err := abi.UnpackAnchoredAt(out)
	if err != nil {
		return fmt.Errorf("eth_call anchoredAt: %w", err)
	}
	switch {
	case at.BlockNumber == 0:
		return fmt.Errorf("%w: contract %s does not hold %s", ErrNotAnchored, addr, root)
	case at.BlockNumber != want.Block:
		return fmt.Errorf("%w: contract says %s was anchored at block %d, receipt says %d", ErrWrongBlock, root, at.BlockNumber, want.Block)
	case int64(at.Timestamp) != want.BlockTime:
		return fmt.Errorf("%w: contract says time %d, receipt says %d", ErrWrongBlockTime, at.Timestamp, want.BlockTime)
	}
	return nil
}

func has0x(s string) bool { return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') }
