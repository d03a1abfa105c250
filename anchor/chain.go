package anchor

import "context"

// State is where an anchored root stands on the chain.
type State uint8

// Anchor states, in the order a root goes through them.
const (
	// StatePending: the transaction is sent (or about to be) but not in a
	// block of the canonical chain.
	StatePending State = iota + 1
	// StateIncluded: in a block of the canonical chain, not yet deep enough.
	StateIncluded
	// StateFinal: its receipt was re-checked on the canonical chain at the
	// configured confirmation depth.
	StateFinal
)

// String returns "pending", "included" or "final".
func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateIncluded:
		return "included"
	case StateFinal:
		return "final"
	}
	return "unknown"
}

// Receipt is what the chain says of one anchored root.
type Receipt struct {
	State     State
	ChainID   uint64
	Contract  string // 0x-prefixed hex address of the anchor contract
	TxHash    string // 0x-prefixed hex; empty while nothing was sent
	Block     uint64 // block number; 0 while pending
	BlockTime int64  // block timestamp, Unix seconds; 0 while pending
}

// Chain anchors epoch roots. anchor/evm implements it on any EVM chain.
// The anchorer calls Submit once per epoch, strictly one at a time, and polls
// Status until the root is final. Both are safe to call again after a
// restart: Submit of a root that is already sent or anchored does nothing.
type Chain interface {
	// Submit sends the transaction that anchors root as epoch. It returns
	// once the transaction is accepted by the node (not mined).
	Submit(ctx context.Context, epoch uint64, root [32]byte) error
	// Status reports where root stands. A root never submitted is an error
	// wrapping ErrUnknownRoot.
	Status(ctx context.Context, root [32]byte) (Receipt, error)
}
