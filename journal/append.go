package journal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/record"
)

// Entry is one record to append: its canonical bytes and where they go.
type Entry struct {
	Kind    record.Kind
	ID      string // the record id: the JetStream message id and dedup key
	Subject string
	Data    []byte // the canonical encoding
	// Device and Seq are set for readings; they drive the watermark fast
	// path that skips the index lookup for a device's new readings.
	Device string
	Seq    uint64
}

// Outcome says what an append did with one entry.
type Outcome uint8

// Append outcomes.
const (
	// Stored means the record is new and JetStream has stored it.
	Stored Outcome = iota + 1
	// Duplicate means the same record (same id, same bytes) was stored
	// before; nothing was added.
	Duplicate
	// Conflict means a different record with the same id was stored before;
	// nothing was added and the caller dead-letters this one.
	Conflict
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Conflict:
		return "conflict"
	}
	return "unknown"
}

// Result is the outcome of one entry.
type Result struct {
	Outcome Outcome
	// Seq is the stream sequence of the stored record, or of the earlier
	// record for a duplicate or conflict.
	Seq uint64
}

// Meta is the transport context recorded in every message's headers.
type Meta struct {
	Source   string // "mqtt:<topic>" or "http:<path>"
	Received time.Time
}

// Append stores entries exactly once (docs/EXACTLY-ONCE.md) and fills
// out[i] with what happened to entries[i]; out must be as long as entries.
// It returns only after JetStream acknowledged every stored entry. An error
// means some entries may not be stored yet: the call is idempotent, so the
// caller retries it whole.
func (j *Journal) Append(ctx context.Context, entries []Entry, meta Meta, out []Result) error {
	return j.AppendAsync(entries, meta, out).Wait(ctx)
}

// Appending is an append under way, started by AppendAsync.
type Appending struct {
	left atomic.Int32
	mu   sync.Mutex
	err  error
	done chan struct{}
}

func (a *Appending) finish(err error) {
	if err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = err
		}
		a.mu.Unlock()
	}
	if a.left.Add(-1) == 0 {
		close(a.done)
	}
}

// Wait returns once the append finished, with its error, or when ctx ends
// first (the append itself goes on; the caller must then not acknowledge
// the sender, who sends again and finds the records stored).
func (a *Appending) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AppendAsync starts appending entries and returns at once; out is filled
// once Wait returned nil. Records go to their device's (or, for handovers,
// shipment's) lane, which commits what is queued in it as one chunk per
// subject: appends started one after another keep that order in the
// journal, so a transport can keep several messages of a connection in
// flight and still acknowledge them in order.
func (j *Journal) AppendAsync(entries []Entry, meta Meta, out []Result) *Appending {
	a := &Appending{done: make(chan struct{})}
	if len(out) < len(entries) {
		a.err = fmt.Errorf("append: %d results for %d entries", len(out), len(entries))
		close(a.done)
		return a
	}
	clear(out[:len(entries)])
	type group struct {
		l *lane
		p *pending
	}
	var (
		groups []group
		byLane map[*lane]int
		alerts []int
	)
	for i := range entries {
		e := &entries[i]
		if e.Kind == record.KindAlert || e.Kind == record.KindDevice {
			alerts = append(alerts, i)
			continue
		}
		l := j.lane(e)
		g, ok := byLane[l]
		if !ok {
			if byLane == nil {
				byLane = map[*lane]int{}
			}
			g = len(groups)
			byLane[l] = g
			groups = append(groups, group{l: l, p: &pending{out: out, meta: meta, app: a}})
		}
		p := groups[g].p
		p.entries = append(p.entries, *e)
		p.at = append(p.at, i)
	}
	n := len(groups)
	if len(alerts) > 0 {
		n++
	}
	if n == 0 {
		close(a.done)
		return a
	}
	a.left.Store(int32(n))
	for _, g := range groups {
		g.l.enqueue(g.p)
	}
	if len(alerts) > 0 {
		go func() { a.finish(j.appendSingles(j.ctx, entries, alerts, meta, out)) }()
	}
	return a
}

// appendSingles stores the entries at idx one message each, deduplicated
// by JetStream's message ids: the way alerts and device records, whose ids
// are deterministic and which nobody resends after the window, are stored.
func (j *Journal) appendSingles(ctx context.Context, entries []Entry, idx []int, meta Meta, out []Result) error {
	received := meta.Received.UTC().Format(time.RFC3339Nano)
	futures := make([]jetstream.PubAckFuture, len(idx))
	for k, i := range idx {
		e := &entries[i]
		f, err := j.js.PublishMsgAsync(&nats.Msg{Subject: e.Subject, Data: e.Data, Header: nats.Header{
			jetstream.MsgIDHeader: []string{e.ID},
			HeaderReceived:        []string{received},
			HeaderSource:          []string{meta.Source},
		}})
		if err != nil {
			return fmt.Errorf("publish %s: %w", e.Subject, err)
		}
		futures[k] = f
	}
	for k, f := range futures {
		i := idx[k]
		select {
		case ack := <-f.Ok():
			out[i].Seq = Position(ack.Sequence, 0)
			if !ack.Duplicate {
				out[i].Outcome = Stored
				continue
			}
			// JetStream recognised the id within its window; compare the
			// bytes it holds to tell a resend from a conflicting record.
			m, err := j.streams[entries[i].Kind].GetMsg(ctx, ack.Sequence)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				out[i].Outcome = Duplicate // aged out since
			case err != nil:
				return fmt.Errorf("get %s message %d: %w", entries[i].Kind, ack.Sequence, err)
			case record.Digest(m.Data) == record.Digest(entries[i].Data):
				out[i].Outcome = Duplicate
			default:
				out[i].Outcome = Conflict
			}
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", entries[i].Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
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
