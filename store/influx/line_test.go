package influx

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/pki/pkitest"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
)

// TestLineProtocolVectors writes the canonical vectors of record/testdata
// as line protocol (testdata/README.md says how they were checked).
func TestLineProtocolVectors(t *testing.T) {
	for _, tc := range []struct{ canonical, line string }{
		{"../../record/testdata/reading-v1.canonical.json", "testdata/reading-v1.line"},
		{"../../record/testdata/handover-v1.canonical.json", "testdata/handover-v1.line"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			c, err := os.ReadFile(tc.canonical)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			if strings.Contains(tc.line, "reading") {
				r, err := record.ParseReading(c)
				if err != nil {
					t.Fatal(err)
				}
				got = AppendReading(nil, &r)
			} else {
				h, err := record.ParseHandover(c)
				if err != nil {
					t.Fatal(err)
				}
				got = AppendHandover(nil, &h)
			}
			if string(got) != string(want) {
				t.Fatalf("line protocol:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestEscaping covers the line-protocol escapes of keys and string values.
func TestEscaping(t *testing.T) {
	r := record.Reading{Shipment: "S", Device: "d", Seq: 7, Time: time.Unix(0, 0), TempC: -0.5,
		Ext: []record.Ext{{Key: "a b,c=d", Type: record.ExtString, Str: `x"y\z`}, {Key: "n", Type: record.ExtNumber, Num: 1e21}}}
	want := `reading,device=d,shipment=S temp_c=-0.5,seq=7i,ext.a\ b\,c\=d="x\"y\\z",ext.n=1e+21 7` + "\n"
	if got := string(AppendReading(nil, &r)); got != want {
		t.Fatalf("\n got %q\nwant %q", got, want)
	}
}

// TestWriteDecisions: how each answer of the server becomes the writer's
// decision, and what the request carries.
func TestWriteDecisions(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		ok         bool
		permanent  bool
		retryAfter time.Duration
	}{
		{name: "204 written", status: 204, ok: true},
		{name: "400 partial write", status: 400, body: `{"error":"partial write: field type conflict: input field \"ext.fw\" on measurement \"reading\" is type float, already exists as type string dropped=1"}`, permanent: true},
		{name: "413 too large", status: 413, permanent: true},
		{name: "422 beyond retention", status: 422, permanent: true},
		{name: "429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "7"}, retryAfter: 7 * time.Second},
		{name: "503 with Retry-After", status: 503, header: map[string]string{"Retry-After": "2"}, retryAfter: 2 * time.Second},
		{name: "500", status: 500},
		{name: "401 wrong token waits", status: 401},
		{name: "404 unknown bucket waits", status: 404, body: `{"code":"not found","message":"bucket \"nope\" not found"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req *http.Request
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req = r
				body, _ = io.ReadAll(r.Body)
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				if tc.body != "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			s, err := New(Config{URL: srv.URL, Org: "o", Bucket: "b/autogen", Token: "t0k", Timeout: 5 * time.Second}, store.Options{}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := record.Reading{Shipment: "S", Device: "d", Seq: 1, Time: time.Unix(1, 0), TempC: 4}
			err = s.Write(context.Background(), store.Batch{Readings: []record.Reading{r, r}})
			if req.URL.Path != "/api/v2/write" || req.URL.Query().Get("bucket") != "b/autogen" || req.URL.Query().Get("org") != "o" ||
				req.URL.Query().Get("precision") != "ns" || req.Header.Get("Authorization") != "Token t0k" {
				t.Fatalf("request %s %v", req.URL, req.Header)
			}
			if want := "reading,device=d,shipment=S temp_c=4.0,seq=1i 1000000001\nreading,device=d,shipment=S temp_c=4.0,seq=1i 1000000001"; string(body) != want {
				t.Fatalf("body %q", body)
			}
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var we *store.WriteError
			if !errors.As(err, &we) {
				t.Fatalf("error %v is not a WriteError", err)
			}
			if we.Permanent != tc.permanent || we.RetryAfter != tc.retryAfter || we.Status != tc.status {
				t.Fatalf("decision %+v", we)
			}
		})
	}
}

// TestConnectionRefused is transient.
func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s, err := New(Config{URL: url, Org: "o", Bucket: "b", Timeout: time.Second}, store.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Write(context.Background(), store.Batch{Readings: []record.Reading{{Shipment: "S", Device: "d", Time: time.Unix(1, 0)}}})
	var we *store.WriteError
	if !errors.As(err, &we) || we.Permanent || we.Status != 0 {
		t.Fatalf("connection refused: %#v", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("ping of a closed server succeeded")
	}
}

func TestFluxString(t *testing.T) {
	for in, want := range map[string]string{
		"coldchain/autogen": `"coldchain/autogen"`,
		`a"b\c${x}`:         `"a\"b\\c\${x}"`,
	} {
		if got := fluxString(in); got != want {
			t.Errorf("fluxString(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestTLS: with store.influx.tls an https:// InfluxDB that requires a
// client certificate receives the write and sees the gateway's
// certificate; without the CA or the certificate nothing is written.
func TestTLS(t *testing.T) {
	files := pkitest.New(t, "coldchain-gateway")
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = files.Server(t, true)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	srv.StartTLS()
	defer srv.Close()
	batch := store.Batch{Readings: []record.Reading{{Shipment: "S", Device: "d", Seq: 1, Time: time.Unix(1, 0), TempC: 4}}}
	write := func(tls pki.ClientTLS) error {
		s, err := New(Config{URL: srv.URL, Org: "o", Bucket: "b", Timeout: 5 * time.Second, TLS: tls}, store.Options{}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return s.Write(context.Background(), batch)
	}
	if err := write(files.Client()); err != nil {
		t.Fatalf("write over mutual TLS: %v", err)
	}
	saw := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
	if got, want := saw(), []string{"/api/v2/write coldchain-gateway"}; !slices.Equal(got, want) {
		t.Fatalf("server saw %v, want %v", got, want)
	}
	for name, tls := range map[string]pki.ClientTLS{
		"system roots":          {},
		"no client certificate": {CA: files.CA},
	} {
		err := write(tls)
		var we *store.WriteError
		if !errors.As(err, &we) || we.Permanent {
			t.Errorf("%s: %v, want a transient write error", name, err)
		}
	}
	if got := saw(); len(got) != 1 {
		t.Fatalf("server saw %v", got)
	}
	if _, err := New(Config{URL: srv.URL, Org: "o", Bucket: "b", Timeout: time.Second, TLS: pki.ClientTLS{CA: files.ClientKey}}, store.Options{}, zaptest.NewLogger(t)); err == nil ||
		!strings.Contains(err.Error(), "store.influx.tls.ca") {
		t.Fatalf("unreadable CA: %v, want an error naming store.influx.tls.ca", err)
	}
}
