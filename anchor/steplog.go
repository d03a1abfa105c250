package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// A Step is one change of the shipment logs, as the step log records it:
// either the records of one stream from one position to another were
// appended (Kind, From, First, To), in stream order, or an epoch was cut (Epoch, Root,
// Cut). Replaying the steps in order over the journal rebuilds the same
// logs, leaf for leaf, on any gateway.
type Step struct {
	Kind record.Kind `json:"-"`
	From uint64      `json:"from,omitempty"` // the stream's last position applied before
	// First is the first position applied: the consumer may start above
	// From (a durable consumer older than the shipment logs, retention).
	First uint64 `json:"first,omitempty"`
	To    uint64 `json:"to,omitempty"` // the last position applied
	// A cut step.
	Epoch uint64      `json:"epoch,omitempty"`
	Root  merkle.Hash `json:"root,omitzero"`
	Cut   time.Time   `json:"cut,omitzero"`
	// By is the member that recorded the step (set by the log).
	By string `json:"by,omitempty"`
}

// MarshalJSON writes the step with its stream by name.
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step // no MarshalJSON: no recursion
	w := struct {
		Stream string `json:"stream,omitempty"`
		plain
	}{plain: plain(s)}
	if s.Kind != 0 {
		w.Stream = s.Kind.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a step written by MarshalJSON.
func (s *Step) UnmarshalJSON(b []byte) error {
	type plain Step
	var w struct {
		Stream string `json:"stream"`
		plain
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Step(w.plain)
	if w.Stream != "" {
		for _, k := range loggedKinds {
			if k.String() == w.Stream {
				s.Kind = k
			}
		}
		if s.Kind == 0 {
			return fmt.Errorf("step of unknown stream %q", w.Stream)
		}
	}
	if (s.Kind == 0) == (s.Epoch == 0) {
		return errors.New("a step either appends records (stream) or cuts an epoch")
	}
	return nil
}

// Sequencer is where the Service records its steps before making them,
// so that another gateway can take over the shipment logs (cluster mode).
type Sequencer interface {
	// Record appends st to the log if its last step is the one at
	// sequence prev (0: the log is empty), and returns st's sequence. It
	// fails with ErrStepConflict if the log has moved on.
	Record(ctx context.Context, prev uint64, st Step) (uint64, error)
	// Steps returns up to limit steps after sequence after, in order;
	// none when the log ends at after.
	Steps(ctx context.Context, after uint64, limit int) ([]SeqStep, error)
	// End returns the sequence of the log's last step (0: empty) and
	// when the log was created, which tells a log started again (reset)
	// from the one a gateway followed.
	End(ctx context.Context) (last uint64, created time.Time, err error)
}

// SeqStep is a step and its sequence in the log.
type SeqStep struct {
	Seq uint64
	Step
}

// ErrStepConflict means another anchorer recorded a step first: this one
// must replay the log before it may record again.
var ErrStepConflict = errors.New("the step log has moved on: another gateway anchored since")

// The step log stream and its subjects (cluster mode): batches applied
// and epochs cut, one stream so that one expected last sequence orders
// both.
const (
	StepStream       = "coldchain_anchor_steps"
	stepSubjects     = "coldchain.cluster.anchor.steps.>"
	stepApplySubject = "coldchain.cluster.anchor.steps.apply"
	stepCutSubject   = "coldchain.cluster.anchor.steps.cut"
)

// StepLog is a Sequencer on a JetStream stream: Record publishes with the
// expected last sequence, so two anchorers can never both extend it from
// the same point.
type StepLog struct {
	js     jetstream.JetStream
	cfg    jetstream.StreamConfig
	member string
}

// OpenStepLog opens the step log stream, creating it with the given
// replicas; member names the steps this gateway records. It keeps every
// step: replaying from the first rebuilds the logs from nothing.
func OpenStepLog(ctx context.Context, js jetstream.JetStream, replicas int, member string) (*StepLog, error) {
	cfg := jetstream.StreamConfig{
		Name: StepStream, Description: "coldchain anchor steps: the order of the shipment logs and their epochs",
		Subjects: []string{stepSubjects}, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		AllowDirect: true,
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("opening the step log stream %s: %w", StepStream, err)
	}
	return &StepLog{js: js, cfg: cfg, member: member}, nil
}

// stream looks the stream up, creating it again if it was deleted
// (reset-steps) since.
func (l *StepLog) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := l.js.Stream(ctx, StepStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = l.js.CreateOrUpdateStream(ctx, l.cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("step log stream %s: %w", StepStream, err)
	}
	return s, nil
}

// Record implements Sequencer.
func (l *StepLog) Record(ctx context.Context, prev uint64, st Step) (uint64, error) {
	st.By = l.member
	b, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	subject := stepApplySubject
	if st.Kind == 0 {
		subject = stepCutSubject
	}
	// A publish whose ack was lost and is retried fails here as a
	// conflict: the replay then finds the step, which is harmless.
	ack, err := l.js.Publish(ctx, subject, b, jetstream.WithExpectLastSequence(prev))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, fmt.Errorf("%w (%v)", ErrStepConflict, err)
	}
	if err != nil {
		return 0, fmt.Errorf("recording an anchor step: %w", err)
	}
	return ack.Sequence, nil
}

// End implements Sequencer.
func (l *StepLog) End(ctx context.Context) (uint64, time.Time, error) {
	s, err := l.stream(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	return info.State.LastSeq, info.Created, nil
}

// LatestCut returns the last epoch cut step; ok is false when none was
// recorded.
func (l *StepLog) LatestCut(ctx context.Context) (st SeqStep, ok bool, err error) {
	s, err := l.stream(ctx)
	if err != nil {
		return SeqStep{}, false, err
	}
	m, err := s.GetLastMsgForSubject(ctx, stepCutSubject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return SeqStep{}, false, nil
	}
	if err != nil {
		return SeqStep{}, false, err
	}
	st.Seq = m.Sequence
	if err := json.Unmarshal(m.Data, &st.Step); err != nil {
		return SeqStep{}, false, fmt.Errorf("step %d of %s: %w", m.Sequence, StepStream, err)
	}
	return st, true, nil
}

// DeleteStepLog deletes the step log stream, for an operator whose
// gateways' shipment logs no longer match it: the next anchorer starts a
// new log from its own logs (docs/CLUSTER.md). It returns whether there
// was one.
func DeleteStepLog(ctx context.Context, js jetstream.JetStream) (bool, error) {
	err := js.DeleteStream(ctx, StepStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Steps implements Sequencer.
func (l *StepLog) Steps(ctx context.Context, after uint64, limit int) ([]SeqStep, error) {
	s, err := l.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	end := min(info.State.LastSeq, after+uint64(max(limit, 1)))
	if end <= after {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1})
	if err != nil {
		return nil, err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(int(end - after)))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	var out []SeqStep
	for {
		m, err := it.Next(jetstream.NextMaxWait(30 * time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("step log %s: no step after %d within 30 s; its last is %d", StepStream, after, end)
		}
		if err != nil {
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		var st Step
		if err := json.Unmarshal(m.Data(), &st); err != nil {
			return nil, fmt.Errorf("step %d of %s: %w", md.Sequence.Stream, StepStream, err)
		}
		out = append(out, SeqStep{Seq: md.Sequence.Stream, Step: st})
		if md.Sequence.Stream >= end {
			return out, nil
		}
	}
}

// EpochCuts reads the cut steps of steps: the last epoch number and how
// many epochs each member cut. It fails if an epoch does not follow the
// one before it, so one error-free call shows one gap-free chain.
func EpochCuts(steps []SeqStep) (last uint64, cutBy map[string]int, err error) {
	cutBy = map[string]int{}
	for _, st := range steps {
		if st.Epoch == 0 {
			continue
		}
		if st.Epoch != last+1 {
			return last, cutBy, fmt.Errorf("step %d cuts epoch %d after epoch %d", st.Seq, st.Epoch, last)
		}
		last = st.Epoch
		cutBy[st.By]++
	}
	return last, cutBy, nil
}
