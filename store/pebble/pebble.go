// Package pebble is the embedded time-series store, on
// github.com/cockroachdb/pebble/v2 under <data_dir>/store: the default,
// which keeps and serves history with nothing installed.
//
// # Key layout
//
// Every key starts with a one-byte table tag. Ids are 1–64 bytes of
// [A-Za-z0-9_-], so a 0x00 separator after each keeps a shorter id before
// its extensions; times are Unix nanoseconds with the sign bit flipped,
// big-endian, so byte order is time order.
//
//	r shipment 0x00 device 0x00 time(8) seq(8)  → temp_c (float64 bits, 8) ‖ canonical reading
//	h shipment 0x00 time(8) id                  → canonical handover
//	d shipment 0x00 device                      → device summary: first(8) last(8) last seq(8) last temp_c(8)
//
// A device's readings in a time range are one contiguous scan; a
// shipment's are a merge of its devices' scans. Downsampling reads temp_c
// from the first 8 bytes of each value and never decodes the record. The
// key is the reading's identity (device, seq) plus its time, so a record
// written twice is one key, and two readings of a device with the same
// time and different seqs are two keys: both are kept.
package pebble

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/internal/pebblelog"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// Table tags.
const (
	tagReading  = 'r'
	tagHandover = 'h'
	tagDevice   = 'd'
)

// Store is the embedded store. It is safe for concurrent use.
type Store struct {
	db   *pebble.DB
	opts store.Options
	log  *zap.Logger

	// mu guards closed: reads hold it shared, Close exclusively.
	mu     sync.RWMutex
	closed bool
	// wmu serialises writes and pruning, which read-modify-write the
	// device summaries.
	wmu sync.Mutex
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Pruner = (*Store)(nil)
)

// Open opens or creates the store in dir.
func Open(dir string, opts store.Options, log *zap.Logger) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{
		Logger: pebblelog.New(log),
		// Batches of 1,000–5,000 readings of ~200 bytes: a larger memtable
		// flushes less often.
		MemTableSize: 64 << 20,
		// Readings arrive in time order per device, so flushed tables
		// overlap only at their edges: compacting L0 once 8 tables (not
		// 4) are there, into a 512 MiB (not 64 MiB) base level, rewrites
		// each reading fewer times. Batch ingest sustained 268,000
		// instead of 255,000 readings/s over 30 s (docs/PERFORMANCE.md).
		L0CompactionThreshold: 8, L0StopWritesThreshold: 32, LBaseMaxBytes: 512 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", dir, err)
	}
	return &Store{db: db, opts: opts, log: log}, nil
}

// Name returns "embedded".
func (s *Store) Name() string { return store.KindEmbedded }

// Close closes the database; later calls return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// Ping reports whether the store is open.
func (s *Store) Ping(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return nil
}

// ---------------------------------------------------------------- keys

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
}

func decodeTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// prefix returns tag ‖ ids joined and ended by 0x00.
func prefix(tag byte, ids ...string) []byte {
	n := 1
	for _, id := range ids {
		n += len(id) + 1
	}
	b := make([]byte, 0, n+16)
	b = append(b, tag)
	for _, id := range ids {
		b = append(b, id...)
		b = append(b, 0)
	}
	return b
}

// after returns the smallest key greater than every key that starts with p.
func after(p []byte) []byte {
	b := slices.Clone(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

func readingKey(r *record.Reading) []byte {
	k := appendTime(prefix(tagReading, r.Shipment, r.Device), r.Time)
	return binary.BigEndian.AppendUint64(k, r.Seq)
}

// timeBounds returns the key range of p's entries with time in q's range.
func timeBounds(p []byte, q store.Query) (lo, hi []byte) {
	lo, hi = p, after(p)
	if !q.From.IsZero() {
		lo = appendTime(slices.Clip(p), q.From)
	}
	if !q.To.IsZero() {
		hi = appendTime(slices.Clip(p), q.To)
	}
	return lo, hi
}

// summary is one device's part of its shipment's summary.
type summary struct {
	first, last time.Time
	lastSeq     uint64
	lastTemp    float64
}

func (m summary) encode() []byte {
	b := make([]byte, 0, 32)
	b = appendTime(b, m.first)
	b = appendTime(b, m.last)
	b = binary.BigEndian.AppendUint64(b, m.lastSeq)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(m.lastTemp))
}

func decodeSummary(b []byte) (summary, error) {
	if len(b) != 32 {
		return summary{}, fmt.Errorf("device summary of %d bytes, want 32", len(b))
	}
	return summary{first: decodeTime(b), last: decodeTime(b[8:]),
		lastSeq: binary.BigEndian.Uint64(b[16:]), lastTemp: math.Float64frombits(binary.BigEndian.Uint64(b[24:]))}, nil
}

// add folds a reading into the summary; it is idempotent and order-free.
func (m *summary) add(r *record.Reading) {
	if m.first.IsZero() || r.Time.Before(m.first) {
		m.first = r.Time
	}
	if m.last.IsZero() || r.Time.After(m.last) || r.Time.Equal(m.last) && r.Seq >= m.lastSeq {
		m.last, m.lastSeq, m.lastTemp = r.Time, r.Seq, r.TempC
	}
}

func (m *summary) merge(o summary) {
	if m.first.IsZero() || o.first.Before(m.first) {
		m.first = o.first
	}
	if m.last.IsZero() || o.last.After(m.last) || o.last.Equal(m.last) && o.lastSeq >= m.lastSeq {
		m.last, m.lastSeq, m.lastTemp = o.last, o.lastSeq, o.lastTemp
	}
}

// ---------------------------------------------------------------- writes

// Write stores the batch in one atomic, synced Pebble batch.
func (s *Store) Write(ctx context.Context, b store.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()

	pb := s.db.NewBatchWithSize(b.Len() * 256)
	defer pb.Close()
	devices := map[string]*summary{}
	val := make([]byte, 0, 512)
	for i := range b.Readings {
		r := &b.Readings[i]
		val = binary.BigEndian.AppendUint64(val[:0], math.Float64bits(r.TempC))
		if len(b.ReadingsCanonical) == len(b.Readings) {
			val = append(val, b.ReadingsCanonical[i]...)
		} else {
			val = r.AppendCanonical(val)
		}
		if err := pb.Set(readingKey(r), val, nil); err != nil {
			return err
		}
		dk := string(prefix(tagDevice, r.Shipment)) + r.Device
		m := devices[dk]
		if m == nil {
			m = &summary{}
			devices[dk] = m
		}
		m.add(r)
	}
	for dk, m := range devices {
		old, closer, err := s.db.Get([]byte(dk))
		switch {
		case err == nil:
			o, derr := decodeSummary(old)
			closer.Close()
			if derr != nil {
				return derr
			}
			m.merge(o)
		case !errors.Is(err, pebble.ErrNotFound):
			return err
		}
		if err := pb.Set([]byte(dk), m.encode(), nil); err != nil {
			return err
		}
	}
	for i := range b.Handovers {
		h := &b.Handovers[i]
		k := appendTime(prefix(tagHandover, h.Shipment), h.Time)
		k = append(k, h.ID...)
		if err := pb.Set(k, h.AppendCanonical(val[:0]), nil); err != nil {
			return err
		}
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Prune deletes the readings and handovers older than before, by device
// time, and the summaries of devices with nothing left.
func (s *Store) Prune(ctx context.Context, before time.Time) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()

	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagDevice}, UpperBound: []byte{tagDevice + 1}})
	if err != nil {
		return err
	}
	type dev struct {
		key []byte
		m   summary
	}
	var old []dev
	for it.First(); it.Valid(); it.Next() {
		m, err := decodeSummary(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if m.first.Before(before) {
			old = append(old, dev{slices.Clone(it.Key()), m})
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	pruned := 0
	for _, d := range old {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := append([]byte{tagReading}, d.key[1:]...)
		p = append(p, 0)
		if err := s.db.DeleteRange(p, appendTime(slices.Clip(p), before), pebble.Sync); err != nil {
			return err
		}
		if !d.m.last.Before(before) {
			first, err := s.firstTime(p)
			if err != nil {
				return err
			}
			d.m.first = first
			err = s.db.Set(d.key, d.m.encode(), pebble.Sync)
			if err != nil {
				return err
			}
		} else if err := s.db.Delete(d.key, pebble.Sync); err != nil {
			return err
		}
		pruned++
	}
	// Handovers: one range deletion per shipment.
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagHandover}, UpperBound: []byte{tagHandover + 1}})
	if err != nil {
		return err
	}
	var ranges [][2][]byte
	for ok := it.First(); ok; {
		k := it.Key()
		ship := k[1:bytes.IndexByte(k, 0)]
		p := prefix(tagHandover, string(ship))
		if decodeTime(k[len(p):]).Before(before) {
			ranges = append(ranges, [2][]byte{p, appendTime(slices.Clip(p), before)})
		}
		ok = it.SeekGE(after(p))
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, r := range ranges {
		if err := s.db.DeleteRange(r[0], r[1], pebble.Sync); err != nil {
			return err
		}
	}
	if pruned > 0 || len(ranges) > 0 {
		s.log.Info("pruned history older than retention", zap.Time("before", before),
			zap.Int("devices", pruned), zap.Int("shipments_with_handovers", len(ranges)))
	}
	return nil
}

// firstTime returns the time of the first reading under device prefix p.
func (s *Store) firstTime(p []byte) (time.Time, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: after(p)})
	if err != nil {
		return time.Time{}, err
	}
	defer it.Close()
	if !it.First() {
		return time.Time{}, it.Error()
	}
	return decodeTime(it.Key()[len(p):]), nil
}

// ---------------------------------------------------------------- reads

// read runs fn with the store open.
func (s *Store) read(fn func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn()
}

// devices returns the summaries of a shipment's devices (every shipment's
// when ship is ""), keyed by shipment then device, with what retention
// keeps: first raised to the first kept reading, devices with none left
// dropped.
func (s *Store) devices(ship string) (map[string]map[string]summary, error) {
	lo := []byte{tagDevice}
	if ship != "" {
		lo = prefix(tagDevice, ship)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: after(lo)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	cutoff := s.opts.Cutoff()
	out := map[string]map[string]summary{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		i := bytes.IndexByte(k, 0)
		shipID, dev := string(k[1:i]), string(k[i+1:])
		m, err := decodeSummary(it.Value())
		if err != nil {
			return nil, err
		}
		if !cutoff.IsZero() && m.first.Before(cutoff) {
			if m.last.Before(cutoff) {
				continue
			}
			p := prefix(tagReading, shipID, dev)
			first, err := s.firstAtOrAfter(p, cutoff)
			if err != nil {
				return nil, err
			}
			m.first = first
		}
		if out[shipID] == nil {
			out[shipID] = map[string]summary{}
		}
		out[shipID][dev] = m
	}
	return out, it.Error()
}

func (s *Store) firstAtOrAfter(p []byte, t time.Time) (time.Time, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: appendTime(slices.Clip(p), t), UpperBound: after(p)})
	if err != nil {
		return time.Time{}, err
	}
	defer it.Close()
	if !it.First() {
		return time.Time{}, it.Error()
	}
	return decodeTime(it.Key()[len(p):]), nil
}

// handoverCounts counts kept handovers per shipment (every shipment's when
// ship is "").
func (s *Store) handoverCounts(ship string) (map[string]int, error) {
	lo := []byte{tagHandover}
	if ship != "" {
		lo = prefix(tagHandover, ship)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: after(lo)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	cutoff := s.opts.Cutoff()
	out := map[string]int{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		i := bytes.IndexByte(k, 0)
		if !cutoff.IsZero() && decodeTime(k[i+1:]).Before(cutoff) {
			continue
		}
		out[string(k[1:i])]++
	}
	return out, it.Error()
}

func summarise(id string, devs map[string]summary, handovers int) store.Shipment {
	sh := store.Shipment{ID: id, Handovers: handovers}
	for dev, m := range devs {
		sh.Merge(store.Shipment{FirstReading: m.first, LastReading: m.last, LastTempC: m.lastTemp, LastDevice: dev, Devices: 1})
	}
	return sh
}

// Shipments lists every shipment with a kept reading or handover, by id.
func (s *Store) Shipments(ctx context.Context) ([]store.Shipment, error) {
	var out []store.Shipment
	err := s.read(func() error {
		devs, err := s.devices("")
		if err != nil {
			return err
		}
		hos, err := s.handoverCounts("")
		if err != nil {
			return err
		}
		for id, d := range devs {
			out = append(out, summarise(id, d, hos[id]))
		}
		for id, n := range hos {
			if _, ok := devs[id]; !ok {
				out = append(out, summarise(id, nil, n))
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b store.Shipment) int { return strings.Compare(a.ID, b.ID) })
	return out, err
}

// Shipment returns one shipment's summary, or store.ErrUnknownShipment.
func (s *Store) Shipment(ctx context.Context, id string) (store.Shipment, error) {
	var sh store.Shipment
	err := s.read(func() error {
		devs, err := s.devices(id)
		if err != nil {
			return err
		}
		hos, err := s.handoverCounts(id)
		if err != nil {
			return err
		}
		if len(devs[id]) == 0 && hos[id] == 0 {
			return store.ErrUnknownShipment
		}
		sh = summarise(id, devs[id], hos[id])
		return nil
	})
	return sh, err
}

// deviceList returns the devices to scan for q: q.Device, or every device
// of the shipment.
func (s *Store) deviceList(q store.Query) ([]string, error) {
	if q.Device != "" {
		return []string{q.Device}, nil
	}
	p := prefix(tagDevice, q.Shipment)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: after(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()[len(p):]))
	}
	return out, it.Error()
}

// cursor is one device's scan in a merge.
type cursor struct {
	it  *pebble.Iterator
	dev string
	p   int // prefix length: time and seq follow
}

func (c *cursor) time() []byte { return c.it.Key()[c.p:] }

type merge []*cursor

func (m merge) Len() int { return len(m) }
func (m merge) Less(i, j int) bool {
	if c := bytes.Compare(m[i].time()[:8], m[j].time()[:8]); c != 0 {
		return c < 0
	}
	if m[i].dev != m[j].dev {
		return m[i].dev < m[j].dev
	}
	return bytes.Compare(m[i].time()[8:], m[j].time()[8:]) < 0
}
func (m merge) Swap(i, j int) { m[i], m[j] = m[j], m[i] }
func (m *merge) Push(x any)   { *m = append(*m, x.(*cursor)) }
func (m *merge) Pop() any {
	old := *m
	c := old[len(old)-1]
	*m = old[:len(old)-1]
	return c
}

// scan calls fn for every reading of q (retention applied) in time order,
// ties by device then seq, until fn returns false.
func (s *Store) scan(q store.Query, fn func(dev string, key, val []byte) bool) error {
	q = q.Clamp(s.opts.Cutoff())
	devs, err := s.deviceList(q)
	if err != nil {
		return err
	}
	var h merge
	defer func() {
		for _, c := range h {
			c.it.Close()
		}
	}()
	for _, dev := range devs {
		p := prefix(tagReading, q.Shipment, dev)
		lo, hi := timeBounds(p, q)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		if !it.First() {
			err := it.Error()
			it.Close()
			if err != nil {
				return err
			}
			continue
		}
		h = append(h, &cursor{it: it, dev: dev, p: len(p)})
	}
	if len(h) == 1 {
		// One device: no merge.
		c := h[0]
		for ok := true; ok; ok = c.it.Next() {
			if !fn(c.dev, c.it.Key(), c.it.Value()) {
				return nil
			}
		}
		return c.it.Error()
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		if !fn(c.dev, c.it.Key(), c.it.Value()) {
			return nil
		}
		if c.it.Next() {
			heap.Fix(&h, 0)
			continue
		}
		if err := c.it.Error(); err != nil {
			return err
		}
		heap.Pop(&h)
		c.it.Close()
	}
	return nil
}

// Readings returns up to q.Limit readings in device-time order.
func (s *Store) Readings(ctx context.Context, q store.Query) ([]record.Reading, error) {
	var out []record.Reading
	err := s.read(func() error {
		var perr error
		err := s.scan(q, func(_ string, _, val []byte) bool {
			r, err := record.ParseReading(val[8:])
			if err != nil {
				perr = fmt.Errorf("stored reading: %w", err)
				return false
			}
			out = append(out, r)
			return len(out) < q.Limit && ctx.Err() == nil
		})
		if perr != nil {
			return perr
		}
		if err != nil {
			return err
		}
		return ctx.Err()
	})
	return out, err
}

// Downsample returns min, max, mean and count of temp_c per interval of
// length every, aligned on the Unix epoch.
func (s *Store) Downsample(ctx context.Context, q store.Query, every time.Duration) ([]store.Bucket, error) {
	if every <= 0 {
		return nil, errors.New("downsample: every must be positive")
	}
	type acc struct {
		min, max, sum float64
		n             int64
	}
	var (
		starts []int64
		accs         = map[int64]*acc{}
		last   int64 = math.MinInt64
		cur    *acc
		n      int
	)
	step := int64(every)
	err := s.read(func() error {
		err := s.scan(q, func(dev string, key, val []byte) bool {
			ns := int64(binary.BigEndian.Uint64(key[len(key)-16:]) ^ (1 << 63))
			start := ns - ((ns%step)+step)%step
			if start != last || cur == nil {
				cur = accs[start]
				if cur == nil {
					cur = &acc{min: math.Inf(1), max: math.Inf(-1)}
					accs[start] = cur
					starts = append(starts, start)
				}
				last = start
			}
			v := math.Float64frombits(binary.BigEndian.Uint64(val))
			cur.min, cur.max, cur.sum = min(cur.min, v), max(cur.max, v), cur.sum+v
			cur.n++
			n++
			return n%4096 != 0 || ctx.Err() == nil
		})
		if err != nil {
			return err
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(starts)
	out := make([]store.Bucket, 0, len(starts))
	for _, st := range starts {
		a := accs[st]
		out = append(out, store.Bucket{Start: time.Unix(0, st).UTC(), Min: a.min, Max: a.max, Mean: a.sum / float64(a.n), Count: a.n})
	}
	return out, nil
}

// Handovers returns the shipment's kept handovers in time order, ties by id.
func (s *Store) Handovers(ctx context.Context, shipment string) ([]record.Handover, error) {
	var out []record.Handover
	err := s.read(func() error {
		p := prefix(tagHandover, shipment)
		lo, hi := timeBounds(p, store.Query{}.Clamp(s.opts.Cutoff()))
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			h, err := record.ParseHandover(it.Value())
			if err != nil {
				return fmt.Errorf("stored handover: %w", err)
			}
			out = append(out, h)
		}
		return it.Error()
	})
	return out, err
}
