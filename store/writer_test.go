package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeJournal delivers fixed batches the way journal.Consume does: in
// order, the same batch again after a handler error, OnIdle once all are
// acknowledged.
type fakeJournal struct {
	batches map[record.Kind][][]journal.Msg

	mu         sync.Mutex
	deliveries int
	acked      map[record.Kind]int // batches acknowledged
	dead       []journal.DeadLetter
}

func (f *fakeJournal) Consume(ctx context.Context, kind record.Kind, opts journal.ConsumeOptions, h journal.Handler) error {
	for i := 0; i < len(f.batches[kind]); {
		if ctx.Err() != nil {
			return nil
		}
		f.mu.Lock()
		f.deliveries++
		f.mu.Unlock()
		if err := h(ctx, slices.Clone(f.batches[kind][i])); err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		f.mu.Lock()
		f.acked[kind]++
		f.mu.Unlock()
		i++
	}
	if opts.OnIdle != nil {
		opts.OnIdle()
	}
	<-ctx.Done()
	return nil
}

func (f *fakeJournal) DeadLetter(_ context.Context, dls []journal.DeadLetter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead = append(f.dead, dls...)
	return nil
}

func (f *fakeJournal) ackedAll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, bs := range f.batches {
		if f.acked[k] != len(bs) {
			return false
		}
	}
	return true
}

// fakeStore records what it stores; fail decides each attempt's answer.
type fakeStore struct {
	mu       sync.Mutex
	attempts int
	times    []time.Time
	stored   []string // reading and handover ids, in write order
	fail     func(attempt int, b Batch) error
}

func (s *fakeStore) Write(_ context.Context, b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	s.times = append(s.times, time.Now())
	if s.fail != nil {
		if err := s.fail(s.attempts, b); err != nil {
			return err
		}
	}
	for _, r := range b.Readings {
		s.stored = append(s.stored, r.ID())
	}
	for _, h := range b.Handovers {
		s.stored = append(s.stored, h.ID)
	}
	return nil
}

func (s *fakeStore) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stored)
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func readingMsg(seq uint64) journal.Msg {
	r := record.Reading{Shipment: "SHP-1", Device: "d1", Seq: seq, Time: t0.Add(time.Duration(seq) * time.Minute), TempC: 4.5}
	return journal.Msg{Kind: record.KindReading, Seq: seq, ID: r.ID(), Subject: "coldchain.readings.SHP-1.d1",
		Data: r.AppendCanonical(nil), Stored: t0}
}

func handoverMsg(id string) journal.Msg {
	h := record.Handover{ID: id, Shipment: "SHP-1", Time: t0, Site: "SIN", Kind: record.HandoverRelease, FromParty: "a", ToParty: "b"}
	return journal.Msg{Kind: record.KindHandover, Seq: 1, ID: id, Subject: "coldchain.handovers.SHP-1", Data: h.AppendCanonical(nil), Stored: t0}
}

// readingBatches returns n readings, seq 1..n, in batches of size.
func readingBatches(n, size int) [][]journal.Msg {
	var out [][]journal.Msg
	for i := 1; i <= n; i += size {
		var b []journal.Msg
		for seq := i; seq < i+size && seq <= n; seq++ {
			b = append(b, readingMsg(uint64(seq)))
		}
		out = append(out, b)
	}
	return out
}

func ids(n int, skip ...int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		if !slices.Contains(skip, i) {
			out = append(out, fmt.Sprintf("d1:%d", i))
		}
	}
	return out
}

// run starts a writer of j into s, waits until every batch is acknowledged
// and returns the writer and its metrics text.
func run(t *testing.T, j *fakeJournal, s *fakeStore, tune func(*Writer)) (*Writer, string) {
	t.Helper()
	if j.acked == nil {
		j.acked = map[record.Kind]int{}
	}
	reg := metrics.New()
	w, err := NewWriter(DefaultConfig(), j, s, reg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !j.ackedAll() {
		if time.Now().After(deadline) {
			t.Fatalf("not every batch acknowledged in 20s; stored %v", s.ids())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var m bytes.Buffer
	reg.Write(&m)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return w, m.String()
}

func transient(status int, retryAfter time.Duration) error {
	return &WriteError{Status: status, RetryAfter: retryAfter, Err: errors.New("server says no")}
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batches [][]journal.Msg
		fail    func(attempt int, b Batch) error
		want    []string // stored, in order
		dead    []string // dead-lettered record ids
		metrics []string // lines /metrics must hold afterwards
	}{
		{
			name:    "in order",
			batches: readingBatches(25, 10),
			want:    ids(25),
			metrics: []string{`coldchain_store_points_total{kind="reading"} 25`, "coldchain_store_up 1", `coldchain_store_pending{kind="reading"} 0`},
		},
		{
			name:    "connection refused, then 503, then up",
			batches: readingBatches(25, 10),
			fail: func(attempt int, _ Batch) error {
				switch attempt {
				case 1:
					return transient(0, 0)
				case 2, 3:
					return transient(503, 0)
				}
				return nil
			},
			want:    ids(25),
			metrics: []string{"coldchain_store_write_failures_total 3", "coldchain_store_up 1"},
		},
		{
			name:    "one refused point is dead-lettered, the rest written in order",
			batches: readingBatches(20, 20),
			fail: func(_ int, b Batch) error {
				for _, r := range b.Readings {
					if r.Seq == 13 {
						return &WriteError{Permanent: true, Status: 400, Err: errors.New("partial write: field type conflict")}
					}
				}
				return nil
			},
			want:    ids(20, 13),
			dead:    []string{"d1:13"},
			metrics: []string{`coldchain_store_rejected_total{kind="reading"} 1`, `coldchain_store_points_total{kind="reading"} 19`},
		},
		{
			name:    "two refused points in one batch",
			batches: readingBatches(16, 16),
			fail: func(_ int, b Batch) error {
				for _, r := range b.Readings {
					if r.Seq == 1 || r.Seq == 16 {
						return &WriteError{Permanent: true, Status: 400, Err: errors.New("bad point")}
					}
				}
				return nil
			},
			want: ids(16, 1, 16),
			dead: []string{"d1:1", "d1:16"},
		},
		{
			name:    "undecodable record",
			batches: [][]journal.Msg{{readingMsg(1), {Kind: record.KindReading, ID: "d1:2", Seq: 2, Subject: "coldchain.readings.SHP-1.d1", Data: []byte(`{"nope":1}`)}, readingMsg(3)}},
			want:    []string{"d1:1", "d1:3"},
			dead:    []string{"d1:2"},
		},
		{
			name:    "handovers",
			batches: [][]journal.Msg{{handoverMsg("H-1"), handoverMsg("H-2")}},
			want:    []string{"H-1", "H-2"},
			metrics: []string{`coldchain_store_points_total{kind="handover"} 2`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &fakeJournal{batches: map[record.Kind][][]journal.Msg{}}
			for _, b := range tc.batches {
				j.batches[b[0].Kind] = append(j.batches[b[0].Kind], b)
			}
			s := &fakeStore{fail: tc.fail}
			_, m := run(t, j, s, nil)
			if got := s.ids(); !slices.Equal(got, tc.want) {
				t.Fatalf("stored %v\nwant %v", got, tc.want)
			}
			var dead []string
			for _, d := range j.dead {
				if d.Err.Reason != record.ReasonStoreRejected || !strings.HasPrefix(d.Source, "store:coldchain.") {
					t.Fatalf("dead letter %+v", d)
				}
				r, err := record.ParseReading(d.Raw)
				if err != nil {
					dead = append(dead, "d1:2") // the undecodable one
					continue
				}
				dead = append(dead, r.ID())
			}
			if !slices.Equal(dead, tc.dead) {
				t.Fatalf("dead letters %v, want %v", dead, tc.dead)
			}
			for _, line := range tc.metrics {
				if !strings.Contains(m, line+"\n") {
					t.Errorf("metrics lack %q:\n%s", line, m)
				}
			}
		})
	}
}

// TestWriterHonoursRetryAfter: a 429 with Retry-After holds the next
// attempt back at least that long.
func TestWriterHonoursRetryAfter(t *testing.T) {
	j := &fakeJournal{batches: map[record.Kind][][]journal.Msg{record.KindReading: readingBatches(3, 3)}}
	s := &fakeStore{fail: func(attempt int, _ Batch) error {
		if attempt == 1 {
			return transient(429, 300*time.Millisecond)
		}
		return nil
	}}
	run(t, j, s, nil)
	if len(s.times) != 2 {
		t.Fatalf("%d attempts, want 2", len(s.times))
	}
	if d := s.times[1].Sub(s.times[0]); d < 300*time.Millisecond {
		t.Fatalf("retried after %s, before the 300ms Retry-After", d)
	}
}

// TestWriterGivesBatchBack: a store down longer than the retry budget has
// the batch delivered again by the journal; once it is up, everything is
// written once, in order, and the state shows the outage meanwhile.
func TestWriterGivesBatchBack(t *testing.T) {
	j := &fakeJournal{batches: map[record.Kind][][]journal.Msg{record.KindReading: readingBatches(10, 5)}}
	var w *Writer
	var sawDown bool
	s := &fakeStore{fail: func(attempt int, _ Batch) error {
		if attempt <= 6 {
			if attempt > 1 {
				_, err := w.State()
				sawDown = sawDown || err != nil
			}
			return transient(0, 0)
		}
		return nil
	}}
	run(t, j, s, func(wr *Writer) { w, wr.budget, wr.cfg.MaxBackoff = wr, 150*time.Millisecond, 200*time.Millisecond })
	if got := s.ids(); !slices.Equal(got, ids(10)) {
		t.Fatalf("stored %v", got)
	}
	if j.deliveries <= 2 {
		t.Fatalf("%d deliveries: the batch was never given back", j.deliveries)
	}
	if !sawDown {
		t.Fatal("State never reported the outage")
	}
	if err := w.Check(context.Background()); err != nil {
		t.Fatalf("check after recovery: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"5k batches", func(c *Config) { c.BatchSize = 5000 }, ""},
		{"kind", func(c *Config) { c.Kind = "sqlite" }, "store.kind"},
		{"batch", func(c *Config) { c.BatchSize = 20000 }, "store.batch_size"},
		{"retention", func(c *Config) { c.Retention = -time.Hour }, "store.retention"},
		{"short retention", func(c *Config) { c.Retention = time.Minute }, "store.retention"},
		{"backoff", func(c *Config) { c.MaxBackoff = 0 }, "store.max_backoff"},
		{"prune", func(c *Config) { c.PruneInterval = time.Second }, "store.prune_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
