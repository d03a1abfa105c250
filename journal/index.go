package journal

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/record"
)

// watermarks caches each device's highest indexed seq, as the devices
// bucket holds it. Until the bucket's current values are loaded, every
// reading may have been seen; after, a reading above its device's mark
// cannot be in the index, and JetStream's duplicate window covers what the
// indexer has not reached yet (docs/EXACTLY-ONCE.md).
type watermarks struct {
	mu     sync.RWMutex
	m      map[string]uint64
	loaded bool
}

func (w *watermarks) mayHave(device string, seq uint64) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.loaded {
		return true
	}
	mark, ok := w.m[device]
	return ok && seq <= mark
}

func (w *watermarks) get(device string) (uint64, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	v, ok := w.m[device]
	return v, ok
}

func (w *watermarks) raise(device string, seq uint64) {
	w.mu.Lock()
	if cur, ok := w.m[device]; !ok || seq > cur {
		w.m[device] = seq
	}
	w.mu.Unlock()
}

// indexedKinds are the record kinds the dedup index covers.
var indexedKinds = []record.Kind{record.KindReading, record.KindHandover}

// IndexerName is the durable consumer the indexer reads the record streams
// with.
const IndexerName = "coldchain-indexer"

// indexBatch is how many messages the indexer takes at a time.
const indexBatch = 1000

// Run keeps the dedup index and the device watermarks up to date until ctx
// is done: it watches the devices bucket and indexes every record stream
// through a durable consumer. It returns after its goroutines exited.
func (j *Journal) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return j.watchDevices(ctx) })
	// Alerts carry deterministic ids that JetStream's window dedups; only
	// records that senders resend need the index.
	for _, kind := range indexedKinds {
		s := j.streams[kind]
		g.Go(func() error { return j.index(ctx, kind, s) })
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// watchDevices mirrors the devices bucket into the watermarks.
func (j *Journal) watchDevices(ctx context.Context) error {
	for {
		err := j.watchDevicesOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		j.log.Warn("device watermark watch ended, restarting", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (j *Journal) watchDevicesOnce(ctx context.Context) error {
	w, err := j.devices.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop() //nolint:errcheck // Stopping a watcher only unsubscribes.
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				// The initial values are all in.
				j.marks.mu.Lock()
				j.marks.loaded = true
				j.marks.mu.Unlock()
				continue
			}
			if seq, err := strconv.ParseUint(string(e.Value()), 10, 64); err == nil {
				j.marks.raise(e.Key(), seq)
			}
		}
	}
}

// indexState is what Behind reports, per stream.
type indexState struct {
	pending atomic.Uint64
	// oldest is the stream time (Unix ns) of the last indexed message while
	// messages are pending: an upper bound on how long the oldest pending
	// one has waited.
	oldest atomic.Int64
	caught atomic.Bool
}

func (j *Journal) state(kind record.Kind) *indexState {
	j.stateOnce.Do(func() {
		j.states = map[record.Kind]*indexState{record.KindReading: {}, record.KindHandover: {}}
	})
	return j.states[kind]
}

// IndexReady reports whether the watermarks are loaded and the indexer has
// caught up with every record stream once, so the dedup index is complete
// for everything older than JetStream's duplicate window.
func (j *Journal) IndexReady() bool {
	j.marks.mu.RLock()
	loaded := j.marks.loaded
	j.marks.mu.RUnlock()
	return loaded && j.state(record.KindReading).caught.Load() && j.state(record.KindHandover).caught.Load()
}

// IndexLag returns the number of records not yet indexed and an upper
// bound on how long the oldest of them has waited.
func (j *Journal) IndexLag(now time.Time) (pending uint64, behind time.Duration) {
	for _, k := range indexedKinds {
		st := j.state(k)
		p := st.pending.Load()
		pending += p
		if p > 0 {
			if b := now.Sub(time.Unix(0, st.oldest.Load())); b > behind {
				behind = b
			}
		}
	}
	return pending, behind
}

func (j *Journal) index(ctx context.Context, kind record.Kind, s jetstream.Stream) error {
	st := j.state(kind)
	// An indexer that starts with nothing pending is caught up at once.
	if c, err := s.Consumer(ctx, IndexerName); err == nil {
		if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			st.caught.Store(true)
		}
	}
	return j.Consume(ctx, kind, ConsumeOptions{
		Durable: IndexerName,
		Batch:   indexBatch,
		OnIdle: func() {
			st.pending.Store(0)
			st.caught.Store(true)
		},
	}, func(ctx context.Context, batch []Msg) error {
		if err := j.indexBatch(ctx, kind, batch); err != nil {
			return err
		}
		last := batch[len(batch)-1]
		st.pending.Store(last.Pending)
		st.oldest.Store(last.Stored.UnixNano())
		return nil
	})
}

// indexBatch writes the index entries of a batch, then raises the device
// watermarks; the batch is acknowledged only after both, so a crash at any
// point leaves it to be indexed again (index writes are idempotent).
func (j *Journal) indexBatch(ctx context.Context, kind record.Kind, batch []Msg) error {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	maxSeq := map[string]uint64{}
	for _, m := range batch {
		if m.ID == "" {
			j.log.Warn("record without a message id skipped by the indexer", zap.String("subject", m.Subject))
			continue
		}
		f, err := j.js.PublishMsgAsync(&nats.Msg{
			Subject: "$KV." + BucketIDs + "." + indexKey(kind, m.ID),
			Data:    encodeIndexValue(record.Digest(m.Data), m.Seq),
		})
		if err != nil {
			return err
		}
		futures = append(futures, f)
		if kind == record.KindReading {
			if dev, seq, ok := splitReadingID(m.ID); ok && seq >= maxSeq[dev] {
				maxSeq[dev] = seq
			}
		}
	}
	if err := waitAll(ctx, futures); err != nil {
		return err
	}
	// Raise the watermarks only once the index holds every record below
	// them.
	futures = futures[:0]
	for dev, seq := range maxSeq {
		if cur, ok := j.marks.get(dev); ok && cur >= seq {
			continue
		}
		f, err := j.js.PublishMsgAsync(&nats.Msg{
			Subject: "$KV." + BucketDevices + "." + dev,
			Data:    strconv.AppendUint(nil, seq, 10),
		})
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	if err := waitAll(ctx, futures); err != nil {
		return err
	}
	for dev, seq := range maxSeq {
		j.marks.raise(dev, seq)
	}
	return nil
}

func waitAll(ctx context.Context, futures []jetstream.PubAckFuture) error {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// splitReadingID splits "device:seq".
func splitReadingID(id string) (string, uint64, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == ':' {
			seq, err := strconv.ParseUint(id[i+1:], 10, 64)
			return id[:i], seq, err == nil
		}
	}
	return "", 0, false
}
