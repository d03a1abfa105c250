package merkle

import (
	"fmt"
	"math/bits"
	"slices"
)

// RootAt returns the RFC 6962 §2.1 Merkle Tree Hash of the first size leaves
// of src, or EmptyRoot if size is 0. It returns ErrSizeOutOfRange if src holds
// fewer than size leaves.
func RootAt(src NodeSource, size uint64) (Hash, error) {
	if n := src.Size(); size > n {
		return Hash{}, fmt.Errorf("%w: size %d, %d leaves stored", ErrSizeOutOfRange, size, n)
	}
	return subtreeRoot(src, 0, size), nil
}

// InclusionProof returns the RFC 6962 §2.1.1 audit path PATH(index, D[size])
// for the leaf at index in the tree of the first size leaves of src: the
// sibling hashes from the leaf up to the root. It requires index < size <=
// src.Size() and returns ErrIndexOutOfRange or ErrSizeOutOfRange otherwise.
//
// It asks src for O(log size) nodes and computes O(log size) node hashes
// itself.
func InclusionProof(src NodeSource, index, size uint64) ([]Hash, error) {
	if n := src.Size(); size > n {
		return nil, fmt.Errorf("%w: size %d, %d leaves stored", ErrSizeOutOfRange, size, n)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: index %d, size %d", ErrIndexOutOfRange, index, size)
	}
	// RFC 6962 §2.1.1: with k the largest power of two below n,
	//   PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])      if m < k,
	//   PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])  if m >= k.
	// Walking down from the root yields the siblings root-first; the path
	// lists them leaf-first.
	proof := make([]Hash, 0, bits.Len64(size-1))
	lo, hi := uint64(0), size
	for hi-lo > 1 {
		k := splitPoint(hi - lo)
		if index < lo+k {
			proof = append(proof, subtreeRoot(src, lo+k, hi))
			hi = lo + k
		} else {
			proof = append(proof, subtreeRoot(src, lo, lo+k))
			lo += k
		}
	}
	slices.Reverse(proof)
	return proof, nil
}

// ConsistencyProof returns the RFC 6962 §2.1.2 consistency proof
// PROOF(size1, D[size2]) that the tree of the first size1 leaves of src is a
// prefix of the tree of the first size2 leaves. It requires 0 < size1 <=
// size2 <= src.Size() and returns ErrEmptyTree, ErrSizeOrder or
// ErrSizeOutOfRange otherwise; for size1 == size2 the proof is empty.
//
// It asks src for O(log size2) nodes and computes O(log size2) node hashes
// itself.
func ConsistencyProof(src NodeSource, size1, size2 uint64) ([]Hash, error) {
	if n := src.Size(); size2 > n {
		return nil, fmt.Errorf("%w: size %d, %d leaves stored", ErrSizeOutOfRange, size2, n)
	}
	if size1 > size2 {
		return nil, fmt.Errorf("%w: %d > %d", ErrSizeOrder, size1, size2)
	}
	if size1 == 0 {
		return nil, ErrEmptyTree
	}
	// RFC 6962 §2.1.2: PROOF(m, D[n]) = SUBPROOF(m, D[n], true), where
	//   SUBPROOF(m, D[m], true)  = {},
	//   SUBPROOF(m, D[m], false) = {MTH(D[m])},
	// and for m < n, with k the largest power of two below n,
	//   SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])         if m <= k,
	//   SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) if m > k.
	// As in InclusionProof the walk down yields the hashes in reverse order.
	proof := make([]Hash, 0, bits.Len64(size2-1)+1)
	lo, hi, complete := uint64(0), size2, true
	for {
		if size1-lo == hi-lo {
			if !complete {
				proof = append(proof, subtreeRoot(src, lo, hi))
			}
			break
		}
		k := splitPoint(hi - lo)
		if size1-lo <= k {
			proof = append(proof, subtreeRoot(src, lo+k, hi))
			hi = lo + k
		} else {
			proof = append(proof, subtreeRoot(src, lo, lo+k))
			lo += k
			complete = false
		}
	}
	slices.Reverse(proof)
	return proof, nil
}

// splitPoint returns the largest power of two strictly less than n, where the
// RFC 6962 §2.1 tree over n > 1 leaves splits.
func splitPoint(n uint64) uint64 {
	return 1 << (bits.Len64(n-1) - 1)
}

// subtreeRoot returns MTH(D[lo:hi]) for a range that is a subtree of the
// RFC 6962 recursion, which holds when lo is a multiple of the smallest power
// of two not below hi - lo. Such a subtree splits into the perfect subtrees of
// the bits of hi - lo, largest first, and its hash folds them from the right,
// exactly as Tree.Root folds the frontier.
func subtreeRoot(src NodeSource, lo, hi uint64) Hash {
	n := hi - lo
	if n == 0 {
		return EmptyRoot()
	}
	level := uint(bits.TrailingZeros64(n))
	hi -= 1 << level
	r := src.Node(level, hi>>level)
	for n &= n - 1; n != 0; n &= n - 1 {
		level = uint(bits.TrailingZeros64(n))
		hi -= 1 << level
		r = NodeHash(src.Node(level, hi>>level), r)
	}
	return r
}
