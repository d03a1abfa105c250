// Package auth holds who may do what: the identities that connect to the
// gateway (devices, warehouse sites, the gateway itself) and the pure rules
// that say which MQTT topics each may publish on and subscribe to.
//
// The rules are functions of a principal and a topic only, so they are
// table-tested here and the broker hook (embedded/mqttbroker) just asks
// them. Every refusal is a *Denial with a reason a person can act on.
//
// It holds the durable registry (Directory, a KV bucket): devices and
// sites with their passwords and keys, API tokens with roles and orgs, and
// the grants that bind shipments to orgs; the MQTT topic rules below, the
// HTTP role matrix (api.go), login throttles and rate limits. What is not
// built yet is listed in docs/SECURITY.md.
package auth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/coldchain/coldchain/metrics"
)

// Kind is what sort of identity a principal is.
type Kind string

const (
	// KindDevice is a sensor or data logger: it publishes its own readings.
	KindDevice Kind = "device"
	// KindSite is a warehouse or other custody site: it publishes
	// handovers.
	KindSite Kind = "site"
	// KindGateway is the gateway itself (the broker's inline clients): it
	// publishes alerts and may do anything.
	KindGateway Kind = "gateway"
	// KindAnonymous is a client that gave no username, admitted only when
	// the broker allows anonymous access (the demo).
	KindAnonymous Kind = "anonymous"
)

// ParseKind parses a registry kind (device or site).
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindDevice, KindSite:
		return k, nil
	}
	return "", fmt.Errorf("kind %q: must be device or site", s)
}

// Principal is an authenticated identity.
type Principal struct {
	Kind Kind   `json:"kind"`
	ID   string `json:"id"`
	// Org is the organisation the identity belongs to.
	Org string `json:"org,omitempty"`
	// Role and Name are an API token's (KindToken): what it may do, and
	// who it is for ("qa@shipper"), recorded with what it does.
	Role Role   `json:"role,omitempty"`
	Name string `json:"name,omitempty"`
}

func (p Principal) String() string {
	if p.ID == "" {
		return string(p.Kind)
	}
	return string(p.Kind) + " " + p.ID
}

// Denial is a refused action: Reason is the metric label, Detail the
// sentence for the log.
type Denial struct {
	Reason string
	Detail string
	// RetryAfter, when set, is when the refused party may try again.
	RetryAfter time.Duration
}

func (d *Denial) Error() string { return d.Reason + ": " + d.Detail }

// The denial reasons, the values of coldchain_auth_denied_total's reason
// label.
const (
	ReasonBadCredentials = "bad_credentials"
	ReasonAnonymous      = "anonymous"
	ReasonNotYourTopic   = "not_your_topic"
	ReasonGatewayOnly    = "gateway_only"
	ReasonNoSubscribe    = "subscribe_not_allowed"
	// ReasonRegistryUnavailable is a refusal because the identity
	// registry could not be read (NATS down): not the client's fault, but
	// nobody is let in unchecked.
	ReasonRegistryUnavailable = "registry_unavailable"
)

const prefix = "coldchain/v1/"

// levels are a coldchain topic's levels after the prefix: n of them, the
// first three kept (no rule looks further). A value, not a slice, so
// checking a publish allocates nothing.
type levels struct {
	v [3]string
	n int
}

// topic splits a coldchain topic into its levels after the prefix; ok is
// false for any other topic.
func topic(t string) (l levels, ok bool) {
	rest, ok := strings.CutPrefix(t, prefix)
	if !ok {
		return l, false
	}
	for {
		i := strings.IndexByte(rest, '/')
		level := rest
		if i >= 0 {
			level = rest[:i]
		}
		if l.n < len(l.v) {
			l.v[l.n] = level
		}
		l.n++
		if i < 0 {
			return l, true
		}
		rest = rest[i+1:]
	}
}

// isAlerts reports whether l is {shipment}/alerts.
func isAlerts(l levels) bool { return l.n == 2 && l.v[1] == "alerts" }

// CanPublish says whether p may publish on topic:
//
//   - the gateway: anything;
//   - nobody else on an alert topic, coldchain/v1/{shipment}/alerts: alerts
//     come from the detector only;
//   - a device: only coldchain/v1/{shipment}/{its id}/readings;
//   - a site: only coldchain/v1/{shipment}/handovers;
//   - an anonymous client (admitted only when anonymous access is on): any
//     ingest topic, as before credentials existed.
func CanPublish(p Principal, t string) *Denial {
	if p.Kind == KindGateway {
		return nil
	}
	levels, ok := topic(t)
	if ok && isAlerts(levels) {
		return &Denial{Reason: ReasonGatewayOnly, Detail: fmt.Sprintf("%s may not publish on %s: alert topics are written by the gateway only", p, t)}
	}
	switch p.Kind {
	case KindAnonymous:
		return nil
	case KindDevice:
		if ok && levels.n == 3 && levels.v[2] == "readings" && levels.v[1] == p.ID && levels.v[0] != "" && !wild(levels.v[0]) {
			return nil
		}
		return &Denial{Reason: ReasonNotYourTopic, Detail: fmt.Sprintf("device %s may publish only on coldchain/v1/{shipment}/%s/readings, not %s", p.ID, p.ID, t)}
	case KindSite:
		if ok && levels.n == 2 && levels.v[1] == "handovers" && levels.v[0] != "" && !wild(levels.v[0]) {
			return nil
		}
		return &Denial{Reason: ReasonNotYourTopic, Detail: fmt.Sprintf("site %s may publish only on coldchain/v1/{shipment}/handovers, not %s", p.ID, t)}
	}
	return &Denial{Reason: ReasonNotYourTopic, Detail: fmt.Sprintf("%s may not publish", p)}
}

// CanPublishGranted is CanPublish with the shipment bound to the
// principal's org: a device or site may publish only under a shipment
// granted to its org (granted(shipment, org), coldchain shipments grant).
// The gateway and anonymous clients (the demo) are not bound.
func CanPublishGranted(p Principal, t string, granted func(shipment, org string) bool) *Denial {
	if d := CanPublish(p, t); d != nil {
		return d
	}
	if p.Kind != KindDevice && p.Kind != KindSite {
		return nil
	}
	levels, _ := topic(t)
	if p.Org == "" {
		return &Denial{Reason: ReasonNotGranted, Detail: fmt.Sprintf("%s belongs to no org, so no shipment is granted to it: register it with --org", p)}
	}
	if ship := levels.v[0]; !granted(ship, p.Org) {
		return &Denial{Reason: ReasonNotGranted, Detail: fmt.Sprintf("%s (org %s) may not publish for shipment %s: it is not granted to the org (coldchain shipments grant %s --org %s)", p, p.Org, ship, ship, p.Org)}
	}
	return nil
}

func wild(level string) bool { return level == "+" || level == "#" }

// CanSubscribe says whether p may subscribe to filter, or receive a
// message on the topic filter (the broker asks both). The gateway may read
// anything. Devices and sites read nothing: their readings are evidence
// for the gateway, not a feed for other devices. An anonymous client (the
// demo) may watch alerts, coldchain/v1/{shipment or +}/alerts, and nothing
// else: never '#', never another party's readings.
//
// API tokens (shippers, customs brokers) are CanSubscribeGranted's.
func CanSubscribe(p Principal, filter string) *Denial {
	switch p.Kind {
	case KindGateway:
		return nil
	case KindAnonymous:
		if levels, ok := topic(filter); ok && isAlerts(levels) && levels.v[0] != "#" && levels.v[0] != "" {
			return nil
		}
		return &Denial{Reason: ReasonNoSubscribe, Detail: fmt.Sprintf("anonymous clients may subscribe only to coldchain/v1/{shipment}/alerts or coldchain/v1/+/alerts, not %s", filter)}
	}
	return &Denial{Reason: ReasonNoSubscribe, Detail: fmt.Sprintf("%s may not subscribe to %s: devices and sites only publish", p, filter)}
}

// TokenUsername is the MQTT username of a client that logs in with an API
// token as its password, to watch alerts. No device may take it as an id.
const TokenUsername = "token"

// CanSubscribeGranted is CanSubscribe for every principal it knows, and
// the rule for API tokens watching alerts over MQTT: a token whose role
// may read shipments (provider, shipper, customs) may subscribe to
// coldchain/v1/{shipment}/alerts, one shipment at a time, for the
// shipments granted to its org (granted(shipment, org)); an admin token
// also to coldchain/v1/+/alerts. Nothing else: no readings, no '#'. The
// broker asks again on every delivery, so a grant revoked takes effect on
// the next alert.
func CanSubscribeGranted(p Principal, filter string, granted func(shipment, org string) bool) *Denial {
	if p.Kind != KindToken {
		return CanSubscribe(p, filter)
	}
	if d := MayDo(p, ActRead); d != nil {
		return &Denial{Reason: ReasonRole, Detail: fmt.Sprintf("%s (role %s) may not watch alerts", p, p.Role)}
	}
	levels, ok := topic(filter)
	if !ok || !isAlerts(levels) || levels.v[0] == "" || levels.v[0] == "#" {
		return &Denial{Reason: ReasonNoSubscribe, Detail: fmt.Sprintf("%s may subscribe only to coldchain/v1/{shipment}/alerts, not %s", p, filter)}
	}
	ship := levels.v[0]
	if p.Role == RoleAdmin {
		return nil
	}
	if ship == "+" {
		return &Denial{Reason: ReasonNoSubscribe, Detail: fmt.Sprintf("%s may watch only its org's shipments, one topic each: subscribe to coldchain/v1/{shipment}/alerts, not %s", p, filter)}
	}
	if p.Org == "" || granted == nil || !granted(ship, p.Org) {
		return &Denial{Reason: ReasonNotGranted, Detail: fmt.Sprintf("%s (org %s) may not watch shipment %s: it is not granted to the org", p, p.Org, ship)}
	}
	return nil
}

// Credential is a registry entry: the principal and its password hash.
type Credential struct {
	Principal
	// Hash is the bcrypt hash of the password; the password itself is
	// never stored.
	Hash []byte `json:"hash"`
	// MosquittoHash is the same password hashed for a Mosquitto
	// password_file (MosquittoHash), for devices and sites.
	MosquittoHash string `json:"mosquitto_hash,omitempty"`
	// Expires, for an API token, is when it stops being accepted; zero
	// for never.
	Expires time.Time `json:"expires,omitzero"`
	// CertSHA256 pins the client certificates (hex SHA-256 of the DER) a
	// device or site may log in with; empty, any certificate the broker's
	// CA issued with its username as common name will do.
	CertSHA256 []string `json:"cert_sha256,omitempty"`
}

// PinCertificate adds the PEM certificate in certPEM to the ones c may log
// in with. Its common name must be c's MQTT username.
func (c *Credential) PinCertificate(certPEM []byte) (fingerprint string, err error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("not a PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("certificate: %w", err)
	}
	if want := Username(c.Principal); cert.Subject.CommonName != want {
		return "", fmt.Errorf("certificate is for %q, not %q: its common name must be the MQTT username", cert.Subject.CommonName, want)
	}
	fp := CertFingerprint(block.Bytes)
	c.CertSHA256 = append(c.CertSHA256, fp)
	return fp, nil
}

// CertFingerprint is the hex SHA-256 of a certificate's DER bytes.
func CertFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// acceptsCert reports whether c may log in with the certificate der,
// which the broker's CA already verified.
func (c Credential) acceptsCert(der []byte) bool {
	if len(c.CertSHA256) == 0 {
		return true
	}
	return slices.Contains(c.CertSHA256, CertFingerprint(der))
}

// MinPassword is the shortest password the registry takes.
const MinPassword = 16

// NewCredential hashes password for p. Passwords are at least MinPassword
// bytes: devices store them, people do not type them.
func NewCredential(p Principal, password []byte) (Credential, error) {
	if len(password) < MinPassword {
		return Credential{}, fmt.Errorf("password: %d bytes is too short; use at least %d (e.g. openssl rand -base64 24)", len(password), MinPassword)
	}
	if len(password) > 72 {
		return Credential{}, errors.New("password: longer than 72 bytes, which bcrypt would silently cut; use a shorter one")
	}
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	if err != nil {
		return Credential{}, fmt.Errorf("hashing the password: %w", err)
	}
	mh, err := MosquittoHash(password)
	if err != nil {
		return Credential{}, fmt.Errorf("hashing the password: %w", err)
	}
	return Credential{Principal: p, Hash: h, MosquittoHash: mh}, nil
}

// Check reports whether password is the credential's.
func (c Credential) Check(password []byte) bool {
	return bcrypt.CompareHashAndPassword(c.Hash, password) == nil
}

// DeniedCounter registers coldchain_auth_denied_total on reg, the one
// counter every surface (mqtt, http) counts its refusals in.
func DeniedCounter(reg *metrics.Registry) *metrics.CounterVec {
	return reg.Counter("coldchain_auth_denied_total",
		"Requests refused by authentication or authorization, by surface (mqtt, http) and reason.", "surface", "reason")
}
