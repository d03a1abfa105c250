package anchor

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server keeps package-level helpers running.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

// gateway is an embedded NATS server, a journal and an anchor Service over
// one data dir, as the gateway runs them.
type gateway struct {
	t      *testing.T
	srv    *natsserver.Server
	nc     *nats.Conn
	j      *journal.Journal
	s      *Service
	cancel context.CancelFunc
	done   chan error
	// restored is the snapshot startGatewayRestoring restored.
	restored LogSnapshot
}

func startGateway(t *testing.T, dir string, chain Chain) *gateway {
	t.Helper()
	return startGatewayWith(t, dir, dir, chain, false)
}

// startGatewayWith is startGateway with the shipment logs under
// anchorDir, and with a step log on the journal's JetStream when steps is
// set (cluster mode).
func startGatewayWith(t *testing.T, dir, anchorDir string, chain Chain, steps bool) *gateway {
	t.Helper()
	return startGatewayRestoring(t, dir, anchorDir, chain, steps, nil)
}

// startGatewayRestoring is startGatewayWith that first restores the
// shipment logs from the snapshots in store, when set, as a cluster
// member does (g.restored).
func startGatewayRestoring(t *testing.T, dir, anchorDir string, chain Chain, steps bool, store SnapshotStore) *gateway {
	t.Helper()
	g := &gateway{t: t}
	log := testLogger(t)
	var err error
	g.srv, err = natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: dir + "/nats", MaxPayload: 8 << 20}, log)
	must(t, err)
	g.nc, err = g.srv.Connect()
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.j, err = journal.Open(ctx, g.nc, journal.DefaultConfig(), dir+"/journal", log)
	must(t, err)
	cfg := DefaultConfig()
	cfg.Epoch, cfg.Poll, cfg.Batch = time.Second, 20*time.Millisecond, 64
	var sl *StepLog
	if steps {
		sl, err = OpenStepLog(ctx, g.j.JetStream(), 1, "test")
		must(t, err)
		if store != nil {
			g.restored, _, err = RestoreLogs(ctx, store, sl, anchorDir, log)
			must(t, err)
		}
	}
	g.s, err = New(cfg, g.j, chain, anchorDir, log)
	must(t, err)
	if steps {
		g.s.SetSequencer(sl)
	}
	runCtx, stop := context.WithCancel(context.Background())
	g.cancel, g.done = stop, make(chan error, 2)
	go func() { g.done <- g.j.Run(runCtx) }()
	go func() { g.done <- g.s.Run(runCtx) }()
	return g
}

func (g *gateway) stop() {
	g.cancel()
	for range 2 {
		if err := <-g.done; err != nil {
			g.t.Errorf("run: %v", err)
		}
	}
	must(g.t, g.s.Close())
	must(g.t, g.j.Close())
	g.nc.Close()
	g.srv.Shutdown()
}

func (g *gateway) append(msgs ...journal.Msg) {
	g.t.Helper()
	entries := make([]journal.Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = journal.Entry{Kind: m.Kind, ID: m.ID, Subject: m.Subject, Data: m.Data}
	}
	out := make([]journal.Result, len(entries))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(g.t, g.j.Append(ctx, entries, journal.Meta{Source: "test", Received: time.Now()}, out))
}

// waitAnchored polls until the shipment's latest anchor covers size and is
// in a block, then returns its bundle.
func (g *gateway) waitAnchored(chain *fakeChain, ship string, size uint64) *bundle.Bundle {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := g.s.Proof(ship, ProofOptions{}); err == nil && b.TreeSize == size {
			return verified(g.t, g.s, chain, ship, ProofOptions{})
		}
		if time.Now().After(deadline) {
			n, list, err := g.s.Anchors(ship)
			g.t.Fatalf("%s not anchored at size %d: size %d, anchors %+v, %v", ship, size, n, list, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartKeepsBundles runs the Service on the journal of an embedded
// NATS server, restarts everything, makes JetStream deliver every record
// again from the start, and checks that no leaf moved or doubled and that
// every bundle handed out before still verifies.
func TestRestartKeepsBundles(t *testing.T) {
	dir, chain := t.TempDir(), newFakeChain()
	g := startGateway(t, dir, chain)
	var msgs []journal.Msg
	for i := range uint64(150) {
		msgs = append(msgs, readingMsg("SHP-A", "D1", i, 0, 4+float64(i%7)/10))
		if i%50 == 0 {
			msgs = append(msgs, handoverMsg("SHP-A", "H"+string(rune('0'+i/50)), 0))
		}
		msgs = append(msgs, readingMsg("SHP-B", "D2", i, 0, 5))
	}
	g.append(msgs...)
	first := g.waitAnchored(chain, "SHP-A", 153)
	g.waitAnchored(chain, "SHP-B", 150)
	g.stop()

	// Forget the anchorer's position in both streams: JetStream delivers
	// every record again, as after a crash before the ack.
	g = startGateway(t, dir, chain)
	ctx := context.Background()
	for _, name := range []string{journal.StreamReadings, journal.StreamHandovers} {
		st, err := g.j.JetStream().Stream(ctx, name)
		must(t, err)
		_ = st.DeleteConsumer(ctx, ConsumerName)
	}
	g.stop()
	g = startGateway(t, dir, chain)
	defer g.stop()
	g.append(readingMsg("SHP-A", "D1", 150, 0, 6), handoverMsg("SHP-A", "H9", 0))
	latest := g.waitAnchored(chain, "SHP-A", 155)

	if n := leafCount(t, g.s, "SHP-A"); n != 155 {
		t.Fatalf("%d leaves after redelivery, want 155", n)
	}
	if n := leafCount(t, g.s, "SHP-B"); n != 150 {
		t.Fatalf("SHP-B has %d leaves after redelivery, want 150", n)
	}
	if _, err := bundle.Verify(first); err != nil {
		t.Fatalf("earlier bundle: %v", err)
	}
	must(t, bundle.CheckAnchor(ctx, first, chain.checker()))
	for i, r := range first.Records {
		if latest.Records[i] != r {
			t.Fatalf("record %d moved across the restart", i)
		}
	}
	c := verified(t, g.s, chain, "SHP-A", ProofOptions{Since: first.TreeSize})
	if c.Consistency.FromRoot != first.Root {
		t.Fatal("consistency proof does not start at the earlier bundle's root")
	}
	var kinds [3]int
	for _, r := range latest.Records {
		if hv, err := record.ParseHandover([]byte(r)); err == nil && hv.ID != "" {
			kinds[record.KindHandover]++
		} else {
			kinds[record.KindReading]++
		}
	}
	if kinds[record.KindHandover] != 4 || kinds[record.KindReading] != 151 {
		t.Fatalf("kinds %v", kinds)
	}
}
