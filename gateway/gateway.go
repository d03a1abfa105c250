// Package gateway wires the parts into the running gateway: NATS (embedded
// or external), the journal and its indexer, ingest, the MQTT transport
// (embedded broker or external subscriber) and the HTTP API. `coldchain
// serve` runs it; in-process tests run it too.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/alert"
	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/api"
	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/embedded/mqttbroker"
	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/epcis"
	"github.com/coldchain/coldchain/ingest"
	ingestmqtt "github.com/coldchain/coldchain/ingest/mqtt"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/report"
	"github.com/coldchain/coldchain/store"
	"github.com/coldchain/coldchain/store/influx"
	"github.com/coldchain/coldchain/store/pebble"
	"github.com/coldchain/coldchain/web"
)

// Gateway is the whole gateway. Create it with New, run it with Run.
type Gateway struct {
	cfg config.Config
	log *zap.Logger
	reg *metrics.Registry

	// Addresses, known once Run has bound them (tests use port 0).
	httpAddr, mqttAddr, mqttTLSAddr, natsURL atomic.Pointer[string]
	chain                                    *lazyChain
	ready                                    chan struct{}
	// devices is the device registry as the running gateway sees it.
	devices atomic.Pointer[device.Watched]
}

// New returns a gateway for cfg.
func New(cfg config.Config, log *zap.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, log: log, reg: metrics.New(), ready: make(chan struct{})}, nil
}

// Ready is closed once the gateway accepts messages on every transport.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// HTTPAddr, MQTTAddr and NATSURL return where the gateway listens; they are
// valid after Ready.
func (g *Gateway) HTTPAddr() string { return *g.httpAddr.Load() }

// MQTTAddr returns the embedded broker's address, or the external URL.
func (g *Gateway) MQTTAddr() string { return *g.mqttAddr.Load() }

// MQTTTLSAddr returns the embedded broker's TLS address ("" for none),
// valid after Ready.
func (g *Gateway) MQTTTLSAddr() string {
	if a := g.mqttTLSAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// ChainRPC returns the embedded chain's JSON-RPC URL once it is open, ""
// otherwise or for an external chain.
func (g *Gateway) ChainRPC() string {
	if g.chain == nil {
		return ""
	}
	return g.chain.RPC()
}

// Device returns the device registered as id as this gateway's ingest and
// detector see it now (nil when not registered, or before Ready): a
// registration through the API or the CLI reaches it within moments.
func (g *Gateway) Device(id string) *device.Device {
	if w := g.devices.Load(); w != nil {
		return w.Get(id)
	}
	return nil
}

// NATSURL returns the NATS URL the gateway uses; for the embedded server
// it carries the token (nats://TOKEN@host:port), so never log it.
func (g *Gateway) NATSURL() string { return *g.natsURL.Load() }

// Run runs the gateway until ctx ends, then shuts down in order: stop
// taking messages, drain those in flight, stop the indexer, close NATS. It
// returns after every goroutine it started has exited.
func (g *Gateway) Run(ctx context.Context) error {
	cfg, log := g.cfg, g.log

	if err := checkListeners(cfg); err != nil {
		return err
	}
	nc, shutdownNATS, err := g.connectNATS(ctx)
	if err != nil {
		return err
	}
	defer shutdownNATS()

	j, err := openJournal(ctx, nc, cfg.NATS.Streams, filepath.Join(cfg.DataDir, "journal"), log)
	if err != nil {
		return err
	}
	// Closed last, once every part that appends or reads has stopped.
	defer func() {
		if err := j.Close(); err != nil {
			log.Error("close journal", zap.Error(err))
		}
	}()
	ingestCfg := cfg.Ingest
	if cfg.Cluster.Enabled {
		// Readings carry their shipment's partition in their subjects:
		// every member must count the same partitions before it ingests.
		if err := claimPartitions(ctx, j, cfg.Cluster, cfg.NATS.Streams.Replicas, log.Named("cluster")); err != nil {
			return err
		}
		ingestCfg.Partitions = cfg.Cluster.Partitions
	}
	in, err := ingest.New(ingestCfg, ingest.FromJournal(j), g.reg, log.Named("ingest"), nil)
	if err != nil {
		return err
	}
	g.registerMetrics(j)

	// The indexer outlives the transports: it is stopped last.
	indexCtx, stopIndex := context.WithCancel(context.Background())
	indexDone := make(chan error, 1)
	go func() { indexDone <- j.Run(indexCtx) }()
	defer func() {
		stopIndex()
		if err := <-indexDone; err != nil {
			log.Error("indexer", zap.Error(err))
		}
	}()

	// The store writer, like the indexer, reads the journal and outlives
	// the transports; the store is closed after it stops. It never holds
	// up ingest: while the store is down, the journal keeps the records.
	st, err := g.openStore()
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", zap.Error(err))
		}
	}()
	writer, err := store.NewWriter(cfg.Store.Writer, j, st, g.reg, log.Named("store"))
	if err != nil {
		return err
	}
	// In cluster mode the store writer, the detector and the anchorer run
	// under their leases instead (clusterMode.run).
	clustered := cfg.Cluster.Enabled
	// startPart runs a consumer part in the background, or, in cluster
	// mode, not here; its channel gives the part's result (nil at once
	// when it does not run here).
	startPart := func(ctx context.Context, run func(context.Context) error) chan error {
		done := make(chan error, 1)
		if clustered {
			done <- nil
		} else {
			go func() { done <- run(ctx) }()
		}
		return done
	}
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := startPart(writerCtx, writer.Run)
	defer func() {
		stopWriter()
		if err := <-writerDone; err != nil {
			log.Error("store writer", zap.Error(err))
		}
	}()

	// Taking messages before the dedup index is complete could store a
	// resend twice: wait for it (docs/EXACTLY-ONCE.md).
	progress := time.NewTicker(5 * time.Second)
	for !j.IndexReady() {
		select {
		case <-ctx.Done():
			progress.Stop()
			return nil
		case <-progress.C:
			p, _ := j.IndexLag(time.Now())
			log.Info("catching up the dedup index before taking messages", zap.Uint64("pending", p))
		case <-time.After(20 * time.Millisecond):
		}
	}
	progress.Stop()

	var (
		mqttReady func(context.Context) error
		publisher alert.Publisher
	)
	grp, gctx := errgroup.WithContext(ctx)
	// Who may connect over MQTT and use the API: the registry in
	// JetStream, its grants followed in memory.
	dir, err := auth.OpenDirectory(ctx, j.JetStream(), cfg.NATS.Streams.Replicas)
	if err != nil {
		return err
	}
	grants, err := dir.WatchGrants(ctx)
	if err != nil {
		return err
	}
	defer grants.Stop()
	keys, err := dir.WatchKeys(ctx)
	if err != nil {
		return err
	}
	defer keys.Stop()
	// A removed device or revoked token loses the sessions and streams it
	// has open, not only its next login.
	removals, err := dir.WatchRemovals(ctx)
	if err != nil {
		return err
	}
	defer removals.Stop()
	// The device registry (serials, calibration records), followed in
	// memory for the detector's calibration check.
	devReg, err := device.OpenRegistry(ctx, j.JetStream(), cfg.NATS.Streams.Replicas)
	if err != nil {
		return err
	}
	calibrated, err := devReg.Watch(ctx)
	if err != nil {
		return err
	}
	defer calibrated.Stop()
	g.devices.Store(calibrated)
	defer g.devices.Store(nil)
	// Until both are loaded a grant would look absent and a signing
	// device's unsigned readings would pass: nothing is ingested before.
	for _, ready := range []<-chan struct{}{grants.Ready(), keys.Ready(), removals.Ready(), calibrated.Ready()} {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
	}
	in.CheckSignatures(keys.Current)
	switch cfg.Devices.Unknown {
	case device.UnknownReject:
		in.RequireRegistered(func(id string) bool { return calibrated.Get(id) != nil })
		log.Info("readings of devices not in the device registry are refused (devices.unknown: reject)")
	case device.UnknownAccept:
		log.Info("readings of devices not in the device registry are accepted without a warning (devices.unknown: accept)")
	}
	denied := auth.DeniedCounter(g.reg)
	if cfg.HTTP.AllowAnonymous {
		log.Warn("anonymous HTTP access is on (http.allow_anonymous): anyone who reaches the API may post readings, read every shipment and ack alarms; turn it off outside a demo")
	}
	var broker *mqttbroker.Broker
	if cfg.MQTT.Embedded() {
		if err := warnIfNobodyCanConnect(ctx, dir, cfg.MQTT.Broker, log); err != nil {
			return err
		}
		broker, err = mqttbroker.Start(cfg.MQTT.Broker, in, &mqttbroker.Security{Users: dir, Granted: grants.Granted, Denied: denied}, log.Named("mqtt"))
		if err != nil {
			return err
		}
		removals.OnRemove(func(p auth.Principal) { broker.Evict(p) })
		addr, tlsAddr := broker.Addr(), broker.TLSAddr()
		g.mqttAddr.Store(&addr)
		g.mqttTLSAddr.Store(&tlsAddr)
		if addr != "" {
			log.Info("embedded MQTT broker listening", zap.String("addr", "tcp://"+addr),
				zap.String("readings", "coldchain/v1/{shipment}/{device}/readings"), zap.String("handovers", "coldchain/v1/{shipment}/handovers"))
		}
		if tlsAddr != "" {
			log.Info("embedded MQTT broker listening with TLS", zap.String("addr", "ssl://"+tlsAddr),
				zap.Bool("client_certificates", cfg.MQTT.Broker.TLSClientCA != ""))
		}
		mqttReady = func(context.Context) error { return nil }
		publisher = broker
	} else {
		sub, err := ingestmqtt.New(cfg.MQTT.Client, ingestmqtt.Adapt(in), log.Named("mqtt"))
		if err != nil {
			return err
		}
		url := cfg.MQTT.Client.URL
		g.mqttAddr.Store(&url)
		grp.Go(func() error { return sub.Run(gctx, cfg.ShutdownTimeout) })
		publisher = sub
		log.Info("consuming from external MQTT broker", zap.String("url", url), zap.String("client_id", cfg.MQTT.Client.ClientID))
		mqttReady = func(context.Context) error {
			if !sub.Connected() {
				return errors.New("not connected to " + url)
			}
			return nil
		}
	}

	alerts, err := alert.New(cfg.Alerts, j, publisher, nc, g.reg, cfg.DataDir, log.Named("alerts"))
	if err != nil {
		if broker != nil {
			broker.Close(0)
		}
		return err
	}
	alerts.EnableCustody(st, cfg.Custody)
	alerts.EnableCalibration(calibrated.Get)
	alerts.EnableDeviceRecords(calibrated.Version)
	if cfg.Devices.Unknown == device.UnknownFlag {
		alerts.FlagUnregistered()
	}
	var cm *clusterMode
	if clustered {
		if cm, err = openCluster(ctx, g, j); err != nil {
			if broker != nil {
				broker.Close(0)
			}
			return err
		}
		cm.attachDetector(alerts)
	}
	// The detector outlives the transports, like the indexer: it is
	// stopped after them.
	alertsCtx, stopAlerts := context.WithCancel(context.Background())
	alertsDone := startPart(alertsCtx, alerts.Run)
	defer func() {
		stopAlerts()
		if err := <-alertsDone; err != nil {
			log.Error("detector", zap.Error(err))
		}
	}()

	srv := api.New(cfg.HTTP, in, j, g.reg, []api.Check{
		{Name: "nats", Func: j.Ready},
		{Name: "mqtt", Func: mqttReady},
		{Name: "store", Func: writer.Check, Advisory: true},
		{Name: "dedup_index", Func: func(context.Context) error {
			if _, behind := j.IndexLag(time.Now()); behind > cfg.NATS.Streams.DuplicateWindow/2 {
				return fmt.Errorf("indexer is %s behind (duplicate window %s)", behind.Round(time.Second), cfg.NATS.Streams.DuplicateWindow)
			}
			return nil
		}},
	}, cfg.Ingest.MaxPayload, &api.Access{Tokens: dir, Granted: grants.Granted, Denied: denied, Removals: removals}, log.Named("http"))
	if cm != nil {
		srv.WrapRoutes(cm.wrap)
		srv.HandleFunc("GET /v1/cluster", cluster.Handler(cm.source(j), log.Named("cluster")))
	} else {
		srv.HandleFunc("GET /v1/cluster", cluster.Handler(nil, log))
	}
	srv.Mount(func(r api.Router) { alerts.Routes(r) })

	// Shipment logs and anchoring: like the detector, a journal consumer
	// that outlives the transports. The chain opens in the background, so
	// an unreachable node delays anchors, never ingest.
	chainCtx, stopChain := context.WithCancel(context.Background())
	var shared sharedContract
	if cm != nil {
		shared = cm.state
	}
	chain := openChain(chainCtx, cfg.Chain, cfg.DataDir, shared, cfg.Cluster.Member, log.Named("chain"))
	g.chain = chain
	if cm != nil {
		cm.restoreLogs(ctx, cfg.DataDir, log.Named("anchor"))
	}
	anchors, err := anchor.New(cfg.Anchor, j, chain, cfg.DataDir, log.Named("anchor"))
	if err != nil {
		stopChain()
		chain.close(log)
		if broker != nil {
			broker.Close(0)
		}
		return err
	}
	anchorCtx, stopAnchor := context.WithCancel(context.Background())
	anchorDone := startPart(anchorCtx, anchors.Run)
	if cm != nil {
		cm.attachAnchor(anchors)
	}
	defer func() {
		stopAnchor()
		if err := <-anchorDone; err != nil {
			log.Error("anchorer", zap.Error(err))
		}
		if err := anchors.Close(); err != nil {
			log.Error("close shipment logs", zap.Error(err))
		}
		stopChain()
		chain.close(log)
	}()
	anchors.RegisterMetrics(g.reg)
	anchors.SetDeviceKeys(func(device string) []bundle.DeviceKey {
		var out []bundle.DeviceKey
		for _, k := range keys.Of(device) {
			out = append(out, bundle.DeviceKey{Device: device, PublicKey: k.PublicKey, Added: k.Added})
		}
		return out
	})
	anchors.SetCalibrations(func(id string) []bundle.Calibration {
		d := calibrated.Get(id)
		if d == nil {
			return nil
		}
		out := make([]bundle.Calibration, 0, len(d.Calibrations))
		for _, c := range d.Calibrations {
			out = append(out, bundle.Calibration{Device: d.ID, Serial: d.Serial, Calibration: c})
		}
		return out
	})
	srv.Mount(func(r api.Router) { anchors.Routes(r) })
	srv.Mount(func(r api.Router) { web.Routes(r) })
	srv.EnableReport(api.ReportSources{
		Bundle: func(ship string) ([]byte, error) {
			b, err := anchors.Proof(ship, anchor.ProofOptions{})
			switch {
			case errors.Is(err, anchor.ErrUnknownShipment):
				return nil, fmt.Errorf("%w: %w", api.ErrNotFound, err)
			case errors.Is(err, anchor.ErrNotAnchored):
				return nil, fmt.Errorf("%w: %w", api.ErrConflict, err)
			case err != nil:
				return nil, err
			}
			var buf bytes.Buffer
			if err := bundle.Encode(&buf, b); err != nil {
				return nil, err
			}
			return buf.Bytes(), nil
		},
		Options: func(ship string) report.Options {
			p := alerts.Profile(ship)
			// The embedded chain's RPC; an external chain.rpc_url may
			// carry an API key, so the report names the chain instead.
			rpc := g.ChainRPC()
			return report.Options{Low: p.Low.Limit, High: p.High.Limit, Profile: p.Name, BundleFile: ship + ".bundle.json",
				RPC: rpc, Custody: cfg.Custody}
		},
	})
	srv.EnableHistory(st)
	srv.FlagCalibration(func(id string, t time.Time) bool {
		d := calibrated.Get(id)
		if d == nil {
			return false
		}
		_, ok := d.At(t)
		return !ok
	})
	srv.EnableDevices(devReg, func(ctx context.Context, id string) (string, bool) {
		c, err := dir.Lookup(ctx, auth.KindDevice, id)
		if err != nil {
			return "", false
		}
		return c.Org, true
	})
	srv.EnableCustody(st, cfg.Custody)
	srv.EnableEPCIS(st, api.EPCISSources{
		Alerts: func(ctx context.Context, ship string) ([]epcis.Alert, error) {
			list, err := alerts.Alerts(ctx, ship)
			if err != nil {
				return nil, err
			}
			var out []epcis.Alert
			for _, a := range list {
				if a.Custody || a.Rule == alert.RuleCalibration || a.Rule == alert.RuleUnregistered {
					continue // custody failures are in the handover events; calibration and registration are not excursions
				}
				e := epcis.Alert{ID: a.ID, Device: a.Device, Rule: a.Rule, Severity: a.Severity, State: a.State,
					Start: a.Start, End: a.End, PeakC: a.PeakC, Beyond: a.Beyond, Acked: a.Acknowledged}
				if a.State == "open" {
					e.End = time.Time{}
				}
				out = append(out, e)
			}
			return out, nil
		},
		Log: func(ship string) (*epcis.Log, error) {
			size, list, err := anchors.Anchors(ship)
			if errors.Is(err, anchor.ErrUnknownShipment) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			l := &epcis.Log{Size: size, Anchors: []epcis.Anchor{}, Proof: "GET /v1/shipments/" + ship + "/proof, then: coldchain verify BUNDLE --rpc URL"}
			for _, a := range list {
				l.Anchors = append(l.Anchors, epcis.Anchor{Epoch: a.Epoch, Size: a.Size, Root: a.Root.String(), State: a.State,
					ChainID: a.ChainID, Contract: a.Contract, Tx: a.Tx, Block: a.Block})
			}
			return l, nil
		},
		Calibrations: func(id string) []device.Calibration {
			if d := calibrated.Get(id); d != nil {
				return d.Calibrations
			}
			return nil
		},
	}, cfg.EPCIS)
	// Every route has an access rule (HandleFunc panics otherwise); every
	// rule must have its route, or the table has drifted from the API.
	if u := srv.Unserved(); len(u) > 0 {
		if broker != nil {
			broker.Close(0)
		}
		return fmt.Errorf("api: access rules for routes that are not served: %s", strings.Join(u, ", "))
	}
	if cfg.HTTP.TLSCert != "" {
		// Fail now rather than after Ready, when the API starts serving.
		if _, err := pki.ServerConfig(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey, ""); err != nil {
			if broker != nil {
				broker.Close(0)
			}
			return fmt.Errorf("http.tls_cert, http.tls_key: %w", err)
		}
	}
	l, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		if broker != nil {
			broker.Close(0)
		}
		return fmt.Errorf("http listen on %s: %w (set http.listen or COLDCHAIN_HTTP_LISTEN)", cfg.HTTP.Listen, err)
	}
	httpAddr := l.Addr().String()
	g.httpAddr.Store(&httpAddr)
	grp.Go(func() error { return srv.Serve(gctx, l, cfg.ShutdownTimeout) })
	log.Info("HTTP API listening", zap.String("addr", "http://"+httpAddr))
	if cm != nil {
		// The leases are taken once every part is wired; stopped before
		// the parts are closed (defers run last in, first out).
		stopCluster := cm.run(httpAddr, cfg.HTTP.TLSCert != "", writer, alerts, anchors)
		defer stopCluster()
	}
	close(g.ready)

	<-gctx.Done()
	log.Info("shutting down: draining in-flight messages", zap.Duration("timeout", cfg.ShutdownTimeout))
	if broker != nil {
		broker.Close(cfg.ShutdownTimeout)
	}
	err = grp.Wait()
	log.Info("stopped")
	return err
}

// connectNATS starts the embedded server or connects to the external one,
// and returns how to shut it down.
func (g *Gateway) connectNATS(ctx context.Context) (*nats.Conn, func(), error) {
	cfg, log := g.cfg, g.log
	opts := []nats.Option{
		nats.Name("coldchain-gateway"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", zap.String("url", c.ConnectedUrl())) }),
	}
	if cfg.NATS.Embedded() {
		dir := cfg.NATSStoreDir()
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, nil, fmt.Errorf("data dir: %w", err)
		}
		// Every client needs the token, so no other local process writes
		// to the streams or the identity registry.
		token, tokenFrom := cfg.NATS.Token, "nats.token"
		if token == "" {
			tokenFrom = cfg.NATSTokenFile()
			var err error
			if token, err = natsserver.TokenFile(tokenFrom); err != nil {
				return nil, nil, fmt.Errorf("%w (the embedded NATS server needs a token; check the data dir's permissions or set nats.token)", err)
			}
		}
		ns, err := natsserver.Start(natsserver.Config{Listen: cfg.NATS.Listen, StoreDir: dir, MaxPayload: 8 << 20, Token: token}, log.Named("nats"))
		if err != nil {
			return nil, nil, err
		}
		nc, err := ns.Connect(opts...)
		if err != nil {
			ns.Shutdown()
			return nil, nil, fmt.Errorf("nats connect: %w", err)
		}
		url := ns.AuthURL()
		g.natsURL.Store(&url)
		log.Info("embedded NATS JetStream listening", zap.String("url", ns.ClientURL()), zap.String("store", dir), zap.String("token_from", tokenFrom))
		return nc, func() { nc.Close(); ns.Shutdown() }, nil
	}
	peer, err := cfg.NATS.ClientOptions()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, peer...)
	opts = append(opts, nats.RetryOnFailedConnect(true))
	nc, err := nats.Connect(cfg.NATS.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats connect %s: %w", cfg.NATS.URL, err)
	}
	for !nc.IsConnected() {
		log.Info("waiting for NATS", zap.String("url", cfg.NATS.URL))
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	url := strings.Split(cfg.NATS.URL, ",")[0]
	g.natsURL.Store(&url)
	log.Info("connected to NATS", zap.String("url", nc.ConnectedUrl()))
	return nc, func() { _ = nc.Drain(); nc.Close() }, nil
}

// warnIfNobodyCanConnect says so at start when anonymous access is off and
// the registry is empty: every device would be refused.
func warnIfNobodyCanConnect(ctx context.Context, dir *auth.Directory, cfg mqttbroker.Config, log *zap.Logger) error {
	if cfg.AllowAnonymous {
		log.Warn("anonymous MQTT access is on (mqtt.allow_anonymous): any client may publish readings and handovers; turn it off outside a demo")
		return nil
	}
	empty, err := dir.Empty(ctx)
	if err != nil {
		return fmt.Errorf("reading the identity registry: %w", err)
	}
	if empty {
		log.Warn("no devices or sites registered and anonymous MQTT access is off: every MQTT client will be refused; register them with `coldchain devices add`, or set mqtt.allow_anonymous: true for a demo")
	} else {
		log.Info("MQTT clients authenticate against the identity registry (KV bucket " + auth.Bucket + ")")
	}
	return nil
}

// openJournal opens the journal, retrying while JetStream is not there yet
// (a cluster electing its leader, a server still starting).
func openJournal(ctx context.Context, nc *nats.Conn, cfg journal.Config, dir string, log *zap.Logger) (*journal.Journal, error) {
	for attempt := 1; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		j, err := journal.Open(octx, nc, cfg, dir, log.Named("journal"))
		cancel()
		if err == nil {
			return j, nil
		}
		if ctx.Err() != nil || attempt >= 30 {
			return nil, fmt.Errorf("open journal: %w", err)
		}
		log.Warn("JetStream not ready, retrying", zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (g *Gateway) registerMetrics(j *journal.Journal) {
	g.reg.GaugeFunc("coldchain_index_pending", "Records in JetStream not yet in the dedup index.", nil, func() map[string]float64 {
		p, _ := j.IndexLag(time.Now())
		return map[string]float64{"": float64(p)}
	})
	g.reg.GaugeFunc("coldchain_index_behind_seconds", "Upper bound on how long the oldest unindexed record has waited.", nil, func() map[string]float64 {
		_, b := j.IndexLag(time.Now())
		return map[string]float64{"": b.Seconds()}
	})
	// One stream info per stream and scrape; the two gauges share it.
	usage := func(i int) map[string]float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		u, err := j.Usage(ctx)
		if err != nil {
			return nil
		}
		out := make(map[string]float64, len(u))
		for name, v := range u {
			out[name] = float64(v[i])
		}
		return out
	}
	g.reg.CounterFunc("coldchain_journal_append_conflicts_total",
		"Appends JetStream refused because another gateway had appended to the subject since (cluster mode: one device's readings reaching two gateways); each is decided again, at the cost of a round trip and a wait for the dedup index.",
		func() float64 { return float64(j.Conflicts()) })
	g.reg.GaugeFunc("coldchain_journal_stream_bytes", "Bytes a record stream holds on disk (per replica).", []string{"stream"}, func() map[string]float64 { return usage(0) })
	g.reg.GaugeFunc("coldchain_journal_stream_max_bytes", "A record stream's bound, nats.max_bytes; 0 when unbounded. A full stream refuses new records.", []string{"stream"}, func() map[string]float64 { return usage(1) })
}

// openStore opens the configured time-series store. Neither kind waits for
// its store: an InfluxDB that is down is only an error on use.
func (g *Gateway) openStore() (store.Store, error) {
	cfg, log := g.cfg, g.log.Named("store")
	opts := store.Options{Retention: cfg.Store.Writer.Retention}
	if cfg.Store.Writer.Kind == store.KindInflux {
		s, err := influx.New(cfg.Store.Influx, opts, log)
		if err != nil {
			return nil, err
		}
		// Never the token.
		log.Info("history store: InfluxDB", zap.String("url", cfg.Store.Influx.URL),
			zap.String("org", cfg.Store.Influx.Org), zap.String("bucket", cfg.Store.Influx.Bucket))
		return s, nil
	}
	dir := cfg.StoreDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s, err := pebble.Open(dir, opts, log)
	if err != nil {
		return nil, err
	}
	log.Info("history store: embedded", zap.String("dir", dir))
	return s, nil
}
