package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/record"
)

// Bucket is the JetStream key-value bucket holding the identity registry,
// so every gateway on the same NATS sees the same identities.
const Bucket = "coldchain_identities"

// Directory is the identity registry in JetStream KV: one key per
// identity, "<kind>.<id>", holding a Credential as JSON.
type Directory struct {
	kv jetstream.KeyValue
	// now is the clock token expiry is checked on; tests set it.
	now func() time.Time
}

// OpenDirectory opens the registry bucket, creating it (file storage,
// replicas copies, full history of 5 revisions so a change can be traced).
func OpenDirectory(ctx context.Context, js jetstream.JetStream, replicas int) (*Directory, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "coldchain identities: devices and sites with bcrypt password hashes",
		History: 5, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("opening the identity registry (KV bucket %s): %w", Bucket, err)
	}
	return &Directory{kv: kv, now: time.Now}, nil
}

func key(k Kind, id string) string { return string(k) + "." + id }

// ErrExists is returned by Add for an identity already registered.
var ErrExists = errors.New("already registered")

// Add registers c; it refuses to overwrite an existing identity (use
// Remove first, which leaves the old entry in the bucket's history).
func (d *Directory) Add(ctx context.Context, c Credential) error {
	if !record.ValidID(c.ID) {
		return fmt.Errorf("id %q must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", c.ID)
	}
	if c.Kind == KindDevice && c.ID == TokenUsername {
		return fmt.Errorf("id %q is reserved: it is the MQTT username API tokens log in with; choose another", c.ID)
	}
	if c.Org != "" && !record.ValidID(c.Org) {
		return fmt.Errorf("org %q must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", c.Org)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := d.kv.Create(ctx, key(c.Kind, c.ID), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%s %s: %w", c.Kind, c.ID, ErrExists)
		}
		return fmt.Errorf("registering %s %s: %w", c.Kind, c.ID, err)
	}
	return nil
}

// Remove deletes an identity: it can no longer connect.
func (d *Directory) Remove(ctx context.Context, k Kind, id string) error {
	if _, err := d.Lookup(ctx, k, id); err != nil {
		return err
	}
	return d.kv.Delete(ctx, key(k, id))
}

// ErrWrongPassword is returned by Authenticate for a registered identity
// and a password that is not its.
var ErrWrongPassword = errors.New("wrong password")

// ErrExpired is returned by AuthenticateToken for a token past its expiry.
var ErrExpired = errors.New("token expired")

// ErrUnknown is returned by Lookup for an identity not registered.
var ErrUnknown = errors.New("not registered")

// Lookup returns the credential of kind k and id.
func (d *Directory) Lookup(ctx context.Context, k Kind, id string) (Credential, error) {
	if !record.ValidID(id) {
		return Credential{}, fmt.Errorf("%s %q: %w", k, id, ErrUnknown)
	}
	e, err := d.kv.Get(ctx, key(k, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Credential{}, fmt.Errorf("%s %s: %w", k, id, ErrUnknown)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("looking up %s %s: %w", k, id, err)
	}
	var c Credential
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Credential{}, fmt.Errorf("registry entry %s is corrupt: %w", e.Key(), err)
	}
	return c, nil
}

// Empty reports whether no identity is registered, without reading them
// all.
func (d *Directory) Empty(ctx context.Context) (bool, error) {
	keys, err := d.keyList(ctx, "device.>", "site.>")
	if err != nil {
		return false, err
	}
	return len(keys) == 0, nil
}

// keyList lists the keys under each filter, one filter per consumer: a
// consumer with several filter subjects needs nats-server 2.10, and
// Debian's is 2.9, which refuses it ("deliver last per subject, but
// optional filter subject is not set").
func (d *Directory) keyList(ctx context.Context, filters ...string) ([]string, error) {
	var out []string
	for _, f := range filters {
		l, err := d.kv.ListKeysFiltered(ctx, f)
		if err != nil {
			return nil, err
		}
		for k := range l.Keys() {
			out = append(out, k)
		}
	}
	return out, nil
}

// List returns every device and site, without hashes.
func (d *Directory) List(ctx context.Context) ([]Principal, error) {
	return d.list(ctx, "device.>", "site.>")
}

// Credentials returns every device and site with its hashes (for
// export-mosquitto).
func (d *Directory) Credentials(ctx context.Context) ([]Credential, error) {
	keys, err := d.keyList(ctx, "device.>", "site.>")
	if err != nil {
		return nil, err
	}
	var out []Credential
	for _, k := range keys {
		e, err := d.kv.Get(ctx, k)
		if err != nil {
			continue // deleted between listing and reading
		}
		var c Credential
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			return nil, fmt.Errorf("registry entry %s is corrupt: %w", k, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// GrantList returns every grant.
func (d *Directory) GrantList(ctx context.Context) ([]Grant, error) {
	keys, err := d.keyList(ctx, "grant.>")
	if err != nil {
		return nil, err
	}
	var out []Grant
	for _, k := range keys {
		if g, ok := parseGrantKey(k); ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// Tokens returns every API token, without hashes.
func (d *Directory) Tokens(ctx context.Context) ([]Credential, error) {
	keys, err := d.keyList(ctx, "token.>")
	if err != nil {
		return nil, err
	}
	var out []Credential
	for _, k := range keys {
		e, err := d.kv.Get(ctx, k)
		if err != nil {
			continue // revoked between listing and reading
		}
		var c Credential
		if json.Unmarshal(e.Value(), &c) == nil {
			c.Hash = nil
			out = append(out, c)
		}
	}
	return out, nil
}

func (d *Directory) list(ctx context.Context, filters ...string) ([]Principal, error) {
	keys, err := d.keyList(ctx, filters...)
	if err != nil {
		return nil, err
	}
	var out []Principal
	for _, k := range keys {
		e, err := d.kv.Get(ctx, k)
		if err != nil {
			continue // deleted between listing and reading
		}
		var c Credential
		if json.Unmarshal(e.Value(), &c) == nil {
			out = append(out, c.Principal)
		}
	}
	return out, nil
}

// Authenticate checks an MQTT username and password: the username is the
// device id, or "site.<id>" for a site. Every failure gives the same
// answer to the client (bad credentials); the error says which for the
// log.
func (d *Directory) Authenticate(ctx context.Context, username string, password []byte) (Principal, error) {
	c, err := d.byUsername(ctx, username)
	if err != nil {
		return Principal{}, err
	}
	if !c.Check(password) {
		return Principal{}, fmt.Errorf("%s: %w", c.Principal, ErrWrongPassword)
	}
	return c.Principal, nil
}

// Identify returns the identity an MQTT username names, without a
// password: for a client whose certificate (CN = username, DER cert)
// proved it. An identity with pinned certificates accepts only those.
func (d *Directory) Identify(ctx context.Context, username string, cert []byte) (Principal, error) {
	c, err := d.byUsername(ctx, username)
	if err != nil {
		return Principal{}, err
	}
	if !c.acceptsCert(cert) {
		return Principal{}, fmt.Errorf("%s: certificate %s is not one registered for it: %w", c.Principal, CertFingerprint(cert)[:16], ErrWrongPassword)
	}
	return c.Principal, nil
}

func (d *Directory) byUsername(ctx context.Context, username string) (Credential, error) {
	k, id := KindDevice, username
	if rest, ok := cutSite(username); ok {
		k, id = KindSite, rest
	}
	return d.Lookup(ctx, k, id)
}

// Username is what p gives as its MQTT username: its id, or "site.<id>"
// for a site.
func Username(p Principal) string {
	if p.Kind == KindSite {
		return "site." + p.ID
	}
	return p.ID
}

func cutSite(u string) (string, bool) {
	const p = "site."
	if len(u) > len(p) && u[:len(p)] == p {
		return u[len(p):], true
	}
	return "", false
}

// AuthenticateToken checks an API bearer token.
func (d *Directory) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	id, secret, err := splitToken(token)
	if err != nil {
		return Principal{}, err
	}
	c, err := d.Lookup(ctx, KindToken, id)
	if err != nil {
		return Principal{}, err
	}
	if !c.checkToken(secret) {
		return Principal{}, fmt.Errorf("token %s: %w", id, ErrWrongPassword)
	}
	// Checked after the secret: only the token's holder learns it expired.
	if !c.Expires.IsZero() && !d.now().Before(c.Expires) {
		return Principal{}, fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c.Principal, nil
}

func grantKey(shipment, org string) string { return "grant." + shipment + "." + org }

// parseGrantKey is grantKey's inverse (ids hold no dots).
func parseGrantKey(k string) (Grant, bool) {
	ship, org, ok := strings.Cut(strings.TrimPrefix(k, "grant."), ".")
	return Grant{Shipment: ship, Org: org}, ok
}

// Grant lets org's principals see shipment (and providers of org write
// it). Granting twice is not an error.
func (d *Directory) Grant(ctx context.Context, shipment, org string) error {
	if !record.ValidID(shipment) || !record.ValidID(org) {
		return fmt.Errorf("shipment %q and org %q must each be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", shipment, org)
	}
	if _, err := d.kv.Put(ctx, grantKey(shipment, org), []byte("{}")); err != nil {
		return fmt.Errorf("granting %s to %s: %w", shipment, org, err)
	}
	return nil
}

// Revoke takes a grant back.
func (d *Directory) Revoke(ctx context.Context, shipment, org string) error {
	if !record.ValidID(shipment) || !record.ValidID(org) {
		return fmt.Errorf("shipment %s to org %s: %w", shipment, org, ErrUnknown)
	}
	if _, err := d.kv.Get(ctx, grantKey(shipment, org)); err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("shipment %s was not granted to org %s: %w", shipment, org, ErrUnknown)
		}
		return err
	}
	return d.kv.Delete(ctx, grantKey(shipment, org))
}

// Grants is an in-memory copy of the registry's grants, kept current by a
// KV watch, so checking one costs no round trip.
type Grants struct {
	mu sync.RWMutex
	m  map[Grant]bool
	*watch
}

// WatchGrants starts following the grants until Stop. Granted answers
// false for everything until the current grants have been read (Ready is
// closed then).
func (d *Directory) WatchGrants(ctx context.Context) (*Grants, error) {
	g := &Grants{m: map[Grant]bool{}}
	w, err := d.follow(ctx, "grant.>", func(e jetstream.KeyValueEntry) {
		k, ok := parseGrantKey(e.Key())
		if !ok {
			return
		}
		g.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			g.m[k] = true
		} else {
			delete(g.m, k)
		}
		g.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("watching grants: %w", err)
	}
	g.watch = w
	return g, nil
}

// watch follows keys of the registry, applying each change in order.
type watch struct {
	ready chan struct{}
	stop  context.CancelFunc
	done  chan struct{}
}

func (d *Directory) follow(ctx context.Context, filter string, apply func(jetstream.KeyValueEntry)) (*watch, error) {
	ctx, stop := context.WithCancel(ctx)
	kw, err := d.kv.Watch(ctx, filter)
	if err != nil {
		stop()
		return nil, err
	}
	w := &watch{ready: make(chan struct{}), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer func() { _ = kw.Stop() }()
		initial := true
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-kw.Updates():
				if !ok {
					return
				}
				if e == nil { // the current values have all been sent
					if initial {
						initial = false
						close(w.ready)
					}
					continue
				}
				apply(e)
			}
		}
	}()
	return w, nil
}

// Stop ends the watch and waits for it.
func (w *watch) Stop() {
	w.stop()
	<-w.done
}

// Ready is closed once the entries that existed at the start are loaded.
func (w *watch) Ready() <-chan struct{} { return w.ready }

// Granted reports whether shipment is granted to org.
func (g *Grants) Granted(shipment, org string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.m[Grant{Shipment: shipment, Org: org}] // a struct key: no allocation on the publish path
}
