package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleBundle = "../../anchor/bundle/testdata/full.json"

func TestVerifyCmd(t *testing.T) {
	raw, err := os.ReadFile(exampleBundle)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	signed, err := os.ReadFile("../../anchor/bundle/testdata/signed.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		err  error
		out  string
	}{
		{"valid", []string{exampleBundle}, nil, "OK (offline)"},
		{"valid-unsigned-says-so", []string{exampleBundle}, nil, "none of the 2 readings is device-signed"},
		{"valid-signed", []string{write("s.json", string(signed))}, nil, "2 of 3 readings verified as signed by their device (Ed25519; logger-9 key dbc298251c51321b); 1 unsigned"},
		{"signed-temperature-changed", []string{write("st.json", strings.Replace(string(signed), `\"temp_c\":5.3`, `\"temp_c\":4.3`, 1))},
			errVerify, "FAIL signature: record 1 (reading logger-9:2)"},
		{"one-temperature-changed", []string{write("t.json", strings.Replace(string(raw), `\"temp_c\":4.9`, `\"temp_c\":2.9`, 1))},
			errVerify, "FAIL shipment root: the 3 records hash to"},
		{"wrong-epoch-root", []string{write("e.json", strings.Replace(string(raw), "891a7ff75f73", "891a7ff75f74", 1))},
			errVerify, "FAIL epoch root: the header of epoch 2"},
		{"not-a-bundle", []string{write("n.json", "[]")}, errVerify, "FAIL malformed bundle"},
		{"rpc-unreachable", []string{exampleBundle, "--rpc", "http://127.0.0.1:1"}, errVerify, "FAIL"},
		{"no-file", []string{}, errUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := verifyCmd(tc.args, &out, &errOut)
			if !errors.Is(err, tc.err) || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("err %v, output:\n%s", err, out.String())
			}
		})
	}
}

func TestProofCmd(t *testing.T) {
	raw, err := os.ReadFile(exampleBundle)
	if err != nil {
		t.Fatal(err)
	}
	var gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		if r.URL.Path != "/v1/shipments/SHP-2026-0042/proof" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"unknown shipment: \"X\""}`))
			return
		}
		_, _ = w.Write(raw)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "bundle.json")
	var stdout, stderr bytes.Buffer
	if err := proofCmd([]string{"SHP-2026-0042", "--api", srv.URL, "-o", out, "--since", "2"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, raw) || gotQuery != "since=2" {
		t.Fatalf("wrote %d bytes, query %q", len(got), gotQuery)
	}
	if err := verifyCmd([]string{out}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	err = proofCmd([]string{"--api", srv.URL, "X"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "unknown shipment") {
		t.Fatalf("got %v", err)
	}
}

// TestProofCompact: proof --compact writes the compact proof and the
// record's bytes; verify checks the pair, and fails for another record or
// a missing one.
func TestProofCompact(t *testing.T) {
	raw, err := os.ReadFile("../../anchor/bundle/testdata/record.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(raw) }))
	defer srv.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "proof.ccp")
	var stdout, stderr bytes.Buffer
	if err := proofCmd([]string{"SHP-2026-0042", "--api", srv.URL, "--record", "HO-SIN-0001", "--compact", "-o", out}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	proof, _ := os.ReadFile(out)
	if len(proof) == 0 || len(proof) >= len(raw)/2 || !strings.Contains(stderr.String(), "compact proof") {
		t.Fatalf("a compact proof of %d bytes for a %d-byte bundle; stderr %s", len(proof), len(raw), stderr.String())
	}
	stdout.Reset()
	if err := verifyCmd([]string{out}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "891a7ff75f7307202d5ea9353b47a1258bc7e9c85153b6f3e133c2d1cfbab09c") {
		t.Fatalf("verify the compact proof: %v\n%s", err, stdout.String())
	}
	data, _ := os.ReadFile(out + ".record")
	other := filepath.Join(dir, "other.record")
	if err := os.WriteFile(other, bytes.Replace(data, []byte("EK-77120"), []byte("EK-77121"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	// Offline, another record leads to another epoch root; it is the
	// chain that refuses it (here: nothing answers the RPC).
	_ = verifyCmd([]string{out, "--record-data", other}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "891a7ff75f7307202d5ea9353b47a1258bc7e9c85153b6f3e133c2d1cfbab09c") {
		t.Fatalf("an altered record leads to the anchored epoch root:\n%s", stdout.String())
	}
	if err := os.Remove(out + ".record"); err != nil {
		t.Fatal(err)
	}
	if err := verifyCmd([]string{out}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--record-data") {
		t.Fatalf("a compact proof without its record: %v", err)
	}
	if err := proofCmd([]string{"SHP-2026-0042", "--api", srv.URL, "--compact", "-o", out}, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Fatalf("--compact without --record: %v", err)
	}
}
