package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestForwarder: a member that does not hold the lease forwards to the
// holder's advertised URL with the caller's headers, never forwards a
// forwarded request again, and answers 503 with the reason when nobody
// holds the lease.
func TestForwarder(t *testing.T) {
	nodes := testCluster(t)
	js := connect(t, nodes[0])
	var holderSaw http.Header
	holder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holderSaw = r.Header.Clone()
		w.Write([]byte("from the holder " + r.URL.RequestURI()))
	}))
	defer holder.Close()
	var members *Members
	var err error
	waitFor(t, "the member bucket", func() bool {
		members, err = OpenMembers(context.Background(), js, Member{Name: "gw-1"}, 5*time.Second, 3, zaptest.NewLogger(t))
		return err == nil
	})
	b, _ := json.Marshal(Member{Name: "gw-2", URL: holder.URL})
	if _, err := members.kv.Put(context.Background(), "gw-2", b); err != nil {
		t.Fatal(err)
	}
	e := NewElector(nil, "consumers", "gw-1", 5*time.Second, zaptest.NewLogger(t))
	f := &Forwarder{Me: "gw-1", Members: members, Log: zaptest.NewLogger(t)}
	local := f.Wrap(e, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("local")) })
	call := func(hdr http.Header) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/shipments/S1/alerts?x=1", nil)
		for k, v := range hdr {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		local(w, r)
		return w
	}

	if w := call(nil); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("no holder: %d %s", w.Code, w.Body)
	}
	e.mu.Lock()
	e.holder = Holding{Member: "gw-2", Term: 4}
	e.mu.Unlock()
	w := call(http.Header{"Authorization": {"Bearer cct_x"}})
	if w.Code != 200 || w.Body.String() != "from the holder /v1/shipments/S1/alerts?x=1" {
		t.Fatalf("forwarded: %d %q", w.Code, w.Body)
	}
	if holderSaw.Get("Authorization") != "Bearer cct_x" || holderSaw.Get(ForwardedHeader) != "gw-1" {
		t.Fatalf("the holder saw %v", holderSaw)
	}
	if w := call(http.Header{ForwardedHeader: {"gw-3"}}); w.Code != 503 {
		t.Fatalf("a forwarded request was forwarded again: %d", w.Code)
	}
	e.mu.Lock()
	e.holder = Holding{Member: "gw-9"}
	e.mu.Unlock()
	if w := call(nil); w.Code != 503 {
		t.Fatalf("holder without a heartbeat: %d", w.Code)
	}
	// The holder serves locally.
	e.mu.Lock()
	e.l.acquired(7, time.Now())
	e.mu.Unlock()
	if w := call(nil); w.Body.String() != "local" {
		t.Fatalf("holder: %q", w.Body)
	}
}

// TestContractRecord: the first claim is the cluster's anchor contract;
// a later one gets it back; forgetting it lets the next claim win.
func TestContractRecord(t *testing.T) {
	nodes := testCluster(t)
	js := connect(t, nodes[0])
	var st *State
	var err error
	waitFor(t, "the state bucket", func() bool { st, err = OpenState(context.Background(), js, 3); return err == nil })
	ctx := context.Background()
	if _, ok, err := st.Contract(ctx); err != nil || ok {
		t.Fatalf("a record before any claim: %v %v", ok, err)
	}
	first := ContractRecord{ChainID: 31337, Contract: "0xaaaa", Member: "gw-1"}
	if got, err := st.ClaimContract(ctx, first); err != nil || got != first {
		t.Fatalf("first claim: %+v %v", got, err)
	}
	if got, err := st.ClaimContract(ctx, ContractRecord{ChainID: 31337, Contract: "0xbbbb", Member: "gw-2"}); err != nil || got != first {
		t.Fatalf("second claim got %+v %v, want the first", got, err)
	}
	if rec, ok, err := st.ForgetContract(ctx); err != nil || !ok || rec != first {
		t.Fatalf("forget: %+v %v %v", rec, ok, err)
	}
	second := ContractRecord{ChainID: 31337, Contract: "0xcccc", Member: "gw-3"}
	if got, err := st.ClaimContract(ctx, second); err != nil || got != second {
		t.Fatalf("claim after forgetting: %+v %v", got, err)
	}
}

// TestFanOut: a request about something only its holder knows goes to
// each member in turn, with the caller's token and body, until one
// answers otherwise than 404; 404 only when all do, 503 when one that
// could have it did not answer; a forwarded request is not fanned out.
func TestFanOut(t *testing.T) {
	nodes := testCluster(t)
	js := connect(t, nodes[0])
	type seen struct{ auth, by, body string }
	var asked []seen
	member := func(has string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			asked = append(asked, seen{r.Header.Get("Authorization"), r.Header.Get(ForwardedHeader), string(b)})
			if !strings.HasSuffix(r.URL.Path, "/"+has+"/ack") {
				http.Error(w, "no such alert", 404)
				return
			}
			w.Write([]byte("acked " + has))
		}))
	}
	m2, m3 := member("A2"), member("A3")
	defer m2.Close()
	defer m3.Close()
	var members *Members
	var err error
	waitFor(t, "the member bucket", func() bool {
		members, err = OpenMembers(context.Background(), js, Member{Name: "gw-1"}, 5*time.Second, 3, zaptest.NewLogger(t))
		return err == nil
	})
	for name, url := range map[string]string{"gw-2": m2.URL, "gw-3": m3.URL} {
		b, _ := json.Marshal(Member{Name: name, URL: url})
		if _, err := members.kv.Put(context.Background(), name, b); err != nil {
			t.Fatal(err)
		}
	}
	f := &Forwarder{Me: "gw-1", Members: members, Log: zaptest.NewLogger(t)}
	var localBody string
	call := func(id string, to []string, hdr http.Header) *httptest.ResponseRecorder {
		asked, localBody = nil, ""
		r := httptest.NewRequest("POST", "/v1/alerts/"+id+"/ack", strings.NewReader(`{"by":"qa"}`))
		r.Header.Set("Authorization", "Bearer cct_x")
		for k, v := range hdr {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		f.FanOut(w, r, to, func(w http.ResponseWriter) {
			b, _ := io.ReadAll(r.Body)
			localBody = string(b)
			http.Error(w, "no alert here", 404)
		})
		return w
	}
	if w := call("A3", []string{"gw-1", "gw-2", "gw-3"}, nil); w.Code != 200 || w.Body.String() != "acked A3" {
		t.Fatalf("A3: %d %q", w.Code, w.Body)
	}
	if len(asked) != 2 || asked[0] != (seen{"Bearer cct_x", "gw-1", `{"by":"qa"}`}) || asked[1] != asked[0] {
		t.Fatalf("asked %+v: want gw-2 then gw-3 (never gw-1 itself), each with the token and body", asked)
	}
	if w := call("A9", []string{"gw-2", "gw-3"}, nil); w.Code != 404 || localBody != `{"by":"qa"}` {
		t.Fatalf("an alert nobody has: %d %q (local handler saw body %q)", w.Code, w.Body, localBody)
	}
	if w := call("A9", []string{"gw-2", "gw-7"}, nil); w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "gw-7") {
		t.Fatalf("a member without a heartbeat: %d %q", w.Code, w.Body)
	}
	if w := call("A3", []string{"gw-2", "gw-3"}, http.Header{ForwardedHeader: {"gw-2"}}); w.Code != 404 || len(asked) != 0 {
		t.Fatalf("a forwarded request: %d, asked %v", w.Code, asked)
	}
}
