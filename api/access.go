package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/metrics"
)

// Access is who may use the API. A nil *Access is an open API (unit tests
// of the handlers); the gateway always passes one.
type Access struct {
	// Tokens checks bearer tokens (auth.Directory).
	Tokens interface {
		AuthenticateToken(ctx context.Context, token string) (auth.Principal, error)
	}
	// Granted says whether a shipment is granted to an org
	// (auth.Grants.Granted).
	Granted func(shipment, org string) bool
	// Denied counts refusals (auth.DeniedCounter); nil counts nothing.
	Denied *metrics.CounterVec
	// Removals, when set, ends a request whose token is revoked while it
	// is open (an alert stream read for days); nil leaves it open.
	Removals interface {
		Context(parent context.Context, p auth.Principal) (context.Context, func())
	}
}

// route is what a route does, as the role matrix sees it, and whether its
// {id} is a shipment the caller must be granted.
type route struct {
	action   auth.Action
	shipment bool
}

// routes is every route's access rule. A route missing here is refused
// with 500 (TestEveryRouteHasARule walks the router), so a new endpoint
// cannot be served before it says who may use it. Routes whose handlers
// list several shipments (the shipment list, the alert stream) or find
// the shipment themselves (an ack) filter with the request's auth.Scope.
var routes = map[string]route{
	"GET /healthz":                      {auth.ActOpen, false},
	"GET /readyz":                       {auth.ActOpen, false},
	"GET /openapi.json":                 {auth.ActOpen, false},
	"GET /{$}":                          {auth.ActOpen, false}, // the dashboard page: static, its data comes through the API with the viewer's token
	"GET /assets/{file...}":             {auth.ActOpen, false},
	"GET /metrics":                      {auth.ActMetrics, false}, // open unless http.protect_metrics
	"POST /v1/readings":                 {auth.ActWrite, false},   // shipments checked per record
	"POST /v1/handovers":                {auth.ActWrite, false},
	"POST /epcis/capture":               {auth.ActWrite, false}, // shipments checked per event
	"GET /v1/deadletters":               {auth.ActDeadLetters, false},
	"GET /v1/shipments":                 {auth.ActRead, false},
	"GET /v1/shipments/{id}/readings":   {auth.ActRead, true},
	"GET /v1/shipments/{id}/handovers":  {auth.ActRead, true},
	"GET /v1/shipments/{id}/custody":    {auth.ActRead, true},
	"GET /v1/shipments/{id}/alerts":     {auth.ActRead, true},
	"GET /v1/shipments/{id}/status":     {auth.ActRead, true},
	"GET /v1/alerts/stream":             {auth.ActRead, false},
	"POST /v1/alerts/{id}/ack":          {auth.ActAck, false},
	"GET /v1/shipments/{id}/anchors":    {auth.ActProof, true},
	"GET /v1/shipments/{id}/proof":      {auth.ActProof, true},
	"GET /v1/shipments/{id}/epcis":      {auth.ActProof, true},
	"GET /v1/shipments/{id}/report.pdf": {auth.ActProof, true},
	"GET /v1/devices":                   {auth.ActDevices, false}, // filtered by org
	"GET /v1/devices/{id}":              {auth.ActDevices, false}, // {id} is a device: checked by org
	"POST /v1/devices":                  {auth.ActRegistry, false},
	"GET /v1/cluster":                   {auth.ActCluster, false},
}

// Routes returns every route pattern ("METHOD /path"), sorted: the access
// rules, which are exactly the routes a gateway serves (HandleFunc refuses
// a route without a rule, and the gateway refuses to start with a rule
// unserved).
func Routes() []string { return slices.Sorted(maps.Keys(routes)) }

// ServeHTTP authenticates the request, applies its route's rule and
// passes it on with its auth.Scope in the context.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.mux.ServeHTTP(w, r) // 404 or 405, as the router answers
		return
	}
	rt, ok := routes[pattern]
	if !ok {
		s.log.Error("route has no access rule: refused", zap.String("route", pattern))
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "this endpoint has no access rule"})
		return
	}
	if rt.action == auth.ActMetrics && !s.cfg.ProtectMetrics {
		rt.action = auth.ActOpen
	}
	scope, status, d := s.authorize(r, rt)
	if d != nil {
		s.deny(r, d)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="coldchain"`)
		}
		if d.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
		}
		writeJSON(w, status, errorBody{Error: d.Detail, Reason: d.Reason})
		return
	}
	scope.OnDenied(func(d *auth.Denial) { s.deny(r, d) })
	ctx := r.Context()
	if s.access != nil && s.access.Removals != nil && scope.Principal.Kind == auth.KindToken {
		var release func()
		ctx, release = s.access.Removals.Context(ctx, scope.Principal)
		defer release()
	}
	s.mux.ServeHTTP(w, r.WithContext(auth.WithScope(ctx, scope)))
}

// authorize returns the request's scope, or the status and denial that
// refuse it.
func (s *Server) authorize(r *http.Request, rt route) (*auth.Scope, int, *auth.Denial) {
	if s.access == nil {
		return auth.OpenScope(), 0, nil
	}
	token, hasToken := bearer(r)
	var scope *auth.Scope
	switch {
	case hasToken:
		src := clientIP(r)
		if blocked, wait := s.throttle.Blocked(src, time.Now()); blocked {
			return nil, http.StatusTooManyRequests, &auth.Denial{Reason: auth.ReasonThrottled,
				Detail: fmt.Sprintf("too many requests with invalid tokens from %s: try again in %v", src, wait.Round(time.Second)), RetryAfter: wait}
		}
		p, err := s.access.Tokens.AuthenticateToken(r.Context(), token)
		if errors.Is(err, auth.ErrExpired) {
			// The secret was right: its holder may know, and nobody is guessing.
			return nil, http.StatusUnauthorized, &auth.Denial{Reason: auth.ReasonExpired,
				Detail: err.Error() + ": ask the gateway's operator for a new one (coldchain tokens create)"}
		}
		if err != nil {
			s.throttle.Fail(src, time.Now())
			// Same answer for unknown, revoked and wrong tokens.
			return nil, http.StatusUnauthorized, &auth.Denial{Reason: auth.ReasonBadToken,
				Detail: "the bearer token is not valid (revoked, mistyped or from another registry): ask for a new one (coldchain tokens create)"}
		}
		if ok, wait := s.rate.Take(p.ID, time.Now()); !ok {
			return nil, http.StatusTooManyRequests, auth.RateLimited("token "+p.ID, s.rate, "requests", wait)
		}
		scope = auth.NewScope(p, s.access.Granted)
	case s.cfg.AllowAnonymous:
		return auth.OpenScope(), 0, nil
	default:
		scope = auth.NewScope(auth.Principal{Kind: auth.KindAnonymous}, nil)
	}
	if d := auth.MayDo(scope.Principal, rt.action); d != nil {
		if scope.Principal.Kind == auth.KindAnonymous {
			return nil, http.StatusUnauthorized, d
		}
		return nil, http.StatusForbidden, d
	}
	if rt.shipment {
		if id := shipmentOf(r); !scope.Sees(id) { // counted by ServeHTTP
			// 404, the answer for a shipment that does not exist: a
			// principal learns nothing of other orgs' shipment ids.
			return nil, http.StatusNotFound, &auth.Denial{Reason: auth.ReasonNotGranted, Detail: "no shipment " + id}
		}
	}
	return scope, 0, nil
}

// shipmentOf returns the {id} of a /v1/shipments/{id}/... path. The router
// fills PathValue only when it serves, so the guard reads the path.
func shipmentOf(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/shipments/")
	if !ok {
		return ""
	}
	seg, _, _ := strings.Cut(rest, "/")
	id, err := url.PathUnescape(seg)
	if err != nil {
		return ""
	}
	return id
}

// clientIP is the address the throttle counts a caller's failures under.
// It is the connection's peer: behind a proxy that is the proxy, which
// then shares one budget (X-Forwarded-For is not trusted).
func clientIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	t, ok := strings.CutPrefix(h, "Bearer ")
	return strings.TrimSpace(t), ok || h != ""
}

// deny counts a refusal and logs it at a bounded rate, never with the
// token.
func (s *Server) deny(r *http.Request, d *auth.Denial) {
	if s.access != nil && s.access.Denied != nil {
		s.access.Denied.With("http", d.Reason).Inc()
	}
	if ok, held := s.sample.Allow(d.Reason, time.Now()); ok {
		s.log.Warn("http request refused", zap.String("reason", d.Reason), zap.String("detail", d.Detail),
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Int("similar_not_logged", held))
	}
}
