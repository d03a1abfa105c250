package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/record"
)

// Msg is one stored record as a consumer sees it.
type Msg struct {
	Kind    record.Kind
	Seq     uint64 // stream sequence: the record's position in the journal
	ID      string // record id ("device:seq" or the handover id)
	Subject string
	Data    []byte    // the canonical encoding
	Stored  time.Time // when JetStream stored it
	// Pending is how many messages the consumer has left after this one.
	Pending uint64
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
	// Batch is the largest batch handed to the handler (default 1,000).
	Batch int
	// MaxWait is how long a fetch waits for the first message (default
	// 500 ms); a shorter wait lowers latency on a quiet stream.
	MaxWait time.Duration
	// OnIdle, if set, is called each time a fetch finds nothing to do:
	// the consumer has caught up with the stream.
	OnIdle func()
}

// Consume runs a durable, ordered, at-least-once consumer of one record
// stream until ctx ends. Every part that derives state from the journal
// (dedup index, store, detector, Merkle logs) reads it this way.
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
	var c jetstream.Consumer
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var err error
		if c == nil {
			c, err = durableConsumer(ctx, s, opts.Durable, opts.Batch)
		}
		if err == nil {
			var n int
			n, err = consumeOnce(ctx, kind, c, opts, h)
			if err == nil {
				backoff = 100 * time.Millisecond
				if n == 0 && opts.OnIdle != nil {
					opts.OnIdle()
				}
				continue
			}
			// Start again from the last acknowledged message.
			c = nil
		}
		if ctx.Err() != nil {
			break
		}
		log.Warn("consumer batch failed, retrying", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	return nil
}

// durableConsumer returns the named durable consumer, restarted from its
// ack floor when messages are pending acknowledgement: a consumer that
// died holding them would otherwise see them only after AckWait, out of
// order. Consumers are idempotent, so starting again from the floor is safe.
func durableConsumer(ctx context.Context, s jetstream.Stream, name string, batch int) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4 * batch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	c, err := s.Consumer(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return s.CreateOrUpdateConsumer(ctx, cfg)
	case err != nil:
		return nil, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.NumAckPending == 0 {
		return c, nil
	}
	if err := s.DeleteConsumer(ctx, name); err != nil {
		return nil, err
	}
	cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	cfg.OptStartSeq = info.AckFloor.Stream + 1
	return s.CreateOrUpdateConsumer(ctx, cfg)
}

func consumeOnce(ctx context.Context, kind record.Kind, c jetstream.Consumer, opts ConsumeOptions, h Handler) (int, error) {
	fetched, err := c.Fetch(opts.Batch, jetstream.FetchMaxWait(opts.MaxWait))
	if err != nil {
		return 0, err
	}
	var (
		batch []Msg
		last  jetstream.Msg
	)
	for m := range fetched.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		last = m
		batch = append(batch, Msg{Kind: kind, Seq: md.Sequence.Stream, ID: m.Headers().Get(jetstream.MsgIDHeader),
			Subject: m.Subject(), Data: m.Data(), Stored: md.Timestamp, Pending: md.NumPending})
	}
	if err := fetched.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	if err := h(ctx, batch); err != nil {
		return 0, err
	}
	// A confirmed ack, so the position is durable before the next fetch
	// and a restart does not redeliver a batch that was handled; it is sent
	// even when ctx ended during the batch (a graceful stop).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := last.DoubleAck(actx); err != nil {
		return 0, fmt.Errorf("ack batch: %w", err)
	}
	return len(batch), nil
}
