package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/report"
)

// ReportSources are what the traceability report needs beside a
// shipment's proof bundle.
type ReportSources struct {
	// Bundle returns the shipment's full proof bundle as JSON, as
	// GET /v1/shipments/{id}/proof serves it. Its error wraps ErrNotFound
	// for an unknown shipment and ErrConflict for one not anchored yet.
	Bundle func(shipment string) ([]byte, error)
	// Options returns the report's options for the shipment: its alarm
	// profile's band, the chain RPC the verify command names.
	Options func(shipment string) report.Options
}

// ErrNotFound and ErrConflict classify a ReportSources.Bundle error.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// EnableReport serves a shipment's traceability report, a PDF made from
// its proof bundle (package report):
//
//	GET /v1/shipments/{id}/report.pdf
//
// Call it before Serve.
func (s *Server) EnableReport(src ReportSources) {
	s.HandleFunc("GET /v1/shipments/{id}/report.pdf", func(w http.ResponseWriter, r *http.Request) {
		id, ok := shipmentID(w, r)
		if !ok {
			return
		}
		raw, err := src.Bundle(id)
		switch {
		case errors.Is(err, ErrNotFound):
			writeJSON(w, http.StatusNotFound, errorBody{Error: err.Error()})
			return
		case errors.Is(err, ErrConflict):
			writeJSON(w, http.StatusConflict, errorBody{Error: err.Error() + "; the report is made from the anchored log: retry after the next epoch"})
			return
		case err != nil:
			s.log.Error("report: proof bundle", zap.String("shipment", id), zap.Error(err))
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
			return
		}
		o := src.Options(id)
		if o.Generated.IsZero() {
			o.Generated = time.Now().UTC().Truncate(time.Second)
		}
		var pdf bytes.Buffer
		if err := report.Render(&pdf, raw, o); err != nil {
			s.log.Error("report", zap.String("shipment", id), zap.Error(err))
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "rendering the report: " + err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Disposition", `attachment; filename="`+id+`.report.pdf"`)
		w.Header().Set("Content-Length", strconv.Itoa(pdf.Len()))
		_, _ = w.Write(pdf.Bytes())
	})
}
