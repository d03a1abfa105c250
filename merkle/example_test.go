package merkle_test

import (
	"errors"
	"fmt"

	"github.com/coldchain/coldchain/merkle"
)

// Example appends the records of a shipment, persists and resumes the tree,
// then proves and verifies that a record is in it and that an earlier root
// is a prefix of the final one.
func Example() {
	records := []string{"t=0 4.1C", "t=60 4.3C", "t=120 4.2C", "t=180 8.9C", "t=240 4.0C"}

	var tree merkle.Tree
	var leafHashes merkle.LeafHashes // The caller stores these for proofs.
	for _, r := range records[:3] {
		leafHashes = append(leafHashes, tree.AppendData([]byte(r)))
	}
	anchored := tree.Root() // For example, a root anchored on chain.

	// Persist the O(log n) state and resume without the leaves.
	state, _ := tree.MarshalBinary()
	var resumed merkle.Tree
	if err := resumed.UnmarshalBinary(state); err != nil {
		panic(err)
	}
	for _, r := range records[3:] {
		leafHashes = append(leafHashes, resumed.AppendData([]byte(r)))
	}
	root := resumed.Root()

	proof, _ := merkle.InclusionProof(leafHashes, 3, resumed.Size())
	fmt.Println("inclusion:", merkle.VerifyInclusion(merkle.LeafHash([]byte("t=180 8.9C")), 3, 5, proof, root))

	cons, _ := merkle.ConsistencyProof(leafHashes, 3, 5)
	fmt.Println("consistency:", merkle.VerifyConsistency(3, 5, cons, anchored, root))

	err := merkle.VerifyInclusion(merkle.LeafHash([]byte("t=180 4.9C")), 3, 5, proof, root)
	fmt.Println("tampered record rejected:", errors.Is(err, merkle.ErrRootMismatch))
	// Output:
	// inclusion: <nil>
	// consistency: <nil>
	// tampered record rejected: true
}
