package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEPCISCmd fetches a document, writes it, and refuses what does not
// validate against the EPCIS 2.0 schema.
func TestEPCISCmd(t *testing.T) {
	valid, err := os.ReadFile("../../epcis/schema/SensorDataExample2.jsonld")
	if err != nil {
		t.Fatal(err)
	}
	invalid := bytes.Replace(valid, []byte(`"schemaVersion"`), []byte(`"schemaVersión"`), 1)
	var gotQuery, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotAuth = r.URL.RawQuery, r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/v1/shipments/SHP-1/epcis":
			_, _ = w.Write(valid)
		case "/v1/shipments/SHP-BAD/epcis":
			_, _ = w.Write(invalid)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"shipment \"X\" is unknown"}`))
		}
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "shipment.jsonld")
	var stdout, stderr bytes.Buffer
	if err := epcisCmd([]string{"SHP-1", "--api", srv.URL, "-o", out, "--interval", "15m", "--token", "tok"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, valid) || gotQuery != "interval=15m0s" || gotAuth != "Bearer tok" {
		t.Fatalf("wrote %d bytes, query %q, auth %q", len(got), gotQuery, gotAuth)
	}
	if !strings.Contains(stderr.String(), "valid against the EPCIS 2.0 schema") {
		t.Errorf("stderr: %s", stderr.String())
	}
	err = epcisCmd([]string{"SHP-BAD", "--api", srv.URL, "-o", out}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "not valid EPCIS 2.0") {
		t.Errorf("invalid document: %v", err)
	}
	err = epcisCmd([]string{"X", "--api", srv.URL}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("unknown shipment: %v", err)
	}
}
