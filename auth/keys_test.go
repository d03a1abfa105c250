package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestSigningKeys(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	d, err := OpenDirectory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := d.WatchKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Stop()
	<-ring.Ready()
	if ring.Current("L1") != nil {
		t.Fatal("a key before any was registered")
	}
	if _, err := d.Keys(ctx, "L1"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("keys of a device without: %v, want ErrUnknown", err)
	}
	k1, k2 := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	p1, p2 := k1.Public().(ed25519.PublicKey), k2.Public().(ed25519.PublicKey)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if err := d.AddKey(ctx, "L1", p1, t0); err != nil {
		t.Fatal(err)
	}
	if err := d.AddKey(ctx, "L1", p1, t0); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("same key twice: %v, want ErrKeyExists", err)
	}
	if err := d.AddKey(ctx, "L1", p1[:31], t0); err == nil {
		t.Fatal("a 31-byte key was registered")
	}
	waitKey := func(want ed25519.PublicKey) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !bytes.Equal(ring.Current("L1"), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the key ring holds %x, want %x", ring.Current("L1"), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitKey(p1)
	// Rotation: the new key is current, the old one is kept.
	if err := d.AddKey(ctx, "L1", p2, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitKey(p2)
	got, err := d.Keys(ctx, "L1")
	if err != nil || len(got.Keys) != 2 || !bytes.Equal(got.Keys[0].PublicKey, p1) || !got.Keys[1].Added.Equal(t0.Add(time.Hour)) {
		t.Fatalf("keys after rotation: %+v, %v", got, err)
	}
	if of := ring.Of("L1"); len(of) != 2 {
		t.Fatalf("the ring keeps %d keys of L1, want 2", len(of))
	}
	if Fingerprint(p1) == Fingerprint(p2) || len(Fingerprint(p1)) != 16 {
		t.Fatalf("fingerprints %s %s", Fingerprint(p1), Fingerprint(p2))
	}
}

// TestAddKeyConcurrent: two gateways registering keys for one device at
// once both land (compare-and-set on the entry's revision).
func TestAddKeyConcurrent(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			d, err := OpenDirectory(ctx, js, 1)
			if err != nil {
				errs[i] = err
				return
			}
			pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(10 + i)}, 32)).Public().(ed25519.PublicKey)
			errs[i] = d.AddKey(ctx, "L1", pub, time.Now())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	d, _ := OpenDirectory(ctx, js, 1)
	got, err := d.Keys(ctx, "L1")
	if err != nil || len(got.Keys) != len(errs) {
		t.Fatalf("%d keys after %d concurrent adds (%v)", len(got.Keys), len(errs), err)
	}
}

func TestParseKeys(t *testing.T) {
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("the generated public key is not the private key's")
	}
	for _, text := range []string{
		base64.StdEncoding.EncodeToString(pub) + "\n",
		base64.RawURLEncoding.EncodeToString(pub),
		hex.EncodeToString(pub),
	} {
		if got, err := ParsePublicKey([]byte(text)); err != nil || !got.Equal(pub) {
			t.Errorf("%q: %v", text, err)
		}
	}
	for name, bad := range map[string][]byte{
		"private key as public": privPEM,
		"short":                 []byte(base64.StdEncoding.EncodeToString(pub[:31])),
		"garbage":               []byte("hello"),
	} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParsePrivateKey(pubPEM); err == nil {
		t.Error("a public key read as private")
	}
}
