package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// ForwardedHeader marks a request one member forwarded to another; a
// member that receives one for a part it does not hold answers 503 rather
// than forward it again.
const ForwardedHeader = "Coldchain-Forwarded-By"

// Forwarder sends requests for a part this member does not hold to the
// member that holds the part's lease, through a reverse proxy, so a client
// may talk to any member (behind one load balancer). The request keeps
// its Authorization header: the holder checks it again.
type Forwarder struct {
	Me      string
	Members *Members
	Log     *zap.Logger
	// Transport reaches the other members (nil: http.DefaultTransport).
	Transport http.RoundTripper
}

// Wrap returns h when this member holds el's lease, and otherwise a
// handler that forwards to the holder.
func (f *Forwarder) Wrap(el *Elector, h http.HandlerFunc) http.HandlerFunc {
	return f.WrapBy(func(*http.Request) *Elector { return el }, h)
}

// WrapBy is Wrap with the lease chosen per request (a shipment's
// partition).
func (f *Forwarder) WrapBy(pick func(r *http.Request) *Elector, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		el := pick(r)
		if _, held := el.Held(); held {
			h(w, r)
			return
		}
		st := el.Status()
		unavailable := func(msg string) {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, msg)
		}
		if st.Holder == "" || st.Holder == f.Me {
			unavailable(fmt.Sprintf("no gateway holds the %s lease right now (a holder stopped or is being elected); retry in a few seconds", st.Lease))
			return
		}
		if by := r.Header.Get(ForwardedHeader); by != "" {
			unavailable(fmt.Sprintf("forwarded by %s to %s, which does not hold the %s lease either: the cluster is changing hands; retry in a few seconds", by, f.Me, st.Lease))
			return
		}
		target, msg := f.target(r, st.Holder)
		if target == nil {
			unavailable(fmt.Sprintf("the %s lease is held by %s, %s", st.Lease, st.Holder, msg))
			return
		}
		p := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
				pr.Out.Header.Set(ForwardedHeader, f.Me)
			},
			Transport: f.Transport,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				f.Log.Warn("forwarding to the lease holder failed", zap.String("holder", st.Holder), zap.String("path", r.URL.Path), zap.Error(err))
				unavailable(fmt.Sprintf("the %s lease is held by %s, which did not answer: retry in a few seconds", st.Lease, st.Holder))
			},
		}
		p.ServeHTTP(w, r)
	}
}

// target returns the advertised URL of member, or nil and why not.
func (f *Forwarder) target(r *http.Request, member string) (*url.URL, string) {
	m, ok := f.Members.Get(r.Context(), member)
	if !ok || m.URL == "" {
		return nil, "whose address is unknown (no heartbeat, or no cluster.advertise_url)"
	}
	target, err := url.Parse(m.URL)
	if err != nil {
		return nil, fmt.Sprintf("which advertises an unusable URL %q", m.URL)
	}
	return target, ""
}

// maxFanOutBody bounds the body FanOut keeps to send to each member.
const maxFanOutBody = 64 << 10

// FanOut asks each of members in turn (never this one) until one answers
// otherwise than 404, and relays that answer: for a request about
// something whose holder only the holders know (an alert, by its id). It
// answers 404 when every member does, and 503 when one that could hold it
// did not answer. A forwarded request is not fanned out again.
func (f *Forwarder) FanOut(w http.ResponseWriter, r *http.Request, members []string, notFound func(http.ResponseWriter)) {
	if r.Header.Get(ForwardedHeader) != "" {
		notFound(w)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFanOutBody+1))
	if err != nil || len(body) > maxFanOutBody {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body could not be read, or is over %d bytes", maxFanOutBody))
		return
	}
	client := &http.Client{Transport: f.Transport, Timeout: 10 * time.Second}
	var missed []string
	for _, m := range members {
		if m == f.Me {
			continue
		}
		target, msg := f.target(r, m)
		if target == nil {
			missed = append(missed, m+" "+msg)
			continue
		}
		u := *target
		u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
		out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
		if err != nil {
			missed = append(missed, m+": "+err.Error())
			continue
		}
		for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
			if v := r.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}
		out.Header.Set(ForwardedHeader, f.Me)
		resp, err := client.Do(out)
		if err != nil {
			f.Log.Warn("asking a member failed", zap.String("member", m), zap.String("path", r.URL.Path), zap.Error(err))
			missed = append(missed, m+" did not answer")
			continue
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			continue
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body)) // for notFound
	if len(missed) > 0 {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "not found on the members that answered; "+strings.Join(missed, "; ")+": retry in a few seconds")
		return
	}
	notFound(w)
}

// View is GET /v1/cluster: who is in the cluster and who does what.
type View struct {
	Enabled bool     `json:"enabled"`
	Member  string   `json:"member,omitempty"` // the member that answered
	Members []Member `json:"members"`
	Leases  []Status `json:"leases"`
	// Epoch is the latest anchor epoch cut in the cluster, from the step
	// log.
	Epoch *EpochMark `json:"anchor_epoch,omitempty"`
	// Lag is each consumer's unacknowledged messages per stream, read from
	// JetStream: the work waiting for the lease holder.
	Lag map[string]map[string]uint64 `json:"lag,omitempty"`
	// LagUnknown names the consumers that did not answer, and why.
	LagUnknown []string `json:"lag_unknown,omitempty"`
}

// EpochMark is the latest epoch cut in the cluster: its number and root,
// the member that cut it, when, and the step that recorded it.
type EpochMark struct {
	Number uint64    `json:"number"`
	Root   string    `json:"root"` // hex
	Member string    `json:"member"`
	Cut    time.Time `json:"cut"`
	Step   uint64    `json:"step"`
}

// Sources is what the /v1/cluster view reads.
type Sources struct {
	Me       string
	Members  *Members
	Electors []*Elector
	// Epoch returns the latest epoch cut, nil before the first.
	Epoch func(ctx context.Context) (*EpochMark, error)
	Lag   func(ctx context.Context) (lag map[string]map[string]uint64, unknown []string, err error)
}

// ViewOf assembles the view.
func ViewOf(ctx context.Context, src Sources) (View, error) {
	v := View{Enabled: true, Member: src.Me, Members: []Member{}, Leases: []Status{}}
	ms, err := src.Members.List(ctx)
	if err != nil {
		return v, fmt.Errorf("members: %w", err)
	}
	v.Members = append(v.Members, ms...)
	for _, e := range src.Electors {
		v.Leases = append(v.Leases, e.Status())
	}
	if src.Epoch != nil {
		if v.Epoch, err = src.Epoch(ctx); err != nil {
			return v, fmt.Errorf("anchor epoch: %w", err)
		}
	}
	if src.Lag != nil {
		if v.Lag, v.LagUnknown, err = src.Lag(ctx); err != nil {
			return v, fmt.Errorf("consumer lag: %w", err)
		}
	}
	return v, nil
}

// Handler serves GET /v1/cluster from src; with src nil, cluster mode is
// off and the view says so.
func Handler(src *Sources, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if src == nil {
			_ = json.NewEncoder(w).Encode(View{Members: []Member{}, Leases: []Status{}})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		v, err := ViewOf(ctx, *src)
		if err != nil {
			log.Warn("cluster view", zap.Error(err))
			writeError(w, http.StatusServiceUnavailable, "reading the cluster state from JetStream failed: "+err.Error())
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
}

// writeError answers with the API's error object.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
