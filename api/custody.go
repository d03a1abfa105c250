package api

import (
	"net/http"
	"time"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// EnableCustody serves a shipment's chain of custody from h, checked with
// cfg (package custody holds the rules):
//
//	GET /v1/shipments/{id}/custody
//
// Call it before Serve.
func (s *Server) EnableCustody(h History, cfg custody.Config) {
	c := &custodyAPI{history: history{h: h, log: s.log}, cfg: cfg}
	s.HandleFunc("GET /v1/shipments/{id}/custody", c.get)
}

type custodyAPI struct {
	history
	cfg custody.Config
}

// custodyJSON is the answer: the timeline, the handovers it was derived
// from in canonical form, and a summary a person reads first.
type custodyJSON struct {
	custody.Timeline
	Handovers []record.Handover `json:"-"`
	Events    []rawJSON         `json:"handovers"`
	Status    string            `json:"status"` // ok, pending or failed
	Failed    int               `json:"failed"`
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func (c *custodyAPI) get(w http.ResponseWriter, r *http.Request) {
	id, ok := shipmentID(w, r)
	if !ok || !knownParams(w, r.URL.Query()) {
		return
	}
	ctx := r.Context()
	sh, err := c.h.Shipment(ctx, id)
	if err != nil {
		c.unavailable(w, r, id, err)
		return
	}
	hos, err := c.h.Handovers(ctx, id)
	if err != nil {
		c.unavailable(w, r, id, err)
		return
	}
	// Device time as far as the gateway knows it: the latest reading or
	// handover of the shipment.
	asOf := sh.LastReading
	var final *record.Handover
	for i := range hos {
		if hos[i].Time.After(asOf) {
			asOf = hos[i].Time
		}
		if hos[i].Final && (final == nil || hos[i].Time.Before(final.Time)) {
			final = &hos[i]
		}
	}
	// The readings the checks compare against: those near each handover's
	// temp_c, and those after the final receive.
	var qs []store.Query
	for _, h := range hos {
		if h.TempC.Set {
			qs = append(qs, store.Query{Shipment: id, From: h.Time.Add(-c.cfg.TempWindow), To: h.Time.Add(c.cfg.TempWindow + time.Nanosecond), Limit: DefaultLimit})
		}
	}
	if final != nil {
		qs = append(qs, store.Query{Shipment: id, From: final.Time.Add(time.Nanosecond), Limit: MaxLimit})
	}
	var rs []custody.Reading
	type key struct {
		device string
		seq    uint64
	}
	seen := map[key]bool{} // the windows may overlap
	for _, q := range qs {
		got, err := c.h.Readings(ctx, q)
		if err != nil {
			c.unavailable(w, r, id, err)
			return
		}
		for _, g := range got {
			if k := (key{g.Device, g.Seq}); !seen[k] {
				seen[k] = true
				rs = append(rs, custody.Reading{Device: g.Device, Time: g.Time, TempC: g.TempC})
			}
		}
	}
	tl := custody.Build(id, hos, rs, asOf, c.cfg)
	out := custodyJSON{Timeline: tl, Events: make([]rawJSON, len(tl.Handovers)), Status: "ok", Failed: len(tl.Failed())}
	for i := range tl.Handovers {
		out.Events[i] = tl.Handovers[i].AppendCanonical(nil)
	}
	for _, f := range tl.Checks {
		if f.Result == custody.Pending && out.Status == "ok" {
			out.Status = "pending"
		}
	}
	if out.Failed > 0 {
		out.Status = "failed"
	}
	writeJSON(w, http.StatusOK, out)
}
