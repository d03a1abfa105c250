// Package contract holds the ColdchainAnchor contract: its Solidity source,
// the ABI and bytecode compiled by scripts/contract.sh (solc 0.8.30, EVM
// cancun, optimizer 200 runs), and the abigen v2 bindings (bindings.go,
// generated: do not edit).
package contract

import (
	_ "embed" // the compiled runtime bytecode
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

//go:embed ColdchainAnchor.bin-runtime
var runtimeHex string

// RuntimeCode returns the deployed (runtime) bytecode: what eth_getCode
// returns at an anchor contract's address. The contract has no immutables,
// so every deployment holds exactly these bytes.
func RuntimeCode() []byte { return common.FromHex(strings.TrimSpace(runtimeHex)) }
