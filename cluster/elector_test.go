package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/embedded/natsserver"
)

const testTTL = 2 * time.Second

// testCluster starts three in-process JetStream nodes with routes.
func testCluster(t *testing.T) []*natsserver.Server {
	t.Helper()
	nodes, err := natsserver.StartCluster(3, t.TempDir(), "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Shutdown()
		}
	})
	return nodes
}

// connect opens a JetStream context on one node only (no failover), so a
// member can be cut off by stopping its node.
func connect(t *testing.T, n *natsserver.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(n.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.DontRandomize(), nats.IgnoreDiscoveredServers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// openLeases retries: right after the cluster forms, the first replicated
// stream can take a moment to get its Raft group.
func openLeases(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	var err error
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var kv jetstream.KeyValue
		kv, err = OpenLeases(ctx, js, testTTL, 3)
		cancel()
		if err == nil {
			return kv
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// worker counts who runs the work, and fails the test the moment two do.
type worker struct {
	t       *testing.T
	mu      sync.Mutex
	running string
	starts  map[string]int
	overlap atomic.Int64
}

func (w *worker) work(name string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		w.mu.Lock()
		if w.running != "" {
			w.overlap.Add(1)
			w.t.Errorf("%s started the work while %s runs it", name, w.running)
		}
		w.running = name
		w.starts[name]++
		w.mu.Unlock()
		<-ctx.Done()
		w.mu.Lock()
		if w.running == name {
			w.running = ""
		}
		w.mu.Unlock()
		return nil
	}
}

func (w *worker) holder() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestElectorOneHolder runs three members, one per node, and takes the
// holder away twice: once by stopping it (it releases the lease) and once
// by stopping its NATS node (it cannot renew; the lease expires). Every
// time exactly one member runs the work, and never two at once.
func TestElectorOneHolder(t *testing.T) {
	nodes := testCluster(t)
	w := &worker{t: t, starts: map[string]int{}}
	type member struct {
		e    *Elector
		stop context.CancelFunc
		done chan error
	}
	members := map[string]*member{}
	for i, n := range nodes {
		name := fmt.Sprintf("gw-%d", i+1)
		kv := openLeases(t, connect(t, n))
		e := NewElector(kv, "consumers", name, testTTL, zaptest.NewLogger(t).Named(name))
		ctx, stop := context.WithCancel(context.Background())
		m := &member{e: e, stop: stop, done: make(chan error, 1)}
		members[name] = m
		go func() { m.done <- e.Run(ctx, w.work(name)) }()
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.stop()
			<-m.done
		}
	})

	waitFor(t, "a holder", func() bool { return w.holder() != "" })
	first := w.holder()
	for name, m := range members {
		_, held := m.e.Held()
		if held != (name == first) {
			t.Errorf("%s: Held() = %v, the work runs on %s", name, held, first)
		}
	}
	waitFor(t, "the others to see the holder", func() bool {
		for name, m := range members {
			if name != first && m.e.Status().Holder != first {
				return false
			}
		}
		return true
	})

	// A graceful stop releases the lease.
	members[first].stop()
	if err := <-members[first].done; err != nil {
		t.Fatal(err)
	}
	members[first].done <- nil // for the cleanup
	waitFor(t, "a second holder", func() bool { h := w.holder(); return h != "" && h != first })
	second := w.holder()
	term2, _ := members[second].e.Held()

	// Cut the holder off: stop the node it is connected to. It must stop
	// its work by itself, and another member take over.
	var idx int
	fmt.Sscanf(second, "gw-%d", &idx)
	nodes[idx-1].Shutdown()
	waitFor(t, "a third holder", func() bool { h := w.holder(); return h != "" && h != second && h != first })
	third := w.holder()
	term3, _ := members[third].e.Held()
	if term3 <= term2 {
		t.Errorf("terms must grow: %s had %d, %s has %d", second, term2, third, term3)
	}
	if w.overlap.Load() != 0 {
		t.Fatalf("%d overlaps", w.overlap.Load())
	}
	if w.starts[first] != 1 || w.starts[second] != 1 || w.starts[third] != 1 {
		t.Errorf("starts = %v", w.starts)
	}
	// The node comes back: the cut-off member reconnects and sees the new
	// holder; it does not take the lease back.
	if err := nodes[idx-1].Restart(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, second+" to see "+third, func() bool { return members[second].e.Status().Holder == third })
	if h := w.holder(); h != third {
		t.Errorf("holder is %s after the node came back, want %s", h, third)
	}
}

// TestElectorEligible: a member that is not eligible never takes the
// lease, and says why.
func TestElectorEligible(t *testing.T) {
	nodes := testCluster(t)
	kv := openLeases(t, connect(t, nodes[0]))
	e := NewElector(kv, "anchor", "gw-1", testTTL, zaptest.NewLogger(t))
	e.Eligible = func(context.Context) error { return errors.New("behind the cluster's epochs") }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ran := make(chan struct{}, 1)
	go func() {
		done <- e.Run(ctx, func(ctx context.Context) error { ran <- struct{}{}; <-ctx.Done(); return nil })
	}()
	waitFor(t, "the reason", func() bool { return e.Status().Waiting != "" })
	if _, err := kv.Get(context.Background(), "anchor"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the lease key exists: %v", err)
	}
	cancel()
	<-done
	select {
	case <-ran:
		t.Fatal("an ineligible member ran the work")
	default:
	}
}
