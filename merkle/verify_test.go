package merkle

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
)

// vectorDir holds the RFC 6962 proof vectors of transparency-dev/merkle; see
// testdata/README.md for where they come from.
const vectorDir = "testdata/rfc6962"

// vector is one JSON file of vectorDir. Each directory uses a subset of the
// fields; see testdata/rfc6962/README.md.
type vector struct {
	LeafIdx  uint64   `json:"leafIdx"`
	TreeSize uint64   `json:"treeSize"`
	Root     []byte   `json:"root"`
	LeafHash []byte   `json:"leafHash"`
	Size1    uint64   `json:"size1"`
	Size2    uint64   `json:"size2"`
	Root1    []byte   `json:"root1"`
	Root2    []byte   `json:"root2"`
	Start    uint64   `json:"start"`
	End      uint64   `json:"end"`
	Size     uint64   `json:"size"`
	Proof    [][]byte `json:"proof"`
	Desc     string   `json:"desc"`
	WantErr  bool     `json:"wantErr"`
}

// Reasons for not running a vector against the plain RFC 6962 verifiers.
// The subtree* directories hold vectors for the subtree inclusion and
// subtree consistency proofs of the Merkle Tree Certificates draft, which
// prove facts about an arbitrary aligned subtree [start, end) of a larger
// tree. Only some of them are statements about a plain RFC 6962 tree.
const (
	// A subtree with start > 0 is not the tree of any prefix of the leaves,
	// so no RFC 6962 proof speaks about it.
	skipSubtreeStart = "subtree does not start at leaf 0"
	// The draft treats the empty subtree [0, 0) as consistent with any tree
	// when root1 is the empty-tree hash (subtree-is-empty-*-valid-* expect
	// success), while RFC 9162 §2.1.4 defines consistency only from size
	// 0 < m, and consistency/additional expects size1 = 0 to fail.
	skipSubtreeEmpty = "empty subtree has draft-only semantics"
)

// vectorDeviations are the vectors whose expectation this package does not
// meet, with the error it returns instead. Both hold 12-byte "roots" ("don't
// care 2") that are equal, with size1 = size2 = 1 and an empty proof:
// transparency-dev/merkle accepts them because its equal-size branch compares
// roots with bytes.Equal and never checks their length. Here every hash is a
// 32-byte Hash and ParseHash rejects anything else, so the vectors fail at
// decoding, before verification. A SHA-256 tree root is never 12 bytes long.
var vectorDeviations = map[string]error{
	"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json":        ErrWrongHashSize,
	"subtreeconsistency/additional/sizes-are-equal-one-and-proof-is-empty.json": ErrWrongHashSize,
}

// TestVectors runs every vector in vectorDir: each one whose wantErr is false
// must verify and each one whose wantErr is true must fail, except for the
// skips and deviations documented above. The happy-path vectors of the
// inclusion/ and consistency/ directories are proofs in the standard 8-leaf
// tree, so for them the generated proof must also equal the vector's.
func TestVectors(t *testing.T) {
	std := leafHashesOf(stdLeaves)
	counts := map[string]int{}
	seenDeviations := map[string]bool{}
	err := fs.WalkDir(os.DirFS(vectorDir), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || path.Ext(p) != ".json" {
			return err
		}
		data, err := os.ReadFile(path.Join(vectorDir, p))
		if err != nil {
			return err
		}
		var v vector
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		kind, _, _ := strings.Cut(p, "/")
		var run func() error
		switch {
		case kind == "inclusion":
			run = func() error { return runInclusionVector(v, v.LeafIdx, v.TreeSize) }
		case kind == "consistency":
			run = func() error { return runConsistencyVector(v, v.Size1, v.Size2) }
		case (kind == "subtreeinclusion" || kind == "subtreeconsistency") && v.Start != 0:
			counts["skipped: "+skipSubtreeStart]++
			return nil
		case kind == "subtreeinclusion":
			run = func() error { return runInclusionVector(v, v.LeafIdx, v.End) }
		case kind == "subtreeconsistency" && v.End == 0:
			counts["skipped: "+skipSubtreeEmpty]++
			return nil
		case kind == "subtreeconsistency":
			run = func() error { return runConsistencyVector(v, v.End, v.Size) }
		default:
			t.Errorf("%s: unknown vector directory %q", p, kind)
			return nil
		}
		counts[kind]++
		t.Run(p, func(t *testing.T) {
			got := run()
			t.Logf("%s: wantErr %t, got %v", v.Desc, v.WantErr, got)
			if want, ok := vectorDeviations[p]; ok {
				seenDeviations[p] = true
				if !errors.Is(got, want) {
					t.Errorf("got %v, want the documented deviation %v", got, want)
				}
				return
			}
			if v.WantErr && got == nil {
				t.Errorf("%s: verified, want an error", v.Desc)
			}
			if !v.WantErr && got != nil {
				t.Errorf("%s: %v", v.Desc, got)
			}
			if path.Base(p) == "happy-path.json" && (kind == "inclusion" || kind == "consistency") {
				checkGeneratedProof(t, std, kind, v)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vectors run or skipped: %v", counts)
	for _, kind := range []string{"inclusion", "consistency", "subtreeinclusion", "subtreeconsistency"} {
		if counts[kind] == 0 {
			t.Errorf("no %s vectors ran; is %s missing?", kind, vectorDir)
		}
	}
	for p := range vectorDeviations {
		if !seenDeviations[p] {
			t.Errorf("documented deviation %s was not found; update vectorDeviations", p)
		}
	}
}

// parseHashes decodes the hashes of a vector the way a caller decodes them
// from the wire: every one must be exactly 32 bytes.
func parseHashes(raw ...[]byte) ([]Hash, error) {
	hs := make([]Hash, len(raw))
	for i, b := range raw {
		h, err := ParseHash(b)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return hs, nil
}

func runInclusionVector(v vector, index, size uint64) error {
	hs, err := parseHashes(v.LeafHash, v.Root)
	if err != nil {
		return err
	}
	proof, err := parseHashes(v.Proof...)
	if err != nil {
		return err
	}
	return VerifyInclusion(hs[0], index, size, proof, hs[1])
}

func runConsistencyVector(v vector, size1, size2 uint64) error {
	hs, err := parseHashes(v.Root1, v.Root2)
	if err != nil {
		return err
	}
	proof, err := parseHashes(v.Proof...)
	if err != nil {
		return err
	}
	return VerifyConsistency(size1, size2, proof, hs[0], hs[1])
}

// checkGeneratedProof checks that the happy-path vector v is a proof in the
// standard tree and that the package generates the same proof.
func checkGeneratedProof(t *testing.T, std LeafHashes, kind string, v vector) {
	t.Helper()
	want, _ := parseHashes(v.Proof...)
	var got []Hash
	var err error
	switch kind {
	case "inclusion":
		hs, _ := parseHashes(v.Root, v.LeafHash)
		if v.TreeSize > 8 || hs == nil || hs[0] != stdRoots[v.TreeSize] || hs[1] != std[v.LeafIdx] {
			t.Fatalf("happy path is not in the standard tree")
		}
		got, err = InclusionProof(std, v.LeafIdx, v.TreeSize)
	case "consistency":
		hs, _ := parseHashes(v.Root1, v.Root2)
		if v.Size2 > 8 || hs == nil || hs[0] != stdRoots[v.Size1] || hs[1] != stdRoots[v.Size2] {
			t.Fatalf("happy path is not in the standard tree")
		}
		got, err = ConsistencyProof(std, v.Size1, v.Size2)
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("generated proof %v, %v; want %v", got, err, want)
	}
}

// TestVerifyErrors checks which sentinel each kind of bad input returns,
// using proofs in the standard 8-leaf tree.
func TestVerifyErrors(t *testing.T) {
	std := leafHashesOf(stdLeaves)
	incl, _ := InclusionProof(std, 5, 8)
	cons, _ := ConsistencyProof(std, 6, 8)
	cons2, _ := ConsistencyProof(std, 4, 8) // size1 is a power of two.
	for _, tc := range []struct {
		name string
		err  error
		want error // nil means success.
	}{
		{"inclusion-happy-path", VerifyInclusion(std[5], 5, 8, incl, stdRoots[8]), nil},
		{"inclusion-single-leaf", VerifyInclusion(std[0], 0, 1, nil, stdRoots[1]), nil},
		{"inclusion-index-equals-size", VerifyInclusion(std[5], 8, 8, incl, stdRoots[8]), ErrIndexOutOfRange},
		{"inclusion-index-max", VerifyInclusion(std[5], math.MaxUint64, 8, incl, stdRoots[8]), ErrIndexOutOfRange},
		{"inclusion-size-zero", VerifyInclusion(std[0], 0, 0, nil, EmptyRoot()), ErrIndexOutOfRange},
		{"inclusion-size-max", VerifyInclusion(std[5], 5, math.MaxUint64, incl, stdRoots[8]), ErrWrongProofSize},
		{"inclusion-truncated-proof", VerifyInclusion(std[5], 5, 8, incl[:2], stdRoots[8]), ErrWrongProofSize},
		{"inclusion-nil-proof", VerifyInclusion(std[5], 5, 8, nil, stdRoots[8]), ErrWrongProofSize},
		{"inclusion-wrong-leaf", VerifyInclusion(std[4], 5, 8, incl, stdRoots[8]), ErrRootMismatch},
		{"inclusion-old-root", VerifyInclusion(std[5], 5, 8, incl, stdRoots[7]), ErrRootMismatch},
		{"consistency-happy-path", VerifyConsistency(6, 8, cons, stdRoots[6], stdRoots[8]), nil},
		{"consistency-happy-path-power-of-two", VerifyConsistency(4, 8, cons2, stdRoots[4], stdRoots[8]), nil},
		{"consistency-equal-sizes", VerifyConsistency(8, 8, nil, stdRoots[8], stdRoots[8]), nil},
		{"consistency-equal-sizes-max", VerifyConsistency(math.MaxUint64, math.MaxUint64, nil, someHash, someHash), nil},
		{"consistency-equal-sizes-other-root", VerifyConsistency(8, 8, nil, stdRoots[8], stdRoots[7]), ErrRootMismatch},
		{"consistency-equal-sizes-with-proof", VerifyConsistency(8, 8, cons, stdRoots[8], stdRoots[8]), ErrWrongProofSize},
		{"consistency-size1-above-size2", VerifyConsistency(8, 6, cons, stdRoots[8], stdRoots[6]), ErrSizeOrder},
		{"consistency-from-empty", VerifyConsistency(0, 8, nil, EmptyRoot(), stdRoots[8]), ErrEmptyTree},
		{"consistency-empty-to-empty", VerifyConsistency(0, 0, nil, EmptyRoot(), EmptyRoot()), ErrEmptyTree},
		{"consistency-empty-proof", VerifyConsistency(6, 8, nil, stdRoots[6], stdRoots[8]), ErrWrongProofSize},
		{"consistency-size2-max", VerifyConsistency(6, math.MaxUint64, cons, stdRoots[6], stdRoots[8]), ErrWrongProofSize},
		{"consistency-wrong-root1", VerifyConsistency(6, 8, cons, stdRoots[5], stdRoots[8]), ErrRootMismatch},
		{"consistency-wrong-root2", VerifyConsistency(6, 8, cons, stdRoots[6], stdRoots[7]), ErrRootMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				if tc.err != nil {
					t.Errorf("got %v, want nil", tc.err)
				}
				return
			}
			if !errors.Is(tc.err, tc.want) {
				t.Errorf("got %v, want %v", tc.err, tc.want)
			}
		})
	}
}

// TestVerifyDoesNotModifyProof checks that the verifiers leave the caller's
// proof slice alone, including the consistency seed handling of RFC 9162
// §2.1.4.2 step 2.
func TestVerifyDoesNotModifyProof(t *testing.T) {
	std := leafHashesOf(stdLeaves)
	for _, size1 := range []uint64{1, 2, 3, 4, 6, 7} {
		proof, _ := ConsistencyProof(std, size1, 8)
		saved := slices.Clone(proof)
		if err := VerifyConsistency(size1, 8, proof[:len(proof):len(proof)], stdRoots[size1], stdRoots[8]); err != nil {
			t.Fatalf("size1 %d: %v", size1, err)
		}
		if !slices.Equal(proof, saved) {
			t.Errorf("size1 %d: VerifyConsistency modified the proof", size1)
		}
	}
}
