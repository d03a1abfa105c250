package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/epcis"
	"github.com/coldchain/coldchain/gateway"
	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/simulator"
)

const demoHelp = `Usage: coldchain demo [--config FILE] [flags]

Runs the gateway with everything embedded (as coldchain serve does) and a
small simulated fleet against it, so a newcomer sees, within a minute or
two: readings flowing in over MQTT, an excursion alert firing (a reefer
whose compressor fails), and the shipment's proof bundle fetched and
verified offline and against the embedded chain. It prints the commands
to look at each, then keeps the gateway running until Ctrl-C.

Anchoring epochs are shortened to --epoch so a proof is ready quickly.

Flags:
`

// demoCmd runs `coldchain demo`, which `make run` calls.
func demoCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration `file`; defaults apply without one")
	epoch := fs.Duration("epoch", 15*time.Second, "anchoring epoch for the demo")
	span := fs.Duration("span", 12*time.Hour, "device time the fleet covers")
	wall := fs.Duration("wall", 30*time.Second, "wall time the simulation takes")
	seed := fs.Int64("seed", 7, "simulation seed")
	fs.Usage = func() { fmt.Fprint(stderr, demoHelp); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		return err
	}
	cfg.Anchor.Epoch = *epoch
	// The demo's simulated fleet publishes over shared connections
	// without device credentials; a deployment keeps this off and
	// registers each device (coldchain devices add); the printed curl
	// commands go without tokens, as an admin (coldchain tokens create).
	cfg.MQTT.Broker.AllowAnonymous = true
	cfg.HTTP.AllowAnonymous = true
	if cfg.Log.Level == "info" {
		// The demo narrates; the gateway's own log shows warnings only.
		cfg.Log.Level = "warn"
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-runErr:
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	api := "http://" + g.HTTPAddr()
	say("coldchain demo — gateway up: MQTT tcp://%s, HTTP %s, NATS %s, data in %s", g.MQTTAddr(), api, withoutUser(g.NATSURL()), cfg.DataDir)

	// Narrate alerts as the gateway publishes them.
	nc, err := nats.Connect(g.NATSURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	// Alerts are held and printed in device-time order (see alertOrder);
	// none is dropped however many arrive at once.
	alerts := &alertOrder{}
	sub, err := nc.Subscribe("coldchain.alerts.>", func(m *nats.Msg) {
		if a, err := record.ParseAlert(m.Data); err == nil {
			alerts.add(a)
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe() //nolint:errcheck // Closing anyway.

	// A small fleet whose first shipment's compressor fails.
	now := time.Now().UTC().Truncate(time.Second)
	sc := simulator.DefaultConfig()
	sc.Seed, sc.Shipments, sc.Devices = *seed, 2, 2
	sc.Span = *span
	sc.Start = now.Add(-sc.Span - time.Minute)
	sc.Scenarios = []simulator.Scenario{simulator.CompressorFailure}
	gen, err := simulator.NewGenerator(sc)
	if err != nil {
		return err
	}
	ships := gen.Shipments()
	hot := ships[0].ID
	// Register the fleet with calibration records, as an operator would
	// (coldchain devices register / calibrate): under the default
	// devices.unknown: flag, an unregistered device opens a warning.
	n, err := registerFleet(ctx, g, ships, now)
	if err != nil {
		return err
	}
	say("registered %d devices in the device registry, each with a calibration record valid through %s", n, now.AddDate(0, 6, 0).Format("2006-01-02"))
	say("simulating %d shipments × %d devices, %v of device time in %v: %s has a compressor failure", len(ships), sc.Devices, sc.Span, *wall, hot)
	stats := &simulator.Stats{}
	pub, err := simulator.DialMQTT(ctx, simulator.MQTTConfig{URL: "tcp://" + g.MQTTAddr(), ClientID: "coldchain-demo", Connections: 4, InFlight: 256}, stats)
	if err != nil {
		return err
	}
	rec := simulator.NewRecorder(gen, simulator.DefaultProfile())
	simDone := make(chan simulator.Report, 1)
	accel := float64(sc.Span) / float64(*wall)
	simWall0 := time.Now()
	go func() {
		rep, err := simulator.Run(ctx, gen, pub, rec, stats, simulator.RunConfig{Accelerate: accel}, time.Now)
		if err != nil && ctx.Err() == nil {
			log.Warn("simulation", zap.Error(err))
		}
		pub.Close()
		simDone <- rep
	}()
	say("  watch it live:    curl -N '%s/v1/alerts/stream?shipment=%s'", api, hot)
	say("  shipment status:  curl -s %s/v1/shipments/%s/status", api, hot)

	seenAlarm := false
	printAlerts := func(batch []orderedAlert) {
		for _, a := range batch {
			if line, ok := alertLine(a); ok {
				say("%s", line)
			}
			seenAlarm = seenAlarm || (a.Severity == "alarm" && a.Transition == "opened")
		}
	}
	// Device time runs accel times faster than wall time from simWall0.
	// Alerts are released once the simulation's device clock is
	// alertLag of wall time past them: time enough for their readings to
	// travel through JetStream and the detector, so that alerts of
	// different devices come out in the order they happened.
	const alertLag = 3 * time.Second
	deviceClock := func() time.Time {
		return sc.Start.Add(time.Duration(float64(time.Since(simWall0)-alertLag) * accel))
	}
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var rep simulator.Report
simulating:
	for {
		select {
		case <-ctx.Done():
			return <-runErr
		case <-tick.C:
			printAlerts(alerts.release(deviceClock()))
		case <-progress.C:
			c := rec.Counts()
			say("  … %d readings sent, %d messages acknowledged by the gateway", c.Readings, stats.Acked.Load())
		case rep = <-simDone:
			break simulating
		}
	}
	// The last readings' alerts: wait out the lag, then print the rest.
	select {
	case <-ctx.Done():
		return <-runErr
	case <-time.After(alertLag):
	}
	printAlerts(alerts.flush())
	say("simulation done: %d readings (%d distinct), %d handovers, %d malformed on purpose; %d messages acknowledged, %d errors",
		rep.Counts.Readings, rep.Counts.DistinctReadings, rep.Counts.Handovers, rep.Counts.Rejected, rep.Acked, rep.Errors)
	if !seenAlarm {
		say("no alarm seen yet; check %s/v1/shipments/%s/alerts", api, hot)
	}
	printCustody(ctx, say, api, hot)

	// Wait for the shipment's log to be anchored and final, then verify.
	say("waiting for %s to be anchored (epochs every %v) …", hot, *epoch)
	raw, err := waitForProof(ctx, api, hot, 3*time.Minute)
	if err != nil {
		say("no proof yet: %v", err)
	} else {
		say("proof bundle of %s fetched (%d bytes); verifying offline and on chain at %s:", hot, len(raw), g.ChainRPC())
		vctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := verifyBundle(vctx, raw, nil, g.ChainRPC(), pki.ClientTLS{}, stdout)
		cancel()
		if err != nil {
			say("verification failed")
		}
		say("  fetch it yourself: go run ./cmd/coldchain proof %s --api %s -o bundle.json", hot, api)
		say("  verify it:         go run ./cmd/coldchain verify bundle.json --rpc %s", g.ChainRPC())
	}
	if doc, err := httpGet(ctx, api+"/v1/shipments/"+hot+"/epcis"); err != nil {
		say("no EPCIS document: %v", err)
	} else if err := epcis.Validate(doc); err != nil {
		say("EPCIS document of %s does not validate: %v", hot, err)
	} else {
		path := filepath.Join(cfg.DataDir, hot+".epcis.jsonld")
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			say("write the EPCIS document: %v", err)
		} else {
			say("GS1 EPCIS 2.0 document of %s (valid against the official schema) in %s", hot, path)
			say("  fetch it yourself: go run ./cmd/coldchain epcis %s --api %s -o %s.jsonld", hot, api, hot)
		}
	}
	say("the gateway keeps running; publish your own readings (see README) or press Ctrl-C to stop")
	for {
		select {
		case <-ctx.Done():
			return <-runErr
		case <-tick.C:
			printAlerts(alerts.flush())
		}
	}
}

// registerFleet registers every simulated device with a calibration
// record that holds from six months before now to six months after, and
// waits until the gateway's detector sees them all.
func registerFleet(ctx context.Context, g *gateway.Gateway, ships []simulator.ShipmentInfo, now time.Time) (int, error) {
	nc, err := nats.Connect(g.NATSURL())
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	reg, err := device.OpenRegistry(ctx, js, 1)
	if err != nil {
		return 0, err
	}
	var ids []string
	for _, sh := range ships {
		for _, d := range sh.Devices {
			cert := sha256.Sum256([]byte("demo calibration certificate of " + d.ID))
			_, err := reg.Register(ctx, device.Device{ID: d.ID, Serial: "DEMO-" + d.ID, Model: "simulated " + d.Kind,
				Calibrations: []device.Calibration{{Lab: "Demo Calibration Lab", Accreditation: "ISO/IEC 17025 (demo)",
					Reference: "PRT traceable to a national standard", CertSHA256: hex.EncodeToString(cert[:]),
					CalibratedAt: now.AddDate(0, -6, 0), DueAt: now.AddDate(0, 6, 0), UncertaintyC: 0.1}}})
			if err != nil {
				return 0, fmt.Errorf("registering the demo device %s: %w", d.ID, err)
			}
			ids = append(ids, d.ID)
		}
	}
	for _, id := range ids {
		for g.Device(id) == nil {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return len(ids), nil
}

// printCustody prints who held ship, where and from when, and how its
// custody checks stand (GET /v1/shipments/{id}/custody).
func printCustody(ctx context.Context, say func(string, ...any), api, ship string) {
	raw, err := httpGet(ctx, api+"/v1/shipments/"+ship+"/custody")
	var tl struct {
		custody.Timeline
		Status string `json:"status"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &tl)
	}
	if err != nil {
		say("no custody timeline of %s: %v", ship, err)
		return
	}
	results := map[custody.Result]int{}
	for _, f := range tl.Checks {
		results[f.Result]++
	}
	say("custody of %s: %s (%d checks passed, %d failed, %d pending, %d unverified)", ship, tl.Status,
		results[custody.Pass], results[custody.Fail], results[custody.Pending], results[custody.Unverified])
	for _, p := range tl.Custody {
		where := p.Site
		if where == "" {
			where = "in transit"
		}
		held := ""
		if p.Held {
			held = ", customs hold"
		}
		say("  %s  %-42s %-14s seal %s%s", p.From.UTC().Format("Jan 2 15:04"), p.Party, where, p.Seal, held)
	}
	say("  the timeline and every check: curl -s %s/v1/shipments/%s/custody", api, ship)
}

// alertLine is how the demo prints an alert transition, with the device
// time it happened at. Revisions (a running alert's figures growing) are
// left to the alert stream.
func alertLine(a orderedAlert) (string, bool) {
	if a.Transition == "revised" {
		return "", false
	}
	line := fmt.Sprintf("ALERT %-9s %-18s %-8s %s %s (device time %s, peak %s)", a.Transition, a.Rule, a.Severity, a.Shipment, a.Device,
		a.At.UTC().Format("Jan 2 15:04"), peak(a.Alert))
	if a.Transition == "acknowledged" {
		line = fmt.Sprintf("ALERT %-9s %-18s %-8s %s %s (by %s)", a.Transition, a.Rule, a.Severity, a.Shipment, a.Device, a.By)
	}
	if a.late {
		line += " (reported late: printed after alerts of later device time)"
	}
	return line, true
}

func peak(a record.Alert) string {
	if !a.PeakC.Set {
		return "-"
	}
	return fmt.Sprintf("%.1f °C", a.PeakC.V)
}

// waitForProof polls the shipment's anchors until one is final, then
// returns its proof bundle.
func waitForProof(ctx context.Context, api, ship string, limit time.Duration) ([]byte, error) {
	deadline := time.Now().Add(limit)
	for {
		body, err := httpGet(ctx, api+"/v1/shipments/"+ship+"/anchors")
		if err == nil {
			var list struct {
				Anchors []struct {
					State string `json:"state"`
				} `json:"anchors"`
			}
			if json.Unmarshal(body, &list) == nil {
				for _, a := range list.Anchors {
					if a.State == "final" {
						return httpGet(ctx, api+"/v1/shipments/"+ship+"/proof")
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not final within %v", limit)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// withoutUser drops the credentials from a URL (the embedded NATS token
// rides in its user part), so what the demo prints gives nothing away.
func withoutUser(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unprintable URL)"
	}
	u.User = nil
	return u.String()
}
