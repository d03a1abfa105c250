package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// ConsumerName is the durable consumer the writer reads both record streams
// with. Deleting it rebuilds the store from the journal.
const ConsumerName = "coldchain-store"

// Journal is what the writer needs of the journal.
type Journal interface {
	Consume(ctx context.Context, kind record.Kind, opts journal.ConsumeOptions, h journal.Handler) error
	DeadLetter(ctx context.Context, dls []journal.DeadLetter) error
}

var _ Journal = (*journal.Journal)(nil)

// retryBudget bounds how long one delivery of a batch is retried before
// the writer gives it back to the journal, which delivers it again from the
// same position. It stays under the consumer's 30 s ack wait, so JetStream
// never redelivers a batch the writer still holds.
const retryBudget = 20 * time.Second

// Writer is the durable journal consumer that feeds a store: it writes
// readings and handovers in batches, in journal order, and acknowledges a
// batch only after the store confirmed it. A transient error (no answer,
// 5xx, 429) is retried with backoff, honouring Retry-After; a point the
// store refuses for good is dead-lettered with reason store_rejected and
// the rest of its batch is written. While the store is down the journal
// keeps the records and ingest goes on; the writer resumes by itself.
type Writer struct {
	cfg Config
	j   Journal
	s   BatchWriter
	log *zap.Logger
	now func() time.Time
	// budget is retryBudget; tests shorten it.
	budget time.Duration

	// parts holds each consumer's progress (Part), by durable name.
	partsMu sync.Mutex
	parts   map[string]*kindState
	m       writerMetrics

	mu       sync.Mutex
	up       bool
	lastErr  error
	downFrom time.Time
}

// kindState is one consumer's progress through its record stream.
type kindState struct {
	kind record.Kind
	// pending is how many records of the stream are not in the store yet.
	pending atomic.Uint64
	// oldest is the journal time (Unix ns) of the oldest record not in the
	// store yet, while pending > 0.
	oldest atomic.Int64
	// backoff grows with consecutive failures, and notBefore is when the
	// store may be written again (Retry-After); only the stream's handler
	// uses them, across deliveries.
	backoff   time.Duration
	notBefore time.Time
}

type writerMetrics struct {
	points, rejected *metrics.CounterVec
	failures         *metrics.Counter
	latency          *metrics.Histogram
}

// NewWriter returns a writer of j's records into s, with its metrics in
// reg.
func NewWriter(cfg Config, j Journal, s BatchWriter, reg *metrics.Registry, log *zap.Logger) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Writer{cfg: cfg, j: j, s: s, log: log, now: time.Now, budget: retryBudget, up: true, parts: map[string]*kindState{}}
	w.m = writerMetrics{
		points:   reg.Counter("coldchain_store_points_total", "Records written to the time-series store, by kind.", "kind"),
		rejected: reg.Counter("coldchain_store_rejected_total", "Records the time-series store refused for good and that were dead-lettered, by kind.", "kind"),
		failures: reg.Counter("coldchain_store_write_failures_total", "Writes to the time-series store that failed and were retried.").With(),
		latency:  reg.Histogram("coldchain_store_write_seconds", "Time to write one batch to the time-series store.", metrics.LatencyBuckets),
	}
	for _, k := range []record.Kind{record.KindReading, record.KindHandover} {
		w.m.points.With(k.String())
		w.m.rejected.With(k.String())
	}
	reg.GaugeFunc("coldchain_store_up", "1 while the time-series store takes writes, 0 while the writer retries.", nil, func() map[string]float64 {
		if _, err := w.State(); err != nil {
			return map[string]float64{"": 0}
		}
		return map[string]float64{"": 1}
	})
	reg.GaugeFunc("coldchain_store_pending", "Records in the journal not yet in the time-series store (consumer lag), by kind.", []string{"kind"}, func() map[string]float64 {
		out := map[string]float64{record.KindReading.String(): 0, record.KindHandover.String(): 0}
		w.eachPart(func(st *kindState) { out[st.kind.String()] += float64(st.pending.Load()) })
		return out
	})
	reg.GaugeFunc("coldchain_store_behind_seconds", "How long the oldest record not yet in the time-series store has waited.", nil, func() map[string]float64 {
		_, behind := w.Lag()
		return map[string]float64{"": behind.Seconds()}
	})
	return w, nil
}

// Part is one durable consumer of the writer: the records of one stream,
// or, in a cluster with partitions, one partition's readings (Filter).
type Part struct {
	Kind    record.Kind
	Durable string
	Filter  string
}

// Parts returns the writer's consumers of one gateway: both record
// streams, read whole with ConsumerName.
func Parts() []Part {
	return []Part{{Kind: record.KindReading, Durable: ConsumerName}, {Kind: record.KindHandover, Durable: ConsumerName}}
}

// PartitionPart returns the consumer of partition p's readings
// (coldchain-store-p{p}), for a cluster with partitions.
func PartitionPart(p int) Part {
	return Part{Kind: record.KindReading, Durable: ConsumerName + "-p" + strconv.Itoa(p), Filter: journal.FilterPartition(p)}
}

// Run consumes both record streams (Parts) until ctx ends, and prunes the
// store every prune interval when it is a Pruner and retention is set. It
// returns after its goroutines have exited.
func (w *Writer) Run(ctx context.Context) error { return w.RunParts(ctx, true, Parts()...) }

// RunParts consumes the given parts until ctx ends, pruning too when
// prune is set (one gateway of a cluster prunes). It returns after its
// goroutines have exited.
func (w *Writer) RunParts(ctx context.Context, prune bool, parts ...Part) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		st := w.part(p)
		g.Go(func() error {
			return w.j.Consume(ctx, p.Kind, journal.ConsumeOptions{
				Durable: p.Durable,
				Filter:  p.Filter,
				Batch:   w.cfg.BatchSize,
				Gather:  w.cfg.BatchWait,
				OnIdle:  func() { st.pending.Store(0) },
			}, w.handler(st))
		})
	}
	if pr, ok := w.s.(Pruner); ok && prune && w.cfg.Retention > 0 {
		g.Go(func() error { return w.prune(ctx, pr) })
	}
	return g.Wait()
}

// part returns the progress of p, made on first use.
func (w *Writer) part(p Part) *kindState {
	w.partsMu.Lock()
	defer w.partsMu.Unlock()
	key := p.Durable + "/" + p.Kind.String()
	st, ok := w.parts[key]
	if !ok {
		st = &kindState{kind: p.Kind}
		w.parts[key] = st
	}
	return st
}

func (w *Writer) eachPart(fn func(*kindState)) {
	w.partsMu.Lock()
	defer w.partsMu.Unlock()
	for _, st := range w.parts {
		fn(st)
	}
}

func (w *Writer) prune(ctx context.Context, p Pruner) error {
	t := time.NewTicker(w.cfg.PruneInterval)
	defer t.Stop()
	for {
		before := w.now().Add(-w.cfg.Retention)
		if err := p.Prune(ctx, before); err != nil && ctx.Err() == nil {
			w.log.Warn("prune the store, will try again", zap.Error(err), zap.Duration("interval", w.cfg.PruneInterval))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// State returns since when writes have failed and the last error; err is
// nil while the store takes writes.
func (w *Writer) State() (since time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.up {
		return time.Time{}, nil
	}
	return w.downFrom, w.lastErr
}

// Lag returns how many records are not in the store yet, and how long the
// oldest of them has waited (an upper bound).
func (w *Writer) Lag() (pending uint64, behind time.Duration) {
	now := w.now()
	w.eachPart(func(st *kindState) {
		p := st.pending.Load()
		pending += p
		if p > 0 {
			if b := now.Sub(time.Unix(0, st.oldest.Load())); b > behind {
				behind = b
			}
		}
	})
	return pending, behind
}

// Check is the readiness condition of the store: nil while writes succeed.
func (w *Writer) Check(context.Context) error {
	since, err := w.State()
	if err == nil {
		return nil
	}
	pending, _ := w.Lag()
	return fmt.Errorf("writes failing since %s (%d records wait in the journal): %v",
		since.UTC().Format(time.RFC3339), pending, err)
}

func (w *Writer) setState(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil && !w.up:
		w.log.Info("store takes writes again", zap.Duration("down_for", w.now().Sub(w.downFrom).Round(time.Millisecond)))
		w.up, w.lastErr = true, nil
	case err != nil && w.up:
		w.log.Warn("store write failed; records wait in the journal and are retried", zap.Error(err))
		w.up, w.lastErr, w.downFrom = false, err, w.now()
	case err != nil:
		w.lastErr = err
	}
}

// point is one record of a delivered batch, with its place in the journal.
type point struct {
	msg *journal.Msg
	r   *record.Reading
	h   *record.Handover
}

// Handler returns the journal handler that writes one stream's batches,
// as Run's consumer of that stream does; benchmarks call it directly.
func (w *Writer) Handler(kind record.Kind) journal.Handler {
	return w.handler(w.part(Part{Kind: kind, Durable: ConsumerName}))
}

func (w *Writer) handler(st *kindState) journal.Handler {
	kind := st.kind
	return func(ctx context.Context, msgs []journal.Msg) error {
		last := msgs[len(msgs)-1]
		st.pending.Store(last.Pending + uint64(len(msgs)))
		st.oldest.Store(msgs[0].Stored.UnixNano())

		readings, handovers, errs := decode(kind, msgs)
		pts := make([]point, 0, len(msgs))
		var dead []journal.DeadLetter
		for i := range msgs {
			m := &msgs[i]
			switch {
			case errs[i] != nil:
				// Ingest validated it; only a bug gets here. Keep it out
				// of the way of the rest.
				dead = append(dead, deadLetter(m, "the journal holds a record that does not decode: "+errs[i].Error()))
			case kind == record.KindReading:
				pts = append(pts, point{msg: m, r: &readings[i]})
			default:
				pts = append(pts, point{msg: m, h: &handovers[i]})
			}
		}
		refused, err := w.write(ctx, st, pts)
		if err != nil {
			return err
		}
		for _, p := range refused {
			dead = append(dead, deadLetter(p.msg, "the store refused it: "+p.err.Error()))
		}
		if len(dead) > 0 {
			if err := w.j.DeadLetter(ctx, dead); err != nil {
				return err
			}
			w.m.rejected.With(kind.String()).Add(uint64(len(dead)))
		}
		w.m.points.With(kind.String()).Add(uint64(len(pts) - len(refused)))
		st.pending.Store(last.Pending)
		st.oldest.Store(last.Stored.UnixNano())
		return nil
	}
}

type refusal struct {
	msg *journal.Msg
	err error
}

// write stores pts in order. When the store refuses the batch for good it
// is split in halves, each written in turn, down to the refused points
// alone, which are returned; the others are written (writes are
// idempotent, so a half the store had partly taken is safe to write again).
// A transient error is returned once the retry budget is spent.
func (w *Writer) write(ctx context.Context, st *kindState, pts []point) ([]refusal, error) {
	if len(pts) == 0 {
		return nil, nil
	}
	var b Batch
	for _, p := range pts {
		if p.r != nil {
			b.Readings = append(b.Readings, *p.r)
			b.ReadingsCanonical = append(b.ReadingsCanonical, p.msg.Data)
		} else {
			b.Handovers = append(b.Handovers, *p.h)
		}
	}
	err := w.retry(ctx, st, b)
	switch {
	case err == nil:
		return nil, nil
	case !IsPermanent(err):
		return nil, err
	case len(pts) == 1:
		return []refusal{{msg: pts[0].msg, err: err}}, nil
	}
	mid := len(pts) / 2
	left, err := w.write(ctx, st, pts[:mid])
	if err != nil {
		return nil, err
	}
	right, err := w.write(ctx, st, pts[mid:])
	if err != nil {
		return nil, err
	}
	return append(left, right...), nil
}

// retry writes b until it succeeds, the store refuses it for good, the
// retry budget is spent or ctx ends. A wait the store asked for is kept
// across deliveries: a batch given back and delivered again still waits.
func (w *Writer) retry(ctx context.Context, st *kindState, b Batch) error {
	deadline := w.now().Add(w.budget)
	var err error
	for {
		if wait := st.notBefore.Sub(w.now()); wait > 0 {
			if w.now().Add(wait).After(deadline) {
				// Give the batch back: the journal delivers it again, from
				// the same position, after its own backoff.
				if err == nil {
					_, err = w.State()
				}
				return fmt.Errorf("store: waiting %s before the next write: %w", wait.Round(time.Millisecond), err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		start := time.Now()
		err = w.s.Write(ctx, b)
		w.m.latency.Observe(time.Since(start).Seconds())
		if err == nil || IsPermanent(err) {
			// A refusal is an answer: the store is up.
			w.setState(nil)
			st.backoff, st.notBefore = 0, time.Time{}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.m.failures.Inc()
		w.setState(err)
		st.backoff = min(max(2*st.backoff, 100*time.Millisecond), w.cfg.MaxBackoff)
		wait := st.backoff
		var we *WriteError
		if errors.As(err, &we) && we.RetryAfter > wait {
			wait = min(we.RetryAfter, 5*time.Minute)
		}
		st.notBefore = w.now().Add(wait)
	}
}

// parallelDecode is the batch size from which decode splits the work over
// GOMAXPROCS goroutines: decoding is most of the writer's CPU.
const parallelDecode = 512

// decode parses a batch's canonical records, index for index; errs[i] is
// set for a record that does not decode. Large batches are decoded in
// parallel, and decode returns once every goroutine is done.
func decode(kind record.Kind, msgs []journal.Msg) ([]record.Reading, []record.Handover, []error) {
	var (
		readings  []record.Reading
		handovers []record.Handover
		errs      = make([]error, len(msgs))
	)
	if kind == record.KindReading {
		readings = make([]record.Reading, len(msgs))
	} else {
		handovers = make([]record.Handover, len(msgs))
	}
	part := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if kind == record.KindReading {
				readings[i], errs[i] = record.ParseReading(msgs[i].Data)
			} else {
				handovers[i], errs[i] = record.ParseHandover(msgs[i].Data)
			}
		}
	}
	n := runtime.GOMAXPROCS(0)
	if len(msgs) < parallelDecode || n == 1 {
		part(0, len(msgs))
		return readings, handovers, errs
	}
	var wg sync.WaitGroup
	step := (len(msgs) + n - 1) / n
	for lo := 0; lo < len(msgs); lo += step {
		wg.Go(func() { part(lo, min(lo+step, len(msgs))) })
	}
	wg.Wait()
	return readings, handovers, errs
}

func deadLetter(m *journal.Msg, detail string) journal.DeadLetter {
	return journal.DeadLetter{
		Err: &record.Error{Reason: record.ReasonStoreRejected, Index: -1,
			Detail: fmt.Sprintf("%s %s (journal seq %d): %s", m.Kind, m.ID, m.Seq, detail)},
		Source:   "store:" + m.Subject,
		Received: m.Stored,
		Raw:      m.Data,
	}
}
