package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeJournal stores in memory, answers conflicts by content, and can fail
// the first calls like an unreachable JetStream. Its AppendAsync appends at
// once, so appends keep the order they were started in.
type fakeJournal struct {
	mu       sync.Mutex
	stored   map[string][]byte
	order    []string
	dead     []journal.DeadLetter
	failures int // calls to fail before succeeding
	calls    int
	// asyncFailures is how many AppendAsync calls fail, storing nothing,
	// before they go through to Append.
	asyncFailures int
	asyncCalls    int
}

var errDown = errors.New("jetstream: no responders")

func (f *fakeJournal) AppendAsync(entries []journal.Entry, meta journal.Meta, out []journal.Result) Appending {
	f.mu.Lock()
	f.asyncCalls++
	fail := f.asyncFailures > 0
	if fail {
		f.asyncFailures--
	}
	f.mu.Unlock()
	if fail {
		return appended{errDown}
	}
	return appended{f.Append(context.Background(), entries, meta, out)}
}

// appended is an append that has finished.
type appended struct{ err error }

func (a appended) Wait(context.Context) error { return a.err }

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
		{"coldchain/v1/SHP-1//readings", 0, record.Scope{}, record.ReasonInvalidID},
		{"coldchain/v1/SHP-1/handovers/x", 0, record.Scope{}, record.ReasonUnknownTopic},
		{"coldchain/v1/SHP-1", 0, record.Scope{}, record.ReasonUnknownTopic},
		{"coldchain/v1/SHP-1/reefer-7/readings/", 0, record.Scope{}, record.ReasonUnknownTopic},
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

// TestParseTopicAllocs: every message's topic is parsed, so a good one
// costs no allocation.
func TestParseTopicAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseTopic("coldchain/v1/SHP-1/reefer-7/readings"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("ParseTopic allocates %v times for a good topic, want 0", n)
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

// TestRequireRegistered: with the device registry required, a device must
// be in it, and in ingest.devices too when that list is set; the refusal
// says which to fix.
func TestRequireRegistered(t *testing.T) {
	registered := func(d string) bool { return d == "D1" || d == "D2" }
	for _, tc := range []struct {
		name   string
		listed []string
		device string
		hint   string // "" for accepted
	}{
		{"registered", nil, "D1", ""},
		{"not registered", nil, "D9", "register it in the device registry"},
		{"registered and listed", []string{"D1"}, "D1", ""},
		{"registered, not listed", []string{"D1"}, "D2", "both in ingest.devices and in the device registry"},
		{"listed, not registered", []string{"D1", "D3"}, "D3", "both in ingest.devices and in the device registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &fakeJournal{}
			in := newIngester(t, j, func(c *Config) { c.Devices = tc.listed })
			in.RequireRegistered(registered)
			reading := `{"seq":1,"ts":"2026-03-10T11:00:00Z","temp_c":5}`
			for _, msg := range []Message{
				mqttMsg("coldchain/v1/S1/"+tc.device+"/readings", reading),
				{Transport: "http", Topic: "/v1/readings", Kind: record.KindReading, Received: clock,
					Payload: []byte(`{"shipment":"S1","device":"` + tc.device + `","seq":2,"ts":"2026-03-10T11:00:00Z","temp_c":5}`)},
			} {
				sum, err := in.Ingest(context.Background(), msg)
				if err != nil {
					t.Fatal(err)
				}
				if tc.hint == "" {
					if sum.Accepted != 1 {
						t.Errorf("%s: %+v, want accepted", msg.Transport, sum.Rejected)
					}
					continue
				}
				if !sum.Refused() || sum.Rejected[0].Reason != record.ReasonUnknownDevice || !strings.Contains(sum.Rejected[0].Detail, tc.hint) {
					t.Errorf("%s: %+v, want unknown_device saying %q", msg.Transport, sum.Rejected, tc.hint)
				}
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

func (b *blockingJournal) AppendAsync(e []journal.Entry, m journal.Meta, out []journal.Result) Appending {
	a := &staged{done: make(chan struct{})}
	go func() {
		a.err = b.Append(context.Background(), e, m, out)
		close(a.done)
	}()
	return a
}

// stagedJournal stores what AppendAsync is given at once, in call order,
// like the journal enqueues it, but reports each append done only when
// the test says so: in any order, or never.
type stagedJournal struct {
	fakeJournal
	pmu     sync.Mutex
	pending []*staged
}

// staged is an append that is done when done is closed.
type staged struct {
	done chan struct{}
	err  error
}

func (a *staged) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (j *stagedJournal) AppendAsync(e []journal.Entry, m journal.Meta, out []journal.Result) Appending {
	a := &staged{done: make(chan struct{})}
	a.err = j.fakeJournal.Append(context.Background(), e, m, out)
	j.pmu.Lock()
	defer j.pmu.Unlock()
	j.pending = append(j.pending, a)
	return a
}

// complete reports the i-th append done.
func (j *stagedJournal) complete(i int) {
	j.pmu.Lock()
	defer j.pmu.Unlock()
	close(j.pending[i].done)
}

func (j *stagedJournal) started() int {
	j.pmu.Lock()
	defer j.pmu.Unlock()
	return len(j.pending)
}

func readingMsg(seq int) Message {
	return mqttMsg("coldchain/v1/S1/D1/readings", fmt.Sprintf(reading, seq))
}

// TestStartWaitKeepsOrder starts three messages in sequence, lets their
// appends finish last first, and waits for them in sequence: the journal
// has them in the order they were started, Start began each append before
// it returned, and each Wait reports its own message.
func TestStartWaitKeepsOrder(t *testing.T) {
	j := &stagedJournal{}
	in := newIngester(t, j, nil)
	ctx := context.Background()
	var tickets []*Ticket
	for seq := 1; seq <= 3; seq++ {
		tk, err := in.Start(ctx, readingMsg(seq))
		if err != nil {
			t.Fatal(err)
		}
		if got := j.started(); got != seq {
			t.Fatalf("after Start %d, %d appends started", seq, got)
		}
		tickets = append(tickets, tk)
	}
	if v := in.m.inFlight.Value(); v != 3 {
		t.Fatalf("in flight %v, want 3", v)
	}
	for i := 2; i >= 0; i-- {
		j.complete(i)
	}
	for i, tk := range tickets {
		sum, err := tk.Wait(ctx)
		if err != nil || sum.Records != 1 || sum.Accepted != 1 {
			t.Fatalf("ticket %d: %+v %v", i, sum, err)
		}
	}
	if got := strings.Join(j.order, ","); got != "D1:1,D1:2,D1:3" {
		t.Fatalf("journal order %s", got)
	}
	if v := in.m.inFlight.Value(); v != 0 {
		t.Fatalf("in flight %v after Wait", v)
	}
}

// TestWaitRetriesFailedAsyncAppend checks that an append Start began and
// that failed is made durable by Wait's retries with Append.
func TestWaitRetriesFailedAsyncAppend(t *testing.T) {
	j := &fakeJournal{asyncFailures: 1, failures: 1}
	in := newIngester(t, j, nil)
	tk, err := in.Start(context.Background(), readingMsg(1))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := tk.Wait(context.Background())
	if err != nil || sum.Accepted != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
	// One failed AppendAsync, one failed Append, one Append that stored.
	if j.asyncCalls != 1 || j.calls != 2 || strings.Join(j.order, ",") != "D1:1" {
		t.Fatalf("async calls %d, append calls %d, stored %v", j.asyncCalls, j.calls, j.order)
	}
}

// TestWaitCancelled checks that a Wait whose context ends before the
// append is durable returns ErrStopping (so the transport does not ack)
// and frees the slot, and that the append finishing later harms nothing.
func TestWaitCancelled(t *testing.T) {
	j := &stagedJournal{}
	in := newIngester(t, j, func(c *Config) { c.InFlight = 1 })
	tk, err := in.Start(context.Background(), readingMsg(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := tk.Wait(ctx); !errors.Is(err, ErrStopping) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ErrStopping and context.Canceled", err)
	}
	j.complete(0)
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if _, err := in.Start(short, readingMsg(2)); err != nil {
		t.Fatalf("slot not freed: %v", err)
	}
}

// TestTicketReleasesSlot runs every way a ticket can end with in_flight 1
// and checks that each frees the one slot exactly once: the next Start
// gets it at once, and so does the one after.
func TestTicketReleasesSlot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		j       Journal
		msg     Message
		timeout time.Duration // for Wait; 0 waits without a deadline
		wantErr bool
		twice   bool // call Wait a second time
	}{
		{name: "stored", j: &fakeJournal{}, msg: readingMsg(1)},
		{name: "conflict dead-lettered", j: &fakeJournal{stored: map[string][]byte{"D1:1": []byte("other")}}, msg: readingMsg(1)},
		{name: "refused without append", j: &fakeJournal{}, msg: mqttMsg("coldchain/v1/S1/D1/readings", `{"seq":`)},
		{name: "async append retried", j: &fakeJournal{asyncFailures: 1}, msg: readingMsg(1)},
		{name: "append never durable", j: &fakeJournal{failures: 1 << 30}, msg: readingMsg(1), timeout: 100 * time.Millisecond, wantErr: true},
		{name: "dead letter never durable", j: &fakeJournal{failures: 1 << 30}, msg: mqttMsg("coldchain/v1/S1/D1/readings", `{"seq":`), timeout: 100 * time.Millisecond, wantErr: true},
		{name: "append never done", j: &stagedJournal{}, msg: readingMsg(1), timeout: 50 * time.Millisecond, wantErr: true},
		{name: "waited twice", j: &fakeJournal{}, msg: readingMsg(1), twice: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newIngester(t, tc.j, func(c *Config) { c.InFlight = 1 })
			tk, err := in.Start(context.Background(), tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			sum, err := tk.Wait(ctx)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrStopping)) {
				t.Fatalf("Wait: %+v %v", sum, err)
			}
			if tc.twice {
				sum2, err2 := tk.Wait(ctx)
				if err2 != err || sum2.Accepted != sum.Accepted {
					t.Fatalf("second Wait: %+v %v, first %+v %v", sum2, err2, sum, err)
				}
			}
			if v := in.m.inFlight.Value(); v != 0 {
				t.Fatalf("in flight %v after Wait", v)
			}
			// Two more messages in sequence: each needs the one slot.
			for seq := 7; seq <= 8; seq++ {
				short, cancel := context.WithTimeout(context.Background(), time.Second)
				next, err := in.Start(short, readingMsg(seq))
				cancel()
				if err != nil {
					t.Fatalf("slot not freed: %v", err)
				}
				if sj, ok := tc.j.(*stagedJournal); ok {
					sj.complete(sj.started() - 1)
				}
				if fj, ok := tc.j.(*fakeJournal); ok {
					fj.mu.Lock()
					fj.failures = 0
					fj.mu.Unlock()
				}
				if _, err := next.Wait(context.Background()); err != nil {
					t.Fatalf("message %d: %v", seq, err)
				}
			}
		})
	}
}

// TestInFlightBytes checks the byte bound: messages whose payloads do not
// fit in ingest.in_flight_bytes wait for earlier ones to finish.
func TestInFlightBytes(t *testing.T) {
	in := newIngester(t, &fakeJournal{}, func(c *Config) { c.MaxPayload, c.InFlightBytes = 1024, 2048 })
	big := func(seq int) Message {
		m := readingMsg(seq)
		m.Payload = append(m.Payload, strings.Repeat(" ", 1000-len(m.Payload))...)
		return m
	}
	t1, err := in.Start(context.Background(), big(1))
	if err != nil {
		t.Fatal(err)
	}
	t2, err := in.Start(context.Background(), big(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := in.Start(ctx, big(3)); !errors.Is(err, ErrStopping) {
		t.Fatalf("a third 1,000-byte message started within 2,048 bytes: %v", err)
	}
	if _, err := t1.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	t3, err := in.Start(context.Background(), big(3))
	if err != nil {
		t.Fatalf("after one finished: %v", err)
	}
	for _, tk := range []*Ticket{t2, t3} {
		if sum, err := tk.Wait(context.Background()); err != nil || sum.Accepted != 1 {
			t.Fatalf("%+v %v", sum, err)
		}
	}
	bad := DefaultConfig()
	bad.InFlightBytes = bad.MaxPayload - 1
	if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "ingest.in_flight_bytes:") {
		t.Fatalf("validate: %v", err)
	}
}
