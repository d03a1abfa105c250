package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/record"
)

// A lane serialises the appends of one device's readings (or one
// shipment's handovers) in this gateway. Whatever is queued in it while a
// chunk is on its way to JetStream goes out together as the next chunk:
// group commit, so many small messages cost one JetStream message.
//
// The lane decides, record by record, whether a record is new, a resend or
// a conflict. It can because it knows everything stored for its subjects:
// the index holds everything up to a stream sequence, the lane remembers
// what it stored itself since, and JetStream refuses a chunk if anything
// else reached the subject in between (Nats-Expected-Last-Subject-Sequence):
// another gateway of a cluster, say. The lane then learns the subject's new
// tail, waits for the index to reach it, and decides again.
type lane struct {
	j    *Journal
	kind record.Kind
	key  string // device, or the handover subject

	mu      chan struct{} // a one-slot semaphore guarding queue, running and used
	queue   []*pending
	running bool
	used    time.Time // when an append last came

	// Guarded by state, which the goroutine running the lane holds for a
	// round and the sweeper takes when the lane is not busy.
	state  sync.Mutex
	tails  map[string]uint64 // subject → its last stream sequence, when known
	max    uint64            // the device's highest stored reading seq
	loaded bool              // max read from the index
	recent map[string]recentRec
	order  []recentRef // recent in position order, to forget what the index holds
}

type recentRec struct {
	data []byte // the canonical record
	pos  uint64 // 0 while its chunk is on the way
}

type recentRef struct {
	id  string
	pos uint64
}

// pending is one append's share of a lane.
type pending struct {
	entries []Entry
	at      []int // entries[k] is the caller's entry at[k]
	out     []Result
	meta    Meta
	app     *Appending
}

// errWrongLast says another writer appended to a subject since the lane
// last knew it.
var errWrongLast = errors.New("subject changed under the lane")

// errPlaceTaken says JetStream took a chunk for a duplicate of another
// writer's with the same position id.
var errPlaceTaken = errors.New("another writer's chunk has this place")

// maxConflicts bounds how often in a row one round is refused for another
// writer's appends before it fails (and its senders try again later): each
// refusal means someone made progress, so only a position id the server
// holds for a chunk it never stored could keep refusing.
const maxConflicts = 100

func (j *Journal) lane(e *Entry) *lane {
	key := e.Subject
	if e.Kind == record.KindReading && e.Device != "" {
		key = e.Device
	}
	k := laneKey{kind: e.Kind, key: key}
	j.lanesMu.Lock()
	defer j.lanesMu.Unlock()
	l := j.lanes[k]
	if l == nil {
		l = &lane{j: j, kind: e.Kind, key: key, mu: make(chan struct{}, 1),
			tails: map[string]uint64{}, recent: map[string]recentRec{}}
		j.lanes[k] = l
	}
	return l
}

type laneKey struct {
	kind record.Kind
	key  string
}

func (l *lane) lock()   { l.mu <- struct{}{} }
func (l *lane) unlock() { <-l.mu }

func (l *lane) enqueue(p *pending) {
	l.lock()
	l.queue = append(l.queue, p)
	start := !l.running
	l.running = true
	l.used = time.Now()
	l.unlock()
	if start {
		l.j.lanesWG.Add(1)
		go l.run()
	}
}

// run commits what is queued, round after round, until the queue is empty.
func (l *lane) run() {
	defer l.j.lanesWG.Done()
	for {
		l.lock()
		batch := l.queue
		l.queue = nil
		if len(batch) == 0 {
			l.running = false
			l.unlock()
			return
		}
		l.unlock()
		l.state.Lock()
		err := l.commit(l.j.ctx, batch)
		l.state.Unlock()
		for _, p := range batch {
			p.app.finish(err)
		}
	}
}

// item is one entry of a round, and where its result goes.
type item struct {
	e *Entry
	r *Result
}

// commit decides and stores one round's entries. On an error the lane
// forgets the tails of the subjects involved: it cannot tell whether the
// chunk on the way was stored, and learns it again on the next round.
func (l *lane) commit(ctx context.Context, batch []*pending) error {
	st := l.j.idx.states[l.kind]
	if err := st.wait(ctx, st.target); err != nil {
		return err
	}
	l.forgetIndexed(st.applied.Load())
	var (
		items    []item
		subjects []string
		seen     map[string]bool
	)
	for _, p := range batch {
		for k := range p.entries {
			e := &p.entries[k]
			items = append(items, item{e: e, r: &p.out[p.at[k]]})
			if len(subjects) == 0 || subjects[len(subjects)-1] != e.Subject {
				if seen == nil {
					seen = map[string]bool{}
				}
				if !seen[e.Subject] {
					seen[e.Subject] = true
					subjects = append(subjects, e.Subject)
				}
			}
		}
	}
	received := batch[0].meta.Received.UTC().Format(time.RFC3339Nano)
	source := batch[0].meta.Source
	for _, subject := range subjects {
		todo := items
		if len(subjects) > 1 {
			todo = nil
			for _, it := range items {
				if it.e.Subject == subject {
					todo = append(todo, it)
				}
			}
		}
		for conflicts := 0; len(todo) > 0; {
			var err error
			todo, err = l.commitSubject(ctx, subject, todo, received, source)
			switch {
			case err == nil:
			case errors.Is(err, errWrongLast):
				// Another writer got there first: learn the new tail and
				// decide again. Each time, someone made progress.
				l.j.conflicts.Add(1)
				if conflicts++; conflicts >= maxConflicts {
					delete(l.tails, subject)
					return fmt.Errorf("append to %s: refused %d times in a row for other writers' appends", subject, conflicts)
				}
				if conflicts > 3 {
					// A replica answering for the tail may lag the leader.
					time.Sleep(time.Duration(conflicts) * time.Millisecond)
				}
			default:
				delete(l.tails, subject)
				return err
			}
		}
	}
	return nil
}

// commitSubject decides the items of one subject and stores the new ones
// in chunks. With errWrongLast it returns the items still to decide.
func (l *lane) commitSubject(ctx context.Context, subject string, items []item, received, source string) ([]item, error) {
	tail, err := l.tail(ctx, subject)
	if err != nil {
		return items, err
	}
	fresh := make([]item, 0, len(items))
	var echoes []item // resends of a record of this round: their Seq comes once it is stored
	for _, it := range items {
		e := it.e
		if !validChunkLine(e.ID, e.Data) {
			return nil, fmt.Errorf("append %s: an id with a space or line feed, or a record with a line feed, cannot be stored", e.ID)
		}
		if e.Kind == record.KindReading && l.loaded && e.Seq > l.max {
			l.max = e.Seq
		} else if rec, ok := l.recent[e.ID]; ok {
			it.r.Outcome, it.r.Seq = sameOrConflict(rec.data, e.Data), rec.pos
			if rec.pos == 0 {
				echoes = append(echoes, it)
			}
			continue
		} else {
			pos, found, err := l.j.idx.lookup(l.kind, e.ID)
			if err != nil {
				return nil, err
			}
			if found {
				stored, err := l.j.storedRecord(ctx, l.kind, pos)
				if err != nil {
					return nil, err
				}
				it.r.Outcome, it.r.Seq = Duplicate, pos
				if stored != nil {
					it.r.Outcome = sameOrConflict(stored, e.Data)
				}
				continue
			}
			if e.Kind == record.KindReading && e.Seq > l.max {
				l.max = e.Seq
			}
		}
		l.recent[e.ID] = recentRec{data: e.Data}
		fresh = append(fresh, it)
	}

	// Cut the new records into chunks the server takes.
	var cuts []int
	for start := 0; start < len(fresh); {
		size, end := 0, start
		for end < len(fresh) && end-start < MaxChunkRecords {
			n := chunkLineLen(fresh[end].e.ID, fresh[end].e.Data)
			if end > start && size+n > l.j.maxChunk {
				break
			}
			size += n
			end++
		}
		cuts = append(cuts, end)
		start = end
	}
	total := "/" + strconv.Itoa(len(cuts))
	start := 0
	for c, end := range cuts {
		chunk := fresh[start:end]
		size := 0
		for _, it := range chunk {
			size += chunkLineLen(it.e.ID, it.e.Data)
		}
		data := make([]byte, 0, size)
		for _, it := range chunk {
			data = appendChunkLine(data, it.e.ID, it.e.Data)
		}
		m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{
			HeaderRecords:                       []string{strconv.Itoa(len(chunk))},
			HeaderReceived:                      []string{received},
			HeaderSource:                        []string{source},
			HeaderPart:                          []string{strconv.Itoa(c+1) + total},
			jetstream.ExpectedLastSubjSeqHeader: []string{strconv.FormatUint(tail, 10)},
		}}
		if l.j.positionIDs {
			m.Header[jetstream.MsgIDHeader] = []string{positionID(subject, tail)}
		}
		ack, err := l.j.js.PublishMsg(ctx, m)
		if err == nil && ack.Duplicate {
			// Another writer's chunk took this place (positionID): like a
			// wrong last sequence, nothing of this chunk was stored.
			err = errPlaceTaken
		}
		if err != nil {
			// Nothing from this chunk on is stored: forget it was on the
			// way, so the next decision looks again.
			for _, it := range fresh[start:] {
				if rec, ok := l.recent[it.e.ID]; ok && rec.pos == 0 {
					delete(l.recent, it.e.ID)
				}
			}
			var apiErr *jetstream.APIError
			if errors.Is(err, errPlaceTaken) || errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				delete(l.tails, subject)
				rest := append([]item(nil), fresh[start:]...)
				for _, it := range echoes {
					if _, ok := l.recent[it.e.ID]; !ok {
						*it.r = Result{}
						rest = append(rest, it)
					}
				}
				return rest, errWrongLast
			}
			if full(err) {
				return nil, fmt.Errorf("publish %s: %w (%w)", subject, ErrFull, err)
			}
			return nil, fmt.Errorf("publish %s: %w", subject, err)
		}
		tail = ack.Sequence
		l.tails[subject] = tail
		for k, it := range chunk {
			pos := Position(ack.Sequence, k)
			*it.r = Result{Outcome: Stored, Seq: pos}
			l.recent[it.e.ID] = recentRec{data: it.e.Data, pos: pos}
			l.order = append(l.order, recentRef{id: it.e.ID, pos: pos})
		}
		start = end
	}
	for _, it := range echoes {
		it.r.Seq = l.recent[it.e.ID].pos
	}
	return nil, nil
}

// full reports whether err is a stream's refusal of a message for its
// size bound (discard-new policy).
func full(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeStreamStoreFailed &&
		(strings.Contains(apiErr.Description, "maximum bytes") || strings.Contains(apiErr.Description, "maximum messages"))
}

// jsErrCodeStreamStoreFailed is nats-server's JSStreamStoreFailedF, which
// nats.go does not name.
const jsErrCodeStreamStoreFailed jetstream.ErrorCode = 10077

func sameOrConflict(stored, got []byte) Outcome {
	if bytes.Equal(stored, got) {
		return Duplicate
	}
	return Conflict
}

// storedRecord reads the record at pos from the stream; nil when it is no
// longer there (retention removed it: the id was seen, nothing to compare).
func (j *Journal) storedRecord(ctx context.Context, kind record.Kind, pos uint64) ([]byte, error) {
	seq, i := SplitPosition(pos)
	m, err := j.streams[kind].GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s message %d: %w", kind, seq, err)
	}
	recs, err := Unpack(m.Header, m.Data)
	if err != nil {
		return nil, err
	}
	if i >= len(recs) {
		return nil, fmt.Errorf("%w: position %d is past the %d records of message %d", ErrBadChunk, pos, len(recs), seq)
	}
	return recs[i].Data, nil
}

// tail returns the last stream sequence of subject, learning it from the
// stream when the lane does not know it, and then waiting until the index
// holds everything up to it.
func (l *lane) tail(ctx context.Context, subject string) (uint64, error) {
	if t, ok := l.tails[subject]; ok {
		return t, nil
	}
	var seq uint64
	m, err := l.j.streams[l.kind].GetLastMsgForSubject(ctx, subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return 0, fmt.Errorf("last message of %s: %w", subject, err)
	default:
		seq = m.Sequence
	}
	if err := l.j.idx.states[l.kind].wait(ctx, seq); err != nil {
		return 0, err
	}
	// The index now holds everything of the subject up to seq, including
	// what another writer stored there: the device's mark must cover it,
	// or the fast path would take those readings for new ones.
	if l.kind == record.KindReading {
		mark, _, err := l.j.idx.deviceMax(l.key)
		if err != nil {
			return 0, err
		}
		l.max = max(l.max, mark)
		l.loaded = true
	}
	l.tails[subject] = seq
	return seq, nil
}

// laneIdle is how long a lane with nothing to remember stays after its
// last append: a device that sends again within it keeps its lane's state.
const laneIdle = 10 * time.Minute

// sweep runs until ctx ends: every interval it drops from every lane not
// busy what the index now holds (the records' bytes alias the ingested
// messages, which would otherwise stay in memory until the device's next
// append), and forgets lanes idle for longer than idle.
func (j *Journal) sweep(ctx context.Context, interval, idle time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		j.sweepOnce(idle)
	}
}

func (j *Journal) sweepOnce(idle time.Duration) {
	j.lanesMu.Lock()
	lanes := make([]*lane, 0, len(j.lanes))
	for _, l := range j.lanes {
		lanes = append(lanes, l)
	}
	j.lanesMu.Unlock()
	for _, l := range lanes {
		if !l.state.TryLock() {
			continue // in a round: it forgets at the start of the next one
		}
		l.forgetIndexed(j.idx.states[l.kind].applied.Load())
		l.lock()
		if !l.running && len(l.queue) == 0 && len(l.recent) == 0 && time.Since(l.used) > idle {
			j.lanesMu.Lock()
			if j.lanes[laneKey{l.kind, l.key}] == l {
				delete(j.lanes, laneKey{l.kind, l.key})
			}
			j.lanesMu.Unlock()
		}
		l.unlock()
		l.state.Unlock()
	}
}

// forgetIndexed drops what the lane remembers of records the index holds.
func (l *lane) forgetIndexed(applied uint64) {
	n := 0
	for n < len(l.order) && l.order[n].pos>>posShift <= applied {
		ref := l.order[n]
		if rec, ok := l.recent[ref.id]; ok && rec.pos == ref.pos {
			delete(l.recent, ref.id)
		}
		n++
	}
	if n > 0 {
		l.order = append(l.order[:0], l.order[n:]...)
	}
}
