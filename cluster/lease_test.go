package cluster

import (
	"testing"
	"time"
)

func TestLeaseRules(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l := lease{ttl: 6 * time.Second}
	if l.held(t0) {
		t.Fatal("a new lease is held")
	}
	l.renewed(9, t0) // a renewal without a create does not make a holder
	if l.held(t0) {
		t.Fatal("renewed without acquired is held")
	}
	l.acquired(7, t0)
	if !l.held(t0.Add(2999*time.Millisecond)) || l.term != 7 {
		t.Fatalf("acquired: held %v term %d", l.held(t0.Add(2999*time.Millisecond)), l.term)
	}
	// Held for TTL/2 from when the write was sent, not a whole TTL: the
	// server keeps the key a whole TTL from when it stored it.
	if l.held(t0.Add(3 * time.Second)) {
		t.Fatal("held at TTL/2 after the create was sent")
	}
	l.renewed(8, t0.Add(2*time.Second))
	if !l.held(t0.Add(4*time.Second)) || l.rev != 8 || l.term != 7 {
		t.Fatalf("renewal: held %v rev %d term %d", l.held(t0.Add(4*time.Second)), l.rev, l.term)
	}
	if got := l.renewEvery(); got != time.Second {
		t.Fatalf("renewEvery = %s", got)
	}
	l.lost()
	if l.held(t0.Add(2*time.Second)) || l.term != 0 {
		t.Fatal("held after lost")
	}
}

func TestCheckCurrent(t *testing.T) {
	root := [32]byte{1, 2, 3}
	other := [32]byte{9}
	mark := EpochMark{Number: 4, Root: "0102030000000000000000000000000000000000000000000000000000000000", Member: "gw-1"}
	for _, c := range []struct {
		name   string
		ok     bool
		number uint64
		root   [32]byte
		want   bool
	}{
		{"no epoch recorded", false, 0, [32]byte{}, true},
		{"no epoch recorded, local epochs (a single gateway turned cluster)", false, 3, root, true},
		{"same epoch", true, 4, root, true},
		{"behind", true, 3, root, false},
		{"empty", true, 0, [32]byte{}, false},
		{"same number, other root", true, 4, other, false},
		{"ahead of the cluster", true, 5, root, false},
	} {
		err := CheckCurrent(mark, c.ok, c.number, c.root)
		if (err == nil) != c.want {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.want)
		}
	}
}
