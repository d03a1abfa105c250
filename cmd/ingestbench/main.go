// Command ingestbench measures how fast the gateway ingests readings over
// MQTT, next to what the embedded broker alone delivers, and prints the
// figures beside the goals. It is what `make bench` runs:
//
//	go run ./cmd/ingestbench [-publishers 4] [-duration 10s] [-batch 100] [-phase all] [-json]
//
// It runs up to three phases, each with fresh servers in a temporary data
// directory, all in this process:
//
//   - raw: a plain embedded mochi broker (mqttbroker.Start with no ingester,
//     so configured exactly as the gateway's) with N QoS 1 publishers on
//     distinct topics and one QoS 1 wildcard subscriber. It reports what the
//     broker acknowledged, what the subscriber received, and what was lost.
//   - single: the whole gateway (gateway.New and Run, everything embedded),
//     N devices each publishing one reading per message.
//   - signed: as single, but every device registered an Ed25519 key and
//     every reading carries its signature (signed before the phase starts,
//     so the load generator does not pay for signing while it measures).
//   - batch: the same with a JSON array of B readings per message.
//
// In the gateway phases the broker's ingest hook journals every publish
// before it sends the PUBACK, so a completed paho token means JetStream holds
// the readings; the count is checked at the end against the readings
// stream. Publishers are asynchronous, each with a window of at most -window
// messages without a PUBACK. After the last PUBACK the phase waits for the
// journal's consumers (dedup indexer, store writer, alert detector,
// anchorer) to reach the end of the stream, and reports the rate ingest and
// consumers sustain together beside the PUBACK rate.
//
// The load generator shares the CPUs with the servers it measures, and so
// does anything else running on the host: each phase reports the CPUs this
// process and everything else used, and this process's CPU time per
// reading, which others barely change. -wait-idle waits for a quiet host;
// -cpuprofile and -trace record where the time went.
//
// Missed goals are reported, not failed: the exit status is non-zero only
// when the benchmark itself went wrong, when the gateway lost or doubled a
// reading, or when a goroutine outlived the shutdown.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/embedded/mqttbroker"
	"github.com/coldchain/coldchain/gateway"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// The goals the figures are held against.
const (
	// goalSingleOfRaw is the share of the raw broker's delivered message
	// rate that single-reading ingest should reach (issue 16: 1.0, was 0.8).
	goalSingleOfRaw = 1.0
	// goalBatchRate is the batch ingest goal in readings PUBACKed a second.
	goalBatchRate = 200_000
	// goalBatchSustained is the batch goal in readings a second over
	// publishing and catch-up, every consumer at the end of the stream.
	goalBatchSustained = 300_000
	// goalSignedOfSingle is the share of the unsigned single-reading rate
	// that signed single readings should reach.
	goalSignedOfSingle = 0.8
)

// Phase names, in the order they run.
const (
	phaseRaw    = "raw"
	phaseSingle = "single"
	phaseSigned = "signed"
	phaseBatch  = "batch"
)

const usage = `Usage: ingestbench [flags]

Measures MQTT ingest: the plain embedded broker (raw), the gateway with one
reading per message (single), with one Ed25519-signed reading per message
from devices that registered keys (signed) and with a batch of readings per
message (batch). Progress goes to stderr, the table to stdout; with -json the table
goes to stderr too and stdout carries only the JSON results.

Flags:
`

// options are the command-line settings.
type options struct {
	publishers  int
	duration    time.Duration
	batch       int
	window      int
	phase       string
	json        bool
	cpuProfile  string
	memProfile  string
	trace       string
	waitIdle    time.Duration
	ackTimeout  time.Duration
	catchUpWait time.Duration
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var o options
	fs.IntVar(&o.publishers, "publishers", 4, "MQTT publisher connections (devices) per phase")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each phase publishes")
	fs.IntVar(&o.batch, "batch", 100, "readings per message in the batch phase")
	fs.IntVar(&o.window, "window", 64, "outstanding (un-PUBACKed) QoS 1 messages per publisher")
	fs.StringVar(&o.phase, "phase", "all", "phase to run: raw, single, signed, batch or all")
	fs.BoolVar(&o.json, "json", false, "write the results as JSON to stdout (the table then goes to stderr)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file`")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile of the whole run to `file` (go tool pprof -sample_index=alloc_space)")
	fs.StringVar(&o.trace, "trace", "", "write a runtime execution trace of the whole run to `file` (go tool trace)")
	fs.DurationVar(&o.waitIdle, "wait-idle", 0, "before each phase, wait up to this long for other processes to leave the CPUs idle")
	fs.DurationVar(&o.catchUpWait, "catch-up-wait", 2*time.Minute, "after a gateway phase, longest wait for the journal's consumers (dedup indexer, …) to catch up")
	fs.DurationVar(&o.ackTimeout, "ack-timeout", time.Minute, "longest wait for one PUBACK before the run is failed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "ingestbench: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "ingestbench: cpu profile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "ingestbench: cpu profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	if o.trace != "" {
		f, err := os.Create(o.trace)
		if err != nil {
			fmt.Fprintf(stderr, "ingestbench: trace: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			fmt.Fprintf(stderr, "ingestbench: trace: %v\n", err)
			return 1
		}
		defer trace.Stop()
	}

	// Everything the run starts must have stopped when it ends.
	running := []goleak.Option{
		goleak.IgnoreCurrent(),
		// go-ethereum starts its transaction sender cache once per
		// process, on first use, and never stops it.
		goleak.IgnoreTopFunction("github.com/ethereum/go-ethereum/core.(*txSenderCacher).cache"),
	}
	rep, err := bench(ctx, o, stderr)
	if o.memProfile != "" {
		if perr := writeAllocs(o.memProfile); perr != nil && err == nil {
			err = perr
		}
	}
	table := stdout
	if o.json {
		table = stderr
	}
	if len(rep.Phases) > 0 {
		rep.print(table)
	}
	if o.json && len(rep.Phases) > 0 {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil && err == nil {
			err = fmt.Errorf("write json: %w", jerr)
		}
	}
	if err == nil {
		err = rep.checkErr()
	}
	if err == nil {
		if lerr := goleak.Find(running...); lerr != nil {
			err = fmt.Errorf("goroutines left running after shutdown: %w", lerr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "ingestbench: %v\n", err)
		return 1
	}
	return 0
}

// writeAllocs writes the allocations since the process started to file.
func writeAllocs(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("memory profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("memory profile: %w", err)
	}
	return f.Close()
}

func (o options) validate() error {
	switch {
	case o.publishers < 1:
		return fmt.Errorf("-publishers: must be at least 1, got %d", o.publishers)
	case o.duration <= 0:
		return fmt.Errorf("-duration: must be positive, got %s", o.duration)
	case o.batch < 1 || o.batch > 10000:
		return fmt.Errorf("-batch: must be 1 to 10000 (ingest.max_records), got %d", o.batch)
	case o.window < 1 || o.window > 16384:
		return fmt.Errorf("-window: must be 1 to 16384, got %d", o.window)
	case o.catchUpWait < 0:
		return fmt.Errorf("-catch-up-wait: must not be negative, got %s", o.catchUpWait)
	case o.ackTimeout <= 0:
		return fmt.Errorf("-ack-timeout: must be positive, got %s", o.ackTimeout)
	}
	switch o.phase {
	case "all", phaseRaw, phaseSingle, phaseSigned, phaseBatch:
		return nil
	}
	return fmt.Errorf("-phase: want raw, single, signed, batch or all, got %q", o.phase)
}

// bench runs the selected phases and returns what they measured; a phase
// that fails ends the run, and the report holds the phases before it.
func bench(ctx context.Context, o options, stderr io.Writer) (*report, error) {
	rep := &report{
		Publishers: o.publishers, PhaseSeconds: o.duration.Seconds(), Window: o.window, Batch: o.batch,
		Machine: machineInfo(),
	}
	// The gateway's own logs: warnings and errors only, so that progress
	// lines stay readable and anything going wrong is still seen.
	log := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.Lock(zapcore.AddSync(stderr)), zap.WarnLevel))
	defer log.Sync() //nolint:errcheck // Nothing to do about a failed flush of stderr.

	fmt.Fprintf(stderr, "ingestbench: %d publishers, %s per phase, window %d, batch %d; %s, %d CPUs (GOMAXPROCS %d), %s\n",
		o.publishers, o.duration, o.window, o.batch, rep.Machine.CPU, rep.Machine.NumCPU, rep.Machine.GOMAXPROCS, rep.Machine.Go)
	for _, name := range []string{phaseRaw, phaseSingle, phaseSigned, phaseBatch} {
		if o.phase != "all" && o.phase != name {
			continue
		}
		if err := hostIdle(ctx, o.waitIdle, stderr); err != nil {
			return rep, err
		}
		var (
			res *phaseResult
			err error
		)
		if name == phaseRaw {
			res, err = runRaw(ctx, o, stderr)
		} else {
			perMsg := 1
			if name == phaseBatch {
				perMsg = o.batch
			}
			res, err = runGateway(ctx, o, name, perMsg, log, stderr)
		}
		if err != nil {
			return rep, fmt.Errorf("phase %s: %w", name, err)
		}
		rep.Phases = append(rep.Phases, res)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	rep.evaluate()
	return rep, nil
}

// ----------------------------------------------------------------------------
// Load: publishers with a bounded window of outstanding tokens.

// load counts what the publishers of one phase got acknowledged; progress
// reads it while they run.
type load struct {
	msgs     atomic.Uint64 // messages PUBACKed
	readings atomic.Uint64 // readings in PUBACKed messages
}

// pending is one published message whose PUBACK has not been seen yet.
type pending struct {
	tok      paho.Token
	start    time.Time
	readings int
}

// payloadFunc appends publisher client's next message payload, holding the
// readings with sequence numbers first, first+1, …, and returns how many it
// holds; 0 means the publisher has nothing more to send.
type payloadFunc func(b []byte, client int, first uint64, now time.Time) ([]byte, int)

// loadResult is what the publishers measured.
type loadResult struct {
	elapsed   time.Duration // from the first publish to the last PUBACK
	latencies []time.Duration
	cpuStart  cpuSample
	cpu       cpuUse
}

// publish runs one publishing loop per client until o.duration has passed,
// then waits for every outstanding PUBACK. Each client has at most
// window messages without a PUBACK: the publisher blocks on the window, so
// it publishes as fast as acknowledgements come back. A token error or a
// PUBACK that does not come within ackTimeout fails the phase.
func publish(ctx context.Context, clients []paho.Client, topics []string, payload payloadFunc, o options, l *load) (loadResult, error) {
	lats := make([][]time.Duration, len(clients))
	g, gctx := errgroup.WithContext(ctx)
	cpu0 := sampleCPU()
	start := time.Now()
	deadline := start.Add(o.duration)
	for i, c := range clients {
		// The window is a buffered channel on purpose: its capacity is the
		// number of tokens allowed in flight, and the waiter takes them in
		// publish order, the order one connection's PUBACKs come back in.
		window := make(chan pending, o.window)
		g.Go(func() error {
			defer close(window)
			seq := uint64(1)
			var buf []byte
			for gctx.Err() == nil {
				now := time.Now()
				if !now.Before(deadline) {
					return nil
				}
				// paho keeps the payload until the packet is written: every
				// message gets its own buffer.
				buf = make([]byte, 0, len(buf))
				b, n := payload(buf, i, seq, now)
				if n == 0 {
					return nil
				}
				buf = b
				seq += uint64(n)
				sent := time.Now()
				tok := c.Publish(topics[i], 1, false, b)
				select {
				case window <- pending{tok: tok, start: sent, readings: n}:
				case <-gctx.Done():
					return nil
				}
			}
			return nil
		})
		g.Go(func() error {
			timer := time.NewTimer(o.ackTimeout)
			defer timer.Stop()
			for p := range window {
				select {
				case <-p.tok.Done():
				default:
					timer.Reset(o.ackTimeout)
					select {
					case <-p.tok.Done():
					case <-timer.C:
						return fmt.Errorf("%s: no PUBACK within %s", topics[i], o.ackTimeout)
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				if err := p.tok.Error(); err != nil {
					return fmt.Errorf("%s: publish: %w", topics[i], err)
				}
				lats[i] = append(lats[i], time.Since(p.start))
				l.msgs.Add(1)
				l.readings.Add(uint64(p.readings))
			}
			return nil
		})
	}
	err := g.Wait()
	res := loadResult{elapsed: time.Since(start), cpuStart: cpu0, cpu: sampleCPU().since(cpu0)}
	for _, ls := range lats {
		res.latencies = append(res.latencies, ls...)
	}
	return res, err
}

// connect connects a paho client to the broker at addr (host:port).
func connect(ctx context.Context, addr, id string, configure func(*paho.ClientOptions)) (paho.Client, error) {
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(30 * time.Second).
		SetKeepAlive(30 * time.Second).
		// Only matters on a resumed session; set so a resume could not
		// flood the broker either.
		SetMaxResumePubInFlight(1024)
	if configure != nil {
		configure(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect %s as %s: %w", addr, id, err)
	}
	return c, nil
}

func connectAll(ctx context.Context, addr, prefix string, n int) ([]paho.Client, error) {
	clients := make([]paho.Client, 0, n)
	for i := range n {
		c, err := connect(ctx, addr, fmt.Sprintf("%s-%d", prefix, i), nil)
		if err != nil {
			disconnectAll(clients)
			return nil, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}

func disconnectAll(clients []paho.Client) {
	for _, c := range clients {
		c.Disconnect(250)
	}
}

// appendReading appends one reading object as a device sends it:
// {"seq":7,"ts":"2026-05-01T12:00:00.123Z","temp_c":4.5}.
func appendReading(b []byte, seq uint64, ts []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"ts":"`...)
	b = append(b, ts...)
	b = append(b, `","temp_c":`...)
	// 2.0 to 7.9 °C, inside a 2–8 °C profile.
	b = strconv.AppendFloat(b, 2+float64(seq%60)/10, 'f', 1, 64)
	return append(b, '}')
}

// tsLayout is RFC 3339 in UTC with milliseconds.
const tsLayout = "2006-01-02T15:04:05.000Z07:00"

func singlePayload(b []byte, _ int, first uint64, now time.Time) ([]byte, int) {
	var ts [32]byte
	return appendReading(b, first, now.UTC().AppendFormat(ts[:0], tsLayout)), 1
}

func batchPayload(n int) payloadFunc {
	return func(b []byte, _ int, first uint64, now time.Time) ([]byte, int) {
		var ts [32]byte
		t := now.UTC().AppendFormat(ts[:0], tsLayout)
		b = append(b, '[')
		for k := range n {
			if k > 0 {
				b = append(b, ',')
			}
			b = appendReading(b, first+uint64(k), t)
		}
		return append(b, ']'), n
	}
}

// signedPoolRate bounds the signed phase: each publisher gets
// duration × signedPoolRate / publishers signed readings, made before the
// phase starts, and stops early if it sends them all.
const signedPoolRate = 60_000

// benchKey is the signing key of bench device dev.
func benchKey(dev string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("ingestbench " + dev))
	return ed25519.NewKeyFromSeed(seed[:])
}

// signedPayload registers an Ed25519 key for each publisher's device in
// the gateway's directory and signs every reading the phase may send, in
// parallel, before the phase starts: the figure is what verifying costs the
// gateway, not what signing costs the load generator. Readings are 1 ms
// apart and end at the phase's start.
func signedPayload(ctx context.Context, js jetstream.JetStream, o options, name string, stderr io.Writer) (payloadFunc, error) {
	dir, err := auth.OpenDirectory(ctx, js, 1)
	if err != nil {
		return nil, fmt.Errorf("open the key directory: %w", err)
	}
	per := max(1, int(o.duration.Seconds()*signedPoolRate)/o.publishers)
	pools := make([][][]byte, o.publishers)
	base := time.Now().Add(-time.Duration(per) * time.Millisecond).Truncate(time.Millisecond)
	var signed atomic.Uint64
	_, err = withProgress(stderr, name, func(time.Duration) string {
		return fmt.Sprintf("signing readings: %s of %s", count(signed.Load()), count(uint64(per*o.publishers)))
	}, func() (struct{}, error) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(runtime.GOMAXPROCS(0))
		for i := range pools {
			dev := benchDevice(i)
			key := benchKey(dev)
			if err := dir.AddKey(ctx, dev, key.Public().(ed25519.PublicKey), time.Now()); err != nil {
				return struct{}{}, fmt.Errorf("register the key of %s: %w", dev, err)
			}
			scope := record.Scope{Shipment: benchShipment(name), Device: dev}
			pools[i] = make([][]byte, per)
			g.Go(func() error {
				var ts [32]byte
				for k := range per {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					t := base.Add(time.Duration(k)*time.Millisecond).UTC().AppendFormat(ts[:0], tsLayout)
					b, err := record.SignReading(appendReading(nil, uint64(k+1), t), scope, key)
					if err != nil {
						return fmt.Errorf("sign a reading of %s: %w", dev, err)
					}
					pools[i][k] = b
					signed.Add(1)
				}
				return nil
			})
		}
		return struct{}{}, g.Wait()
	})
	if err != nil {
		return nil, err
	}
	// The gateway's key ring follows the directory; give it the keys
	// before the first reading. A device whose key it had not seen would
	// have its readings refused and dead-lettered, which fails the phase.
	time.Sleep(500 * time.Millisecond)
	return func(b []byte, client int, first uint64, _ time.Time) ([]byte, int) {
		if first > uint64(len(pools[client])) {
			return b, 0
		}
		return append(b, pools[client][first-1]...), 1
	}, nil
}

// benchShipment and benchDevice name the shipment and the devices of a phase.
func benchShipment(phase string) string { return "BENCH-" + phase }
func benchDevice(i int) string          { return fmt.Sprintf("dev-%03d", i) }

// progress prints one line a second until stop is closed; line returns the
// figures, given the time since the previous line.
func progress(stderr io.Writer, name string, stop <-chan struct{}, line func(dt time.Duration) string) {
	start := time.Now()
	last := start
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			fmt.Fprintf(stderr, "  %-6s %5.1fs  %s\n", name, now.Sub(start).Seconds(), line(now.Sub(last)))
			last = now
		}
	}
}

// withProgress runs fn while printing progress.
func withProgress[T any](stderr io.Writer, name string, line func(dt time.Duration) string, fn func() (T, error)) (T, error) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		progress(stderr, name, stop, line)
	}()
	v, err := fn()
	close(stop)
	<-done
	return v, err
}

// rater turns a counter into a per-second rate between progress lines.
type rater struct{ prev uint64 }

func (r *rater) rate(cur uint64, dt time.Duration) float64 {
	d := cur - r.prev
	r.prev = cur
	return float64(d) / dt.Seconds()
}

// cpuSample is this process's CPU time and the host's CPU counters at one
// moment.
type cpuSample struct {
	wall time.Time
	self time.Duration
	// busy, steal, iowait and total are /proc/stat jiffies summed over all
	// CPUs; total is 0 where /proc/stat cannot be read.
	busy, steal, iowait, total uint64
}

// cpuUse is how many CPUs were busy, on average, between two samples.
type cpuUse struct {
	// Self is the CPUs this process used: servers and load generator.
	Self float64 `json:"self"`
	// Others is the CPUs everything else on the host used (other processes,
	// kernel threads, interrupts); -1 when unknown.
	Others float64 `json:"others"`
	// Steal is the CPUs the hypervisor gave to someone else while this
	// virtual machine wanted them; -1 when unknown. Others or Steal above a
	// few tenths means the figures are low.
	Steal float64 `json:"steal"`
	// IOWait is the CPUs idle while waiting for disk I/O; -1 when unknown.
	IOWait float64 `json:"iowait"`
	// SelfSeconds is this process's CPU time in seconds.
	SelfSeconds float64 `json:"self_seconds"`
}

func sampleCPU() cpuSample {
	s := cpuSample{wall: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already counted in user.
	for i, f := range fields[1:min(len(fields), 9)] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuSample{wall: s.wall, self: s.self}
		}
		s.total += v
		switch i {
		case 3: // idle
		case 4:
			s.iowait += v
		case 7:
			s.steal += v
		default:
			s.busy += v
		}
	}
	return s
}

// busyOthers is the CPUs other processes and the hypervisor may take before
// the figures are disturbed.
const busyOthers = 0.25

// hostIdle waits up to wait, in one-second samples, for other processes and
// the hypervisor to take less than busyOthers CPUs, and warns when they do
// not.
func hostIdle(ctx context.Context, wait time.Duration, stderr io.Writer) error {
	deadline := time.Now().Add(wait)
	for {
		prev := sampleCPU()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		u := sampleCPU().since(prev)
		if u.Others+max(u.Steal, 0) < busyOthers {
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "  warning: other processes are using %.2f CPUs of %d and the hypervisor %.2f; the figures will be low\n",
				u.Others, runtime.NumCPU(), u.Steal)
			return nil
		}
	}
}

func (s cpuSample) since(prev cpuSample) cpuUse {
	wall := s.wall.Sub(prev.wall).Seconds()
	self := (s.self - prev.self).Seconds()
	u := cpuUse{Self: self / wall, Others: -1, Steal: -1, IOWait: -1, SelfSeconds: self}
	if s.total > prev.total && prev.total > 0 {
		cpus := func(a, b uint64) float64 {
			return float64(a-b) / float64(s.total-prev.total) * float64(runtime.NumCPU())
		}
		u.Others = max(cpus(s.busy, prev.busy)-u.Self, 0)
		u.Steal = cpus(s.steal, prev.steal)
		u.IOWait = cpus(s.iowait, prev.iowait)
	}
	return u
}

// ----------------------------------------------------------------------------
// Phase raw: the plain broker, publishers and one subscriber.

// subscriber counts what the wildcard subscription receives, per publisher
// and sequence number, so that duplicates are told from new messages.
type subscriber struct {
	mu       sync.Mutex
	seen     [][]uint64 // per publisher: bit seq is set once seq arrived
	received atomic.Uint64
	dups     atomic.Uint64
	bad      atomic.Uint64 // payloads or topics it could not place
	last     atomic.Int64  // Unix ns of the latest message
}

func (s *subscriber) handle(_ paho.Client, m paho.Message) {
	s.last.Store(time.Now().UnixNano())
	topic := m.Topic()
	pub, err := strconv.Atoi(topic[strings.LastIndexByte(topic, '/')+1:])
	seq, ok := leadingSeq(m.Payload())
	if err != nil || !ok || pub < 0 || pub >= len(s.seen) {
		s.bad.Add(1)
		return
	}
	s.mu.Lock()
	bits := s.seen[pub]
	w := int(seq / 64)
	if w >= len(bits) {
		// Grow to 2w+1 words, so growing costs amortised O(1).
		bits = append(bits, make([]uint64, w-len(bits)+1+len(bits))...)
		s.seen[pub] = bits
	}
	mask := uint64(1) << (seq % 64)
	dup := bits[w]&mask != 0
	bits[w] |= mask
	s.mu.Unlock()
	if dup {
		s.dups.Add(1)
		return
	}
	s.received.Add(1)
}

// leadingSeq parses the seq of a payload starting {"seq":N.
func leadingSeq(p []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(p, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	v, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return v, err == nil
}

// startRawBroker starts the plain broker the way the gateway configures it:
// mqttbroker.Start with a nil ingester, so the same capabilities, including
// MaximumClientWritesPending 64 Ki, and no ingest hook.
func startRawBroker() (*mqttbroker.Broker, error) {
	cfg := config.Default().MQTT.Broker
	cfg.Listen = "127.0.0.1:0"
	return mqttbroker.Start(cfg, nil, nil, zap.NewNop())
}

func runRaw(ctx context.Context, o options, stderr io.Writer) (*phaseResult, error) {
	fmt.Fprintf(stderr, "phase raw: plain embedded broker, %d publishers, 1 subscriber\n", o.publishers)
	broker, err := startRawBroker()
	if err != nil {
		return nil, err
	}
	var closeOnce sync.Once
	closeBroker := func() { closeOnce.Do(func() { broker.Close(5 * time.Second) }) }
	defer closeBroker()

	sub := &subscriber{seen: make([][]uint64, o.publishers)}
	subClient, err := connect(ctx, broker.Addr(), "ingestbench-sub", func(opts *paho.ClientOptions) {
		// The handler only counts; ordered delivery keeps it on one
		// goroutine, as a simple ingest subscriber would be.
		opts.SetOrderMatters(true)
	})
	if err != nil {
		return nil, err
	}
	defer subClient.Disconnect(250)
	if tok := subClient.Subscribe("bench/raw/#", 1, sub.handle); !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("subscribe: no SUBACK within 10s")
	} else if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}

	clients, err := connectAll(ctx, broker.Addr(), "ingestbench-raw", o.publishers)
	if err != nil {
		return nil, err
	}
	defer disconnectAll(clients)
	topics := make([]string, len(clients))
	for i := range clients {
		topics[i] = "bench/raw/" + strconv.Itoa(i)
	}

	var l load
	var pubRate, subRate rater
	start := time.Now()
	lr, err := withProgress(stderr, phaseRaw, func(dt time.Duration) string {
		return fmt.Sprintf("PUBACKed %s msgs (%s/s)  received %s (%s/s)",
			count(l.msgs.Load()), count(uint64(pubRate.rate(l.msgs.Load(), dt))),
			count(sub.received.Load()), count(uint64(subRate.rate(sub.received.Load(), dt))))
	}, func() (loadResult, error) {
		return publish(ctx, clients, topics, singlePayload, o, &l)
	})
	if err != nil {
		return nil, err
	}

	// Let the subscriber catch up: until it has everything, or nothing
	// arrived for 2 s, or 30 s passed.
	published := l.msgs.Load()
	settle := time.Now().Add(30 * time.Second)
	for sub.received.Load() < published && time.Now().Before(settle) && ctx.Err() == nil {
		if time.Since(time.Unix(0, sub.last.Load())) > 2*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	disconnectAll(clients)
	subClient.Disconnect(250)
	closeBroker()

	received := sub.received.Load()
	recvSpan := time.Duration(sub.last.Load() - start.UnixNano())
	if received == 0 {
		recvSpan = lr.elapsed
	}
	res := &phaseResult{
		Name: phaseRaw, Publishers: o.publishers, ReadingsPerMessage: 1,
		Seconds:         lr.elapsed.Seconds(),
		Messages:        published,
		Readings:        published,
		MessagesPerSec:  float64(published) / lr.elapsed.Seconds(),
		Delivered:       received,
		DeliveredPerSec: float64(received) / recvSpan.Seconds(),
		Lost:            int64(published) - int64(received),
		Duplicates:      sub.dups.Load(),
		Latency:         percentiles(lr.latencies),
	}
	res.ReadingsPerSec = res.MessagesPerSec
	res.setCPU(lr.cpu)
	if b := sub.bad.Load(); b > 0 {
		return res, fmt.Errorf("subscriber got %d messages it could not place", b)
	}
	return res, nil
}

// ----------------------------------------------------------------------------
// Phases single and batch: the whole gateway.

func runGateway(ctx context.Context, o options, name string, perMsg int, log *zap.Logger, stderr io.Writer) (res *phaseResult, err error) {
	fmt.Fprintf(stderr, "phase %s: gateway (embedded broker and JetStream), %d publishers, %d reading(s) a message\n", name, o.publishers, perMsg)
	dir, err := os.MkdirTemp("", "ingestbench-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.MQTT.Broker.Listen = "127.0.0.1:0"
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Chain.Listen = "127.0.0.1:0"
	// The bench publishers connect anonymously: it measures ingest, not
	// the one bcrypt check a device pays per connection.
	cfg.MQTT.Broker.AllowAnonymous = true
	cfg.HTTP.AllowAnonymous = true
	g, err := gateway.New(cfg, log.Named(name))
	if err != nil {
		return nil, err
	}
	gctx, stopGateway := context.WithCancel(ctx)
	defer stopGateway()
	runErr := make(chan error, 1) // Run's result, read once it returns
	go func() { runErr <- g.Run(gctx) }()
	// The gateway shuts down on every return, and the phase fails if it
	// does not stop cleanly.
	defer func() {
		stopGateway()
		select {
		case rerr := <-runErr:
			if rerr != nil && err == nil {
				err = fmt.Errorf("gateway: %w", rerr)
			}
		case <-time.After(cfg.ShutdownTimeout + 10*time.Second):
			if err == nil {
				err = errors.New("gateway did not stop")
			}
		}
	}()
	select {
	case <-g.Ready():
	case rerr := <-runErr:
		runErr <- rerr // for the deferred shutdown
		if rerr == nil {
			return nil, fmt.Errorf("gateway stopped before ready: %w", ctx.Err())
		}
		return nil, fmt.Errorf("gateway stopped before ready: %w", rerr)
	case <-time.After(60 * time.Second):
		return nil, errors.New("gateway not ready within 60s")
	}

	nc, err := nats.Connect(g.NATSURL(), nats.Name("ingestbench"))
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", g.NATSURL(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	before, err := streamMsgs(ctx, js, journal.StreamReadings)
	if err != nil {
		return nil, err
	}
	deadBefore, err := streamMsgs(ctx, js, journal.StreamDeadLetters)
	if err != nil {
		return nil, err
	}

	clients, err := connectAll(ctx, g.MQTTAddr(), "ingestbench-"+name, o.publishers)
	if err != nil {
		return nil, err
	}
	defer disconnectAll(clients)
	topics := make([]string, len(clients))
	for i := range clients {
		topics[i] = "coldchain/v1/" + benchShipment(name) + "/" + benchDevice(i) + "/readings"
	}
	payload := payloadFunc(singlePayload)
	if perMsg > 1 {
		payload = batchPayload(perMsg)
	}
	if name == phaseSigned {
		if payload, err = signedPayload(ctx, js, o, name, stderr); err != nil {
			return nil, err
		}
	}

	var l load
	var rdRate rater
	lr, err := withProgress(stderr, name, func(dt time.Duration) string {
		return fmt.Sprintf("PUBACKed %s readings (%s readings/s)  in %s msgs",
			count(l.readings.Load()), count(uint64(rdRate.rate(l.readings.Load(), dt))), count(l.msgs.Load()))
	}, func() (loadResult, error) {
		return publish(ctx, clients, topics, payload, o, &l)
	})
	if err != nil {
		return nil, err
	}
	disconnectAll(clients)

	after, err := streamMsgs(ctx, js, journal.StreamReadings)
	if err != nil {
		return nil, err
	}
	deadAfter, err := streamMsgs(ctx, js, journal.StreamDeadLetters)
	if err != nil {
		return nil, err
	}
	behind, err := streamBacklog(ctx, js)
	if err != nil {
		return nil, err
	}
	// The journal's consumers (the dedup indexer first) may trail ingest;
	// what the gateway sustains is what they all get through.
	catchUp, caught, err := waitConsumers(ctx, js, o.catchUpWait, stderr, name)
	if err != nil {
		return nil, err
	}
	withIndex := sampleCPU().since(lr.cpuStart)

	acked := l.readings.Load()
	stored := after - before
	res = &phaseResult{
		Name: name, Publishers: o.publishers, ReadingsPerMessage: perMsg,
		Seconds:         lr.elapsed.Seconds(),
		Messages:        l.msgs.Load(),
		Readings:        acked,
		MessagesPerSec:  float64(l.msgs.Load()) / lr.elapsed.Seconds(),
		ReadingsPerSec:  float64(acked) / lr.elapsed.Seconds(),
		Delivered:       stored,
		DeliveredPerSec: float64(stored) / lr.elapsed.Seconds(),
		Lost:            int64(acked) - int64(stored),
		DeadLetters:     deadAfter - deadBefore,
		Backlog:         behind,
		CatchUp:         catchUp.Seconds(),
		CaughtUp:        caught,
		SustainedPerSec: float64(acked) / (lr.elapsed + catchUp).Seconds(),
		Latency:         percentiles(lr.latencies),
	}
	res.setCPU(lr.cpu)
	if acked > 0 && caught {
		res.CPUMicrosPerReadingAll = withIndex.SelfSeconds * 1e6 / float64(acked)
	}
	if stored < acked {
		res.Check = fmt.Sprintf("FAILED: stream holds %s readings, %s were PUBACKed: %s lost", count(stored), count(acked), count(acked-stored))
	} else if stored > acked {
		res.Check = fmt.Sprintf("FAILED: stream holds %s readings, %s were PUBACKed: %s doubled or unacknowledged", count(stored), count(acked), count(stored-acked))
	} else {
		res.Check = fmt.Sprintf("ok: stream holds %s readings = %s PUBACKed (nothing lost, nothing doubled)", count(stored), count(acked))
	}
	if res.DeadLetters > 0 {
		res.Check += fmt.Sprintf("; FAILED: %d dead letters", res.DeadLetters)
	}
	return res, nil
}

// streamMsgs returns the number of records in stream, chunks unpacked.
func streamMsgs(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var n uint64
	err := journal.ReadStream(ctx, js, stream, "", func(journal.Msg) error { n++; return nil })
	return n, err
}

// backlog is how far the consumers of the readings stream trail it.
type backlog struct {
	// Messages is the most journal messages one consumer has not
	// acknowledged yet: not delivered to it, or delivered and not acked. A
	// message is a chunk of readings (one to thousands), so this is not a
	// count of readings.
	Messages uint64 `json:"messages"`
	// Slowest names that consumer.
	Slowest string `json:"slowest,omitempty"`
	// Consumers is every consumer's backlog, by name.
	Consumers map[string]uint64 `json:"consumers,omitempty"`
}

// streamBacklog returns the backlog of the consumers of the readings stream:
// the dedup indexer and whatever else the gateway runs on the journal (store
// writer, alert detector, anchorer).
func streamBacklog(ctx context.Context, js jetstream.JetStream) (backlog, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, journal.StreamReadings)
	if err != nil {
		return backlog{}, fmt.Errorf("stream %s: %w", journal.StreamReadings, err)
	}
	b := backlog{Consumers: map[string]uint64{}}
	l := s.ListConsumers(ctx)
	for info := range l.Info() {
		n := info.NumPending + uint64(info.NumAckPending)
		b.Consumers[info.Name] = n
		if n > b.Messages || b.Slowest == "" {
			b.Messages, b.Slowest = n, info.Name
		}
	}
	if err := l.Err(); err != nil {
		return backlog{}, fmt.Errorf("consumers of %s: %w", journal.StreamReadings, err)
	}
	return b, nil
}

// waitConsumers waits up to limit for every consumer of the readings stream
// to reach its end, and returns how long that took and whether they did.
func waitConsumers(ctx context.Context, js jetstream.JetStream, limit time.Duration, stderr io.Writer, name string) (time.Duration, bool, error) {
	start := time.Now()
	var last atomic.Pointer[backlog]
	last.Store(&backlog{})
	type result struct {
		took   time.Duration
		caught bool
	}
	r, err := withProgress(stderr, name, func(time.Duration) string {
		b := last.Load()
		return fmt.Sprintf("consumers catching up: %s journal messages behind (%s)", count(b.Messages), b.Slowest)
	}, func() (result, error) {
		for {
			b, err := streamBacklog(ctx, js)
			if err != nil {
				return result{}, err
			}
			last.Store(&b)
			if b.Messages == 0 {
				return result{took: time.Since(start), caught: true}, nil
			}
			if time.Since(start) > limit {
				return result{took: time.Since(start)}, nil
			}
			select {
			case <-ctx.Done():
				return result{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return r.took, r.caught, err
}

// ----------------------------------------------------------------------------
// Results.

// latency holds publish→PUBACK percentiles in milliseconds.
type latency struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func percentiles(ds []time.Duration) latency {
	if len(ds) == 0 {
		return latency{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return float64(ds[max(i, 0)]) / float64(time.Millisecond)
	}
	return latency{P50: at(0.50), P99: at(0.99), Max: at(1)}
}

// phaseResult is what one phase measured.
type phaseResult struct {
	Name               string  `json:"name"`
	Publishers         int     `json:"publishers"`
	ReadingsPerMessage int     `json:"readings_per_message"`
	Seconds            float64 `json:"seconds"` // first publish to last PUBACK
	// Messages and Readings were PUBACKed.
	Messages       uint64  `json:"messages"`
	Readings       uint64  `json:"readings"`
	MessagesPerSec float64 `json:"messages_per_sec"`
	ReadingsPerSec float64 `json:"readings_per_sec"`
	// Delivered is what reached the far end: for raw, distinct messages the
	// subscriber received; for the gateway, readings the stream gained.
	Delivered       uint64  `json:"delivered"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	// Lost is PUBACKed minus delivered; negative means more was delivered.
	Lost       int64   `json:"lost"`
	Duplicates uint64  `json:"duplicates,omitempty"`
	Latency    latency `json:"publish_to_puback"`
	// CPU is what the phase used while publishing; CPUMicrosPerReading is
	// this process's CPU time (servers and load generator) per PUBACKed
	// reading, which contention from other processes barely changes.
	CPU                 cpuUse  `json:"cpu"`
	CPUMicrosPerReading float64 `json:"cpu_us_per_reading"`
	// Gateway only.
	DeadLetters uint64 `json:"dead_letters,omitempty"`
	// Backlog is how far the readings stream's consumers trailed when the
	// last PUBACK came; CatchUp is how long, in seconds, they then took to
	// reach its end (CaughtUp false: they did not within -catch-up-wait).
	Backlog  backlog `json:"consumer_backlog"`
	CatchUp  float64 `json:"catch_up_seconds"`
	CaughtUp bool    `json:"caught_up"`
	// SustainedPerSec is PUBACKed readings over the publishing time plus the
	// catch-up: the rate ingest and the consumers keep up with together.
	SustainedPerSec float64 `json:"sustained_readings_per_sec,omitempty"`
	// CPUMicrosPerReadingAll is CPUMicrosPerReading with the catch-up
	// included.
	CPUMicrosPerReadingAll float64 `json:"cpu_us_per_reading_with_catch_up,omitempty"`
	Check                  string  `json:"check,omitempty"`
}

func (p *phaseResult) setCPU(u cpuUse) {
	p.CPU = u
	if p.Readings > 0 {
		p.CPUMicrosPerReading = u.SelfSeconds * 1e6 / float64(p.Readings)
	}
}

// goal is one goal and whether the run met it.
type goal struct {
	Name   string  `json:"name"`
	Target float64 `json:"target"`
	Actual float64 `json:"actual"`
	Met    bool    `json:"met"`
	Note   string  `json:"note"`
}

type machine struct {
	CPU        string `json:"cpu"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	OS         string `json:"os"`
}

func machineInfo() machine {
	m := machine{CPU: "unknown", NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// report is the whole run.
type report struct {
	Machine      machine        `json:"machine"`
	Publishers   int            `json:"publishers"`
	PhaseSeconds float64        `json:"phase_seconds"`
	Window       int            `json:"window"`
	Batch        int            `json:"batch"`
	Phases       []*phaseResult `json:"phases"`
	// SingleOfRaw is single readings/s over raw delivered msg/s;
	// SingleOfRawAcked is over raw PUBACKed msg/s.
	SingleOfRaw      float64 `json:"single_of_raw,omitempty"`
	SingleOfRawAcked float64 `json:"single_of_raw_acked,omitempty"`
	// SignedOfSingle is signed readings/s over unsigned single readings/s.
	SignedOfSingle float64 `json:"signed_of_single,omitempty"`
	Goals          []goal  `json:"goals"`
}

func (r *report) phase(name string) *phaseResult {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (r *report) evaluate() {
	raw, single, signed, batch := r.phase(phaseRaw), r.phase(phaseSingle), r.phase(phaseSigned), r.phase(phaseBatch)
	if raw != nil && single != nil && raw.DeliveredPerSec > 0 {
		r.SingleOfRaw = single.ReadingsPerSec / raw.DeliveredPerSec
		r.SingleOfRawAcked = single.ReadingsPerSec / raw.MessagesPerSec
		r.Goals = append(r.Goals, goal{
			Name: fmt.Sprintf("single >= %.1f x raw", goalSingleOfRaw), Target: goalSingleOfRaw, Actual: r.SingleOfRaw, Met: r.SingleOfRaw >= goalSingleOfRaw,
			Note: fmt.Sprintf("single %s readings/s vs raw %s msg/s delivered to the subscriber (%.2f x raw PUBACKed %s msg/s)",
				count(uint64(single.ReadingsPerSec)), count(uint64(raw.DeliveredPerSec)), r.SingleOfRawAcked, count(uint64(raw.MessagesPerSec))),
		})
	}
	if single != nil && signed != nil && single.ReadingsPerSec > 0 {
		r.SignedOfSingle = signed.ReadingsPerSec / single.ReadingsPerSec
		r.Goals = append(r.Goals, goal{
			Name: fmt.Sprintf("signed >= %.1f x single", goalSignedOfSingle), Target: goalSignedOfSingle, Actual: r.SignedOfSingle, Met: r.SignedOfSingle >= goalSignedOfSingle,
			Note: fmt.Sprintf("signed %s readings/s vs unsigned %s readings/s, one reading a message; %.0f vs %.0f CPU µs a reading",
				count(uint64(signed.ReadingsPerSec)), count(uint64(single.ReadingsPerSec)), signed.CPUMicrosPerReading, single.CPUMicrosPerReading),
		})
	}
	if batch != nil {
		r.Goals = append(r.Goals, goal{
			Name: "batch >= 200,000 readings/s", Target: goalBatchRate, Actual: batch.ReadingsPerSec, Met: batch.ReadingsPerSec >= goalBatchRate,
			Note: fmt.Sprintf("batch %s readings/s PUBACKed (%d readings a message)", count(uint64(batch.ReadingsPerSec)), batch.ReadingsPerMessage),
		})
		note := fmt.Sprintf("batch %s readings/s over publishing and %.1f s of catch-up, every consumer at the end of the stream", count(uint64(batch.SustainedPerSec)), batch.CatchUp)
		if !batch.CaughtUp {
			note = fmt.Sprintf("the consumers had not caught up %s after the last PUBACK", time.Duration(batch.CatchUp*float64(time.Second)))
		}
		r.Goals = append(r.Goals, goal{
			Name: "batch sustained >= 300,000 readings/s", Target: goalBatchSustained, Actual: batch.SustainedPerSec,
			Met: batch.CaughtUp && batch.SustainedPerSec >= goalBatchSustained, Note: note,
		})
	}
}

// checkErr reports a gateway phase that lost or doubled readings.
func (r *report) checkErr() error {
	for _, p := range r.Phases {
		if strings.Contains(p.Check, "FAILED") {
			return fmt.Errorf("phase %s: %s", p.Name, p.Check)
		}
	}
	return nil
}

func (r *report) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\ningest benchmark — %s, %d CPUs (GOMAXPROCS %d), %s %s\n", m.CPU, m.NumCPU, m.GOMAXPROCS, m.Go, m.OS)
	fmt.Fprintf(w, "%d publishers, QoS 1, window %d un-PUBACKed messages each, %s per phase; load generator in the same process\n\n",
		r.Publishers, r.Window, time.Duration(r.PhaseSeconds*float64(time.Second)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\treadings/msg\tPUBACKed/s\tdelivered/s\tlost\tp50 ms\tp99 ms\tmax ms\tbacklog\tcatch-up s\tsustained/s\tCPUs self\tothers\tsteal\tCPU µs/reading\t")
	for _, p := range r.Phases {
		others, steal := "?", "?"
		if p.CPU.Others >= 0 {
			others, steal = fmt.Sprintf("%.2f", p.CPU.Others), fmt.Sprintf("%.2f", p.CPU.Steal)
		}
		backlog, catchUp, sustained, cpu := "-", "-", count(uint64(p.DeliveredPerSec)), fmt.Sprintf("%.0f", p.CPUMicrosPerReading)
		if p.Name != phaseRaw {
			backlog = count(p.Backlog.Messages)
			catchUp = fmt.Sprintf("%.1f", p.CatchUp)
			sustained = count(uint64(p.SustainedPerSec))
			if !p.CaughtUp {
				catchUp, sustained = ">"+catchUp, "<"+sustained
			}
			if p.CPUMicrosPerReadingAll > 0 {
				cpu += fmt.Sprintf(" (%.0f)", p.CPUMicrosPerReadingAll)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%.2f\t%.2f\t%.1f\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t\n",
			p.Name, p.ReadingsPerMessage, count(uint64(p.ReadingsPerSec)), count(uint64(p.DeliveredPerSec)), p.Lost,
			p.Latency.P50, p.Latency.P99, p.Latency.Max, backlog, catchUp, sustained, p.CPU.Self, others, steal, cpu)
	}
	tw.Flush()
	fmt.Fprint(w, `
  PUBACKed/s: readings a second the publishers got a PUBACK for. delivered/s: raw — distinct
  messages the subscriber received a second; gateway — readings the COLDCHAIN_READINGS stream
  gained a second. Latency: per message, publish call to PUBACK, waiting behind the window
  included. backlog: journal messages (chunks of readings) the slowest consumer of the stream
  (dedup indexer, whose ordered consumers have generated names; store writer, alert detector,
  anchorer) had not acknowledged at the last PUBACK; catch-up: seconds until every
  consumer reached the end; sustained/s: readings over publishing plus catch-up time.
  CPUs: average busy while publishing — this process (servers and load generator), everything
  else in this machine, and steal: CPU time the hypervisor gave to others while this virtual
  machine wanted it. CPU µs/reading: this process's CPU time per reading (with the catch-up).
`)
	for _, p := range r.Phases {
		switch p.Name {
		case phaseRaw:
			lostPct := 0.0
			if p.Messages > 0 {
				lostPct = 100 * float64(p.Lost) / float64(p.Messages)
			}
			fmt.Fprintf(w, "\n  raw: the subscriber received %s of %s PUBACKed messages, missed %s (%.1f%%), %d duplicates\n",
				count(p.Delivered), count(p.Messages), count(uint64(max(p.Lost, 0))), lostPct, p.Duplicates)
		default:
			fmt.Fprintf(w, "\n  %s: %s\n", p.Name, p.Check)
			if len(p.Backlog.Consumers) > 0 {
				names := slices.Sorted(maps.Keys(p.Backlog.Consumers))
				parts := make([]string, len(names))
				for i, n := range names {
					parts[i] = n + " " + count(p.Backlog.Consumers[n])
				}
				fmt.Fprintf(w, "  %s: journal messages behind at the last PUBACK: %s\n", p.Name, strings.Join(parts, ", "))
			}
		}
	}
	if len(r.Goals) > 0 {
		fmt.Fprintln(w, "\ngoals")
		for _, g := range r.Goals {
			verdict := "MISSED"
			if g.Met {
				verdict = "met"
			}
			actual := count(uint64(g.Actual))
			if g.Target < 10 {
				actual = fmt.Sprintf("%.2f", g.Actual)
			}
			fmt.Fprintf(w, "  %-38s %-7s  %s — %s\n", g.Name, verdict, actual, g.Note)
		}
	}
	fmt.Fprintln(w)
}

// count formats n with thousands separators.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
