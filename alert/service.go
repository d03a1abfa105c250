// Package alert runs the excursion detector on the journal and delivers
// what it decides: every alert transition is stored in the alerts stream
// (durable, auditable, and on NATS coldchain.alerts.{shipment} for live
// subscribers), published on MQTT coldchain/v1/{shipment}/alerts, posted to
// webhooks and streamed as Server-Sent Events. It also serves the alert and
// status API.
//
// The rules themselves are the pure package excursion; this package does
// the I/O around them: it feeds readings in device-time order per batch,
// snapshots the detector state and replays the journal after it on start,
// so a running single-event timer survives a restart.
package alert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/excursion"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// Config configures the detector service.
type Config struct {
	// Profile is the alarm profile of shipments not listed in Shipments.
	Profile string `yaml:"profile"`
	// ProfileDir, when set, is a folder of profile files (NAME.yaml) added
	// to the built-in 2-8C.
	ProfileDir string `yaml:"profile_dir"`
	// Shipments chooses a profile per shipment.
	Shipments map[string]string `yaml:"shipments"`
	// Horizon is how far behind a device's newest reading a late reading is
	// still evaluated; older ones are stored and proven, and flagged.
	Horizon time.Duration `yaml:"horizon"`
	// History is how many readings per device are kept to re-evaluate late
	// readings exactly.
	History int `yaml:"history"`
	// SnapshotEvery is how often the detector state is saved; a restart
	// replays the journal from the last snapshot.
	SnapshotEvery time.Duration `yaml:"snapshot_every"`
	// GapCheck is how often silent devices are checked for a data gap.
	GapCheck time.Duration `yaml:"gap_check"`
	// Webhooks receive every alert transition.
	Webhooks []WebhookConfig `yaml:"webhooks"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	d := excursion.DefaultConfig()
	return Config{Profile: "2-8C", Horizon: d.Horizon, History: d.History, SnapshotEvery: 30 * time.Second, GapCheck: time.Minute}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	if err := (excursion.Config{Horizon: c.Horizon, History: c.History}).Validate(); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	switch {
	case c.Profile == "":
		return errors.New("alerts.profile: must name a profile, e.g. 2-8C")
	case c.SnapshotEvery < time.Second:
		return errors.New("alerts.snapshot_every: must be at least 1s")
	case c.GapCheck < time.Second:
		return errors.New("alerts.gap_check: must be at least 1s")
	}
	for i, w := range c.Webhooks {
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			return fmt.Errorf("alerts.webhooks[%d].url: %q must be an http:// or https:// URL", i, w.URL)
		}
		if w.Secret == "" {
			return fmt.Errorf("alerts.webhooks[%d].secret: must be set (the body is signed with HMAC-SHA256)", i)
		}
	}
	return nil
}

// Journal is what the service needs of the journal.
type Journal interface {
	Consume(ctx context.Context, kind record.Kind, opts journal.ConsumeOptions, h journal.Handler) error
	Append(ctx context.Context, entries []journal.Entry, meta journal.Meta, out []journal.Result) error
	AckFloor(ctx context.Context, kind record.Kind, durable string) (uint64, error)
	Scan(ctx context.Context, kind record.Kind, filter string, fn func(journal.Msg) error) error
}

var _ Journal = (*journal.Journal)(nil)

// Publisher publishes on MQTT.
type Publisher interface {
	Publish(topic string, payload []byte, qos byte) error
}

// Durable is the detector's consumer of the readings stream.
const Durable = "coldchain-detector"

// Service runs the detector and serves alerts.
type Service struct {
	cfg      Config
	j        Journal
	mqtt     Publisher
	sub      Subscriber
	log      *zap.Logger
	dir      string
	m        serviceMetrics
	profiles map[string]excursion.Profile
	now      func() time.Time
	lateLog  sometimes

	mu      sync.Mutex
	dets    map[string]*excursion.Detector // by profile name
	devices map[string]*deviceState
	ships   map[string]*shipmentState
	alerts  map[string]*alertView
	// devAlertIDs caches the ids of device warnings (calibration.go).
	devAlertIDs map[devAlert]string
	seq         uint64 // last reading sequence the detectors have seen
	floor       uint64 // events of readings up to here are already published
	tainted     bool   // detector state ran ahead of what was published
	events      []excursion.Event

	// custodySrc, when set (EnableCustody), is read by the custody checks.
	custodySrc CustodySource
	// calibration, when set (EnableCalibration), finds a reading's device.
	calibration func(id string) *device.Device
	// flagUnregistered opens unregistered_device warnings.
	flagUnregistered bool
	// registryVersion, when set (EnableDeviceRecords), turns on device
	// records; recorded holds the registry revision each shipment's log
	// holds of each device, pendingDevs the records to write next.
	registryVersion func() uint64
	recorded        map[shipDevice]uint64
	pendingDevs     map[shipDevice]bool
	custodyCfg      custody.Config
	// shared, when set (SetSharedSnapshots), holds snapshots for the
	// next holder of the detector.
	shared SharedSnapshots
	// lag is how many readings this detector has not evaluated yet.
	lag *metrics.Gauge
	// part is this detector's partition of nparts (0 of 0: every
	// reading); parts are the partition detectors of a Partitioned
	// service.
	part, nparts int
	parts        []*Service
}

// New returns the service. mqtt may be nil (no MQTT delivery); sub serves
// the SSE stream. dataDir holds the snapshot under detector/.
func New(cfg Config, j Journal, mqtt Publisher, sub Subscriber, reg *metrics.Registry, dataDir string, log *zap.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	profiles := map[string]excursion.Profile{}
	def := excursion.DefaultProfile()
	profiles[def.Name] = def
	if cfg.ProfileDir != "" {
		more, err := excursion.LoadProfiles(os.DirFS(cfg.ProfileDir))
		if err != nil {
			return nil, fmt.Errorf("alerts.profile_dir: %w", err)
		}
		for n, p := range more {
			profiles[n] = p
		}
	}
	for _, name := range append([]string{cfg.Profile}, mapValues(cfg.Shipments)...) {
		if _, ok := profiles[name]; !ok {
			return nil, fmt.Errorf("alerts: profile %q is not defined (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(profiles)), ", "))
		}
	}
	s := &Service{cfg: cfg, j: j, mqtt: mqtt, sub: sub, log: log, dir: filepath.Join(dataDir, "detector"),
		m: newServiceMetrics(reg), profiles: profiles, now: time.Now, lag: new(metrics.Gauge)}
	s.reset()
	// Summed over the partition detectors (Partitioned); the service
	// itself then holds no alert views.
	reg.GaugeFunc("coldchain_alerts_open", "Alerts open now, by severity (warning or alarm).", []string{"severity"}, func() map[string]float64 {
		out := map[string]float64{"warning": 0, "alarm": 0}
		for _, d := range s.all() {
			d.mu.Lock()
			for _, v := range d.alerts {
				if v.open() {
					out[v.last().Severity]++
				}
			}
			d.mu.Unlock()
		}
		return out
	})
	reg.GaugeFunc("coldchain_detector_pending", "Readings in JetStream the detector has not evaluated yet (on this gateway's partitions, with cluster.partitions).", nil, func() map[string]float64 {
		n := 0.0
		for _, d := range s.all() {
			n += d.lag.Value()
		}
		return map[string]float64{"": n}
	})
	return s, nil
}

// Profile returns the alarm profile shipment is evaluated with.
func (s *Service) Profile(shipment string) excursion.Profile {
	name := s.cfg.Profile
	if p, ok := s.cfg.Shipments[shipment]; ok {
		name = p
	}
	return s.profiles[name]
}

func (s *Service) reset() {
	s.dets = map[string]*excursion.Detector{}
	s.devices = map[string]*deviceState{}
	s.ships = map[string]*shipmentState{}
	s.seq = 0
}

func (s *Service) detector(profile string) *excursion.Detector {
	d, ok := s.dets[profile]
	if !ok {
		// New fails only on an invalid profile or config, both validated.
		d, _ = excursion.New(excursion.Config{Horizon: s.cfg.Horizon, History: s.cfg.History}, s.profiles[profile])
		s.dets[profile] = d
	}
	return d
}

// Run consumes readings and delivers alerts until ctx ends. On start it
// rebuilds the alert views from the alerts stream, restores the last
// snapshot and replays the readings after it; transitions already
// published before the restart are not published again.
func (s *Service) Run(ctx context.Context) error {
	if len(s.parts) > 0 {
		return s.runWebhooks(ctx)
	}
	var foreign chan *nats.Msg
	if s.nparts > 0 {
		// A partition detector that stops (its lease gone) must not
		// answer for the partition's alerts any more.
		defer s.drop()
		// The transitions another member publishes for these shipments
		// after the views are loaded (an acknowledgement its detector
		// took as it handed the partition over): subscribed before the
		// load, so none falls between.
		if s.sub != nil {
			foreign = make(chan *nats.Msg, 4096)
			sub, err := s.sub.ChanSubscribe("coldchain.alerts.>", foreign)
			if err != nil {
				return fmt.Errorf("subscribe to the alert transitions: %w", err)
			}
			defer sub.Unsubscribe() //nolint:errcheck // The connection may be closing.
		}
	}
	if err := s.loadAlerts(ctx); err != nil {
		return fmt.Errorf("rebuild alert views: %w", err)
	}
	if s.registryVersion != nil {
		if err := s.loadDeviceRecords(ctx); err != nil {
			return err
		}
	}
	from, err := s.restore(ctx)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.j.Consume(gctx, record.KindReading, journal.ConsumeOptions{
			// A logger's burst is evaluated whole, sorted by device time (see
			// handle), rather than split where a fetch happened to end.
			Durable: s.durable(), Filter: s.filter(), Batch: 20000, MaxWait: 200 * time.Millisecond, Linger: 100 * time.Millisecond, From: from,
			OnIdle: func() { s.lag.Set(0) },
		}, s.handle)
	})
	g.Go(func() error { s.tick(gctx, s.cfg.GapCheck, s.checkGaps); return nil })
	if foreign != nil {
		g.Go(func() error { s.follow(gctx, foreign); return nil })
	}
	if s.custodySrc != nil {
		g.Go(func() error { s.runCustody(gctx); return nil })
	}
	if s.registryVersion != nil {
		g.Go(func() error { s.runDeviceRecords(gctx); return nil })
	}
	g.Go(func() error {
		s.tick(gctx, s.cfg.SnapshotEvery, func(ctx context.Context) {
			if err := s.snapshot(ctx); err != nil {
				s.log.Error("detector snapshot", zap.Error(err))
			}
		})
		return nil
	})
	for _, w := range s.cfg.Webhooks {
		d := newWebhook(w, s.log.Named("webhook"), s.m)
		g.Go(func() error { return d.run(gctx, s.j) })
	}
	err = g.Wait()
	// ctx has ended: give the last snapshot a little time of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := s.snapshot(sctx); serr != nil {
		s.log.Error("final detector snapshot", zap.Error(serr))
	}
	return err
}

// runWebhooks delivers the alerts stream to the webhooks until ctx ends:
// the part of a Partitioned service that is not a partition's.
func (s *Service) runWebhooks(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, w := range s.cfg.Webhooks {
		d := newWebhook(w, s.log.Named("webhook"), s.m)
		g.Go(func() error { return d.run(gctx, s.j) })
	}
	<-ctx.Done()
	return g.Wait()
}

func (s *Service) tick(ctx context.Context, every time.Duration, fn func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// handle evaluates one batch of readings, in device-time order per device
// (a burst uploaded newest first is then evaluated as it happened), and
// publishes the transitions before the batch is acknowledged.
//
// Sorting must not hide that a reading arrived out of order: a reading
// older than one of its device that the journal holds before it is late
// whether or not the two fall in the same batch, and the transitions it
// decides are marked detected_late (issue 4) either way. Otherwise the
// mark would depend on where the consumer's fetches happen to cut the
// journal.
func (s *Service) handle(ctx context.Context, batch []journal.Msg) error {
	readings := make([]seqReading, 0, len(batch))
	for _, m := range batch {
		r, err := record.ParseReading(m.Data)
		if err != nil {
			s.log.Error("unreadable reading skipped by the detector", zap.Uint64("seq", m.Seq), zap.Error(err))
			continue
		}
		readings = append(readings, seqReading{seq: m.Seq, r: r})
	}
	last := batch[len(batch)-1]
	s.lag.Set(float64(last.Pending))

	s.mu.Lock()
	// The newest device time of each device in journal order, before the
	// sort reorders the batch.
	newest := map[string]int64{}
	for i := range readings {
		sr := &readings[i]
		n, ok := newest[sr.r.Device]
		if !ok {
			if dev := s.devices[sr.r.Device]; dev != nil {
				n = dev.Newest
			}
		}
		t := sr.r.Time.UnixNano()
		if t < n {
			sr.behind = n
		}
		newest[sr.r.Device] = max(n, t)
	}
	slices.SortStableFunc(readings, func(a, b seqReading) int {
		return cmp.Or(strings.Compare(a.r.Device, b.r.Device), a.r.Time.Compare(b.r.Time))
	})
	var out []record.Alert
	replay := last.Seq <= s.floor
	for i := range readings {
		out = s.observe(out, &readings[i])
	}
	if s.calibration != nil {
		opened := map[string]bool{}
		for i := range readings {
			out = s.checkCalibration(out, &readings[i].r, opened)
		}
	}
	s.seq = max(s.seq, last.Seq)
	if replay {
		// These transitions were published before the restart.
		out = out[:0]
	} else {
		// Past the ack floor, a transition may still be in the alerts
		// stream: a previous run (or, in a cluster, the previous holder)
		// published it and stopped before acknowledging its batch. The
		// views, rebuilt from the stream at start, know it; JetStream's
		// duplicate window may have passed.
		kept := out[:0]
		for i := range out {
			if v := s.alerts[out[i].ID]; v != nil && v.seen[out[i].EventID()] {
				s.m.republished.Inc()
				continue
			}
			kept = append(kept, out[i])
		}
		out = kept
	}
	if !replay && len(out) > 0 {
		s.tainted = true
	}
	s.mu.Unlock()

	if len(out) == 0 {
		return nil
	}
	if err := s.publish(ctx, out); err != nil {
		// The detector has moved past these readings; a retry of the batch
		// would find them duplicates. Keep the last good snapshot instead,
		// so the next start replays them.
		return err
	}
	s.mu.Lock()
	s.tainted = false
	s.mu.Unlock()
	return nil
}

type seqReading struct {
	seq uint64
	r   record.Reading
	// behind is, for a reading that arrived after a newer one of its
	// device, that device's newest device time at its arrival (Unix ns);
	// 0 for a reading that arrived in order.
	behind int64
}

// observe runs one reading through its device's detector; s.mu is held.
func (s *Service) observe(out []record.Alert, sr *seqReading) []record.Alert {
	r := &sr.r
	dev := s.devices[r.Device]
	if dev == nil {
		profile := s.cfg.Profile
		if p, ok := s.cfg.Shipments[r.Shipment]; ok {
			profile = p
		}
		dev = &deviceState{Shipment: r.Shipment, Profile: profile}
		s.devices[r.Device] = dev
	}
	ship := s.ships[r.Shipment]
	if ship == nil {
		ship = &shipmentState{Profile: dev.Profile, Devices: map[string]bool{}}
		s.ships[r.Shipment] = ship
	}
	det := s.detector(dev.Profile)
	prof := s.profiles[dev.Profile]
	t := r.Time.UnixNano()
	s.events = s.events[:0]
	evs, oc, err := det.Observe(s.events, excursion.Sample{
		Seq: r.Seq, Device: r.Device, Time: t, TempC: r.TempC,
		Defrost: r.Reefer.Mode == record.ModeDefrost, DoorOpen: r.DoorOpen.Set && r.DoorOpen.V,
	})
	s.events = evs
	if err != nil {
		s.log.Warn("reading not evaluated", zap.String("id", r.ID()), zap.Error(err))
		return out
	}
	s.m.evaluated.Inc()
	switch oc.Status {
	case excursion.BeyondHorizon, excursion.BeyondHistory:
		s.m.flagged(oc.Status).Inc()
		// A backlog, or one device's readings split across gateways, makes
		// thousands of these: the counter has each, the log one line per
		// lateLogEvery with how many it left out.
		if n, ok := s.lateLog.take(s.now()); ok {
			s.log.Info("late reading stored and proven but not re-evaluated (coldchain_detector_flagged_total counts them)", zap.String("id", r.ID()),
				zap.Stringer("status", oc.Status), zap.Time("ts", r.Time), zap.Int("not_logged_since_last", n))
		}
	case excursion.Accepted:
		// Time beyond each limit, on in-order readings: a reading's value
		// holds until the next one unless they are further apart than the
		// gap limit (unknown time counts neither way).
		if dev.Last != 0 {
			if dt := time.Duration(t - dev.Last); dt <= prof.GapLimit() {
				switch {
				case dev.LastC > prof.High.Limit:
					ship.BeyondHigh += dt
				case dev.LastC < prof.Low.Limit:
					ship.BeyondLow += dt
				}
			}
		}
		dev.Last, dev.LastC = t, r.TempC
		if m := oc.MKT(); !math.IsNaN(m) {
			if dev.MKTC == nil {
				dev.MKTC = new(float64)
			}
			*dev.MKTC = m // in place: no allocation a reading
		}
	}
	dev.Newest = max(dev.Newest, t)
	dev.Wall = s.now()
	ship.Devices[r.Device] = true
	if r.Time.After(ship.LastReading.Time) {
		ship.LastReading = lastReading{Device: r.Device, Time: r.Time, TempC: r.TempC}
	}
	ship.Readings++
	for i := range evs {
		a := s.toRecord(&evs[i], dev)
		if sr.behind != 0 {
			// Decided by a reading that arrived out of order, even if the
			// batch sort let the detector see it in order.
			a.Late = true
			a.LateBy = max(a.LateBy, time.Duration(sr.behind-evs[i].At))
		}
		out = append(out, a)
	}
	return out
}

func (s *Service) toRecord(ev *excursion.Event, dev *deviceState) record.Alert {
	a := record.Alert{
		ID: ev.ID, Shipment: dev.Shipment, Device: ev.Device, Rule: ev.Rule.String(), Severity: ev.Severity.String(),
		Transition: ev.Transition.String(), Start: time.Unix(0, ev.Start).UTC(), End: time.Unix(0, ev.End).UTC(),
		At: time.Unix(0, ev.At).UTC(), Beyond: ev.Beyond, Readings: slices.Clone(ev.Readings), Late: ev.Late,
	}
	if a.Readings == nil {
		a.Readings = []string{}
	}
	if !math.IsNaN(ev.PeakC) {
		a.PeakC = record.Some(ev.PeakC)
	}
	if !math.IsNaN(ev.MKTC) {
		a.MKTC = record.Some(ev.MKTC)
	}
	if ev.Suppressed != 0 {
		a.Suppressed = strings.Split(ev.Suppressed.String(), "|")
	}
	if ev.Late {
		a.LateBy = max(0, time.Duration(dev.Newest-ev.At))
	}
	return a
}

// checkGaps raises data_gap for devices that went silent. A device's
// current device time is estimated as its last reading's device time plus
// the wall time since that reading arrived, so replayed or accelerated
// device time does not look like a gap.
func (s *Service) checkGaps(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	var out []record.Alert
	for id, dev := range s.devices {
		if dev.Newest == 0 {
			continue
		}
		est := dev.Newest + int64(now.Sub(dev.Wall))
		evs, err := s.detector(dev.Profile).Advance(s.events[:0], id, est)
		s.events = evs
		if err != nil {
			continue
		}
		for i := range evs {
			out = append(out, s.toRecord(&evs[i], dev))
		}
	}
	s.mu.Unlock()
	if len(out) > 0 {
		if err := s.publish(ctx, out); err != nil && ctx.Err() == nil {
			s.log.Error("publish data gap alerts", zap.Error(err))
		}
	}
}

// publish stores transitions in the alerts stream, retrying until they are
// durable or ctx ends, then updates the views and publishes on MQTT.
func (s *Service) publish(ctx context.Context, alerts []record.Alert) error {
	entries := make([]journal.Entry, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		entries[i] = journal.Entry{Kind: record.KindAlert, ID: a.EventID(), Subject: journal.SubjectAlert(a.Shipment), Data: a.AppendCanonical(nil)}
	}
	results := make([]journal.Result, len(entries))
	backoff := 50 * time.Millisecond
	for {
		err := s.j.Append(ctx, entries, journal.Meta{Source: "detector", Received: s.now()}, results)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish alerts: %w", err)
		}
		s.log.Warn("alerts stream unavailable, retrying", zap.Error(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish alerts: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	s.mu.Lock()
	for i := range alerts {
		s.apply(&alerts[i])
	}
	s.mu.Unlock()
	for i := range alerts {
		a := &alerts[i]
		s.m.published(a.Rule, a.Transition).Inc()
		s.log.Info("alert", zap.String("shipment", a.Shipment), zap.String("device", a.Device), zap.String("rule", a.Rule),
			zap.String("transition", a.Transition), zap.String("severity", a.Severity), zap.Time("start", a.Start), zap.Bool("late", a.Late))
		if s.mqtt != nil {
			if err := s.mqtt.Publish("coldchain/v1/"+a.Shipment+"/alerts", entries[i].Data, 1); err != nil {
				s.log.Warn("mqtt alert publish", zap.Error(err))
			}
		}
	}
	return nil
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// lateLogEvery is how often the detector logs a late reading it did not
// re-evaluate.
const lateLogEvery = 10 * time.Second

// sometimes lets one log line through per lateLogEvery and counts the
// others. Its zero value lets the first through.
type sometimes struct {
	last    time.Time
	skipped int
}

// take reports whether a line may be logged at now, and how many were
// left out since the last one.
func (l *sometimes) take(now time.Time) (skipped int, ok bool) {
	if !l.last.IsZero() && now.Sub(l.last) < lateLogEvery {
		l.skipped++
		return 0, false
	}
	skipped, l.skipped, l.last = l.skipped, 0, now
	return skipped, true
}
