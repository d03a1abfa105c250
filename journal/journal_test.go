package journal

import (
	"context"
	"fmt"
	"strconv"
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
	if e.j, err = Open(ctx, e.nc, cfg, e.log); err != nil {
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

func (e *env) count(stream string) uint64 {
	e.t.Helper()
	s, err := e.j.JetStream().Stream(context.Background(), stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// forgotten waits until JetStream's duplicate window has passed for
// everything appended so far, proving it with a probe message published
// twice with one message id: the second is stored only once JetStream
// forgot the first. The two probes land in the readings stream.
func (e *env) forgotten() {
	e.t.Helper()
	id := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	ctx := context.Background()
	if _, err := e.j.JetStream().Publish(ctx, "coldchain.readings.probe.probe", nil, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, "duplicate window to pass", func() bool {
		time.Sleep(200 * time.Millisecond)
		ack, err := e.j.JetStream().Publish(ctx, "coldchain.readings.probe.probe", nil, jetstream.WithMsgID(id))
		return err == nil && !ack.Duplicate
	})
}

func want(t *testing.T, got []Outcome, want ...Outcome) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
}

// TestAppendExactlyOnce walks a record through every path of
// docs/EXACTLY-ONCE.md: new, resent within JetStream's window, resent after
// it (answered by the index), conflicting in and after the window, and
// resent after a full restart of server and gateway.
func TestAppendExactlyOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DuplicateWindow = time.Second
	dir := t.TempDir()
	e := start(t, dir, cfg)

	a, b, c := reading("D1", 1, 5), reading("D1", 2, 5.5), reading("D2", 7, 6)
	hA := handover("H1", "ok")
	want(t, e.append(a, b, c, hA), Stored, Stored, Stored, Stored)

	// Within the window JetStream's own dedup answers; the bytes decide.
	bChanged := reading("D1", 2, 9.9)
	want(t, e.append(a, bChanged, hA, handover("H1", "changed")), Duplicate, Conflict, Duplicate, Conflict)

	// Past the window only the index can answer.
	eventually(t, "indexer caught up", func() bool { p, _ := e.j.IndexLag(time.Now()); return p == 0 })
	eventually(t, "watermark D1", func() bool { return e.j.marks.mayHave("D1", 2) })
	e.forgotten()
	want(t, e.append(c, a, bChanged, hA, handover("H1", "changed")), Duplicate, Duplicate, Conflict, Duplicate, Conflict)

	// A genuinely new reading below the watermark is looked up, missed, stored.
	d1gap := reading("D1", 0, 4)
	want(t, e.append(d1gap, reading("D1", 3, 4)), Stored, Stored)

	if n := e.count(StreamReadings); n != 5+2 { // two probes of forgotten()
		t.Fatalf("%d readings stored, want 5", n)
	}
	if n := e.count(StreamHandovers); n != 1 {
		t.Fatalf("%d handovers stored, want 1", n)
	}
	e.stop()

	// Everything survives a restart: the index and the watermarks are in
	// JetStream, not in memory.
	e = start(t, dir, cfg)
	defer e.stop()
	want(t, e.append(a, c, d1gap, hA, reading("D1", 4, 4)), Duplicate, Duplicate, Duplicate, Duplicate, Stored)
	if n := e.count(StreamReadings); n != 6+2 {
		t.Fatalf("%d readings stored after restart, want 6", n)
	}
}

// TestAppendBurstOutOfOrder appends a logger's burst in reverse order, then
// the same burst again after the window: each reading is stored once.
func TestAppendBurstOutOfOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DuplicateWindow = time.Second
	e := start(t, t.TempDir(), cfg)
	defer e.stop()
	var burst []Entry
	for seq := 500; seq > 0; seq-- {
		burst = append(burst, reading("LOG-1", uint64(seq), 5))
	}
	for _, o := range e.append(burst...) {
		if o != Stored {
			t.Fatalf("first upload: %v", o)
		}
	}
	eventually(t, "indexer caught up", func() bool { p, _ := e.j.IndexLag(time.Now()); return p == 0 })
	e.forgotten()
	for i, o := range e.append(burst...) {
		if o != Duplicate {
			t.Fatalf("re-upload %d: %v", i, o)
		}
	}
	if n := e.count(StreamReadings); n != 500+2 {
		t.Fatalf("%d stored, want 500", n)
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
	got, err := e.j.DeadLetters(ctx, 10, "")
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
	only, err := e.j.DeadLetters(ctx, 10, "malformed_json")
	if err != nil || len(only) != 1 {
		t.Fatalf("filtered: %v %+v", err, only)
	}
}

func TestIndexKey(t *testing.T) {
	for _, tc := range []struct {
		kind     record.Kind
		id, want string
	}{
		{record.KindReading, "reefer-7:42", "r.reefer-7.42"},
		{record.KindReading, "a_b:18446744073709551615", "r.a_b.18446744073709551615"},
		{record.KindHandover, "HO-1", "h.HO-1"},
	} {
		if got := indexKey(tc.kind, tc.id); got != tc.want {
			t.Errorf("indexKey(%s) = %s, want %s", tc.id, got, tc.want)
		}
	}
	dev, seq, ok := splitReadingID("reefer-7:" + strconv.FormatUint(1<<63, 10))
	if !ok || dev != "reefer-7" || seq != 1<<63 {
		t.Fatalf("split: %s %d %v", dev, seq, ok)
	}
	if _, _, ok := decodeIndexValue([]byte("short")); ok {
		t.Fatal("short index value accepted")
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
}

// TestIndexerResumesFromAckFloor reproduces a gateway killed while its
// indexer held a fetched, unacknowledged batch: the next indexer must index
// those records before claiming to be caught up, or a resend after the
// duplicate window would be stored twice.
func TestIndexerResumesFromAckFloor(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DuplicateWindow = time.Second
	e := start(t, t.TempDir(), cfg)
	defer e.stop()
	a, b := reading("D1", 1, 5), reading("D1", 2, 5)
	want(t, e.append(a), Stored)
	eventually(t, "a indexed", func() bool { return e.j.marks.mayHave("D1", 1) })

	// Stop the indexer, store b unindexed, and leave it fetched but not
	// acknowledged, as a killed indexer would.
	e.cancel()
	if err := <-e.done; err != nil {
		t.Fatal(err)
	}
	// Until the new journal runs, stop has nothing to wait for.
	e.done <- nil
	want(t, e.append(b), Stored)
	ctx := context.Background()
	s, err := e.j.JetStream().Stream(ctx, StreamReadings)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Consumer(ctx, IndexerName)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	// b is now held unacknowledged: by this fetch, or by a pull request the
	// stopped indexer left on the server, as a killed one would.
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 || info.AckFloor.Stream != 1 {
		t.Fatalf("consumer state %d pending, ack floor %d: want b (seq 2) held, a acknowledged", info.NumAckPending, info.AckFloor.Stream)
	}

	// A new journal on the same server, as after a restart.
	j2, err := Open(ctx, e.nc, cfg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	e.j, e.cancel, e.done = j2, stop, make(chan error, 1)
	go func() { e.done <- j2.Run(runCtx) }()
	eventually(t, "index ready", j2.IndexReady)
	e.forgotten()
	want(t, e.append(b), Duplicate)
}

// TestConsume checks the consumer contract every derived part relies on:
// batches in stream order, a failed batch delivered again from the same
// message, and the durable position kept across a restart.
func TestConsume(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	for i := 1; i <= 20; i++ {
		e.append(reading("C1", uint64(i), 5))
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
	first := consume(14, true)
	if fmt.Sprint(first) != fmt.Sprint([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}) {
		t.Fatalf("first pass %v", first)
	}
	rest := consume(6, false)
	if fmt.Sprint(rest) != fmt.Sprint([]uint64{15, 16, 17, 18, 19, 20}) {
		t.Fatalf("after restart %v", rest)
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
	if f, err := e.j.AckFloor(context.Background(), record.KindReading, "from"); err != nil || f != 5 {
		t.Fatalf("ack floor %d %v", f, err)
	}
	run(0, 0)
	if got := run(3, 3); got[0] != 3 {
		t.Fatalf("replay from 3: %v", got)
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
	b.add(h("mqtt:a", "1", "1/3"), t0)
	b.add(h("mqtt:b", "2", "1/1"), t0) // a lone reading of another device
	if !b.waiting(t0, 100*time.Millisecond) {
		t.Fatal("burst a is incomplete: the batch must wait")
	}
	b.add(h("mqtt:a", "1", "2/3"), t0)
	b.add(h("mqtt:a", "1", "3/3"), t0)
	if b.waiting(t0, 100*time.Millisecond) {
		t.Fatal("burst a is complete: nothing to wait for")
	}
	b.add(h("mqtt:c", "3", "1/5"), t0)
	if b.waiting(t0.Add(200*time.Millisecond), 100*time.Millisecond) {
		t.Fatal("a burst silent for longer than the linger must not hold the batch")
	}
}
