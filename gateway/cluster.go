package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/alert"
	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// Lease names: the store writer and the detector run on the holder of
// "consumers", the anchorer on the holder of "anchor".
const (
	leaseConsumers = "consumers"
	leaseAnchor    = "anchor"
)

// routeParts says which lease's holder serves a route in cluster mode: the
// routes that read the detector's or the shipment logs' state. Every
// other route is served by any member (ingest, the store's history, the
// registries in KV).
var routeParts = map[string]string{
	"GET /v1/shipments/{id}/alerts":     leaseConsumers,
	"GET /v1/shipments/{id}/status":     leaseConsumers,
	"POST /v1/alerts/{id}/ack":          leaseConsumers,
	"GET /v1/alerts/stream":             leaseConsumers,
	"GET /v1/shipments/{id}/anchors":    leaseAnchor,
	"GET /v1/shipments/{id}/proof":      leaseAnchor,
	"GET /v1/shipments/{id}/epcis":      leaseAnchor,
	"GET /v1/shipments/{id}/report.pdf": leaseAnchor,
}

// clusterMode is the wiring of cluster mode (docs/CLUSTER.md): the
// heartbeat, the two leases and the anchor's step log.
type clusterMode struct {
	me        string
	members   *cluster.Members
	steps     *anchor.StepLog
	state     *cluster.State
	snaps     *cluster.Snapshots
	consumers *cluster.Elector
	anchor    *cluster.Elector
	// parts, with cluster.partitions set, runs the partitions of the
	// store writer and the detector; nil without.
	parts *cluster.Partitions
	// alerts is the detector, for the routes.
	alerts  *alert.Service
	fwd     *cluster.Forwarder
	standby time.Duration
	// logSnapshots is how often the anchorer snapshots the logs (0: off);
	// restoredStep and storedStep are the steps of the snapshot this
	// member restored and of the last it stored, for the metrics.
	logSnapshots             time.Duration
	restoredStep, storedStep atomic.Uint64
	log                      *zap.Logger
}

func openCluster(ctx context.Context, g *Gateway, j *journal.Journal) (*clusterMode, error) {
	cfg := g.cfg.Cluster
	js, replicas := j.JetStream(), g.cfg.NATS.Streams.Replicas
	log := g.log.Named("cluster").With(zap.String("member", cfg.Member))
	var leases jetstream.KeyValue
	var steps *anchor.StepLog
	var members *cluster.Members
	var state *cluster.State
	var snaps *cluster.Snapshots
	// A JetStream cluster that has just formed can take longer than one
	// API call's timeout to place a new replicated bucket: retry a while.
	err := retryOpen(ctx, log, time.Minute, func(ctx context.Context) (err error) {
		if leases == nil {
			if leases, err = cluster.OpenLeases(ctx, js, cfg.LeaseTTL, replicas); err != nil {
				return err
			}
		}
		if steps == nil {
			if steps, err = anchor.OpenStepLog(ctx, js, replicas, cfg.Member); err != nil {
				return err
			}
		}
		if state == nil {
			if state, err = cluster.OpenState(ctx, js, replicas); err != nil {
				return err
			}
		}
		if snaps == nil {
			if snaps, err = cluster.OpenSnapshots(ctx, js, replicas); err != nil {
				return err
			}
		}
		members, err = cluster.OpenMembers(ctx, js, cluster.Member{Name: cfg.Member, URL: cfg.AdvertiseURL, Started: time.Now().UTC()}, cfg.LeaseTTL, replicas, log)
		return err
	})
	if err != nil {
		return nil, err
	}
	if g.cfg.Store.Writer.Kind != store.KindInflux {
		log.Warn("cluster mode with the embedded store: each gateway's store holds only what it wrote while it held the consumers lease; use store.kind influx")
	}
	c := &clusterMode{me: cfg.Member, members: members, steps: steps, state: state, snaps: snaps, standby: cfg.Standby, logSnapshots: cfg.LogSnapshots, log: log,
		consumers: cluster.NewElector(leases, leaseConsumers, cfg.Member, cfg.LeaseTTL, log),
		anchor:    cluster.NewElector(leases, leaseAnchor, cfg.Member, cfg.LeaseTTL, log)}
	c.fwd = &cluster.Forwarder{Me: cfg.Member, Members: members, Log: log}
	if cfg.Partitions > 0 {
		c.parts = cluster.NewPartitions(leases, cfg.Partitions, cfg.Member, cfg.LeaseTTL, func(ctx context.Context) ([]string, error) {
			ms, err := members.List(ctx)
			names := make([]string, len(ms))
			for i, m := range ms {
				names[i] = m.Name
			}
			return names, err
		}, log)
	}
	g.reg.GaugeFunc("coldchain_cluster_lease_held", "1 for each lease this gateway holds, 0 for the others (consumers, anchor, partition-N).", []string{"lease"},
		func() map[string]float64 {
			out := map[string]float64{}
			for _, e := range c.electors() {
				out[e.Status().Lease] = 0
				if _, held := e.Held(); held {
					out[e.Status().Lease] = 1
				}
			}
			return out
		})
	g.reg.GaugeFunc("coldchain_cluster_members", "Members of the cluster with a live heartbeat, as this gateway sees them.", nil,
		func() map[string]float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			ms, err := members.List(ctx)
			if err != nil {
				return nil
			}
			return map[string]float64{"": float64(len(ms))}
		})
	g.reg.GaugeFunc("coldchain_anchor_log_snapshot_step", "Step of the last shipment-log snapshot this gateway stored (restored: the one it started its logs from).", []string{"snapshot"},
		func() map[string]float64 {
			return map[string]float64{"stored": float64(c.storedStep.Load()), "restored": float64(c.restoredStep.Load())}
		})
	// The detector runs next to the anchorer when it can: EPCIS documents
	// need both. A member contends for the consumers lease unless another
	// live member holds the anchor lease.
	c.consumers.Eligible = func(context.Context) error {
		if h := c.anchorElsewhere(); h != "" {
			return errors.New("the anchor lease is held by " + h + ": the detector runs on the anchorer's gateway")
		}
		return nil
	}
	return c, nil
}

// claimPartitions records this member's cluster.partitions as the
// cluster's, or fails when the cluster has another count: a shipment's
// partition is in its readings' subjects, so every member must split them
// alike from the first reading it ingests.
func claimPartitions(ctx context.Context, j *journal.Journal, cfg cluster.Config, replicas int, log *zap.Logger) error {
	var state *cluster.State
	err := retryOpen(ctx, log, time.Minute, func(ctx context.Context) (err error) {
		state, err = cluster.OpenState(ctx, j.JetStream(), replicas)
		return err
	})
	if err != nil {
		return err
	}
	return retryOpen(ctx, log, time.Minute, func(ctx context.Context) error {
		err := state.ClaimPartitions(ctx, cfg.Partitions, cfg.Member)
		if errors.Is(err, cluster.ErrPartitionsDiffer) {
			return backoffStop{err}
		}
		return err
	})
}

// backoffStop ends retryOpen at once: the error will not pass by waiting.
type backoffStop struct{ error }

func (b backoffStop) Unwrap() error { return b.error }

// retryOpen calls open until it succeeds, ctx ends or patience has
// passed, logging the first failure.
func retryOpen(ctx context.Context, log *zap.Logger, patience time.Duration, open func(context.Context) error) error {
	deadline := time.Now().Add(patience)
	for i := 0; ; i++ {
		err := open(ctx)
		var stop backoffStop
		if errors.As(err, &stop) {
			return stop.error
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		if i == 0 {
			log.Warn("JetStream is not ready for the cluster buckets yet; retrying", zap.Duration("for", patience), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// anchorElsewhere returns the member that holds the anchor lease if it is
// not this one, "" otherwise.
func (c *clusterMode) anchorElsewhere() string {
	st := c.anchor.Status()
	if st.Held || st.Holder == c.me {
		return ""
	}
	return st.Holder
}

// wrap forwards the routes of a part this member does not hold. With
// partitions, a shipment's detector routes go to its partition's holder,
// an acknowledgement to the member whose detector holds the alert, and
// the alert stream (NATS, no detector state) is served here.
func (c *clusterMode) wrap(pattern string, h http.HandlerFunc) http.HandlerFunc {
	if c.parts != nil && routeParts[pattern] == leaseConsumers {
		n := len(c.parts.Electors())
		switch pattern {
		case "GET /v1/alerts/stream":
			return h
		case "POST /v1/alerts/{id}/ack":
			return func(w http.ResponseWriter, r *http.Request) {
				if c.alerts.HasAlert(r.PathValue("id")) {
					h(w, r)
					return
				}
				holders := map[string]bool{}
				var members []string
				for _, e := range c.parts.Electors() {
					if st := e.Status(); st.Holder != "" && !holders[st.Holder] {
						holders[st.Holder] = true
						members = append(members, st.Holder)
					}
				}
				c.fwd.FanOut(w, r, members, func(w http.ResponseWriter) { h(w, r) })
			}
		}
		return c.fwd.WrapBy(func(r *http.Request) *cluster.Elector {
			return c.parts.Electors()[journal.Partition(r.PathValue("id"), n)]
		}, h)
	}
	switch routeParts[pattern] {
	case leaseConsumers:
		return c.fwd.Wrap(c.consumers, h)
	case leaseAnchor:
		return c.fwd.Wrap(c.anchor, h)
	}
	return h
}

// attachAnchor makes the anchorer record its steps in the step log, so
// that whichever member holds the anchor lease continues the same shipment
// logs and epoch chain, and makes a member whose logs cannot follow the
// step log stay out of the contest.
func (c *clusterMode) attachAnchor(anchors *anchor.Service) {
	anchors.SetSequencer(c.steps)
	c.anchor.Eligible = func(context.Context) error { return anchors.Followable() }
}

// attachDetector makes the detector hand its state over through the
// cluster's snapshot bucket: the next holder of the consumers lease starts
// from the last holder's snapshot.
// With partitions, the detector is split into one per partition, each
// run by the holder of its partition's lease.
func (c *clusterMode) attachDetector(alerts *alert.Service) {
	alerts.SetSharedSnapshots(c.snaps)
	if c.parts != nil {
		alerts.Partitioned(len(c.parts.Electors()))
	}
	c.alerts = alerts
}

// electors returns every lease this member contends for.
func (c *clusterMode) electors() []*cluster.Elector {
	out := []*cluster.Elector{c.consumers, c.anchor}
	if c.parts != nil {
		out = append(out, c.parts.Electors()...)
	}
	return out
}

// source is the /v1/cluster view's sources.
func (c *clusterMode) source(j *journal.Journal) *cluster.Sources {
	return &cluster.Sources{Me: c.me, Members: c.members, Electors: c.electors(),
		Epoch: func(ctx context.Context) (*cluster.EpochMark, error) {
			st, ok, err := c.steps.LatestCut(ctx)
			if err != nil || !ok {
				return nil, err
			}
			return &cluster.EpochMark{Number: st.Epoch, Root: st.Root.String(), Member: st.By, Cut: st.Cut, Step: st.Seq}, nil
		},
		Lag: func(ctx context.Context) (map[string]map[string]uint64, []string, error) {
			out := map[string]map[string]uint64{}
			var unknown []string
			type consumer struct {
				name  string
				kinds []record.Kind
			}
			consumers := []consumer{
				{store.ConsumerName, []record.Kind{record.KindReading, record.KindHandover}},
				{anchor.ConsumerName, []record.Kind{record.KindReading, record.KindHandover, record.KindAlert, record.KindDevice}},
			}
			if c.parts == nil {
				consumers = append(consumers, consumer{alert.Durable, []record.Kind{record.KindReading}})
			} else {
				// The detector runs only in partitions (a consumer of the
				// readings from before them, left from a gateway without
				// partitions, is read by nobody and not shown).
				for i := range c.parts.Electors() {
					consumers = append(consumers, consumer{store.PartitionPart(i).Durable, []record.Kind{record.KindReading}},
						consumer{alert.PartitionDurable(i), []record.Kind{record.KindReading}})
				}
			}
			for _, cn := range consumers {
				out[cn.name] = map[string]uint64{}
				for _, k := range cn.kinds {
					// A consumer being recreated (a new holder starting)
					// may not answer for a moment: leave it out rather
					// than fail the view.
					cctx, cancel := context.WithTimeout(ctx, time.Second)
					p, err := j.Pending(cctx, k, cn.name)
					cancel()
					if err != nil {
						unknown = append(unknown, cn.name+"/"+k.String()+": "+err.Error())
						continue
					}
					out[cn.name][k.String()] = p
				}
			}
			return out, unknown, nil
		}}
}

// run starts the heartbeat and the two electors; the returned stop ends
// them (and the work they run) and waits. httpAddr is where the API
// listens: the advertised URL unless cluster.advertise_url says otherwise.
func (c *clusterMode) run(httpAddr string, tls bool, writer *store.Writer, alerts *alert.Service, anchors *anchor.Service) (stop func()) {
	if c.members.URL() == "" {
		scheme := "http://"
		if tls {
			scheme = "https://"
		}
		c.members.SetURL(scheme + httpAddr)
	}
	c.log.Info("cluster member", zap.String("url", c.members.URL()))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.members.Run(ctx) })
	wg.Go(func() {
		_ = c.consumers.Run(ctx, func(ctx context.Context) error {
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error {
				if c.parts == nil {
					return writer.Run(gctx)
				}
				// The partitions' holders write the partitioned readings;
				// this holder the handovers and the readings stored
				// before partitioning, and it prunes.
				return writer.RunParts(gctx, true, store.Part{Kind: record.KindReading, Durable: store.ConsumerName, Filter: journal.FilterUnpartitioned},
					store.Part{Kind: record.KindHandover, Durable: store.ConsumerName})
			})
			g.Go(func() error { return alerts.Run(gctx) })
			g.Go(func() error {
				// Hand the consumers to the anchorer's gateway once it is
				// back.
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for {
					select {
					case <-gctx.Done():
						return nil
					case <-t.C:
						if h := c.anchorElsewhere(); h != "" {
							return cluster.ErrHandOver
						}
					}
				}
			})
			return g.Wait()
		})
	})
	if c.parts != nil {
		wg.Go(func() {
			c.parts.Run(ctx, func(ctx context.Context, p int) error {
				g, gctx := errgroup.WithContext(ctx)
				g.Go(func() error { return writer.RunParts(gctx, false, store.PartitionPart(p)) })
				g.Go(func() error { return alerts.Partition(p).Run(gctx) })
				return g.Wait()
			})
		})
	}
	// While another member anchors, follow its steps: a takeover then
	// replays only the last few.
	if every := c.standby; every > 0 {
		wg.Go(func() { anchors.Standby(ctx, every) })
	}
	wg.Go(func() {
		_ = c.anchor.Run(ctx, func(ctx context.Context) error {
			term, _ := c.anchor.Held()
			if err := anchors.CatchUp(ctx); err != nil {
				return err
			}
			n, _ := anchors.LastEpoch()
			c.log.Info("anchoring: this gateway continues the cluster's epoch chain", zap.Uint64("after_epoch", n), zap.Uint64("term", term))
			if c.logSnapshots <= 0 {
				return anchors.Run(ctx)
			}
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return anchors.Run(gctx) })
			g.Go(func() error { c.snapshotLogs(gctx, anchors); return nil })
			return g.Wait()
		})
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

var _ anchor.SnapshotStore = (*cluster.Snapshots)(nil)

// snapshotLogs stores a snapshot of the shipment logs in the cluster's
// object store soon after this member starts anchoring (the first
// gateway of a cluster thus hands its earlier logs to the members that
// join), then every cluster.log_snapshots, until ctx ends.
func (c *clusterMode) snapshotLogs(ctx context.Context, anchors *anchor.Service) {
	wait := min(10*time.Second, c.logSnapshots)
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = c.logSnapshots
		m, taken, err := anchors.SnapshotLogs(ctx, c.snaps, c.me)
		if taken {
			c.storedStep.Store(m.Step)
		}
		if msg := fmt.Sprint(err); err != nil && msg != last && ctx.Err() == nil {
			c.log.Warn("storing a shipment-log snapshot (retried at the next interval)", zap.Error(err))
		}
		last = fmt.Sprint(err)
	}
}

// restoreLogs gives this member the cluster's latest shipment-log
// snapshot when it has no logs of its own. Trouble is logged: the member
// then starts with empty logs and replays the whole step log.
func (c *clusterMode) restoreLogs(ctx context.Context, dataDir string, log *zap.Logger) {
	m, ok, err := anchor.RestoreLogs(ctx, c.snaps, c.steps, dataDir, log)
	if err != nil {
		log.Warn("the cluster's shipment-log snapshot was not restored: replaying the step log from its start instead", zap.Error(err))
	}
	if ok {
		c.restoredStep.Store(m.Step)
	}
}
