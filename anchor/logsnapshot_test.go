package anchor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/embedded/natsserver"
)

// memStore is a SnapshotStore in memory.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    int
}

func newMemStore() *memStore { return &memStore{objects: map[string][]byte{}} }

func (m *memStore) Put(_ context.Context, name string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[name] = b
	m.puts++
	return nil
}

func (m *memStore) Open(_ context.Context, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[name]
	if !ok {
		return nil, fmt.Errorf("object %s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name := range m.objects {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out, nil
}

func (m *memStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, name)
	return nil
}

// TestLogSnapshot: the anchorer stores snapshots of its logs, uploading
// only the files that are new; a member without logs restores the latest,
// follows the steps after it (a replay from the first step would not fit
// the restored logs) and ends with the anchorer's logs, leaf for leaf. A
// damaged file, a forged leaf or a snapshot of an older step log is not
// restored.
func TestLogSnapshot(t *testing.T) {
	dir, chain, store := t.TempDir(), newFakeChain(), newMemStore()
	ctx := context.Background()
	a := startGatewayWith(t, dir, dir+"/a", chain, true)
	a.append(twoKinds(0, 60)...)
	a.waitAnchored(chain, "SHP-A", 63)
	first, taken, err := a.s.SnapshotLogs(ctx, store, "gw-a")
	must(t, err)
	if !taken || first.Step == 0 || first.Records != 123 || len(first.Files) == 0 {
		t.Fatalf("first snapshot: taken %v, %+v", taken, first)
	}
	if _, taken, err := a.s.SnapshotLogs(ctx, store, "gw-a"); err != nil || taken {
		t.Fatalf("a snapshot with no step since: taken %v, %v", taken, err)
	}
	a.append(twoKinds(60, 120)...)
	want := a.waitAnchored(chain, "SHP-A", 125)
	a.waitAnchored(chain, "SHP-B", 120)
	puts := store.puts
	second, taken, err := a.s.SnapshotLogs(ctx, store, "gw-a")
	must(t, err)
	if !taken || second.Step <= first.Step {
		t.Fatalf("second snapshot: taken %v, step %d after %d", taken, second.Step, first.Step)
	}
	reused := 0
	for _, f := range second.Files {
		if slices.ContainsFunc(first.Files, func(g SnapshotFile) bool { return g.SHA256 == f.SHA256 }) {
			reused++
		}
	}
	if uploads := store.puts - puts - 1; reused == 0 || uploads != len(second.Files)-reused {
		t.Errorf("second snapshot: %d files, %d of them the first's, %d uploaded", len(second.Files), reused, uploads)
	}
	t.Logf("second snapshot: %d files (%v), %d of them the first's", len(second.Files), second.Files, reused)
	// A few steps more than the snapshot: the restorer replays them.
	a.append(twoKinds(120, 130)...)
	want = a.waitAnchored(chain, "SHP-A", 136) // 10 readings and a handover
	numA, rootA := a.s.LastEpoch()
	a.stop()

	b := startGatewayRestoring(t, dir, dir+"/b", chain, true, store)
	if b.restored.Step != second.Step {
		t.Fatalf("restored snapshot of step %d, want %d", b.restored.Step, second.Step)
	}
	if n, root := waitEpoch(t, b.s, numA); n != numA || root != rootA {
		t.Fatalf("after restore and replay B is at epoch %d %s, A was at %d %s", n, root, numA, rootA)
	}
	got := b.waitAnchored(chain, "SHP-A", want.TreeSize) // replayed epochs wait for their receipts
	if got.Root != want.Root || got.TreeSize != want.TreeSize {
		t.Fatalf("B's SHP-A log is %d %s, A's %d %s", got.TreeSize, got.Root, want.TreeSize, want.Root)
	}
	b.stop()

	// B has logs now: nothing is restored over them.
	b = startGatewayRestoring(t, dir, dir+"/b", chain, true, store)
	if b.restored.Step != 0 {
		t.Fatal("a snapshot was restored over existing logs")
	}
	waitEpoch(t, b.s, numA)
	b.stop()

	// A damaged file.
	bad := newMemStore()
	for k, v := range store.objects {
		bad.objects[k] = slices.Clone(v)
	}
	largest := slices.MaxFunc(second.Files, func(a, b SnapshotFile) int { return int(a.Size - b.Size) })
	bad.objects[logFilePrefix+largest.SHA256][largest.Size/2] ^= 1
	g := startNATSOnly(t, dir)
	if _, ok, err := RestoreLogs(ctx, bad, g.steps, dir+"/c", testLogger(t)); ok || err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("a damaged snapshot: restored %v, %v", ok, err)
	}

	// A forged leaf: its record is not the one its hash commits to.
	db, err := pebble.Open(dir+"/b/anchor", &pebble.Options{})
	must(t, err)
	must(t, verifyLogs(db))
	v, _, err := get(db, leafKey("SHP-A", 3))
	must(t, err)
	v[len(v)-2] ^= 1
	must(t, db.Set(leafKey("SHP-A", 3), v, pebble.Sync))
	if err := verifyLogs(db); err == nil || !strings.Contains(err.Error(), "leaf 3") {
		t.Errorf("a forged leaf: %v", err)
	}
	must(t, db.Close())

	// The step log started again: the snapshot is of the old one.
	_, err = DeleteStepLog(ctx, g.js)
	must(t, err)
	if _, ok, err := RestoreLogs(ctx, store, g.steps, dir+"/d", testLogger(t)); ok || err != nil {
		t.Errorf("a snapshot of an earlier step log: restored %v, %v", ok, err)
	}
	g.stop()
}

// natsOnly is the NATS server of a test gateway's data dir with its step
// log, and no journal or anchorer.
type natsOnly struct {
	srv   *natsserver.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	steps *StepLog
}

func startNATSOnly(t *testing.T, dir string) *natsOnly {
	t.Helper()
	g := &natsOnly{}
	var err error
	g.srv, err = natsserver.Start(natsserver.Config{Listen: "127.0.0.1:0", StoreDir: dir + "/nats", MaxPayload: 8 << 20}, testLogger(t))
	must(t, err)
	g.nc, err = g.srv.Connect()
	must(t, err)
	g.js, err = jetstream.New(g.nc)
	must(t, err)
	g.steps, err = OpenStepLog(t.Context(), g.js, 1, "test")
	must(t, err)
	return g
}

func (g *natsOnly) stop() {
	g.nc.Close()
	g.srv.Shutdown()
}
