package anchor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// twoKinds returns readings of two shipments and handovers of one,
// interleaved as journal entries from reading seq from up to to.
func twoKinds(from, to uint64) []journal.Msg {
	var msgs []journal.Msg
	for i := from; i < to; i++ {
		msgs = append(msgs, readingMsg("SHP-A", "D1", i, 0, 4+float64(i%7)/10))
		if i%25 == 0 {
			msgs = append(msgs, handoverMsg("SHP-A", "H"+string(rune('A'+i/25)), 0))
		}
		msgs = append(msgs, readingMsg("SHP-B", "D2", i, 0, 5))
	}
	return msgs
}

// TestStepLogTakeover is the anchorer handover of cluster mode: gateway A
// anchors with a step log; gateway B, with empty shipment logs of its own,
// replays the step log over the journal and continues. B's logs must be
// A's leaf for leaf (A's bundles prove against B's roots), B's epochs
// must continue A's chain, and A, started again, must catch up with B.
func TestStepLogTakeover(t *testing.T) {
	dir, chain := t.TempDir(), newFakeChain()
	a := startGatewayWith(t, dir, dir+"/a", chain, true)
	a.append(twoKinds(0, 60)...)
	a.waitAnchored(chain, "SHP-A", 63)
	a.append(twoKinds(60, 120)...)
	first := a.waitAnchored(chain, "SHP-A", 125)
	a.waitAnchored(chain, "SHP-B", 120)
	numA, rootA := a.s.LastEpoch()
	a.stop()

	b := startGatewayWith(t, dir, dir+"/b", chain, true)
	if n, root := waitEpoch(t, b.s, numA); n != numA || root != rootA {
		t.Fatalf("after replay B is at epoch %d %s, A was at %d %s", n, root, numA, rootA)
	}
	if n := leafCount(t, b.s, "SHP-A"); n != 125 {
		t.Fatalf("B replayed %d leaves of SHP-A, want 125", n)
	}
	replayed := verified(t, b.s, chain, "SHP-A", ProofOptions{})
	if replayed.Root != first.Root || replayed.TreeSize != first.TreeSize {
		t.Fatalf("B's SHP-A log is %d %s, A's was %d %s", replayed.TreeSize, replayed.Root, first.TreeSize, first.Root)
	}
	b.append(twoKinds(120, 150)...)
	latest := b.waitAnchored(chain, "SHP-A", 156)
	for i, r := range first.Records {
		if latest.Records[i] != r {
			t.Fatalf("record %d of A's bundle is not where B has it", i)
		}
	}
	c := verified(t, b.s, chain, "SHP-A", ProofOptions{Since: first.TreeSize})
	if c.Consistency.FromRoot != first.Root {
		t.Fatal("B's consistency proof does not start at A's root")
	}
	if _, err := bundle.Verify(first); err != nil {
		t.Fatalf("A's bundle: %v", err)
	}
	numB, rootB := b.s.LastEpoch()
	if numB <= numA {
		t.Fatalf("B cut no epoch of its own: at %d, A was at %d", numB, numA)
	}
	checkChained(t, b.s, numB)
	b.stop()

	// A, started again, replays what B did.
	a = startGatewayWith(t, dir, dir+"/a", chain, true)
	if n, root := waitEpoch(t, a.s, numB); n != numB || root != rootB {
		t.Fatalf("A came back at epoch %d %s, B was at %d %s", n, root, numB, rootB)
	}
	if n := leafCount(t, a.s, "SHP-A"); n != 156 {
		t.Fatalf("A has %d leaves of SHP-A after catching up, want 156", n)
	}
	a.stop()
}

// waitEpoch waits until s's latest epoch is at least n (Run replays the
// step log first), and returns it.
func waitEpoch(t *testing.T, s *Service, n uint64) (uint64, merkle.Hash) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, root := s.LastEpoch()
		if got >= n || time.Now().After(deadline) {
			return got, root
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkChained checks that epochs 1..last each name the previous one's
// root.
func checkChained(t *testing.T, s *Service, last uint64) {
	t.Helper()
	var prev [32]byte
	for n := uint64(1); n <= last; n++ {
		se, ok, err := s.storedEpoch(n)
		if err != nil || !ok {
			t.Fatalf("epoch %d: %v %v", n, ok, err)
		}
		if se.Prev != prev {
			t.Fatalf("epoch %d names %s as previous, epoch %d is %s", n, se.Prev, n-1, prev)
		}
		prev = se.Root
	}
}

// TestStepConflict: a gateway whose logs are behind the step log cannot
// record a step (so cannot apply or cut) until it replayed the log, and
// logs built without the step log cannot follow it.
func TestStepConflict(t *testing.T) {
	dir, chain := t.TempDir(), newFakeChain()
	a := startGatewayWith(t, dir, dir+"/a", chain, true)
	a.append(twoKinds(0, 30)...)
	a.waitAnchored(chain, "SHP-B", 30)
	sl, err := OpenStepLog(ctxT(t), a.j.JetStream(), 1)
	must(t, err)
	log := testLogger(t)

	// Behind: a second Service over empty logs, not yet caught up.
	b, err := New(testConfig(), a.j, chain, dir+"/b", log)
	must(t, err)
	b.SetSequencer(sl)
	err = b.apply(context.Background(), record.KindReading, []journal.Msg{readingMsg("SHP-C", "D3", 0, journal.Position(1, 0), 5)})
	if !errors.Is(err, ErrStepConflict) {
		t.Fatalf("apply while behind: %v, want ErrStepConflict", err)
	}
	if n := leafCount(t, b, "SHP-C"); n != 0 {
		t.Fatalf("%d leaves applied despite the conflict", n)
	}
	must(t, b.CatchUp(ctxT(t)))
	if n := leafCount(t, b, "SHP-B"); n != 30 {
		t.Fatalf("B has %d leaves of SHP-B after catching up, want 30", n)
	}
	must(t, b.Close())

	// Different: logs with a record the step log never had.
	c, err := New(testConfig(), a.j, chain, dir+"/c", log)
	must(t, err)
	must(t, c.apply(context.Background(), record.KindReading, []journal.Msg{readingMsg("SHP-C", "D3", 0, journal.Position(1, 0), 5)}))
	c.SetSequencer(sl)
	if err := c.CatchUp(ctxT(t)); !errors.Is(err, ErrLogsDiffer) {
		t.Fatalf("catching up logs that differ: %v, want ErrLogsDiffer", err)
	}
	if !errors.Is(c.Followable(), ErrLogsDiffer) {
		t.Fatalf("Followable = %v", c.Followable())
	}
	must(t, c.Close())
	a.stop()
}
