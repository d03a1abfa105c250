package anchor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/internal/pebblelog"
	"github.com/coldchain/coldchain/merkle"
)

// SnapshotStore keeps snapshots of the shipment logs where a gateway with
// none can fetch them (cluster mode: the cluster's object store,
// cluster.Snapshots). Open fails with an error that is fs.ErrNotExist
// when there is no object name; Delete of one that is not there succeeds.
type SnapshotStore interface {
	Put(ctx context.Context, name string, r io.Reader) error
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, name string) error
}

// The objects of a snapshot: its manifest, and the files of a Pebble
// checkpoint of the logs, named by their SHA-256 so that a file that did
// not change since the last snapshot (most of the tables) is stored once.
const (
	logManifestName = "anchor/manifest"
	logFilePrefix   = "anchor/file/"
)

// LogSnapshot is the manifest of one snapshot of the shipment logs: a
// Pebble checkpoint of the logs after step Step of the step log created
// at StepLog.
type LogSnapshot struct {
	Step      uint64         `json:"step"`
	StepLog   time.Time      `json:"step_log"`
	Epoch     uint64         `json:"epoch"`
	EpochRoot merkle.Hash    `json:"epoch_root"`
	Records   uint64         `json:"records"`
	Member    string         `json:"member"`
	Taken     time.Time      `json:"taken"`
	Files     []SnapshotFile `json:"files"`
}

// SnapshotFile is one file of a snapshot's checkpoint.
type SnapshotFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func (m *LogSnapshot) bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// ReadLogSnapshot returns the manifest of the latest snapshot; ok is false
// when there is none.
func ReadLogSnapshot(ctx context.Context, store SnapshotStore) (m LogSnapshot, ok bool, err error) {
	r, err := store.Open(ctx, logManifestName)
	if errors.Is(err, fs.ErrNotExist) {
		return LogSnapshot{}, false, nil
	}
	if err != nil {
		return LogSnapshot{}, false, err
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return LogSnapshot{}, false, fmt.Errorf("the shipment-log snapshot manifest is unreadable: %w", err)
	}
	return m, true, nil
}

// SnapshotLogs stores a snapshot of the shipment logs in store, unless the
// latest one there is of the same step (nothing changed) or there is no
// step log. Only files the store does not hold yet are uploaded, and the
// files that neither this snapshot nor the one before it uses are deleted
// (a gateway may still be restoring that one). Call it while this service
// anchors.
func (s *Service) SnapshotLogs(ctx context.Context, store SnapshotStore, member string) (LogSnapshot, bool, error) {
	if s.seq == nil {
		return LogSnapshot{}, false, nil
	}
	prev, hadPrev, err := ReadLogSnapshot(ctx, store)
	if err != nil {
		return LogSnapshot{}, false, err
	}
	began := time.Now()
	dir := s.dir + ".snapshot"
	if err := os.RemoveAll(dir); err != nil {
		return LogSnapshot{}, false, err
	}
	defer os.RemoveAll(dir)

	// Flush the memtable first, without holding up the anchorer: the
	// checkpoint then holds tables and a short WAL (a WAL is copied whole
	// into every snapshot).
	if err := s.db.Flush(); err != nil {
		return LogSnapshot{}, false, fmt.Errorf("flushing the shipment logs: %w", err)
	}
	s.mu.Lock()
	m := LogSnapshot{Step: s.stepSeq, StepLog: s.stepLog, Member: member, Taken: s.now().UTC()}
	if m.Step == 0 || (hadPrev && prev.Step == m.Step && prev.StepLog.Equal(m.StepLog)) {
		s.mu.Unlock()
		return prev, false, nil
	}
	if s.last != nil {
		m.Epoch, m.EpochRoot = s.last.number, s.last.root
	}
	for _, l := range s.ships {
		m.Records += l.tree.Size()
	}
	// The checkpoint is the logs at this step: no batch is applied while
	// the lock is held (hard links and a copy of the short WAL).
	err = s.db.Checkpoint(dir, pebble.WithFlushedWAL())
	s.mu.Unlock()
	if err != nil {
		return LogSnapshot{}, false, fmt.Errorf("checkpoint of the shipment logs: %w", err)
	}

	stored, err := store.List(ctx, logFilePrefix)
	if err != nil {
		return LogSnapshot{}, false, err
	}
	have := map[string]bool{}
	for _, name := range stored {
		have[strings.TrimPrefix(name, logFilePrefix)] = true
	}
	var uploaded int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		f, err := s.hashFile(path, d)
		if err != nil {
			return err
		}
		f.Path = filepath.ToSlash(rel)
		m.Files = append(m.Files, f)
		if have[f.SHA256] {
			return nil
		}
		r, err := os.Open(path)
		if err != nil {
			return err
		}
		defer r.Close()
		if err := store.Put(ctx, logFilePrefix+f.SHA256, r); err != nil {
			return fmt.Errorf("storing %s of the shipment-log snapshot: %w", f.Path, err)
		}
		have[f.SHA256] = true
		uploaded += f.Size
		return nil
	})
	if err != nil {
		return LogSnapshot{}, false, err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return LogSnapshot{}, false, err
	}
	if err := store.Put(ctx, logManifestName, strings.NewReader(string(raw))); err != nil {
		return LogSnapshot{}, false, fmt.Errorf("storing the shipment-log snapshot manifest: %w", err)
	}
	keep := map[string]bool{}
	for _, f := range slices.Concat(m.Files, prev.Files) {
		keep[f.SHA256] = true
	}
	deleted := 0
	for name := range have {
		if !keep[name] {
			if err := store.Delete(ctx, logFilePrefix+name); err != nil {
				s.log.Warn("deleting an unused file of an older shipment-log snapshot", zap.String("object", name), zap.Error(err))
				continue
			}
			deleted++
		}
	}
	s.log.Info("shipment-log snapshot stored", zap.Uint64("step", m.Step), zap.Uint64("epoch", m.Epoch), zap.Uint64("records", m.Records),
		zap.Int("files", len(m.Files)), zap.Int64("bytes", m.bytes()), zap.Int64("uploaded_bytes", uploaded),
		zap.Int("deleted_files", deleted), zap.Duration("took", time.Since(began)))
	return m, true, nil
}

// hashFile returns a checkpoint file's size and SHA-256. Tables and blob
// files never change once written: their hashes are remembered by name
// and size, so a snapshot reads only the files that are new since the last.
func (s *Service) hashFile(path string, d fs.DirEntry) (SnapshotFile, error) {
	info, err := d.Info()
	if err != nil {
		return SnapshotFile{}, err
	}
	immutable := strings.HasSuffix(path, ".sst") || strings.HasSuffix(path, ".blob")
	key := fmt.Sprintf("%s/%d", d.Name(), info.Size())
	if immutable {
		if h, ok := s.fileHashes[key]; ok {
			return SnapshotFile{SHA256: h, Size: info.Size()}, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return SnapshotFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return SnapshotFile{}, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if immutable {
		if s.fileHashes == nil {
			s.fileHashes = map[string]string{}
		}
		s.fileHashes[key] = sum
	}
	return SnapshotFile{SHA256: sum, Size: info.Size()}, nil
}

// RestoreLogs gives a gateway without shipment logs (a new member, or one
// whose data dir was lost) the cluster's latest snapshot of them, so that
// it replays only the steps after it instead of the whole step log. It
// does nothing when <dataDir>/anchor exists or there is no snapshot of the
// current step log. Every file is checked against its SHA-256, and every
// shipment log against its leaves (verifyLogs) before the logs are put in
// place. Call it before New.
func RestoreLogs(ctx context.Context, store SnapshotStore, seq Sequencer, dataDir string, log *zap.Logger) (LogSnapshot, bool, error) {
	dir := filepath.Join(dataDir, "anchor")
	if _, err := os.Stat(dir); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return LogSnapshot{}, false, err
	}
	var lastErr error
	// A snapshot taken while this one downloads may delete its files:
	// then start again from the newer one.
	for range 3 {
		m, ok, err := ReadLogSnapshot(ctx, store)
		if err != nil || !ok {
			return LogSnapshot{}, false, err
		}
		last, created, err := seq.End(ctx)
		if err != nil {
			return LogSnapshot{}, false, fmt.Errorf("reading the step log: %w", err)
		}
		if !created.Equal(m.StepLog) || m.Step > last {
			log.Info("the shipment-log snapshot is of an earlier step log: not used", zap.Time("snapshot_step_log", m.StepLog),
				zap.Time("step_log", created), zap.Uint64("snapshot_step", m.Step), zap.Uint64("step_log_end", last))
			return LogSnapshot{}, false, nil
		}
		began := time.Now()
		log.Info("restoring the cluster's shipment-log snapshot", zap.Uint64("step", m.Step), zap.Uint64("epoch", m.Epoch),
			zap.Uint64("records", m.Records), zap.Int64("bytes", m.bytes()), zap.String("taken_by", m.Member), zap.Time("taken", m.Taken))
		tmp := dir + ".restoring"
		err = restoreInto(ctx, store, &m, tmp, log)
		if err == nil {
			err = os.Rename(tmp, dir)
		}
		if err == nil {
			log.Info("shipment logs restored from the snapshot; replaying the steps after it", zap.Uint64("step", m.Step),
				zap.Duration("took", time.Since(began)))
			return m, true, nil
		}
		_ = os.RemoveAll(tmp)
		if !errors.Is(err, fs.ErrNotExist) {
			return LogSnapshot{}, false, err
		}
		lastErr = err
	}
	return LogSnapshot{}, false, lastErr
}

func restoreInto(ctx context.Context, store SnapshotStore, m *LogSnapshot, dir string, log *zap.Logger) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, f := range m.Files {
		if err := fetchFile(ctx, store, f, dir); err != nil {
			return err
		}
	}
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, Logger: pebblelog.New(log.Named("pebble"))})
	if err != nil {
		return fmt.Errorf("opening the restored shipment logs: %w", err)
	}
	defer db.Close()
	step, _, err := get(db, stepKey)
	if err != nil {
		return err
	}
	if len(step) != 8 || beUint(step) != m.Step {
		return fmt.Errorf("the restored shipment logs are at step %x, the manifest says %d", step, m.Step)
	}
	return verifyLogs(db)
}

// fetchFile downloads one checkpoint file into dir, checking its hash.
func fetchFile(ctx context.Context, store SnapshotStore, f SnapshotFile, dir string) error {
	if !fs.ValidPath(f.Path) || strings.Contains(f.Path, "/") {
		return fmt.Errorf("snapshot file %q: not a file name", f.Path)
	}
	r, err := store.Open(ctx, logFilePrefix+f.SHA256)
	if err != nil {
		return fmt.Errorf("snapshot file %s: %w", f.Path, err)
	}
	defer r.Close()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(dir, f.Path))
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot file %s: %w", f.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("snapshot file %s: %d bytes with SHA-256 %s, the manifest says %d bytes, %s", f.Path, n, sum, f.Size, f.SHA256)
	}
	return nil
}

// verifyLogs checks shipment logs that were not built here: each leaf
// hash is the hash of its record, each shipment's tree is its leaves, in
// order from 0, each of its anchors is its root at that size, and the
// epochs form one chain, each rebuilding to its root. A snapshot that
// passes is the logs some anchorer built from those records; whether they
// are the cluster's is checked by the next epoch replayed, whose root must
// be the step log's.
func verifyLogs(db *pebble.DB) error {
	var ships []string
	err := each(db, []byte(pShip), false, func(k, v []byte) (bool, error) {
		ships = append(ships, string(k[len(pShip):]))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, ship := range ships {
		if err := verifyShipment(db, ship); err != nil {
			return fmt.Errorf("restored log of %s: %w", ship, err)
		}
	}
	var prev merkle.Hash
	var n uint64
	return each(db, []byte(pEpoch), false, func(k, v []byte) (bool, error) {
		var se storedEpoch
		if err := json.Unmarshal(v, &se); err != nil {
			return false, fmt.Errorf("restored epoch %x: %w", k, err)
		}
		if _, err := se.epoch(); err != nil {
			return false, err
		}
		if se.Number != n+1 || se.Prev != prev {
			return false, fmt.Errorf("restored epoch %d does not follow epoch %d", se.Number, n)
		}
		n, prev = se.Number, se.Root
		return true, nil
	})
}

func verifyShipment(db *pebble.DB, ship string) error {
	v, ok, err := get(db, shipKey(ship))
	if err != nil || !ok || len(v) < 8 {
		return fmt.Errorf("state unreadable (%v)", err)
	}
	var want merkle.Tree
	if err := want.UnmarshalBinary(v[8:]); err != nil {
		return err
	}
	anchors := map[uint64]merkle.Hash{}
	err = each(db, anchorPrefix(ship), false, func(k, v []byte) (bool, error) {
		a, err := decodeAnchorRef(beUint(k[len(anchorPrefix(ship)):]), v)
		anchors[a.size] = a.root
		return err == nil, err
	})
	if err != nil {
		return err
	}
	var t merkle.Tree
	err = each(db, leafPrefix(ship), false, func(k, v []byte) (bool, error) {
		if i := beUint(k[len(leafPrefix(ship)):]); i != t.Size() {
			return false, fmt.Errorf("leaf %d where leaf %d belongs", i, t.Size())
		}
		l, err := decodeLeaf(v)
		if err != nil {
			return false, err
		}
		if merkle.LeafHash(l.data) != l.hash {
			return false, fmt.Errorf("leaf %d (%s) is not the hash of its record", t.Size(), l.id)
		}
		t.Append(l.hash)
		if root, ok := anchors[t.Size()]; ok && root != t.Root() {
			return false, fmt.Errorf("anchored at size %d with root %s, its leaves give %s", t.Size(), root, t.Root())
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if t.Size() != want.Size() || t.Root() != want.Root() {
		return fmt.Errorf("its leaves give %d records, root %s; its state says %d, %s", t.Size(), t.Root(), want.Size(), want.Root())
	}
	for size := range anchors {
		if size > t.Size() {
			return fmt.Errorf("anchored at size %d, it has %d leaves", size, t.Size())
		}
	}
	return nil
}
