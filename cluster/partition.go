package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Placement is who holds each partition (Holders, by partition, "" for
// none) among the live members, as one member sees it: the pure rules of
// rebalancing. With n partitions and L live members each member should
// hold ⌊n÷L⌋ or ⌈n÷L⌉ of them.
type Placement struct {
	Holders []string
	Live    []string
}

func (pl Placement) bounds(me string) (floor, ceil int) {
	l := len(pl.Live)
	if !slices.Contains(pl.Live, me) {
		l++
	}
	n := len(pl.Holders)
	return n / l, (n + l - 1) / l
}

// count returns how many partitions m holds.
func (pl Placement) count(m string) int {
	c := 0
	for _, h := range pl.Holders {
		if h == m {
			c++
		}
	}
	return c
}

// starved reports whether a live member other than me holds fewer than
// floor.
func (pl Placement) starved(me string, floor int) bool {
	for _, m := range pl.Live {
		if m != me && pl.count(m) < floor {
			return true
		}
	}
	return false
}

// MayTake reports whether me may contend for one more partition: it holds
// fewer than ⌈n÷L⌉, and not while it already holds ⌊n÷L⌋ and another
// member holds fewer (the free partition is that member's to take).
func (pl Placement) MayTake(me string) bool {
	floor, ceil := pl.bounds(me)
	mine := pl.count(me)
	return mine < ceil && !(mine >= floor && pl.starved(me, floor))
}

// HandOver returns the partitions me gives up now: those beyond ⌈n÷L⌉;
// and, while another member holds fewer than ⌊n÷L⌋ and no partition is
// free for it to take, one beyond ⌊n÷L⌋ if me is the member with the most
// (ties: the greatest name), so that only one member gives one up at a
// time. A free partition may also be one just taken that me has not seen
// taken yet: giving one up then would move a partition for nothing. It
// gives up its highest partitions, so every member keeps the same ones
// whatever order it took them in.
func (pl Placement) HandOver(me string) []int {
	floor, ceil := pl.bounds(me)
	var mine []int
	for i, h := range pl.Holders {
		if h == me {
			mine = append(mine, i)
		}
	}
	if len(mine) > ceil {
		return mine[ceil:]
	}
	if len(mine) <= floor || !pl.starved(me, floor) || slices.Contains(pl.Holders, "") {
		return nil
	}
	for _, m := range pl.Live {
		if c := pl.count(m); m != me && (c > len(mine) || c == len(mine) && m > me) {
			return nil
		}
	}
	return mine[len(mine)-1:]
}

// PartitionLease is the lease key of partition p.
func PartitionLease(p int) string { return "partition-" + strconv.Itoa(p) }

// Partitions contends for the leases of n partitions on behalf of one
// member and runs a piece of work for each partition it holds,
// rebalancing by the Placement rules as members come and go. Create it
// with NewPartitions, run it with Run.
type Partitions struct {
	member   string
	electors []*Elector
	live     func(context.Context) ([]string, error)
	// Every is how often a holder checks the placement (1 s).
	Every time.Duration
}

// NewPartitions returns the contender for n partitions' leases in kv for
// member; live names the live members (from Members.List).
func NewPartitions(kv jetstream.KeyValue, n int, member string, ttl time.Duration, live func(context.Context) ([]string, error), log *zap.Logger) *Partitions {
	p := &Partitions{member: member, live: live, Every: time.Second}
	for i := range n {
		e := NewElector(kv, PartitionLease(i), member, ttl, log)
		e.Routine = true
		e.Eligible = func(ctx context.Context) error {
			pl, err := p.Placement(ctx)
			if err != nil {
				return err
			}
			if !pl.MayTake(member) {
				return fmt.Errorf("this member holds %d of %d partitions, its share among %d members", pl.count(member), n, len(pl.Live))
			}
			return nil
		}
		p.electors = append(p.electors, e)
	}
	return p
}

// Electors returns the partitions' electors, by partition, for the
// cluster view.
func (p *Partitions) Electors() []*Elector { return p.electors }

// Placement returns who holds each partition as this member last saw it:
// itself where it holds the lease, the last holder it read elsewhere.
func (p *Partitions) Placement(ctx context.Context) (Placement, error) {
	live, err := p.live(ctx)
	if err != nil {
		return Placement{}, fmt.Errorf("listing the live members: %w", err)
	}
	pl := Placement{Holders: make([]string, len(p.electors)), Live: live}
	for i, e := range p.electors {
		switch st := e.Status(); {
		case st.Held:
			pl.Holders[i] = p.member
		case st.Holder != p.member:
			pl.Holders[i] = st.Holder
		}
	}
	return pl, nil
}

// Held returns the partitions this member holds now.
func (p *Partitions) Held() []int {
	var out []int
	for i, e := range p.electors {
		if _, held := e.Held(); held {
			out = append(out, i)
		}
	}
	return out
}

// Run contends for every partition until ctx ends, running work(ctx, i)
// while partition i's lease is held; work must stop acting once its
// context is done. A partition the placement says to hand over is given
// up (its work stopped first) for a member with fewer. Run returns once
// every work has returned and every lease held is released.
func (p *Partitions) Run(ctx context.Context, work func(ctx context.Context, part int) error) {
	var wg sync.WaitGroup
	for i, e := range p.electors {
		wg.Go(func() {
			_ = e.Run(ctx, func(ctx context.Context) error {
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- work(wctx, i) }()
				t := time.NewTicker(p.Every)
				defer t.Stop()
				for {
					select {
					case err := <-done:
						return err
					case <-t.C:
						pl, err := p.Placement(wctx)
						if err != nil || !slices.Contains(pl.HandOver(p.member), i) {
							continue
						}
						cancel()
						<-done
						return fmt.Errorf("partition %d: %d members share %d partitions: %w", i, len(pl.Live), len(pl.Holders), ErrHandOver)
					}
				}
			})
		})
	}
	wg.Wait()
}

const partitionsKey = "partitions"

// PartitionsRecord is the partition count the cluster was started with.
type PartitionsRecord struct {
	Partitions int    `json:"partitions"`
	Member     string `json:"member"`
}

// ErrPartitionsDiffer is returned when a member's cluster.partitions is
// not the cluster's.
var ErrPartitionsDiffer = errors.New("cluster.partitions differs from the cluster's")

// ClaimPartitions records n as the cluster's partition count unless one is
// recorded, and fails with ErrPartitionsDiffer when the recorded count is
// not n: a shipment's partition is part of its readings' subjects, so
// every member must split them the same way.
func (s *State) ClaimPartitions(ctx context.Context, n int, member string) error {
	b, _ := json.Marshal(PartitionsRecord{Partitions: n, Member: member})
	_, err := s.kv.Create(ctx, partitionsKey, b)
	if err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	rec, ok, err := s.Partitions(ctx)
	if err != nil || !ok {
		return fmt.Errorf("reading the recorded partition count: %v", err)
	}
	if rec.Partitions != n {
		return fmt.Errorf("%w: this gateway has %d, the cluster %d (recorded by %s); set cluster.partitions: %d, or change the cluster's with `coldchain cluster partitions --set` once every gateway is stopped",
			ErrPartitionsDiffer, n, rec.Partitions, rec.Member, rec.Partitions)
	}
	return nil
}

// Partitions returns the recorded partition count; ok is false when none
// is.
func (s *State) Partitions(ctx context.Context) (rec PartitionsRecord, ok bool, err error) {
	ok, err = s.get(ctx, partitionsKey, &rec)
	return rec, ok, err
}

// SetPartitions records n as the cluster's partition count whatever was
// recorded (coldchain cluster partitions --set), for an operator who has
// stopped every gateway.
func (s *State) SetPartitions(ctx context.Context, n int, by string) error {
	b, _ := json.Marshal(PartitionsRecord{Partitions: n, Member: by})
	_, err := s.kv.Put(ctx, partitionsKey, b)
	return err
}
