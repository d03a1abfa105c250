package merkle

// NodeSource gives proof generation the hashes of perfect subtrees of a tree
// whose leaf hashes the caller stores. The perfect subtree at (level, index)
// covers leaves [index<<level, (index+1)<<level); level 0 is the leaves.
type NodeSource interface {
	// Size returns the number of leaves the source holds.
	Size() uint64
	// Node returns the hash of the perfect subtree at (level, index). It
	// requires (index+1)<<level <= Size() and may panic otherwise.
	Node(level uint, index uint64) Hash
}

var (
	_ NodeSource = LeafHashes(nil)
	_ NodeSource = (*Levels)(nil)
)

// LeafHashes is a NodeSource over a slice of leaf hashes, leaf i at index i.
// It recomputes interior nodes on every call, so a node at level l costs
// 2^l - 1 node hashes and a proof over n leaves about n; use Levels when
// proofs are frequent.
type LeafHashes []Hash

// Size returns len(s).
func (s LeafHashes) Size() uint64 {
	return uint64(len(s))
}

// Node returns the hash of the perfect subtree at (level, index), computed
// from the leaf hashes.
func (s LeafHashes) Node(level uint, index uint64) Hash {
	lo := index << level
	return perfectRoot(s[lo : lo+1<<level])
}

// perfectRoot returns the root of the perfect tree over hs, whose length is a
// power of two.
func perfectRoot(hs []Hash) Hash {
	if len(hs) == 1 {
		return hs[0]
	}
	half := len(hs) / 2
	return NodeHash(perfectRoot(hs[:half]), perfectRoot(hs[half:]))
}

// Levels is a NodeSource that caches every node of the tree: level 0 holds
// the leaf hashes and level l+1 the hashes of adjacent pairs on level l. It
// uses about twice the memory of the leaf hashes (2.8 MB for 43,200 leaves)
// and makes every node a lookup, so a proof costs O(log n) node hashes.
//
// The zero Levels holds no leaves and is ready to use.
type Levels struct {
	levels [][]Hash
}

// NewLevels returns Levels over a copy of leafHashes, computing its n - 1
// interior nodes.
func NewLevels(leafHashes []Hash) *Levels {
	l := &Levels{}
	if len(leafHashes) == 0 {
		return l
	}
	l.levels = [][]Hash{append(make([]Hash, 0, len(leafHashes)), leafHashes...)}
	for below := l.levels[0]; len(below) > 1; below = l.levels[len(l.levels)-1] {
		up := make([]Hash, len(below)/2)
		for i := range up {
			up[i] = NodeHash(below[2*i], below[2*i+1])
		}
		l.levels = append(l.levels, up)
	}
	return l
}

// Append adds one leaf hash and the perfect subtrees it completes, O(1) node
// hashes amortised.
func (l *Levels) Append(leafHash Hash) {
	h := leafHash
	for level := 0; ; level++ {
		if level == len(l.levels) {
			l.levels = append(l.levels, nil)
		}
		l.levels[level] = append(l.levels[level], h)
		n := len(l.levels[level])
		if n%2 == 1 {
			return
		}
		h = NodeHash(l.levels[level][n-2], l.levels[level][n-1])
	}
}

// Size returns the number of leaf hashes held.
func (l *Levels) Size() uint64 {
	if len(l.levels) == 0 {
		return 0
	}
	return uint64(len(l.levels[0]))
}

// Node returns the cached hash of the perfect subtree at (level, index).
func (l *Levels) Node(level uint, index uint64) Hash {
	return l.levels[level][index]
}
