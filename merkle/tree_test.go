package merkle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"testing"
)

// refMaxSize is the largest tree the reference cross-checks build.
const refMaxSize = 300

// TestTreeMatchesReference appends leaves one at a time and checks Size, Root
// and the frontier length against the reference after every append.
func TestTreeMatchesReference(t *testing.T) {
	d := testLeaves(refMaxSize)
	var tree Tree
	if got, want := tree.Root(), EmptyRoot(); got != want {
		t.Fatalf("empty Tree.Root() = %s, want %s", got, want)
	}
	for n := 1; n <= refMaxSize; n++ {
		if got, want := tree.AppendData(d[n-1]), LeafHash(d[n-1]); got != want {
			t.Fatalf("AppendData returned %s, want the leaf hash %s", got, want)
		}
		if got := tree.Size(); got != uint64(n) {
			t.Fatalf("Size() = %d, want %d", got, n)
		}
		if got, want := len(tree.frontier), bits.OnesCount(uint(n)); got != want {
			t.Fatalf("size %d: frontier holds %d hashes, want %d", n, got, want)
		}
		if got, want := tree.Root(), Hash(refMTH(d[:n])); got != want {
			t.Fatalf("size %d: Root() = %s, want %s", n, got, want)
		}
	}
}

// TestTreeStateRoundTrip persists the tree at every size, resumes it from the
// encoding alone and checks that the resumed tree continues exactly like the
// original.
func TestTreeStateRoundTrip(t *testing.T) {
	const total = 70
	hs := leafHashesOf(testLeaves(total))
	var full Tree
	for _, h := range hs {
		full.Append(h)
	}
	var tree Tree
	for n := 0; n <= total; n++ {
		b, err := tree.MarshalBinary()
		if err != nil {
			t.Fatalf("size %d: MarshalBinary: %v", n, err)
		}
		if want := stateHeaderSize + bits.OnesCount(uint(n))*HashSize; len(b) != want {
			t.Fatalf("size %d: encoding is %d bytes, want %d", n, len(b), want)
		}
		var resumed Tree
		if err := resumed.UnmarshalBinary(b); err != nil {
			t.Fatalf("size %d: UnmarshalBinary: %v", n, err)
		}
		if resumed.Size() != tree.Size() || resumed.Root() != tree.Root() {
			t.Fatalf("size %d: resumed (%d, %s), want (%d, %s)", n, resumed.Size(), resumed.Root(), tree.Size(), tree.Root())
		}
		for _, h := range hs[n:] {
			resumed.Append(h)
		}
		if resumed.Root() != full.Root() {
			t.Fatalf("resumed at %d and completed: root %s, want %s", n, resumed.Root(), full.Root())
		}
		if n < total {
			tree.Append(hs[n])
		}
	}
}

func TestTreeClone(t *testing.T) {
	var tree Tree
	for _, leaf := range stdLeaves[:7] {
		tree.AppendData(leaf)
	}
	c := tree.Clone()
	c.AppendData(stdLeaves[7])
	if got, want := tree.Root(), stdRoots[7]; got != want {
		t.Errorf("original root after appending to the clone = %s, want %s", got, want)
	}
	if got, want := c.Root(), stdRoots[8]; got != want {
		t.Errorf("clone root = %s, want %s", got, want)
	}
}

// TestTreeUnmarshalBinaryErrors names each malformed state after the mutation
// that produced it from a valid encoding of a 5-leaf tree.
func TestTreeUnmarshalBinaryErrors(t *testing.T) {
	var tree Tree
	for _, leaf := range stdLeaves[:5] {
		tree.AppendData(leaf)
	}
	good, _ := tree.MarshalBinary()
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	withSize := func(size uint64) []byte {
		return mutate(func(b []byte) []byte { binary.BigEndian.PutUint64(b[1:], size); return b })
	}
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"version-only", good[:1], true},
		{"truncated-header", good[:stateHeaderSize-1], true},
		{"truncated-hash", good[:len(good)-1], true},
		{"removed-hash", good[:len(good)-HashSize], true},
		{"trailing-garbage", append(append([]byte(nil), good...), 0), true},
		{"trailing-hash", append(append([]byte(nil), good...), good[stateHeaderSize:stateHeaderSize+HashSize]...), true},
		{"version-0", mutate(func(b []byte) []byte { b[0] = 0; return b }), true},
		{"version-2", mutate(func(b []byte) []byte { b[0] = 2; return b }), true},
		{"size-plus-2", withSize(7), true},
		{"size-max", withSize(math.MaxUint64), true},
		{"size-zero", withSize(0), true},
		// The encoding carries no checksum: a size with as many bits set as
		// the original (5 = 0b101, 6 = 0b110) is well formed, and only the
		// caller's anchored roots can tell it is wrong.
		{"size-plus-1", withSize(6), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tree.Clone()
			err := got.UnmarshalBinary(tc.data)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("UnmarshalBinary = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrMalformedState) {
				t.Fatalf("UnmarshalBinary = %v, want ErrMalformedState", err)
			}
			if got.Size() != tree.Size() || got.Root() != tree.Root() {
				t.Errorf("UnmarshalBinary changed the tree on error")
			}
		})
	}
}

func TestTreeStateEncoding(t *testing.T) {
	// The state of the 5-leaf standard tree is the root of leaves [0, 4) and
	// the leaf hash of leaf 4, after the version byte and the size.
	var tree Tree
	for _, leaf := range stdLeaves[:5] {
		tree.AppendData(leaf)
	}
	got, _ := tree.MarshalBinary()
	want := []byte{1, 0, 0, 0, 0, 0, 0, 0, 5}
	want = append(want, stdRoots[4][:]...)
	leaf4 := LeafHash(stdLeaves[4])
	want = append(want, leaf4[:]...)
	if !bytes.Equal(got, want) {
		t.Errorf("MarshalBinary = %x, want %x", got, want)
	}
	var empty Tree
	if got, _ := empty.MarshalBinary(); !bytes.Equal(got, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("empty MarshalBinary = %x", got)
	}
}

func TestTreeAppendPanicsWhenFull(t *testing.T) {
	b := make([]byte, stateHeaderSize+64*HashSize)
	b[0] = stateVersion
	binary.BigEndian.PutUint64(b[1:], math.MaxUint64)
	var tree Tree
	if err := tree.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Append on a full tree did not panic")
		}
	}()
	tree.Append(Hash{})
}
