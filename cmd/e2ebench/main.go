// Command e2ebench races the gateway against Telegraf end to end, in one
// run, on the same load: single-reading QoS 1 MQTT messages through a real
// Mosquitto into a real InfluxDB 1.8. It is what `make bench-e2e` runs
// (scripts/bench-e2e.sh starts the peers and builds Telegraf):
//
//	go run ./cmd/e2ebench -telegraf PATH -mqtt tcp://127.0.0.1:18830 -influx http://127.0.0.1:18086
//
// Each contender gets the same readings (-readings, over -publishers
// connections with a window of -window un-PUBACKed messages each):
//
//   - telegraf: Telegraf's mqtt_consumer (QoS 1, persistent session) with
//     the json_v2 parser, into InfluxDB through its influxdb_v2 output;
//   - gateway: `coldchain serve` subscribed to the same Mosquitto (QoS 1,
//     persistent session, acked after JetStream has each reading), with the
//     InfluxDB store, the excursion detector and the shipment logs and
//     anchoring on (embedded NATS and chain).
//
// A contender's rate is the readings over the time from the first publish
// until InfluxDB itself counts the last of them; lost is what InfluxDB
// never got (it waits -settle without progress). CPU is the contender's
// process only (utime + stime from /proc), per reading; the publishers,
// Mosquitto and InfluxDB run on the same machine for both. It prints a
// table and the ratio; the exit status is non-zero only when the benchmark
// itself fails.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"
)

type options struct {
	telegraf, coldchain   string
	mqtt, influx, db, rp  string
	readings, publishers  int
	window                int
	settle, timeout       time.Duration
	only                  string
	keep                  bool
	goalRatio             float64
	jsonOut               bool
	telegrafBatch, buffer int
	undelivered           int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("e2ebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.telegraf, "telegraf", "", "the Telegraf binary (built by scripts/bench-e2e.sh)")
	fs.StringVar(&o.coldchain, "coldchain", "", "the coldchain binary (default: built from this tree into a temporary directory)")
	fs.StringVar(&o.mqtt, "mqtt", "tcp://127.0.0.1:18830", "Mosquitto `URL`")
	fs.StringVar(&o.influx, "influx", "http://127.0.0.1:18086", "InfluxDB 1.8 `URL`")
	fs.StringVar(&o.db, "db", "coldchain", "InfluxDB database")
	fs.StringVar(&o.rp, "rp", "autogen", "InfluxDB retention policy")
	fs.IntVar(&o.readings, "readings", 1_000_000, "readings per contender")
	fs.IntVar(&o.publishers, "publishers", 4, "MQTT publisher connections")
	fs.IntVar(&o.window, "window", 64, "un-PUBACKed QoS 1 messages per publisher")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "after the last PUBACK, how long InfluxDB's count may stand still before the rest counts as lost")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on a contender after this long")
	fs.StringVar(&o.only, "only", "", "run one contender: telegraf or gateway")
	fs.IntVar(&o.telegrafBatch, "telegraf-batch", 5000, "Telegraf's metric_batch_size")
	fs.IntVar(&o.buffer, "telegraf-buffer", 1_000_000, "Telegraf's metric_buffer_limit (it drops metrics beyond it)")
	fs.IntVar(&o.undelivered, "telegraf-undelivered", 10_000, "Telegraf's max_undelivered_messages: MQTT messages taken but not yet written; under metric_batch_size it writes once per flush_interval")
	fs.Float64Var(&o.goalRatio, "goal", 2.5, "the goal: gateway readings/s over Telegraf's")
	fs.BoolVar(&o.jsonOut, "json", false, "also write the results as JSON to stdout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.only != "gateway" && o.telegraf == "" {
		fmt.Fprintln(stderr, "e2ebench: -telegraf PATH is required (scripts/bench-e2e.sh builds it), or -only gateway")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench(ctx, o, stderr)
	printTable(stdout, o, res)
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "e2ebench: %v\n", err)
		return 1
	}
	return 0
}

// result is one contender's run.
type result struct {
	Name        string  `json:"name"`
	Readings    int     `json:"readings"`
	Stored      int64   `json:"stored"`
	Lost        int64   `json:"lost"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"readings_per_sec"`
	PublishSecs float64 `json:"publish_seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	CPUMicros   float64 `json:"cpu_us_per_reading"`
}

func bench(ctx context.Context, o options, stderr io.Writer) ([]result, error) {
	dir, err := os.MkdirTemp("", "e2ebench-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := influxQuery(o, "CREATE DATABASE "+o.db, nil); err != nil {
		return nil, fmt.Errorf("influxdb at %s: %w (start it with scripts/peers.sh start influxdb)", o.influx, err)
	}
	var out []result
	runID := strconv.FormatInt(time.Now().Unix(), 36)
	if o.only == "" || o.only == "telegraf" {
		r, err := runTelegraf(ctx, o, dir, "E2E-T-"+runID, stderr)
		if err != nil {
			return out, fmt.Errorf("telegraf: %w", err)
		}
		out = append(out, r)
	}
	if o.only == "" || o.only == "gateway" {
		r, err := runGateway(ctx, o, dir, "E2E-G-"+runID, stderr)
		if err != nil {
			return out, fmt.Errorf("gateway: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// telegrafConf subscribes to the shipment's readings and writes them to
// InfluxDB 1.8 through its v2 compatibility API, tuned as a user would for
// throughput: full batches of 5,000 written as soon as they are full (its
// window of undelivered messages is twice that; at the default 1,000 it
// writes one partial batch a second, 1,000 readings/s), and a buffer large
// enough not to drop what InfluxDB cannot take yet.
const telegrafConf = `[agent]
  interval = "1s"
  flush_interval = "1s"
  metric_batch_size = %d
  metric_buffer_limit = %d
  omit_hostname = true
  quiet = true

[[inputs.mqtt_consumer]]
  servers = ["%s"]
  topics = ["coldchain/v1/%s/+/readings"]
  qos = 1
  client_id = "e2ebench-telegraf-%s"
  persistent_session = true
  max_undelivered_messages = %d
  data_format = "json_v2"
  [[inputs.mqtt_consumer.topic_parsing]]
    topic = "coldchain/v1/+/+/readings"
    tags = "_/_/shipment/device/_"
  [[inputs.mqtt_consumer.json_v2]]
    measurement_name = "telegraf_reading"
    timestamp_path = "ts"
    timestamp_format = "2006-01-02T15:04:05.000Z07:00"
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "temp_c"
      type = "float"
    [[inputs.mqtt_consumer.json_v2.field]]
      path = "seq"
      type = "int"

[[outputs.influxdb_v2]]
  urls = ["%s"]
  token = ""
  organization = "coldchain"
  bucket = "%s/%s"
`

func runTelegraf(ctx context.Context, o options, dir, ship string, stderr io.Writer) (result, error) {
	conf := filepath.Join(dir, "telegraf.conf")
	id := strings.ToLower(ship)
	if err := os.WriteFile(conf, fmt.Appendf(nil, telegrafConf, o.telegrafBatch, o.buffer, o.mqtt, ship, id, o.undelivered, o.influx, o.db, o.rp), 0o644); err != nil {
		return result{}, err
	}
	p, err := startProc(ctx, exec.CommandContext(ctx, o.telegraf, "--config", conf))
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	cmd, logBuf := p.cmd, p.log
	// Its subscription must exist before the first publish, or Mosquitto
	// drops what nobody subscribed to yet.
	select {
	case <-p.exited:
		return result{}, fmt.Errorf("telegraf exited: %s", logBuf.String())
	case <-time.After(3 * time.Second):
	}
	fmt.Fprintf(stderr, "e2ebench: telegraf running (pid %d); publishing %d readings\n", cmd.Process.Pid, o.readings)
	r, err := race(ctx, o, "telegraf", ship, "telegraf_reading", cmd.Process.Pid, stderr)
	if err != nil {
		err = fmt.Errorf("%w\ntelegraf log:\n%s", err, tail(logBuf.String(), 2000))
	}
	return r, err
}

func runGateway(ctx context.Context, o options, dir, ship string, stderr io.Writer) (result, error) {
	bin := o.coldchain
	if bin == "" {
		bin = filepath.Join(dir, "coldchain")
		fmt.Fprintln(stderr, "e2ebench: building coldchain")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/coldchain")
		if out, err := build.CombinedOutput(); err != nil {
			return result{}, fmt.Errorf("go build ./cmd/coldchain: %w\n%s", err, out)
		}
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(),
		"COLDCHAIN_DATA_DIR="+filepath.Join(dir, "gateway"),
		"COLDCHAIN_HTTP_LISTEN="+httpAddr,
		"COLDCHAIN_HTTP_ALLOW_ANONYMOUS=true",
		"COLDCHAIN_MQTT_URL="+o.mqtt,
		"COLDCHAIN_MQTT_CLIENT_ID=e2ebench-"+strings.ToLower(ship),
		"COLDCHAIN_NATS_LISTEN=127.0.0.1:0",
		"COLDCHAIN_CHAIN_LISTEN=127.0.0.1:0",
		"COLDCHAIN_STORE_KIND=influx",
		"COLDCHAIN_STORE_INFLUX_URL="+o.influx,
		"COLDCHAIN_STORE_INFLUX_ORG=coldchain",
		"COLDCHAIN_STORE_INFLUX_BUCKET="+o.db+"/"+o.rp,
		"COLDCHAIN_LOG_LEVEL=warn",
	)
	p, err := startProc(ctx, cmd)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	logBuf := p.log
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) || p.done() {
			return result{}, fmt.Errorf("gateway not ready in 2 minutes:\n%s", tail(logBuf.String(), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "e2ebench: gateway ready (pid %d, InfluxDB store, detector and anchoring on); publishing %d readings\n", cmd.Process.Pid, o.readings)
	r, err := race(ctx, o, "gateway", ship, "reading", cmd.Process.Pid, stderr)
	if err != nil {
		err = fmt.Errorf("%w\ngateway log:\n%s", err, tail(logBuf.String(), 2000))
	}
	return r, err
}

// race publishes the readings and waits for InfluxDB to count them.
func race(ctx context.Context, o options, name, ship, measurement string, pid int, stderr io.Writer) (result, error) {
	r := result{Name: name, Readings: o.readings}
	cpu0, err := procCPU(pid)
	if err != nil {
		return r, err
	}
	start := time.Now()
	pubDone := make(chan error, 1)
	go func() { pubDone <- publish(ctx, o, ship) }()
	var (
		last      int64
		lastMove  = time.Now()
		published bool
	)
	q := fmt.Sprintf(`SELECT count("seq") FROM %q WHERE "shipment" = '%s'`, measurement, ship)
	for {
		select {
		case err := <-pubDone:
			if err != nil {
				return r, fmt.Errorf("publish: %w", err)
			}
			published = true
			r.PublishSecs = time.Since(start).Seconds()
			lastMove = time.Now()
			pubDone = nil
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		n, err := influxCount(o, q)
		if err != nil {
			return r, err
		}
		if n != last {
			last, lastMove = n, time.Now()
			fmt.Fprintf(stderr, "  %-8s %5.1fs  %d readings in InfluxDB\n", name, time.Since(start).Seconds(), n)
		}
		done := n >= int64(o.readings)
		if !done && published && time.Since(lastMove) > o.settle {
			fmt.Fprintf(stderr, "  %-8s no progress for %s: %d readings never reached InfluxDB\n", name, o.settle, int64(o.readings)-n)
			done = true
		}
		if time.Since(start) > o.timeout {
			return r, fmt.Errorf("not done after %s: %d of %d in InfluxDB", o.timeout, n, o.readings)
		}
		if done {
			end := time.Now()
			if n < int64(o.readings) {
				end = lastMove
			}
			cpu1, err := procCPU(pid)
			if err != nil {
				return r, err
			}
			r.Stored, r.Lost = n, int64(o.readings)-n
			r.Seconds = end.Sub(start).Seconds()
			r.PerSec = float64(n) / r.Seconds
			r.CPUSeconds = cpu1 - cpu0
			r.CPUMicros = r.CPUSeconds * 1e6 / float64(max(n, 1))
			return r, nil
		}
	}
}

// publish sends o.readings single-reading QoS 1 messages of ship over
// o.publishers connections, each device's readings 1 ms apart in device
// time, each connection with at most o.window un-PUBACKed messages.
func publish(ctx context.Context, o options, ship string) error {
	g, gctx := errgroup.WithContext(ctx)
	per := (o.readings + o.publishers - 1) / o.publishers
	base := time.Now().UTC().Add(-time.Duration(per) * time.Millisecond).Truncate(time.Millisecond)
	for p := range o.publishers {
		n := min(per, o.readings-p*per)
		g.Go(func() error {
			dev := fmt.Sprintf("dev-%03d", p)
			c := paho.NewClient(paho.NewClientOptions().AddBroker(o.mqtt).SetClientID("e2ebench-pub-" + strings.ToLower(ship) + "-" + dev).
				SetCleanSession(true).SetAutoReconnect(false).SetMaxResumePubInFlight(o.window).SetWriteTimeout(time.Minute))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				return fmt.Errorf("connect %s: %v", o.mqtt, tok.Error())
			}
			defer c.Disconnect(250)
			topic := "coldchain/v1/" + ship + "/" + dev + "/readings"
			window := make(chan paho.Token, o.window)
			var wg sync.WaitGroup
			var ackErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				for tok := range window {
					if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
						if ackErr == nil {
							ackErr = fmt.Errorf("%s: no PUBACK: %v", topic, tok.Error())
						}
					}
				}
			}()
			var ts [32]byte
			for k := range n {
				if gctx.Err() != nil {
					break
				}
				t := base.Add(time.Duration(k)*time.Millisecond).AppendFormat(ts[:0], "2006-01-02T15:04:05.000Z07:00")
				payload := fmt.Appendf(nil, `{"seq":%d,"ts":"%s","temp_c":%.1f}`, k+1, t, 2+float64(k%60)/10)
				window <- c.Publish(topic, 1, false, payload)
			}
			close(window)
			wg.Wait()
			return ackErr
		})
	}
	return g.Wait()
}

func influxQuery(o options, q string, into any) error {
	u := strings.TrimRight(o.influx, "/") + "/query?" + url.Values{"db": {o.db}, "q": {q}}.Encode()
	resp, err := http.Post(u, "application/x-www-form-urlencoded", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if into != nil {
		return json.Unmarshal(body, into)
	}
	return nil
}

// influxCount runs an InfluxQL count query and returns its value (0 when
// nothing matches yet).
func influxCount(o options, q string) (int64, error) {
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]json.RawMessage `json:"values"`
			} `json:"series"`
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := influxQuery(o, q, &r); err != nil {
		return 0, err
	}
	if len(r.Results) == 0 {
		return 0, nil
	}
	if e := r.Results[0].Error; e != "" {
		return 0, errors.New(e)
	}
	if len(r.Results[0].Series) == 0 || len(r.Results[0].Series[0].Values) == 0 || len(r.Results[0].Series[0].Values[0]) < 2 {
		return 0, nil
	}
	return strconv.ParseInt(string(r.Results[0].Series[0].Values[0][1]), 10, 64)
}

// procCPU returns a process's user + system CPU seconds from /proc.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: the fields start after its ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// proc is a contender's process and its combined output.
type proc struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

func startProc(_ context.Context, cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, log: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop interrupts the process and waits for it, killing it after 30 s.
func (p *proc) stop() {
	if p.done() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// syncBuffer is a bytes.Buffer the process's two output streams share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func printTable(w io.Writer, o options, res []result) {
	if len(res) == 0 {
		return
	}
	fmt.Fprintf(w, "\nend-to-end benchmark — %d readings per contender, %d QoS 1 publishers (window %d), one reading a message, Mosquitto → InfluxDB 1.8; %d CPUs, %s\n\n",
		o.readings, o.publishers, o.window, runtime.NumCPU(), runtime.Version())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\treadings/s to InfluxDB\tseconds\tpublishing s\tstored\tlost\tCPU s\tCPU µs/reading\t")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.1f\t\n", r.Name, r.PerSec, r.Seconds, r.PublishSecs, r.Stored, r.Lost, r.CPUSeconds, r.CPUMicros)
	}
	tw.Flush()
	if len(res) == 2 && res[0].PerSec > 0 {
		ratio := res[1].PerSec / res[0].PerSec
		verdict := "met"
		if ratio < o.goalRatio || res[1].Lost != 0 {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "\ngoal: gateway >= %.1f x Telegraf with 0 lost: %s — %.2f x (%.0f vs %.0f readings/s), gateway lost %d, Telegraf lost %d\n",
			o.goalRatio, verdict, ratio, res[1].PerSec, res[0].PerSec, res[1].Lost, res[0].Lost)
	}
}
