package evm

import "errors"

// Errors of the anchorer.
var (
	// ErrBusy: Submit of a new root while the previous one is not final.
	// The anchorer submits one root at a time and polls Status until final.
	ErrBusy = errors.New("another anchor transaction is in flight")
	// ErrZeroRoot: the all-zero root, which the contract refuses.
	ErrZeroRoot = errors.New("zero root")
	// ErrWrongChainID: the node reports another chain id than configured.
	ErrWrongChainID = errors.New("wrong chain id")
	// ErrNoContract: no code at the configured or remembered contract address.
	ErrNoContract = errors.New("no anchor contract at address")
	// ErrFeeCap: the fee needed exceeds chain.max_fee_gwei.
	ErrFeeCap = errors.New("fee above chain.max_fee_gwei")
)

// Errors of VerifyAnchor, one per check, in the order they are made.
var (
	// ErrBadReceipt: the receipt to verify is malformed (address, hash, block).
	ErrBadReceipt = errors.New("malformed anchor receipt")
	// ErrChainID: the node's chain id differs from the receipt's.
	ErrChainID = errors.New("wrong chain id")
	// ErrContractCode: the address holds no code, or not the anchor contract.
	ErrContractCode = errors.New("not the anchor contract")
	// ErrTxNotFound: the node knows no mined transaction with that hash.
	ErrTxNotFound = errors.New("transaction not found")
	// ErrWrongBlock: the transaction or the anchor is in another block.
	ErrWrongBlock = errors.New("wrong block")
	// ErrNotCanonical: the transaction's block is not on the canonical chain.
	ErrNotCanonical = errors.New("block not canonical")
	// ErrWrongBlockTime: the block's timestamp differs from the receipt's.
	ErrWrongBlockTime = errors.New("wrong block time")
	// ErrTxFailed: the transaction reverted.
	ErrTxFailed = errors.New("transaction failed")
	// ErrRootNotLogged: the transaction emitted no Anchored event for the
	// root from the contract.
	ErrRootNotLogged = errors.New("root not logged by transaction")
	// ErrNotAnchored: the contract does not hold the root.
	ErrNotAnchored = errors.New("root not anchored")
)
