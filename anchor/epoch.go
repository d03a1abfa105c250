package anchor

import (
	"cmp"
	"slices"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/merkle"
)

// Entry is one shipment's line in an epoch: the size and root of its log
// when the epoch was cut.
type Entry struct {
	Shipment string
	Size     uint64
	Root     merkle.Hash
}

// Epoch is a cut epoch: a Merkle tree over the entries of every shipment
// whose log grew since the previous epoch, sorted by shipment id, and a
// header that binds that tree's root to the epoch number and to the previous
// epoch's root. Root, SHA-256 of the header, is what one Chain.Submit
// anchors, whatever the number of shipments (docs/PROOFS.md).
type Epoch struct {
	Number      uint64
	Prev        merkle.Hash
	Entries     []Entry
	EntriesRoot merkle.Hash
	Root        merkle.Hash
}

// NewEpoch builds epoch number over entries, chained to prev (32 zero bytes
// for epoch 1). It sorts a copy of entries by shipment id; ids must be
// distinct. It is pure: the same arguments give the same epoch.
func NewEpoch(number uint64, prev merkle.Hash, entries []Entry) Epoch {
	e := Epoch{Number: number, Prev: prev, Entries: slices.Clone(entries)}
	slices.SortFunc(e.Entries, func(a, b Entry) int { return cmp.Compare(a.Shipment, b.Shipment) })
	var tree merkle.Tree
	for _, en := range e.Entries {
		tree.AppendData(bundle.EntryBytes(en.Shipment, en.Size, en.Root))
	}
	e.EntriesRoot = tree.Root()
	e.Root = bundle.EpochRoot(number, prev, uint64(len(e.Entries)), e.EntriesRoot)
	return e
}

// Find returns the index of shipment's entry.
func (e *Epoch) Find(shipment string) (int, bool) {
	return slices.BinarySearchFunc(e.Entries, shipment, func(en Entry, s string) int { return cmp.Compare(en.Shipment, s) })
}

// Path returns the audit path of entry i in the epoch tree.
func (e *Epoch) Path(i int) ([]merkle.Hash, error) {
	leaves := make(merkle.LeafHashes, len(e.Entries))
	for j, en := range e.Entries {
		leaves[j] = merkle.LeafHash(bundle.EntryBytes(en.Shipment, en.Size, en.Root))
	}
	return merkle.InclusionProof(leaves, uint64(i), uint64(len(leaves)))
}
