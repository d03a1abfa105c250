// Command alertbench measures alert latency: from the MQTT publish of the
// reading that decides an alarm to the alarm's delivery over Server-Sent
// Events, while a background load of readings flows through the same
// gateway. It prints figures; it does not pass or fail.
//
//	go run ./cmd/alertbench -load 20000 -alerts 200
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/gateway"
	"github.com/coldchain/coldchain/record"
)

func main() {
	load := flag.Int("load", 20000, "background readings per second (single-reading messages over 4 connections)")
	alerts := flag.Int("alerts", 200, "alarms to measure")
	gap := flag.Duration("gap", 50*time.Millisecond, "pause between two measured alarms")
	verbose := flag.Bool("v", false, "print every alarm's latency in publish order")
	flag.DurationVar(&settle, "settle", 10*time.Second, "background load before the first measured alarm")
	flag.Parse()
	printEach = *verbose
	if err := run(*load, *alerts, *gap); err != nil {
		fmt.Fprintln(os.Stderr, "alertbench:", err)
		os.Exit(1)
	}
}

var (
	printEach bool
	settle    time.Duration
)

func run(load, alerts int, gap time.Duration) error {
	dir, err := os.MkdirTemp("", "alertbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.HTTP.Listen, cfg.MQTT.Broker.Listen, cfg.NATS.Listen, cfg.Chain.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	// The bench publishers connect anonymously: it measures ingest, not
	// the one bcrypt check a device pays per connection.
	cfg.MQTT.Broker.AllowAnonymous = true
	cfg.HTTP.AllowAnonymous = true
	g, err := gateway.New(cfg, zap.NewNop())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	select {
	case <-g.Ready():
	case err := <-done:
		return err
	}
	defer func() { cancel(); <-done }()

	// SSE listener: record when each alarm arrives.
	arrived := map[string]time.Time{}
	var mu sync.Mutex
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.HTTPAddr()+"/v1/alerts/stream?shipment=BENCH-HOT", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				now := time.Now()
				if a, err := record.ParseAlert([]byte(data)); err == nil && a.Rule == "instant_high" && a.Transition == "opened" {
					mu.Lock()
					arrived[a.Device] = now
					mu.Unlock()
				}
			}
		}
	}()

	connect := func(id string) (paho.Client, error) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + g.MQTTAddr()).SetClientID(id).SetMaxResumePubInFlight(1000))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect: %v", tok.Error())
		}
		return c, nil
	}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	// Background load: 4 connections, each its own devices, paced.
	var sent atomic.Int64
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for c := range 4 {
		cl, err := connect(fmt.Sprintf("bench-load-%d", c))
		if err != nil {
			stopLoad()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Disconnect(100)
			per := load / 4
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			seq := 0
			for {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				for range per / 100 {
					seq++
					dev := fmt.Sprintf("load-%d-%d", c, seq%50)
					ts := base.Add(time.Duration(seq) * time.Second).Format(time.RFC3339)
					cl.Publish("coldchain/v1/BENCH-LOAD/"+dev+"/readings", 1, false,
						fmt.Sprintf(`{"seq":%d,"ts":"%s","temp_c":5}`, seq, ts))
					sent.Add(1)
				}
			}
		}()
	}
	time.Sleep(settle) // measure the steady state, not the start

	hot, err := connect("bench-hot")
	if err != nil {
		stopLoad()
		return err
	}
	defer hot.Disconnect(100)
	published := map[string]time.Time{}
	for i := range alerts {
		dev := fmt.Sprintf("hot-%d", i)
		// An instant alarm is decided by one reading above 25 °C.
		payload := fmt.Sprintf(`{"seq":1,"ts":"%s","temp_c":30}`, base.Format(time.RFC3339))
		published[dev] = time.Now()
		tok := hot.Publish("coldchain/v1/BENCH-HOT/"+dev+"/readings", 1, false, payload)
		tok.WaitTimeout(10 * time.Second)
		time.Sleep(gap)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(arrived)
		mu.Unlock()
		if n == alerts {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopLoad()
	wg.Wait()
	elapsed := time.Since(published["hot-0"]) + settle

	mu.Lock()
	defer mu.Unlock()
	if printEach {
		for i := range alerts {
			dev := fmt.Sprintf("hot-%d", i)
			fmt.Printf("%s %v\n", dev, arrived[dev].Sub(published[dev]).Round(100*time.Microsecond))
		}
	}
	var lat []time.Duration
	for dev, p := range published {
		if a, ok := arrived[dev]; ok {
			lat = append(lat, a.Sub(p))
		}
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return fmt.Errorf("no alarm arrived over SSE")
	}
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("background load: %d readings in %.1fs (%.0f readings/s target %d)\n", sent.Load(), elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), load)
	fmt.Printf("alarms measured: %d of %d arrived over SSE\n", len(lat), alerts)
	fmt.Printf("publish -> SSE latency: p50 %v  p90 %v  p99 %v  max %v   (goal: p99 < 10ms at 20,000 readings/s, issue 16)\n",
		q(0.50).Round(10*time.Microsecond), q(0.90).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	return nil
}
