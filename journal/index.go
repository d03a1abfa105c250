package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/internal/pebblelog"
	"github.com/coldchain/coldchain/record"
)

// The dedup index lives in Pebble under the gateway's data directory. It is
// a view of the record streams, rebuilt from them when lost, and every
// gateway of a cluster keeps its own (docs/EXACTLY-ONCE.md). Layout:
//
//	i<kind><record id>   the record's position (8)
//	d<device>            the device's highest indexed reading seq (8)
//	a<kind>              the last stream sequence indexed (8)
//	s<kind>              the stream's creation time: which stream the index is of
//
// <kind> is one byte: 'r' for readings, 'h' for handovers. Integers are
// big-endian. Index writes are not synced: a crash loses at most a tail of
// the index together with the sequence it reached, and the indexer reads
// that tail again.
const (
	pIndexID      = 'i'
	pIndexDevice  = 'd'
	pIndexApplied = 'a'
	pIndexStream  = 's'
)

// indexedKinds are the record kinds the dedup index covers. Alerts carry
// deterministic ids that JetStream's duplicate window dedups: only records
// that senders resend need the index.
var indexedKinds = []record.Kind{record.KindReading, record.KindHandover}

func kindByte(k record.Kind) byte {
	if k == record.KindReading {
		return 'r'
	}
	return 'h'
}

func idKey(k record.Kind, id string) []byte {
	return append([]byte{pIndexID, kindByte(k)}, id...)
}

func deviceKey(device string) []byte { return append([]byte{pIndexDevice}, device...) }

func appliedKey(k record.Kind) []byte { return []byte{pIndexApplied, kindByte(k)} }

func streamKey(k record.Kind) []byte { return []byte{pIndexStream, kindByte(k)} }

// encodeIndexValue is an id's value: its position. The record itself, to
// tell a resend from a conflict, is read from the stream: that is rare
// (the lanes remember what they stored until the index has it), and keeps
// the index small.
func encodeIndexValue(pos uint64) []byte { return binary.BigEndian.AppendUint64(nil, pos) }

func decodeIndexValue(b []byte) (pos uint64, ok bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// index is the local dedup index and what the indexer reached in it.
type index struct {
	mu sync.RWMutex // held to read for every use of db, to write to close it
	db *pebble.DB

	states map[record.Kind]*indexState
}

// indexState is the indexer's progress on one stream.
type indexState struct {
	applied atomic.Uint64 // last stream sequence indexed
	// target is the stream's last sequence when the journal opened: once
	// applied reaches it, the index holds everything stored before.
	target  uint64
	pending atomic.Uint64
	// oldest is the stream time (Unix ns) of the last indexed message while
	// messages are pending: an upper bound on how long the oldest pending
	// one has waited.
	oldest atomic.Int64

	mu      sync.Mutex
	advance chan struct{} // closed and replaced each time applied grows
}

func (st *indexState) raise(seq uint64) {
	st.applied.Store(seq)
	st.mu.Lock()
	close(st.advance)
	st.advance = make(chan struct{})
	st.mu.Unlock()
}

// wait returns once the index reached stream sequence seq.
func (st *indexState) wait(ctx context.Context, seq uint64) error {
	for {
		st.mu.Lock()
		ch := st.advance
		st.mu.Unlock()
		if st.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the dedup index to reach stream sequence %d (at %d): %w", seq, st.applied.Load(), ctx.Err())
		}
	}
}

// openIndex opens the index under dir and checks it is the index of the
// streams it is given; an index of other streams (the streams were
// deleted and created again, or the data directory moved to another NATS)
// is emptied and rebuilt.
func openIndex(ctx context.Context, dir string, streams map[record.Kind]jetstream.Stream, log *zap.Logger) (*index, error) {
	opts := &pebble.Options{Logger: pebblelog.New(log.Named("pebble")),
		// Every record adds an entry: a large memtable flushes, and so
		// compacts, less often.
		MemTableSize: 64 << 20}
	// Entries are small and their keys share prefixes that the block
	// format already strips: compression would cost CPU for little.
	opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	// No write-ahead log: the index is a view of the streams, and a batch
	// carries the stream sequence it reached. A crash loses the memtable,
	// entries and sequence together, and the indexer reads that part of
	// the streams again.
	opts.DisableWAL = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open dedup index %s: %w", dir, err)
	}
	x := &index{db: db, states: map[record.Kind]*indexState{}}
	stale := false
	infos := map[record.Kind]*jetstream.StreamInfo{}
	for _, k := range indexedKinds {
		info, err := streams[k].Info(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		infos[k] = info
		id := info.Created.UTC().Format(time.RFC3339Nano)
		v, closer, err := db.Get(streamKey(k))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			stale = stale || x.readApplied(k) > 0
		case err != nil:
			db.Close()
			return nil, err
		default:
			stale = stale || string(v) != id
			closer.Close()
		}
		if x.readApplied(k) > info.State.LastSeq {
			stale = true
		}
	}
	if stale {
		log.Warn("dedup index is of other streams (were they deleted?); rebuilding it from the streams", zap.String("dir", dir))
		if err := db.DeleteRange([]byte{0}, []byte{0xff}, pebble.NoSync); err != nil {
			db.Close()
			return nil, err
		}
	}
	b := db.NewBatch()
	for _, k := range indexedKinds {
		st := &indexState{target: infos[k].State.LastSeq, advance: make(chan struct{})}
		st.applied.Store(x.readApplied(k))
		x.states[k] = st
		_ = b.Set(streamKey(k), []byte(infos[k].Created.UTC().Format(time.RFC3339Nano)), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		db.Close()
		return nil, err
	}
	return x, nil
}

func (x *index) readApplied(k record.Kind) uint64 {
	v, closer, err := x.db.Get(appliedKey(k))
	if err != nil {
		return 0
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (x *index) close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.db == nil {
		return nil
	}
	// Without a write-ahead log, only flushed entries survive.
	err := x.db.Flush()
	err = errors.Join(err, x.db.Close())
	x.db = nil
	return err
}

// lookup returns the position an id was indexed with.
func (x *index) lookup(k record.Kind, id string) (pos uint64, found bool, err error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.db == nil {
		return 0, false, ErrClosed
	}
	v, closer, err := x.db.Get(idKey(k, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	pos, ok := decodeIndexValue(v)
	if !ok {
		return 0, false, fmt.Errorf("dedup index: corrupt value of %d bytes for %s", len(v), id)
	}
	return pos, true, nil
}

// deviceMax returns a device's highest indexed reading seq.
func (x *index) deviceMax(device string) (uint64, bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.db == nil {
		return 0, false, ErrClosed
	}
	return x.deviceMaxLocked(device)
}

// indexBatch is how many messages the indexer writes at a time.
const indexBatch = 1000

// Run keeps the dedup index up to date until ctx is done, reading every
// record stream from where the index stands. It returns after its
// goroutines exited.
func (j *Journal) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, kind := range indexedKinds {
		g.Go(func() error {
			backoff := 100 * time.Millisecond
			for {
				started := time.Now()
				err := j.indexStream(ctx, kind)
				if ctx.Err() != nil {
					return nil
				}
				if time.Since(started) > time.Minute {
					// It ran a while: this is a new failure, not the
					// last one again (a node restarted days later).
					backoff = 100 * time.Millisecond
				}
				j.log.Warn("dedup indexer stopped, restarting", zap.Stringer("kind", kind), zap.Error(err), zap.Duration("backoff", backoff))
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
			}
		})
	}
	return g.Wait()
}

// IndexReady reports whether the index holds every record stored before
// the journal opened. Appends wait for that (and the gateway waits for it
// before it takes messages), so a resend of an old record is recognised.
func (j *Journal) IndexReady() bool {
	for _, k := range indexedKinds {
		st := j.idx.states[k]
		if st.applied.Load() < st.target {
			return false
		}
	}
	return true
}

// IndexLag returns the number of messages not yet indexed and an upper
// bound on how long the oldest of them has waited.
func (j *Journal) IndexLag(now time.Time) (pending uint64, behind time.Duration) {
	for _, k := range indexedKinds {
		st := j.idx.states[k]
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

// stallCheck is how long the indexer waits on a silent consumer before
// it asks the stream whether there is more to index.
const stallCheck = 2 * time.Second

// errStalled: the indexer's consumer delivered nothing while the stream
// holds more; Run starts a new one.
var errStalled = errors.New("the dedup indexer's consumer stopped delivering")

// checkStalled fails with errStalled when kind's stream holds messages
// after applied: its consumer has stopped delivering them.
func (j *Journal) checkStalled(ctx context.Context, kind record.Kind, applied uint64) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := j.streams[kind].Info(cctx)
	if err != nil {
		return nil // the stream cannot say; the consumer's own errors will
	}
	if info.State.LastSeq > applied {
		return fmt.Errorf("%w: indexed up to %d, the stream holds %d; starting a new one", errStalled, applied, info.State.LastSeq)
	}
	return nil
}

// indexStream reads one stream from after the index's position with an
// ordered consumer, writing each batch and the position it reached in one
// Pebble batch, until ctx ends or the consumer fails.
func (j *Journal) indexStream(ctx context.Context, kind record.Kind) error {
	st := j.idx.states[kind]
	c, err := j.streams[kind].OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   st.applied.Load() + 1,
	})
	if err != nil {
		return err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(2 * indexBatch))
	if err != nil {
		return err
	}
	// Next does not watch ctx: an ordered consumer whose stream is gone
	// retries inside it until stopped.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		it.Stop()
	}()
	var (
		logged time.Time
		maxSeq = map[string]uint64{}
	)
	idleSince := time.Now()
	for ctx.Err() == nil {
		m, err := it.Next(jetstream.NextMaxWait(500 * time.Millisecond))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			st.pending.Store(0)
			// An ordered consumer whose server went away (a cluster node
			// stopped) can stay silent without an error, which looks like
			// a quiet stream; appends meanwhile wait for the index to
			// reach what they stored. Ask the stream now and then.
			if time.Since(idleSince) >= stallCheck {
				idleSince = time.Now()
				if err := j.checkStalled(ctx, kind, st.applied.Load()); err != nil {
					return err
				}
			}
			continue
		case err != nil:
			return err
		}
		idleSince = time.Now()
		j.idx.mu.RLock()
		if j.idx.db == nil {
			j.idx.mu.RUnlock()
			return ErrClosed
		}
		b := j.idx.db.NewBatch()
		clear(maxSeq)
		var last *jetstream.MsgMetadata
		for n := 0; ; n++ {
			md, err := m.Metadata()
			if err != nil {
				j.idx.mu.RUnlock()
				return err
			}
			j.indexMsg(b, kind, m, md.Sequence.Stream, maxSeq)
			last = md
			if n+1 == indexBatch || md.NumPending == 0 {
				break
			}
			if m, err = it.Next(jetstream.NextMaxWait(time.Millisecond)); err != nil {
				break
			}
		}
		for dev, seq := range maxSeq {
			cur, ok, err := j.idx.deviceMaxLocked(dev)
			if err != nil {
				j.idx.mu.RUnlock()
				return err
			}
			if !ok || seq > cur {
				_ = b.Set(deviceKey(dev), binary.BigEndian.AppendUint64(nil, seq), nil)
			}
		}
		_ = b.Set(appliedKey(kind), binary.BigEndian.AppendUint64(nil, last.Sequence.Stream), nil)
		err = b.Commit(pebble.NoSync)
		j.idx.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("write dedup index: %w", err)
		}
		st.pending.Store(last.NumPending)
		st.oldest.Store(last.Timestamp.UnixNano())
		st.raise(last.Sequence.Stream)
		if st.applied.Load() < st.target && time.Since(logged) > 5*time.Second {
			logged = time.Now()
			j.log.Info("rebuilding the dedup index", zap.Stringer("kind", kind),
				zap.Uint64("at", last.Sequence.Stream), zap.Uint64("of", st.target))
		}
	}
	return nil
}

// indexMsg adds the records of one stored message to b.
func (j *Journal) indexMsg(b *pebble.Batch, kind record.Kind, m jetstream.Msg, seq uint64, maxSeq map[string]uint64) {
	recs, err := Unpack(m.Headers(), m.Data())
	if err != nil {
		j.log.Error("stored message skipped by the dedup indexer", zap.Stringer("kind", kind), zap.Uint64("seq", seq), zap.Error(err))
		return
	}
	for i, r := range recs {
		if r.ID == "" {
			j.log.Warn("record without an id skipped by the dedup indexer", zap.String("subject", m.Subject()), zap.Uint64("seq", seq))
			continue
		}
		_ = b.Set(idKey(kind, r.ID), encodeIndexValue(Position(seq, i)), nil)
		if kind == record.KindReading {
			if dev, s, ok := splitReadingID(r.ID); ok && s >= maxSeq[dev] {
				maxSeq[dev] = s
			}
		}
	}
}

// deviceMaxLocked is deviceMax for a caller holding x.mu.
func (x *index) deviceMaxLocked(device string) (uint64, bool, error) {
	v, closer, err := x.db.Get(deviceKey(device))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("dedup index: corrupt device mark of %d bytes for %s", len(v), device)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// splitReadingID splits "device:seq".
func splitReadingID(id string) (string, uint64, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == ':' {
			var seq uint64
			for _, c := range id[i+1:] {
				if c < '0' || c > '9' {
					return "", 0, false
				}
				seq = seq*10 + uint64(c-'0')
			}
			return id[:i], seq, i+1 < len(id)
		}
	}
	return "", 0, false
}
