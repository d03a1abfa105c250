package merkle

import (
	"fmt"
	"math/bits"
)

// VerifyInclusion checks that proof is an RFC 6962 §2.1.1 audit path for the
// leaf with hash leafHash at index in the tree of the given size and root,
// following the RFC 9162 §2.1.3.2 algorithm. It returns nil if the proof
// holds, or an error wrapping ErrIndexOutOfRange (index >= size),
// ErrWrongProofSize or ErrRootMismatch.
func VerifyInclusion(leafHash Hash, index, size uint64, proof []Hash, root Hash) error {
	r, err := RootFromInclusion(leafHash, index, size, proof)
	if err != nil {
		return err
	}
	if r != root {
		return fmt.Errorf("%w: calculated %s, want %s", ErrRootMismatch, r, root)
	}
	return nil
}

// RootFromInclusion returns the root of the tree of the given size that
// proof, an RFC 6962 §2.1.1 audit path for the leaf with hash leafHash at
// index, leads to (RFC 9162 §2.1.3.2, steps 1 to 5). It fails, wrapping
// ErrIndexOutOfRange or ErrWrongProofSize, when no tree of that size has
// such a path; any path of the right length leads to some root, so the
// root must then be compared with one known otherwise (VerifyInclusion).
func RootFromInclusion(leafHash Hash, index, size uint64, proof []Hash) (Hash, error) {
	if index >= size {
		return Hash{}, fmt.Errorf("%w: index %d, size %d", ErrIndexOutOfRange, index, size)
	}
	// The RFC algorithm detects a wrong proof length only while hashing; the
	// length is a function of index and size, so checking it first rejects
	// padded or truncated proofs before any hashing, with a clearer error.
	if want := inclusionProofSize(index, size); len(proof) != want {
		return Hash{}, fmt.Errorf("%w: got %d hashes, want %d", ErrWrongProofSize, len(proof), want)
	}
	// RFC 9162 §2.1.3.2, steps 2 to 5.
	fn, sn := index, size-1
	r := leafHash
	for _, p := range proof {
		if sn == 0 {
			return Hash{}, fmt.Errorf("%w: path longer than the tree is high", ErrWrongProofSize)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return Hash{}, fmt.Errorf("%w: path shorter than the tree is high", ErrWrongProofSize)
	}
	return r, nil
}

// VerifyConsistency checks that proof is an RFC 6962 §2.1.2 consistency proof
// between the tree of size1 leaves with root root1 and the tree of size2
// leaves with root root2, following the RFC 9162 §2.1.4.2 algorithm. It
// returns nil if the proof holds, or an error wrapping ErrSizeOrder
// (size1 > size2), ErrEmptyTree (size1 == 0), ErrWrongProofSize or
// ErrRootMismatch.
//
// RFC 9162 §2.1.4.2 assumes 0 < size1 < size2. Like transparency-dev/merkle,
// VerifyConsistency accepts size1 == size2 exactly when the proof is empty
// and the roots are equal, and rejects every proof from size1 == 0: all trees
// extend the empty tree, so such a proof proves nothing.
func VerifyConsistency(size1, size2 uint64, proof []Hash, root1, root2 Hash) error {
	switch {
	case size1 > size2:
		return fmt.Errorf("%w: %d > %d", ErrSizeOrder, size1, size2)
	case size1 == 0:
		return ErrEmptyTree
	case size1 == size2:
		if len(proof) != 0 {
			return fmt.Errorf("%w: got %d hashes for equal sizes, want 0", ErrWrongProofSize, len(proof))
		}
		if root1 != root2 {
			return fmt.Errorf("%w: equal sizes, roots %s and %s", ErrRootMismatch, root1, root2)
		}
		return nil
	}
	// As in VerifyInclusion, check the length the sizes call for up front.
	if want := consistencyProofSize(size1, size2); len(proof) != want {
		return fmt.Errorf("%w: got %d hashes, want %d", ErrWrongProofSize, len(proof), want)
	}
	// RFC 9162 §2.1.4.2, steps 2 to 7. Step 2 prepends first_hash to the path
	// if size1 is a power of two; reading it as the seed instead leaves the
	// caller's slice alone.
	var seed Hash
	if size1&(size1-1) == 0 {
		seed = root1
	} else {
		seed, proof = proof[0], proof[1:]
	}
	fn, sn := size1-1, size2-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := seed, seed
	for _, c := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: path longer than the tree is high", ErrWrongProofSize)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: path shorter than the tree is high", ErrWrongProofSize)
	}
	if fr != root1 {
		return fmt.Errorf("%w: first tree: calculated %s, want %s", ErrRootMismatch, fr, root1)
	}
	if sr != root2 {
		return fmt.Errorf("%w: second tree: calculated %s, want %s", ErrRootMismatch, sr, root2)
	}
	return nil
}

// inclusionProofSize returns the length of the audit path for the leaf at
// index in a tree of size leaves, 0 <= index < size. The paths to index and to
// the last leaf, size - 1, share all nodes above the highest bit in which the
// two differ: below it the path has one sibling per level (inner), above it
// one per left sibling on the right border, the set bits of index (border).
func inclusionProofSize(index, size uint64) int {
	inner := bits.Len64(index ^ (size - 1))
	border := bits.OnesCount64(index >> inner)
	return inner + border
}

// consistencyProofSize returns the length of the consistency proof between
// trees of size1 and size2 leaves, 0 < size1 < size2. The proof is the audit
// path of leaf size1 - 1 in the larger tree with its lowest levels replaced by
// the perfect subtree of 2^shift leaves that ends the smaller tree, whose root
// the proof starts with unless size1 is that very power of two.
func consistencyProofSize(size1, size2 uint64) int {
	shift := bits.TrailingZeros64(size1)
	n := inclusionProofSize(size1-1, size2) - shift
	if size1 != 1<<shift {
		n++
	}
	return n
}
