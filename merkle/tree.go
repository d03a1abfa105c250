package merkle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Tree is an append-only RFC 6962 Merkle tree that keeps only its compact
// range: the roots of the perfect subtrees that tile leaves [0, Size()), one
// for each bit set in Size(), so at most 64 hashes. It does not keep the
// leaves; callers that need proofs store the leaf hashes themselves and use
// InclusionProof and ConsistencyProof.
//
// The zero Tree is the empty tree, ready to use. A Tree has no internal
// locking, and a copy made by assignment shares its frontier with the
// original, so copy a Tree with Clone.
type Tree struct {
	size uint64
	// frontier[i] is the root of the i-th perfect subtree from the left. The
	// subtrees have strictly decreasing sizes, the powers of two of the bits
	// set in size, so len(frontier) == bits.OnesCount64(size).
	frontier []Hash
}

// Size returns the number of leaves appended so far.
func (t *Tree) Size() uint64 {
	return t.size
}

// Append adds the leaf whose RFC 6962 leaf hash is leafHash. It costs O(1)
// node hashes amortised and O(log n) at worst.
//
// Append panics if the tree already holds math.MaxUint64 leaves, a size no
// shipment can reach (584,000 years at one million leaves per second).
func (t *Tree) Append(leafHash Hash) {
	if t.size == math.MaxUint64 {
		panic("merkle: tree is full")
	}
	// Appending a leaf is binary addition of 1 to size: each trailing one bit
	// of size is a perfect subtree of the same height as the one being
	// carried, which merges into it, smallest first.
	h := leafHash
	for s := t.size; s&1 == 1; s >>= 1 {
		last := len(t.frontier) - 1
		h = NodeHash(t.frontier[last], h)
		t.frontier = t.frontier[:last]
	}
	t.frontier = append(t.frontier, h)
	t.size++
}

// AppendData adds the leaf data, hashed with LeafHash, and returns its leaf
// hash so the caller can store it for proof generation.
func (t *Tree) AppendData(data []byte) Hash {
	h := LeafHash(data)
	t.Append(h)
	return h
}

// Root returns the RFC 6962 §2.1 Merkle Tree Hash of the leaves appended so
// far, or EmptyRoot for the empty tree. It costs at most 63 node hashes.
func (t *Tree) Root() Hash {
	if len(t.frontier) == 0 {
		return EmptyRoot()
	}
	// The tree of RFC 6962 §2.1 splits at the largest power of two below the
	// size, which is the leftmost perfect subtree; the rest recurses the same
	// way, so the root folds the frontier from the right.
	last := len(t.frontier) - 1
	r := t.frontier[last]
	for i := last - 1; i >= 0; i-- {
		r = NodeHash(t.frontier[i], r)
	}
	return r
}

// Clone returns an independent copy of t.
func (t *Tree) Clone() *Tree {
	return &Tree{size: t.size, frontier: append([]Hash(nil), t.frontier...)}
}

// stateVersion is the first byte of an encoded Tree state.
const stateVersion = 1

// stateHeaderSize is the size of the version byte plus the big-endian size.
const stateHeaderSize = 1 + 8

// MarshalBinary encodes the tree state: the version byte 1, the size as a
// big-endian uint64, then one 32-byte hash per bit set in the size, the
// largest (leftmost) perfect subtree first. The encoding of a given state is
// unique, and at most 9 + 64*32 bytes long.
func (t *Tree) MarshalBinary() ([]byte, error) {
	b := make([]byte, stateHeaderSize, stateHeaderSize+len(t.frontier)*HashSize)
	b[0] = stateVersion
	binary.BigEndian.PutUint64(b[1:], t.size)
	for i := range t.frontier {
		b = append(b, t.frontier[i][:]...)
	}
	return b, nil
}

// UnmarshalBinary replaces t with the state MarshalBinary encoded in data. It
// returns an error wrapping ErrMalformedState, and leaves t unchanged, if data
// has another version, is truncated or has trailing bytes. It cannot check
// that the hashes are those of any real leaves.
func (t *Tree) UnmarshalBinary(data []byte) error {
	if len(data) < stateHeaderSize {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformedState, len(data), stateHeaderSize)
	}
	if data[0] != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrMalformedState, data[0], stateVersion)
	}
	size := binary.BigEndian.Uint64(data[1:])
	n := bits.OnesCount64(size)
	if want := stateHeaderSize + n*HashSize; len(data) != want {
		return fmt.Errorf("%w: %d bytes for size %d, want %d", ErrMalformedState, len(data), size, want)
	}
	frontier := make([]Hash, n)
	for i := range frontier {
		copy(frontier[i][:], data[stateHeaderSize+i*HashSize:])
	}
	t.size, t.frontier = size, frontier
	return nil
}
