package alert

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/internal/atomicfile"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// deviceState is what the service keeps per device beside the detector.
type deviceState struct {
	Shipment string   `json:"shipment"`
	Profile  string   `json:"profile"`
	Last     int64    `json:"last"`            // device time of the newest in-order reading, Unix ns
	LastC    float64  `json:"last_c"`          // its temperature
	Newest   int64    `json:"newest"`          // newest device time seen, Unix ns
	MKTC     *float64 `json:"mkt_c,omitempty"` // MKT at the newest in-order reading; nil while unknown
	// Wall is when the newest reading arrived (gateway clock); it is not
	// kept in snapshots.
	Wall time.Time `json:"-"`
}

type lastReading struct {
	Device string    `json:"device"`
	Time   time.Time `json:"ts"`
	TempC  float64   `json:"temp_c"`
}

// shipmentState is the running summary behind GET /v1/shipments/{id}/status.
type shipmentState struct {
	Profile     string          `json:"profile"`
	Devices     map[string]bool `json:"devices"`
	Readings    uint64          `json:"readings"`
	LastReading lastReading     `json:"last_reading"`
	BeyondHigh  time.Duration   `json:"beyond_high"`
	BeyondLow   time.Duration   `json:"beyond_low"`
}

// alertView is an alert with all its transitions, as the API shows it.
type alertView struct {
	Transitions []record.Alert
	seen        map[string]bool // event ids, so a republished transition is not listed twice
}

func (v *alertView) last() *record.Alert {
	for i := len(v.Transitions) - 1; i >= 0; i-- {
		if v.Transitions[i].Transition != "acknowledged" {
			return &v.Transitions[i]
		}
	}
	return &v.Transitions[len(v.Transitions)-1]
}

// open reports whether the alert is open: its last detector transition
// opened, reopened or revised it while open.
func (v *alertView) open() bool {
	open := false
	for _, t := range v.Transitions {
		switch t.Transition {
		case "opened", "reopened":
			open = true
		case "cleared", "retracted":
			open = false
		}
	}
	return open
}

func (v *alertView) acknowledged() bool {
	for _, t := range v.Transitions {
		if t.Transition == "acknowledged" {
			return true
		}
	}
	return false
}

// apply adds a stored transition to the views; s.mu is held.
func (s *Service) apply(a *record.Alert) {
	if s.alerts == nil {
		return // a partition detector that stopped (drop)
	}
	v := s.alerts[a.ID]
	if v == nil {
		v = &alertView{seen: map[string]bool{}}
		s.alerts[a.ID] = v
	}
	id := a.EventID()
	if v.seen[id] {
		return
	}
	v.seen[id] = true
	v.Transitions = append(v.Transitions, *a)
}

// loadAlerts rebuilds the alert views from the alerts stream, the record
// of everything published.
func (s *Service) loadAlerts(ctx context.Context) error {
	s.mu.Lock()
	s.alerts = map[string]*alertView{}
	s.mu.Unlock()
	n := 0
	err := s.j.Scan(ctx, record.KindAlert, "", func(m journal.Msg) error {
		a, err := record.ParseAlert(m.Data)
		if err != nil {
			s.log.Warn("unreadable alert skipped", zap.Uint64("seq", m.Seq), zap.Error(err))
			return nil
		}
		if !s.owns(a.Shipment) {
			return nil
		}
		n++
		s.mu.Lock()
		s.apply(&a)
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("alert views rebuilt", zap.Int("transitions", n), zap.Int("alerts", len(s.alerts)))
	return nil
}

// snapshotFile is the detector state on disk.
type snapshotFile struct {
	Version   int                       `json:"version"`
	Seq       uint64                    `json:"seq"` // last reading sequence included
	Detectors map[string][]byte         `json:"detectors"`
	Devices   map[string]*deviceState   `json:"devices"`
	Shipments map[string]*shipmentState `json:"shipments"`
	Saved     time.Time                 `json:"saved"`

	from string // where it was read from
}

const snapshotVersion = 1

func (s *Service) snapshotPath() string { return filepath.Join(s.dir, "snapshot.json") }

// SharedSnapshots keeps the detector's snapshot where the next holder of
// the consumers lease finds it (cluster mode: cluster.Snapshots). The
// stored bytes carry their own position; seq is there so a store can
// refuse to replace a newer snapshot with an older one.
type SharedSnapshots interface {
	Save(ctx context.Context, name string, seq uint64, data []byte) (bool, error)
	Load(ctx context.Context, name string) (data []byte, seq uint64, ok bool, err error)
}

// sharedSnapshotName is the detector's snapshot in a SharedSnapshots.
const sharedSnapshotName = "detector"

// SetSharedSnapshots makes the detector save each snapshot in shared as
// well as on disk, and start from whichever of the two is newer: a member
// that takes over the detector continues from the last holder's snapshot
// instead of replaying every reading. Call it before Run.
func (s *Service) SetSharedSnapshots(shared SharedSnapshots) { s.shared = shared }

// snapshot writes the detector state atomically (temporary file, fsync,
// rename), then to the shared snapshots when set. It keeps the previous
// snapshot when the state ran ahead of what was published, so a restart
// replays those readings.
func (s *Service) snapshot(ctx context.Context) error {
	s.mu.Lock()
	if s.tainted || s.seq == 0 {
		s.mu.Unlock()
		return nil
	}
	snap := snapshotFile{Version: snapshotVersion, Seq: s.seq, Detectors: map[string][]byte{},
		Devices: s.devices, Shipments: s.ships, Saved: s.now().UTC()}
	for name, d := range s.dets {
		b, err := d.MarshalBinary()
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("snapshot %s: %w", name, err)
		}
		snap.Detectors[name] = b
	}
	b, err := json.Marshal(snap)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.snapshotPath(), b, 0o600); err != nil {
		return err
	}
	if s.shared != nil {
		stored, err := s.shared.Save(ctx, s.sharedName(), snap.Seq, b)
		if err != nil {
			return err
		}
		if !stored {
			s.log.Info("the shared detector snapshot is newer than this gateway's: kept it", zap.Uint64("seq", snap.Seq))
		}
	}
	return nil
}

// readSnapshots returns the snapshots to start from, newest first: the
// shared one (when set) and this gateway's own. A snapshot that cannot be
// read is left out with a warning (the detector then replays more).
func (s *Service) readSnapshots(ctx context.Context) ([]snapshotFile, error) {
	type source struct {
		from string
		b    []byte
	}
	var srcs []source
	b, err := os.ReadFile(s.snapshotPath())
	switch {
	case err == nil:
		srcs = append(srcs, source{"this gateway's data dir", b})
	case !os.IsNotExist(err):
		return nil, fmt.Errorf("detector snapshot: %w", err)
	}
	if s.shared != nil {
		b, _, ok, err := s.shared.Load(ctx, s.sharedName())
		if err != nil {
			return nil, fmt.Errorf("the cluster's detector snapshot: %w", err)
		}
		if ok {
			srcs = append(srcs, source{"the cluster's snapshot bucket", b})
		}
	}
	if len(srcs) == 0 && s.nparts > 0 && s.floor == 0 {
		// A partition detector that never ran: partitions were just
		// turned on. It starts from the whole detector's last state, kept
		// to its own shipments, so excursions running across the change
		// go on.
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(s.dir), "snapshot.json")); err == nil {
			srcs = append(srcs, source{"this gateway's data dir, the detector before partitions", b})
		}
		if s.shared != nil {
			if b, _, ok, err := s.shared.Load(ctx, sharedSnapshotName); err == nil && ok {
				srcs = append(srcs, source{"the cluster's snapshot bucket, the detector before partitions", b})
			}
		}
	}
	var out []snapshotFile
	for _, src := range srcs {
		var snap snapshotFile
		if err := json.Unmarshal(src.b, &snap); err != nil || snap.Version != snapshotVersion {
			s.log.Warn("detector snapshot unreadable: not used", zap.String("from", src.from), zap.Error(err))
			continue
		}
		snap.from = src.from
		out = append(out, snap)
	}
	slices.SortStableFunc(out, func(a, b snapshotFile) int { return cmp.Compare(b.Seq, a.Seq) })
	return out, nil
}

// restore loads the newest usable snapshot and returns the journal
// position to replay from (0: the consumer's own position, nothing to
// replay). Alert transitions of replayed readings that are at or below the
// consumer's ack floor were published before: they are recomputed, not
// published again.
func (s *Service) restore(ctx context.Context) (uint64, error) {
	floor, err := s.j.AckFloor(ctx, record.KindReading, s.durable())
	if err != nil {
		return 0, fmt.Errorf("detector position: %w", err)
	}
	s.mu.Lock()
	s.floor = floor
	s.mu.Unlock()
	snaps, err := s.readSnapshots(ctx)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.floor = floor
	for _, snap := range snaps {
		if err := s.load(&snap); err != nil {
			// The profile or detector settings changed: try an older one.
			s.log.Warn("detector snapshot does not fit the configuration: not used", zap.String("from", snap.from), zap.Error(err))
			continue
		}
		s.log.Info("detector snapshot restored", zap.String("from", snap.from), zap.Uint64("seq", snap.Seq),
			zap.Int("devices", len(snap.Devices)), zap.Uint64("replay_to", floor))
		s.m.restoredSeq.Set(float64(snap.Seq))
		return snap.Seq + 1, nil
	}
	s.reset()
	s.m.restoredSeq.Set(0)
	if floor == 0 && len(snaps) == 0 {
		return 0, nil
	}
	s.log.Info("no usable detector snapshot: replaying every reading", zap.Uint64("up_to", floor))
	return journal.FirstPosition, nil
}

// load sets the detector state to snap's; s.mu is held. On error the
// state is reset.
func (s *Service) load(snap *snapshotFile) error {
	s.reset()
	for name, state := range snap.Detectors {
		if _, ok := s.profiles[name]; !ok {
			s.reset()
			return fmt.Errorf("profile %q is not configured", name)
		}
		if err := s.detector(name).UnmarshalBinary(state); err != nil {
			s.reset()
			return err
		}
	}
	s.devices, s.ships, s.seq = snap.Devices, snap.Shipments, snap.Seq
	if s.nparts > 0 {
		// A partition detector keeps its own shipments: the snapshot may
		// be the whole detector's, or one taken under another partition
		// count.
		for id, d := range s.devices {
			if !s.owns(d.Shipment) {
				delete(s.devices, id)
				for _, det := range s.dets {
					det.Forget(id)
				}
			}
		}
		for id := range s.ships {
			if !s.owns(id) {
				delete(s.ships, id)
			}
		}
	}
	now := s.now()
	for _, d := range s.devices {
		d.Wall = now
	}
	return nil
}
