package alert

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// Partitioned splits the detector by shipment into n partition
// detectors (cluster.partitions), each with its own consumer of its
// partition's readings (coldchain-detector-p{i}), its own state and
// snapshots (detector/p{i}/ in the data dir, detector-p{i} in the shared
// snapshots) and the alert views, device records and custody checks of
// its shipments only; Partition(i) returns one to Run while this gateway
// holds partition i. s itself then runs only the webhooks, which read the
// alerts stream whole. The routes dispatch each shipment to its
// partition's detector; Alerts reads the alerts stream, since the
// partition may run on another gateway. Call it after the Enable methods
// and SetSharedSnapshots, before Run and Routes.
func (s *Service) Partitioned(n int) {
	s.parts = make([]*Service, n)
	for i := range s.parts {
		p := &Service{cfg: s.cfg, j: s.j, mqtt: s.mqtt, sub: s.sub, log: s.log.Named("p" + strconv.Itoa(i)),
			dir: filepath.Join(s.dir, "p"+strconv.Itoa(i)), m: s.m, profiles: s.profiles, now: s.now,
			part: i, nparts: n, lag: new(metrics.Gauge),
			custodySrc: s.custodySrc, calibration: s.calibration, flagUnregistered: s.flagUnregistered,
			registryVersion: s.registryVersion, custodyCfg: s.custodyCfg, shared: s.shared}
		p.cfg.Webhooks = nil // s delivers them, once
		p.reset()
		s.parts[i] = p
	}
}

// drop forgets the state of a partition detector that stopped.
func (s *Service) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
	s.alerts, s.recorded, s.pendingDevs, s.devAlertIDs = nil, nil, nil, nil
	s.lag.Set(0)
}

// Partition returns partition i's detector (Partitioned).
func (s *Service) Partition(i int) *Service { return s.parts[i] }

// owns reports whether shipment's readings are this detector's.
func (s *Service) owns(shipment string) bool {
	return s.nparts == 0 || journal.Partition(shipment, s.nparts) == s.part
}

// durable is the name of this detector's readings consumer.
func (s *Service) durable() string {
	if s.nparts == 0 {
		return Durable
	}
	return PartitionDurable(s.part)
}

// PartitionDurable is the readings consumer of partition p's detector.
func PartitionDurable(p int) string { return Durable + "-p" + strconv.Itoa(p) }

// filter is the subject filter of this detector's readings consumer.
func (s *Service) filter() string {
	if s.nparts == 0 {
		return ""
	}
	return journal.FilterPartition(s.part)
}

// sharedName is this detector's snapshot in the shared snapshots.
func (s *Service) sharedName() string {
	if s.nparts == 0 {
		return sharedSnapshotName
	}
	return sharedSnapshotName + "-p" + strconv.Itoa(s.part)
}

// forShipment returns the detector that holds shipment's state.
func (s *Service) forShipment(shipment string) *Service {
	if len(s.parts) == 0 {
		return s
	}
	return s.parts[journal.Partition(shipment, len(s.parts))]
}

// all returns s and its partition detectors.
func (s *Service) all() []*Service { return append([]*Service{s}, s.parts...) }

// follow applies to the views the transitions of this detector's
// shipments that arrive on ch, until ctx ends: those it published itself
// are there already (apply skips an event it has seen).
func (s *Service) follow(ctx context.Context, ch chan *nats.Msg) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-ch:
			if !s.owns(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]) {
				continue
			}
			a, err := record.ParseAlert(m.Data)
			if err != nil {
				s.log.Warn("unreadable alert transition skipped", zap.String("subject", m.Subject), zap.Error(err))
				continue
			}
			s.mu.Lock()
			s.apply(&a)
			s.mu.Unlock()
		}
	}
}

// alertsFromStream rebuilds one shipment's alert views from the alerts
// stream, for a gateway that may not run the shipment's partition.
func (s *Service) alertsFromStream(ctx context.Context, shipment string) ([]*alertView, error) {
	v := &Service{alerts: map[string]*alertView{}}
	err := s.j.Scan(ctx, record.KindAlert, journal.SubjectAlert(shipment), func(m journal.Msg) error {
		a, err := record.ParseAlert(m.Data)
		if err != nil {
			return fmt.Errorf("alert %d of %s is unreadable: %w", m.Seq, shipment, err)
		}
		v.apply(&a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v.shipmentAlerts(shipment), nil
}
