// Package merkle is the pure core of the per-shipment Merkle trees: the
// RFC 6962 §2.1 tree hash, an append-only tree that keeps only its compact
// range, proof generation from stored leaf hashes, and the RFC 9162 §2.1.3.2
// and §2.1.4.2 proof verifiers.
//
// The hashing rules are those of RFC 6962 §2.1 with SHA-256:
//
//   - The hash of the empty tree is SHA-256 of the empty string.
//   - The hash of a leaf is SHA-256(0x00 || leaf bytes).
//   - The hash of an interior node is SHA-256(0x01 || left || right).
//   - A tree over n > 1 leaves splits at k, the largest power of two strictly
//     less than n: the left subtree holds leaves [0, k) and the right subtree
//     leaves [k, n). A last node without a sibling is not duplicated.
//
// Every function in this package is a pure function of its arguments: there
// is no I/O, no clock and no randomness, so every result can be checked
// against a table of known answers.
//
// Tree sizes and leaf indices are uint64 counts of leaves; a leaf index i
// names the (i+1)th leaf appended, and ranges are half-open, [lo, hi).
package merkle
