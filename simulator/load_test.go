package simulator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coldchain/coldchain/record"
)

// fakeSender decodes what load mode sends, as the gateway would.
type fakeSender struct {
	mu   sync.Mutex
	t    *testing.T
	http bool
	seq  map[string]uint64
	n    int
}

func (f *fakeSender) send(_ context.Context, _ int, shipment, device string, payload []byte, records int) error {
	scope := record.Scope{Shipment: shipment, Device: device}
	if f.http {
		scope = record.Scope{}
	}
	rs, rj, err := record.DecodeReadings(payload, scope, record.DefaultLimits(), time.Now())
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || len(rj) > 0 || len(rs) != records {
		f.t.Errorf("load message refused: %v %v: %s", err, rj, payload)
		return nil
	}
	for _, r := range rs {
		if r.Seq != f.seq[r.Device]+1 || r.Shipment != shipment || r.Device != device {
			f.t.Errorf("%s: seq %d after %d", r.Device, r.Seq, f.seq[r.Device])
		}
		f.seq[r.Device] = r.Seq
	}
	f.n += len(rs)
	return nil
}

// TestLoad runs load mode briefly into a sender that decodes every message:
// all valid, seq increasing per device, over both payload forms. The rate
// achieved is not asserted (the machine is shared).
func TestLoad(t *testing.T) {
	for _, http := range []bool{false, true} {
		f := &fakeSender{t: t, http: http, seq: map[string]uint64{}}
		var snd LoadSender = f
		cfg := LoadConfig{Seed: 3, Rate: 4000, Batch: 5, Connections: 4, DevicesPerConn: 3, Duration: 150 * time.Millisecond}
		if http {
			cfg.Batch = 1 // an HTTP body is an array even for one reading
		}
		f.http = http
		rep, err := load(context.Background(), cfg, snd, http, &Stats{}, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if f.n == 0 || rep.Errors != 0 || len(f.seq) == 0 {
			t.Fatalf("http=%v: %d readings decoded, report %+v", http, f.n, rep)
		}
	}
}

func TestLoadMessageDeterministic(t *testing.T) {
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	_, _, a := LoadMessage(1, at, 2, 3, 10, 4, at, false)
	_, _, b := LoadMessage(1, at, 2, 3, 10, 4, at, false)
	_, _, c := LoadMessage(2, at, 2, 3, 10, 4, at, false)
	if string(a) != string(b) || string(a) == string(c) {
		t.Fatalf("%s\n%s\n%s", a, b, c)
	}
}
