package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

// fakeJournal stores in memory, answers conflicts by content, and can fail
// the first calls like an unreachable JetStream.
type fakeJournal struct {
	mu       sync.Mutex
	stored   map[string][]byte
	order    []string
	dead     []journal.DeadLetter
	failures int // calls to fail before succeeding
	calls    int
}

var errDown = errors.New("jetstream: no responders")

func (f *fakeJournal) Append(_ context.Context, entries []journal.Entry, _ journal.Meta, out []journal.Result) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return errDown
	}
	if f.stored == nil {
		f.stored = map[string][]byte{}
	}
	for i, e := range entries {
		old, ok := f.stored[e.ID]
		switch {
		case !ok:
			f.stored[e.ID] = e.Data
			f.order = append(f.order, e.ID)
			out[i] = journal.Result{Outcome: journal.Stored, Seq: uint64(len(f.order))}
		case string(old) == string(e.Data):
			out[i] = journal.Result{Outcome: journal.Duplicate}
		default:
			out[i] = journal.Result{Outcome: journal.Conflict, Seq: 1}
		}
	}
	return nil
}

func (f *fakeJournal) DeadLetter(_ context.Context, dls []journal.DeadLetter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return errDown
	}
	f.dead = append(f.dead, dls...)
	return nil
}

var clock = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func newIngester(t *testing.T, j Journal, mut func(*Config)) *Ingester {
	t.Helper()
	cfg := DefaultConfig()
	if mut != nil {
		mut(&cfg)
	}
	in, err := New(cfg, j, metrics.New(), zap.NewNop(), func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		topic  string
		kind   record.Kind
		scope  record.Scope
		reason record.Reason
	}{
		{"coldchain/v1/SHP-1/reefer-7/readings", record.KindReading, record.Scope{Shipment: "SHP-1", Device: "reefer-7"}, 0},
		{"coldchain/v1/SHP-1/handovers", record.KindHandover, record.Scope{Shipment: "SHP-1"}, 0},
		{"coldchain/v1/SHP-1/reefer-7/reading", 0, record.Scope{}, record.ReasonUnknownTopic},
		{"coldchain/v2/SHP-1/reefer-7/readings", 0, record.Scope{}, record.ReasonUnknownTopic},
		{"coldchain/v1/SHP-1/a/b/readings", 0, record.Scope{}, record.ReasonUnknownTopic},
		{"coldchain/v1/SHP 1/reefer-7/readings", 0, record.Scope{}, record.ReasonInvalidID},
		{"coldchain/v1/SHP-1/reefer.7/readings", 0, record.Scope{}, record.ReasonInvalidID},
		{"coldchain/v1//handovers", 0, record.Scope{}, record.ReasonInvalidID},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			kind, scope, err := ParseTopic(tc.topic)
			if tc.reason != 0 {
				if err == nil || err.Reason != tc.reason {
					t.Fatalf("got %v, want %s", err, tc.reason)
				}
				return
			}
			if err != nil || kind != tc.kind || scope != tc.scope {
				t.Fatalf("got %v %v %v", kind, scope, err)
			}
		})
	}
}

const reading = `{"seq":%d,"ts":"2026-03-10T11:00:00Z","temp_c":5}`

func mqttMsg(topic, payload string) Message {
	return Message{Transport: "mqtt", Topic: topic, Payload: []byte(payload), Received: clock}
}

// TestIngestBatch sends a burst with one bad reading, then the same burst
// again, then a changed reading: the good ones are stored once, the bad one
// is dead-lettered with its bytes, the resend counts as duplicates and the
// change as a conflict.
func TestIngestBatch(t *testing.T) {
	j := &fakeJournal{}
	in := newIngester(t, j, nil)
	topic := "coldchain/v1/S1/D1/readings"
	bad := `{"seq":2,"ts":"2026-03-10T11:00:00Z","temp_c":"warm"}`
	burst := `[{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5},` + bad + `,{"seq":3,"ts":"2026-03-10T11:00:00Z","temp_c":5}]`
	sum, err := in.Ingest(context.Background(), mqttMsg(topic, burst))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 3 || sum.Accepted != 2 || sum.Duplicates != 0 || len(sum.Rejected) != 1 {
		t.Fatalf("first: %+v", sum)
	}
	if len(j.dead) != 1 || string(j.dead[0].Raw) != bad || j.dead[0].Err.Reason != record.ReasonWrongType || j.dead[0].Source != "mqtt:"+topic {
		t.Fatalf("dead letters %+v", j.dead)
	}
	sum, err = in.Ingest(context.Background(), mqttMsg(topic, burst))
	if err != nil || sum.Accepted != 0 || sum.Duplicates != 2 {
		t.Fatalf("resend: %+v %v", sum, err)
	}
	sum, err = in.Ingest(context.Background(), mqttMsg(topic, `{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":6}`))
	if err != nil || len(sum.Rejected) != 1 || sum.Rejected[0].Reason != record.ReasonConflict {
		t.Fatalf("conflict: %+v %v", sum, err)
	}
	if last := j.dead[len(j.dead)-1]; last.Err.Reason != record.ReasonConflict || !strings.Contains(string(last.Raw), `"temp_c":6`) {
		t.Fatalf("conflict dead letter %+v", last)
	}
	if got := strings.Join(j.order, ","); got != "D1:1,D1:3" {
		t.Fatalf("stored %s", got)
	}
	if v := in.m.rejected[record.ReasonConflict].Value(); v != 1 {
		t.Fatalf("conflict counter %d", v)
	}
}

func TestIngestAllOrNothing(t *testing.T) {
	j := &fakeJournal{}
	in := newIngester(t, j, nil)
	body := `[{"shipment":"S1","device":"D1","seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5},{"shipment":"S1","device":"D1","seq":2,"ts":"2026-03-10T11:00:00","temp_c":5}]`
	sum, err := in.Ingest(context.Background(), Message{Transport: "http", Topic: "/v1/readings", Kind: record.KindReading,
		Payload: []byte(body), Received: clock, AllOrNothing: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Accepted != 0 || len(j.order) != 0 || j.calls != 0 {
		t.Fatalf("something was stored: %+v %v", sum, j.order)
	}
	if len(sum.Rejected) != 1 || sum.Rejected[0].Index != 1 || sum.Rejected[0].Reason != record.ReasonBadTimestamp || len(j.dead) != 1 {
		t.Fatalf("%+v", sum.Rejected)
	}
}

// TestIngestMessageRejects covers what refuses a message as a whole.
func TestIngestMessageRejects(t *testing.T) {
	for _, tc := range []struct {
		name, topic, payload string
		mut                  func(*Config)
		reason               record.Reason
	}{
		{"oversize", "coldchain/v1/S1/D1/readings", "[" + strings.Repeat(" ", 2000) + "]", func(c *Config) { c.MaxPayload = 1024 }, record.ReasonOversize},
		{"unknown topic", "coldchain/v1/S1/D1/temps", `{}`, nil, record.ReasonUnknownTopic},
		{"invalid topic id", "coldchain/v1/S1/D+1/readings", `{}`, nil, record.ReasonInvalidID},
		{"malformed", "coldchain/v1/S1/D1/readings", `{"seq":`, nil, record.ReasonMalformedJSON},
		{"too many", "coldchain/v1/S1/D1/readings", "[" + strings.Repeat(`{},`, 3) + "{}]", func(c *Config) { c.MaxRecords = 3 }, record.ReasonTooManyRecords},
		{"unknown device", "coldchain/v1/S1/D9/readings", `{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`, func(c *Config) { c.Devices = []string{"D1"} }, record.ReasonUnknownDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &fakeJournal{}
			in := newIngester(t, j, tc.mut)
			sum, err := in.Ingest(context.Background(), mqttMsg(tc.topic, tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			if !sum.Refused() || sum.Rejected[0].Reason != tc.reason || sum.Rejected[0].Index != -1 {
				t.Fatalf("%+v", sum.Rejected)
			}
			if len(j.dead) != 1 || string(j.dead[0].Raw) != tc.payload {
				t.Fatalf("dead letter does not keep the original bytes: %+v", j.dead)
			}
			if in.m.rejected[tc.reason].Value() != 1 {
				t.Fatal("not counted")
			}
		})
	}
}

// TestIngestRetriesUntilDurable checks that a journal outage delays the
// answer instead of losing the message, and that stopping while it is
// still down returns ErrStopping (so the transport does not ack).
func TestIngestRetriesUntilDurable(t *testing.T) {
	j := &fakeJournal{failures: 3}
	in := newIngester(t, j, nil)
	sum, err := in.Ingest(context.Background(), mqttMsg("coldchain/v1/S1/D1/readings", `{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`))
	if err != nil || sum.Accepted != 1 || j.calls != 4 {
		t.Fatalf("%+v %v calls=%d", sum, err, j.calls)
	}

	j = &fakeJournal{failures: 1 << 30}
	in = newIngester(t, j, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = in.Ingest(ctx, mqttMsg("coldchain/v1/S1/D1/readings", `{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`))
	if !errors.Is(err, ErrStopping) {
		t.Fatalf("got %v, want ErrStopping", err)
	}
}

// TestIngestBoundsInFlight checks that no more than in_flight messages are
// worked on at once: the next caller waits (and gives up with its context).
func TestIngestBoundsInFlight(t *testing.T) {
	block := make(chan struct{})
	j := &blockingJournal{release: block, entered: make(chan struct{}, 4)}
	in := newIngester(t, j, func(c *Config) { c.InFlight = 2 })
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = in.Ingest(context.Background(), mqttMsg("coldchain/v1/S1/D1/readings", strings.Replace(reading, "%d", string(rune('1'+i)), 1)))
		}()
	}
	<-j.entered
	<-j.entered
	if v := in.m.inFlight.Value(); v != 2 {
		t.Fatalf("in flight %v", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := in.Ingest(ctx, mqttMsg("coldchain/v1/S1/D1/readings", strings.Replace(reading, "%d", "9", 1))); !errors.Is(err, ErrStopping) {
		t.Fatalf("third message was not held back: %v", err)
	}
	close(block)
	wg.Wait()
}

type blockingJournal struct {
	fakeJournal
	release <-chan struct{}
	entered chan struct{}
}

func (b *blockingJournal) Append(ctx context.Context, e []journal.Entry, m journal.Meta, out []journal.Result) error {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeJournal.Append(ctx, e, m, out)
}
