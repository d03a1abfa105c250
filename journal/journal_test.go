package journal

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server keeps package-level helpers running.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).Start.func1"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}

type env struct {
	t   *testing.T
	dir string
	srv *natsserver.Server
	nc  *nats.Conn
	j   *Journal
	cfg Config
	log *zap.Logger

	cancel context.CancelFunc
	done   chan error
}

// start runs an embedded server over dir and a journal with its indexer.
func start(t *testing.T, dir string, cfg Config) *env {
	t.Helper()
	e := &env{t: t, dir: dir, cfg: cfg, log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	var err error
	e.srv, err = natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: dir, MaxPayload: 8 << 20}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	if e.nc, err = e.srv.Connect(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.j, err = Open(ctx, e.nc, cfg, filepath.Join(dir, "index"), e.log); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	e.cancel, e.done = stop, make(chan error, 1)
	go func() { e.done <- e.j.Run(runCtx) }()
	eventually(t, "index ready", e.j.IndexReady)
	return e
}

func (e *env) stop() {
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("journal run: %v", err)
	}
	if err := e.j.Close(); err != nil {
		e.t.Errorf("journal close: %v", err)
	}
	e.nc.Close()
	e.srv.Shutdown()
}

// eventually polls cond until it holds or 20 seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func reading(device string, seq uint64, temp float64) Entry {
	r := record.Reading{Shipment: "S1", Device: device, Seq: seq, Time: time.Date(2026, 3, 1, 0, 0, int(seq), 0, time.UTC), TempC: temp}
	return Entry{Kind: record.KindReading, ID: r.ID(), Subject: SubjectReading(r.Shipment, r.Device),
		Data: r.AppendCanonical(nil), Device: device, Seq: seq}
}

func handover(id, note string) Entry {
	h := record.Handover{ID: id, Shipment: "S1", Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Site: "SIN",
		Kind: record.HandoverReceive, FromParty: "A", ToParty: "B", Note: note}
	return Entry{Kind: record.KindHandover, ID: id, Subject: SubjectHandover("S1"), Data: h.AppendCanonical(nil)}
}

func (e *env) append(entries ...Entry) []Outcome {
	e.t.Helper()
	out := make([]Result, len(entries))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.j.Append(ctx, entries, Meta{Source: "test", Received: time.Now()}, out); err != nil {
		e.t.Fatal(err)
	}
	oc := make([]Outcome, len(out))
	for i, r := range out {
		oc[i] = r.Outcome
	}
	return oc
}

// count returns the records a stream holds, whatever their chunks.
func (e *env) count(kind record.Kind) int {
	e.t.Helper()
	n := 0
	if err := e.j.Scan(context.Background(), kind, "", func(Msg) error { n++; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func want(t *testing.T, got []Outcome, want ...Outcome) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
}

func TestDeadLetters(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	ctx := context.Background()
	big := make([]byte, 9<<20) // larger than the server's 8 MiB max payload
	for i := range big {
		big[i] = 'x'
	}
	dls := []DeadLetter{
		{Err: &record.Error{Reason: record.ReasonOutOfRange, Field: "temp_c", Index: 3, Detail: "too hot"}, Source: "mqtt:a/b", Received: time.Now(), Raw: []byte(`{"temp_c":500}`)},
		{Err: &record.Error{Reason: record.ReasonMalformedJSON, Index: -1, Detail: "bad"}, Source: "mqtt:a/b", Received: time.Now(), Raw: []byte{0xff, 0xfe}},
		{Err: &record.Error{Reason: record.ReasonOversize, Index: -1, Detail: "big"}, Source: "http:/v1/readings", Received: time.Now(), Raw: big},
	}
	if err := e.j.DeadLetter(ctx, dls); err != nil {
		t.Fatal(err)
	}
	// A redelivered message dead-letters the same bytes again: kept once.
	if err := e.j.DeadLetter(ctx, dls[:1]); err != nil {
		t.Fatal(err)
	}
	got, err := e.j.DeadLetters(ctx, 10, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(got), got)
	}
	if got[0].Reason != "oversize" || !got[0].Truncated || got[0].Size != len(big) {
		t.Fatalf("newest: %+v", got[0].Reason)
	}
	if got[1].Reason != "malformed_json" || got[1].PayloadBase64 != "//4=" {
		t.Fatalf("binary payload: %+v", got[1])
	}
	if g := got[2]; g.Reason != "out_of_range" || g.Field != "temp_c" || g.Index != 3 || g.Payload != `{"temp_c":500}` || g.Source != "mqtt:a/b" {
		t.Fatalf("oldest: %+v", g)
	}
	only, err := e.j.DeadLetters(ctx, 10, "malformed_json", "")
	if err != nil || len(only) != 1 {
		t.Fatalf("filtered: %v %+v", err, only)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultConfig()
	bad.Replicas = 0
	if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "nats.replicas:") {
		t.Fatalf("%v", err)
	}
	bad = DefaultConfig()
	bad.MaxBytes = 4096
	if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "nats.max_bytes:") {
		t.Fatalf("max_bytes 4096: %v", err)
	}
}

// TestConsume checks the consumer contract every derived part relies on:
// batches in stream order, a failed batch delivered again from the same
// message, and the durable position kept across a restart.
func TestConsume(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	// Singles and chunks of 4: a batch of 7 never splits a chunk.
	for i := 1; i <= 8; i++ {
		e.append(reading("C1", uint64(i), 5))
	}
	for i := 9; i <= 20; i += 4 {
		e.append(reading("C1", uint64(i), 5), reading("C1", uint64(i+1), 5), reading("C1", uint64(i+2), 5), reading("C1", uint64(i+3), 5))
	}
	consume := func(stopAfter int, failFirst bool) []uint64 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var got []uint64
		failed := false
		done := make(chan error, 1)
		go func() {
			done <- e.j.Consume(ctx, record.KindReading, ConsumeOptions{Durable: "test", Batch: 7, MaxWait: 100 * time.Millisecond},
				func(_ context.Context, batch []Msg) error {
					if failFirst && !failed {
						failed = true
						return fmt.Errorf("store down")
					}
					for _, m := range batch {
						r, err := record.ParseReading(m.Data)
						if err != nil || m.ID != r.ID() {
							t.Errorf("message %d: %v %s", m.Seq, err, m.ID)
						}
						got = append(got, r.Seq)
					}
					if len(got) >= stopAfter {
						cancel()
					}
					return nil
				})
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("consume did not finish")
		}
		return got
	}
	seq := func(from, to uint64) []uint64 {
		var out []uint64
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	// The consumer stops after the batch that reaches 14 records. Where a
	// batch ends depends on what has arrived when it is taken (a busy
	// machine hands over fewer at a time), but never inside a chunk: the
	// first pass ends at 16 or 20, in order, with the failed batch
	// delivered again from its first message.
	first := consume(14, true)
	n := uint64(len(first))
	if n != 16 && n != 20 || fmt.Sprint(first) != fmt.Sprint(seq(1, n)) {
		t.Fatalf("first pass %v: want 1…16 or 1…20, in order, chunks whole", first)
	}
	// After a restart the durable position holds: the rest, and four
	// more appended meanwhile, and nothing before.
	e.append(reading("C1", 21, 5), reading("C1", 22, 5), reading("C1", 23, 5), reading("C1", 24, 5))
	rest := consume(int(24-n), false)
	if fmt.Sprint(rest) != fmt.Sprint(seq(n+1, 24)) {
		t.Fatalf("after restart %v, want %d…24", rest, n+1)
	}
}

// TestConsumeFrom checks that From replays from a chosen sequence once,
// whatever the consumer's position, and AckFloor reports the position.
func TestConsumeFrom(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	for i := 1; i <= 5; i++ {
		e.append(reading("F1", uint64(i), 5))
	}
	run := func(from uint64, want int) []uint64 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var got []uint64
		_ = e.j.Consume(ctx, record.KindReading, ConsumeOptions{Durable: "from", From: from, MaxWait: 100 * time.Millisecond,
			OnIdle: cancel}, func(_ context.Context, b []Msg) error {
			for _, m := range b {
				got = append(got, m.Seq)
			}
			return nil
		})
		if len(got) != want {
			t.Fatalf("from %d: got %v", from, got)
		}
		return got
	}
	run(0, 5)
	if f, err := e.j.AckFloor(context.Background(), record.KindReading, "from"); err != nil || f != EndPosition(5) {
		t.Fatalf("ack floor %d %v", f, err)
	}
	run(0, 0)
	if got := run(Position(3, 0), 3); got[0] != Position(3, 0) {
		t.Fatalf("replay from 3: %v", got)
	}
	// Five readings in one chunk (stream sequence 6), appended after a run
	// stopped: its leftover pull request must not take them (they were
	// acknowledged unseen with the next batch, before consumers were
	// recreated at every run). From can start inside the chunk.
	var burst []Entry
	for i := 6; i <= 10; i++ {
		burst = append(burst, reading("F1", uint64(i), 5))
	}
	e.append(burst...)
	run(0, 5)
	if got := run(Position(6, 2), 3); got[0] != Position(6, 2) || got[2] != Position(6, 4) {
		t.Fatalf("replay from inside a chunk: %v", got)
	}
}

// TestBursts checks the batch-linger bookkeeping: a burst interleaved with
// other messages keeps the batch open until its last record is seen, and an
// incomplete burst stops holding it once the linger has passed.
func TestBursts(t *testing.T) {
	h := func(src, recv, part string) nats.Header {
		return nats.Header{HeaderSource: {src}, HeaderReceived: {recv}, HeaderPart: {part}}
	}
	t0 := time.Unix(0, 0)
	var b bursts
	b.add("a", h("mqtt:a", "1", "1/3"), t0)
	b.add("b", h("mqtt:b", "2", "1/1"), t0) // a lone reading of another device
	if !b.waiting(t0, 100*time.Millisecond) {
		t.Fatal("burst a is incomplete: the batch must wait")
	}
	b.add("a", h("mqtt:a", "1", "2/3"), t0)
	b.add("a", h("mqtt:a", "1", "3/3"), t0)
	if b.waiting(t0, 100*time.Millisecond) {
		t.Fatal("burst a is complete: nothing to wait for")
	}
	b.add("c", h("mqtt:c", "3", "1/5"), t0)
	if b.waiting(t0.Add(200*time.Millisecond), 100*time.Millisecond) {
		t.Fatal("a burst silent for longer than the linger must not hold the batch")
	}
}

// TestConsumeGather checks that Gather keeps a batch open for records that
// arrive after its first one, and that without it they come apart.
func TestConsumeGather(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	batches := func(durable string, gather time.Duration, total int) []int {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan int, 10)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = e.j.Consume(ctx, record.KindReading, ConsumeOptions{Durable: durable, Gather: gather, MaxWait: 50 * time.Millisecond},
				func(_ context.Context, b []Msg) error { got <- len(b); return nil })
		}()
		seq := uint64(time.Now().UnixNano())
		e.append(reading("G-"+durable, seq, 5))
		time.Sleep(150 * time.Millisecond)
		e.append(reading("G-"+durable, seq+1, 5))
		var sizes []int
		for n := 0; n < total; {
			select {
			case k := <-got:
				sizes = append(sizes, k)
				n += k
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: batches so far %v", durable, sizes)
			}
		}
		cancel()
		<-done
		return sizes
	}
	if got := batches("apart", 0, 2); fmt.Sprint(got) != "[1 1]" {
		t.Fatalf("without gather: batches %v", got)
	}
	// A new consumer: the first two readings, then two more, one at once
	// and one 150 ms later, all in one batch.
	if got := batches("gathered", 2*time.Second, 4); fmt.Sprint(got) != "[4]" {
		t.Fatalf("with gather: batches %v", got)
	}
}

// TestStreamFull: with nats.max_bytes a full record stream refuses new
// records with ErrFull instead of dropping old ones, /readyz says so, and
// once the bound is raised the refused records are taken exactly once.
func TestStreamFull(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.MaxBytes = MinMaxBytes
	e := start(t, dir, cfg)
	batch := func(n int) []Entry {
		out := make([]Entry, 500)
		for i := range out {
			out[i] = reading("L1", uint64(n*500+i+1), 5)
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stored, refusedAt := 0, -1
	for n := 0; n < 100 && refusedAt < 0; n++ {
		out := make([]Result, 500)
		err := e.j.Append(ctx, batch(n), Meta{Source: "test", Received: time.Now()}, out)
		switch {
		case err == nil:
			stored += 500
		case errors.Is(err, ErrFull):
			refusedAt = n
			for _, r := range out {
				if r.Outcome == Stored {
					stored++
				}
			}
		default:
			t.Fatalf("batch %d: %v, want nil or ErrFull", n, err)
		}
	}
	if refusedAt < 0 {
		e.stop()
		t.Fatalf("50,000 readings fit in a %d-byte stream: the bound is not applied", MinMaxBytes)
	}
	info, err := e.j.streams[record.KindReading].Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.FirstSeq != 1 || e.count(record.KindReading) != stored {
		t.Errorf("after the refusal the stream starts at %d and holds %d readings, want 1 and the %d stored: nothing may be dropped",
			info.State.FirstSeq, e.count(record.KindReading), stored)
	}
	if err := e.j.Ready(ctx); err == nil || !strings.Contains(err.Error(), "is full") {
		t.Errorf("Ready of a full journal: %v, want the stream named as full", err)
	}
	e.stop()

	// The operator raises the bound: the refused batch goes in, what of
	// it was stored before the refusal once.
	cfg.MaxBytes = 64 << 20
	e = start(t, dir, cfg)
	defer e.stop()
	if err := e.j.Ready(ctx); err != nil {
		t.Fatalf("Ready after raising nats.max_bytes: %v", err)
	}
	out := make([]Result, 500)
	if err := e.j.Append(ctx, batch(refusedAt), Meta{Source: "test", Received: time.Now()}, out); err != nil {
		t.Fatalf("the refused batch after raising the bound: %v", err)
	}
	if got, want := e.count(record.KindReading), (refusedAt+1)*500; got != want {
		t.Fatalf("the stream holds %d readings, want %d: every reading once", got, want)
	}
	t.Logf("a %d-byte stream refused batch %d of 500 readings, %d readings stored before", MinMaxBytes, refusedAt, stored)
}

// TestIndexStallCheck: the indexer asks the stream when its consumer is
// silent; it is stalled only when the stream holds messages it has not
// indexed.
func TestIndexStallCheck(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	e.append(reading("D1", 1, 5), reading("D1", 2, 5))
	ctx := context.Background()
	eventually(t, "the index to reach the stream's end", func() bool {
		return e.j.checkStalled(ctx, record.KindReading, e.j.idx.states[record.KindReading].applied.Load()) == nil
	})
	last := e.j.idx.states[record.KindReading].applied.Load()
	if err := e.j.checkStalled(ctx, record.KindReading, last-1); !errors.Is(err, errStalled) {
		t.Fatalf("indexed up to %d of %d: %v, want errStalled", last-1, last, err)
	}
}

// TestScanQuiet checks how a scan tells a consumer that has nothing left
// from one that stopped delivering: pending messages, or delivered ones
// the scan never received, mean stalled; a filter that matches nothing
// more means done, however far the consumer skipped.
func TestScanQuiet(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	for seq := uint64(1); seq <= 3; seq++ {
		e.append(reading("D1", seq, 5))
	}
	ctx := context.Background()
	s := e.j.streams[record.KindReading]
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if scanQuiet(ctx, c, 0) {
		t.Fatal("a consumer with its messages pending counted as done")
	}
	it, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	var delivered uint64
	for {
		m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		md, _ := m.Metadata()
		delivered = md.Sequence.Consumer
		if md.NumPending == 0 {
			break
		}
	}
	if delivered < 1 {
		t.Fatalf("delivered %d messages", delivered)
	}
	if !scanQuiet(ctx, c, delivered) {
		t.Error("a consumer that delivered everything, all received, counted as stalled")
	}
	if scanQuiet(ctx, c, delivered-1) {
		t.Error("a consumer whose last delivery was never received counted as done")
	}
	other, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{SubjectReading("S9", "D9")}})
	if err != nil {
		t.Fatal(err)
	}
	if !scanQuiet(ctx, other, 0) {
		t.Error("a filtered consumer with nothing matching counted as stalled")
	}
	if n := e.count(record.KindReading); n != 3 {
		t.Errorf("scan read %d readings, want 3", n)
	}
}

// TestConsumerStalled checks how a quiet durable consumer tells a stall
// from a stream without news: messages pending, or delivered and never
// acknowledged, mean stalled.
func TestConsumerStalled(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	for seq := uint64(1); seq <= 3; seq++ {
		e.append(reading("D1", seq, 5))
	}
	ctx := context.Background()
	c, err := durableConsumer(ctx, e.j.streams[record.KindReading], "stall-test", "", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := consumerStalled(ctx, c); !errors.Is(err, errConsumerStalled) {
		t.Fatalf("a consumer with its messages pending: %v, want errConsumerStalled", err)
	}
	batch, err := c.Fetch(10, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var last jetstream.Msg
	n := 0
	for m := range batch.Messages() {
		last = m
		n++
	}
	if n == 0 {
		t.Fatal("fetched nothing")
	}
	if err := consumerStalled(ctx, c); !errors.Is(err, errConsumerStalled) {
		t.Fatalf("a consumer whose deliveries were never acknowledged: %v, want errConsumerStalled", err)
	}
	if err := last.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if err := consumerStalled(ctx, c); err != nil {
		t.Fatalf("a consumer that delivered everything, acknowledged: %v", err)
	}
}
