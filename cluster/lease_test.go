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
