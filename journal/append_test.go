package journal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/record"
)

// indexed waits until the index holds everything stored so far.
func (e *env) indexed() {
	e.t.Helper()
	eventually(e.t, "index caught up", func() bool {
		for _, k := range indexedKinds {
			info, err := e.j.streams[k].Info(context.Background())
			if err != nil || e.j.idx.states[k].applied.Load() < info.State.LastSeq {
				return false
			}
		}
		return true
	})
}

// TestAppendExactlyOnce walks records through every path of
// docs/EXACTLY-ONCE.md: new, resent while the lane remembers it, resent
// once only the index knows it, conflicting in both, and resent after a
// restart and after the index was lost.
func TestAppendExactlyOnce(t *testing.T) {
	cfg := DefaultConfig()
	dir := t.TempDir()
	e := start(t, dir, cfg)

	a, b, c := reading("D1", 1, 5), reading("D1", 2, 5.5), reading("D2", 7, 6)
	hA := handover("H1", "ok")
	want(t, e.append(a, b, c, hA), Stored, Stored, Stored, Stored)

	// At once: the lanes remember what they stored.
	bChanged := reading("D1", 2, 9.9)
	want(t, e.append(a, bChanged, hA, handover("H1", "changed")), Duplicate, Conflict, Duplicate, Conflict)

	// Once the index has them, the lanes forget them and the index answers.
	e.indexed()
	want(t, e.append(c, a, bChanged, hA, handover("H1", "changed")), Duplicate, Duplicate, Conflict, Duplicate, Conflict)
	if l := e.j.lanes[laneKey{record.KindReading, "D1"}]; len(l.recent) != 0 {
		t.Fatalf("lane D1 still remembers %d records the index holds", len(l.recent))
	}

	// A genuinely new reading below the device's mark is looked up, missed,
	// stored; one repeated within an append is stored once.
	d1gap := reading("D1", 0, 4)
	want(t, e.append(d1gap, reading("D1", 3, 4), reading("D1", 3, 4), reading("D1", 3, 5)), Stored, Stored, Duplicate, Conflict)

	if n := e.count(record.KindReading); n != 5 {
		t.Fatalf("%d readings stored, want 5", n)
	}
	if n := e.count(record.KindHandover); n != 1 {
		t.Fatalf("%d handovers stored, want 1", n)
	}
	e.stop()

	// Everything survives a restart: the index is on disk.
	e = start(t, dir, cfg)
	want(t, e.append(a, c, d1gap, hA, reading("D1", 4, 4)), Duplicate, Duplicate, Duplicate, Duplicate, Stored)
	e.stop()

	// And a lost index is rebuilt from the streams before appends are
	// decided.
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	e = start(t, dir, cfg)
	defer e.stop()
	want(t, e.append(a, c, d1gap, hA, reading("D1", 4, 4), bChanged), Duplicate, Duplicate, Duplicate, Duplicate, Duplicate, Conflict)
	if n := e.count(record.KindReading); n != 6 {
		t.Fatalf("%d readings stored after restarts, want 6", n)
	}
}

// TestAppendBurstOutOfOrder appends a logger's burst in reverse order, then
// the same burst again once indexed: each reading is stored once, the
// first upload as one chunk.
func TestAppendBurstOutOfOrder(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	var burst []Entry
	for seq := 500; seq > 0; seq-- {
		burst = append(burst, reading("LOG-1", uint64(seq), 5))
	}
	for _, o := range e.append(burst...) {
		if o != Stored {
			t.Fatalf("first upload: %v", o)
		}
	}
	e.indexed()
	for i, o := range e.append(burst...) {
		if o != Duplicate {
			t.Fatalf("re-upload %d: %v", i, o)
		}
	}
	if n := e.count(record.KindReading); n != 500 {
		t.Fatalf("%d stored, want 500", n)
	}
	info, err := e.j.streams[record.KindReading].Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages for one burst, want one chunk", info.State.Msgs)
	}
}

// TestAppendChunkLimit appends a burst larger than a chunk may be: it is
// cut into several chunks numbered as one group, in order.
func TestAppendChunkLimit(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	e.j.maxChunk = 4 << 10
	var burst []Entry
	for seq := 1; seq <= 200; seq++ {
		burst = append(burst, reading("BIG", uint64(seq), 5))
	}
	for _, o := range e.append(burst...) {
		if o != Stored {
			t.Fatalf("%v", o)
		}
	}
	info, err := e.j.streams[record.KindReading].Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := info.State.Msgs
	if n < 2 {
		t.Fatalf("%d chunks, want several", n)
	}
	var seqs []uint64
	for s := uint64(1); s <= n; s++ {
		m, err := e.j.streams[record.KindReading].GetMsg(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Data) > 4<<10 {
			t.Fatalf("chunk %d is %d bytes", s, len(m.Data))
		}
		if got, want := m.Header.Get(HeaderPart), fmt.Sprintf("%d/%d", s, n); got != want {
			t.Fatalf("chunk %d part %q, want %q", s, got, want)
		}
		recs, err := Unpack(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			_, seq, _ := splitReadingID(r.ID)
			seqs = append(seqs, seq)
		}
	}
	if len(seqs) != 200 || seqs[0] != 1 || seqs[199] != 200 {
		t.Fatalf("records %d, first %d, last %d", len(seqs), seqs[0], seqs[len(seqs)-1])
	}
}

// TestAppendTwoGateways runs two journals on one NATS, each with its own
// index, as two gateways of a cluster, and has both append the same
// readings at once: each is stored exactly once, and each journal answers
// for the records the other stored.
func TestAppendTwoGateways(t *testing.T) {
	// With position ids too, as on a server with nats-server#4319: the
	// embedded server does not have the bug, so this checks that the
	// guard itself stores each record once.
	for _, guard := range []bool{false, true} {
		t.Run(fmt.Sprintf("position_ids=%t", guard), func(t *testing.T) { appendTwoGateways(t, guard) })
	}
}

func appendTwoGateways(t *testing.T, positionIDs bool) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	ctx := context.Background()
	j2, stop2 := e.second()
	defer stop2()
	e.j.positionIDs, j2.positionIDs = positionIDs, positionIDs

	const n = 300
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		outcome = map[string][]Outcome{}
	)
	for _, j := range []*Journal{e.j, j2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; seq <= n; seq += 3 {
				entries := []Entry{reading("TWIN", uint64(seq), 5), reading("TWIN", uint64(seq+1), 5), reading("TWIN", uint64(seq+2), 5)}
				out := make([]Result, len(entries))
				if err := j.Append(ctx, entries, Meta{Source: "test", Received: time.Now()}, out); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range out {
					outcome[entries[i].ID] = append(outcome[entries[i].ID], r.Outcome)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id, oc := range outcome {
		s := fmt.Sprint(oc)
		if s != "[stored duplicate]" && s != "[duplicate stored]" {
			t.Fatalf("%s: %v, want stored once and a duplicate once", id, oc)
		}
	}
	if len(outcome) != n {
		t.Fatalf("%d ids, want %d", len(outcome), n)
	}
	if c := e.count(record.KindReading); c != n {
		t.Fatalf("%d readings stored, want %d", c, n)
	}
}

// TestIndexOfOtherStreams deletes the streams under a gateway's index: the
// next start empties the index instead of calling new readings resends.
func TestIndexOfOtherStreams(t *testing.T) {
	dir := t.TempDir()
	e := start(t, dir, DefaultConfig())
	want(t, e.append(reading("R1", 1, 5)), Stored)
	e.indexed()
	if err := e.j.JetStream().DeleteStream(context.Background(), StreamReadings); err != nil {
		t.Fatal(err)
	}
	e.stop()
	e = start(t, dir, DefaultConfig())
	defer e.stop()
	want(t, e.append(reading("R1", 1, 5)), Stored)
}

func TestUnpack(t *testing.T) {
	data := appendChunkLine(appendChunkLine(nil, "d:1", []byte(`{"a":1}`)), "d:2", []byte(`{"a":2}`))
	recs, err := Unpack(nats.Header{HeaderRecords: {"2"}}, data)
	if err != nil || len(recs) != 2 || recs[1].ID != "d:2" || string(recs[1].Data) != `{"a":2}` {
		t.Fatalf("%v %+v", err, recs)
	}
	single, err := Unpack(nats.Header{jetstream.MsgIDHeader: {"alert-1"}}, []byte(`{"x":1}`))
	if err != nil || len(single) != 1 || single[0].ID != "alert-1" {
		t.Fatalf("%v %+v", err, single)
	}
	for name, tc := range map[string]struct {
		n    string
		data string
	}{
		"count":      {"3", string(data)},
		"bad count":  {"x", string(data)},
		"zero":       {"0", ""},
		"no newline": {"1", `d:1 {"a":1}`},
		"no id":      {"1", "{\"a\":1}\n"},
		"empty id":   {"1", " {\"a\":1}\n"},
		"empty data": {"1", "d:1 \n"},
	} {
		if _, err := Unpack(nats.Header{HeaderRecords: {tc.n}}, []byte(tc.data)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), ErrBadChunk.Error()) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if validChunkLine("a b", []byte("x")) || validChunkLine("a", []byte("x\ny")) || !validChunkLine("d:1", []byte("{}")) {
		t.Fatal("validChunkLine")
	}
	if s, i := SplitPosition(Position(1<<40, 9999)); s != 1<<40 || i != 9999 {
		t.Fatalf("position %d %d", s, i)
	}
	if Position(7, MaxChunkRecords) >= Position(8, 0) || EndPosition(7) != Position(7, MaxChunkRecords) {
		t.Fatal("positions out of order")
	}
	dev, seq, ok := splitReadingID("reefer-7:18446744073709551615")
	if !ok || dev != "reefer-7" || seq != 1<<64-1 {
		t.Fatalf("split: %s %d %v", dev, seq, ok)
	}
	if _, _, ok := splitReadingID("reefer-7:"); ok {
		t.Fatal("empty seq accepted")
	}
	if _, ok := decodeIndexValue([]byte("short")); ok {
		t.Fatal("short index value accepted")
	}
}

// TestSweep checks that the sweeper drops what lanes remember once the
// index holds it, without waiting for the device's next append, and
// forgets idle lanes; a forgotten device's resend is still a duplicate.
func TestSweep(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	want(t, e.append(reading("SW", 1, 5), reading("SW", 2, 5)), Stored, Stored)
	l := e.j.lanes[laneKey{record.KindReading, "SW"}]
	l.state.Lock()
	remembered := len(l.recent)
	l.state.Unlock()
	if remembered != 2 {
		t.Fatalf("lane remembers %d records, want 2", remembered)
	}
	e.indexed()
	e.j.sweepOnce(time.Hour)
	l.state.Lock()
	remembered = len(l.recent)
	l.state.Unlock()
	if remembered != 0 {
		t.Fatalf("lane still remembers %d indexed records", remembered)
	}
	if e.j.lanes[laneKey{record.KindReading, "SW"}] != l {
		t.Fatal("a lane used within the idle time was forgotten")
	}
	e.j.sweepOnce(0)
	if _, ok := e.j.lanes[laneKey{record.KindReading, "SW"}]; ok {
		t.Fatal("an idle lane was kept")
	}
	want(t, e.append(reading("SW", 2, 5), reading("SW", 3, 5)), Duplicate, Stored)
}

// TestAppendConflictCounted: a journal whose lane last knew a device's
// subject before another gateway appended to it has its append refused
// once, decides again, stores the reading, and counts the conflict.
func TestAppendConflictCounted(t *testing.T) {
	e := start(t, t.TempDir(), DefaultConfig())
	defer e.stop()
	ctx := context.Background()
	j2, stop2 := e.second()
	defer stop2()
	appendOne := func(j *Journal, seq uint64) Outcome {
		t.Helper()
		out := make([]Result, 1)
		if err := j.Append(ctx, []Entry{reading("SPLIT", seq, 5)}, Meta{Source: "test", Received: time.Now()}, out); err != nil {
			t.Fatal(err)
		}
		return out[0].Outcome
	}
	if appendOne(j2, 1) != Stored || appendOne(e.j, 2) != Stored {
		t.Fatal("first appends not stored")
	}
	if e.j.Conflicts() != 0 || j2.Conflicts() != 0 {
		t.Fatalf("conflicts before any stale tail: %d, %d", e.j.Conflicts(), j2.Conflicts())
	}
	if oc := appendOne(j2, 3); oc != Stored {
		t.Fatalf("the append after another gateway's: %v", oc)
	}
	if e.j.Conflicts() != 0 || j2.Conflicts() != 1 {
		t.Fatalf("conflicts %d, %d; want 0, 1", e.j.Conflicts(), j2.Conflicts())
	}
	if c := e.count(record.KindReading); c != 3 {
		t.Fatalf("%d readings stored, want 3", c)
	}
}

// second opens and runs a second journal on e's NATS with an index of its
// own, as a second gateway of a cluster; stop stops and closes it.
func (e *env) second() (j *Journal, stop func()) {
	e.t.Helper()
	j, err := Open(context.Background(), e.nc, e.cfg, filepath.Join(e.t.TempDir(), "index2"), e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(runCtx) }()
	return j, func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Error(err)
		}
		if err := j.Close(); err != nil {
			e.t.Error(err)
		}
	}
}

func TestGuardsSubjectRace(t *testing.T) {
	for _, c := range []struct {
		version  string
		replicas int
		want     bool
	}{
		{"2.9.10", 3, true}, // Debian bookworm's
		{"2.9.20", 3, true},
		{"2.9.21", 3, false},
		{"2.10.0", 3, false},
		{"2.11.0-RC.1", 3, false},
		{"3.0.0", 2, false},
		{"2.9.10", 1, false}, // one server checks and stores under one lock
		{"", 3, true},        // unknown: guarded
		{"2.x.1", 3, true},
	} {
		if got := guardsSubjectRace(c.version, c.replicas); got != c.want {
			t.Errorf("guardsSubjectRace(%q, %d) = %t, want %t", c.version, c.replicas, got, c.want)
		}
	}
	if id := positionID("coldchain.readings.S1.D1", 42); id != "coldchain.readings.S1.D1@42" {
		t.Errorf("positionID = %q", id)
	}
}
