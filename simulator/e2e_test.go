package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/gateway/gatewaytest"
	"github.com/coldchain/coldchain/journal"
)

// TestEndToEnd runs 12 hours of a small fleet in about a second and a half
// of wall time against an in-process gateway, over MQTT and over HTTP, with
// the scenarios that test the gateway rather than the detector: resends,
// NaN, a skewed clock and garbage. JetStream then holds exactly the
// distinct valid readings and handovers the simulator reports, and the
// dead letters exactly the rejections of the ground truth.
func TestEndToEnd(t *testing.T) {
	for _, tr := range []Transport{TransportMQTT, TransportHTTP} {
		t.Run(tr.String(), func(t *testing.T) {
			gw := gatewaytest.Start(t, gatewaytest.Config(t.TempDir()))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			stats := &Stats{}
			var pub interface {
				Publisher
				Close()
			}
			if tr == TransportMQTT {
				p, err := DialMQTT(ctx, MQTTConfig{URL: "tcp://" + gw.MQTTAddr(), ClientID: "sim-test", Connections: 4, InFlight: 256}, stats)
				if err != nil {
					t.Fatal(err)
				}
				pub = p
			} else {
				pub = NewHTTP("http://"+gw.HTTPAddr(), 8, stats)
			}
			sc := DefaultConfig()
			sc.Seed, sc.Shipments, sc.Devices, sc.Transport = 7, 4, 2, tr
			sc.Span = 12 * time.Hour
			sc.Start = time.Now().UTC().Truncate(time.Second).Add(-sc.Span)
			sc.Scenarios = []Scenario{Duplicates, NaN, ClockSkew, Malformed}
			g, err := NewGenerator(sc)
			if err != nil {
				t.Fatal(err)
			}
			rec := NewRecorder(g, DefaultProfile())
			rep, err := Run(ctx, g, pub, rec, stats, RunConfig{Accelerate: float64(sc.Span) / float64(1500*time.Millisecond), Tick: 20 * time.Millisecond}, time.Now)
			pub.Close()
			if err != nil {
				t.Fatal(err)
			}
			c := rep.Counts
			if !rep.DeviceTime.Equal(g.End()) || rep.Errors != 0 || rep.Acked != stats.Messages.Load() || rep.Mismatches != 0 {
				t.Fatalf("report %+v; stats: %d sent; last error %q", rep, stats.Messages.Load(), rep.LastError)
			}
			if c.Duplicates == 0 || c.Rejected < 12 || c.DistinctReadings < 4*2*100 {
				t.Fatalf("the run did not exercise the gateway: %+v", c)
			}
			if tr == TransportHTTP && (stats.Accepted.Load() != int64(c.DistinctReadings+c.Handovers) || stats.Duplicates.Load() != int64(c.Duplicates)) {
				t.Errorf("HTTP answers: %d accepted, %d duplicates; truth %+v", stats.Accepted.Load(), stats.Duplicates.Load(), c)
			}
			for stream, want := range map[string]int{
				journal.StreamReadings:    c.DistinctReadings,
				journal.StreamHandovers:   c.Handovers,
				journal.StreamDeadLetters: c.Rejected,
			} {
				if got := streamCount(t, gw.NATSURL(), stream); got != want {
					t.Errorf("%s holds %d messages, the simulator reports %d", stream, got, want)
				}
			}
		})
	}
}

func streamCount(t *testing.T, url, stream string) int {
	t.Helper()
	n := 0
	readStream(t, url, stream, "", func(journal.Msg) { n++ })
	return n
}

// readStream calls fn with every record of stream under filter ("" for
// all), chunks unpacked.
func readStream(t *testing.T, url, stream, filter string, fn func(journal.Msg)) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := journal.ReadStream(ctx, js, stream, filter, func(m journal.Msg) error { fn(m); return nil }); err != nil {
		t.Fatal(err)
	}
}
