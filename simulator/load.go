package simulator

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
)

// LoadConfig configures load mode: valid readings at a target rate, for
// benchmarks rather than realism.
type LoadConfig struct {
	Seed int64
	// Rate is the target in readings per second, over all connections.
	Rate float64
	// Batch is the readings per message (1: single objects).
	Batch int
	// Connections is the number of MQTT connections or concurrent HTTP
	// requests; the rate is spread evenly over them.
	Connections int
	// DevicesPerConn is the number of devices each connection speaks for.
	DevicesPerConn int
	// Duration is how long to run; 0 runs until ctx ends.
	Duration time.Duration
	// Progress receives a progress line every second; nil for none.
	Progress io.Writer
}

// Validate reports the first invalid setting, naming its flag.
func (c LoadConfig) Validate() error {
	switch {
	case c.Rate <= 0 || c.Rate > 1e7:
		return fmt.Errorf("rate: must be in (0, 10000000] readings/s, got %g", c.Rate)
	case c.Batch < 1 || c.Batch > maxBatch:
		return fmt.Errorf("batch: must be 1 to %d, got %d", maxBatch, c.Batch)
	case c.Connections < 1 || c.Connections > 10000:
		return fmt.Errorf("connections: must be 1 to 10000, got %d", c.Connections)
	case c.DevicesPerConn < 1:
		return fmt.Errorf("devices: must be at least 1, got %d", c.DevicesPerConn)
	case c.Duration < 0:
		return fmt.Errorf("duration: must not be negative")
	}
	return nil
}

// LoadReport is what load mode achieved.
type LoadReport struct {
	Readings int64
	Messages int64
	Acked    int64
	Errors   int64
	Wall     time.Duration
	// Rate is the achieved readings per second.
	Rate      float64
	LastError string
}

// LoadSender is what load mode needs of a transport: send one message for
// a device. *MQTT and *HTTP implement it.
type LoadSender interface {
	send(ctx context.Context, conn int, shipment, device string, payload []byte, records int) error
}

// LoadMessage returns load mode's message for connection conn's device dev
// with sequence numbers seq … seq+n−1 stamped 1 ms apart, the last 1 ms before
// device time ts: a pure function of its arguments. With http set, every item names
// its shipment and device.
func LoadMessage(seed int64, start time.Time, conn, dev int, seq uint64, n int, ts time.Time, http bool) (shipment, device string, payload []byte) {
	shipment = fmt.Sprintf("LOAD-%d-%d", seed, start.Unix())
	device = fmt.Sprintf("%s-c%d-d%d", shipment, conn, dev)
	b := make([]byte, 0, n*110+2)
	if n > 1 || http {
		b = append(b, '[')
	}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		s := seq + uint64(i)
		b = append(b, '{')
		if http {
			b = append(b, `"shipment":"`...)
			b = append(b, shipment...)
			b = append(b, `","device":"`...)
			b = append(b, device...)
			b = append(b, `",`...)
		}
		b = append(b, `"seq":`...)
		b = strconv.AppendUint(b, s, 10)
		b = append(b, `,"ts":"`...)
		b = ts.Add(time.Duration(i-n)*time.Millisecond).UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","temp_c":`...)
		// A saw-tooth around 5 °C, deterministic in seed, device and seq.
		v := 5 + 0.3*math.Sin(float64(s)/7+float64(seed%97)+float64(dev))
		b = appendNum(b, v, 2)
		b = append(b, `,"probe":"air"}`...)
	}
	if n > 1 || http {
		b = append(b, ']')
	}
	return shipment, device, b
}

// Load runs load mode: Connections senders, each pacing its share of Rate,
// until Duration passed or ctx ends. now is the wall clock (device time is
// wall time in load mode).
func Load(ctx context.Context, cfg LoadConfig, snd LoadSender, stats *Stats, now func() time.Time) (LoadReport, error) {
	_, isHTTP := snd.(*HTTP)
	return load(ctx, cfg, snd, isHTTP, stats, now)
}

func load(ctx context.Context, cfg LoadConfig, snd LoadSender, isHTTP bool, stats *Stats, now func() time.Time) (LoadReport, error) {
	if err := cfg.Validate(); err != nil {
		return LoadReport{}, err
	}
	start := now()
	// pace ends the sending; messages already sent finish under ctx.
	pace := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		pace, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	// Each connection sends one message every period.
	period := time.Duration(float64(time.Second) * float64(cfg.Batch) * float64(cfg.Connections) / cfg.Rate)
	var wg sync.WaitGroup
	for c := range cfg.Connections {
		wg.Go(func() {
			seqs := make([]uint64, cfg.DevicesPerConn)
			// Stagger the connections over one period.
			next := start.Add(period * time.Duration(c) / time.Duration(cfg.Connections))
			for n := 0; pace.Err() == nil; n++ {
				if wait := next.Sub(now()); wait > 0 {
					select {
					case <-pace.Done():
						return
					case <-time.After(wait):
					}
				}
				next = next.Add(period)
				dev := n % cfg.DevicesPerConn
				shipment, device, payload := LoadMessage(cfg.Seed, start, c, dev, seqs[dev]+1, cfg.Batch, now(), isHTTP)
				seqs[dev] += uint64(cfg.Batch)
				if err := snd.send(ctx, c, shipment, device, payload, cfg.Batch); err != nil {
					if ctx.Err() == nil {
						stats.fail(err)
					}
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	line := func(end string) {
		if cfg.Progress == nil {
			return
		}
		el := now().Sub(start)
		fmt.Fprintf(cfg.Progress, "\rload %5.0fs  readings %d  %.0f/s (target %.0f/s)  acked %d  errors %d   %s",
			el.Seconds(), stats.Records.Load(), float64(stats.Records.Load())/max(el.Seconds(), 1e-3), cfg.Rate,
			stats.Acked.Load(), stats.Errors.Load(), end)
	}
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			line("")
		}
	}
	if f, ok := snd.(interface{ Flush(context.Context) error }); ok {
		fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = f.Flush(fctx)
		cancel()
	}
	line("\n")
	el := now().Sub(start)
	r := LoadReport{Readings: stats.Records.Load(), Messages: stats.Messages.Load(), Acked: stats.Acked.Load(),
		Errors: stats.Errors.Load(), Wall: el, LastError: stats.LastError()}
	r.Rate = float64(r.Readings) / max(el.Seconds(), 1e-3)
	return r, nil
}

func (p *MQTT) send(ctx context.Context, conn int, shipment, device string, payload []byte, records int) error {
	return p.publish(ctx, conn%len(p.clients), "coldchain/v1/"+shipment+"/"+device+"/readings", payload, records)
}

func (p *HTTP) send(ctx context.Context, _ int, _, _ string, payload []byte, records int) error {
	return p.start(ctx, HTTPRequest{Path: "/v1/readings", Body: payload, Records: records})
}
