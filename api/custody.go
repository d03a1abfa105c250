package api

import (
	"net/http"
	"time"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/record"
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
	tl, err := custody.Load(r.Context(), c.h, id, time.Now(), c.cfg)
	if err != nil {
		c.unavailable(w, r, id, err)
		return
	}
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
