package merkle

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
	"testing"
)

// splitHashes cuts b into 32-byte hashes, dropping a short tail, so that
// fuzzed proofs are mostly well formed and reach the hashing code.
func splitHashes(b []byte) []Hash {
	hs := make([]Hash, len(b)/HashSize)
	for i := range hs {
		copy(hs[i][:], b[i*HashSize:])
	}
	return hs
}

// joinHashes is the inverse of splitHashes.
func joinHashes(hs [][]byte) []byte {
	return bytes.Join(hs, nil)
}

// addVectorSeeds calls add for every vector of one kind in vectorDir, so the
// fuzzers start from valid proofs and their named mutations.
func addVectorSeeds(f *testing.F, kind string, add func(v vector)) {
	err := fs.WalkDir(os.DirFS(vectorDir), kind, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		data, err := os.ReadFile(path.Join(vectorDir, p))
		if err != nil {
			return err
		}
		var v vector
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		add(v)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
}

// FuzzVerifyInclusion checks that VerifyInclusion never panics, that every
// error it returns is one of its sentinels, and that whatever it accepts has
// the length the sizes call for.
func FuzzVerifyInclusion(f *testing.F) {
	addVectorSeeds(f, "inclusion", func(v vector) {
		f.Add(v.LeafIdx, v.TreeSize, v.LeafHash, joinHashes(v.Proof), v.Root)
	})
	f.Add(uint64(0), uint64(math.MaxUint64), make([]byte, 32), make([]byte, 64*32), make([]byte, 32))
	f.Fuzz(func(t *testing.T, index, size uint64, leaf, proof, root []byte) {
		// Truncate or zero-pad arbitrary bytes to hashes, so that inputs of
		// any length reach the verifier.
		var leafHash, rootHash Hash
		copy(leafHash[:], leaf)
		copy(rootHash[:], root)
		p := splitHashes(proof)
		err := VerifyInclusion(leafHash, index, size, p, rootHash)
		if err != nil {
			if !isVerifyError(err) {
				t.Fatalf("VerifyInclusion returned a non-sentinel error: %v", err)
			}
			return
		}
		if index >= size || len(p) != inclusionProofSize(index, size) {
			t.Fatalf("VerifyInclusion accepted index %d, size %d with %d hashes", index, size, len(p))
		}
	})
}

// FuzzVerifyConsistency checks that VerifyConsistency never panics, that
// every error it returns is one of its sentinels, and that whatever it
// accepts has valid sizes and the length they call for.
func FuzzVerifyConsistency(f *testing.F) {
	addVectorSeeds(f, "consistency", func(v vector) {
		f.Add(v.Size1, v.Size2, joinHashes(v.Proof), v.Root1, v.Root2)
	})
	f.Add(uint64(1), uint64(math.MaxUint64), make([]byte, 64*32), make([]byte, 32), make([]byte, 32))
	f.Add(uint64(math.MaxUint64-1), uint64(math.MaxUint64), make([]byte, 64*32), make([]byte, 32), make([]byte, 32))
	f.Fuzz(func(t *testing.T, size1, size2 uint64, proof, root1, root2 []byte) {
		// As in FuzzVerifyInclusion, fit arbitrary bytes to hashes.
		var r1, r2 Hash
		copy(r1[:], root1)
		copy(r2[:], root2)
		p := splitHashes(proof)
		err := VerifyConsistency(size1, size2, p, r1, r2)
		if err != nil {
			if !isVerifyError(err) {
				t.Fatalf("VerifyConsistency returned a non-sentinel error: %v", err)
			}
			return
		}
		switch {
		case size1 == 0 || size1 > size2:
			t.Fatalf("VerifyConsistency accepted sizes %d, %d", size1, size2)
		case size1 == size2 && (len(p) != 0 || r1 != r2):
			t.Fatalf("VerifyConsistency accepted equal sizes with %d hashes and roots %s, %s", len(p), r1, r2)
		case size1 < size2 && len(p) != consistencyProofSize(size1, size2):
			t.Fatalf("VerifyConsistency accepted sizes %d, %d with %d hashes", size1, size2, len(p))
		}
	})
}

// FuzzTreeUnmarshalBinary checks that decoding arbitrary bytes never panics,
// and that a state it accepts re-encodes to the same bytes (the encoding is
// canonical) and keeps working as a tree.
func FuzzTreeUnmarshalBinary(f *testing.F) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 300} {
		var tree Tree
		for _, h := range leafHashesOf(testLeaves(n)) {
			tree.Append(h)
		}
		b, _ := tree.MarshalBinary()
		f.Add(b)
	}
	full := make([]byte, stateHeaderSize+64*HashSize)
	full[0] = stateVersion
	binary.BigEndian.PutUint64(full[1:], math.MaxUint64)
	f.Add(full)
	f.Fuzz(func(t *testing.T, data []byte) {
		var tree Tree
		if err := tree.UnmarshalBinary(data); err != nil {
			return
		}
		back, err := tree.MarshalBinary()
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("MarshalBinary(UnmarshalBinary(%x)) = %x, %v", data, back, err)
		}
		root := tree.Root()
		if tree.Size() == math.MaxUint64 {
			return
		}
		c := tree.Clone()
		c.Append(root)
		if c.Size() != tree.Size()+1 {
			t.Fatalf("Append: size %d, want %d", c.Size(), tree.Size()+1)
		}
	})
}

// FuzzTreeStateRoundTrip builds a tree of n leaves, persists it, resumes it
// from the encoding and appends m more leaves to both copies: the roots must
// agree with each other and with RootAt over all the leaf hashes.
func FuzzTreeStateRoundTrip(f *testing.F) {
	f.Add(uint16(0), uint8(0))
	f.Add(uint16(5), uint8(3))
	f.Add(uint16(1023), uint8(1))
	f.Fuzz(func(t *testing.T, n uint16, m uint8) {
		hs := leafHashesOf(testLeaves(int(n) + int(m)))
		var tree Tree
		for _, h := range hs[:n] {
			tree.Append(h)
		}
		b, err := tree.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var resumed Tree
		if err := resumed.UnmarshalBinary(b); err != nil {
			t.Fatalf("UnmarshalBinary(MarshalBinary()) = %v", err)
		}
		for _, h := range hs[n:] {
			tree.Append(h)
			resumed.Append(h)
		}
		want, err := RootAt(NewLevels(hs), uint64(len(hs)))
		if err != nil {
			t.Fatal(err)
		}
		if tree.Root() != want || resumed.Root() != want || resumed.Size() != uint64(len(hs)) {
			t.Fatalf("n %d, m %d: roots %s and %s, want %s", n, m, tree.Root(), resumed.Root(), want)
		}
	})
}

// FuzzHashUnmarshalText checks that decoding arbitrary text never panics and
// that accepted text round-trips up to letter case.
func FuzzHashUnmarshalText(f *testing.F) {
	f.Add([]byte("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"))
	f.Add([]byte("5DC9DA79A70659A9AD559CB701DED9A2AB9D823AAD2F4960CFE370EFF4604328"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, text []byte) {
		var h Hash
		if err := h.UnmarshalText(text); err != nil {
			return
		}
		back, _ := h.MarshalText()
		if !bytes.EqualFold(back, text) {
			t.Fatalf("MarshalText(UnmarshalText(%q)) = %q", text, back)
		}
	})
}
