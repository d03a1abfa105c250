package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestPlacementRules(t *testing.T) {
	ab := []string{"a", "b"}
	abc := []string{"a", "b", "c"}
	for _, c := range []struct {
		name    string
		pl      Placement
		me      string
		take    bool
		handOff []int
	}{
		{"alone takes all", Placement{Holders: []string{"a", "a", "", ""}, Live: []string{"a"}}, "a", true, nil},
		{"not yet in the member list", Placement{Holders: []string{"", "", "", ""}}, "a", true, nil},
		{"full share", Placement{Holders: []string{"a", "a", "b", ""}, Live: ab}, "a", false, nil},
		{"below share", Placement{Holders: []string{"a", "a", "b", ""}, Live: ab}, "b", true, nil},
		{"a second member joins", Placement{Holders: []string{"a", "a", "a", "a"}, Live: ab}, "a", false, []int{2, 3}},
		{"the joiner takes", Placement{Holders: []string{"a", "a", "", ""}, Live: ab}, "b", true, nil},
		// 4 over 3: 2, 2, 0 is within ⌈4÷3⌉ but starves c; the member with
		// the most (ties: greatest name) gives one up, the other keeps.
		{"starved: richest gives one", Placement{Holders: []string{"a", "a", "b", "b"}, Live: abc}, "b", false, []int{3}},
		{"starved: tie, smaller name keeps", Placement{Holders: []string{"a", "a", "b", "b"}, Live: abc}, "a", false, nil},
		{"starved, but a partition is free for it", Placement{Holders: []string{"a", "a", "b", ""}, Live: abc}, "a", false, nil},
		{"starved member takes", Placement{Holders: []string{"a", "a", "b", ""}, Live: abc}, "c", true, nil},
		{"freed partition is the starved one's", Placement{Holders: []string{"a", "a", "b", ""}, Live: abc}, "b", false, nil},
		{"balanced", Placement{Holders: []string{"a", "a", "b", "c"}, Live: abc}, "a", false, nil},
		{"fewer partitions than members", Placement{Holders: []string{"a", ""}, Live: abc}, "b", true, nil},
		{"fewer partitions than members, holder", Placement{Holders: []string{"a", ""}, Live: abc}, "a", false, nil},
		// A dead member's leases count for no live member until they expire.
		{"dead holder", Placement{Holders: []string{"x", "x", "a", "a"}, Live: ab}, "b", true, nil},
		{"highest given up whatever the order taken", Placement{Holders: []string{"a", "a", "a", "a", "a", "a"}, Live: abc}, "a", false, []int{2, 3, 4, 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.pl.MayTake(c.me); got != c.take {
				t.Errorf("MayTake(%s) = %v, want %v", c.me, got, c.take)
			}
			if got := c.pl.HandOver(c.me); !slices.Equal(got, c.handOff) {
				t.Errorf("HandOver(%s) = %v, want %v", c.me, got, c.handOff)
			}
		})
	}
}

// TestPartitionsRebalance runs members on three in-process nodes sharing
// six partitions: one member alone takes all six; a second and a third
// joining each get their share, a member leaving gives its partitions to
// the others; and at no moment do two members run one partition.
func TestPartitionsRebalance(t *testing.T) {
	nodes := testCluster(t)
	openLeases(t, connect(t, nodes[0]))
	const n = 6
	var mu sync.Mutex
	running := map[int]string{}
	live := map[string]bool{}
	var overlaps []string
	liveFn := func(context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for m := range live {
			out = append(out, m)
		}
		slices.Sort(out)
		return out, nil
	}
	type member struct {
		p    *Partitions
		stop func()
	}
	start := func(name string, node int) member {
		js := connect(t, nodes[node])
		kv := openLeases(t, js)
		p := NewPartitions(kv, n, name, testTTL, liveFn, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name))
		p.Every = 100 * time.Millisecond
		mu.Lock()
		live[name] = true
		mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Run(ctx, func(ctx context.Context, part int) error {
				mu.Lock()
				if h, ok := running[part]; ok {
					overlaps = append(overlaps, fmt.Sprintf("partition %d run by %s and %s", part, h, name))
				}
				running[part] = name
				mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				delete(running, part)
				mu.Unlock()
				return nil
			})
		}()
		return member{p: p, stop: func() {
			mu.Lock()
			delete(live, name)
			mu.Unlock()
			cancel()
			<-done
		}}
	}
	// wait waits until every partition runs and each member runs want[i].
	wait := func(what string, ms []member, want ...int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := make([]int, len(ms))
			ok := len(running) == n
			mu.Unlock()
			for i, m := range ms {
				got[i] = len(m.p.Held())
			}
			if ok && slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: members hold %v partitions, want %v (running %v)", what, got, want, running)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	a := start("a", 0)
	wait("alone", []member{a}, 6)
	b := start("b", 1)
	wait("two members", []member{a, b}, 3, 3)
	c := start("c", 2)
	wait("three members", []member{a, b, c}, 2, 2, 2)
	// a's two partitions go to the others once its leases are released.
	a.stop()
	wait("a left", []member{b, c}, 3, 3)
	c.stop()
	wait("c left", []member{b}, 6)
	b.stop()
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Fatalf("two members ran one partition at once: %v", overlaps)
	}
	if len(running) != 0 {
		t.Fatalf("partitions still running after every member stopped: %v", running)
	}
}
