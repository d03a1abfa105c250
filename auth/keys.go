package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/record"
)

// SigningKey is one Ed25519 public key a device signs its readings with.
type SigningKey struct {
	PublicKey ed25519.PublicKey `json:"public_key"` // 32 bytes, base64 in JSON
	// Added is when the key was registered; readings signed before a key
	// was replaced still verify with it (offline, from the bundle).
	Added time.Time `json:"added"`
}

// Fingerprint is the first 16 hex digits of the key's SHA-256: what a
// person compares with the one the device's maker published.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// DeviceKeys is a device's signing keys, oldest first; the last one is the
// one its readings must verify with now.
type DeviceKeys struct {
	Device string       `json:"device"`
	Keys   []SigningKey `json:"keys"`
}

// Current is the key readings must verify with now.
func (k DeviceKeys) Current() ed25519.PublicKey {
	if len(k.Keys) == 0 {
		return nil
	}
	return k.Keys[len(k.Keys)-1].PublicKey
}

func sigKey(device string) string { return "sigkey." + device }

// ErrKeyExists is returned by AddKey for a key the device has already.
var ErrKeyExists = errors.New("key already registered")

// AddKey registers pub as device's current signing key. Earlier keys are
// kept (never deleted, so old readings stay verifiable) but no longer
// accepted for new readings. Keys outlive the device's credential: a
// removed device's shipments still verify.
func (d *Directory) AddKey(ctx context.Context, device string, pub ed25519.PublicKey, at time.Time) error {
	if !record.ValidID(device) {
		return fmt.Errorf("device %q: %w", device, ErrUnknown)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("an Ed25519 public key is %d bytes, got %d", ed25519.PublicKeySize, len(pub))
	}
	for attempt := 0; ; attempt++ {
		cur, rev, err := d.keys(ctx, device)
		if err != nil && !errors.Is(err, ErrUnknown) {
			return err
		}
		for _, k := range cur.Keys {
			if bytes.Equal(k.PublicKey, pub) {
				return fmt.Errorf("device %s, key %s: %w", device, Fingerprint(pub), ErrKeyExists)
			}
		}
		cur.Device = device
		cur.Keys = append(cur.Keys, SigningKey{PublicKey: pub, Added: at.UTC()})
		b, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = d.kv.Create(ctx, sigKey(device), b)
		} else {
			_, err = d.kv.Update(ctx, sigKey(device), b, rev)
		}
		if err == nil {
			return nil
		}
		// Another gateway changed the entry in between: read it again.
		if attempt >= 5 || !(errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err)) {
			return fmt.Errorf("registering the signing key of %s: %w", device, err)
		}
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Keys returns device's signing keys, or ErrUnknown if it registered none.
func (d *Directory) Keys(ctx context.Context, device string) (DeviceKeys, error) {
	k, _, err := d.keys(ctx, device)
	return k, err
}

func (d *Directory) keys(ctx context.Context, device string) (DeviceKeys, uint64, error) {
	if !record.ValidID(device) {
		return DeviceKeys{}, 0, fmt.Errorf("device %q: %w", device, ErrUnknown)
	}
	e, err := d.kv.Get(ctx, sigKey(device))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return DeviceKeys{}, 0, fmt.Errorf("signing keys of %s: %w", device, ErrUnknown)
	}
	if err != nil {
		return DeviceKeys{}, 0, fmt.Errorf("looking up the signing keys of %s: %w", device, err)
	}
	var k DeviceKeys
	if err := json.Unmarshal(e.Value(), &k); err != nil {
		return DeviceKeys{}, 0, fmt.Errorf("registry entry %s is corrupt: %w", e.Key(), err)
	}
	return k, e.Revision(), nil
}

// KeyRing is an in-memory copy of every device's signing keys, kept
// current by a KV watch: the ingest path checks a signature without a
// round trip.
type KeyRing struct {
	mu sync.RWMutex
	m  map[string]DeviceKeys
	*watch
}

// WatchKeys starts following the signing keys until Stop. Until Ready,
// Current answers nil, so a gateway must wait for Ready before it ingests:
// else a device's unsigned readings would pass as of a device with no key.
func (d *Directory) WatchKeys(ctx context.Context) (*KeyRing, error) {
	r := &KeyRing{m: map[string]DeviceKeys{}}
	w, err := d.follow(ctx, "sigkey.>", func(e jetstream.KeyValueEntry) {
		var k DeviceKeys
		put := e.Operation() == jetstream.KeyValuePut
		if put && json.Unmarshal(e.Value(), &k) != nil {
			return
		}
		r.mu.Lock()
		if put {
			r.m[k.Device] = k
		} else {
			delete(r.m, e.Key()[len("sigkey."):])
		}
		r.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("watching signing keys: %w", err)
	}
	r.watch = w
	return r, nil
}

// Current returns the key device's readings must verify with, or nil.
func (r *KeyRing) Current(device string) ed25519.PublicKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[device].Current()
}

// Of returns every key device registered, oldest first.
func (r *KeyRing) Of(device string) []SigningKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.m[device].Keys)
}

// ParsePublicKey reads an Ed25519 public key: a PEM "PUBLIC KEY" block
// (PKIX, as `openssl pkey -pubout` writes it), or the base64 or hex of its
// 32 bytes on one line.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		if blk.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("a PEM %q block is not a public key: give the PUBLIC KEY (openssl pkey -in device.key -pubout)", blk.Type)
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("reading the public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("the key is a %T, not Ed25519: readings are signed with Ed25519 (openssl genpkey -algorithm ed25519)", k)
		}
		return pub, nil
	}
	s := string(bytes.TrimSpace(data))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return b, nil
		}
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	return nil, fmt.Errorf("not an Ed25519 public key: give a PEM PUBLIC KEY, or the base64 or hex of its %d bytes", ed25519.PublicKeySize)
}

// ParsePrivateKey reads an Ed25519 private key from a PEM "PRIVATE KEY"
// block (PKCS #8, as `openssl genpkey -algorithm ed25519` writes it).
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM PRIVATE KEY (PKCS #8): make one with coldchain devices keygen or openssl genpkey -algorithm ed25519")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading the private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not Ed25519", k)
	}
	return priv, nil
}

// GenerateKey makes a device signing key pair, PEM encoded: the private
// key (PKCS #8) stays on the device, the public key (PKIX) goes to the
// registry.
func GenerateKey() (privPEM, pubPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), nil
}
