package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/coldchain/coldchain/epcis"
)

// EPCISSources are what an EPCIS document holds beside the store's
// records: the shipment's excursion alerts and its Merkle log's anchors.
type EPCISSources struct {
	// Alerts returns the shipment's excursion alerts in their current state.
	Alerts func(shipment string) []epcis.Alert
	// Log returns the shipment's log and anchors; nil before the
	// shipment is logged.
	Log func(shipment string) (*epcis.Log, error)
}

// EnableEPCIS serves a shipment as a GS1 EPCIS 2.0 document (package
// epcis holds the mapping):
//
//	GET /v1/shipments/{id}/epcis[?interval=1h]
//
// Call it before Serve.
func (s *Server) EnableEPCIS(h History, src EPCISSources, o epcis.Options) {
	e := &epcisAPI{history: history{h: h, log: s.log}, src: src, opts: o}
	s.HandleFunc("GET /v1/shipments/{id}/epcis", e.get)
}

type epcisAPI struct {
	history
	src  EPCISSources
	opts epcis.Options
}

func (e *epcisAPI) get(w http.ResponseWriter, r *http.Request) {
	id, ok := shipmentID(w, r)
	if !ok || !knownParams(w, r.URL.Query(), "interval") {
		return
	}
	o := e.opts
	if v, ok := one(w, r.URL.Query(), "interval"); !ok {
		return
	} else if v != "" {
		d, err := parseEvery(v)
		if err != nil || d < time.Minute || d > 24*time.Hour {
			badParam(w, "interval", "%q is not an interval between 1m and 24h, e.g. 15m or 1h", v)
			return
		}
		o.Interval = d
	}
	var alerts []epcis.Alert
	if e.src.Alerts != nil {
		alerts = e.src.Alerts(id)
	}
	var log *epcis.Log
	if e.src.Log != nil {
		l, err := e.src.Log(id)
		if err != nil {
			e.unavailable(w, r, id, err)
			return
		}
		log = l
	}
	doc, err := epcis.Load(r.Context(), e.h, id, alerts, log, time.Now(), o)
	if err != nil {
		e.unavailable(w, r, id, err)
		return
	}
	w.Header().Set("Content-Type", "application/ld+json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.epcis.jsonld"`)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}
