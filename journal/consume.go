package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/record"
)

// Msg is one stored record as a consumer sees it.
type Msg struct {
	Kind record.Kind
	// Seq is the record's position in the journal (Position): its chunk's
	// stream sequence and its index in the chunk. Positions grow in journal
	// order.
	Seq     uint64
	ID      string // record id ("device:seq" or the handover id)
	Subject string
	Data    []byte    // the canonical encoding
	Stored  time.Time // when JetStream stored it
	// Pending is about how many records the consumer has left after this
	// one: the rest of its chunk and the messages after it.
	Pending uint64
	// More reports that more records were committed together with this one
	// and follow it (the rest of its chunk, or HeaderPart).
	More bool
}

// unpackMsg appends the records of a stored message to batch, skipping
// those before position from.
func unpackMsg(batch []Msg, kind record.Kind, m jetstream.Msg, md *jetstream.MsgMetadata, from uint64) ([]Msg, error) {
	recs, err := Unpack(m.Headers(), m.Data())
	if err != nil {
		return batch, fmt.Errorf("stream sequence %d: %w", md.Sequence.Stream, err)
	}
	more := moreParts(m.Headers())
	for i, r := range recs {
		pos := Position(md.Sequence.Stream, i)
		if pos < from {
			continue
		}
		left := uint64(len(recs) - 1 - i)
		batch = append(batch, Msg{Kind: kind, Seq: pos, ID: r.ID, Subject: m.Subject(), Data: r.Data,
			Stored: md.Timestamp, Pending: md.NumPending + left, More: left > 0 || more})
	}
	return batch, nil
}

// bursts tracks the groups of chunks committed together (HeaderPart) that
// a batch holds only part of. A group's chunks can be interleaved with
// other messages, so the batch stays open while any group is incomplete,
// unless its last chunk arrived longer than the linger ago.
type bursts struct {
	open map[string]*burst
}

type burst struct {
	left int       // records of the group not seen yet
	last time.Time // when the latest of its records was seen
}

func (b *bursts) add(subject string, h nats.Header, now time.Time) {
	_, n, ok := strings.Cut(h.Get(HeaderPart), "/")
	total, err := strconv.Atoi(n)
	if !ok || err != nil || total < 2 {
		return
	}
	key := subject + "\x00" + h.Get(HeaderReceived)
	if b.open == nil {
		b.open = map[string]*burst{}
	}
	g := b.open[key]
	if g == nil {
		g = &burst{left: total}
		b.open[key] = g
	}
	g.left--
	g.last = now
	if g.left <= 0 {
		delete(b.open, key)
	}
}

// waiting reports whether an incomplete group may still get records.
func (b *bursts) waiting(now time.Time, linger time.Duration) bool {
	for k, g := range b.open {
		if now.Sub(g.last) > linger {
			delete(b.open, k)
		}
	}
	return len(b.open) > 0
}

// moreParts reads HeaderPart: whether records appended together follow.
func moreParts(h nats.Header) bool {
	k, n, ok := strings.Cut(h.Get(HeaderPart), "/")
	if !ok {
		return false
	}
	ki, err1 := strconv.Atoi(k)
	ni, err2 := strconv.Atoi(n)
	return err1 == nil && err2 == nil && ki < ni
}

// Handler processes one batch, in stream order. Returning nil acknowledges
// the whole batch; an error leaves it unacknowledged and the same batch (or
// a longer one starting at the same message) is delivered again after a
// backoff. Handlers must therefore be idempotent.
type Handler func(ctx context.Context, batch []Msg) error

// ConsumeOptions configure Consume.
type ConsumeOptions struct {
	// Durable names the consumer; it keeps its position across restarts.
	Durable string
	// Batch is the most records handed to the handler at once (default
	// 1,000); a chunk is never split, so a batch can exceed it by one
	// chunk's records.
	Batch int
	// MaxWait is how long a fetch waits for the first message (default
	// 500 ms); a shorter wait lowers latency on a quiet stream.
	MaxWait time.Duration
	// OnIdle, if set, is called each time a fetch finds nothing to do:
	// the consumer has caught up with the stream.
	OnIdle func()
	// Linger, when set, keeps a batch open while records appended together
	// with any of its records (a logger's burst) are still to come, waiting
	// at most Linger for each: the burst is then handed over whole instead
	// of split where a fetch ended. A lone reading is not delayed.
	Linger time.Duration
	// Gather, when set, keeps a batch open up to this long after its first
	// message for more to arrive, until it holds Batch records: fewer,
	// larger batches for a handler that pays per batch (a synced write),
	// at the cost of that much latency.
	Gather time.Duration
	// From, when not zero, makes the first run deliver from this position
	// (Position) whatever the consumer's position: a part that restores a
	// snapshot replays the journal from just after it. Later restarts
	// resume from the ack floor as usual.
	From uint64
	// Filter, when set, delivers only the messages whose subject matches
	// it (one partition's readings); the consumer is created with it.
	Filter string
}

// Consume runs a durable, ordered, at-least-once consumer of one record
// stream until ctx ends. Every part that derives state from the journal
// (dedup index, store, detector, Merkle logs) reads it this way.
//
// A batch starts as soon as one message is there and takes whatever else
// has already arrived, up to Batch: a quiet stream is handled message by
// message with low latency, a busy one in large batches.
//
// A previous holder of the consumer that died with messages unacknowledged
// does not delay them: Consume restarts the consumer from its ack floor, so
// delivery stays in stream order without waiting for the ack timeout.
func (j *Journal) Consume(ctx context.Context, kind record.Kind, opts ConsumeOptions, h Handler) error {
	s, ok := j.streams[kind]
	if !ok {
		return fmt.Errorf("consume: no stream for %s", kind)
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 500 * time.Millisecond
	}
	log := j.log.With(zap.String("consumer", opts.Durable), zap.Stringer("kind", kind))
	var r retry
	for ctx.Err() == nil {
		acked, err := j.consumeRun(ctx, kind, s, opts, h)
		opts.From = 0
		if ctx.Err() != nil {
			break
		}
		if acked > 0 {
			r.progressed()
		}
		backoff := r.failed()
		log.Warn("consumer batch failed, retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return nil
}

// consumeStallCheck is how long a consumer stays quiet before it asks
// whether it has stalled.
var consumeStallCheck = 5 * time.Second

// errConsumerStalled says a consumer has messages for this gateway that
// it does not deliver.
var errConsumerStalled = errors.New("the consumer stopped delivering")

// consumerStalled fails with errConsumerStalled when c, which delivered
// nothing for a while, has messages pending or delivered ones this
// gateway never received (its batches are acknowledged before the next
// fetch, so nothing of its own is outstanding). Consume then starts it
// again from its ack floor.
func consumerStalled(ctx context.Context, c jetstream.Consumer) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := c.Info(cctx)
	if err != nil {
		return nil // the server cannot say; the consumer's own errors will
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Errorf("%w: %d messages pending and %d delivered but not received after %s of silence; starting it again",
			errConsumerStalled, info.NumPending, info.NumAckPending, consumeStallCheck)
	}
	return nil
}

// retry is a consumer's backoff between failed runs: 100 ms, doubling up
// to 10 s while runs fail without handling a batch, and back to 100 ms
// once a run has: a consumer that recovered from an outage retries its
// next failure quickly, not after the outage's longest wait.
type retry struct{ last time.Duration }

const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 10 * time.Second
)

// failed returns how long to wait before the next run.
func (r *retry) failed() time.Duration {
	if r.last == 0 {
		r.last = retryFirst
	} else {
		r.last = min(2*r.last, retryMax)
	}
	return r.last
}

// progressed notes that a run handled and acknowledged a batch.
func (r *retry) progressed() { r.last = 0 }

// consumeRun consumes from the ack floor until an error or ctx ends, and
// returns how many batches it acknowledged.
func (j *Journal) consumeRun(ctx context.Context, kind record.Kind, s jetstream.Stream, opts ConsumeOptions, h Handler) (acked int, err error) {
	fromSeq, _ := SplitPosition(opts.From)
	if opts.From > 0 && fromSeq == 0 {
		fromSeq = 1 // a position before the first message
	}
	c, err := durableConsumer(ctx, s, opts.Durable, opts.Filter, opts.Batch, fromSeq)
	if err != nil {
		return 0, err
	}
	it, err := c.Messages(jetstream.PullMaxMessagesWithBytesLimit(2*opts.Batch, 32<<20))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	from := opts.From
	batch := make([]Msg, 0, opts.Batch)
	idleSince := time.Now()
	for ctx.Err() == nil {
		batch = batch[:0]
		m, err := it.Next(jetstream.NextMaxWait(opts.MaxWait))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			if opts.OnIdle != nil {
				opts.OnIdle()
			}
			// A pull consumer on a replicated stream can stop delivering
			// without an error (its pull requests lost with a node that
			// restarted): quiet as a stream without news. Ask it now and
			// then.
			if time.Since(idleSince) >= consumeStallCheck {
				idleSince = time.Now()
				if err := consumerStalled(ctx, c); err != nil {
					return acked, err
				}
			}
			continue
		case err != nil:
			return acked, err
		}
		idleSince = time.Now()
		last := m
		var groups bursts
		gatherUntil := time.Now().Add(opts.Gather)
		for {
			md, err := m.Metadata()
			if err != nil {
				return acked, err
			}
			if batch, err = unpackMsg(batch, kind, m, md, from); err != nil {
				// A message no gateway wrote: skip it, loudly, rather than
				// stop every consumer at it.
				j.log.Error("stored message skipped", zap.String("consumer", opts.Durable), zap.Error(err))
			}
			last = m
			wait, hold := time.Millisecond, false
			now := time.Now()
			if opts.Linger > 0 {
				groups.add(m.Subject(), m.Headers(), now)
				if groups.waiting(now, opts.Linger) {
					wait, hold = opts.Linger, true
				}
			}
			if left := gatherUntil.Sub(now); left > 0 {
				wait, hold = max(wait, left), true
			}
			if len(batch) >= opts.Batch || md.NumPending == 0 && !hold {
				break
			}
			// Take what has arrived, or wait for the rest of a burst.
			if m, err = it.Next(jetstream.NextMaxWait(wait)); err != nil {
				break
			}
		}
		if len(batch) > 0 {
			if err := h(ctx, batch); err != nil {
				return acked, err
			}
		}
		from = 0
		// A confirmed ack, so the position is durable before the next batch
		// and a restart does not redeliver a batch that was handled; it is
		// sent even when ctx ended during the batch (a graceful stop).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = last.DoubleAck(actx)
		cancel()
		if err != nil {
			return acked, fmt.Errorf("ack batch: %w", err)
		}
		acked++
	}
	return acked, nil
}

// durableConsumer returns the named durable consumer, created anew to
// deliver from just after its ack floor: messages held unacknowledged by an
// earlier run, or taken by its leftover pull requests, would otherwise
// come only after AckWait, out of order, or be acknowledged unseen with a
// later message (AckAll). Consumers are idempotent, so starting again from
// the floor is safe. With from set, it delivers from that sequence instead;
// with filter set, only the messages of subjects matching it.
func durableConsumer(ctx context.Context, s jetstream.Stream, name, filter string, batch int, from uint64) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * batch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	c, err := s.Consumer(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if from > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
		}
		return s.CreateOrUpdateConsumer(ctx, cfg)
	case err != nil:
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	// Recreated even with nothing pending: pull requests of an earlier run
	// (a batch that failed, a process that died) can outlive it on the
	// server and take the next messages, unacknowledged, out of order.
	// Deleting the consumer drops them with it.
	start := info.AckFloor.Stream + 1
	if from > 0 {
		start = from
	}
	if err := s.DeleteConsumer(ctx, name); err != nil {
		return nil, err
	}
	cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	cfg.OptStartSeq = start
	return s.CreateOrUpdateConsumer(ctx, cfg)
}

// AckFloor returns the position up to which the named consumer has
// acknowledged everything, 0 when it does not exist yet.
func (j *Journal) AckFloor(ctx context.Context, kind record.Kind, durable string) (uint64, error) {
	info, err := j.consumerInfo(ctx, kind, durable)
	if err != nil || info == nil || info.AckFloor.Stream == 0 {
		return 0, err
	}
	return EndPosition(info.AckFloor.Stream), nil
}

// consumerInfo returns the named consumer's info, nil when it does not
// exist.
func (j *Journal) consumerInfo(ctx context.Context, kind record.Kind, durable string) (*jetstream.ConsumerInfo, error) {
	s, ok := j.streams[kind]
	if !ok {
		return nil, fmt.Errorf("no stream for %s", kind)
	}
	c, err := s.Consumer(ctx, durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// Scan calls fn for every message of a stream whose subject matches
// filter ("" for all), in stream order, up to the end of the stream as it
// was when Scan started. It keeps no position: it is for rebuilding views.
func (j *Journal) Scan(ctx context.Context, kind record.Kind, filter string, fn func(Msg) error) error {
	s, ok := j.streams[kind]
	if !ok {
		return fmt.Errorf("scan: no stream for %s", kind)
	}
	return scanStream(ctx, s, kind, filter, fn)
}

// ReadStream calls fn for every record of the named stream whose subject
// matches filter ("" for all), chunks unpacked, in order, up to the end of
// the stream as it was when ReadStream started. It is for tests and tools
// that check what a stream holds.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream, filter string, fn func(Msg) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	return scanStream(ctx, s, 0, filter, fn)
}

func scanStream(ctx context.Context, s jetstream.Stream, kind record.Kind, filter string, fn func(Msg) error) error {
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	end := info.State.LastSeq
	// An ordered consumer on a replicated stream can stop delivering
	// without an error (seen when its server is busy or its node has just
	// restarted). Rather than take its silence for the end, the scan asks
	// the consumer what it has left and, while something is, starts a new
	// one after the last message read. It gives up, with an error, only
	// after a minute without progress: a partial view must not pass for a
	// whole one.
	var after uint64
	progress := time.Now()
	for {
		done, last, err := scanFrom(ctx, s, kind, filter, after, end, fn)
		if done || err != nil {
			return err
		}
		if last > after {
			after, progress = last, time.Now()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(progress) > scanStallBudget {
			return fmt.Errorf("stream %s: nothing delivered for %s after position %d though it holds messages up to %d; try again", info.Config.Name, scanStallBudget, after, end)
		}
	}
}

// scanStallBudget is how long a scan tries new consumers without reading
// anything before it fails.
var scanStallBudget = time.Minute

// scanSilence is how long a scan's consumer may stay silent before the scan
// asks it what it has left.
var scanSilence = 2 * time.Second

// scanFrom reads the messages after position after with one ordered
// consumer. It reports done when the scan has reached end or the consumer
// has nothing left that matches, and otherwise the last stream sequence it
// read: its consumer stopped delivering and a new one should go on.
func scanFrom(ctx context.Context, s jetstream.Stream, kind record.Kind, filter string, after, end uint64, fn func(Msg) error) (done bool, last uint64, err error) {
	cfg := jetstream.OrderedConsumerConfig{}
	if after > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = after + 1
	}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return false, after, err
	}
	it, err := c.Messages(jetstream.PullMaxMessagesWithBytesLimit(1000, 32<<20))
	if err != nil {
		return false, after, err
	}
	defer it.Stop()
	last = after
	var delivered uint64 // the consumer sequence of the last message read
	for {
		m, err := it.Next(jetstream.NextMaxWait(scanSilence))
		if errors.Is(err, nats.ErrTimeout) {
			return scanQuiet(ctx, c, delivered), last, nil
		}
		if err != nil {
			return false, last, err
		}
		md, err := m.Metadata()
		if err != nil {
			return false, last, err
		}
		recs, err := unpackMsg(nil, kind, m, md, 0)
		if err != nil {
			return false, last, err
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return false, last, err
			}
		}
		last, delivered = md.Sequence.Stream, md.Sequence.Consumer
		if md.NumPending == 0 || last >= end {
			return true, last, nil
		}
	}
}

// scanQuiet tells, for a consumer silent after the message it delivered
// as number delivered, whether it is done (nothing more matches) or
// stalled: it has messages pending, or it delivered some the scan never
// received. (Its delivered stream sequence says nothing: a filtered
// consumer moves it past messages it skips.)
func scanQuiet(ctx context.Context, c jetstream.Consumer, delivered uint64) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ci, err := c.Info(cctx)
	if err != nil {
		return false
	}
	return ci.NumPending == 0 && ci.Delivered.Consumer <= delivered
}

// Pending returns how many messages of kind's stream the named consumer
// has not acknowledged yet (delivered or not), 0 when it does not exist:
// its lag, for GET /v1/cluster.
func (j *Journal) Pending(ctx context.Context, kind record.Kind, durable string) (uint64, error) {
	info, err := j.consumerInfo(ctx, kind, durable)
	if err != nil || info == nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// ReadRange calls fn, in order, for every record of kind's stream whose
// position is above after and at most to: a part that follows another
// part's record of what it applied (the anchor's step log) reads the same
// records again with it. It fails if the stream does not hold position to
// within wait (nothing to read when to <= after).
func (j *Journal) ReadRange(ctx context.Context, kind record.Kind, after, to uint64, fn func(Msg) error) error {
	s, ok := j.streams[kind]
	if !ok {
		return fmt.Errorf("read: no stream for %s", kind)
	}
	if to <= after {
		return nil
	}
	start, _ := SplitPosition(after)
	last, _ := SplitPosition(to)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: max(start, 1)})
	if err != nil {
		return err
	}
	it, err := c.Messages(jetstream.PullMaxMessagesWithBytesLimit(1000, 32<<20))
	if err != nil {
		return err
	}
	defer it.Stop()
	var batch []Msg
	for {
		m, err := it.Next(jetstream.NextMaxWait(30 * time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("stream %s has no record at position %d (sequence %d) after 30 s: it was removed (retention, purge) or the stream is not the one the positions came from", kind, to, last)
		}
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if md.Sequence.Stream > last {
			return fmt.Errorf("stream %s has no record at position %d: sequence %d follows %d", kind, to, md.Sequence.Stream, last)
		}
		if batch, err = unpackMsg(batch[:0], kind, m, md, after+1); err != nil {
			return err
		}
		for _, r := range batch {
			if r.Seq > to {
				break
			}
			if err := fn(r); err != nil {
				return err
			}
			if r.Seq == to {
				return nil
			}
		}
		if md.Sequence.Stream == last {
			return fmt.Errorf("stream %s has no record at position %d: its chunk at sequence %d holds fewer records", kind, to, last)
		}
	}
}
