package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

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
	if len(out) < len(entries) {
		return fmt.Errorf("append: %d results for %d entries", len(out), len(entries))
	}
	clear(out[:len(entries)])
	if err := j.lookup(ctx, entries, out); err != nil {
		return err
	}
	received := meta.Received.UTC().Format(time.RFC3339Nano)
	futures := make([]jetstream.PubAckFuture, len(entries))
	// Records appended together are numbered, so a consumer can take a
	// logger's burst whole (ConsumeOptions.Linger).
	parts, part := 0, 0
	for i := range entries {
		if out[i].Outcome == 0 {
			parts++
		}
	}
	total := "/" + strconv.Itoa(parts)
	for i := range entries {
		if out[i].Outcome != 0 {
			continue
		}
		e := &entries[i]
		part++
		m := &nats.Msg{Subject: e.Subject, Data: e.Data, Header: nats.Header{
			jetstream.MsgIDHeader: []string{e.ID},
			HeaderReceived:        []string{received},
			HeaderSource:          []string{meta.Source},
			HeaderPart:            []string{strconv.Itoa(part) + total},
		}}
		f, err := j.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish %s: %w", e.Subject, err)
		}
		futures[i] = f
	}
	var dups []int
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			out[i].Seq = ack.Sequence
			if ack.Duplicate {
				dups = append(dups, i)
				continue
			}
			out[i].Outcome = Stored
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", entries[i].Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// JetStream recognised these ids within its window; compare the bytes
	// it holds to tell a resend from a conflicting record.
	for _, i := range dups {
		m, err := j.streams[entries[i].Kind].GetMsg(ctx, out[i].Seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Aged out since: the id was seen, nothing to compare with.
			out[i].Outcome = Duplicate
		case err != nil:
			return fmt.Errorf("get %s message %d: %w", entries[i].Kind, out[i].Seq, err)
		case record.Digest(m.Data) == record.Digest(entries[i].Data):
			out[i].Outcome = Duplicate
		default:
			out[i].Outcome = Conflict
		}
	}
	return nil
}

// lookup resolves, from the dedup index, the entries that may have been
// stored before JetStream's duplicate window: every handover, and every
// reading at or below its device's indexed watermark.
func (j *Journal) lookup(ctx context.Context, entries []Entry, out []Result) error {
	var g *errgroup.Group
	for i := range entries {
		e := &entries[i]
		switch {
		case e.Kind == record.KindAlert:
			continue // not indexed: see indexedKinds
		case e.Kind == record.KindReading && !j.marks.mayHave(e.Device, e.Seq):
			continue
		}
		if g == nil {
			g, ctx = errgroup.WithContext(ctx)
			g.SetLimit(j.cfg.Lookups)
		}
		g.Go(func() error {
			v, err := j.ids.Get(ctx, indexKey(e.Kind, e.ID))
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				return nil
			case err != nil:
				return fmt.Errorf("look up %s: %w", e.ID, err)
			}
			digest, seq, ok := decodeIndexValue(v.Value())
			if !ok {
				return fmt.Errorf("look up %s: corrupt index value of %d bytes", e.ID, len(v.Value()))
			}
			out[i].Seq = seq
			if digest == record.Digest(e.Data) {
				out[i].Outcome = Duplicate
			} else {
				out[i].Outcome = Conflict
			}
			return nil
		})
	}
	if g == nil {
		return nil
	}
	return g.Wait()
}

// indexKey maps a record id to its key in the ids bucket: "r.<device>.<seq>"
// for a reading (whose id is "<device>:<seq>"), "h.<id>" for a handover.
// Ids are [A-Za-z0-9_-] so the key is always valid.
func indexKey(k record.Kind, id string) string {
	if k == record.KindReading {
		b := []byte("r." + id)
		for i := len(b) - 1; i >= 2; i-- {
			if b[i] == ':' {
				b[i] = '.'
				break
			}
		}
		return string(b)
	}
	return "h." + id
}

// encodeIndexValue is the ids bucket's value: SHA-256 of the canonical
// record, then its stream sequence as 8 big-endian bytes.
func encodeIndexValue(digest [32]byte, seq uint64) []byte {
	b := make([]byte, 40)
	copy(b, digest[:])
	binary.BigEndian.PutUint64(b[32:], seq)
	return b
}

func decodeIndexValue(b []byte) (digest [32]byte, seq uint64, ok bool) {
	if len(b) != 40 {
		return digest, 0, false
	}
	copy(digest[:], b)
	return digest, binary.BigEndian.Uint64(b[32:]), true
}

// Appending is an append under way, started by AppendAsync.
type Appending struct {
	done chan struct{}
	err  error
}

// Wait returns once the append finished, with its error, or when ctx ends
// first (the append itself goes on; the caller must then not acknowledge
// the sender, who sends again and finds the records stored).
func (a *Appending) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AppendAsync starts appending entries and returns at once. Appends
// started one after another by the same caller keep that order in the
// journal, so a transport can acknowledge its messages in the order they
// arrived while several are in flight. out is filled once Wait returns nil.
func (j *Journal) AppendAsync(entries []Entry, meta Meta, out []Result) *Appending {
	a := &Appending{done: make(chan struct{})}
	go func() {
		a.err = j.Append(context.Background(), entries, meta, out)
		close(a.done)
	}()
	return a
}
