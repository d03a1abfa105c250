package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

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
}

const snapshotVersion = 1

func (s *Service) snapshotPath() string { return filepath.Join(s.dir, "snapshot.json") }

// snapshot writes the detector state atomically (temporary file, fsync,
// rename). It keeps the previous snapshot when the state ran ahead of what
// was published, so a restart replays those readings.
func (s *Service) snapshot() error {
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
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	tmp := s.snapshotPath() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.snapshotPath())
}

// restore loads the last snapshot and returns the journal position to
// replay from (0: the consumer's own position, nothing to replay). Alert
// transitions of replayed readings that are at or below the consumer's ack
// floor were published before: they are recomputed, not published again.
func (s *Service) restore(ctx context.Context) (uint64, error) {
	floor, err := s.j.AckFloor(ctx, record.KindReading, Durable)
	if err != nil {
		return 0, fmt.Errorf("detector position: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.floor = floor
	s.reset()
	b, err := os.ReadFile(s.snapshotPath())
	switch {
	case os.IsNotExist(err):
		if floor == 0 {
			return 0, nil
		}
		s.log.Info("no detector snapshot: replaying every reading", zap.Uint64("up_to", floor))
		return journal.FirstPosition, nil
	case err != nil:
		return 0, fmt.Errorf("detector snapshot: %w", err)
	}
	var snap snapshotFile
	if err := json.Unmarshal(b, &snap); err != nil || snap.Version != snapshotVersion {
		s.log.Warn("detector snapshot unreadable: replaying every reading", zap.Error(err))
		return journal.FirstPosition, nil
	}
	for name, state := range snap.Detectors {
		if _, ok := s.profiles[name]; !ok {
			s.log.Warn("snapshot of an unknown profile: replaying every reading", zap.String("profile", name))
			s.reset()
			return journal.FirstPosition, nil
		}
		d := s.detector(name)
		if err := d.UnmarshalBinary(state); err != nil {
			// The profile or detector settings changed: start over.
			s.log.Warn("detector snapshot does not fit the configuration: replaying every reading", zap.Error(err))
			s.reset()
			return journal.FirstPosition, nil
		}
	}
	s.devices, s.ships, s.seq = snap.Devices, snap.Shipments, snap.Seq
	now := s.now()
	for _, d := range s.devices {
		d.Wall = now
	}
	s.log.Info("detector snapshot restored", zap.Uint64("seq", snap.Seq), zap.Int("devices", len(snap.Devices)),
		zap.Uint64("replay_to", floor))
	return snap.Seq + 1, nil
}
