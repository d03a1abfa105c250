package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestMembersWatch: while they run, members list each other from their
// watch of the heartbeat bucket (not by listing its keys, a new consumer
// per call); a member that stops leaves the list at once, and a heartbeat
// older than the TTL is not listed.
func TestMembersWatch(t *testing.T) {
	nodes := testCluster(t)
	ctx := context.Background()
	open := func(i int, name string) (*Members, func()) {
		js := connect(t, nodes[i])
		var m *Members
		var err error
		waitFor(t, "the member bucket", func() bool {
			m, err = OpenMembers(ctx, js, Member{Name: name, Started: time.Now().UTC()}, 3*time.Second, 3, zap.NewNop())
			return err == nil
		})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(rctx) }()
		return m, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	a, stopA := open(0, "gw-a")
	defer stopA()
	_, stopB := open(2, "gw-b")
	names := func(m *Members) []string {
		var out []string
		ms, ok := m.cached()
		if !ok {
			return nil
		}
		for _, mb := range ms {
			out = append(out, mb.Name)
		}
		return out
	}
	waitFor(t, "gw-a to see both from its watch", func() bool { return slices.Equal(names(a), []string{"gw-a", "gw-b"}) })
	if ms, err := a.List(ctx); err != nil || len(ms) != 2 {
		t.Fatalf("List: %v %v", ms, err)
	}
	stopB()
	waitFor(t, "gw-b to leave gw-a's list", func() bool { return slices.Equal(names(a), []string{"gw-a"}) })

	a.mu.Lock()
	a.now = func() time.Time { return time.Now().Add(2 * a.ttl) }
	a.mu.Unlock()
	if got := names(a); len(got) != 0 {
		t.Fatalf("heartbeats older than the TTL listed: %v", got)
	}
	a.mu.Lock()
	a.now = time.Now
	a.mu.Unlock()
}
