package anchor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// replayWindow is how many steps are replayed with one read per stream:
// at most this many journal batches' records are held at once.
const replayWindow = 128

// ErrLogsDiffer means this gateway's shipment logs are not the ones the
// step log describes: they cannot follow it, and it may not anchor.
var ErrLogsDiffer = errors.New("this gateway's shipment logs differ from the cluster's step log")

func (s *Service) isBehind() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behind
}

// Followable returns why the shipment logs cannot follow the step log
// (ErrLogsDiffer), nil when they can or when there is no step log: a
// gateway whose logs cannot follow must not take over anchoring.
func (s *Service) Followable() error {
	if f := s.replayErr.Load(); f != nil {
		return f.err
	}
	return nil
}

// replayFailure is why the logs cannot follow the step log created at
// log.
type replayFailure struct {
	err error
	log time.Time
}

// CatchUp replays the steps of the step log this service has not made,
// reading their records from the journal again: the logs and epochs end
// up as those of the anchorer that recorded the steps, leaf for leaf.
// Epochs replayed are taken as submitted: the epoch loop asks the chain
// about them and submits again those it does not know. Call it when Run is
// not running (Run calls it first); without a Sequencer it does nothing.
func (s *Service) CatchUp(ctx context.Context) error { return s.catchUp(ctx, false) }

// Standby keeps the shipment logs close to the step log while another
// gateway anchors: every interval, unless Run is running here, it replays
// the steps recorded since, so that a takeover replays only the last few.
// It returns when ctx ends; trouble is logged and retried.
func (s *Service) Standby(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.catchUp(ctx, true)
		if msg := fmt.Sprint(err); err != nil && msg != last && ctx.Err() == nil {
			s.log.Warn("standby: replaying the step log", zap.Error(err))
		}
		last = fmt.Sprint(err)
	}
}

func (s *Service) catchUp(ctx context.Context, standby bool) error {
	if s.seq == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if standby && s.running {
		return nil
	}
	end, created, err := s.seq.End(ctx)
	if err != nil {
		return fmt.Errorf("reading the step log: %w", err)
	}
	if f := s.replayErr.Load(); f != nil {
		if f.log.Equal(created) {
			return f.err
		}
		s.replayErr.Store(nil) // a new log: these logs may start it
	}
	if !created.Equal(s.stepLog) {
		if s.stepSeq > 0 {
			// Deleted (coldchain cluster reset-steps) or lost: these
			// logs may start the new one, if this gateway records first;
			// if another did, the replay tells whether they can follow.
			s.log.Warn("the step log was started again since these shipment logs followed it",
				zap.Time("log_created", created), zap.Uint64("applied_of_old_log", s.stepSeq), zap.Uint64("new_log_end", end))
		}
		b := s.db.NewBatch()
		err := errors.Join(b.Set(stepKey, be8(0), nil), b.Set(stepLogKey, []byte(created.UTC().Format(time.RFC3339Nano)), nil), b.Commit(pebble.Sync))
		b.Close()
		if err != nil {
			return err
		}
		s.stepSeq, s.stepLog = 0, created
	}
	start, began := s.stepSeq, time.Now()
	records, epochs := 0, 0
	progress := time.Now()
	for ctx.Err() == nil {
		steps, err := s.seq.Steps(ctx, s.stepSeq, replayWindow)
		if err != nil {
			return fmt.Errorf("reading the step log after step %d: %w", s.stepSeq, err)
		}
		if len(steps) == 0 {
			break
		}
		n, m, err := s.replay(ctx, steps)
		records, epochs = records+n, epochs+m
		if errors.Is(err, ErrLogsDiffer) {
			s.replayErr.Store(&replayFailure{err: err, log: created})
		}
		if err != nil {
			return err
		}
		if time.Since(progress) > 5*time.Second {
			progress = time.Now()
			s.log.Info("replaying the step log", zap.Uint64("step", s.stepSeq), zap.Int("records", records), zap.Int("epochs", epochs))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.stepSeq > start {
		// Replayed batches are written without a sync; the log has them
		// all, so a crash loses only what is replayed again.
		if err := s.db.LogData(nil, pebble.Sync); err != nil {
			return err
		}
		s.log.Info("shipment logs caught up with the step log", zap.Uint64("from_step", start), zap.Uint64("to_step", s.stepSeq),
			zap.Int("records", records), zap.Int("epochs", epochs), zap.Duration("took", time.Since(began)))
	}
	s.behind = false
	return nil
}

// replay applies a window of steps in order, with one read per stream for
// the records of all its batches. s.mu is held.
func (s *Service) replay(ctx context.Context, steps []SeqStep) (records, epochs int, err error) {
	type span struct{ from, to uint64 }
	spans := map[record.Kind]*span{}
	for _, st := range steps {
		if st.Kind == 0 {
			continue
		}
		if st.First <= st.From || st.First > st.To {
			return records, epochs, fmt.Errorf("step %d appends %s records from position %d to %d after %d: not a valid step", st.Seq, st.Kind, st.First, st.To, st.From)
		}
		if sp := spans[st.Kind]; sp == nil {
			spans[st.Kind] = &span{st.First - 1, st.To}
		} else {
			sp.to = max(sp.to, st.To)
		}
	}
	recs := map[record.Kind][]journal.Msg{}
	for k, sp := range spans {
		err := s.j.ReadRange(ctx, k, sp.from, sp.to, func(m journal.Msg) error {
			recs[k] = append(recs[k], m)
			return nil
		})
		if err != nil {
			return records, epochs, fmt.Errorf("reading %s records %d..%d for the step log: %w", k, sp.from, sp.to, err)
		}
	}
	for _, st := range steps {
		if st.Kind == 0 {
			if err := s.replayCut(st); err != nil {
				return records, epochs, err
			}
			epochs++
			continue
		}
		if s.marks[st.Kind] != st.From {
			return records, epochs, fmt.Errorf("%w: step %d appends %s records after position %d, these logs end at %d (docs/CLUSTER.md)",
				ErrLogsDiffer, st.Seq, st.Kind, st.From, s.marks[st.Kind])
		}
		// Records between the previous step and First were never
		// delivered to the anchorer that recorded the step.
		msgs := recs[st.Kind]
		for len(msgs) > 0 && msgs[0].Seq < st.First {
			msgs = msgs[1:]
		}
		n := 0
		for n < len(msgs) && msgs[n].Seq <= st.To {
			n++
		}
		recs[st.Kind] = msgs[n:]
		staged, err := s.stage(st.Kind, msgs[:n])
		if err != nil {
			return records, epochs, err
		}
		if staged == nil || staged.first != st.First || staged.mark != st.To {
			if staged != nil {
				staged.b.Close()
			}
			return records, epochs, fmt.Errorf("step %d appends %s records %d..%d, the journal holds fewer", st.Seq, st.Kind, st.From, st.To)
		}
		err = staged.b.Set(stepKey, be8(st.Seq), nil)
		if err == nil {
			err = s.commitStaged(staged, pebble.NoSync)
		}
		staged.b.Close()
		if err != nil {
			return records, epochs, err
		}
		s.stepSeq = st.Seq
		records += staged.added
	}
	return records, epochs, nil
}

// replayCut cuts the epoch a step recorded, and checks it is the same.
func (s *Service) replayCut(st SeqStep) error {
	e, ok := s.nextEpoch()
	want := st.Root
	if !ok || e.Number != st.Epoch || e.Root != want {
		var n uint64
		if s.last != nil {
			n = s.last.number
		}
		return fmt.Errorf("%w: step %d cuts epoch %d with root %s, these logs are at epoch %d and would cut %s",
			ErrLogsDiffer, st.Seq, st.Epoch, want, n, e.Root)
	}
	status := storedStatus{Submitted: true, Receipt: storedReceipt{State: StatePending}, Updated: s.now().UTC()}
	return s.persistEpoch(e, st.Cut, status, st.Seq, pebble.NoSync)
}
