// Package api is the gateway's HTTP API: bulk ingest for providers'
// platforms, the dead letters a provider debugs a feed with, and the
// operations endpoints (/healthz, /readyz, /metrics).
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/record"
)

// Config is the HTTP part of the gateway configuration.
type Config struct {
	// Listen is the HTTP address, host:port.
	Listen string `yaml:"listen"`
	// IngestTimeout bounds how long a POST waits for JetStream before it
	// answers 503 and the caller retries.
	IngestTimeout time.Duration `yaml:"ingest_timeout"`
	// AllowAnonymous serves requests without a token as if from an
	// admin. Off by default: every endpoint but /healthz, /readyz (and
	// /metrics unless protect_metrics) needs a bearer token (coldchain
	// tokens create). The demo turns it on.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// ProtectMetrics puts /metrics behind an admin token.
	ProtectMetrics bool `yaml:"protect_metrics"`
	// TLSCert and TLSKey, PEM files, make the API HTTPS only, on Listen.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TokenRate is how many requests a second one API token may make once
	// TokenBurst is spent; 0 is no limit. Over it a request is answered
	// 429 with Retry-After. Anonymous requests (the demo) are not limited.
	TokenRate  float64 `yaml:"token_rate"`
	TokenBurst int     `yaml:"token_burst"`
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("http.listen: %q is not host:port: %w", c.Listen, err)
	}
	if c.IngestTimeout <= 0 {
		return fmt.Errorf("http.ingest_timeout: must be positive")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("http.tls_cert and http.tls_key: set both for HTTPS, or neither")
	}
	if c.TokenRate < 0 {
		return fmt.Errorf("http.token_rate: must be 0 (no limit) or more, got %g", c.TokenRate)
	}
	if c.TokenRate > 0 && c.TokenBurst < 1 {
		return fmt.Errorf("http.token_burst: must be at least 1 with http.token_rate set")
	}
	return nil
}

// Ingester validates and journals a message.
type Ingester interface {
	Ingest(ctx context.Context, msg ingest.Message) (ingest.Summary, error)
}

// DeadLetters lists the latest dead letters.
type DeadLetters interface {
	DeadLetters(ctx context.Context, limit int, reason, org string) ([]journal.DeadLetterEntry, error)
}

// Check is one readiness condition: nil when ready.
type Check struct {
	Name string
	Func func(ctx context.Context) error
	// Advisory checks are reported in /readyz but do not make it fail: the
	// part they watch (the history store) never holds up ingest, so a
	// load balancer must keep sending traffic while it is down.
	Advisory bool
}

// Server serves the API.
type Server struct {
	cfg        Config
	in         Ingester
	dead       DeadLetters
	reg        *metrics.Registry
	checks     []Check
	maxPayload int
	log        *zap.Logger
	mux        *http.ServeMux
	access     *Access
	wrap       func(pattern string, h http.HandlerFunc) http.HandlerFunc
	sample     *auth.Sampler
	throttle   *auth.Throttle
	rate       *auth.Limiter
	registered []string
	// outOfCalibration, when set (FlagCalibration), says whether device's
	// reading at device time t was taken outside its calibration.
	outOfCalibration func(device string, t time.Time) bool
}

// New returns the API; maxPayload is ingest's body limit in bytes. access
// says who may use it (nil: anyone, for unit tests).
func New(cfg Config, in Ingester, dead DeadLetters, reg *metrics.Registry, checks []Check, maxPayload int, access *Access, log *zap.Logger) *Server {
	s := &Server{cfg: cfg, in: in, dead: dead, reg: reg, checks: checks, maxPayload: maxPayload, log: log, mux: http.NewServeMux(),
		access: access, sample: auth.NewSampler(10 * time.Second), throttle: auth.NewThrottle(60),
		rate: auth.NewLimiter(cfg.TokenRate, cfg.TokenBurst)}
	s.HandleFunc("POST /v1/readings", s.ingest(record.KindReading))
	s.HandleFunc("POST /v1/handovers", s.ingest(record.KindHandover))
	s.HandleFunc("GET /v1/deadletters", s.deadLetters)
	s.HandleFunc("GET /openapi.json", s.openAPI)
	s.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.HandleFunc("GET /readyz", s.ready)
	s.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.reg.Write(w)
	})
	return s
}

// Router is what a part registers its routes on.
type Router interface {
	HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request))
}

// Mount lets another part register its routes (alerts, proofs).
func (s *Server) Mount(register func(Router)) { register(s) }

// HandleFunc registers a route. It panics for a route with no access rule
// in routes: an endpoint says who may use it before it is served.
func (s *Server) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	if _, ok := routes[pattern]; !ok {
		panic("api: route " + pattern + " has no access rule (api/access.go)")
	}
	s.registered = append(s.registered, pattern)
	if s.wrap != nil {
		h = s.wrap(pattern, h)
	}
	s.mux.HandleFunc(pattern, h)
}

// WrapRoutes makes every route registered after it go through wrap, which
// may replace its handler (cluster mode forwards a route to the member
// that holds its part). The access rules still apply first.
func (s *Server) WrapRoutes(wrap func(pattern string, h http.HandlerFunc) http.HandlerFunc) {
	s.wrap = wrap
}

// Unserved returns the access rules whose routes were not registered: a
// rule for an endpoint that does not exist (or was renamed).
func (s *Server) Unserved() []string {
	var out []string
	for p := range routes {
		if !slices.Contains(s.registered, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Handler returns the API's handler: the router behind the access guard.
func (s *Server) Handler() http.Handler { return s }

// Serve serves on l until ctx ends, then shuts down gracefully, letting
// requests in flight finish for up to drain.
func (s *Server) Serve(ctx context.Context, l net.Listener, drain time.Duration) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(s.log.Named("server"))}
	if s.cfg.TLSCert != "" {
		tc, err := pki.ServerConfig(s.cfg.TLSCert, s.cfg.TLSKey, "")
		if err != nil {
			return fmt.Errorf("http.tls_cert, http.tls_key: %w", err)
		}
		l = tls.NewListener(l, tc)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// errorBody is every error response: what went wrong, and for validation
// errors each refused record with its field and reason.
type errorBody struct {
	Error string `json:"error"`
	// Reason is a refusal's machine-readable reason (rate_limited,
	// bad_token, ...), the label it is counted under.
	Reason   string         `json:"reason,omitempty"`
	Rejected []*recordError `json:"rejected,omitempty"`
}

type recordError struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func toRecordErrors(errs []*record.Error, limit int) []*recordError {
	out := make([]*recordError, 0, min(len(errs), limit))
	for _, e := range errs[:min(len(errs), limit)] {
		out = append(out, &recordError{Index: e.Index, Field: e.Field, Reason: e.Reason.String(), Detail: e.Detail})
	}
	return out
}

// maxListed bounds the errors one response lists.
const maxListed = 100

func (s *Server) ingest(kind record.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.maxPayload)+1))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			// Ingest dead-letters it as oversize with the bytes read so far.
		case err != nil:
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "reading the request body: " + err.Error()})
			return
		}
		s.submit(w, r, ingest.Message{Transport: "http", Topic: r.URL.Path, Kind: kind,
			Payload: body, Received: received, AllOrNothing: true}, nil)
	}
}

// submit ingests msg for the request's principal and answers: 202 with
// the counts (and extra), or why nothing was stored.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, msg ingest.Message, extra map[string]any) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.IngestTimeout)
	defer cancel()
	scope := auth.ScopeFrom(r.Context())
	if scope == nil || !scope.All {
		// A provider writes only the shipments granted to its org.
		msg.Granted = scope.Sees
	}
	if scope != nil {
		msg.Org = scope.Principal.Org
	}
	sum, err := s.in.Ingest(ctx, msg)
	if errors.Is(err, journal.ErrFull) {
		// Not transient: an operator must act. Nothing of the body is
		// acknowledged, and a resend later is deduplicated.
		w.Header().Set("Retry-After", "60")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the journal is full (nats.max_bytes reached); nothing was acknowledged: the operator must raise nats.max_bytes or free space, then retry the same request (it is idempotent)"})
		return
	}
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the journal did not confirm in time; nothing was acknowledged: retry the same request (it is idempotent)"})
		return
	}
	for _, rej := range sum.Rejected {
		if rej.Reason == record.ReasonNotGranted && scope != nil {
			scope.Refuse(&auth.Denial{Reason: auth.ReasonNotGranted,
				Detail: fmt.Sprintf("%s wrote records of a shipment not granted to its org: %s", scope.Principal, rej.Error())})
			break // one refusal per request
		}
	}
	if sum.Accepted+sum.Duplicates == 0 && len(sum.Rejected) > 0 {
		status := http.StatusBadRequest
		msg := fmt.Sprintf("%d of %d records are invalid; nothing was stored: fix them and send the batch again", len(sum.Rejected), sum.Records)
		if first := sum.Rejected[0]; first.Index < 0 {
			msg = first.Error()
			switch first.Reason {
			case record.ReasonOversize:
				status = http.StatusRequestEntityTooLarge
			case record.ReasonNotGranted:
				status = http.StatusForbidden
			case record.ReasonUnknownShipment:
				status = http.StatusNotFound
			}
		}
		writeJSON(w, status, errorBody{Error: msg, Rejected: toRecordErrors(sum.Rejected, maxListed)})
		return
	}
	out := map[string]any{
		"records": sum.Records, "accepted": sum.Accepted, "duplicates": sum.Duplicates,
		"rejected": toRecordErrors(sum.Rejected, maxListed),
	}
	for k, v := range extra {
		out[k] = v
	}
	writeJSON(w, http.StatusAccepted, out)
}

func (s *Server) deadLetters(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "limit: must be an integer from 1 to 1000"})
			return
		}
		limit = n
	}
	reason := r.URL.Query().Get("reason")
	if _, ok := record.ParseReason(reason); reason != "" && !ok {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("reason: %q is not a rejection reason", reason)})
		return
	}
	// An admin (or the open demo API) sees every dead letter; a provider
	// only its org's senders'.
	org := ""
	if scope := auth.ScopeFrom(r.Context()); scope == nil || !scope.All {
		if scope == nil || scope.Principal.Org == "" {
			writeJSON(w, http.StatusOK, map[string]any{"dead_letters": []journal.DeadLetterEntry{}})
			return
		}
		org = scope.Principal.Org
	}
	list, err := s.dead.DeadLetters(r.Context(), limit, reason, org)
	if err != nil {
		s.log.Error("list dead letters", zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "dead letters are unavailable: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": list})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, checks := http.StatusOK, map[string]string{}
	for _, c := range s.checks {
		if err := c.Func(ctx); err != nil {
			checks[c.Name] = err.Error()
			if !c.Advisory {
				status = http.StatusServiceUnavailable
			}
		} else {
			checks[c.Name] = "ok"
		}
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": checks})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // The client went away; nothing to do.
}
