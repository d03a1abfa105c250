package merkle

import (
	"crypto/sha256"
	"fmt"
)

// This file is the slow reference: RFC 6962 §2.1 transcribed as literally as
// Go allows, over raw leaf data and []byte hashes, sharing no code with the
// package (not even Hash, LeafHash or NodeHash). Every definition recomputes
// whole subtrees, so it costs O(n) hashes per root and per proof.

// refSHA256 is the RFC's HASH.
func refSHA256(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

// refConcat returns the concatenation of its arguments in a new slice.
func refConcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// refSplit returns k, "the largest power of two smaller than n" (RFC 6962
// §2.1), for n > 1.
func refSplit(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

// refMTH is MTH(D[n]) of RFC 6962 §2.1:
//
//	MTH({}) = SHA-256().
//	MTH({d(0)}) = SHA-256(0x00 || d(0)).
//	MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
func refMTH(d [][]byte) []byte {
	switch n := len(d); n {
	case 0:
		return refSHA256(nil)
	case 1:
		return refSHA256(refConcat([]byte{0x00}, d[0]))
	default:
		k := refSplit(n)
		return refSHA256(refConcat([]byte{0x01}, refMTH(d[:k]), refMTH(d[k:])))
	}
}

// refPath is PATH(m, D[n]) of RFC 6962 §2.1.1:
//
//	PATH(0, {d(0)}) = {}
//	PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k; and
//	PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k,
func refPath(m int, d [][]byte) [][]byte {
	n := len(d)
	if n == 1 {
		return nil
	}
	k := refSplit(n)
	if m < k {
		return append(refPath(m, d[:k]), refMTH(d[k:n]))
	}
	return append(refPath(m-k, d[k:n]), refMTH(d[:k]))
}

// refProof is PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 6962 §2.1.2.
func refProof(m int, d [][]byte) [][]byte {
	return refSubproof(m, d, true)
}

// refSubproof is SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2:
//
//	SUBPROOF(m, D[m], true) = {}
//	SUBPROOF(m, D[m], false) = {MTH(D[m])}
//	SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) for m <= k
//	SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) for m > k
func refSubproof(m int, d [][]byte, b bool) [][]byte {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return [][]byte{refMTH(d)}
	}
	k := refSplit(n)
	if m <= k {
		return append(refSubproof(m, d[:k], b), refMTH(d[k:n]))
	}
	return append(refSubproof(m-k, d[k:n], false), refMTH(d[:k]))
}

// testLeaves returns n distinct leaves, "leaf 0", "leaf 1", and so on.
func testLeaves(n int) [][]byte {
	d := make([][]byte, n)
	for i := range d {
		d[i] = fmt.Appendf(nil, "leaf %d", i)
	}
	return d
}

// leafHashesOf returns the package's leaf hashes of d.
func leafHashesOf(d [][]byte) LeafHashes {
	hs := make(LeafHashes, len(d))
	for i := range d {
		hs[i] = LeafHash(d[i])
	}
	return hs
}

// toHashes converts reference hashes to Hash values; they are always 32 bytes.
func toHashes(bs [][]byte) []Hash {
	hs := make([]Hash, len(bs))
	for i, b := range bs {
		hs[i] = Hash(b)
	}
	return hs
}
