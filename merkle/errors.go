package merkle

import "errors"

// The sentinel errors below are returned wrapped with context; match them with
// errors.Is.
var (
	// ErrRootMismatch means a proof was well formed but the root it
	// recomputes differs from the root it was checked against.
	ErrRootMismatch = errors.New("merkle: root mismatch")

	// ErrWrongProofSize means a proof holds more or fewer hashes than the
	// tree sizes and leaf index call for.
	ErrWrongProofSize = errors.New("merkle: wrong proof size")

	// ErrIndexOutOfRange means a leaf index is not below the tree size.
	ErrIndexOutOfRange = errors.New("merkle: leaf index out of range")

	// ErrSizeOrder means the first tree size of a consistency proof is larger
	// than the second.
	ErrSizeOrder = errors.New("merkle: first tree size larger than second")

	// ErrEmptyTree means a consistency proof from the empty tree was asked for
	// or checked; RFC 9162 §2.1.4 defines them only from a tree of size > 0.
	ErrEmptyTree = errors.New("merkle: consistency proof from the empty tree")

	// ErrSizeOutOfRange means a requested tree size exceeds the number of
	// leaves a NodeSource holds.
	ErrSizeOutOfRange = errors.New("merkle: tree size exceeds stored leaves")

	// ErrWrongHashSize means a hash to be decoded is not exactly 32 bytes.
	ErrWrongHashSize = errors.New("merkle: hash is not 32 bytes")

	// ErrMalformedState means an encoded Tree state is truncated, has trailing
	// bytes, or has an unknown version.
	ErrMalformedState = errors.New("merkle: malformed tree state")
)
