package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// History answers the history API from the time-series store.
type History interface {
	Shipments(ctx context.Context) ([]store.Shipment, error)
	Shipment(ctx context.Context, id string) (store.Shipment, error)
	Readings(ctx context.Context, q store.Query) ([]record.Reading, error)
	Downsample(ctx context.Context, q store.Query, every time.Duration) ([]store.Bucket, error)
	Handovers(ctx context.Context, shipment string) ([]record.Handover, error)
}

var _ History = (store.Reader)(nil)

// History API limits.
const (
	// DefaultLimit is how many readings or buckets a query returns
	// without limit=.
	DefaultLimit = 10000
	// MaxLimit is the largest limit= accepted.
	MaxLimit = 100000
	// minEvery is the shortest downsampling interval.
	minEvery = time.Second
)

// EnableHistory serves the history API from h:
//
//	GET /v1/shipments
//	GET /v1/shipments/{id}/readings?from=&to=&device=&every=&limit=
//	GET /v1/shipments/{id}/handovers
//
// Call it before Serve.
func (s *Server) EnableHistory(h History) {
	hs := &history{h: h, log: s.log, srv: s}
	s.HandleFunc("GET /v1/shipments", hs.shipments)
	s.HandleFunc("GET /v1/shipments/{id}/readings", hs.readings)
	s.HandleFunc("GET /v1/shipments/{id}/handovers", hs.handovers)
}

type history struct {
	h   History
	log *zap.Logger
	srv *Server
}

// FlagCalibration makes the readings history list, beside the readings,
// the ids of those taken outside their device's calibration:
// outOfCalibration reports it for a device and device time, from the
// device registry as it is now (a device not in it is never flagged).
// The records themselves stay canonical, as anchored. Call it before
// Serve.
func (s *Server) FlagCalibration(outOfCalibration func(device string, t time.Time) bool) {
	s.outOfCalibration = outOfCalibration
}

// paramError is a 400 answer: which query parameter, and why.
type paramError struct {
	Error     string `json:"error"`
	Parameter string `json:"parameter"`
}

func badParam(w http.ResponseWriter, name, format string, args ...any) {
	writeJSON(w, http.StatusBadRequest, paramError{Error: name + ": " + fmt.Sprintf(format, args...), Parameter: name})
}

// unavailable answers a store error: 404 for an unknown shipment, 503
// otherwise (the store is down; the journal keeps everything).
func (hs *history) unavailable(w http.ResponseWriter, r *http.Request, id string, err error) {
	switch {
	case errors.Is(err, store.ErrUnknownShipment):
		writeJSON(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("shipment %q is unknown: the store holds no reading or handover of it", id)})
	case r.Context().Err() != nil:
		// The client went away.
	default:
		hs.log.Warn("history query", zap.String("path", r.URL.Path), zap.Error(err))
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the history store is unavailable; ingest is not affected, retry later: " + err.Error()})
	}
}

// shipmentJSON is a shipment in the list and in each query's answer.
type shipmentJSON struct {
	ID           string     `json:"id"`
	FirstReading *time.Time `json:"first_reading,omitempty"`
	LastReading  *time.Time `json:"last_reading,omitempty"`
	Devices      int        `json:"devices"`
	LastTempC    *float64   `json:"last_temp_c,omitempty"`
	LastDevice   string     `json:"last_device,omitempty"`
	Handovers    int        `json:"handovers"`
}

func toShipmentJSON(sh store.Shipment) shipmentJSON {
	out := shipmentJSON{ID: sh.ID, Devices: sh.Devices, Handovers: sh.Handovers}
	if !sh.LastReading.IsZero() {
		first, last, temp := sh.FirstReading, sh.LastReading, sh.LastTempC
		out.FirstReading, out.LastReading, out.LastTempC, out.LastDevice = &first, &last, &temp, sh.LastDevice
	}
	return out
}

func (hs *history) shipments(w http.ResponseWriter, r *http.Request) {
	if !knownParams(w, r.URL.Query()) {
		return
	}
	list, err := hs.h.Shipments(r.Context())
	if err != nil {
		hs.unavailable(w, r, "", err)
		return
	}
	scope := auth.ScopeFrom(r.Context())
	out := make([]shipmentJSON, 0, len(list))
	for _, sh := range list {
		if scope.Sees(sh.ID) {
			out = append(out, toShipmentJSON(sh))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"shipments": out})
}

// knownParams answers 400 naming the first query parameter not in known.
func knownParams(w http.ResponseWriter, q url.Values, known ...string) bool {
	for name := range q {
		ok := false
		for _, k := range known {
			ok = ok || name == k
		}
		if !ok {
			list := "none"
			if len(known) > 0 {
				list = strings.Join(known, ", ")
			}
			badParam(w, name, "unknown parameter (known: %s)", list)
			return false
		}
	}
	return true
}

// one returns the single value of a parameter; given twice is an error.
func one(w http.ResponseWriter, q url.Values, name string) (string, bool) {
	vs := q[name]
	if len(vs) > 1 {
		badParam(w, name, "given %d times; give it once", len(vs))
		return "", false
	}
	if len(vs) == 0 {
		return "", true
	}
	return vs[0], true
}

func timeParam(w http.ResponseWriter, q url.Values, name string) (time.Time, bool) {
	v, ok := one(w, q, name)
	if !ok || v == "" {
		return time.Time{}, ok
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		badParam(w, name, "%q is not an RFC 3339 time with an offset, e.g. 2026-03-01T08:00:00Z (in a URL, write + as %%2B)", v)
		return time.Time{}, false
	}
	return t.UTC(), true
}

// parseEvery reads a downsampling interval: a Go duration (30s, 5m, 1h30m)
// or a whole number of days (1d, 7d).
func parseEvery(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 {
			return 0, errors.New("bad days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// shipmentID reads and checks the {id} path value.
func shipmentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !record.ValidID(id) {
		writeJSON(w, http.StatusBadRequest, paramError{Error: fmt.Sprintf("id: %q is not a shipment id (1-64 of A-Z a-z 0-9 _ -)", id), Parameter: "id"})
		return "", false
	}
	return id, true
}

type bucketJSON struct {
	Start time.Time `json:"start"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Mean  float64   `json:"mean"`
	Count int64     `json:"count"`
}

func (hs *history) readings(w http.ResponseWriter, r *http.Request) {
	id, ok := shipmentID(w, r)
	if !ok {
		return
	}
	params := r.URL.Query()
	if !knownParams(w, params, "from", "to", "device", "every", "limit") {
		return
	}
	q := store.Query{Shipment: id, Limit: DefaultLimit}
	if q.From, ok = timeParam(w, params, "from"); !ok {
		return
	}
	if q.To, ok = timeParam(w, params, "to"); !ok {
		return
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		badParam(w, "to", "must be after from (the range is [from, to))")
		return
	}
	if q.Device, ok = one(w, params, "device"); !ok {
		return
	}
	if q.Device != "" && !record.ValidID(q.Device) {
		badParam(w, "device", "%q is not a device id (1-64 of A-Z a-z 0-9 _ -)", q.Device)
		return
	}
	v, ok := one(w, params, "limit")
	if !ok {
		return
	}
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			badParam(w, "limit", "must be an integer from 1 to %d, got %q", MaxLimit, v)
			return
		}
		q.Limit = n
	}
	v, ok = one(w, params, "every")
	if !ok {
		return
	}
	var every time.Duration
	if v != "" {
		var err error
		if every, err = parseEvery(v); err != nil || every < minEvery {
			badParam(w, "every", "%q is not an interval of at least 1s, e.g. 30s, 5m, 1h or 1d", v)
			return
		}
	}

	sh, err := hs.h.Shipment(r.Context(), id)
	if err != nil {
		hs.unavailable(w, r, id, err)
		return
	}
	if every == 0 {
		// One more than the limit tells whether the answer is cut.
		q.Limit++
		rs, err := hs.h.Readings(r.Context(), q)
		if err != nil {
			hs.unavailable(w, r, id, err)
			return
		}
		q.Limit--
		truncated := len(rs) > q.Limit
		rs = rs[:min(len(rs), q.Limit)]
		out := make([]json.RawMessage, len(rs))
		expired := []string{}
		for i := range rs {
			out[i] = rs[i].AppendCanonical(nil)
			if f := hs.srv.outOfCalibration; f != nil && f(rs[i].Device, rs[i].Time) {
				expired = append(expired, rs[i].ID())
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"shipment": toShipmentJSON(sh), "count": len(out), "truncated": truncated, "readings": out,
			"calibration_expired": expired,
		})
		return
	}
	// Bound the buckets before asking the store for them.
	from, to := q.From, q.To
	if from.IsZero() || from.Before(sh.FirstReading) {
		from = sh.FirstReading
	}
	if to.IsZero() || to.After(sh.LastReading) {
		to = sh.LastReading.Add(time.Nanosecond)
	}
	if n := to.Sub(from) / every; n > MaxLimit {
		badParam(w, "every", "%s makes %d buckets over the range; the most is %d: choose a longer interval or a shorter range", every, n, MaxLimit)
		return
	}
	bs, err := hs.h.Downsample(r.Context(), q, every)
	if err != nil {
		hs.unavailable(w, r, id, err)
		return
	}
	truncated := len(bs) > q.Limit
	bs = bs[:min(len(bs), q.Limit)]
	out := make([]bucketJSON, len(bs))
	for i, b := range bs {
		out[i] = bucketJSON(b)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"shipment": toShipmentJSON(sh), "every": every.String(), "count": len(out), "truncated": truncated, "buckets": out,
	})
}

func (hs *history) handovers(w http.ResponseWriter, r *http.Request) {
	id, ok := shipmentID(w, r)
	if !ok || !knownParams(w, r.URL.Query()) {
		return
	}
	sh, err := hs.h.Shipment(r.Context(), id)
	if err != nil {
		hs.unavailable(w, r, id, err)
		return
	}
	hos, err := hs.h.Handovers(r.Context(), id)
	if err != nil {
		hs.unavailable(w, r, id, err)
		return
	}
	out := make([]json.RawMessage, len(hos))
	for i := range hos {
		out[i] = hos[i].AppendCanonical(nil)
	}
	writeJSON(w, http.StatusOK, map[string]any{"shipment": toShipmentJSON(sh), "count": len(out), "handovers": out})
}
