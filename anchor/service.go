// Package anchor keeps a Merkle log per shipment and anchors the logs'
// roots on a chain, one transaction per epoch, and serves proof bundles
// (docs/PROOFS.md).
//
// The per-shipment logs are derived from the journal like every other part:
// through journal.Consume, ordered and at least once. The order of a
// shipment's log is the order in which the Service appended its records,
// fixed by a synced write of the leaves before the journal batch is
// acknowledged. Records of one stream keep their stream order; records of
// the readings and the handovers streams interleave in the order their
// batches were applied. A redelivered batch is recognised by the stream
// sequence, which is kept per stream in the same write as the leaves, so a
// restart never reorders or doubles a leaf.
//
// The chain side is behind the Chain interface (anchor/evm implements it);
// the proof format and its offline verifier are in anchor/bundle.
package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/internal/pebblelog"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// ConsumerName is the durable consumer the Service reads the record streams
// with.
const ConsumerName = "coldchain-anchor"

// loggedKinds are the record streams whose records enter the shipment logs:
// readings, handovers, alert transitions and device records. The leaf is the canonical
// encoding, whose "type" member tells the kinds apart, and the shipment is
// the third token of every record subject.
var loggedKinds = []record.Kind{record.KindReading, record.KindHandover, record.KindAlert, record.KindDevice}

// chainCallTimeout bounds one Submit or Status call.
const chainCallTimeout = 30 * time.Second

// Journal is what the Service needs of the journal.
type Journal interface {
	Consume(ctx context.Context, kind record.Kind, opts journal.ConsumeOptions, h journal.Handler) error
	// ReadRange reads the records above after up to to again, for
	// replaying the step log.
	ReadRange(ctx context.Context, kind record.Kind, after, to uint64, fn func(journal.Msg) error) error
}

var _ Journal = (*journal.Journal)(nil)

// Service keeps the shipment logs, cuts and anchors epochs, and serves
// proofs. Create it with New, run it with Run, and Close it after Run
// returned.
type Service struct {
	cfg   Config
	j     Journal
	chain Chain
	db    *pebble.DB
	dir   string // where db is
	log   *zap.Logger
	now   func() time.Time
	early chan struct{} // size 1: a pending wake-up of the epoch loop

	mu      sync.Mutex // guards the fields below and orders log writes
	ships   map[string]*shipLog
	marks   map[record.Kind]uint64
	pending int // records logged but in no epoch yet
	// seq, when set, records every step before it is made (cluster
	// mode); stepSeq is the last step applied here, and behind is set
	// when the log has steps this service has not applied.
	seq     Sequencer
	stepSeq uint64
	behind  bool
	running bool // Run is running: Standby leaves the logs alone
	// stepLog is when the step log that stepSeq counts in was created.
	stepLog time.Time
	// replayErr is why the logs cannot follow the step log (they differ
	// from it), for Followable.
	replayErr atomic.Pointer[replayFailure]

	// Owned by the epoch loop (Run); read at New.
	last       *epochState   // the latest cut epoch, nil before the first
	unfinished []*epochState // epochs not final, in epoch order
	// unfinishedN is len(unfinished), for the metrics, and lastNumber
	// the latest epoch's number.
	unfinishedN, lastNumber atomic.Int64
	lastRoot                atomic.Pointer[merkle.Hash]
	lastCut                 time.Time
	chainErr                string // last chain error logged, to log each once

	// fileHashes remembers the SHA-256 of checkpoint tables by name and
	// size, for SnapshotLogs (one at a time).
	fileHashes map[string]string

	keys func(device string) []bundle.DeviceKey   // set before Run; nil: bundles carry no keys
	cals func(device string) []bundle.Calibration // set before Run; nil: bundles carry no calibrations
}

// SetDeviceKeys gives the service the registered signing keys of devices,
// which proof bundles carry for their signed readings. Call it before the
// first Proof.
func (s *Service) SetDeviceKeys(keys func(device string) []bundle.DeviceKey) { s.keys = keys }

// SetCalibrations gives the service the calibration records of devices,
// from the device registry, for the bundles it builds. Call it before
// Run; without it bundles carry none.
func (s *Service) SetCalibrations(cals func(device string) []bundle.Calibration) { s.cals = cals }

// SetSequencer makes the service record each step (a journal batch
// applied, an epoch cut) in seq before making it, and replay the steps it
// has not made before it runs (CatchUp): then any gateway can continue the
// shipment logs and the epoch chain (cluster mode, docs/CLUSTER.md). Call
// it before Run.
func (s *Service) SetSequencer(seq Sequencer) { s.seq = seq }

// LastEpoch returns the number and root of the latest epoch cut (0 and the
// zero hash before the first).
func (s *Service) LastEpoch() (uint64, merkle.Hash) {
	var root merkle.Hash
	if r := s.lastRoot.Load(); r != nil {
		root = *r
	}
	return uint64(s.lastNumber.Load()), root
}

type shipLog struct {
	tree     *merkle.Tree
	anchored uint64 // the log's size in the latest epoch that holds it
}

type epochState struct {
	number uint64
	root   merkle.Hash
	status storedStatus
}

// New opens the shipment logs under <dataDir>/anchor, creating them on first
// use, and returns a Service that reads j and anchors through chain. It does
// not start consuming: see Run.
func New(cfg Config, j Journal, chain Chain, dataDir string, log *zap.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if j == nil || chain == nil {
		return nil, errors.New("anchor: journal and chain are required")
	}
	dir := filepath.Join(dataDir, "anchor")
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebblelog.New(log.Named("pebble")),
		// Every record adds a leaf: a large memtable flushes, and so
		// compacts, less often. Leaves are appended per shipment: fewer,
		// larger compactions into a larger base level rewrite each fewer
		// times (as for the embedded store, store/pebble).
		MemTableSize: 64 << 20, L0CompactionThreshold: 8, L0StopWritesThreshold: 32, LBaseMaxBytes: 512 << 20})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	s := &Service{cfg: cfg, j: j, chain: chain, db: db, dir: dir, log: log, now: time.Now, early: make(chan struct{}, 1),
		ships: map[string]*shipLog{}, marks: map[record.Kind]uint64{}}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return s, nil
}

// load reads the in-memory state back: stream positions, each shipment's
// compact tree, and the epochs not yet final.
func (s *Service) load() error {
	for _, k := range loggedKinds {
		v, ok, err := get(s.db, markKey(k))
		if err != nil {
			return err
		}
		if ok && len(v) == 8 {
			s.marks[k] = beUint(v)
		}
	}
	if v, ok, err := get(s.db, stepKey); err != nil {
		return err
	} else if ok && len(v) == 8 {
		s.stepSeq = beUint(v)
	}
	if v, ok, err := get(s.db, stepLogKey); err != nil {
		return err
	} else if ok {
		if s.stepLog, err = time.Parse(time.RFC3339Nano, string(v)); err != nil {
			return fmt.Errorf("step log creation time %q: %w", v, err)
		}
	}
	err := each(s.db, []byte(pShip), false, func(k, v []byte) (bool, error) {
		if len(v) < 8 {
			return false, fmt.Errorf("shipment %q: state of %d bytes", k, len(v))
		}
		l := &shipLog{tree: &merkle.Tree{}, anchored: beUint(v)}
		if err := l.tree.UnmarshalBinary(v[8:]); err != nil {
			return false, fmt.Errorf("shipment %q: %w", k, err)
		}
		s.ships[string(k[len(pShip):])] = l
		s.pending += int(l.tree.Size() - l.anchored)
		return true, nil
	})
	if err != nil {
		return err
	}
	s.lastCut = s.now()
	err = each(s.db, []byte(pEpoch), true, func(k, v []byte) (bool, error) {
		var se storedEpoch
		if err := json.Unmarshal(v, &se); err != nil {
			return false, fmt.Errorf("epoch %x: %w", k, err)
		}
		s.last = &epochState{number: se.Number, root: se.Root}
		s.lastNumber.Store(int64(se.Number))
		s.lastRoot.Store(&se.Root)
		s.lastCut = se.Cut
		return false, nil
	})
	if err != nil {
		return err
	}
	return each(s.db, []byte(pStatus), false, func(k, v []byte) (bool, error) {
		var st storedStatus
		if err := json.Unmarshal(v, &st); err != nil {
			return false, fmt.Errorf("status %x: %w", k, err)
		}
		n := beUint(k[len(pStatus):])
		if s.last != nil && n == s.last.number {
			s.last.status = st
		}
		if st.Receipt.State == StateFinal {
			return true, nil
		}
		se, ok, err := s.storedEpoch(n)
		if err != nil || !ok {
			return false, fmt.Errorf("status of epoch %d without the epoch: %v", n, err)
		}
		es := &epochState{number: n, root: se.Root, status: st}
		if s.last != nil && n == s.last.number {
			es = s.last
		}
		s.unfinished = append(s.unfinished, es)
		s.unfinishedN.Store(int64(len(s.unfinished)))
		return true, nil
	})
}

func beUint(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// RegisterMetrics registers the anchorer's gauges: the records logged but
// in no epoch yet, the epochs cut but not final on chain, and the latest
// epoch's number.
func (s *Service) RegisterMetrics(reg *metrics.Registry) {
	reg.GaugeFunc("coldchain_anchor_pending_records", "Records in the shipment logs that no epoch covers yet.", nil, func() map[string]float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return map[string]float64{"": float64(s.pending)}
	})
	reg.GaugeFunc("coldchain_anchor_epochs_unfinished", "Epochs cut but not yet final on chain (submitted, included, or waiting to be).", nil, func() map[string]float64 {
		return map[string]float64{"": float64(s.unfinishedN.Load())}
	})
	reg.GaugeFunc("coldchain_anchor_epoch", "Number of the latest epoch cut.", nil, func() map[string]float64 {
		return map[string]float64{"": float64(s.lastNumber.Load())}
	})
}

// Close closes the shipment logs. Call it after Run returned.
func (s *Service) Close() error { return s.db.Close() }

// Run appends every record of the journal to its shipment's log, and cuts,
// submits and follows epochs, until ctx ends. Anchoring trouble is logged
// and retried; it never stops the logs. Run returns after its goroutines
// exited.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	if err := s.CatchUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while replaying: not a failure
		}
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, k := range loggedKinds {
		g.Go(func() error {
			return s.j.Consume(ctx, k, journal.ConsumeOptions{Durable: ConsumerName, Batch: s.cfg.Batch, Gather: s.cfg.BatchWait},
				func(ctx context.Context, batch []journal.Msg) error { return s.apply(ctx, k, batch) })
		})
	}
	g.Go(func() error { return s.epochLoop(ctx) })
	return g.Wait()
}

// shipmentOf returns the shipment a record subject names: the third token
// of coldchain.readings.{shipment}.{device}, coldchain.handovers.{shipment}
// and coldchain.alerts.{shipment}.
func shipmentOf(subject string) (string, bool) {
	parts := strings.Split(subject, ".")
	if len(parts) < 3 || parts[0] != "coldchain" || !record.ValidID(parts[2]) {
		return "", false
	}
	return parts[2], true
}

// apply appends a journal batch to the shipment logs in one synced write,
// skipping what an earlier delivery applied. It is what makes the log order
// final: the journal acknowledges the batch only after apply returned. With
// a Sequencer the step is recorded first, and a conflict (another anchorer
// recorded since) fails the batch until the epoch loop has replayed the
// log (catchUp), after which its redelivery is skipped where the log has it.
func (s *Service) apply(ctx context.Context, kind record.Kind, batch []journal.Msg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.behind {
		return ErrStepConflict
	}
	st, err := s.stage(kind, batch)
	if err != nil || st == nil {
		return err
	}
	defer st.b.Close()
	var seq uint64
	if s.seq != nil {
		if seq, err = s.record(ctx, Step{Kind: kind, From: st.from, First: st.first, To: st.mark}); err != nil {
			return err
		}
		if err := st.b.Set(stepKey, be8(seq), nil); err != nil {
			return err
		}
	}
	if err := s.commitStaged(st, pebble.Sync); err != nil {
		return err
	}
	if seq > 0 {
		s.stepSeq = seq
	}
	return nil
}

// record records st after the last step applied here. On a conflict it
// marks the service behind and wakes the epoch loop to replay the log.
func (s *Service) record(ctx context.Context, st Step) (uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, chainCallTimeout)
	defer cancel()
	seq, err := s.seq.Record(cctx, s.stepSeq, st)
	if errors.Is(err, ErrStepConflict) {
		s.behind = true
		select {
		case s.early <- struct{}{}:
		default:
		}
	}
	return seq, err
}

// staged is a journal batch's leaves, written to b but not committed.
type staged struct {
	b          *pebble.Batch
	kind       record.Kind
	from, mark uint64 // the stream's position before and after
	first      uint64 // the first position applied
	trees      map[string]*merkle.Tree
	added      int
}

// stage writes the leaves of the records of batch above the kind's mark
// to a new Pebble batch; it returns nil when there are none. s.mu is held.
func (s *Service) stage(kind record.Kind, batch []journal.Msg) (*staged, error) {
	st := &staged{b: s.db.NewBatch(), kind: kind, from: s.marks[kind], mark: s.marks[kind], trees: map[string]*merkle.Tree{}}
	if err := s.stageInto(st, batch); err != nil || st.mark == st.from {
		st.b.Close()
		return nil, err
	}
	return st, nil
}

func (s *Service) stageInto(st *staged, batch []journal.Msg) error {
	b, trees := st.b, st.trees
	// Leaves first, then the id index: the memtable inserts a batch in
	// order and reuses its position when the next key follows the last, so
	// runs of adjacent keys insert faster than keys alternating between
	// two parts of the key space.
	type idEntry struct {
		key []byte
		i   uint64
	}
	ids := make([]idEntry, 0, len(batch))
	for _, m := range batch {
		// Consume delivers a stream in order, so everything at or below
		// the mark was applied by an earlier delivery of this batch.
		if m.Seq <= st.mark {
			continue
		}
		if st.mark == st.from {
			st.first = m.Seq
		}
		st.mark = m.Seq
		ship, ok := shipmentOf(m.Subject)
		if !ok || m.ID == "" || len(m.Data) == 0 {
			s.log.Warn("journal message skipped: not a record", zap.String("subject", m.Subject), zap.Uint64("seq", m.Seq))
			continue
		}
		t, ok := trees[ship]
		if !ok {
			if l := s.ships[ship]; l != nil {
				t = l.tree.Clone()
			} else {
				t = &merkle.Tree{}
			}
			trees[ship] = t
		}
		i := t.Size()
		h := t.AppendData(m.Data)
		if err := b.Set(leafKey(ship, i), encodeLeaf(h, st.kind, m.Seq, m.ID, m.Data), nil); err != nil {
			return err
		}
		ids = append(ids, idEntry{idKey(ship, m.ID), i})
		st.added++
	}
	for _, e := range ids {
		if err := b.Set(e.key, be8(e.i), nil); err != nil {
			return err
		}
	}
	return nil
}

// commitStaged writes the grown shipments' states and the new mark with
// the staged leaves and makes them the service's.
func (s *Service) commitStaged(st *staged, opts *pebble.WriteOptions) error {
	b := st.b
	for ship, t := range st.trees {
		var anchored uint64
		if l := s.ships[ship]; l != nil {
			anchored = l.anchored
		}
		if err := b.Set(shipKey(ship), shipState(anchored, t), nil); err != nil {
			return err
		}
	}
	if err := b.Set(markKey(st.kind), be8(st.mark), nil); err != nil {
		return err
	}
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("log %d records: %w", st.added, err)
	}
	s.marks[st.kind] = st.mark
	for ship, t := range st.trees {
		if l := s.ships[ship]; l != nil {
			l.tree = t
		} else {
			s.ships[ship] = &shipLog{tree: t}
		}
	}
	s.pending += st.added
	if s.pending >= s.cfg.EarlyRecords {
		select {
		case s.early <- struct{}{}:
		default:
		}
	}
	return nil
}

func shipState(anchored uint64, t *merkle.Tree) []byte {
	state, _ := t.MarshalBinary()
	return append(be8(anchored), state...)
}

func (s *Service) epochLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PollInterval())
	defer t.Stop()
	for {
		s.step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.early:
		}
	}
}

// step moves the epochs on: it submits what is not submitted, asks the
// chain about what is not final, and cuts and submits a new epoch when one
// is due and the previous one is in a block.
func (s *Service) step(ctx context.Context) {
	if s.isBehind() {
		if err := s.CatchUp(ctx); err != nil {
			s.log.Error("replaying the step log", zap.Error(err))
			return
		}
	}
	s.follow(ctx)
	if s.last != nil && s.last.status.Receipt.State < StateIncluded {
		return
	}
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	due := pending > 0 && s.now().Sub(s.lastCut) >= s.cfg.Epoch
	if !due && pending < s.cfg.EarlyRecords {
		return
	}
	if err := s.cut(); err != nil {
		s.log.Error("cut epoch", zap.Error(err))
		return
	}
	s.follow(ctx)
}

// follow submits every unfinished epoch not yet submitted and updates the
// others from Chain.Status, persisting each change.
func (s *Service) follow(ctx context.Context) {
	kept := s.unfinished[:0]
	for _, e := range s.unfinished {
		if ctx.Err() != nil {
			kept = append(kept, e)
			continue
		}
		s.advance(ctx, e)
		if e.status.Receipt.State != StateFinal {
			kept = append(kept, e)
		}
	}
	s.unfinished = kept
	s.unfinishedN.Store(int64(len(kept)))
}

func (s *Service) advance(ctx context.Context, e *epochState) {
	cctx, cancel := context.WithTimeout(ctx, chainCallTimeout)
	defer cancel()
	st := e.status
	if !st.Submitted {
		if err := s.chain.Submit(cctx, e.number, e.root); err != nil {
			s.chainTrouble("submit", e, err)
			return
		}
		st.Submitted = true
		s.log.Info("epoch submitted", zap.Uint64("epoch", e.number), zap.Stringer("root", e.root))
	} else {
		r, err := s.chain.Status(cctx, e.root)
		switch {
		case errors.Is(err, ErrUnknownRoot):
			// The chain lost it (a reset dev chain, a dropped transaction):
			// submit it again.
			s.chainTrouble("status", e, err)
			st.Submitted = false
			st.Receipt = storedReceipt{State: StatePending}
		case err != nil:
			s.chainTrouble("status", e, err)
			return
		default:
			st.Receipt = toStored(r)
		}
	}
	s.chainErr = ""
	if st.Submitted == e.status.Submitted && st.Receipt == e.status.Receipt {
		return
	}
	st.Updated = s.now().UTC()
	raw, _ := json.Marshal(st)
	if err := s.db.Set(statusKey(e.number), raw, pebble.Sync); err != nil {
		s.log.Error("persist epoch status", zap.Uint64("epoch", e.number), zap.Error(err))
		return
	}
	if st.Receipt.State != e.status.Receipt.State && st.Receipt.State >= StateIncluded {
		s.log.Info("epoch "+st.Receipt.State.String(), zap.Uint64("epoch", e.number),
			zap.String("tx", st.Receipt.TxHash), zap.Uint64("block", st.Receipt.Block))
	}
	e.status = st
}

// chainTrouble logs a chain error once until it changes or clears.
func (s *Service) chainTrouble(op string, e *epochState, err error) {
	if msg := op + ": " + err.Error(); msg != s.chainErr {
		s.chainErr = msg
		s.log.Warn("anchoring delayed; records are still logged", zap.String("op", op),
			zap.Uint64("epoch", e.number), zap.Error(err))
	}
}

// cut builds the next epoch over every shipment that grew and persists it,
// with each shipment's entry and new anchored size, in one synced write.
func (s *Service) cut() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.behind {
		return ErrStepConflict
	}
	e, ok := s.nextEpoch()
	if !ok {
		return nil
	}
	now := s.now().UTC()
	var seq uint64
	if s.seq != nil {
		var err error
		seq, err = s.record(context.Background(), Step{Epoch: e.Number, Root: e.Root, Cut: now})
		if err != nil {
			return fmt.Errorf("epoch %d not cut: %w", e.Number, err)
		}
	}
	st := storedStatus{Receipt: storedReceipt{State: StatePending}, Updated: now}
	return s.persistEpoch(e, now, st, seq, pebble.Sync)
}

// nextEpoch returns the epoch over every shipment that grew since the
// last; ok is false when none did. s.mu is held.
func (s *Service) nextEpoch() (e Epoch, ok bool) {
	var entries []Entry
	for ship, l := range s.ships {
		if l.tree.Size() > l.anchored {
			entries = append(entries, Entry{Shipment: ship, Size: l.tree.Size(), Root: l.tree.Root()})
		}
	}
	if len(entries) == 0 {
		return Epoch{}, false
	}
	var number uint64 = 1
	var prev merkle.Hash
	if s.last != nil {
		number, prev = s.last.number+1, s.last.root
	}
	return NewEpoch(number, prev, entries), true
}

// persistEpoch writes epoch e, cut at now, with its shipments' anchored
// sizes and its status (and, when seq is not 0, the step that recorded
// it), and makes it the latest. s.mu is held.
func (s *Service) persistEpoch(e Epoch, now time.Time, st storedStatus, seq uint64, opts *pebble.WriteOptions) error {
	number := e.Number
	se := storedEpoch{Number: number, Prev: e.Prev, Root: e.Root, Cut: now, Entries: make([]storedEntry, len(e.Entries))}
	b := s.db.NewBatch()
	defer b.Close()
	for i, en := range e.Entries {
		se.Entries[i] = storedEntry{Shipment: en.Shipment, Size: en.Size, Root: en.Root}
		ref := anchorRef{index: uint64(i), size: en.Size, root: en.Root, epochRoot: e.Root}
		if err := b.Set(anchorKey(en.Shipment, number), encodeAnchorRef(ref), nil); err != nil {
			return err
		}
		if err := b.Set(shipKey(en.Shipment), shipState(en.Size, s.ships[en.Shipment].tree), nil); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(se)
	if err != nil {
		return err
	}
	rawSt, _ := json.Marshal(st)
	if err := b.Set(epochKey(number), raw, nil); err != nil {
		return err
	}
	if err := b.Set(statusKey(number), rawSt, nil); err != nil {
		return err
	}
	if seq > 0 {
		if err := b.Set(stepKey, be8(seq), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(opts); err != nil {
		return err
	}
	if seq > 0 {
		s.stepSeq = seq
	}
	n := 0
	for _, en := range e.Entries {
		l := s.ships[en.Shipment]
		n += int(en.Size - l.anchored)
		l.anchored = en.Size
	}
	s.pending -= n
	s.last = &epochState{number: number, root: e.Root, status: st}
	s.unfinished = append(s.unfinished, s.last)
	s.unfinishedN.Store(int64(len(s.unfinished)))
	s.lastNumber.Store(int64(number))
	s.lastRoot.Store(&e.Root)
	s.lastCut = now
	s.log.Info("epoch cut", zap.Uint64("epoch", number), zap.Int("shipments", len(e.Entries)),
		zap.Int("records", n), zap.Stringer("root", e.Root))
	return nil
}

func (s *Service) storedEpoch(n uint64) (storedEpoch, bool, error) {
	var se storedEpoch
	ok, err := getJSON(s.db, epochKey(n), &se)
	return se, ok, err
}
