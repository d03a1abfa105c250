package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// KindToken is an HTTP API principal: a bearer token with a role and an
// org, made by `coldchain tokens create`.
const KindToken Kind = "token"

// Role is what an API principal does.
type Role string

const (
	// RoleProvider pushes telemetry: it writes readings and handovers for
	// the shipments its org was granted, reads them back and reads dead
	// letters to debug its feed.
	RoleProvider Role = "provider"
	// RoleShipper watches its shipments: history, status, alerts (and
	// their stream), proofs; it acknowledges their alerts.
	RoleShipper Role = "shipper"
	// RoleCustoms reviews the shipments it was granted: history, status,
	// alerts, anchors and proof bundles, read only.
	RoleCustoms Role = "customs"
	// RoleAdmin operates the gateway: everything, every shipment.
	RoleAdmin Role = "admin"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleProvider, RoleShipper, RoleCustoms, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("role %q: must be provider, shipper, customs or admin", s)
}

// Action is what an HTTP route does, as the role matrix sees it.
type Action string

const (
	// ActOpen needs nobody: /healthz, /readyz.
	ActOpen Action = "open"
	// ActWrite posts readings or handovers.
	ActWrite Action = "write"
	// ActRead reads a shipment's history, status and alerts.
	ActRead Action = "read"
	// ActAck acknowledges an alert.
	ActAck Action = "ack"
	// ActProof reads anchors and proof bundles.
	ActProof Action = "proof"
	// ActDeadLetters lists dead letters, raw payloads included.
	ActDeadLetters Action = "deadletters"
	// ActMetrics reads /metrics when it is protected.
	ActMetrics Action = "metrics"
	// ActDevices reads device records and their calibrations: a provider
	// its org's devices.
	ActDevices Action = "devices"
	// ActRegistry changes the device registry: admin only.
	ActRegistry Action = "registry"
	// ActCluster reads the cluster's members, leases and lag: admin only
	// (it names every gateway and where it listens).
	ActCluster Action = "cluster"
)

// roles says which roles may take each action; admin may take all.
var roles = map[Action][]Role{
	ActWrite:       {RoleProvider},
	ActRead:        {RoleProvider, RoleShipper, RoleCustoms},
	ActAck:         {RoleShipper},
	ActProof:       {RoleProvider, RoleShipper, RoleCustoms},
	ActDeadLetters: {RoleProvider},
	ActMetrics:     {},
	ActDevices:     {RoleProvider},
	ActRegistry:    {},
	ActCluster:     {},
}

// ReasonNoToken, ReasonBadToken and ReasonRole are the HTTP denial
// reasons; ReasonNotGranted is a shipment outside the principal's org
// (answered 404 for reads so ids do not leak).
const (
	ReasonNoToken    = "no_token"
	ReasonBadToken   = "bad_token"
	ReasonExpired    = "token_expired"
	ReasonRole       = "role_not_allowed"
	ReasonNotGranted = "shipment_not_granted"
)

// MayDo says whether p may take action a at all (which shipments is the
// Scope's business).
func MayDo(p Principal, a Action) *Denial {
	if a == ActOpen || p.Role == RoleAdmin {
		return nil
	}
	allowed, known := roles[a]
	if !known {
		return &Denial{Reason: ReasonRole, Detail: fmt.Sprintf("action %q has no rule: refused", a)}
	}
	for _, r := range allowed {
		if p.Role == r {
			return nil
		}
	}
	if p.Kind == KindAnonymous {
		return &Denial{Reason: ReasonNoToken, Detail: "this endpoint needs a token: send Authorization: Bearer <token> (coldchain tokens create)"}
	}
	return &Denial{Reason: ReasonRole, Detail: fmt.Sprintf("%s may not %s", p, a)}
}

// Scope is what one request may see: every shipment (admin, or an API
// with anonymous access on), or those granted to the principal's org.
type Scope struct {
	Principal Principal
	All       bool
	granted   func(shipment, org string) bool
	// denied counts and logs a refusal as the API's guard does.
	denied func(*Denial)
}

// OnDenied sets what Refuse and Check do with a refusal: the API counts
// and logs it like its own.
func (s *Scope) OnDenied(f func(*Denial)) {
	if s != nil {
		s.denied = f
	}
}

// Refuse reports a refusal a handler made itself (the guard cannot: it is
// decided by what the request names, an alert or the records of a batch).
func (s *Scope) Refuse(d *Denial) {
	if s != nil && s.denied != nil {
		s.denied(d)
	}
}

// Check is Sees for a shipment a request asks for by name: when the scope
// does not include it, the refusal is reported (shipment_not_granted),
// and the handler answers as for a shipment that does not exist.
func (s *Scope) Check(shipment string) bool {
	if s.Sees(shipment) {
		return true
	}
	who := "an unauthenticated request"
	if s != nil {
		who = s.Principal.String()
	}
	s.Refuse(&Denial{Reason: ReasonNotGranted, Detail: fmt.Sprintf("%s asked for shipment %s, which is not granted to its org", who, shipment)})
	return false
}

// NewScope returns the scope of p: admins see everything; everyone else
// the shipments granted(shipment, p.Org) says.
func NewScope(p Principal, granted func(shipment, org string) bool) *Scope {
	return &Scope{Principal: p, All: p.Role == RoleAdmin, granted: granted}
}

// OpenScope sees everything: the API with anonymous access on (the demo).
func OpenScope() *Scope { return &Scope{Principal: Principal{Kind: KindAnonymous}, All: true} }

// Sees reports whether the scope includes shipment. A nil scope (a
// handler reached without the API's guard) sees nothing.
func (s *Scope) Sees(shipment string) bool {
	switch {
	case s == nil:
		return false
	case s.All:
		return true
	case s.granted == nil || s.Principal.Org == "":
		return false
	}
	return s.granted(shipment, s.Principal.Org)
}

// Actor names who did something, for the records an action writes (an
// alert acknowledgement's "by"): the token's name and org. Empty for an
// anonymous request, which then says who it is itself.
func (s *Scope) Actor() string {
	if s == nil || s.Principal.Kind != KindToken {
		return ""
	}
	return fmt.Sprintf("%s (%s, org %s)", s.Principal.Name, s.Principal.Role, s.Principal.Org)
}

type scopeKey struct{}

// WithScope attaches a request's scope.
func WithScope(ctx context.Context, s *Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ScopeFrom returns the request's scope; nil (which sees nothing) when the
// request did not pass the API's guard.
func ScopeFrom(ctx context.Context) *Scope {
	s, _ := ctx.Value(scopeKey{}).(*Scope)
	return s
}

// Tokens look like cct_<id>_<secret>: the id (16 hex digits) finds the
// registry entry, the secret (32 bytes, base64url) is checked against its
// SHA-256. A 256-bit random secret needs no slow hash: nobody guesses it,
// and a stolen registry gives hashes of secrets nobody can invert.
const tokenPrefix = "cct_"

// NewToken returns a fresh token string and its registry entry for p.
//
// A token with a non-zero expires is refused from that instant on
// (ErrExpired).
func NewToken(p Principal, expires time.Time) (token string, c Credential, err error) {
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Credential{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Credential{}, err
	}
	p.Kind, p.ID = KindToken, hex.EncodeToString(id[:])
	s := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(s))
	if !expires.IsZero() {
		expires = expires.UTC().Truncate(time.Second)
	}
	return tokenPrefix + p.ID + "_" + s, Credential{Principal: p, Hash: sum[:], Expires: expires}, nil
}

// ErrMalformedToken is a bearer value that is not a coldchain token.
// ErrMalformedToken is a token that is not one `coldchain tokens create`
// makes.
var ErrMalformedToken = errors.New("not a coldchain token (cct_…)")

// splitToken returns a token's id and secret.
func splitToken(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", ErrMalformedToken
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" {
		return "", "", ErrMalformedToken
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", ErrMalformedToken
	}
	return id, secret, nil
}

// checkToken reports whether secret is the token credential's.
func (c Credential) checkToken(secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return len(c.Hash) == len(sum) && subtle.ConstantTimeCompare(c.Hash, sum[:]) == 1
}
