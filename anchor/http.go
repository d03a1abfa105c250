package anchor

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/coldchain/coldchain/anchor/bundle"
)

// Routes registers the anchorer's API on mux:
//
//	GET /v1/shipments/{id}/anchors                  the epochs that hold the shipment and where each stands
//	GET /v1/shipments/{id}/proof[?record=ID][&since=SIZE]  the proof bundle (docs/PROOFS.md)
//	GET /v1/shipments/{id}/proof?record=ID&format=compact  the record's compact proof (binary, about 1 KiB)
//
// Errors are JSON {"error": "..."}: 404 for an unknown shipment or record,
// 409 for what is logged but not anchored yet, 400 for a bad query.
func (s *Service) Routes(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /v1/shipments/{id}/anchors", s.serveAnchors)
	mux.HandleFunc("GET /v1/shipments/{id}/proof", s.serveProof)
}

func (s *Service) serveAnchors(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	size, list, err := s.Anchors(id)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"shipment": id, "size": size, "anchors": list})
}

func (s *Service) serveProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := ProofOptions{Record: q.Get("record")}
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "since: must be an anchored size of the shipment's log, an integer ≥ 1"})
			return
		}
		opts.Since = n
	}
	compact := false
	switch q.Get("format") {
	case "", "json":
	case "compact":
		if opts.Record == "" || opts.Since != 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "format=compact: the compact proof is of one record: give record=ID, and no since"})
			return
		}
		compact = true
	default:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "format: json (the default) or compact"})
		return
	}
	b, err := s.Proof(r.PathValue("id"), opts)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if compact {
		proof, err := bundle.MarshalCompact(b)
		if err != nil {
			s.writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(proof)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = bundle.Encode(w, b)
}

type errorBody struct {
	Error string `json:"error"`
}

func (s *Service) writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnknownShipment), errors.Is(err, ErrUnknownRecord):
		status = http.StatusNotFound
	case errors.Is(err, ErrNotAnchored), errors.Is(err, ErrNotAnchoredSize):
		status = http.StatusConflict
	default:
		s.log.Error("proof request", zap.Error(err))
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
