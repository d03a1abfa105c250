package merkle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// exhaustiveMaxSize is the largest tree size for which the cross-checks try
// every leaf index and every size1 <= size2; above it they sample.
const exhaustiveMaxSize = 64

// allBitsMaxSize is the largest tree size for which the cross-checks flip
// every bit of every proof hash and root; above it they flip one random bit
// per hash.
const allBitsMaxSize = 16

// samplePoints returns the values in [lo, hi] to test for a tree of size n:
// all of them for small n, otherwise both ends, their neighbours, the middle,
// every power of two, and a few pseudo-random ones.
func samplePoints(rng *rand.Rand, lo, hi, n uint64) []uint64 {
	if n <= exhaustiveMaxSize {
		var all []uint64
		for v := lo; v <= hi; v++ {
			all = append(all, v)
		}
		return all
	}
	set := map[uint64]bool{lo: true, lo + 1: true, hi - 1: true, hi: true, (lo + hi) / 2: true}
	for p := uint64(1); p <= hi; p *= 2 {
		set[p] = true
	}
	for range 3 {
		set[lo+rng.Uint64N(hi-lo+1)] = true
	}
	var out []uint64
	for v := range set {
		if v >= lo && v <= hi {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// sources returns the two NodeSource implementations over the same leaves.
func sources(hs LeafHashes) []NodeSource {
	return []NodeSource{hs, NewLevels(hs)}
}

// TestInclusionProofMatchesReference cross-checks InclusionProof against the
// literal RFC 6962 §2.1.1 PATH for every size up to refMaxSize, then checks
// that each proof verifies and that every mutation of it fails.
func TestInclusionProofMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := testLeaves(refMaxSize)
	hs := leafHashesOf(d)
	srcs := sources(hs)
	for size := uint64(1); size <= refMaxSize; size++ {
		root := Hash(refMTH(d[:size]))
		for _, index := range samplePoints(rng, 0, size-1, size) {
			want := toHashes(refPath(int(index), d[:size]))
			for _, src := range srcs {
				got, err := InclusionProof(src, index, size)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("InclusionProof(%T, %d, %d) = %v, %v; want %v", src, index, size, got, err, want)
				}
			}
			if err := VerifyInclusion(hs[index], index, size, want, root); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d) of the reference proof: %v", index, size, err)
			}
			checkInclusionMutations(t, rng, hs[index], index, size, want, root, size <= allBitsMaxSize)
		}
	}
}

// TestConsistencyProofMatchesReference cross-checks ConsistencyProof against
// the literal RFC 6962 §2.1.2 PROOF for every size up to refMaxSize, then
// checks that each proof verifies and that every mutation of it fails.
func TestConsistencyProofMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d := testLeaves(refMaxSize)
	hs := leafHashesOf(d)
	srcs := sources(hs)
	roots := make([]Hash, refMaxSize+1)
	for n := range roots {
		roots[n] = Hash(refMTH(d[:n]))
	}
	for size2 := uint64(1); size2 <= refMaxSize; size2++ {
		for _, size1 := range samplePoints(rng, 1, size2, size2) {
			want := toHashes(refProof(int(size1), d[:size2]))
			for _, src := range srcs {
				got, err := ConsistencyProof(src, size1, size2)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("ConsistencyProof(%T, %d, %d) = %v, %v; want %v", src, size1, size2, got, err, want)
				}
			}
			if err := VerifyConsistency(size1, size2, want, roots[size1], roots[size2]); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d) of the reference proof: %v", size1, size2, err)
			}
			if size1 < size2 {
				checkConsistencyMutations(t, rng, size1, size2, want, roots[size1], roots[size2], size2 <= allBitsMaxSize)
			}
		}
	}
}

// TestRootAtMatchesReference checks RootAt for every size up to refMaxSize.
func TestRootAtMatchesReference(t *testing.T) {
	d := testLeaves(refMaxSize)
	hs := leafHashesOf(d)
	for _, src := range sources(hs) {
		for size := uint64(0); size <= refMaxSize; size++ {
			got, err := RootAt(src, size)
			if want := Hash(refMTH(d[:size])); err != nil || got != want {
				t.Fatalf("RootAt(%T, %d) = %s, %v; want %s", src, size, got, err, want)
			}
		}
	}
}

// TestLevels checks that Levels built at once, Levels built by appends and
// LeafHashes agree on every node, and that Levels copies its input.
func TestLevels(t *testing.T) {
	hs := leafHashesOf(testLeaves(100))
	var appended Levels
	for n := 0; n <= len(hs); n++ {
		built := NewLevels(hs[:n])
		for _, l := range []*Levels{built, &appended} {
			if got := l.Size(); got != uint64(n) {
				t.Fatalf("Size() = %d, want %d", got, n)
			}
			for level := uint(0); uint64(1)<<level <= uint64(n); level++ {
				for index := uint64(0); (index+1)<<level <= uint64(n); index++ {
					if got, want := l.Node(level, index), hs[:n].Node(level, index); got != want {
						t.Fatalf("size %d: Node(%d, %d) = %s, want %s", n, level, index, got, want)
					}
				}
			}
		}
		if n < len(hs) {
			appended.Append(hs[n])
		}
	}
	in := slices.Clone(hs[:4])
	l := NewLevels(in)
	in[0] = Hash{}
	if l.Node(0, 0) != hs[0] {
		t.Error("NewLevels aliases its input")
	}
}

// TestProofErrors checks the argument errors of the proof generators.
func TestProofErrors(t *testing.T) {
	src := leafHashesOf(stdLeaves)
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"inclusion-index-equals-size", func() error { _, err := InclusionProof(src, 5, 5); return err }, ErrIndexOutOfRange},
		{"inclusion-empty-tree", func() error { _, err := InclusionProof(src, 0, 0); return err }, ErrIndexOutOfRange},
		{"inclusion-size-beyond-leaves", func() error { _, err := InclusionProof(src, 0, 9); return err }, ErrSizeOutOfRange},
		{"consistency-from-empty", func() error { _, err := ConsistencyProof(src, 0, 4); return err }, ErrEmptyTree},
		{"consistency-empty-to-empty", func() error { _, err := ConsistencyProof(src, 0, 0); return err }, ErrEmptyTree},
		{"consistency-size1-above-size2", func() error { _, err := ConsistencyProof(src, 5, 4); return err }, ErrSizeOrder},
		{"consistency-size2-beyond-leaves", func() error { _, err := ConsistencyProof(src, 1, 9); return err }, ErrSizeOutOfRange},
		{"root-size-beyond-leaves", func() error { _, err := RootAt(src, 9); return err }, ErrSizeOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if p, err := ConsistencyProof(src, 8, 8); err != nil || len(p) != 0 {
		t.Errorf("ConsistencyProof(8, 8) = %v, %v; want an empty proof", p, err)
	}
}

// someHash is a hash that is not in any test tree.
var someHash = mustHex("abacaba000000000000000000000000000000000000000000060061e00123456")

// inclusionCase is one set of VerifyInclusion arguments.
type inclusionCase struct {
	leaf        Hash
	index, size uint64
	proof       []Hash
	root        Hash
}

// consistencyCase is one set of VerifyConsistency arguments.
type consistencyCase struct {
	size1, size2 uint64
	proof        []Hash
	root1, root2 Hash
}

// flipBit returns h with bit i (0 is the high bit of byte 0) inverted.
func flipBit(h Hash, i int) Hash {
	h[i/8] ^= 0x80 >> (i % 8)
	return h
}

// bitsToFlip returns every bit index of a Hash if all is set, else one
// pseudo-random bit index.
func bitsToFlip(rng *rand.Rand, all bool) []int {
	if !all {
		return []int{rng.IntN(8 * HashSize)}
	}
	out := make([]int, 8*HashSize)
	for i := range out {
		out[i] = i
	}
	return out
}

// withHash returns a copy of proof with h inserted at position i.
func withHash(proof []Hash, i int, h Hash) []Hash {
	return slices.Insert(slices.Clone(proof), i, h)
}

// checkInclusionMutations checks that every mutation of a valid inclusion
// proof fails. The mutations are those of the vectors in testdata/rfc6962,
// named the same way, plus bit flips in the leaf, the root and each hash.
func checkInclusionMutations(t *testing.T, rng *rand.Rand, leaf Hash, index, size uint64, proof []Hash, root Hash, allBits bool) {
	t.Helper()
	c := inclusionCase{leaf, index, size, proof, root}
	mutations := map[string]inclusionCase{}
	add := func(name string, f func(*inclusionCase)) {
		m := c
		m.proof = slices.Clone(c.proof)
		f(&m)
		mutations[name] = m
	}
	add("leafIdx-sub-@1", func(m *inclusionCase) { m.index-- })
	add("leafIdx-plus-@1", func(m *inclusionCase) { m.index++ })
	add("leafIdx-XOR-@2", func(m *inclusionCase) { m.index ^= 2 })
	add("treeSize-mul-@2", func(m *inclusionCase) { m.size *= 2 })
	add("treeSize-div-@2", func(m *inclusionCase) { m.size /= 2 })
	add("wrong-leaf", func(m *inclusionCase) { m.leaf = someHash })
	add("empty-root", func(m *inclusionCase) { m.root = EmptyRoot() })
	add("random-root", func(m *inclusionCase) { m.root = someHash })
	add("trailing-garbage", func(m *inclusionCase) { m.proof = append(m.proof, Hash{}) })
	add("trailing-root", func(m *inclusionCase) { m.proof = append(m.proof, root) })
	add("preceding-garbage", func(m *inclusionCase) { m.proof = withHash(m.proof, 0, Hash{}) })
	add("preceding-root", func(m *inclusionCase) { m.proof = withHash(m.proof, 0, root) })
	if len(proof) > 0 {
		add("removed-component", func(m *inclusionCase) { m.proof = m.proof[:len(m.proof)-1] })
		add("inserted-component", func(m *inclusionCase) { m.proof = withHash(m.proof, 1, someHash) })
	}
	for _, b := range bitsToFlip(rng, allBits) {
		add(fmt.Sprintf("modified-leaf-bit-@%d", b), func(m *inclusionCase) { m.leaf = flipBit(m.leaf, b) })
		add(fmt.Sprintf("modified-root-bit-@%d", b), func(m *inclusionCase) { m.root = flipBit(m.root, b) })
	}
	for i := range proof {
		for _, b := range bitsToFlip(rng, allBits) {
			add(fmt.Sprintf("modified-proof[%d]-bit-@%d", i, b), func(m *inclusionCase) { m.proof[i] = flipBit(m.proof[i], b) })
		}
	}
	for name, m := range mutations {
		err := VerifyInclusion(m.leaf, m.index, m.size, m.proof, m.root)
		if !isVerifyError(err) || (isBitFlip(name) && !errors.Is(err, ErrRootMismatch)) {
			t.Fatalf("index %d, size %d, %s: VerifyInclusion = %v, want a sentinel error", index, size, name, err)
		}
	}
}

// checkConsistencyMutations is checkInclusionMutations for a consistency
// proof with size1 < size2.
func checkConsistencyMutations(t *testing.T, rng *rand.Rand, size1, size2 uint64, proof []Hash, root1, root2 Hash, allBits bool) {
	t.Helper()
	c := consistencyCase{size1, size2, proof, root1, root2}
	mutations := map[string]consistencyCase{}
	add := func(name string, f func(*consistencyCase)) {
		m := c
		m.proof = slices.Clone(c.proof)
		f(&m)
		mutations[name] = m
	}
	add("size1-sub-@1", func(m *consistencyCase) { m.size1-- })
	add("size1-plus-@1", func(m *consistencyCase) { m.size1++ })
	add("size1-XOR-@2", func(m *consistencyCase) { m.size1 ^= 2 })
	add("size2-mul-@2", func(m *consistencyCase) { m.size2 *= 2 })
	add("size2-div-@2", func(m *consistencyCase) { m.size2 /= 2 })
	add("wrong-root1", func(m *consistencyCase) { m.root1 = someHash })
	add("wrong-root2", func(m *consistencyCase) { m.root2 = someHash })
	add("swapped-roots", func(m *consistencyCase) { m.root1, m.root2 = m.root2, m.root1 })
	add("empty-proof", func(m *consistencyCase) { m.proof = nil })
	add("trailing-garbage", func(m *consistencyCase) { m.proof = append(m.proof, Hash{}) })
	add("trailing-root1", func(m *consistencyCase) { m.proof = append(m.proof, root1) })
	add("trailing-root2", func(m *consistencyCase) { m.proof = append(m.proof, root2) })
	add("preceding-garbage", func(m *consistencyCase) { m.proof = withHash(m.proof, 0, Hash{}) })
	add("preceding-root1", func(m *consistencyCase) { m.proof = withHash(m.proof, 0, root1) })
	add("preceding-root2", func(m *consistencyCase) { m.proof = withHash(m.proof, 0, root2) })
	add("preceding-proof-@0", func(m *consistencyCase) { m.proof = withHash(m.proof, 0, proof[0]) })
	add("truncated-proof", func(m *consistencyCase) { m.proof = m.proof[:len(m.proof)-1] })
	for _, b := range bitsToFlip(rng, allBits) {
		add(fmt.Sprintf("modified-root1-bit-@%d", b), func(m *consistencyCase) { m.root1 = flipBit(m.root1, b) })
		add(fmt.Sprintf("modified-root2-bit-@%d", b), func(m *consistencyCase) { m.root2 = flipBit(m.root2, b) })
	}
	for i := range proof {
		for _, b := range bitsToFlip(rng, allBits) {
			add(fmt.Sprintf("modified-proof@%d-bit-@%d", i, b), func(m *consistencyCase) { m.proof[i] = flipBit(m.proof[i], b) })
		}
	}
	for name, m := range mutations {
		err := VerifyConsistency(m.size1, m.size2, m.proof, m.root1, m.root2)
		if !isVerifyError(err) || (isBitFlip(name) && !errors.Is(err, ErrRootMismatch)) {
			t.Fatalf("size1 %d, size2 %d, %s: VerifyConsistency = %v, want a sentinel error", size1, size2, name, err)
		}
	}
}

// isBitFlip reports whether the mutation name is a bit flip, which leaves
// the proof well formed and so must fail with ErrRootMismatch.
func isBitFlip(name string) bool {
	return strings.Contains(name, "-bit-@")
}

// isVerifyError reports whether err is one of the verifiers' sentinel errors.
func isVerifyError(err error) bool {
	for _, s := range []error{ErrRootMismatch, ErrWrongProofSize, ErrIndexOutOfRange, ErrSizeOrder, ErrEmptyTree} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
