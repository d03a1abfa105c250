package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRemovals: a context held for a principal ends, with cause
// ErrRemoved, when the registry removes it; others' contexts stay open;
// OnRemove hears each removal; release forgets the context.
func TestRemovals(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	d, err := OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	pw := []byte("device-password-000001")
	for _, p := range []Principal{devA, {Kind: KindDevice, ID: "L2", Org: "acme"}, siteW} {
		c, err := NewCredential(p, pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	tok, tc, err := NewToken(Principal{Role: RoleShipper, Org: "acme", Name: "qa"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(ctx, tc); err != nil {
		t.Fatal(err)
	}
	tp, err := d.AuthenticateToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}

	r, err := d.WatchRemovals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	<-r.Ready()
	var mu sync.Mutex
	var heard []Principal
	r.OnRemove(func(p Principal) { mu.Lock(); heard = append(heard, p); mu.Unlock() })

	tokCtx, releaseTok := r.Context(ctx, tp)
	defer releaseTok()
	devCtx, releaseDev := r.Context(ctx, devA)
	defer releaseDev()
	otherCtx, releaseOther := r.Context(ctx, Principal{Kind: KindDevice, ID: "L2"})
	if n := r.Open(devA); n != 1 {
		t.Fatalf("Open(L1) = %d, want 1", n)
	}

	if err := d.Remove(ctx, KindToken, tp.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tokCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked token's context is still open")
	}
	if !errors.Is(context.Cause(tokCtx), ErrRemoved) {
		t.Errorf("cause %v, want ErrRemoved", context.Cause(tokCtx))
	}
	if err := d.Remove(ctx, KindDevice, devA.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-devCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed device's context is still open")
	}
	if otherCtx.Err() != nil {
		t.Error("another device's context ended")
	}
	releaseOther()
	if otherCtx.Err() == nil || errors.Is(context.Cause(otherCtx), ErrRemoved) {
		t.Errorf("a released context: %v (cause %v), want cancelled, not removed", otherCtx.Err(), context.Cause(otherCtx))
	}
	if n := r.Open(Principal{Kind: KindDevice, ID: "L2"}); n != 0 {
		t.Errorf("a released context is still held (%d)", n)
	}
	// A grant taken back is not an identity removed; the site after it
	// is, and the watch delivers in order.
	if err := d.Grant(ctx, "S1", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := d.Revoke(ctx, "S1", "acme"); err != nil {
		t.Fatal(err)
	}
	siteCtx, releaseSite := r.Context(ctx, Principal{Kind: KindSite, ID: siteW.ID})
	defer releaseSite()
	if err := d.Remove(ctx, KindSite, siteW.ID); err != nil {
		t.Fatal(err)
	}
	<-siteCtx.Done()
	mu.Lock()
	defer mu.Unlock()
	want := []Principal{{Kind: KindToken, ID: tp.ID}, {Kind: KindDevice, ID: "L1"}, {Kind: KindSite, ID: siteW.ID}}
	if len(heard) != len(want) || heard[0] != want[0] || heard[1] != want[1] || heard[2] != want[2] {
		t.Errorf("OnRemove heard %v, want %v", heard, want)
	}
}
