package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/coldchain/coldchain/metrics"
	"github.com/coldchain/coldchain/record"
	"github.com/coldchain/coldchain/store"
	"github.com/coldchain/coldchain/store/pebble"
	"github.com/coldchain/coldchain/store/storetest"
)

// historyServer serves the history API from an embedded store holding
// SHP-1: devices a and b, one reading a minute for two hours from
// storetest.Base, and two handovers; SHP-2: only a handover.
func historyServer(t *testing.T, h History) *httptest.Server {
	t.Helper()
	log := zaptest.NewLogger(t)
	if h == nil {
		st, err := pebble.Open(t.TempDir(), store.Options{}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		var rs []record.Reading
		for i := range 120 {
			for d, dev := range []string{"a", "b"} {
				rs = append(rs, storetest.Reading("SHP-1", dev, uint64(i+1), storetest.Base.Add(time.Duration(i)*time.Minute+time.Duration(d)*time.Second), i))
			}
		}
		hs := []record.Handover{
			{ID: "H-2", Shipment: "SHP-1", Time: storetest.Base.Add(time.Hour), Site: "HKG", Kind: record.HandoverReceive, FromParty: "x", ToParty: "y"},
			{ID: "H-1", Shipment: "SHP-1", Time: storetest.Base, Site: "SIN", Kind: record.HandoverRelease, FromParty: "x", ToParty: "y"},
			{ID: "H-3", Shipment: "SHP-2", Time: storetest.Base, Site: "SIN", Kind: record.HandoverRelease, FromParty: "x", ToParty: "y"},
		}
		if err := st.Write(context.Background(), store.Batch{Readings: rs, Handovers: hs}); err != nil {
			t.Fatal(err)
		}
		h = st
	}
	s := New(Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second}, nil, nil, metrics.New(), nil, 1<<20, nil, log)
	s.EnableHistory(h)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string, v any) int {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: content type %q", path, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode
}

type readingsAnswer struct {
	Shipment struct {
		ID        string `json:"id"`
		Devices   int    `json:"devices"`
		Handovers int    `json:"handovers"`
	} `json:"shipment"`
	Count     int               `json:"count"`
	Truncated bool              `json:"truncated"`
	Every     string            `json:"every"`
	Readings  []json.RawMessage `json:"readings"`
	Buckets   []bucketJSON      `json:"buckets"`
	Handovers []json.RawMessage `json:"handovers"`
	Error     string            `json:"error"`
	Parameter string            `json:"parameter"`
}

func TestHistoryBadRequests(t *testing.T) {
	srv := historyServer(t, nil)
	for _, tc := range []struct {
		path   string
		status int
		param  string
	}{
		{"/v1/shipments/SHP-9/readings", 404, ""},
		{"/v1/shipments/SHP-9/handovers", 404, ""},
		{"/v1/shipments/SHP%20X/readings", 400, "id"},
		{"/v1/shipments/SHP-1/readings?from=yesterday", 400, "from"},
		{"/v1/shipments/SHP-1/readings?from=2026-03-01T00:00:00", 400, "from"},
		{"/v1/shipments/SHP-1/readings?to=2026-13-01T00:00:00Z", 400, "to"},
		{"/v1/shipments/SHP-1/readings?from=2026-03-01T02:00:00Z&to=2026-03-01T01:00:00Z", 400, "to"},
		{"/v1/shipments/SHP-1/readings?from=2026-03-01T01:00:00Z&to=2026-03-01T01:00:00Z", 400, "to"},
		{"/v1/shipments/SHP-1/readings?device=a.b", 400, "device"},
		{"/v1/shipments/SHP-1/readings?every=5", 400, "every"},
		{"/v1/shipments/SHP-1/readings?every=10ms", 400, "every"},
		{"/v1/shipments/SHP-1/readings?every=0d", 400, "every"},
		// The buckets are counted over the shipment's readings, not the
		// requested range: two hours of one-second buckets are fine.
		{"/v1/shipments/SHP-1/readings?every=1s&from=2000-01-01T00:00:00Z", 200, ""},
		{"/v1/shipments/SHP-1/readings?limit=0", 400, "limit"},
		{"/v1/shipments/SHP-1/readings?limit=100001", 400, "limit"},
		{"/v1/shipments/SHP-1/readings?limit=ten", 400, "limit"},
		{"/v1/shipments/SHP-1/readings?limit=1&limit=2", 400, "limit"},
		{"/v1/shipments/SHP-1/readings?form=2026-03-01T00:00:00Z", 400, "form"},
		{"/v1/shipments/SHP-1/handovers?device=a", 400, "device"},
		{"/v1/shipments?limit=1", 400, "limit"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var a readingsAnswer
			if st := get(t, srv, tc.path, &a); st != tc.status || a.Parameter != tc.param {
				t.Fatalf("%d %+v, want %d naming %q", st, a, tc.status, tc.param)
			}
			if tc.status != 200 && (a.Error == "" || tc.param != "" && !strings.HasPrefix(a.Error, tc.param+":")) {
				t.Fatalf("error %q does not start with the parameter", a.Error)
			}
		})
	}
}

func TestHistoryAnswers(t *testing.T) {
	srv := historyServer(t, nil)

	var list struct {
		Shipments []struct {
			ID          string     `json:"id"`
			First       *time.Time `json:"first_reading"`
			Last        *time.Time `json:"last_reading"`
			Devices     int        `json:"devices"`
			LastTempC   *float64   `json:"last_temp_c"`
			LastDevice  string     `json:"last_device"`
			HandoverCnt int        `json:"handovers"`
		} `json:"shipments"`
	}
	if st := get(t, srv, "/v1/shipments", &list); st != 200 || len(list.Shipments) != 2 {
		t.Fatalf("%d %+v", st, list)
	}
	s1, s2 := list.Shipments[0], list.Shipments[1]
	if s1.ID != "SHP-1" || s1.Devices != 2 || !s1.First.Equal(storetest.Base) || s1.LastDevice != "b" ||
		!s1.Last.Equal(storetest.Base.Add(119*time.Minute+time.Second)) || s1.LastTempC == nil || s1.HandoverCnt != 2 {
		t.Fatalf("SHP-1: %+v", s1)
	}
	if s2.ID != "SHP-2" || s2.First != nil || s2.LastTempC != nil || s2.HandoverCnt != 1 {
		t.Fatalf("SHP-2: %+v", s2)
	}

	for _, tc := range []struct {
		path      string
		count     int
		truncated bool
		first     string // ts of the first row
	}{
		{"/v1/shipments/SHP-1/readings", 240, false, "2026-03-01T00:00:00Z"},
		{"/v1/shipments/SHP-1/readings?device=b&limit=5", 5, true, "2026-03-01T00:00:01Z"},
		{"/v1/shipments/SHP-1/readings?from=2026-03-01T01:00:00Z&to=2026-03-01T01:10:00Z", 20, false, "2026-03-01T01:00:00Z"},
		{"/v1/shipments/SHP-1/readings?from=2026-03-01T09:00:00%2B08:00&limit=3", 3, true, "2026-03-01T01:00:00Z"},
		{"/v1/shipments/SHP-1/readings?device=c", 0, false, ""},
	} {
		var a readingsAnswer
		if st := get(t, srv, tc.path, &a); st != 200 || a.Count != tc.count || len(a.Readings) != tc.count || a.Truncated != tc.truncated {
			t.Fatalf("%s: %d count %d truncated %v", tc.path, st, a.Count, a.Truncated)
		}
		if tc.count > 0 {
			// Every row is the reading's canonical record (docs/RECORDS.md).
			r, err := record.ParseReading(compact(t, a.Readings[0]))
			if err != nil || r.Time.Format(time.RFC3339) != tc.first {
				t.Fatalf("%s: first row %s: %v", tc.path, a.Readings[0], err)
			}
		}
	}

	var a readingsAnswer
	if st := get(t, srv, "/v1/shipments/SHP-1/readings?every=1h", &a); st != 200 || a.Every != "1h0m0s" || len(a.Buckets) != 2 {
		t.Fatalf("every=1h: %d %+v", st, a)
	}
	if b := a.Buckets[0]; !b.Start.Equal(storetest.Base) || b.Count != 120 || b.Min > b.Mean || b.Mean > b.Max {
		t.Fatalf("bucket %+v", b)
	}
	if st := get(t, srv, "/v1/shipments/SHP-1/readings?every=1d&device=a", &a); st != 200 || len(a.Buckets) != 1 || a.Buckets[0].Count != 120 {
		t.Fatalf("every=1d: %d %+v", st, a.Buckets)
	}

	if st := get(t, srv, "/v1/shipments/SHP-1/handovers", &a); st != 200 || a.Count != 2 {
		t.Fatalf("handovers: %d %+v", st, a)
	}
	h, err := record.ParseHandover(compact(t, a.Handovers[0]))
	if err != nil || h.ID != "H-1" {
		t.Fatalf("custody chain out of order: %s %v", a.Handovers[0], err)
	}
	if st := get(t, srv, "/v1/shipments/SHP-2/readings", &a); st != 200 || a.Count != 0 || a.Shipment.Handovers != 1 {
		t.Fatalf("shipment with handovers only: %d %+v", st, a)
	}
}

func compact(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var b strings.Builder
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// The API indents; the canonical form is compact with sorted keys,
	// which json.Marshal of a map gives for these records.
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	b.Write(out)
	return []byte(b.String())
}

// downStore fails every query, as a store that is down does.
type downStore struct{}

var errDown = errors.New("dial tcp 127.0.0.1:8086: connect: connection refused")

func (downStore) Shipments(context.Context) ([]store.Shipment, error) { return nil, errDown }
func (downStore) Shipment(context.Context, string) (store.Shipment, error) {
	return store.Shipment{}, errDown
}
func (downStore) Readings(context.Context, store.Query) ([]record.Reading, error) {
	return nil, errDown
}
func (downStore) Downsample(context.Context, store.Query, time.Duration) ([]store.Bucket, error) {
	return nil, errDown
}
func (downStore) Handovers(context.Context, string) ([]record.Handover, error) { return nil, errDown }

func TestHistoryStoreDown(t *testing.T) {
	srv := historyServer(t, downStore{})
	for _, p := range []string{"/v1/shipments", "/v1/shipments/SHP-1/readings", "/v1/shipments/SHP-1/handovers"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d, want 503 with Retry-After", p, resp.StatusCode)
		}
	}
}

// TestAdvisoryCheck: a failing advisory check shows in /readyz without
// making it fail.
func TestAdvisoryCheck(t *testing.T) {
	s := New(Config{Listen: "127.0.0.1:0", IngestTimeout: time.Second}, nil, nil, metrics.New(), []Check{
		{Name: "nats", Func: func(context.Context) error { return nil }},
		{Name: "store", Func: func(context.Context) error { return errDown }, Advisory: true},
	}, 1<<20, nil, zaptest.NewLogger(t))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var body struct {
		Ready  bool
		Checks map[string]string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || !body.Ready || body.Checks["store"] != errDown.Error() || body.Checks["nats"] != "ok" {
		t.Fatalf("%d %+v", rec.Code, body)
	}
}
