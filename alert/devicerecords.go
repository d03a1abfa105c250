package alert

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// Device records: the detector, which sees every reading in journal order,
// writes a device's registry entry into the log of each shipment the device
// reports on: when its first reading on the shipment arrives, and again
// after every change of the entry (a new calibration, a new model). The
// records are anchored like the readings, so the calibrations a proof
// bundle shows are proven rather than taken from the registry when the
// bundle is built. Each record's id is its shipment, device and registry
// revision; the revisions already recorded are read back from the stream
// at start, so a restart or a replay writes none twice.

// deviceRecordEvery is how often pending device records are written and a
// changed registry is walked.
const deviceRecordEvery = time.Second

type shipDevice struct{ shipment, device string }

// EnableDeviceRecords makes the service write device records; version
// returns a number that changes whenever the registry does (a registry
// change then reaches every shipment the device reports on, even one that
// sends nothing more). It needs EnableCalibration. Call it before Run.
func (s *Service) EnableDeviceRecords(version func() uint64) { s.registryVersion = version }

// loadDeviceRecords reads which registry revision of each device every
// shipment's log already holds.
func (s *Service) loadDeviceRecords(ctx context.Context) error {
	recorded := map[shipDevice]uint64{}
	err := s.j.Scan(ctx, record.KindDevice, "", func(m journal.Msg) error {
		d, err := record.ParseDeviceRecord(m.Data)
		if err != nil {
			s.log.Warn("unreadable device record skipped", zap.Uint64("seq", m.Seq), zap.Error(err))
			return nil
		}
		if !s.owns(d.Shipment) {
			return nil
		}
		k := shipDevice{d.Shipment, d.Device}
		recorded[k] = max(recorded[k], d.Revision)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the device records: %w", err)
	}
	s.mu.Lock()
	s.recorded, s.pendingDevs = recorded, map[shipDevice]bool{}
	s.mu.Unlock()
	return nil
}

// noteDevice queues a device record for r's shipment when d, r's
// registered device, is at a revision the shipment's log does not hold;
// s.mu is held.
func (s *Service) noteDevice(r *record.Reading, d *device.Device) {
	k := shipDevice{r.Shipment, r.Device}
	if s.recorded[k] < d.Revision {
		s.pendingDevs[k] = true
	}
}

// runDeviceRecords writes the queued device records, and after a registry
// change those of every shipment its devices report on, until ctx ends.
func (s *Service) runDeviceRecords(ctx context.Context) {
	var seen uint64
	s.tick(ctx, deviceRecordEvery, func(ctx context.Context) {
		s.mu.Lock()
		var review []record.Alert
		// After a restart, a registry change is reviewed once the
		// detector has replayed what it had seen: the warnings it would
		// reopen are in its state then.
		if v := s.registryVersion(); v != seen && s.seq >= s.floor {
			seen = v
			review = s.reviewDeviceAlerts()
			for ship, st := range s.ships {
				for dev := range st.Devices {
					if d := s.calibration(dev); d != nil && s.recorded[shipDevice{ship, dev}] < d.Revision {
						s.pendingDevs[shipDevice{ship, dev}] = true
					}
				}
			}
		}
		var recs []record.DeviceRecord
		for k := range s.pendingDevs {
			if d := s.calibration(k.device); d != nil && s.recorded[k] < d.Revision {
				recs = append(recs, d.Record(k.shipment))
			}
			delete(s.pendingDevs, k)
		}
		s.mu.Unlock()
		if len(review) > 0 {
			if err := s.publish(ctx, review); err != nil && ctx.Err() == nil {
				s.log.Error("publish the calibration warnings a registry change decided", zap.Error(err))
			}
		}
		if len(recs) == 0 {
			return
		}
		entries := make([]journal.Entry, len(recs))
		for i := range recs {
			r := &recs[i]
			entries[i] = journal.Entry{Kind: record.KindDevice, ID: r.EventID(), Subject: journal.SubjectDevice(r.Shipment, r.Device), Data: r.AppendCanonical(nil)}
		}
		results := make([]journal.Result, len(entries))
		err := s.j.Append(ctx, entries, journal.Meta{Source: "device-registry", Received: s.now()}, results)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			// Queue them again: the next tick retries.
			for _, r := range recs {
				s.pendingDevs[shipDevice{r.Shipment, r.Device}] = true
			}
			if ctx.Err() == nil {
				s.log.Warn("device records not stored yet, retrying", zap.Int("records", len(recs)), zap.Error(err))
			}
			return
		}
		for _, r := range recs {
			k := shipDevice{r.Shipment, r.Device}
			s.recorded[k] = max(s.recorded[k], r.Revision)
			s.m.deviceRecords.Inc()
		}
	})
}
