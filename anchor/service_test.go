package anchor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// idleJournal is a Journal with nothing in it; tests feed Service.apply
// directly.
type idleJournal struct{}

func (idleJournal) Consume(ctx context.Context, _ record.Kind, _ journal.ConsumeOptions, _ journal.Handler) error {
	<-ctx.Done()
	return nil
}

func (idleJournal) ReadRange(context.Context, record.Kind, uint64, uint64, func(journal.Msg) error) error {
	return errors.New("idle journal: nothing to read")
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time           { return c.t }
func (c *clock) advance(d time.Duration)  { c.t = c.t.Add(d) }
func newClock() *clock                    { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }
func testLogger(t testing.TB) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) }
func testConfig() Config                  { c := DefaultConfig(); c.Poll = 10 * time.Millisecond; return c }
func ctxT(t testing.TB) context.Context   { return t.Context() }
func hashOf(s string) (h merkle.Hash)     { _ = h.UnmarshalText([]byte(s)); return h }
func mustJSON(t testing.TB, v any) []byte { b, err := json.Marshal(v); must(t, err); return b }
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openService(t testing.TB, dir string, cfg Config, chain Chain, clk *clock) *Service {
	t.Helper()
	s, err := New(cfg, idleJournal{}, chain, dir, testLogger(t))
	must(t, err)
	s.now = clk.now
	s.lastCut = clk.now()
	return s
}

// readingMsg is the journal message of one reading of shipment ship.
func readingMsg(ship, device string, seq, streamSeq uint64, temp float64) journal.Msg {
	r := record.Reading{Shipment: ship, Device: device, Seq: seq, Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Minute), TempC: temp}
	return journal.Msg{Kind: record.KindReading, Seq: streamSeq, ID: r.ID(), Subject: journal.SubjectReading(ship, device), Data: r.AppendCanonical(nil)}
}

func handoverMsg(ship, id string, streamSeq uint64) journal.Msg {
	h := record.Handover{ID: id, Shipment: ship, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Site: "SIN-T3",
		Kind: record.HandoverReceive, FromParty: "Carrier A", ToParty: "Bonded Warehouse B"}
	return journal.Msg{Kind: record.KindHandover, Seq: streamSeq, ID: id, Subject: journal.SubjectHandover(ship), Data: h.AppendCanonical(nil)}
}

// readings returns the messages of readings [from, to) of one device, their
// stream sequences offset by base.
func readings(ship, device string, from, to, base uint64) []journal.Msg {
	var out []journal.Msg
	for i := from; i < to; i++ {
		out = append(out, readingMsg(ship, device, i, base+i, 4+float64(i%10)/10))
	}
	return out
}

// anchorNow cuts an epoch and follows it until it is final.
func anchorNow(t testing.TB, s *Service, clk *clock) {
	t.Helper()
	clk.advance(s.cfg.Epoch)
	for range 3 {
		s.step(ctxT(t))
	}
	if s.last == nil || s.last.status.Receipt.State != StateFinal {
		t.Fatalf("epoch not final: %+v", s.last)
	}
}

// verified fetches a bundle and checks it offline and against the chain.
func verified(t testing.TB, s *Service, chain *fakeChain, ship string, opts ProofOptions) *bundle.Bundle {
	t.Helper()
	b, err := s.Proof(ship, opts)
	must(t, err)
	// Round trip through the file format, as a third party gets it.
	var buf bytes.Buffer
	must(t, bundle.Encode(&buf, b))
	b, err = bundle.Decode(buf.Bytes())
	must(t, err)
	if _, err := bundle.Verify(b); err != nil {
		t.Fatalf("bundle of %s %+v does not verify: %v", ship, opts, err)
	}
	if err := bundle.CheckAnchor(ctxT(t), b, chain.checker()); err != nil {
		t.Fatalf("bundle of %s %+v: %v", ship, opts, err)
	}
	return b
}

func leafCount(t testing.TB, s *Service, ship string) int {
	t.Helper()
	n := 0
	must(t, each(s.db, leafPrefix(ship), false, func(k, v []byte) (bool, error) { n++; return true, nil }))
	return n
}

// TestApplyRedeliveryNeverDoubles delivers batches again, overlapping and
// after a restart, as journal.Consume may: each record is one leaf, in its
// first order.
func TestApplyRedeliveryNeverDoubles(t *testing.T) {
	dir, clk, chain := t.TempDir(), newClock(), newFakeChain()
	s := openService(t, dir, testConfig(), chain, clk)
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 5, 1)))
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 2, 8, 1))) // 2…4 again
	must(t, s.apply(context.Background(), record.KindHandover, []journal.Msg{handoverMsg("S1", "H1", 1)}))
	must(t, s.apply(context.Background(), record.KindHandover, []journal.Msg{handoverMsg("S1", "H1", 1)}))
	root := s.ships["S1"].tree.Root()
	must(t, s.Close())

	s = openService(t, dir, testConfig(), chain, clk)
	defer s.Close()
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 8, 1)))
	must(t, s.apply(context.Background(), record.KindHandover, []journal.Msg{handoverMsg("S1", "H1", 1)}))
	if got := s.ships["S1"].tree.Root(); got != root {
		t.Fatalf("root after redelivery %s, want %s", got, root)
	}
	if n := leafCount(t, s, "S1"); n != 9 {
		t.Fatalf("%d leaves, want 9", n)
	}
	anchorNow(t, s, clk)
	b := verified(t, s, chain, "S1", ProofOptions{})
	if b.TreeSize != 9 || !strings.Contains(b.Records[8], `"id":"H1"`) {
		t.Fatalf("tree size %d, last record %s", b.TreeSize, b.Records[len(b.Records)-1])
	}
}

// TestLogOrderIsAppendOrder interleaves the two streams: the log keeps the
// order in which batches were applied, across restarts.
func TestLogOrderIsAppendOrder(t *testing.T) {
	dir, clk, chain := t.TempDir(), newClock(), newFakeChain()
	s := openService(t, dir, testConfig(), chain, clk)
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 2, 10)))
	must(t, s.apply(context.Background(), record.KindHandover, []journal.Msg{handoverMsg("S1", "H1", 3), handoverMsg("S2", "H2", 4)}))
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D2", 5, 6, 20)))
	anchorNow(t, s, clk)
	first := verified(t, s, chain, "S1", ProofOptions{})
	must(t, s.Close())

	s = openService(t, dir, testConfig(), chain, clk)
	defer s.Close()
	again := verified(t, s, chain, "S1", ProofOptions{})
	if !bytes.Equal(mustJSON(t, first), mustJSON(t, again)) {
		t.Fatal("the bundle changed across a restart")
	}
	var ids []string
	for _, r := range first.Records {
		var v struct {
			Device string `json:"device"`
			Seq    *int   `json:"seq"`
			ID     string `json:"id"`
		}
		must(t, json.Unmarshal([]byte(r), &v))
		if v.ID != "" {
			ids = append(ids, v.ID)
		} else {
			ids = append(ids, fmt.Sprintf("%s:%d", v.Device, *v.Seq))
		}
	}
	if got := strings.Join(ids, " "); got != "D1:0 D1:1 H1 D2:5" {
		t.Fatalf("log order %s", got)
	}
}

// TestOneSubmitPerEpoch puts 300 shipments in one epoch: one transaction,
// and every shipment's bundle verifies.
func TestOneSubmitPerEpoch(t *testing.T) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	defer s.Close()
	var batch []journal.Msg
	for i := range 300 {
		batch = append(batch, readingMsg(fmt.Sprintf("SHP-%03d", i), "D1", 1, uint64(i+1), 5))
	}
	must(t, s.apply(context.Background(), record.KindReading, batch))
	anchorNow(t, s, clk)
	if chain.submits != 1 {
		t.Fatalf("%d submits, want 1", chain.submits)
	}
	for _, ship := range []string{"SHP-000", "SHP-137", "SHP-299"} {
		b := verified(t, s, chain, ship, ProofOptions{})
		if b.Epoch.Entries != 300 {
			t.Fatalf("%d entries, want 300", b.Epoch.Entries)
		}
	}
	// Nothing grew: no new epoch, however much time passes.
	clk.advance(time.Hour)
	s.step(ctxT(t))
	if s.last.number != 1 {
		t.Fatalf("epoch %d cut with nothing new", s.last.number)
	}
}

// TestEarlyEpoch cuts an epoch before its time once early_records records
// are pending, but never while the previous epoch is not in a block.
func TestEarlyEpoch(t *testing.T) {
	cfg := testConfig()
	cfg.EarlyRecords = 10
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), cfg, chain, clk)
	defer s.Close()
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 9, 1)))
	s.step(ctxT(t))
	if s.last != nil {
		t.Fatal("epoch cut below early_records and before the epoch")
	}
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 9, 10, 1)))
	select {
	case <-s.early:
	default:
		t.Fatal("no early wake-up at early_records")
	}
	s.step(ctxT(t)) // cut and submitted: pending
	if s.last == nil || s.last.number != 1 || s.last.status.Receipt.State != StatePending {
		t.Fatalf("epoch 1 not cut and pending: %+v", s.last)
	}
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 10, 30, 1)))
	chain.failStatus = 1
	s.step(ctxT(t)) // the chain fails: epoch 1 still pending, no epoch 2
	if s.last.number != 1 {
		t.Fatalf("epoch %d cut while epoch 1 is pending", s.last.number)
	}
	s.step(ctxT(t)) // epoch 1 now included; epoch 2 cut
	if s.last.number != 2 {
		t.Fatalf("epoch %d, want 2 after epoch 1 was included", s.last.number)
	}
}

// TestChainTroubleNeverStopsLogs fails submissions: records are logged
// all along, and the epoch is anchored once the chain answers.
func TestChainTroubleNeverStopsLogs(t *testing.T) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	defer s.Close()
	chain.failSubmit = 3
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 5, 1)))
	clk.advance(s.cfg.Epoch)
	for i := range 3 {
		s.step(ctxT(t))
		must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 5+uint64(i), 6+uint64(i), 1)))
	}
	if s.last.status.Submitted {
		t.Fatal("submitted while the chain fails")
	}
	if _, err := s.Proof("S1", ProofOptions{}); !errors.Is(err, ErrNotAnchored) {
		t.Fatalf("proof before any anchor: %v, want ErrNotAnchored", err)
	}
	s.step(ctxT(t)) // submitted, included
	s.step(ctxT(t)) // final; epoch 2 is cut for the records logged meanwhile
	if b := verified(t, s, chain, "S1", ProofOptions{}); b.TreeSize != 5 {
		t.Fatalf("epoch 1 tree size %d, want 5", b.TreeSize)
	}
	anchorNow(t, s, clk)
	if b := verified(t, s, chain, "S1", ProofOptions{}); b.TreeSize != 8 {
		t.Fatalf("epoch 2 tree size %d, want 8", b.TreeSize)
	}
}

// TestLostRootIsSubmittedAgain: a chain that forgets a submitted root (a
// reset dev chain) gets it again.
func TestLostRootIsSubmittedAgain(t *testing.T) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	defer s.Close()
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 5, 1)))
	clk.advance(s.cfg.Epoch)
	s.step(ctxT(t)) // cut, submitted, included
	chain.forget()
	s.step(ctxT(t)) // unknown: marked for submission
	s.step(ctxT(t)) // submitted again
	s.step(ctxT(t)) // included again
	if chain.submits != 2 || s.last.status.Receipt.State != StateIncluded {
		t.Fatalf("%d submits, state %s", chain.submits, s.last.status.Receipt.State)
	}
	verified(t, s, chain, "S1", ProofOptions{})
}

// TestConsistencyBetweenAnchoredSizes anchors a shipment in transit five
// times: from every anchored size to every later one, a consistency proof
// shows the log only grew, and every bundle handed out earlier still
// verifies, also after a restart.
func TestConsistencyBetweenAnchoredSizes(t *testing.T) {
	dir, clk, chain := t.TempDir(), newClock(), newFakeChain()
	s := openService(t, dir, testConfig(), chain, clk)
	var (
		sizes   []uint64
		earlier []*bundle.Bundle
		next    uint64
	)
	for round, n := range []uint64{1, 2, 5, 13, 40} {
		must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", next, next+n, 1)))
		next += n
		if round == 2 {
			must(t, s.apply(context.Background(), record.KindHandover, []journal.Msg{handoverMsg("S1", "H1", 1)}))
			next++ // the stream sequences of readings stay ahead
		}
		anchorNow(t, s, clk)
		b := verified(t, s, chain, "S1", ProofOptions{})
		sizes = append(sizes, b.TreeSize)
		earlier = append(earlier, b)
		for _, from := range sizes {
			c := verified(t, s, chain, "S1", ProofOptions{Since: from})
			if c.Consistency == nil || c.Consistency.FromSize != from {
				t.Fatalf("no consistency from %d", from)
			}
			one := verified(t, s, chain, "S1", ProofOptions{Record: "D1:0", Since: from})
			if one.Consistency.FromRoot != c.Consistency.FromRoot {
				t.Fatal("selective and full bundles disagree on the earlier root")
			}
		}
	}
	must(t, s.Close())
	s = openService(t, dir, testConfig(), chain, clk)
	defer s.Close()
	latest := verified(t, s, chain, "S1", ProofOptions{})
	for _, old := range earlier {
		if _, err := bundle.Verify(old); err != nil {
			t.Fatal(err)
		}
		must(t, bundle.CheckAnchor(ctxT(t), old, chain.checker()))
		// The old records are a prefix of the new ones.
		for i, r := range old.Records {
			if latest.Records[i] != r {
				t.Fatalf("record %d changed between size %d and %d", i, old.TreeSize, latest.TreeSize)
			}
		}
		c := verified(t, s, chain, "S1", ProofOptions{Since: old.TreeSize})
		if c.Consistency.FromRoot != old.Root {
			t.Fatalf("consistency from %d starts at %s, the old bundle says %s", old.TreeSize, c.Consistency.FromRoot, old.Root)
		}
	}
	// The epochs chain: each bundle's prev is the epoch root before it.
	for i := 1; i < len(earlier); i++ {
		if earlier[i].Epoch.Prev != earlier[i-1].Epoch.Root {
			t.Fatalf("epoch %d does not chain to epoch %d", earlier[i].Epoch.Number, earlier[i-1].Epoch.Number)
		}
	}
}

// TestProofErrors: unknown shipments and records, and what is not anchored.
func TestProofErrors(t *testing.T) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	defer s.Close()
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 0, 3, 1)))
	anchorNow(t, s, clk)
	must(t, s.apply(context.Background(), record.KindReading, readings("S1", "D1", 3, 4, 1)))
	must(t, s.apply(context.Background(), record.KindReading, readings("S2", "D9", 0, 1, 100)))
	for _, tc := range []struct {
		name string
		ship string
		opts ProofOptions
		want error
	}{
		{"unknown-shipment", "NOPE", ProofOptions{}, ErrUnknownShipment},
		{"unknown-record", "S1", ProofOptions{Record: "D1:99"}, ErrUnknownRecord},
		{"record-not-anchored-yet", "S1", ProofOptions{Record: "D1:3"}, ErrNotAnchored},
		{"shipment-not-anchored-yet", "S2", ProofOptions{}, ErrNotAnchored},
		{"since-never-anchored", "S1", ProofOptions{Since: 2}, ErrNotAnchoredSize},
		{"since-beyond-anchored", "S1", ProofOptions{Since: 4}, ErrNotAnchoredSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Proof(tc.ship, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRoutes serves the API: bundles, anchors, and JSON errors.
func TestRoutes(t *testing.T) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	defer s.Close()
	must(t, s.apply(context.Background(), record.KindReading, readings("SHP-0042", "reefer-7", 0, 20, 1)))
	anchorNow(t, s, clk)
	must(t, s.apply(context.Background(), record.KindReading, readings("SHP-0042", "reefer-7", 20, 25, 1)))
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/v1/shipments/SHP-0042/proof", 200, `"format": "coldchain-proof/1"`},
		{"/v1/shipments/SHP-0042/proof?record=reefer-7:3", 200, `"record": {`},
		{"/v1/shipments/SHP-0042/anchors", 200, `"size":25`},
		{"/v1/shipments/NOPE/proof", 404, `"error":"unknown shipment: \"NOPE\""`},
		{"/v1/shipments/NOPE/anchors", 404, `unknown shipment`},
		{"/v1/shipments/SHP-0042/proof?record=reefer-7:99", 404, `unknown record`},
		{"/v1/shipments/SHP-0042/proof?record=reefer-7:22", 409, `not anchored yet`},
		{"/v1/shipments/SHP-0042/proof?since=x", 400, `since:`},
		{"/v1/shipments/SHP-0042/proof?format=compact", 400, `give record=ID`},
		{"/v1/shipments/SHP-0042/proof?record=reefer-7:3&format=xml", 400, `format:`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			must(t, err)
			defer resp.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(body.String(), tc.want) {
				t.Fatalf("%d %s, want %d with %s", resp.StatusCode, body.String(), tc.status, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			if tc.status == 200 && strings.Contains(tc.path, "/proof") {
				b, err := bundle.Decode(body.Bytes())
				must(t, err)
				if _, err := bundle.Verify(b); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestCompactRoute: format=compact answers the record's compact proof,
// which rebuilds the JSON bundle's claims from the record's bytes.
func TestCompactRoute(t *testing.T) {
	clk, chain := newClock(), newFakeChain()
	s := openService(t, t.TempDir(), testConfig(), chain, clk)
	defer s.Close()
	must(t, s.apply(context.Background(), record.KindReading, readings("SHP-0042", "reefer-7", 0, 20, 1)))
	anchorNow(t, s, clk)
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(q string) (*http.Response, []byte) {
		resp, err := http.Get(srv.URL + "/v1/shipments/SHP-0042/proof?record=reefer-7:3" + q)
		must(t, err)
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		return resp, body.Bytes()
	}
	resp, proof := get("&format=compact")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" || !bundle.IsCompact(proof) {
		t.Fatalf("%d %s: %q", resp.StatusCode, resp.Header.Get("Content-Type"), proof)
	}
	_, raw := get("")
	full, err := bundle.Decode(raw)
	must(t, err)
	b, err := bundle.UnmarshalCompact(proof, []byte(full.Record.Data))
	must(t, err)
	if _, err := bundle.Verify(b); err != nil {
		t.Fatal(err)
	}
	if b.Epoch.Root != full.Epoch.Root || b.Root != full.Root || b.Anchor.Tx != full.Anchor.Tx {
		t.Fatalf("the compact proof leads to epoch root %s (tx %s), the bundle says %s (tx %s)", b.Epoch.Root, b.Anchor.Tx, full.Epoch.Root, full.Anchor.Tx)
	}
	t.Logf("compact %d bytes, JSON bundle %d", len(proof), len(raw))
}

// TestNewEpochKnownAnswer pins the epoch tree and header hashing.
func TestNewEpochKnownAnswer(t *testing.T) {
	root1 := merkle.LeafHash([]byte("a"))
	root2 := merkle.LeafHash([]byte("b"))
	// Order of the entries given does not matter: they are sorted by id.
	e := NewEpoch(1, merkle.Hash{}, []Entry{{"SHP-2", 7, root2}, {"SHP-1", 3, root1}})
	f := NewEpoch(1, merkle.Hash{}, []Entry{{"SHP-1", 3, root1}, {"SHP-2", 7, root2}})
	if e.Root != f.Root || e.Entries[0].Shipment != "SHP-1" {
		t.Fatal("epoch depends on the order of its entries")
	}
	// The known answers come from docs/PROOFS.md's shell commands:
	//   e1=$( (printf '\0'; printf '%s' '{"root":"<root1>","shipment":"SHP-1","size":3,"type":"shipment","v":1}') | sha256sum)
	leaf1 := merkle.LeafHash(bundle.EntryBytes("SHP-1", 3, root1))
	leaf2 := merkle.LeafHash(bundle.EntryBytes("SHP-2", 7, root2))
	if e.EntriesRoot != merkle.NodeHash(leaf1, leaf2) {
		t.Fatal("entries root is not the RFC 6962 root of the entry leaves")
	}
	if e.Root != bundle.EpochRoot(1, merkle.Hash{}, 2, e.EntriesRoot) {
		t.Fatal("epoch root is not the hash of its header")
	}
	i, ok := e.Find("SHP-2")
	p, err := e.Path(i)
	must(t, err)
	if !ok || i != 1 || merkle.VerifyInclusion(leaf2, 1, 2, p, e.EntriesRoot) != nil {
		t.Fatal("entry path does not verify")
	}
}

func TestConfigValidate(t *testing.T) {
	must(t, DefaultConfig().Validate())
	for _, tc := range []struct {
		key string
		mut func(*Config)
	}{
		{"anchor.epoch", func(c *Config) { c.Epoch = 0 }},
		{"anchor.early_records", func(c *Config) { c.EarlyRecords = 0 }},
		{"anchor.poll", func(c *Config) { c.Poll = -time.Second }},
		{"anchor.poll", func(c *Config) { c.Poll = time.Millisecond }},
		{"anchor.poll", func(c *Config) { c.Poll = time.Hour }},
		{"anchor.batch", func(c *Config) { c.Batch = 0 }},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%s: got %v", tc.key, err)
		}
	}
}

func TestPollInterval(t *testing.T) {
	for _, tc := range []struct {
		epoch, poll, want time.Duration
	}{
		{10 * time.Minute, 0, 5 * time.Second},                 // the default: capped at 5s
		{3 * time.Second, 0, 1500 * time.Millisecond},          // a short epoch: half of it
		{time.Second, 0, 500 * time.Millisecond},               // the shortest epoch allowed
		{10 * time.Minute, 30 * time.Second, 30 * time.Second}, // set explicitly: kept
	} {
		c := DefaultConfig()
		c.Epoch, c.Poll = tc.epoch, tc.poll
		if err := c.Validate(); err != nil {
			t.Errorf("epoch %s poll %s: %v", tc.epoch, tc.poll, err)
		}
		if got := c.PollInterval(); got != tc.want {
			t.Errorf("epoch %s poll %s: PollInterval %s, want %s", tc.epoch, tc.poll, got, tc.want)
		}
	}
}
