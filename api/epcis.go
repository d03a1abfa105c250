package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/device"
	"github.com/coldchain/coldchain/epcis"
	"github.com/coldchain/coldchain/ingest"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// EPCISSources are what an EPCIS document holds beside the store's
// records: the shipment's excursion alerts and its Merkle log's anchors.
type EPCISSources struct {
	// Alerts returns the shipment's excursion alerts in their current state.
	Alerts func(ctx context.Context, shipment string) ([]epcis.Alert, error)
	// Log returns the shipment's log and anchors; nil before the
	// shipment is logged.
	Log func(shipment string) (*epcis.Log, error)
	// Calibrations returns a device's calibration records (the device
	// registry); nil for none.
	Calibrations func(id string) []device.Calibration
}

// EnableEPCIS serves a shipment as a GS1 EPCIS 2.0 document (package
// epcis holds the mapping):
//
//	GET /v1/shipments/{id}/epcis[?interval=1h]
//	POST /epcis/capture[?shipment=ID]   EPCIS documents from warehouse systems: their ObjectEvents become handovers
//
// Call it before Serve.
func (s *Server) EnableEPCIS(h History, src EPCISSources, o epcis.Options) {
	e := &epcisAPI{history: history{h: h, log: s.log}, src: src, opts: o, s: s}
	s.HandleFunc("GET /v1/shipments/{id}/epcis", e.get)
	s.HandleFunc("POST /epcis/capture", e.capture)
}

type epcisAPI struct {
	history
	src  EPCISSources
	opts epcis.Options
	s    *Server
}

// capture takes an EPCIS 2.0 document (the capture interface of the
// standard) and ingests its ObjectEvents as handovers, all or nothing,
// through the same validation, dead letters and exactly-once rules as
// POST /v1/handovers. A document that fails the schema, an event the
// mapping cannot read or one of a shipment the gateway does not hold is
// refused whole, and the original document is dead-lettered with why.
func (e *epcisAPI) capture(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	if !knownParams(w, r.URL.Query(), "shipment") {
		return
	}
	ship, ok := one(w, r.URL.Query(), "shipment")
	if !ok {
		return
	}
	if ship != "" && !record.ValidID(ship) {
		badParam(w, "shipment", "%q is not a shipment id (1-64 of A-Z a-z 0-9 _ -)", ship)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(e.s.maxPayload)+1))
	var tooBig *http.MaxBytesError
	msg := ingest.Message{Transport: "http", Topic: r.URL.Path, Kind: record.KindHandover, Payload: body, Received: received, AllOrNothing: true}
	switch {
	case errors.As(err, &tooBig):
		// Ingest dead-letters it as oversize with the bytes read so far.
		e.s.submit(w, r, msg, nil)
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "reading the request body: " + err.Error()})
		return
	}
	refuse := func(reason record.Reason, field, detail string) {
		msg.Refuse = &record.Error{Reason: reason, Field: field, Index: -1, Detail: detail}
		e.s.submit(w, r, msg, nil)
	}
	res, err := epcis.Capture(body, ship, e.opts)
	events, bad := res.Events, res.Bad
	switch {
	case err != nil:
		refuse(record.ReasonInvalidEPCIS, "", strings.TrimPrefix(err.Error(), "epcis: ")+"; nothing was stored")
		return
	case len(bad) > 0:
		list := make([]string, 0, len(bad))
		for _, b := range bad {
			list = append(list, b.Error())
		}
		refuse(record.ReasonInvalidEPCIS, "eventList", fmt.Sprintf("%d of %d events cannot become handovers; nothing was stored: %s",
			len(bad), len(bad)+len(events), strings.Join(list, "; ")))
		return
	}
	scope := auth.ScopeFrom(r.Context())
	known := map[string]bool{}
	items := make([][]byte, 0, len(events))
	for _, ev := range events {
		// A shipment the caller may not write is refused as not_granted
		// by ingest, never as unknown: its existence does not leak.
		if !known[ev.Shipment] && (scope == nil || scope.Sees(ev.Shipment)) {
			if _, err := e.h.Shipment(r.Context(), ev.Shipment); errors.Is(err, store.ErrUnknownShipment) {
				refuse(record.ReasonUnknownShipment, "epcList", fmt.Sprintf("event %s is of shipment %q, which this gateway holds no record of: capture its readings or handovers first", ev.EventID, ev.Shipment))
				return
			} else if err != nil {
				e.unavailable(w, r, ev.Shipment, err)
				return
			}
			known[ev.Shipment] = true
		}
		items = append(items, ev.JSON)
	}
	msg.Payload = append(append([]byte{'['}, bytes.Join(items, []byte{','})...), ']')
	if len(events) == 0 {
		refuse(record.ReasonInvalidEPCIS, "eventList", fmt.Sprintf("none of the %d events is a custody event; nothing was stored (sensor data is ingested as readings)", len(res.Ignored)))
		return
	}
	ignored := res.Ignored
	if ignored == nil {
		ignored = []epcis.CaptureError{}
	}
	e.s.submit(w, r, msg, map[string]any{"events": events, "ignored": ignored})
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
		a, err := e.src.Alerts(r.Context(), id)
		if err != nil {
			e.unavailable(w, r, id, err)
			return
		}
		alerts = a
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
	doc, err := epcis.Load(r.Context(), e.h, id, alerts, log, e.src.Calibrations, time.Now(), o)
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
