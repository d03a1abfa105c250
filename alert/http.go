package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/excursion"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/record"
)

// Subscriber subscribes to core NATS subjects (a *nats.Conn).
type Subscriber interface {
	ChanSubscribe(subject string, ch chan *nats.Msg) (*nats.Subscription, error)
}

// Routes registers the alert API on mux.
func (s *Service) Routes(mux interface {
	HandleFunc(string, func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /v1/shipments/{id}/alerts", s.listAlerts)
	mux.HandleFunc("GET /v1/shipments/{id}/status", s.status)
	mux.HandleFunc("POST /v1/alerts/{id}/ack", s.ack)
	mux.HandleFunc("GET /v1/alerts/stream", s.stream)
}

// alertJSON is an alert as the API lists it: its current state and every
// transition in the order they were published.
type alertJSON struct {
	ID           string            `json:"id"`
	Device       string            `json:"device"`
	Rule         string            `json:"rule"`
	Severity     string            `json:"severity"`
	State        string            `json:"state"` // open, cleared or retracted
	Acknowledged bool              `json:"acknowledged"`
	Start        time.Time         `json:"start"`
	End          time.Time         `json:"end"`
	PeakC        *float64          `json:"peak_c,omitempty"`
	BeyondS      float64           `json:"beyond_s"`
	Transitions  []json.RawMessage `json:"transitions"`
}

func viewJSON(v *alertView) alertJSON {
	last := v.last()
	state := "cleared"
	switch {
	case v.open():
		state = "open"
	case last.Transition == "retracted":
		state = "retracted"
	}
	out := alertJSON{ID: last.ID, Device: last.Device, Rule: last.Rule, Severity: last.Severity, State: state,
		Acknowledged: v.acknowledged(), Start: last.Start, End: last.End, BeyondS: last.Beyond.Seconds()}
	if last.PeakC.Set {
		out.PeakC = &last.PeakC.V
	}
	for i := range v.Transitions {
		out.Transitions = append(out.Transitions, v.Transitions[i].AppendCanonical(nil))
	}
	return out
}

// shipmentAlerts returns the shipment's alerts, oldest first; s.mu is held.
func (s *Service) shipmentAlerts(ship string) []*alertView {
	var out []*alertView
	for _, v := range s.alerts {
		if v.Transitions[0].Shipment == ship {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b *alertView) int {
		if c := a.Transitions[0].Start.Compare(b.Transitions[0].Start); c != 0 {
			return c
		}
		return strings.Compare(a.Transitions[0].ID, b.Transitions[0].ID)
	})
	return out
}

func (s *Service) listAlerts(w http.ResponseWriter, r *http.Request) {
	ship := r.PathValue("id")
	s = s.forShipment(ship)
	s.mu.Lock()
	_, known := s.ships[ship]
	views := s.shipmentAlerts(ship)
	list := make([]alertJSON, 0, len(views))
	for _, v := range views {
		list = append(list, viewJSON(v))
	}
	s.mu.Unlock()
	if !known && len(list) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "shipment " + ship + " has no readings"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"shipment": ship, "alerts": list})
}

func (s *Service) status(w http.ResponseWriter, r *http.Request) {
	ship := r.PathValue("id")
	s = s.forShipment(ship)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.ships[ship]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "shipment " + ship + " has no readings"})
		return
	}
	status := "ok"
	var open []alertJSON
	uncalibrated, unregistered := []string{}, []string{}
	for _, v := range s.shipmentAlerts(ship) {
		if !v.open() {
			continue
		}
		open = append(open, viewJSON(v))
		switch v.last().Rule {
		case RuleCalibration:
			uncalibrated = append(uncalibrated, v.last().Device)
		case RuleUnregistered:
			unregistered = append(unregistered, v.last().Device)
		}
		switch last := v.last(); {
		case last.Severity == "alarm":
			status = "excursion"
		case status == "ok":
			status = "warning"
		}
	}
	mkt := map[string]float64{}
	var worst *float64
	for id := range st.Devices {
		if d := s.devices[id]; d != nil && d.MKTC != nil {
			m := *d.MKTC // a copy: the detector updates d.MKTC in place
			mkt[id] = m
			if worst == nil || m > *worst {
				worst = &m
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"shipment": ship, "status": status, "profile": st.Profile,
		"beyond_high_s": st.BeyondHigh.Seconds(), "beyond_low_s": st.BeyondLow.Seconds(),
		"mkt_c": worst, "mkt_c_by_device": mkt, "last_reading": st.LastReading,
		"readings": st.Readings, "devices": len(st.Devices), "open_alerts": nonNil(open),
		"out_of_calibration": uncalibrated, "unregistered_devices": unregistered,
		"limits": limitsOf(s.profiles[st.Profile]),
	})
}

// limitsOf is a profile's thresholds as the status shows them, for a
// chart's band.
func limitsOf(p excursion.Profile) map[string]float64 {
	return map[string]float64{"low": p.Low.Limit, "high": p.High.Limit, "pre_alarm_low": p.Low.PreAlarm, "pre_alarm_high": p.High.PreAlarm}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ack records an acknowledgement as a transition of the alert: who, when
// (gateway clock) and why.
func (s *Service) ack(w http.ResponseWriter, r *http.Request) {
	var body struct {
		By      string `json:"by"`
		Comment string `json:"comment"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"by\": \"who\", \"comment\": \"why\"}: " + err.Error()})
		return
	}
	// With a token the acknowledgement records who it authenticates, not
	// what the body claims.
	scope := auth.ScopeFrom(r.Context())
	if actor := scope.Actor(); actor != "" {
		body.By = actor
	}
	if body.By == "" || len(body.By) > 128 || len(body.Comment) > 1024 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "by: required, at most 128 bytes; comment: at most 1024 bytes"})
		return
	}
	id := r.PathValue("id")
	s = s.holderOf(id)
	s.mu.Lock()
	v, ok := s.alerts[id]
	if ok && !scope.Check(v.last().Shipment) {
		ok = false // answered as an unknown alert: ids do not leak
	}
	var a record.Alert
	if ok {
		last := v.last()
		a = record.Alert{ID: id, Shipment: last.Shipment, Device: last.Device, Rule: last.Rule, Severity: last.Severity,
			Transition: "acknowledged", Start: last.Start, End: last.End, At: s.now().UTC(), Readings: []string{},
			By: body.By, Comment: body.Comment}
	}
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no alert " + id})
		return
	}
	if err := s.publish(r.Context(), []record.Alert{a}); err != nil {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the acknowledgement was not stored: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, json.RawMessage(a.AppendCanonical(nil)))
}

// stream sends alert transitions as Server-Sent Events as they are stored:
// event "alert", id the transition's event id, data its canonical JSON.
func (s *Service) stream(w http.ResponseWriter, r *http.Request) {
	ship := r.URL.Query().Get("shipment")
	scope := auth.ScopeFrom(r.Context())
	subject := "coldchain.alerts.>"
	if ship != "" {
		if !record.ValidID(ship) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "shipment: not a valid shipment id"})
			return
		}
		if !scope.Check(ship) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no shipment " + ship})
			return
		}
		subject = journal.SubjectAlert(ship)
	}
	fl, ok := w.(http.Flusher)
	if !ok || s.sub == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "streaming is not available"})
		return
	}
	// A deep buffer so a slow reader does not make the subscription a NATS
	// slow consumer during a burst of transitions.
	ch := make(chan *nats.Msg, 1024)
	sub, err := s.sub.ChanSubscribe(subject, ch)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer sub.Unsubscribe() //nolint:errcheck // The connection may be closing.
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": coldchain alerts on "+subject+"\n\n")
	fl.Flush()
	s.m.sse.Add(1)
	defer s.m.sse.Add(-1)
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		case m := <-ch:
			// The subject's last token is the shipment: a principal
			// gets only the shipments granted to its org.
			if !scope.Sees(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]) {
				continue
			}
			id := m.Header.Get(journal.HeaderMsgID)
			if _, err := io.WriteString(w, "id: "+id+"\nevent: alert\ndata: "+string(m.Data)+"\n\n"); err != nil {
				s.log.Debug("sse client gone", zap.Error(err))
				return
			}
			fl.Flush()
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // The client went away; nothing to do.
}

// Summary is an alert in its current state, for the shipment's other
// views (EPCIS).
type Summary struct {
	ID, Device, Rule, Severity string
	State                      string // open, cleared or retracted
	Acknowledged               bool
	Start, End                 time.Time
	PeakC                      *float64
	Beyond                     time.Duration
	// Custody is set for the alerts of failed custody checks; the others
	// are the detector's excursions.
	Custody bool
}

// HasAlert reports whether this gateway's detectors hold the alert id;
// with partitions, another gateway may hold it.
func (s *Service) HasAlert(id string) bool {
	d := s.holderOf(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.alerts[id]
	return ok
}

// holderOf returns the detector that holds alert id: s, or the partition
// detector that does (s when none does).
func (s *Service) holderOf(id string) *Service {
	for _, d := range s.parts {
		d.mu.Lock()
		_, ok := d.alerts[id]
		d.mu.Unlock()
		if ok {
			return d
		}
	}
	return s
}

// Alerts returns the shipment's alerts in their current state, oldest
// first. A Partitioned service reads them from the alerts stream: the
// shipment's partition may run on another gateway.
func (s *Service) Alerts(ctx context.Context, shipment string) ([]Summary, error) {
	var views []*alertView
	if len(s.parts) > 0 {
		var err error
		if views, err = s.alertsFromStream(ctx, shipment); err != nil {
			return nil, fmt.Errorf("the alerts of %s: %w", shipment, err)
		}
	} else {
		s.mu.Lock()
		defer s.mu.Unlock()
		views = s.shipmentAlerts(shipment)
	}
	var out []Summary
	for _, v := range views {
		j := viewJSON(v)
		_, cust := custodySeverity[j.Rule]
		out = append(out, Summary{ID: j.ID, Device: j.Device, Rule: j.Rule, Severity: j.Severity, State: j.State,
			Acknowledged: j.Acknowledged, Start: j.Start, End: j.End, PeakC: j.PeakC, Beyond: v.last().Beyond, Custody: cust})
	}
	return out, nil
}
