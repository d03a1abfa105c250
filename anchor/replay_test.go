package anchor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/embedded/natsserver"
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
// Records the durable consumer had delivered before A's logs existed (an
// earlier anchorer's) are in no log, A's or B's.
func TestStepLogTakeover(t *testing.T) {
	dir, chain := t.TempDir(), newFakeChain()
	oldChain := newFakeChain()
	old := startGatewayWith(t, dir, dir+"/old", oldChain, false)
	var early []journal.Msg
	for i := range uint64(10) {
		early = append(early, readingMsg("SHP-A", "D0", i, 0, 5))
	}
	old.append(early...)
	old.waitAnchored(oldChain, "SHP-A", 10)
	old.stop()

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
	// Replayed epochs are pending until B's status loop has read their
	// receipts from the chain: until then B's bundles prove against an
	// older anchor.
	replayed := b.waitAnchored(chain, "SHP-A", first.TreeSize)
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
	sl, err := OpenStepLog(ctxT(t), a.j.JetStream(), 1, "test")
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
	// The operator resets the step log: C's logs may start the new one.
	a.stop()
	a = startGatewayWith(t, dir, dir+"/a-off", chain, false) // the journal, without an anchorer on the log
	defer a.stop()
	sl, err = OpenStepLog(ctxT(t), a.j.JetStream(), 1, "test")
	must(t, err)
	c.SetSequencer(sl)
	if ok, err := DeleteStepLog(ctxT(t), a.j.JetStream()); err != nil || !ok {
		t.Fatalf("DeleteStepLog = %v %v", ok, err)
	}
	must(t, c.CatchUp(ctxT(t)))
	if err := c.Followable(); err != nil {
		t.Fatalf("Followable after the reset: %v", err)
	}
	must(t, c.apply(context.Background(), record.KindReading, []journal.Msg{readingMsg("SHP-C", "D3", 1, journal.Position(2, 0), 5)}))
	if end, _, err := sl.End(ctxT(t)); err != nil || end != 1 {
		t.Fatalf("the new step log ends at %d (%v), want C's first step", end, err)
	}
	must(t, c.Close())
}

// TestStepLogFence runs the step log on a three-node JetStream cluster
// (R3), with two anchorers on different nodes: once one has recorded a
// step after a given one, the other cannot record after that step too,
// whatever it believes about its lease. Reset deletes the log.
func TestStepLogFence(t *testing.T) {
	nodes, err := natsserver.StartCluster(3, t.TempDir(), "", zap.NewNop())
	must(t, err)
	defer func() {
		for _, n := range nodes {
			n.Shutdown()
		}
	}()
	open := func(n *natsserver.Server, member string) (*StepLog, jetstream.JetStream) {
		nc, err := nats.Connect(n.ClientURL())
		must(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		must(t, err)
		var l *StepLog
		// Right after the cluster forms, the first R3 stream can take a
		// moment to get its Raft group.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if l, err = OpenStepLog(ctxT(t), js, 3, member); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		must(t, err)
		return l, js
	}
	a, js := open(nodes[0], "gw-1")
	b, _ := open(nodes[2], "gw-2")
	ctx := ctxT(t)
	apply := Step{Kind: record.KindReading, From: 0, First: journal.Position(1, 0), To: journal.Position(3, 0)}
	s1, err := a.Record(ctx, 0, apply)
	must(t, err)
	if _, err := b.Record(ctx, 0, apply); !errors.Is(err, ErrStepConflict) {
		t.Fatalf("second record after step 0: %v, want ErrStepConflict", err)
	}
	cut := Step{Epoch: 1, Root: merkle.Hash{1}, Cut: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	s2, err := b.Record(ctx, s1, cut)
	must(t, err)
	if _, err := a.Record(ctx, s1, Step{Epoch: 1, Root: merkle.Hash{2}, Cut: cut.Cut}); !errors.Is(err, ErrStepConflict) {
		t.Fatalf("a conflicting epoch 1 was recorded: %v", err)
	}
	steps, err := a.Steps(ctx, 0, 10)
	must(t, err)
	if len(steps) != 2 || steps[0].Step.Kind != record.KindReading || steps[0].By != "gw-1" ||
		steps[1].Epoch != 1 || steps[1].Root != cut.Root || steps[1].By != "gw-2" || !steps[1].Cut.Equal(cut.Cut) {
		t.Fatalf("steps = %+v", steps)
	}
	if end, _, err := a.End(ctx); err != nil || end != s2 {
		t.Fatalf("End = %d %v, want %d", end, err, s2)
	}
	latest, ok, err := a.LatestCut(ctx)
	if err != nil || !ok || latest.Seq != s2 || latest.Epoch != 1 || latest.By != "gw-2" {
		t.Fatalf("LatestCut = %+v %v %v", latest, ok, err)
	}
	if ok, err := DeleteStepLog(ctx, js); err != nil || !ok {
		t.Fatalf("DeleteStepLog = %v %v", ok, err)
	}
	if ok, err := DeleteStepLog(ctx, js); err != nil || ok {
		t.Fatalf("second DeleteStepLog = %v %v", ok, err)
	}
}

// TestStandby: a Service that does not run follows the step log of the
// one that does, so a takeover has little left to replay.
func TestStandby(t *testing.T) {
	dir, chain := t.TempDir(), newFakeChain()
	a := startGatewayWith(t, dir, dir+"/a", chain, true)
	defer a.stop()
	sl, err := OpenStepLog(ctxT(t), a.j.JetStream(), 1, "standby")
	must(t, err)
	b, err := New(testConfig(), a.j, chain, dir+"/b", testLogger(t))
	must(t, err)
	b.SetSequencer(sl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Standby(ctx, 20*time.Millisecond); close(done) }()
	a.append(twoKinds(0, 40)...)
	a.waitAnchored(chain, "SHP-B", 40)
	want, root := a.s.LastEpoch()
	if n, r := waitEpoch(t, b, want); n != want || r != root {
		t.Fatalf("standby at epoch %d %s, the anchorer at %d %s", n, r, want, root)
	}
	cancel()
	<-done
	if n := leafCount(t, b, "SHP-B"); n != 40 {
		t.Fatalf("standby has %d leaves of SHP-B, want 40", n)
	}
	must(t, b.Close())
}

func TestEpochCuts(t *testing.T) {
	steps := []SeqStep{{Seq: 1, Step: Step{Kind: record.KindReading, From: 0, First: 1, To: 5}},
		{Seq: 2, Step: Step{Epoch: 1, By: "gw-1"}}, {Seq: 3, Step: Step{Epoch: 2, By: "gw-2"}}, {Seq: 4, Step: Step{Epoch: 3, By: "gw-2"}}}
	last, by, err := EpochCuts(steps)
	if err != nil || last != 3 || by["gw-1"] != 1 || by["gw-2"] != 2 {
		t.Fatalf("EpochCuts = %d %v %v", last, by, err)
	}
	if _, _, err := EpochCuts(append(steps, SeqStep{Seq: 5, Step: Step{Epoch: 5}})); err == nil {
		t.Fatal("a gap from epoch 3 to 5 passed")
	}
}
