package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/simulator"
)

const simulateHelp = `Usage: coldchain simulate [flags]

Simulates a fleet of refrigerated containers (reefers) and data loggers on
shipments from Shenzhen via Singapore to Jebel Ali, and publishes what they
would send to a running gateway: readings with a compressor saw-tooth,
defrost spikes, door openings and hot quays, and custody handovers at bonded warehouses and terminals (each transfer released
by one side and received by the other, under seal, and a customs hold and
release at Jebel Ali).

Time: in real time (--accelerate 1) device time is wall time. Accelerated,
device time runs X times faster and ends at the moment the run ends, so a
run of --duration D covers the X·D of device time before it and no reading
is ever stamped in the future (the gateway refuses ts more than 5 minutes
ahead of its clock). 30 days in one minute: --accelerate 43200 --duration 1m.

Scenarios inject faults on shipments in turn (scenario i on shipment
i mod --shipments; give more shipments than scenarios to keep normal ones):
  compressor_failure  12 h without cooling at sea: a slow rise to about 19 °C
  power_loss          3 h unplugged on a hot quay (mode off)
  door_open           doors open 90 min at a warm dock
  freezing            setpoint keyed in as -5 °C for 3 h
  short_excursions    six ~15 min excursions above 8 °C: only the cumulative alarm
  stuck_sensor        a logger repeats one value for 8 h
  out_of_range        a shorted probe: 150 and -273.15 °C (rejected), 85 °C
  nan                 NaN and Infinity readings (rejected)
  dropout             a logger takes no readings for 50 min (data gap)
  offline_burst       a logger offline 6 h, then uploads newest first
  clock_skew          a clock 150 s ahead; a year ahead; reset to 1970
  duplicates          every message sent twice, then 24 h re-uploaded
  malformed           one message of each kind of garbage
  all                 every scenario
--truth writes the ground truth: which alarm each device must raise over
which device-time interval (profile 2-8C), and every record the gateway
must reject with its reason (docs/SIMULATOR.md shows the format).

Load mode (--rate R) sends valid readings at R readings/s spread over
--connections MQTT connections (or concurrent HTTP requests), --batch
readings a message, and prints the achieved rate and errors each second.

Flags:
`

func simulateCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mqttURL     = fs.String("mqtt", "tcp://127.0.0.1:1883", "MQTT broker `URL` to publish to (the gateway's embedded broker by default)")
		httpURL     = fs.String("http", "", "gateway HTTP API base `URL`, e.g. http://127.0.0.1:8080: POST to /v1/readings and /v1/handovers instead of MQTT")
		token       = fs.String("token", os.Getenv("COLDCHAIN_TOKEN"), "bearer `token` for --http (a provider's, granted the simulated shipments; default $COLDCHAIN_TOKEN)")
		shipments   = fs.Int("shipments", 3, "number of shipments (one container each)")
		devices     = fs.Int("devices", 3, "devices per shipment: the reefer unit, then loggers alternately with a buffered and an air probe")
		interval    = fs.Duration("interval", 5*time.Minute, "device-time spacing of one device's readings (the 2-8C profile expects 5m)")
		accelerate  = fs.Float64("accelerate", 1, "device time runs `X` times faster than wall time (1: real time)")
		duration    = fs.Duration("duration", 0, "wall time to run; 0 runs until interrupted (real time: up to 30 days of device time; required with --accelerate)")
		rate        = fs.Float64("rate", 0, "load mode: target readings per second over all connections (0: simulate the fleet)")
		batch       = fs.Int("batch", 1, "load mode: readings per message (1 sends single objects)")
		connections = fs.Int("connections", 16, "load mode: MQTT connections or concurrent HTTP requests; fleet mode: MQTT connections (devices are spread over them)")
		scenarios   = fs.String("scenarios", "", "comma-separated scenarios to inject (see above), or all")
		truthPath   = fs.String("truth", "", "write the ground truth as JSON to `file` when the run ends")
		keysDir     = fs.String("keys", "", "sign the readings of each device that has a private key `DIR`/ID.key (coldchain devices keygen ID --dir DIR), as a device that registered its key must")
		seed        = fs.Int64("seed", 1, "seed: the same seed, start and flags give byte-identical messages")
		inFlight    = fs.Int("in-flight", 1024, "messages awaiting acknowledgement at once (MQTT PUBACKs, HTTP requests)")
	)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), simulateHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "coldchain simulate: "+format+"\n", a...)
		return errUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *accelerate < 1 {
		return usageErr("--accelerate must be at least 1")
	}
	if *accelerate > 1 && *duration <= 0 {
		return usageErr("--duration is required with --accelerate: device time ends when the run ends")
	}
	if *duration < 0 {
		return usageErr("--duration must not be negative")
	}
	list, err := simulator.ParseScenarios(*scenarios)
	if err != nil {
		return usageErr("--scenarios: %v", err)
	}
	if *rate > 0 && (len(list) > 0 || *truthPath != "") {
		return usageErr("--scenarios and --truth do not apply to load mode (--rate)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stats := &simulator.Stats{}
	transport := simulator.TransportMQTT
	target := *mqttURL
	if *httpURL != "" {
		transport, target = simulator.TransportHTTP, *httpURL
	}
	open := func(conns int) (sender, error) {
		if transport == simulator.TransportHTTP {
			p := simulator.NewHTTP(*httpURL, min(*inFlight, 256), stats)
			p.Token = *token
			return p, nil
		}
		p, err := simulator.DialMQTT(ctx, simulator.MQTTConfig{URL: *mqttURL, ClientID: fmt.Sprintf("coldchain-sim-%d-%d", *seed, time.Now().UnixNano()%1e6),
			Connections: conns, InFlight: *inFlight}, stats)
		if err != nil {
			return nil, err
		}
		return p, nil
	}

	if *rate > 0 {
		lc := simulator.LoadConfig{Seed: *seed, Rate: *rate, Batch: *batch, Connections: *connections, DevicesPerConn: max(*devices, 1),
			Duration: *duration, Progress: stderr}
		if err := lc.Validate(); err != nil {
			return usageErr("%v", err)
		}
		pub, err := open(*connections)
		if err != nil {
			return err
		}
		defer pub.Close()
		fmt.Fprintf(stderr, "load: %.0f readings/s in batches of %d over %d %s connections to %s\n", *rate, *batch, *connections, transport, target)
		rep, err := simulator.Load(ctx, lc, pub, stats, time.Now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sent %d readings in %d messages in %v: %.0f readings/s (target %.0f); acknowledged %d, errors %d\n",
			rep.Readings, rep.Messages, rep.Wall.Round(time.Millisecond), rep.Rate, *rate, rep.Acked, rep.Errors)
		if rep.Errors > 0 {
			return fmt.Errorf("%d messages failed; last: %s", rep.Errors, rep.LastError)
		}
		return nil
	}

	now := time.Now().UTC().Truncate(time.Second)
	cfg := simulator.DefaultConfig()
	cfg.Seed, cfg.Shipments, cfg.Devices, cfg.Interval, cfg.Scenarios, cfg.Transport = *seed, *shipments, *devices, *interval, list, transport
	cfg.Span = time.Duration(float64(*duration) * *accelerate)
	if *duration == 0 {
		cfg.Span = 30 * 24 * time.Hour
	}
	cfg.Start = now
	if *accelerate > 1 {
		cfg.Start = now.Add(-cfg.Span)
	}
	if *keysDir != "" {
		cfg.Sign = deviceKeys(*keysDir, stderr)
	}
	g, err := simulator.NewGenerator(cfg)
	if err != nil {
		return usageErr("%v", err)
	}
	rec := simulator.NewRecorder(g, simulator.DefaultProfile())
	pub, err := open(min(*connections, *shipments**devices))
	if err != nil {
		return err
	}
	defer pub.Close()
	ships := g.Shipments()
	fmt.Fprintf(stderr, "simulating %d shipments × %d devices over %s, device time %s → %s (%v in %v), seed %d\n",
		len(ships), *devices, target, cfg.Start.Format(time.RFC3339), g.End().Format(time.RFC3339), cfg.Span, wallSpan(*duration), *seed)
	fmt.Fprintf(stderr, "shipments: %s …; scenarios: %s\n", ships[0].ID, orNone(*scenarios))

	rep, runErr := simulator.Run(ctx, g, pub, rec, stats, simulator.RunConfig{Accelerate: *accelerate, Progress: stderr}, time.Now)
	fmt.Fprintf(stdout, "sent %d messages: %d valid readings (%d distinct, %d duplicates), %d handovers, %d rejected by design; acknowledged %d, errors %d\n",
		rep.Counts.Messages, rep.Counts.Readings, rep.Counts.DistinctReadings, rep.Counts.Duplicates, rep.Counts.Handovers, rep.Counts.Rejected, rep.Acked, rep.Errors)
	if transport == simulator.TransportHTTP && rep.Mismatches > 0 {
		fmt.Fprintf(stdout, "the gateway answered %d requests differently than the ground truth says; last: %s\n", rep.Mismatches, rep.LastError)
	}
	if *truthPath != "" {
		if err := writeTruth(*truthPath, rec.Truth()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ground truth: %s\n", *truthPath)
	}
	if runErr != nil {
		return runErr
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d messages were not acknowledged; last: %s", rep.Errors, rep.LastError)
	}
	return nil
}

// sender is a publisher of either transport.
type sender interface {
	simulator.Publisher
	simulator.LoadSender
	Close()
}

func wallSpan(d time.Duration) string {
	if d == 0 {
		return "real time, until interrupted"
	}
	return d.String()
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none"
	}
	return s
}

func writeTruth(path string, t simulator.Truth) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("ground truth: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("ground truth: %w", err)
	}
	return nil
}

// deviceKeys returns the signing key of each device that has DIR/ID.key,
// read once; a device without one sends unsigned readings.
func deviceKeys(dir string, stderr io.Writer) func(string) ed25519.PrivateKey {
	keys := map[string]ed25519.PrivateKey{}
	return func(device string) ed25519.PrivateKey {
		if k, ok := keys[device]; ok {
			return k
		}
		var k ed25519.PrivateKey
		raw, err := os.ReadFile(filepath.Join(dir, device+".key"))
		if err == nil {
			if k, err = auth.ParsePrivateKey(raw); err != nil {
				fmt.Fprintf(stderr, "simulate: %s: %v; %s sends unsigned readings\n", filepath.Join(dir, device+".key"), err, device)
			} else {
				fmt.Fprintf(stderr, "simulate: %s signs its readings with key %s\n", device, auth.Fingerprint(k.Public().(ed25519.PublicKey)))
			}
		}
		keys[device] = k
		return k
	}
}
