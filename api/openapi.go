package api

import (
	_ "embed" // the OpenAPI document
	"net/http"
)

// OpenAPI is the API's OpenAPI 3.1 document (api/openapi.json), served at
// GET /openapi.json. TestOpenAPI (gateway package) fails when it names a
// route the router does not serve, or misses one it does, and validates
// real responses against its schemas.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
