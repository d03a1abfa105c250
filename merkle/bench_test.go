package merkle

import (
	"fmt"
	"testing"
)

// benchTreeSize is a 30-day shipment logged once a minute.
const benchTreeSize = 43200

// reportRate reports n operations over the benchmark's elapsed time as unit.
func reportRate(b *testing.B, n int, unit string) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), unit)
}

// BenchmarkLeafHash measures leaf hashing alone, per record size in bytes.
func BenchmarkLeafHash(b *testing.B) {
	for _, size := range []int{64, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			record := make([]byte, size)
			b.SetBytes(int64(size))
			n := 0
			for b.Loop() {
				LeafHash(record)
				n++
			}
			reportRate(b, n, "records/s")
		})
	}
}

// BenchmarkAppend measures the ingest path: hash a record and append it to a
// Tree, then read the root, per record size in bytes.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("record=%dB", size), func(b *testing.B) {
			record := make([]byte, size)
			b.SetBytes(int64(size))
			var tree Tree
			n := 0
			for b.Loop() {
				tree.AppendData(record)
				n++
			}
			reportRate(b, n, "records/s")
		})
	}
	b.Run("record=256B/with-root", func(b *testing.B) {
		record := make([]byte, 256)
		b.SetBytes(256)
		var tree Tree
		n := 0
		for b.Loop() {
			tree.AppendData(record)
			tree.Root()
			n++
		}
		reportRate(b, n, "records/s")
	})
	b.Run("record=256B/levels", func(b *testing.B) {
		record := make([]byte, 256)
		b.SetBytes(256)
		var levels Levels
		n := 0
		for b.Loop() {
			levels.Append(LeafHash(record))
			n++
		}
		reportRate(b, n, "records/s")
	})
}

// BenchmarkNewLevels measures rebuilding the node cache of a full shipment
// from its stored leaf hashes.
func BenchmarkNewLevels(b *testing.B) {
	hs := leafHashesOf(testLeaves(benchTreeSize))
	for b.Loop() {
		NewLevels(hs)
	}
}

// BenchmarkInclusionProof measures proofs in a 43,200-leaf tree from both
// NodeSource implementations, for leaves spread over the tree.
func BenchmarkInclusionProof(b *testing.B) {
	hs := leafHashesOf(testLeaves(benchTreeSize))
	for _, src := range []struct {
		name string
		src  NodeSource
	}{{"levels", NewLevels(hs)}, {"leafhashes", hs}} {
		b.Run(fmt.Sprintf("%s/size=%d", src.name, benchTreeSize), func(b *testing.B) {
			i := uint64(0)
			n := 0
			for b.Loop() {
				if _, err := InclusionProof(src.src, i, benchTreeSize); err != nil {
					b.Fatal(err)
				}
				i = (i + 7919) % benchTreeSize
				n++
			}
			reportRate(b, n, "proofs/s")
		})
	}
}

// BenchmarkConsistencyProof measures proofs between a mid-shipment size and
// the full 43,200-leaf tree from both NodeSource implementations.
func BenchmarkConsistencyProof(b *testing.B) {
	hs := leafHashesOf(testLeaves(benchTreeSize))
	for _, src := range []struct {
		name string
		src  NodeSource
	}{{"levels", NewLevels(hs)}, {"leafhashes", hs}} {
		b.Run(fmt.Sprintf("%s/size=%d", src.name, benchTreeSize), func(b *testing.B) {
			size1 := uint64(1)
			n := 0
			for b.Loop() {
				if _, err := ConsistencyProof(src.src, size1, benchTreeSize); err != nil {
					b.Fatal(err)
				}
				size1 = (size1+7919)%(benchTreeSize-1) + 1
				n++
			}
			reportRate(b, n, "proofs/s")
		})
	}
}

// BenchmarkVerifyInclusion measures verifying one proof in a 43,200-leaf
// tree.
func BenchmarkVerifyInclusion(b *testing.B) {
	hs := leafHashesOf(testLeaves(benchTreeSize))
	levels := NewLevels(hs)
	root, _ := RootAt(levels, benchTreeSize)
	const index = 12345
	proof, _ := InclusionProof(levels, index, benchTreeSize)
	n := 0
	for b.Loop() {
		if err := VerifyInclusion(hs[index], index, benchTreeSize, proof, root); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRate(b, n, "proofs/s")
}

// BenchmarkVerifyConsistency measures verifying one proof between sizes
// 20,000 and 43,200.
func BenchmarkVerifyConsistency(b *testing.B) {
	levels := NewLevels(leafHashesOf(testLeaves(benchTreeSize)))
	const size1 = 20000
	root1, _ := RootAt(levels, size1)
	root2, _ := RootAt(levels, benchTreeSize)
	proof, _ := ConsistencyProof(levels, size1, benchTreeSize)
	n := 0
	for b.Loop() {
		if err := VerifyConsistency(size1, benchTreeSize, proof, root1, root2); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRate(b, n, "proofs/s")
}
